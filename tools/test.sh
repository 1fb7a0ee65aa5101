#!/usr/bin/env bash
# Runs every test of the repository: installs missing Debian packages, then `bazel test //...` fully offline.
# Network-namespace tests need root (CI) or unprivileged user namespaces (a laptop); they say so when they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
# Tests that drive real clients (helm, kubectl 1.35, @kubernetes/client-node) find them through PNC_NPM_DIR.
extra=(--test_env=PNC_NPM_DIR="$(tools/ensure-npm.sh --print)")
if [ "${CI:-}" = "true" ]; then
  # CI: no progress spinner, show every failing test's log.
  extra+=(--curses=no --color=no --show_progress_rate_limit=30)
fi
exec bazel test "${extra[@]}" //... "$@"
