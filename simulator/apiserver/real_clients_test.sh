#!/usr/bin/env bash
# Real clients against the fake API server (HTTPS + bearer token, as a cluster would serve them): kubectl 1.35 and @kubernetes/client-node from $PNC_NPM_DIR
# (tools/ensure-npm.sh installs them; tools/test.sh passes PNC_NPM_DIR). As root or with CI=true a missing
# client is a FAILURE; elsewhere the test says it skips and why.
# No pipefail: `cmd | grep -q` closes the pipe early; a failing cmd still fails the grep (no output).
set -eu
APISERVER="$1"
NODE_TEST="$2"
NPM_DIR="${PNC_NPM_DIR:-/var/cache/istio-pnc/npm}"
KUBECTL="$NPM_DIR/bin/kubectl"
fail() { echo "FAIL: $*" >&2; exit 1; }
if [[ ! -x "$KUBECTL" || ! -d "$NPM_DIR/node_modules/@kubernetes/client-node" ]] || ! command -v node >/dev/null; then
  if [[ "$(id -u)" -eq 0 || "${CI:-}" == "true" ]]; then
    fail "kubectl / @kubernetes/client-node / node missing under $NPM_DIR (run tools/ensure-npm.sh)"
  fi
  echo "SKIP: real clients not installed under $NPM_DIR (tools/ensure-npm.sh); not root and not CI"
  exit 0
fi
"$KUBECTL" version --client | grep -q 'v1\.35\.' || fail "expected kubectl 1.35: $("$KUBECTL" version --client)"
export HOME="$TEST_TMPDIR"
dir="$TEST_TMPDIR/real"
mkdir -p "$dir"
"$APISERVER" --listen=127.0.0.1:0 --write_kubeconfig="$dir/kubeconfig" --nodes=node-1 --tls --token=real-clients-token >"$dir/server.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q serving "$dir/server.out" && break; sleep 0.05; done
grep -q serving "$dir/server.out" || fail "server did not start: $(cat "$dir/server.out")"
export KUBECONFIG="$dir/kubeconfig"
k=("$KUBECTL" --request-timeout=10s)

# create a namespace from a manifest (JSON body), get/list.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n' >"$dir/ns.yaml"
"${k[@]}" create -f "$dir/ns.yaml"
"${k[@]}" get ns team -o name | grep -qx namespace/team || fail "create ns"

cat >"$dir/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: team
  labels: {app: web}
spec:
  containers:
  - name: app
    image: nginx
YAML
# --dry-run=server must not persist.
"${k[@]}" create -f "$dir/pod.yaml" --dry-run=server -o name | grep -qx pod/web || fail "dry-run create output"
if "${k[@]}" get pod web -n team 2>/dev/null; then fail "--dry-run=server persisted the pod"; fi
# client-side apply, then wait on a jsonpath and a condition (kubectl 1.35 watches with sendInitialEvents).
"${k[@]}" apply -f "$dir/pod.yaml"
timeout 20 "${k[@]}" wait -n team --for=jsonpath='{.spec.nodeName}'=node-1 pod/web || fail "wait --for=jsonpath"
timeout 20 "${k[@]}" wait -n team --for=condition=PodScheduled pod/web || fail "wait --for=condition"
"${k[@]}" get pods -n team | grep -q '^web ' || fail "get pods"
"${k[@]}" get pods -A -l app=web -o name | grep -qx pod/web || fail "list with selector"
# get -w sees the change.
timeout 5 "${k[@]}" get pods -n team -w --output-watch-events >"$dir/watch.out" 2>&1 &
wpid=$!
sleep 1
"${k[@]}" label pod web -n team tier=front
wait $wpid || true
grep -q 'MODIFIED' "$dir/watch.out" || fail "get -w: $(cat "$dir/watch.out")"
"${k[@]}" describe pod web -n team | grep -q '^Node: *node-1' || fail "describe"
# events: an Event for the pod is listed by `kubectl events`.
cat >"$dir/event.yaml" <<'YAML'
apiVersion: v1
kind: Event
metadata: {name: web.1, namespace: team}
involvedObject: {kind: Pod, name: web, namespace: team}
reason: Tested
message: hello from the test
type: Normal
YAML
"${k[@]}" create -f "$dir/event.yaml"
"${k[@]}" events -n team | grep -q 'hello from the test' || fail "kubectl events"
# events.k8s.io/v1: the same Event resource under the other group (discovery, list/get, create, explain).
"${k[@]}" api-resources --api-group=events.k8s.io -o name | grep -qx events.events.k8s.io || fail "discovery: events.k8s.io"
"${k[@]}" get events.v1.events.k8s.io -n team -o jsonpath='{.items[*].note}' | grep -q 'hello from the test' ||
  fail "core Event not listed as events.k8s.io/v1"
cat >"$dir/event-v1.yaml" <<'YAML'
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: web.2, namespace: team}
eventTime: "2026-12-02T10:00:00.000000Z"
regarding: {kind: Pod, name: web, namespace: team}
reason: Initialized
action: Mark
note: marked by the v1 test
type: Normal
reportingController: example.com/pnc-test
reportingInstance: pnc-test-1
YAML
"${k[@]}" create -f "$dir/event-v1.yaml" -o name | grep -qx event.events.k8s.io/web.2 || fail "create events.k8s.io/v1 Event"
"${k[@]}" get events.v1.events.k8s.io web.2 -n team | grep -q 'marked by the v1 test' || fail "get events.v1.events.k8s.io (table)"
[[ "$("${k[@]}" get event web.2 -n team -o jsonpath='{.apiVersion} {.message} {.involvedObject.name}')" == "v1 marked by the v1 test web" ]] ||
  fail "events.k8s.io/v1 Event not visible as core v1"
