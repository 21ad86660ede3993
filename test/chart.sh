#!/usr/bin/env bash
# Checks the Helm chart: helm lint, helm template, and the agent and
# aggregator configurations it renders pass the binaries' own `validate`.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=(go run helm.sh/helm/v3/cmd/helm@v3.22.0)
BIN=${FERRY_BIN:-$PWD/bin}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"${HELM[@]}" lint --strict charts/ferry
"${HELM[@]}" template ferry charts/ferry >"$out/all.yaml"
python3 - "$out" <<'PY'
import sys, re
out = sys.argv[1]
text = open(out + "/all.yaml").read()
for name in ("agent.yaml", "aggregator.yaml"):
    m = re.search(r"^  %s: \|\n((?:    .*\n|\n)+)" % re.escape(name), text, re.M)
    if not m:
        sys.exit("chart renders no " + name)
    body = "".join(l[4:] + "\n" for l in m.group(1).splitlines())
    open(out + "/" + name, "w").write(body)
PY
NODE_NAME=chart-test "$BIN/agent" validate --config "$out/agent.yaml"
"$BIN/aggregator" validate --config "$out/aggregator.yaml"
echo "chart: lint, template and rendered configs ok"
