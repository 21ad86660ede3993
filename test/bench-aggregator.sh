#!/bin/bash
# The aggregator alone: 1,000,000 CRI lines (20 files x 50,000, ~120 B,
# 10% split P+F) read from the start by the agent, shipped over loopback to an aggregator
# whose only sink is a file sink (/dev/null) behind a disk buffer (SINKBUF=memory: without).
# Prints CPU-seconds and VmHWM of both processes (the aggregator's also once its disk buffer
# has delivered everything: aggregator_cpu_drained); writes a 5 s CPU profile of the aggregator
# (of the agent with `agentprof`) to $W/prof-$TAG.pprof.
# With RUNS=N (default 1), N runs one after the other (profiles $W/prof-$TAG-<i>.pprof) and
# then the medians: CPU-seconds vary by ±15% from run to run on a shared machine, for both
# processes alike, so the aggregator's CPU over the agent's (the same binary in the runs
# compared) is the steadier figure for comparing two aggregators.
# usage: [BIN=bin] [W=/tmp/ferry-bench-aggregator] [P=18100] [SINKBUF=disk|memory] [RUNS=1] bash test/bench-aggregator.sh TAG [agentprof]
# (build first: make build && go build -o bin/loggen ./test/loggen)
set -u
TAG=${1:-run}; BIN=${BIN:-$PWD/bin}; W=${W:-/tmp/ferry-bench-aggregator}; P=${P:-18100}; RUNS=${RUNS:-1}; PROF_OF=${2:-}
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
one() { # one run, tagged $RUN
	rm -rf state buf
	FERRY_PPROF=1 $BIN/aggregator --config agg.yaml & agg=$!
	sleep 0.5
	FERRY_PPROF=1 $BIN/agent --config agent.yaml & agent=$!
	sleep 0.2
	if [[ $PROF_OF == agentprof ]]; then prof=$((P+2)); else prof=$((P+1)); fi
	curl -s -o $W/prof-$RUN.pprof "localhost:$prof/debug/pprof/profile?seconds=5" & cpid=$!
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
	wait $cpid 2>/dev/null
	echo "$RUN wall=$(echo "$end-$start"|bc)s agent_cpu=${a}s aggregator_cpu=${g}s aggregator_cpu_drained=${gd}s agent_hwm=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$agent/status)MiB aggregator_hwm=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$agg/status)MiB profile=$W/prof-$RUN.pprof"
	kill $agent $agg; wait $agent $agg 2>/dev/null
}
if ((RUNS == 1)); then
	RUN=$TAG one
	exit
fi
for i in $(seq "$RUNS"); do RUN=$TAG-$i one; done | tee "$W/runs-$TAG.txt"
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { grep -o "$1=[0-9.]*" "$W/runs-$TAG.txt" | cut -d= -f2; }
ratio=$(paste <(field aggregator_cpu) <(field agent_cpu) | awk '{printf "%.3f\n", $1/$2}' | median)
echo "$TAG median of $RUNS: agent_cpu=$(field agent_cpu | median)s aggregator_cpu=$(field aggregator_cpu | median)s aggregator/agent=$ratio aggregator_hwm=$(field aggregator_hwm | median)MiB"
