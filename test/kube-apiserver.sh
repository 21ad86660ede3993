#!/usr/bin/env bash
# A real, throw-away Kubernetes API server (kube-apiserver + etcd) for Ferry's tests.
#
#   bash test/kube-apiserver.sh build|start|stop|status|url|kubeconfig [admin|agent|limited]
#                               |token [admin|agent|limited]|apiserver-stop|apiserver-start
#
# build       build kube-apiserver $VERSION once from the Go module proxy (a scratch
#             module requiring k8s.io/kubernetes with one replace per staging module,
#             version stamped) and cache it under /var/cache/ferry/kube-apiserver-$VERSION/.
#             start builds it when missing (6-10 minutes on 2 cores).
# start       install Debian's etcd-server when missing, start etcd and kube-apiserver on
#             127.0.0.1 with a fresh data directory and three bearer tokens: admin
#             (system:masters), agent (user ferry-agent) and limited (user
#             ferry-limited); the last two have no RBAC bindings until a test grants
#             them some. Writes a kubeconfig per token, waits until /readyz answers.
#             No-op if it already runs and is ready.
# stop        kill both (pidfiles), wait for them to exit, remove the state directory.
# status      print what runs; exit 0 when running and ready, 3 otherwise.
# url         print https://127.0.0.1:PORT
# kubeconfig  print the path of the kubeconfig of a token (default admin); the files
#             exist while it runs (TLS is not verified: a throw-away server).
# token       print a bearer token (default admin).
# apiserver-stop   kill kube-apiserver (SIGKILL) only, etcd and the data stay: an outage.
# apiserver-start  start it again on the same port with the same etcd and tokens.
#
# Runs as root (apt-get). State lives in ${FERRY_KUBE_STATE_DIR:-/tmp/ferry-kube}/;
# set FERRY_KUBE_STATE_DIR, FERRY_KUBE_PORT and FERRY_KUBE_ETCD_PORT (etcd's peer
# port is the next one) to run a second, private instance beside the shared one.
set -euo pipefail

VERSION=${FERRY_KUBE_VERSION:-v1.37.2}
CACHE=/var/cache/ferry
BIN_DIR=$CACHE/kube-apiserver-$VERSION
BIN=$BIN_DIR/kube-apiserver
STATE_DIR=${FERRY_KUBE_STATE_DIR:-/tmp/ferry-kube}
STATE=$STATE_DIR/state
PORT=${FERRY_KUBE_PORT:-6443}
ETCD_PORT=${FERRY_KUBE_ETCD_PORT:-2479}
WAIT_SECONDS=60

