#!/usr/bin/env bash
# Lints and renders the Helm chart with the real Helm 4 (installed by tools/ensure-npm.sh into
# $PNC_NPM_DIR/bin; tools/test.sh passes PNC_NPM_DIR to tests) and checks the rendered manifests
# (charts/chart_test.py). Without helm: FAIL in CI (CI=true) or as root, where it must run; elsewhere a
# reported skip.
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
# Under bazel test, the chart and the checker are runfiles next to this script.
[ -n "${TEST_SRCDIR:-}" ] && src="$TEST_SRCDIR/$TEST_WORKSPACE/charts"
if [ "$(id -u)" -eq 0 ]; then default=/var/cache/istio-pnc/npm; else default="${HOME:-/nonexistent}/.cache/istio-pnc/npm"; fi
npm_dir="${PNC_NPM_DIR:-$default}"
helm="$npm_dir/bin/helm"
if [ ! -x "$helm" ]; then
  msg="helm not found at $helm (run tools/ensure-npm.sh; tools/test.sh passes --test_env=PNC_NPM_DIR=...)"
  if [ "${CI:-}" = "true" ] || [ "$(id -u)" -eq 0 ]; then
    echo "FAIL: $msg" >&2
    exit 1
  fi
  echo "SKIP (not root, not CI): $msg"
  exit 0
fi
command -v python3 >/dev/null || { echo "FAIL: python3 missing (tools/ensure-deps.sh installs it)" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL: python3-yaml missing (tools/ensure-deps.sh installs it)" >&2; exit 1; }
work="${TEST_TMPDIR:-$(mktemp -d)}/chart"
rm -rf "$work" && mkdir -p "$work"
cp -rL "$src/istio-pod-network-controller" "$work/"
# Helm writes its config/cache/data under these; keep them in the test's scratch space. No cluster is contacted.
export HELM_CACHE_HOME="$work/helm-cache" HELM_CONFIG_HOME="$work/helm-config" HELM_DATA_HOME="$work/helm-data"
export KUBECONFIG="$work/no-kubeconfig"
exec python3 "$src/chart_test.py" "$helm" "$work/istio-pod-network-controller"
