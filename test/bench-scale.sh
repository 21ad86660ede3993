#!/usr/bin/env bash
# make bench-scale: many agent streams (test/loadgen, one real gRPC client
# per simulated agent, each shipping a trickle) against
#  (a) one aggregator: its memory with 0 streams and with STREAMS streams
#      open and idle (RSS and the Go runtime's heap + goroutine stacks,
#      after a forced GC), so memory per stream = delta / STREAMS; then the
#      trickle's ack latency per stream (is any stream starved?);
#  (b) three replicas on 127.0.0.1-3 (same port) behind one name in
#      /etc/hosts (entries added here and removed at exit; root only),
#      dialled as dns:///NAME:PORT with round_robin, as agents do. The load
#      starts with one replica up and in the name; the two others start
#      later and are added to the name then; a short max_connection_age
#      makes the agents resolve again and their streams move; each replica's
#      share of the events acknowledged in the last WINDOW seconds (its
#      ferry_aggregator_events_acked_total) is compared with the mean.
# The sink is a file sink to /dev/null with the memory buffer: what is
# measured is the receive path (connections, streams, acks), not a disk; a
# disk buffer adds nothing per stream (BUFFER=disk runs (a) with one, for
# its group commit's fairness).
# Ports 18400-18499. Environment: STREAMS (1000), INTERVAL (1s), EVENTS (4),
# IDLE (20s), DURATION (60s), PART (a, b or ab), BUFFER (memory|disk),
# AGE (max_connection_age of (b), 20s), WINDOW (30), AGGREGATOR (a binary
# to measure instead of one built from this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FERRY_BIN:-$PWD/bin}
STREAMS=${STREAMS:-1000}
INTERVAL=${INTERVAL:-1s}
EVENTS=${EVENTS:-4}
IDLE=${IDLE:-20}
DURATION=${DURATION:-60}
PART=${PART:-ab}
BUFFER=${BUFFER:-memory}
AGE=${AGE:-20s}
WINDOW=${WINDOW:-30}
NAME=ferry-scale.test
# AGGREGATOR: another aggregator binary to measure (a before/after pair).
AGG=${AGGREGATOR:-$BIN/aggregator}
[[ -n ${AGGREGATOR:-} ]] || go build -o "$BIN/aggregator" ./cmd/aggregator
go build -o "$BIN/loadgen" ./test/loadgen
W=$(mktemp -d /tmp/ferry-scale.XXXXXX)
hosts_added=""
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $hosts_added ]]; then
    # Remove only our lines, in place (/etc/hosts may be a bind mount).
    grep -v " $NAME # ferry bench-scale\$" /etc/hosts >"$W/hosts" || true
    cat "$W/hosts" >/etc/hosts
  fi
  rm -rf "$W"
}
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
metric() { # metric HTTP NAME: the value of an unlabelled series
  curl -s "http://$1/metrics" | awk -v n="$2" '$1==n{printf "%.0f\n", $2}'
}
# mem HTTP PID [nogc]: after a forced GC (unless nogc: while the load is
# measured), "rss heap_inuse stack_inuse goroutines".
mem() {
  [[ ${3:-} == nogc ]] || curl -s -o /dev/null "http://$1/debug/pprof/heap?gc=1"
  local m
  m=$(curl -s "http://$1/metrics")
  echo "$(awk '/^VmRSS/{print $2*1024}' "/proc/$2/status")" \
    "$(awk '$1=="go_memstats_heap_inuse_bytes"{printf "%.0f", $2}' <<<"$m")" \
    "$(awk '$1=="go_memstats_stack_inuse_bytes"{printf "%.0f", $2}' <<<"$m")" \
    "$(awk '$1=="go_goroutines"{printf "%.0f", $2}' <<<"$m")"
}
wait_http() { for _ in $(seq 100); do curl -sf "http://$1/readyz" >/dev/null && return 0; sleep 0.1; done; echo "no /readyz at $1" >&2; return 1; }
wait_line() { # wait_line FILE PATTERN PID
  until grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || { echo "loadgen exited:" >&2; cat "$1" >&2; return 1; }
    sleep 0.2
  done
}
aggregator_config() { # FILE LISTEN HTTP [extra yaml]
  cat >"$1" <<YAML
listen: $2
http: $3
log: { level: warn }
max_connections: 4000
${4:-}
YAML
}

