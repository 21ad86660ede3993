#!/usr/bin/env bash
# A real, throw-away Elasticsearch for Ferry's tests.
#
#   bash test/elasticsearch.sh start|stop|url|status|pid|restart
#
# start   fetch the integ-test distribution from Maven Central (cached, unzipped
#         under /var/cache/ferry/), create the system user ferry-es, and run it
#         on 127.0.0.1:${FERRY_ES_PORT:-9201} with security off and a fresh
#         data directory; wait until the cluster is yellow. No-op if it already
#         runs and is healthy.
# stop    kill it (pidfile), wait for it to exit, remove its data directory.
# url     print http://127.0.0.1:PORT
# status  print what runs; exit 0 when running and healthy, 3 otherwise.
# pid     print the pid of the Elasticsearch process (the JVM); exit 3 if it
#         does not run. Tests stop (SIGSTOP) and continue (SIGCONT) it.
# restart kill -9 the running instance (even a stopped one) and start it again
#         on the same port with the SAME data directory; wait until yellow.
#         What it acknowledged before the kill must still be there.
#
# Runs as root (it creates a user and switches to it). Needs mvn, unzip, curl and
# a JDK 17+ under /usr/lib/jvm. State lives in ${FERRY_ES_STATE_DIR:-/tmp/ferry-es}/:
# set FERRY_ES_STATE_DIR and FERRY_ES_PORT to run a second, private instance
# (e.g. for a test that stops or kills it) beside the shared one.
set -euo pipefail

VERSIONS=(${FERRY_ES_VERSION:-} 8.19.7 8.19.6 8.18.8 8.17.10)
CACHE=/var/cache/ferry
STATE_DIR=${FERRY_ES_STATE_DIR:-/tmp/ferry-es}
STATE=$STATE_DIR/state
ES_USER=ferry-es
PORT=${FERRY_ES_PORT:-9201}
WAIT_SECONDS=120

