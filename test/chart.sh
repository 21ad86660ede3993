#!/usr/bin/env bash
# Checks the Helm chart charts/ferry (`make chart`):
#   - helm lint --strict, once per ci/*-values.yaml scenario;
#   - the chart README is what tools/chartdoc makes of values.yaml;
#   - go test ./test/chart/: golden renderings of the scenarios, invariants of
#     the rendered objects, the rendered configurations pass the binaries'
#     `validate`, and helm install / upgrade / uninstall into a real
#     kube-apiserver (test/kube-apiserver.sh; started here when none runs,
#     and then stopped again).
# Helm $HELM_VERSION is built once from the Go module proxy and cached under
# /var/cache/ferry/helm-$HELM_VERSION/.
# kubeconform is not run: it needs the Kubernetes JSON schemas, which are
# not available offline; the install into the real API server (every object
# read back and compared field by field) is the stronger check.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_VERSION=v3.22.0
HELM_DIR=/var/cache/ferry/helm-$HELM_VERSION
HELM=$HELM_DIR/helm
BIN=${FERRY_BIN:-$PWD/bin}

if [[ ! -x $HELM ]]; then
	mkdir -p "$HELM_DIR"
	echo "chart: building helm $HELM_VERSION into $HELM_DIR"
	GOBIN=$HELM_DIR GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

for values in charts/ferry/ci/*-values.yaml; do
	"$HELM" lint --strict charts/ferry -f "$values"
done

if ! go run ./tools/chartdoc -check; then
	echo "chart: charts/ferry/README.md is stale: run go run ./tools/chartdoc" >&2
	exit 1
fi

started=
if [[ -z ${FERRY_KUBE_ADMIN_KUBECONFIG:-} ]]; then
	if ! bash test/kube-apiserver.sh status >/dev/null; then
		bash test/kube-apiserver.sh start
		started=1
	fi
	FERRY_KUBE_ADMIN_KUBECONFIG=$(bash test/kube-apiserver.sh kubeconfig admin)
fi
rc=0
FERRY_HELM=$HELM FERRY_BIN=$BIN FERRY_KUBE_ADMIN_KUBECONFIG=$FERRY_KUBE_ADMIN_KUBECONFIG \
	go test -count=1 ./test/chart/ || rc=$?
if [[ -n $started ]]; then
	bash test/kube-apiserver.sh stop
fi
((rc == 0)) || exit "$rc"
echo "chart: lint, README, golden renderings, rendered objects and configs, install/upgrade/uninstall ok"