part_a() {
  echo "== (a) one aggregator, $STREAMS streams, a batch of $EVENTS events every $INTERVAL (±50%) each; sink file:/dev/null, buffer $BUFFER"
  local sink="sinks: [ { type: file, path: /dev/null, buffer: memory } ]"
  if [[ $BUFFER == disk ]]; then
    sink="sinks: [ { type: file, path: /dev/null, buffer: disk } ]
buffer: { dir: $W/buffer }"
  fi
  aggregator_config "$W/a.yaml" 127.0.0.1:18410 127.0.0.1:18411 "$sink"
  FERRY_PPROF=1 "$AGG" --config "$W/a.yaml" 2>"$W/a.log" &
  local agg=$!
  wait_http 127.0.0.1:18411
  sleep 2
  local base idle1 idle2 idle3
  base=$(mem 127.0.0.1:18411 $agg)
  "$BIN/loadgen" -target 127.0.0.1:18410 -streams "$STREAMS" -interval "$INTERVAL" -events "$EVENTS" \
    -ramp 10s -idle "${IDLE}s" -duration "${DURATION}s" -warmup 5s -window 10s >"$W/lg-a.out" 2>"$W/lg-a.err" &
  local lg=$!
  wait_line "$W/lg-a.out" '^READY' $lg
  sleep 5
  idle1=$(mem 127.0.0.1:18411 $agg); sleep 3
  idle2=$(mem 127.0.0.1:18411 $agg); sleep 3
  idle3=$(mem 127.0.0.1:18411 $agg)
  if grep -q '^TRICKLE' "$W/lg-a.out"; then
    echo "warning: IDLE=$IDLE is too short: the idle readings overlap the trickle" >&2
  fi
  local conns
  conns=$(metric 127.0.0.1:18411 ferry_aggregator_connections_open)
  local cpu_agg0 cpu_lg0
  wait_line "$W/lg-a.out" '^TRICKLE' $lg
  cpu_agg0=$(cpu $agg); cpu_lg0=$(cpu $lg)
  local busy
  sleep $((DURATION / 2))
  busy=$(mem 127.0.0.1:18411 $agg nogc)
  local cpu_agg1 cpu_lg1
  cpu_agg1=$(cpu $agg); cpu_lg1=$(cpu $lg)
  wait $lg || { cat "$W/lg-a.err" >&2; return 1; }
  local hwm
  hwm=$(awk '/^VmHWM/{print $2*1024}' "/proc/$agg/status")
  cat "$W/lg-a.out"
  python3 - "$STREAMS" "$conns" "$base" "$idle1" "$idle2" "$idle3" "$busy" "$hwm" \
    "$cpu_agg0" "$cpu_agg1" "$cpu_lg0" "$cpu_lg1" "$((DURATION / 2))" <<'PY'
import sys
a = sys.argv[1:]
n, conns = int(a[0]), int(a[1])
base, idles, busy = [list(map(int, x.split())) for x in [a[2]]][0], [list(map(int, x.split())) for x in a[3:6]], list(map(int, a[6].split()))
hwm = int(a[7]); ca0, ca1, cl0, cl1, secs = map(float, a[8:13])
K = 1024
def per(i, vals): return [ (v[i] - base[i]) / n / K for v in vals ]
def rng(xs): return f"{min(xs):.1f}-{max(xs):.1f}" if max(xs)-min(xs) >= 0.05 else f"{xs[0]:.1f}"
print()
print(f"| one aggregator, {n} streams ({conns} connections open) | 0 streams | {n} idle streams (3 readings) | per idle stream | trickling |")
print("|---|---|---|---|---|")
rows = [("RSS", 0), ("Go heap in use", 1), ("goroutine stacks", 2)]
for name, i in rows:
    print(f"| {name} | {base[i]/K/K:.1f} MiB | {rng([v[i]/K/K for v in idles])} MiB | {rng(per(i, idles))} KiB | {busy[i]/K/K:.1f} MiB |")
hs = [(v[1]+v[2]-base[1]-base[2])/n/K for v in idles]
print(f"| heap + stacks | | | {rng(hs)} KiB | |")
print(f"| goroutines | {base[3]} | {idles[0][3]} | {(idles[0][3]-base[3])/n:.1f} | {busy[3]} |")
print(f"| peak RSS (VmHWM) | | | | {hwm/K/K:.1f} MiB |")
print(f"| CPU over {secs:.0f}s of trickle | aggregator {ca1-ca0:.2f} CPU-s ({100*(ca1-ca0)/secs:.0f}% of a core) | loadgen {cl1-cl0:.2f} CPU-s ({100*(cl1-cl0)/secs:.0f}% of a core) | | |")
PY
  grep -q 'Error\|error' "$W/a.log" && { echo "aggregator log:"; grep -i error "$W/a.log" | head; } || true
  kill -TERM $agg; wait $agg || true
}

