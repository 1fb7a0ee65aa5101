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

# Bazel runs tests in the runfiles root of this workspace (the manual run in docs/benchmarks.md cds there too):
# every file this script needs is at its workspace path from here.
at_root() {
  if [[ ! -e "$PWD/$1" ]]; then
    echo "containerd_test.sh: $1 not found under $PWD (run it from the runfiles root)" >&2
    exit 2
  fi
  echo "$PWD/$1"
}

if [[ "$(id -u)" != 0 && "${CI:-}" != true ]]; then
  echo "SKIP (not a pass): containerd needs root; not root and CI is not true" >&2
  exit 0
fi

for f in tools/images/build.sh controller/waiter/waiter netns/cri/testing/pause; do
  at_root "$f" >/dev/null  # not in a $(...): a missing file ends the script here
done

out="${TEST_TMPDIR:-/tmp}/images"
build_log="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}/build-waiter-image.log"
# Bazel's test PATH lacks /usr/sbin (umoci, runc are found by absolute path or here).
lines=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash "$(at_root tools/images/build.sh)" --only waiter --out "$out" --no-check \
  --waiter-bin "$(at_root controller/waiter/waiter)" 2>"$build_log") || {
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
  *) scenario="$(at_root "simulator/scenarios/$scenario.textproto")" ;;
esac
exec "$(dirname "$0")/scenario_test.sh" "$scenario" \
  --pause_binary="$(at_root netns/cri/testing/pause)" \
  --waiter_image_archive="$archive" \
  --waiter_image="$ref" \
  "$@"
