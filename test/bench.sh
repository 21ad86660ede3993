#!/usr/bin/env bash
# Ferry's benchmarks. Prints Go benchmark figures (parser MB/s, tail lines/s,
# ship events/s) and then measures the real agent binary: lines per
# CPU-second and peak RSS while tailing FILES files (default 1000) of CRI
# lines (10% split into P+F), shipping to a real aggregator over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-1000}
LINES=${LINES:-500}          # per file
LINE_BYTES=${LINE_BYTES:-120}
BIN=${FERRY_BIN:-$PWD/bin}

echo "== Go benchmarks"
go test -run='^$' -bench=. -benchmem -benchtime=${BENCHTIME:-1s} ./pipeline/parse/ ./pipeline/multiline/ ./pipeline/tail/ ./transport/ 2>&1 | grep -E '^(Benchmark|ok|PASS|FAIL)' || true

echo
echo "== agent: $FILES files x $LINES lines of ~$LINE_BYTES bytes, read from the start"
go build -o "$BIN/loggen" ./test/loggen
W=$(mktemp -d /tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
"$BIN/loggen" write --dir "$W/node" --pods "$FILES" --rate 0 --lines "$LINES" --line-bytes "$LINE_BYTES" --rotate-bytes 0 --partial-every 10
total=$((FILES * LINES))
cat >"$W/aggregator.yaml" <<YAML
listen: 127.0.0.1:17170
http: 127.0.0.1:17182
log: { level: warn }
sinks: [ { type: file, path: /dev/null } ]
YAML
cat >"$W/agent.yaml" <<YAML
node: bench
state_dir: $W/state
http: 127.0.0.1:17181
log: { level: warn }
aggregator: { address: 127.0.0.1:17170 }
inputs: [ { type: container, paths: ["$W/node/containers/*.log"] } ]
YAML
"$BIN/aggregator" --config "$W/aggregator.yaml" &
agg=$!
sleep 0.5
start=$(date +%s.%N)
"$BIN/agent" --config "$W/agent.yaml" &
agent=$!
acked() { curl -s localhost:17181/stats | awk '$1=="ferry_agent_events_acked_total"{print $2}'; }
until [[ $(acked || echo 0) -ge $total ]]; do sleep 0.2; done
end=$(date +%s.%N)
read -r ut st < <(awk '{print $14, $15}' /proc/$agent/stat)
tck=$(getconf CLK_TCK)
hwm=$(awk '/VmHWM/{print $2}' /proc/$agent/status)
rss=$(awk '/VmRSS/{print $2}' /proc/$agent/status)
read -r aut ast < <(awk '{print $14, $15}' /proc/$agg/stat)
python3 - "$total" "$start" "$end" "$ut" "$st" "$tck" "$hwm" "$rss" "$aut" "$ast" <<'PY'
import sys
total, start, end, ut, st, tck, hwm, rss, aut, ast = sys.argv[1:]
total=int(total); wall=float(end)-float(start)
cpu=(int(ut)+int(st))/int(tck); acpu=(int(aut)+int(ast))/int(tck)
print(f"lines={total} wall={wall:.2f}s agent_cpu={cpu:.2f}s aggregator_cpu={acpu:.2f}s")
print(f"agent: {total/cpu:,.0f} lines per CPU-second; {total/wall:,.0f} lines/s wall")
print(f"agent RSS: peak {int(hwm)/1024:.1f} MiB, now {int(rss)/1024:.1f} MiB")
PY
kill -TERM $agent $agg
wait $agent $agg || true