"${k[@]}" events -n team | grep -q 'marked by the v1 test' || fail "kubectl events: events.k8s.io/v1 Event"
# validation with causes, like the real server: eventTime, reportingController, ... are required for v1 creates.
sed -e '/^eventTime:/d' -e '/^reportingController:/d' -e 's/name: web.2/name: web.3/' -e 's/type: Normal/type: Info/' \
  "$dir/event-v1.yaml" >"$dir/event-bad.yaml"
if "${k[@]}" create -f "$dir/event-bad.yaml" 2>"$dir/event-bad.err"; then fail "invalid events.k8s.io/v1 Event accepted"; fi
for want in 'eventTime: Required value' 'reportingController: Required value' 'type: Unsupported value: "Info"'; do
  grep -qF "$want" "$dir/event-bad.err" || fail "events.k8s.io validation ($want): $(cat "$dir/event-bad.err")"
done
# (explain reads RESOURCE.FIELD...: the group is chosen with --api-version, as against a real server)
"${k[@]}" explain events.note --api-version=events.k8s.io/v1 | grep -q 'FIELD: *note <string>' ||
  fail "explain events --api-version=events.k8s.io/v1"
"${k[@]}" delete events.v1.events.k8s.io web.2 -n team
if "${k[@]}" get event web.2 -n team 2>/dev/null; then fail "event deleted through events.k8s.io still served as core v1"; fi
# server-side apply: managedFields, conflicts, --force-conflicts; --dry-run=server does not persist.
sed 's/image: nginx/image: nginx:2/' "$dir/pod.yaml" >"$dir/pod2.yaml"
"${k[@]}" apply --server-side -f "$dir/pod.yaml"
"${k[@]}" get pod web -n team -o jsonpath='{.metadata.managedFields[*].operation}' | grep -q Apply || fail "no Apply managedFields"
"${k[@]}" apply --server-side --dry-run=server -f "$dir/pod2.yaml" --field-manager=other --force-conflicts
[[ "$("${k[@]}" get pod web -n team -o jsonpath='{.spec.containers[0].image}')" == nginx ]] || fail "SSA dry-run persisted"
if "${k[@]}" apply --server-side -f "$dir/pod2.yaml" --field-manager=other 2>"$dir/conflict.err"; then
  fail "SSA without --force-conflicts should conflict"
fi
grep -q 'conflict' "$dir/conflict.err" || fail "conflict message: $(cat "$dir/conflict.err")"
# diff shows the change and persists nothing.
if "${k[@]}" diff -f "$dir/pod2.yaml" >"$dir/diff.out"; then fail "diff found no difference"; fi
grep -q '^+ *- image: nginx:2' "$dir/diff.out" || fail "diff output: $(cat "$dir/diff.out")"
[[ "$("${k[@]}" get pod web -n team -o jsonpath='{.spec.containers[0].image}')" == nginx ]] || fail "diff persisted"
"${k[@]}" apply --server-side -f "$dir/pod2.yaml" --field-manager=other --force-conflicts
[[ "$("${k[@]}" get pod web -n team -o jsonpath='{.spec.containers[0].image}')" == nginx:2 ]] || fail "SSA force"
# validation: unknown fields (kubectl sends fieldValidation=Strict) and bad enums are refused with the field.
sed 's/  - name: app/  - name: app\n    bogus: 1/' "$dir/pod.yaml" | sed 's/name: web$/name: bad1/' >"$dir/unknown.yaml"
if "${k[@]}" create -f "$dir/unknown.yaml" 2>"$dir/unknown.err"; then fail "unknown field accepted"; fi
grep -q 'unknown field "spec.containers\[0\].bogus"' "$dir/unknown.err" || fail "unknown: $(cat "$dir/unknown.err")"
sed 's/^spec:/spec:\n  restartPolicy: Sometimes/' "$dir/pod.yaml" | sed 's/name: web$/name: bad2/' >"$dir/enum.yaml"
if "${k[@]}" create -f "$dir/enum.yaml" 2>"$dir/enum.err"; then fail "bad restartPolicy accepted"; fi
grep -q 'spec.restartPolicy: Unsupported value: "Sometimes"' "$dir/enum.err" || fail "enum: $(cat "$dir/enum.err")"
# explain from the OpenAPI v3 schemas.
"${k[@]}" explain pod.spec.restartPolicy | grep -q 'FIELD: *restartPolicy <string>' || fail "explain"
"${k[@]}" explain pod.spec.containers | grep -q 'image' || fail "explain containers"
# the @kubernetes/client-node informer (list+watch) and a status patch.
NODE_PATH="$NPM_DIR/node_modules" timeout 60 node "$NODE_TEST" "$KUBECONFIG" || fail "client-node test"
# delete --wait returns once the pod is gone; namespace deletion takes its objects.
timeout 30 "${k[@]}" delete pod web -n team --wait=true || fail "delete --wait"
if "${k[@]}" get pod web -n team 2>/dev/null; then fail "pod still there"; fi
timeout 30 "${k[@]}" delete ns team --wait=true || fail "delete ns --wait"
echo PASS
