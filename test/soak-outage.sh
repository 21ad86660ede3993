#!/usr/bin/env bash
# Agent memory while the aggregator is down: FILES container log files keep
# growing (RATE lines/s in all) for OUTAGE seconds with no aggregator; the
# agent's RSS is sampled every 10 s. Then the aggregator starts and the script
# waits until every line written has been acknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-100}
RATE=${RATE:-2000}
OUTAGE=${OUTAGE:-600}
MEMORY_LIMIT=${MEMORY_LIMIT:-128MiB} # the agent's memory_limit
BIN=${FERRY_BIN:-$PWD/bin}
go build -o "$BIN/loggen" ./test/loggen
W=$(mktemp -d /tmp/ferry-soak.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$W"' EXIT
cat >"$W/aggregator.yaml" <<YAML
listen: 127.0.0.1:17270
http: 127.0.0.1:17282
log: { level: warn }
sinks: [ { type: file, path: $W/out.ndjson } ]
YAML
cat >"$W/agent.yaml" <<YAML
node: soak
state_dir: $W/state
http: 127.0.0.1:17281
log: { level: error }
memory_limit: $MEMORY_LIMIT
aggregator: { address: 127.0.0.1:17270, backoff_max: 2s }
inputs: [ { type: container, paths: ["$W/node/containers/*.log"] } ]
YAML
"$BIN/loggen" write --dir "$W/node" --pods "$FILES" --rate "$RATE" --rotate-bytes 8388608 --partial-every 10 &
gen=$!
"$BIN/agent" --config "$W/agent.yaml" &
agent=$!
echo "aggregator down for ${OUTAGE}s; $FILES files growing at $RATE lines/s; agent memory_limit $MEMORY_LIMIT"
echo "seconds rss_mib"
for ((t = 0; t <= OUTAGE; t += 10)); do
	echo "$t $(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$agent/status)"
	((t < OUTAGE)) && sleep 10
done
echo "peak rss during the outage: $(awk '/VmHWM/{printf "%.1f MiB", $2/1024}' /proc/$agent/status)"
kill -TERM $gen
wait $gen || true
"$BIN/aggregator" --config "$W/aggregator.yaml" &
start=$(date +%s)
written=$(cat "$W"/node/pods/*/app/0.log* | grep -c ' F ')
until [[ $(curl -s localhost:17281/stats | awk '$1=="ferry_agent_events_acked_total"{print $2}') -ge $written ]]; do sleep 1; done
echo "aggregator up: all $written lines acknowledged after $(($(date +%s) - start)) s; peak rss $(awk '/VmHWM/{printf "%.1f MiB", $2/1024}' /proc/$agent/status)"
