#!/usr/bin/env bash
# Throughput of the Elasticsearch path with the real binaries: one agent
# reads PODS x LINES pre-written CRI lines (10% split into P+F) from the
# start and ships them to an aggregator whose only sink is Elasticsearch.
# One run per value of FLUSH_EVENTS (the sink's flush_events), each with a
# fresh agent node name and state, so every run indexes new documents.
#
# Per run it prints events/s into Elasticsearch (from the agent's start to
# the last event acknowledged by Elasticsearch; the count of the node's
# documents is then checked after a refresh), and the CPU seconds
# (utime+stime from /proc/PID/stat) the aggregator and Elasticsearch used
# over that interval.
#
#   bash test/bench-es.sh          (as root: it may start Elasticsearch)
#
# Elasticsearch: $FERRY_ES_URL, else the one of test/elasticsearch.sh, started
# here if it does not run (and then stopped at the end). Its CPU is measured
# when test/elasticsearch.sh knows its pid. Binaries: $FERRY_BIN, else built
# into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${PODS:-20}
LINES=${LINES:-10000}                       # per pod
FLUSH_EVENTS=${FLUSH_EVENTS:-"1000 5000 10000"}
# One agent must be able to fill a bulk of 10,000 events: its window
# (batch_max_events x max_inflight_batches) and the aggregator's per
# connection limit must hold more than that, else every bulk waits for
# flush_interval. flush_bytes is raised so that flush_events decides.
BATCH_EVENTS=${BATCH_EVENTS:-2048}
INFLIGHT=${INFLIGHT:-16}
FLUSH_BYTES=${FLUSH_BYTES:-100MiB}
FLUSH_INTERVAL=${FLUSH_INTERVAL:-200ms}
total=$((PODS * LINES))

W=$(mktemp -d /tmp/ferry-bench-es.XXXXXX)
agg= agent= started_es=0
cleanup() {
	for p in $agent $agg; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$W"
	if ((started_es)); then bash test/elasticsearch.sh stop || true; fi
}
trap cleanup EXIT

if [[ -z ${FERRY_ES_URL:-} ]]; then
	bash test/elasticsearch.sh status >/dev/null || started_es=1
	bash test/elasticsearch.sh start
	FERRY_ES_URL=$(bash test/elasticsearch.sh url)
fi
ES=${FERRY_ES_URL%/}
es_pid=$(bash test/elasticsearch.sh pid 2>/dev/null || true)
if [[ -n $es_pid && $(bash test/elasticsearch.sh url) != "$ES" ]]; then
	es_pid= # FERRY_ES_URL is another Elasticsearch
fi

BIN=${FERRY_BIN:-}
if [[ -z $BIN ]]; then
	BIN=$W/bin
	go build -o "$BIN/agent" ./cmd/agent
	go build -o "$BIN/aggregator" ./cmd/aggregator
fi
go build -o "$W/loggen" ./test/loggen
"$W/loggen" write --dir "$W/node" --pods "$PODS" --rate 0 --lines "$LINES" --rotate-bytes 0
echo "== $total lines in $PODS files ($(du -sh "$W/node/pods" | cut -f1)) -> agent -> aggregator -> $ES"
echo "   agent batch_max_events=$BATCH_EVENTS max_inflight_batches=$INFLIGHT; sink flush_bytes=$FLUSH_BYTES flush_interval=$FLUSH_INTERVAL"

tck=$(getconf CLK_TCK)
# cpu PID prints utime+stime of PID in clock ticks (all its threads).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stat_of() { curl -s --max-time 2 "http://$1/stats" | awk -v k="$2" '$1==k{print $2}'; }
now() { date +%s.%N; }

printf '\n%-13s %9s %8s %10s %16s %10s\n' flush_events events wall_s events/s aggregator_cpu_s es_cpu_s
for fe in $FLUSH_EVENTS; do
	node=bench-es-$(date +%s%N)-fe$fe
	run=$W/run-$fe
	mkdir -p "$run"
	cat >"$run/aggregator.yaml" <<YAML
listen: 127.0.0.1:17370
http: 127.0.0.1:17382
log: { level: warn }
max_batches_in_flight: $INFLIGHT
sinks:
  - type: elasticsearch
    urls: ["$ES"]
    flush_events: $fe
    flush_bytes: $FLUSH_BYTES
    flush_interval: $FLUSH_INTERVAL
YAML
	cat >"$run/agent.yaml" <<YAML
node: $node
state_dir: $run/state
http: 127.0.0.1:17381
log: { level: warn }
aggregator: { address: 127.0.0.1:17370, batch_max_events: $BATCH_EVENTS, max_inflight_batches: $INFLIGHT }
inputs: [ { type: container, paths: ["$W/node/containers/*.log"] } ]
YAML
	"$BIN/aggregator" --config "$run/aggregator.yaml" 2>"$run/aggregator.log" &
	agg=$!
	until curl -sf --max-time 1 http://127.0.0.1:17382/healthz >/dev/null; do
		kill -0 $agg 2>/dev/null || { cat "$run/aggregator.log" >&2; exit 1; }
		sleep 0.1
	done
	a0=$(cpu $agg)
	e0=$([[ -n $es_pid ]] && cpu "$es_pid" || echo 0)
	start=$(now)
	"$BIN/agent" --config "$run/agent.yaml" 2>"$run/agent.log" &
	agent=$!
	# Acknowledged by the agent = answered 2xx by Elasticsearch's bulk API.
	until [[ $(stat_of 127.0.0.1:17381 ferry_agent_events_acked_total || true) -ge $total ]] 2>/dev/null; do
		kill -0 $agent 2>/dev/null || { cat "$run/agent.log" >&2; exit 1; }
		sleep 0.1
	done
	end=$(now)
	a1=$(cpu $agg)
	e1=$([[ -n $es_pid ]] && cpu "$es_pid" || echo 0)
	kill -TERM $agent $agg
	wait $agent $agg || true
	agent= agg=
	curl -s -XPOST "$ES/logs-*/_refresh" >/dev/null
	count=$(curl -s -XPOST "$ES/logs-*/_count" -H 'Content-Type: application/json' \
		-d "{\"query\":{\"term\":{\"host.name\":\"$node\"}}}" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
	if [[ $count != "$total" ]]; then
		echo "flush_events=$fe: node $node has ${count:-?} documents, want $total" >&2
		exit 1
	fi
	awk -v fe="$fe" -v n="$total" -v s="$start" -v e="$end" -v a="$((a1 - a0))" -v es="$((e1 - e0))" -v tck="$tck" -v havees="${es_pid:+1}" '
		BEGIN {
			wall = e - s
			escpu = havees ? sprintf("%.2f", es / tck) : "n/a"
			printf "%-13s %9d %8.2f %10.0f %16.2f %10s\n", fe, n, wall, n / wall, a / tck, escpu
		}'
done