log() { echo "elasticsearch.sh: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/lock"
flock 9 # one start/stop at a time (parallel test packages)

# load_state sets PID_FILE, DATA_DIR, PORT from the state file, if any.
load_state() {
	[[ -f $STATE ]] || return 1
	# shellcheck disable=SC1090
	source "$STATE"
}

es_pid() {
	[[ -n ${PID_FILE:-} && -s $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

url() { echo "http://127.0.0.1:$PORT"; }

healthy() {
	curl -fsS --max-time 5 "$(url)/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1
}

# find_java prints a JDK 17+ home.
find_java() {
	local preferred=/usr/lib/jvm/java-17-openjdk-amd64
	if [[ -x $preferred/bin/java ]]; then
		echo "$preferred"
		return
	fi
	local j v
	for j in /usr/lib/jvm/*/; do
		j=${j%/}
		[[ -x $j/bin/java ]] || continue
		v=$("$j/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
		if [[ -n $v && $v -ge 17 ]]; then
			echo "$j"
			return
		fi
	done
	die "no JDK 17+ under /usr/lib/jvm"
}

# fetch prints the ES_HOME of a cached or freshly downloaded distribution.
fetch() {
	local v home out
	for v in "${VERSIONS[@]}"; do
		home=$CACHE/elasticsearch-$v
		if [[ -x $home/bin/elasticsearch ]]; then
			echo "$home"
			return
		fi
	done
	command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
	command -v unzip >/dev/null || die "unzip not found (apt-get install unzip)"
	mkdir -p "$CACHE"
	chmod 755 "$CACHE"
	for v in "${VERSIONS[@]}"; do
		home=$CACHE/elasticsearch-$v
		local dl
		dl=$(mktemp -d "$CACHE/download.XXXXXX")
		log "fetching org.elasticsearch.distribution.integ-test-zip:elasticsearch:$v:zip"
		if ! out=$(mvn -q -B -Dstyle.color=never dependency:copy \
			-Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$v:zip" \
			-DoutputDirectory="$dl" 2>&1); then
			log "version $v failed: mvn said:"
			echo "$out" >&2
			rm -rf "$dl"
			continue
		fi
		if ! out=$(unzip -q "$dl/elasticsearch-$v.zip" -d "$dl/x" 2>&1); then
			log "version $v failed: unzip said:"
			echo "$out" >&2
			rm -rf "$dl"
			continue
		fi
		if [[ ! -x $dl/x/elasticsearch-$v/bin/elasticsearch ]]; then
			log "version $v failed: no elasticsearch-$v/bin/elasticsearch in the zip"
			rm -rf "$dl"
			continue
		fi
		rm -rf "$home"
		mv "$dl/x/elasticsearch-$v" "$home"
		rm -rf "$dl"
		echo "$home"
		return
	done
	die "could not fetch any of: ${VERSIONS[*]}"
}

ensure_user() {
	id -u "$ES_USER" >/dev/null 2>&1 && return
	useradd -r -M -s /usr/sbin/nologin "$ES_USER"
}

tail_logs() {
	local f
	for f in "$DATA_DIR/start.out" "$DATA_DIR"/logs/*.log; do
		[[ -s $f ]] || continue
		echo "----- tail of $f" >&2
		tail -n 60 "$f" >&2
	done
}

do_stop() {
	load_state || return 0
	local pid i
	if pid=$(es_pid); then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 600; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not exit in 60 s, killing it"
			kill -9 "$pid" 2>/dev/null || true
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		fi
		log "stopped pid $pid"
	fi
	if [[ -n ${DATA_DIR:-} && $DATA_DIR == /tmp/ferry-es-data.* ]]; then
		rm -rf "$DATA_DIR"
	fi
	rm -f "$STATE"
	PID_FILE= DATA_DIR=
}

do_start() {
	if load_state; then
		if es_pid >/dev/null && healthy; then
			log "already running at $(url)"
			return 0
		fi
		log "stale or unhealthy instance, restarting"
		do_stop
	fi
	PORT=${FERRY_ES_PORT:-9201}
	if curl -s --max-time 2 -o /dev/null "$(url)/"; then
		die "port $PORT is in use by something this script did not start; set FERRY_ES_PORT"
	fi
	[[ $(id -u) -eq 0 ]] || die "run as root (it creates the user $ES_USER and switches to it)"
	command -v curl >/dev/null || die "curl not found"
	local home java
	home=$(fetch)
	java=$(find_java)
	ensure_user
	chown -R "$ES_USER:" "$home" # it writes its keystore into config/

	DATA_DIR=$(mktemp -d /tmp/ferry-es-data.XXXXXX)
	mkdir -p "$DATA_DIR/data" "$DATA_DIR/logs"
	chown -R "$ES_USER:" "$DATA_DIR"
	PID_FILE=$DATA_DIR/es.pid
	printf 'PID_FILE=%q\nDATA_DIR=%q\nPORT=%q\n' "$PID_FILE" "$DATA_DIR" "$PORT" >"$STATE"
	launch "$home" "$java"
}

# launch starts Elasticsearch from ES_HOME $1 with JDK $2 on PORT with the
# data directory DATA_DIR, and waits until the cluster is yellow.
launch() {
	local home=$1 java=$2
	log "starting $(basename "$home") with $java on $(url), data in $DATA_DIR"
	if ! runuser -u "$ES_USER" -- env ES_JAVA_HOME="$java" ES_JAVA_OPTS="-Xms768m -Xmx768m" \
		"$home/bin/elasticsearch" -d -p "$PID_FILE" \
		-Ediscovery.type=single-node -Ehttp.port="$PORT" -Enetwork.host=127.0.0.1 \
		-Expack.security.enabled=false -Ecluster.routing.allocation.disk.threshold_enabled=false \
		-Epath.data="$DATA_DIR/data" -Epath.logs="$DATA_DIR/logs" \
		>>"$DATA_DIR/start.out" 2>&1 9>&-; then
		log "elasticsearch did not start"
		tail_logs
		exit 1
	fi
	local deadline=$((SECONDS + WAIT_SECONDS)) started=$SECONDS
	while ((SECONDS < deadline)); do
		if healthy; then
			log "ready at $(url) (pid $(es_pid)) after $((SECONDS - started))s"
			return 0
		fi
		if ((SECONDS - started > 5)) && ! es_pid >/dev/null; then
			log "elasticsearch exited during startup"
			tail_logs
			exit 1
		fi
		sleep 1
	done
	log "not healthy after ${WAIT_SECONDS}s"
	tail_logs
	exit 1
}

# do_restart kills the running instance with SIGKILL (no shutdown, no flush:
# a crash) and starts it again with the same port and data directory.
do_restart() {
	load_state || die "nothing to restart: no state in $STATE (run start first)"
	[[ -n ${DATA_DIR:-} && -d $DATA_DIR/data ]] || die "data directory ${DATA_DIR:-?} is gone"
	[[ $(id -u) -eq 0 ]] || die "run as root"
	local pid
	if pid=$(es_pid); then
		kill -9 "$pid" 2>/dev/null || true
		local i st
		for ((i = 0; i < 300; i++)); do
			st=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d " " || true)
			[[ -z $st || $st == Z* ]] && break # gone, or a zombie not reaped yet
			sleep 0.1
		done
		[[ -z $st || $st == Z* ]] || die "pid $pid survived SIGKILL for 30 s"
		log "killed pid $pid with SIGKILL"
	fi
	rm -f "$PID_FILE"
	if curl -s --max-time 2 -o /dev/null "$(url)/"; then
		die "port $PORT is still in use after the kill"
	fi
	local home java
	home=$(fetch)
	java=$(find_java)
	launch "$home" "$java"
}

do_status() {
	local pid
	if load_state && pid=$(es_pid); then
		if healthy; then
			echo "running pid=$pid url=$(url) data=$DATA_DIR health=yellow-or-green"
			return 0
		fi
		echo "running pid=$pid url=$(url) data=$DATA_DIR health=NOT READY"
		return 3
	fi
	echo "stopped"
	return 3
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
url)
	load_state || true
	url
	;;
status) do_status ;;
pid)
	load_state && es_pid || {
		echo "not running" >&2
		exit 3
	}
	;;
restart) do_restart ;;
*)
	echo "usage: $0 start|stop|url|status|pid|restart" >&2
	exit 2
	;;
esac
