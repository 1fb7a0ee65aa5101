#!/usr/bin/env bash
# kubectl against the fake API server: discovery, create, apply, annotate, get -o json, get -w, delete; over plain HTTP
# and over TLS with a bearer token. Fails (never skips) when kubectl is missing: tools/ensure-deps.sh installs it.
# Works with the kubectl Debian 12 installs (kubernetes-client 1.20: OpenAPI v2 protobuf) and with current ones
# (1.32: OpenAPI v3); pick one with `bazel test --test_env=KUBECTL=/path/to/kubectl //simulator/apiserver:kubectl_test`.
set -euo pipefail

KUBECTL="${KUBECTL:-/usr/bin/kubectl}"
if [[ ! -x "$KUBECTL" ]]; then
  KUBECTL="$(command -v kubectl || true)"
fi
if [[ -z "$KUBECTL" || ! -x "$KUBECTL" ]]; then
  echo "FAIL: kubectl not found (install Debian's kubernetes-client, e.g. via tools/ensure-deps.sh)" >&2
  exit 1
fi
APISERVER="$1"
export HOME="$TEST_TMPDIR"  # kubectl's discovery cache
fail() { echo "FAIL: $*" >&2; exit 1; }

run_suite() {
  local mode="$1"; shift
  local dir="$TEST_TMPDIR/$mode"
  mkdir -p "$dir"
  "$APISERVER" --listen=127.0.0.1:0 --write_kubeconfig="$dir/kubeconfig" --nodes=node-1 "$@" >"$dir/server.out" 2>&1 &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" RETURN
  for _ in $(seq 100); do grep -q serving "$dir/server.out" && break; sleep 0.05; done
  grep -q serving "$dir/server.out" || fail "$mode: server did not start: $(cat "$dir/server.out")"
  export KUBECONFIG="$dir/kubeconfig"
  local k=("$KUBECTL" --request-timeout=10s)

  "${k[@]}" get ns | tee "$dir/ns.out"
  grep -q '^default  *Active' "$dir/ns.out" || fail "$mode: get ns"

  cat >"$dir/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: nginx
YAML
  "${k[@]}" create -f "$dir/pod.yaml"
  sed 's/app: web}/app: web, tier: front}/' "$dir/pod.yaml" >"$dir/pod2.yaml"
  "${k[@]}" apply -f "$dir/pod2.yaml"
  [[ "$("${k[@]}" get pod web -o jsonpath='{.metadata.labels.tier}')" == front ]] || fail "$mode: apply did not merge"
  "${k[@]}" annotate pod web example.com/note=hello
  "${k[@]}" get pods -o json >"$dir/pods.json"
  grep -q '"example.com/note": "hello"' "$dir/pods.json" || fail "$mode: annotation missing in get -o json"
  grep -q '"nodeName": "node-1"' "$dir/pods.json" || fail "$mode: scheduler stand-in did not bind"
  [[ "$("${k[@]}" get pods -l 'tier in (front),app' -o name)" == pod/web ]] || fail "$mode: label selector"
  [[ -z "$("${k[@]}" get pods -l 'tier!=front' -o name)" ]] || fail "$mode: != selector"
  [[ "$("${k[@]}" get pods -A --field-selector spec.nodeName=node-1 -o name)" == pod/web ]] || fail "$mode: field selector"
  "${k[@]}" get nodes | grep -q '^node-1 ' || fail "$mode: get nodes"
  "${k[@]}" get pods -o wide | tee "$dir/wide.out"
  grep -q '^web  *0/1  *Pending' "$dir/wide.out" || fail "$mode: table output"

  # get -w: the initial row, then one row per change.
  timeout 5 "${k[@]}" get pods -w >"$dir/watch.out" 2>&1 &
  local wpid=$!
  sleep 1
  "${k[@]}" annotate pod web example.com/second=yes
  "${k[@]}" delete pod web
  wait $wpid || true
  cat "$dir/watch.out"
  [[ "$(grep -c '^web ' "$dir/watch.out")" -ge 3 ]] || fail "$mode: get -w saw fewer than 3 rows"

  if "${k[@]}" get pod web 2>"$dir/gone.err"; then fail "$mode: pod still there"; fi
  grep -q 'NotFound' "$dir/gone.err" || fail "$mode: expected NotFound, got $(cat "$dir/gone.err")"
  echo "$mode: OK"
}

run_suite plain
run_suite tls --tls --token=kubectl-test-token
echo PASS
