#!/usr/bin/env bash
# Ferry's benchmarks. Prints Go benchmark figures (parser MB/s, tail lines/s,
# ship events/s, with allocations) and then measures the real agent binary
# against a real aggregator over loopback (file sink to /dev/null behind the
# memory buffer), as one table:
#   - for each case FILES:LINES (default 20 files x 50,000 lines and 1,000
#     files x 1,000 lines: 1,000,000 CRI lines of ~120 bytes, 10% split into
#     P+F, read from the start), RUNS times: wall seconds, the agent's
#     CPU-seconds (utime+stime), lines per CPU-second, lines per wall second
#     and peak RSS (VmHWM; at the end, how much of RSS is anonymous and how
#     much file-backed, i.e. the binary's own pages);
#   - idle: IDLE_FILES files written at IDLE_RATE lines/s in all for
#     IDLE_SECONDS: the agent's CPU over that time, as a share of one core.
# CPU is measured as CPU-seconds of the process, not wall time: the machine
# may be shared. Compare runs of the same script, not absolute figures.
#
# Environment: CASES ("20:50000 1000:1000"; FILES and LINES, when set, make
# it one case; "none" runs no case, e.g. to measure only idle), RUNS (1),
# LINE_BYTES (120), IDLE_FILES (20), IDLE_RATE (100), IDLE_SECONDS (60; 0
# skips it), GO_BENCH (1; 0 skips the Go benchmarks), BENCHTIME (1s), PORT
# (17170: uses PORT..PORT+2), FERRY_BIN (the binaries; default ./bin, built
# first), INPUT_OPTS (more keys of the agent's input, YAML flow style, e.g.
# INPUT_OPTS="read_delay: 0s"), IDLE_PROFILE (a directory: during the idle
# case, a 20 s CPU profile of the agent (pprof; the agent runs with
# FERRY_PPROF=1) into IDLE_PROFILE/agent.pprof, then 10 s of `strace -f -c`
# into IDLE_PROFILE/strace.txt; the CPU figure of such a run includes what
# profiling and tracing cost: measure without it).
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${CASES:-"20:50000 1000:1000"}
if [[ -n ${FILES:-} || -n ${LINES:-} ]]; then
	CASES="${FILES:-1000}:${LINES:-1000}"
fi
[[ $CASES == none ]] && CASES=""
PROFILE=${IDLE_PROFILE:-}
RUNS=${RUNS:-1}
LINE_BYTES=${LINE_BYTES:-120}
IDLE_FILES=${IDLE_FILES:-20}
IDLE_RATE=${IDLE_RATE:-100}
IDLE_SECONDS=${IDLE_SECONDS:-60}
PORT=${PORT:-17170}
if [[ -z ${FERRY_BIN:-} ]]; then
	BIN=$PWD/bin
	go build -o "$BIN/agent" ./cmd/agent
	go build -o "$BIN/aggregator" ./cmd/aggregator
	go build -o "$BIN/loggen" ./test/loggen
else
	BIN=$FERRY_BIN
fi

if [[ ${GO_BENCH:-1} == 1 ]]; then
	echo "== Go benchmarks"
	go test -run='^$' -bench=. -benchmem -benchtime=${BENCHTIME:-1s} ./pipeline/parse/ ./pipeline/multiline/ ./pipeline/tail/ ./transport/ 2>&1 | grep -E '^(Benchmark|ok|PASS|FAIL)' || true
	echo
fi

