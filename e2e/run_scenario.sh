#!/usr/bin/env bash
# Runs the simulator with the real controller and waiter from this target's runfiles.
#   run_scenario.sh [smoke|burst|burst_paced|races|multinode|path/to/scenario.textproto] [extra simulator flags...]
# Used by `bazel run //e2e:demo` (prints the readable report) and by the e2e tests (which also check the JSON report).
set -euo pipefail

runfile() {
  local rel="istio_pod_network_controller/$1"
  local base
  for base in "${RUNFILES_DIR:-}" "$0.runfiles" "${TEST_SRCDIR:-}"; do
    if [[ -n "$base" && -e "$base/$rel" ]]; then
      echo "$base/$rel"
      return
    fi
  done
  echo "run_scenario.sh: runfile $1 not found" >&2
  exit 2
}

scenario="smoke"
if [[ $# -gt 0 && "$1" != -* ]]; then
  scenario="$1"
  shift
fi
case "$scenario" in
  smoke|burst|burst_paced|races|multinode|latency|scale330|churn1000|helm) scenario_file="$(runfile "simulator/scenarios/$scenario.textproto")" ;;
  *) scenario_file="$scenario" ;;
esac

if [[ "$(id -u)" != 0 ]]; then
  echo "note: not root; the simulator needs root or unprivileged user namespaces with subordinate ids (uidmap)" >&2
fi

exec "$(runfile simulator/simulator)" \
  --scenario="$scenario_file" \
  --controller_binary="$(runfile controller/controller)" \
  --waiter_binary="$(runfile controller/waiter/waiter)" \
  "$@"
