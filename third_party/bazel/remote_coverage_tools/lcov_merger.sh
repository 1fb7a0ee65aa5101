#!/usr/bin/env bash
# Concatenates the per-test lcov files Bazel hands over (--coverage_dir) into --output_file.
set -euo pipefail
out=""; dir=""
for a in "$@"; do
  case "$a" in
    --output_file=*) out="${a#*=}" ;;
    --coverage_dir=*) dir="${a#*=}" ;;
  esac
done
[ -n "$out" ] || exit 0
: > "$out"
if [ -n "$dir" ] && [ -d "$dir" ]; then
  find "$dir" -name '*.dat' -o -name '*.info' | sort | while read -r f; do cat "$f" >> "$out"; done
fi
