#!/usr/bin/env bash
# e2e with a real container runtime (issue 11): the fake node's runtime is a private containerd 1.6 + runc + CNI
# bridge, the waiter runs as a container of the waiter image, the controller's CRI locator talks to that
# containerd. Builds the waiter image first (tools/images/build.sh --only waiter: the waiter binary alone, offline),
# then runs scenario_test.sh (the simulator's exit code and the JSON report's checks) with the runtime flags.
#   containerd_test.sh <scenario name|path> [extra simulator flags...]
# Needs root (containerd, runc, cgroups). As root or with CI=true a runtime that cannot start is a FAILURE.
set -euo pipefail
scenario="$1"
shift

runfile() {
  local rel="istio_pod_network_controller/$1"
  local base
  for base in "${RUNFILES_DIR:-}" "$0.runfiles" "${TEST_SRCDIR:-}"; do
    if [[ -n "$base" && -e "$base/$rel" ]]; then
      echo "$base/$rel"
      return
    fi
  done
  echo "containerd_test.sh: runfile $1 not found" >&2
  exit 2
}

if [[ "$(id -u)" != 0 && "${CI:-}" != true ]]; then
  echo "SKIP (not a pass): containerd needs root; not root and CI is not true" >&2
  exit 0
fi

out="${TEST_TMPDIR:-/tmp}/images"
build_log="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}/build-waiter-image.log"
# Bazel's test PATH lacks /usr/sbin (umoci, runc are found by absolute path or here).
lines=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash "$(runfile tools/images/build.sh)" --only waiter --out "$out" --no-check \
  --waiter-bin "$(runfile controller/waiter/waiter)" 2>"$build_log") || {
  echo "FAIL: building the waiter image failed:" >&2
  tail -n 30 "$build_log" >&2
  exit 1
}
archive=$(awk '$1 ~ /\/waiter\.oci\.tar$/ {print $1}' <<<"$lines")
ref=$(awk '$1 ~ /\/waiter\.oci\.tar$/ {print $2}' <<<"$lines")
if [[ -z "$archive" || -z "$ref" ]]; then
  echo "FAIL: build.sh did not report the waiter image: $lines" >&2
  exit 1
fi
echo "waiter image: $ref ($archive)"

case "$scenario" in
  */*) ;;
  *) scenario="$(runfile "simulator/scenarios/$scenario.textproto")" ;;
esac
exec "$(dirname "$0")/scenario_test.sh" "$scenario" \
  --pause_binary="$(runfile netns/cri/testing/pause)" \
  --waiter_image_archive="$archive" \
  --waiter_image="$ref" \
  "$@"
