#!/usr/bin/env bash
# Renders the Helm chart for both distributions and checks the manifests (charts/render: Go text/template + Sprig,
# the libraries Helm is built on, from Debian). Where a real `helm` is installed it also runs `helm lint` and
# `helm template` for both distributions.
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
# Under bazel test, the chart and renderer are runfiles next to this script.
[ -n "${TEST_SRCDIR:-}" ] && src="$TEST_SRCDIR/$TEST_WORKSPACE/charts"
work="${TEST_TMPDIR:-$(mktemp -d)}/chart"
rm -rf "$work" && mkdir -p "$work"
cp -rL "$src/render" "$src/istio-pod-network-controller" "$work/"
export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" GOFLAGS=-buildvcs=false
export CHART_DIR="$work/istio-pod-network-controller"
command -v go >/dev/null || { echo "FAIL: go is not installed (tools/ensure-deps.sh installs golang-go)"; exit 1; }
(cd "$work/render" && go test -count=1 -v . )
if command -v helm >/dev/null; then
  helm lint "$CHART_DIR" --set kubernetesDistribution=OpenShift
  helm lint "$CHART_DIR" --set kubernetesDistribution=Kubernetes
  helm template t "$CHART_DIR" --set kubernetesDistribution=OpenShift >/dev/null
else
  echo "note: helm is not installed here; rendered with charts/render only"
fi
