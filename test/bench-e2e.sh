#!/usr/bin/env bash
# Cost per event end to end (issue 17): the real agent and aggregator into a
# real Elasticsearch 8.19.7 with the aggregator's disk buffer (the
# Elasticsearch sink's default), Kubernetes metadata (a private
# kube-apiserver with the log files' pods on the agent's node) and GeoIP (an
# HAProxy request log beside the container logs, looked up in the City and
# ASN test databases). Prints one table, a column per run:
#
#   phase 1 (throughput): LINES lines over FILES files (+1 HAProxy line per
#     HAPROXY_EVERY), read from the start: events/s into Elasticsearch, CPU
#     seconds of agent, aggregator and Elasticsearch (utime+stime of
#     /proc/PID/stat over the same interval: from the files appearing until
#     every event is acknowledged and the disk buffer is empty), the ratio
#     (agent+aggregator)/Elasticsearch; then every line must be indexed
#     exactly once (count, distinct _id, distinct file/offset) with the pod's
#     metadata / GeoIP fields.
#   phase 2 (latency): LAT_RATE lines/s for LAT_SECONDS, the data stream's
#     refresh interval set to 1 s; lines stamped with their write time
#     (test/loggen --stamp), probes searched every POLL: p50/p99/max from
#     write to searchable.
#   and the peak RSS (VmHWM) of both binaries.
#
#   make bench-e2e                 (as root: it may start Elasticsearch)
#   RUNS=3 LAT_SECONDS=30 bash test/bench-e2e.sh
#
# Environment (defaults in brackets):
#   RUNS [1]             runs, each with a fresh node, agent, aggregator, pods, data streams
#   FILES [10]           container log files (pods) per phase
#   LINES [300000]       phase 1 container lines in all (LINES/FILES per file)
#   HAPROXY_EVERY [10]   one HAProxy line after every N container lines (0: none)
#   LAT_RATE [5000]      phase 2 container lines per second
#   LAT_SECONDS [60]     phase 2 duration (0: skip phase 2)
#   PROBE_EVERY [25]     phase 2: every Nth line of a pod is searched for
#   POLL [150ms]         phase 2: search interval (the latency's resolution)
#   WINDOW [10s]         phase 2: each search looks this far back; a probe first seen
#                        later (by the final search) counts as ">WINDOW"
#   PORT_BASE [17460]    the agent and aggregator use PORT_BASE+1..+3; the private
#                        kube-apiserver PORT_BASE+10, its etcd PORT_BASE+11 and +12
#   FERRY_ES_URL         an Elasticsearch to use; default: test/elasticsearch.sh's
#                        (FERRY_ES_STATE_DIR, FERRY_ES_PORT), started if absent and then
#                        stopped at the end. Its CPU is measured when its pid is known:
#                        FERRY_ES_PID, else test/elasticsearch.sh pid when its url is FERRY_ES_URL.
#   SINK_OPTS            more keys of the Elasticsearch sink, YAML flow style, e.g.
#                        SINK_OPTS="flush_interval: 200ms" (default: none, the product's defaults)
#   BUFFER_OPTS          more keys of the aggregator's buffer, e.g. BUFFER_OPTS="concurrency: 8"
#   FERRY_BIN            directory of agent and aggregator; default: built from this checkout
#   PPROF_SECONDS [0]    >0: CPU profiles of agent and aggregator over the first N seconds
#                        of phase 1 (FERRY_PPROF=1), kept in the work directory (as BENCH_KEEP)
#   PERF_SECONDS [0]     >0: `perf record -g` of agent and aggregator over the first N seconds
#                        of phase 1, kept in the work directory as {agent,aggregator}.perf
#                        (needs perf; kernel stacks too: where pprof's view of system calls
#                        misleads, see docs/benchmarks.md)
#   PPROF2_SECONDS [0]   the same over phase 2 (the steady load): {agent,aggregator}-steady.pprof
#   ES_WARMUP [auto]     1: one phase-1 run first, not reported, to warm Elasticsearch's JIT;
#                        auto: only when this script started Elasticsearch (a cold JVM costs
#                        up to twice the CPU per event: 113-121 µs against 55-79 warm, which
#                        would halve the ratio); 0: never
#   BENCH_KEEP=1         keep the work directory (logs, configs) for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1}
FILES=${FILES:-10}
LINES=${LINES:-300000}
HAPROXY_EVERY=${HAPROXY_EVERY:-10}
LAT_RATE=${LAT_RATE:-5000}
LAT_SECONDS=${LAT_SECONDS:-60}
PROBE_EVERY=${PROBE_EVERY:-25}
POLL=${POLL:-150ms}
WINDOW=${WINDOW:-10s}
PORT_BASE=${PORT_BASE:-17460}
PPROF_SECONDS=${PPROF_SECONDS:-0}
PPROF2_SECONDS=${PPROF2_SECONDS:-0}
PERF_SECONDS=${PERF_SECONDS:-0}
if ((PPROF_SECONDS > 0 || PPROF2_SECONDS > 0)); then
	export FERRY_PPROF=1 BENCH_KEEP=1
