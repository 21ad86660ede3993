#!/usr/bin/env bash
# The local demo: an aggregator with the file sink, an agent tailing a
# directory laid out like a Kubernetes node, and a generator writing CRI logs
# for six pods in three namespaces with rotation. Ctrl-C stops everything
# cleanly (SIGTERM: the agent waits for its acks and saves its positions).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FERRY_BIN:-$PWD/bin}
DEMO=${FERRY_DEMO_DIR:-$PWD/demo}
rm -rf "$DEMO"
mkdir -p "$DEMO/node" "$DEMO/out" "$DEMO/state"
go build -o "$BIN/loggen" ./test/loggen

cat >"$DEMO/aggregator.yaml" <<YAML
listen: 127.0.0.1:7070
http: 127.0.0.1:8082
sinks:
  - { type: file, path: $DEMO/out/events.ndjson }
YAML
cat >"$DEMO/agent.yaml" <<YAML
node: demo-node
state_dir: $DEMO/state
http: 127.0.0.1:8081
aggregator: { address: 127.0.0.1:7070 }
inputs:
  - { type: container, paths: ["$DEMO/node/containers/*.log"] }
YAML

pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "demo: stopping (SIGTERM to generator, agent, aggregator)"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "demo: stopped. Events: $(wc -l <"$DEMO/out/events.ndjson" 2>/dev/null || echo 0) in $DEMO/out/events.ndjson; logs in $DEMO/*.log"
}
trap cleanup INT TERM EXIT

"$BIN/aggregator" --config "$DEMO/aggregator.yaml" 2>"$DEMO/aggregator.log" &
pids+=($!)
"$BIN/agent" --config "$DEMO/agent.yaml" 2>"$DEMO/agent.log" &
pids+=($!)
"$BIN/loggen" write --dir "$DEMO/node" --pods 6 --rate 200 --rotate-bytes 262144 &
pids+=($!)
echo "demo: aggregator :7070, agent tailing $DEMO/node/containers/*.log, 200 lines/s; Ctrl-C to stop"
echo "demo: health: curl localhost:8081/readyz localhost:8082/stats"
if [[ -n ${FERRY_DEMO_SECONDS:-} ]]; then
	"$BIN/loggen" watch --file "$DEMO/out/events.ndjson" &
	w=$!
	sleep "$FERRY_DEMO_SECONDS"
	kill -TERM $w
	wait $w || true
else
	"$BIN/loggen" watch --file "$DEMO/out/events.ndjson"
fi