part_b() {
  echo
  echo "== (b) three replicas 127.0.0.{1,2,3}:18420 behind dns:///$NAME:18420 (round_robin), max_connection_age $AGE"
  if [[ $(id -u) != 0 ]]; then echo "skipped: adding $NAME to /etc/hosts needs root"; return 0; fi
  # The name lists replica 1 only; 2 and 3 are added as they start (as a
  # headless Service lists a new pod once it is ready): the agents learn
  # them by resolving the name again, which gRPC does when a connection
  # closes (max_connection_age), at most every 30 s.
  echo "127.0.0.1 $NAME # ferry bench-scale" >>/etc/hosts
  hosts_added=1
  local pids=() i
  for i in 1 2 3; do
    aggregator_config "$W/r$i.yaml" "127.0.0.$i:18420" "127.0.0.$i:18421" \
      "max_connection_age: $AGE
max_connection_age_grace: 10s
sinks: [ { type: file, path: /dev/null, buffer: memory } ]"
  done
  FERRY_PPROF=1 "$AGG" --config "$W/r1.yaml" 2>"$W/r1.log" &
  pids[1]=$!
  wait_http 127.0.0.1:18421
  local total=$((DURATION + 60))
  "$BIN/loadgen" -target "dns:///$NAME:18420" -streams "$STREAMS" -interval "$INTERVAL" -events "$EVENTS" \
    -ramp 10s -duration "${total}s" -warmup 5s -window 10s >"$W/lg-b.out" 2>"$W/lg-b.err" &
  local lg=$!
  wait_line "$W/lg-b.out" '^TRICKLE' $lg
  echo "all $STREAMS streams open on replica 1; starting replicas 2 and 3"
  for i in 2 3; do
    FERRY_PPROF=1 "$AGG" --config "$W/r$i.yaml" 2>"$W/r$i.log" &
    pids[i]=$!
  done
  wait_http 127.0.0.2:18421; wait_http 127.0.0.3:18421
  for i in 2 3; do echo "127.0.0.$i $NAME # ferry bench-scale" >>/etc/hosts; done
  sleep $((total - WINDOW - 5))
  local before=() after=() open=() streams=()
  for i in 1 2 3; do before[i]=$(metric 127.0.0.$i:18421 ferry_aggregator_events_acked_total); done
  sleep "$WINDOW"
  for i in 1 2 3; do
    after[i]=$(metric 127.0.0.$i:18421 ferry_aggregator_events_acked_total)
    open[i]=$(metric 127.0.0.$i:18421 ferry_aggregator_connections_open)
  done
  local mems=()
  for i in 1 2 3; do mems[i]=$(mem 127.0.0.$i:18421 ${pids[i]}); done
  wait $lg || { cat "$W/lg-b.err" >&2; return 1; }
  cat "$W/lg-b.out"
  python3 - "$WINDOW" \
    "${before[1]} ${after[1]} ${open[1]} ${mems[1]}" \
    "${before[2]} ${after[2]} ${open[2]} ${mems[2]}" \
    "${before[3]} ${after[3]} ${open[3]} ${mems[3]}" <<'PY'
import sys
win = int(sys.argv[1])
rows = [list(map(int, r.split())) for r in sys.argv[2:5]]
d = [r[1] - r[0] for r in rows]
mean = sum(d) / 3
print()
print(f"| replica | events acked in the last {win}s | share | deviation from mean | connections open | RSS | heap in use |")
print("|---|---|---|---|---|---|---|")
for i, r in enumerate(rows):
    print(f"| 127.0.0.{i+1} | {d[i]} | {100*d[i]/max(sum(d),1):.1f}% | {100*(d[i]-mean)/mean:+.1f}% | {r[2]} | {r[3]/2**20:.1f} MiB | {r[4]/2**20:.1f} MiB |")
worst = max(abs(x - mean) / mean for x in d) * 100
print(f"max deviation {worst:.1f}% (target ±20%): {'PASS' if worst <= 20 else 'FAIL'}")
PY
  for i in 1 2 3; do kill -TERM ${pids[i]}; done
  wait "${pids[@]}" 2>/dev/null || true
}

[[ $PART == *a* ]] && part_a
[[ $PART == *b* ]] && part_b
exit 0
