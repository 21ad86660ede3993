#!/bin/bash
# The aggregator alone: 1,000,000 CRI lines (20 files x 50,000, ~120 B,
# 10% split P+F) read from the start by the agent, shipped over loopback to an aggregator
# whose only sink is a file sink (/dev/null) behind a disk buffer (SINKBUF=memory: without).
# Prints CPU-seconds and VmHWM of both processes (the aggregator's also once its disk buffer
# has delivered everything: aggregator_cpu_drained); writes a 5 s CPU profile of the aggregator
# (of the agent with `agentprof`) to $W/prof-$TAG.pprof.
# usage: [BIN=bin] [W=/tmp/ferry-bench-aggregator] [P=18100] [SINKBUF=disk|memory] bash test/bench-aggregator.sh TAG [agentprof]
# (build first: make build && go build -o bin/loggen ./test/loggen)
set -u
TAG=${1:-run}; BIN=${BIN:-$PWD/bin}; W=${W:-/tmp/ferry-bench-aggregator}; P=${P:-18100}
mkdir -p $W; cd $W
[[ -d node ]] || $BIN/loggen write --dir $W/node --pods 20 --rate 0 --lines 50000 --line-bytes 120 --rotate-bytes 0 --partial-every 10
cat > agg.yaml <<Y
listen: 127.0.0.1:$P
http: 127.0.0.1:$((P+1))
log: { level: warn }
buffer: { type: disk, dir: $W/buf }
sinks: [ { type: file, path: /dev/null, buffer: ${SINKBUF:-disk} } ]
Y
cat > agent.yaml <<Y
node: bench
state_dir: $W/state
http: 127.0.0.1:$((P+2))
log: { level: warn }
aggregator: { address: 127.0.0.1:$P }
inputs: [ { type: container, paths: ["$W/node/containers/*.log"] } ]
Y
rm -rf state buf
FERRY_PPROF=1 $BIN/aggregator --config agg.yaml & agg=$!
sleep 0.5
FERRY_PPROF=1 $BIN/agent --config agent.yaml & agent=$!
sleep 0.2
if [[ ${2:-} == agentprof ]]; then prof=$((P+2)); else prof=$((P+1)); fi
curl -s -o $W/prof-$TAG.pprof "localhost:$prof/debug/pprof/profile?seconds=5" &
acked() { curl -s localhost:$((P+2))/stats | awk '$1=="ferry_agent_events_acked_total"{print $2}'; }
start=$(date +%s.%N)
until [[ $(acked || echo 0) -ge 1000000 ]]; do sleep 0.2; done
end=$(date +%s.%N)
tck=$(getconf CLK_TCK)
a=$(awk -v t=$tck '{print ($14+$15)/t}' /proc/$agent/stat); g=$(awk -v t=$tck '{print ($14+$15)/t}' /proc/$agg/stat)
# With a disk buffer, delivery to the sink goes on after the acks: the CPU until the buffer is empty.
pending() { curl -s localhost:$((P+1))/stats | awk '$1 ~ /^ferry_aggregator_buffer_bytes/ {n+=$2} END {print n+0}'; }
until [[ $(pending || echo 1) -eq 0 ]]; do sleep 0.1; done
gd=$(awk -v t=$tck '{print ($14+$15)/t}' /proc/$agg/stat)
wait %3 2>/dev/null
echo "$TAG wall=$(echo "$end-$start"|bc)s agent_cpu=${a}s aggregator_cpu=${g}s aggregator_cpu_drained=${gd}s agent_hwm=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$agent/status)MiB aggregator_hwm=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$agg/status)MiB profile=$W/prof-$TAG.pprof"
kill $agent $agg; wait $agent $agg 2>/dev/null