fi
if ((PERF_SECONDS > 0)); then
	command -v perf >/dev/null || { echo "bench-e2e: PERF_SECONDS needs perf (apt-get install linux-perf)" >&2; exit 1; }
	export BENCH_KEEP=1
fi

W=$(mktemp -d /tmp/ferry-bench-e2e.XXXXXX)
KUBE_ENV=(FERRY_KUBE_STATE_DIR="$W/kube" FERRY_KUBE_PORT=$((PORT_BASE + 10)) FERRY_KUBE_ETCD_PORT=$((PORT_BASE + 11)))
started_es=0 started_kube=0
cleanup() {
	rc=$?
	if ((started_kube)); then env "${KUBE_ENV[@]}" bash test/kube-apiserver.sh stop >/dev/null 2>&1 || true; fi
	if ((started_es)); then bash test/elasticsearch.sh stop >/dev/null 2>&1 || true; fi
	if [[ ${BENCH_KEEP:-} == 1 || $rc != 0 ]]; then
		echo "bench-e2e: work directory kept: $W" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${FERRY_ES_URL:-} ]]; then
	bash test/elasticsearch.sh status >/dev/null 2>&1 || started_es=1
	bash test/elasticsearch.sh start
	FERRY_ES_URL=$(bash test/elasticsearch.sh url)
fi
ES=${FERRY_ES_URL%/}
es_pid=${FERRY_ES_PID:-}
if [[ -z $es_pid ]] && [[ $(bash test/elasticsearch.sh url) == "$ES" ]]; then
	es_pid=$(bash test/elasticsearch.sh pid 2>/dev/null || true)
fi
[[ -n $es_pid ]] || echo "bench-e2e: the pid of $ES is unknown (FERRY_ES_PID): its CPU is not measured" >&2

started_kube=1
env "${KUBE_ENV[@]}" bash test/kube-apiserver.sh start
kubeconfig=$(env "${KUBE_ENV[@]}" bash test/kube-apiserver.sh kubeconfig admin)
agent_kubeconfig=$(env "${KUBE_ENV[@]}" bash test/kube-apiserver.sh kubeconfig agent)

BIN=${FERRY_BIN:-}
if [[ -z $BIN ]]; then
	BIN=$W/bin
	go build -o "$BIN/agent" ./cmd/agent
	go build -o "$BIN/aggregator" ./cmd/aggregator
fi
go build -o "$W/loggen" ./test/loggen
go build -o "$W/benche2e" ./test/benche2e

warmup=false
case ${ES_WARMUP:-auto} in
1) warmup=true ;;
auto) if ((started_es)); then warmup=true; fi ;;
esac
echo "bench-e2e: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run" >&2
"$W/benche2e" -es "$ES" -es-pid "${es_pid:-0}" -bin "$BIN" -loggen "$W/loggen" -work "$W" \
	-kubeconfig "$kubeconfig" -agent-kubeconfig "$agent_kubeconfig" -ports "$PORT_BASE" -runs "$RUNS" \
	-files "$FILES" -lines $((LINES / FILES)) -haproxy-every "$HAPROXY_EVERY" \
	-lat-rate "$LAT_RATE" -lat-seconds "$LAT_SECONDS" -probe-every "$PROBE_EVERY" -poll "$POLL" -window "$WINDOW" -pprof "${PPROF_SECONDS}s" -pprof2 "${PPROF2_SECONDS}s" -perf "${PERF_SECONDS}s" \
	-sink-opts "${SINK_OPTS:-}" -buffer-opts "${BUFFER_OPTS:-}" -warmup="$warmup"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