log() { echo "kube-apiserver.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# do_build builds $BIN unless it is cached. It takes its own lock so that two
# starts (or a start and an explicit build) never build twice.
do_build() {
	mkdir -p "$BIN_DIR"
	exec 8>"$BIN_DIR/build.lock"
	flock 8
	if [[ -x $BIN ]]; then
		exec 8>&-
		return 0
	fi
	command -v go >/dev/null || die "go not found"
	local staging=${VERSION/#v1./v0.} # k8s.io/api etc. are published as v0.X.Y
	local minor=${VERSION#v1.}
	minor=${minor%%.*}
	local dir
	dir=$(mktemp -d "$CACHE/kube-build.XXXXXX")
	log "building kube-apiserver $VERSION in $dir (takes 6-10 minutes on 2 cores)"
	(
		cd "$dir"
		export GOFLAGS=-mod=mod GOWORK=off
		local gomod
		gomod=$(go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
		[[ -s $gomod ]] || die "no go.mod for k8s.io/kubernetes@$VERSION from the module proxy"
		{
			echo "module ferry.test/kube-apiserver-build"
			echo
			sed -n 's/^go \([0-9.]*\)$/go \1/p' "$gomod" | head -1
			echo
			echo "require k8s.io/kubernetes $VERSION"
			echo
			echo "replace ("
			# Every staging module k8s.io/kubernetes replaces with a local path
			# is replaced by its published version instead.
			sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$gomod" |
				while read -r m; do echo "	$m => $m $staging"; done
			echo ")"
		} >go.mod
		grep -q "=> k8s.io/api $staging" go.mod || die "no staging replaces found in $gomod"
		printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
		go mod tidy >&2
		local ld="" p
		for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ld+=" -X $p.gitVersion=$VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
		done
		go build -trimpath -ldflags "-s -w$ld" -o kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver >&2
	) || {
		rm -rf "$dir"
		die "build of kube-apiserver $VERSION failed"
	}
	mv "$dir/kube-apiserver" "$BIN.tmp"
	mv "$BIN.tmp" "$BIN"
	rm -rf "$dir"
	log "built $BIN"
	exec 8>&-
}

tokens_csv() { echo "$STATE_DIR/tokens.csv"; }

# load_state sets PORT, ETCD_PORT, DATA_DIR from the state file, if any.
load_state() {
	[[ -f $STATE ]] || return 1
	# shellcheck disable=SC1090
	source "$STATE"
}

alive() { [[ -s $1 ]] && kill -0 "$(<"$1")" 2>/dev/null; }

url() { echo "https://127.0.0.1:$PORT"; }

token() { awk -F, -v u="ferry-$1" '$2 == u || ($1 != "" && u == "ferry-admin" && $2 == "admin") {print $1; exit}' "$(tokens_csv)"; }

ready() {
	[[ -f $(tokens_csv) ]] || return 1
	curl -fsSk --max-time 3 -H "Authorization: Bearer $(token admin)" "$(url)/readyz" >/dev/null 2>&1
}

ensure_etcd() {
	command -v etcd >/dev/null && return
	[[ $(id -u) -eq 0 ]] || die "etcd not found and not root: apt-get install etcd-server"
	log "installing etcd-server"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2
	# Debian's package starts a system etcd on 2379 where systemd runs; not ours.
	command -v etcd >/dev/null || die "etcd-server installed but no etcd on PATH"
}

tail_logs() {
	local f
	for f in "$DATA_DIR"/etcd.log "$DATA_DIR"/apiserver.log; do
		[[ -s $f ]] || continue
		echo "----- tail of $f" >&2
		tail -n 40 "$f" >&2
	done
}

stop_pid() { # pidfile name [signal]
	local pf=$1 pid i
	alive "$pf" || { rm -f "$pf"; return 0; }
	pid=$(<"$pf")
	kill "-${3:-TERM}" "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$2 (pid $pid) did not exit in 30 s, killing it"
		kill -9 "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$pf"
	log "stopped $2 (pid $pid)"
}

do_stop() {
	load_state || return 0
	stop_pid "$DATA_DIR/apiserver.pid" kube-apiserver
	stop_pid "$DATA_DIR/etcd.pid" etcd
	if [[ -n ${DATA_DIR:-} && $DATA_DIR == "$STATE_DIR"/data.* ]]; then
		rm -rf "$DATA_DIR"
	fi
	rm -f "$STATE" "$(tokens_csv)" "$STATE_DIR"/kubeconfig-*
}

write_kubeconfig() { # name
	local f=$STATE_DIR/kubeconfig-$1
	cat >"$f.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ferry-test
  cluster:
    server: $(url)
    insecure-skip-tls-verify: true
users:
- name: $1
  user:
    token: $(token "$1")
contexts:
- name: $1
  context:
    cluster: ferry-test
    user: $1
current-context: $1
KC
	chmod 644 "$f.tmp"
	mv "$f.tmp" "$f"
}

start_apiserver() {
	log "starting kube-apiserver $VERSION on $(url)"
	setsid "$BIN" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address=127.0.0.1 --secure-port="$PORT" --advertise-address=127.0.0.1 \
		--endpoint-reconciler-type=none --cert-dir="$DATA_DIR/certs" \
		--service-cluster-ip-range=10.96.0.0/16 \
		--service-account-issuer=https://kubernetes.default.svc \
		--service-account-key-file="$DATA_DIR/sa.pub" --service-account-signing-key-file="$DATA_DIR/sa.key" \
		--token-auth-file="$(tokens_csv)" --authorization-mode=RBAC \
		>>"$DATA_DIR/apiserver.log" 2>&1 </dev/null 9>&- 8>&- &
	echo $! >"$DATA_DIR/apiserver.pid"
	local deadline=$((SECONDS + WAIT_SECONDS)) started=$SECONDS
	while ((SECONDS < deadline)); do
		if ready; then
			log "ready at $(url) after $((SECONDS - started))s"
			return 0
		fi
		alive "$DATA_DIR/apiserver.pid" || {
			log "kube-apiserver exited during startup"
			tail_logs
			exit 1
		}
		sleep 0.5
	done
	log "not ready after ${WAIT_SECONDS}s"
	tail_logs
	exit 1
}

do_start() {
	if load_state; then
		if alive "$DATA_DIR/etcd.pid" && alive "$DATA_DIR/apiserver.pid" && ready; then
			log "already running at $(url)"
			return 0
		fi
		log "stale or unready instance, restarting"
		do_stop
	fi
	PORT=${FERRY_KUBE_PORT:-6443}
	ETCD_PORT=${FERRY_KUBE_ETCD_PORT:-2479}
	if curl -sk --max-time 2 -o /dev/null "$(url)/"; then
		die "port $PORT is in use by something this script did not start; set FERRY_KUBE_PORT"
	fi
	command -v curl >/dev/null || die "curl not found"
	command -v openssl >/dev/null || die "openssl not found"
	do_build
	ensure_etcd
	DATA_DIR=$(mktemp -d "$STATE_DIR/data.XXXXXX")
	printf 'PORT=%q\nETCD_PORT=%q\nDATA_DIR=%q\n' "$PORT" "$ETCD_PORT" "$DATA_DIR" >"$STATE"
	openssl genrsa -out "$DATA_DIR/sa.key" 2048 2>/dev/null
	openssl rsa -in "$DATA_DIR/sa.key" -pubout -out "$DATA_DIR/sa.pub" 2>/dev/null
	local t
	{
		for t in admin agent limited; do
			local tok
			tok=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
			if [[ $t == admin ]]; then
				echo "$tok,admin,admin,system:masters"
			else
				echo "$tok,ferry-$t,ferry-$t"
			fi
		done
	} >"$(tokens_csv)"
	chmod 600 "$(tokens_csv)"

	local peer=$((ETCD_PORT + 1))
	log "starting etcd on 127.0.0.1:$ETCD_PORT, data in $DATA_DIR"
	setsid etcd --name ferry --data-dir "$DATA_DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "ferry=http://127.0.0.1:$peer" \
		>>"$DATA_DIR/etcd.log" 2>&1 </dev/null 9>&- 8>&- &
	echo $! >"$DATA_DIR/etcd.pid"
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fs --max-time 1 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break
		alive "$DATA_DIR/etcd.pid" || { log "etcd exited during startup"; tail_logs; exit 1; }
		sleep 0.2
	done
	start_apiserver
	for t in admin agent limited; do write_kubeconfig "$t"; done
}

do_status() {
	if load_state && alive "$DATA_DIR/etcd.pid" && alive "$DATA_DIR/apiserver.pid"; then
		if ready; then
			echo "running apiserver=$(<"$DATA_DIR/apiserver.pid") etcd=$(<"$DATA_DIR/etcd.pid") url=$(url) data=$DATA_DIR"
			return 0
		fi
		echo "running url=$(url) data=$DATA_DIR NOT READY"
		return 3
	fi
	echo "stopped"
	return 3
}

case ${1:-} in
build) do_build ;;
start)
	mkdir -p "$STATE_DIR"
	exec 9>"$STATE_DIR/lock"
	flock 9 # one start/stop at a time (parallel test packages)
	do_start
	;;
stop)
	mkdir -p "$STATE_DIR"
	exec 9>"$STATE_DIR/lock"
	flock 9
	do_stop
	;;
status) do_status ;;
url)
	load_state || true
	url
	;;
kubeconfig)
	load_state || die "not running"
	echo "$STATE_DIR/kubeconfig-${2:-admin}"
	;;
token)
	load_state || die "not running"
	token "${2:-admin}"
	;;
apiserver-stop)
	load_state || die "not running"
	# SIGKILL: an outage at once (SIGTERM waits up to a minute for open watches).
	stop_pid "$DATA_DIR/apiserver.pid" kube-apiserver KILL
	;;
apiserver-start)
	load_state || die "not running"
	alive "$DATA_DIR/apiserver.pid" && exit 0
	start_apiserver
	;;
*)
	echo "usage: $0 build|start|stop|status|url|kubeconfig [admin|agent|limited]|token [admin|agent|limited]|apiserver-stop|apiserver-start" >&2
	exit 2
	;;
esac