W=$(mktemp -d /tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
TCK=$(getconf CLK_TCK)
AGG_HTTP=$((PORT + 2))
AGENT_HTTP=$((PORT + 1))

cat >"$W/aggregator.yaml" <<YAML
listen: 127.0.0.1:$PORT
http: 127.0.0.1:$AGG_HTTP
log: { level: warn }
sinks: [ { type: file, path: /dev/null } ]
YAML

# cpu PID: CPU-seconds of the process so far.
cpu() { awk -v t="$TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# kib PID FIELD: a /proc/PID/status field in KiB.
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
# acked: events the aggregator has acknowledged (polled there, so that the
# polling costs the agent nothing).
acked() { curl -s "localhost:$AGG_HTTP/stats" | awk '$1 == "ferry_aggregator_events_acked_total" {print $2}'; }
wait_acked() {
	local want=$1 deadline=$((SECONDS + ${2:-600}))
	until [[ $(acked || echo 0) -ge $want ]]; do
		if ((SECONDS > deadline)); then
			echo "bench: only $(acked || echo 0) of $want events acknowledged in time" >&2
			return 1
		fi
		sleep 0.2
	done
}

# start NAME GLOB: writes the agent's configuration, starts both processes.
start() {
	rm -rf "$W/state"
	cat >"$W/agent.yaml" <<YAML
node: bench
state_dir: $W/state
http: 127.0.0.1:$AGENT_HTTP
log: { level: warn }
aggregator: { address: 127.0.0.1:$PORT }
inputs: [ { type: container, paths: ["$2"]${INPUT_OPTS:+, $INPUT_OPTS} } ]
YAML
	"$BIN/aggregator" --config "$W/aggregator.yaml" &
	agg=$!
	until curl -sf "localhost:$AGG_HTTP/healthz" >/dev/null; do sleep 0.1; done
	if [[ $1 == idle && -n $PROFILE ]]; then
		FERRY_PPROF=1 "$BIN/agent" --config "$W/agent.yaml" &
	else
		"$BIN/agent" --config "$W/agent.yaml" &
	fi
	agent=$!
}

stop() {
	kill -TERM "$agent" "$agg"
	wait "$agent" "$agg" || true
}

rows=()
for c in $CASES; do
	files=${c%%:*} lines=${c##*:}
	total=$((files * lines))
	rm -rf "$W/node"
	"$BIN/loggen" write --dir "$W/node" --pods "$files" --rate 0 --lines "$lines" --line-bytes "$LINE_BYTES" --rotate-bytes 0 --partial-every 10
	for run in $(seq 1 "$RUNS"); do
		start bulk "$W/node/containers/*.log"
		t0=$(date +%s.%N)
		wait_acked "$total"
		t1=$(date +%s.%N)
		rows+=("$(python3 - "$files" "$lines" "$run" "$t0" "$t1" "$(cpu "$agent")" "$(kib "$agent" VmHWM)" "$(kib "$agent" RssAnon)" "$(kib "$agent" RssFile)" <<'PY'
import sys
files, lines, run, t0, t1, cpu, hwm, anon, fil = sys.argv[1:]
total = int(files) * int(lines); wall = float(t1) - float(t0); cpu = float(cpu)
print(f"{files + ' x ' + lines:>14} {run:>3} {wall:7.2f} {cpu:7.2f} {total / cpu:12,.0f} {total / wall:11,.0f} {int(hwm) / 1024:8.1f} {int(anon) / 1024:7.1f} {int(fil) / 1024:7.1f}")
PY
)")
		stop
	done
done

idle=""
if ((IDLE_SECONDS > 0)); then
	rm -rf "$W/idle"
	mkdir -p "$W/idle"
	start idle "$W/idle/containers/*.log"
	sleep 2 # started: its start-up is not idle time
	c0=$(cpu "$agent")
	per=$((IDLE_RATE * IDLE_SECONDS / IDLE_FILES))
	if [[ -n $PROFILE ]]; then
		mkdir -p "$PROFILE"
		(
			sleep 5
			curl -s -o "$PROFILE/agent.pprof" "localhost:$AGENT_HTTP/debug/pprof/profile?seconds=20"
			timeout -s INT 10 strace -f -c -o "$PROFILE/strace.txt" -p "$agent" >/dev/null 2>&1 || true
		) &
		prof=$!
	fi
	"$BIN/loggen" write --dir "$W/idle" --pods "$IDLE_FILES" --rate "$IDLE_RATE" --lines "$per" --line-bytes "$LINE_BYTES" --rotate-bytes 0 --partial-every 10
	[[ -n $PROFILE ]] && wait "$prof"
	wait_acked $((per * IDLE_FILES)) 30
	c1=$(cpu "$agent")
	idle=$(python3 -c "import sys; c=float(sys.argv[2])-float(sys.argv[1]); print(f'idle: {sys.argv[3]} files at {sys.argv[4]} lines/s for {sys.argv[5]} s: agent {c:.2f} CPU-s = {100*c/float(sys.argv[5]):.2f}% of one core')" "$c0" "$c1" "$IDLE_FILES" "$IDLE_RATE" "$IDLE_SECONDS")
	stop
fi

echo "== agent against a memory-buffered aggregator (lines of ~$LINE_BYTES bytes, read from the start)"
printf '%14s %3s %7s %7s %12s %11s %8s %7s %7s\n' "files x lines" run wall_s cpu_s lines/cpu_s lines/s peak_MiB anon file
for r in ${rows[@]+"${rows[@]}"}; do echo "$r"; done
[[ -n $idle ]] && echo "$idle"
exit 0
