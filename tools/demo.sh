#!/usr/bin/env bash
# The demo: installs missing Debian packages, builds, and runs the controller against an embedded simulated cluster on
# real network namespaces, then prints a readable summary.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
exec bazel run -c opt //e2e:demo -- "$@"
