#!/usr/bin/env bash
# Concatenates lcov reports listed in --reports_file into --output_file.
set -euo pipefail
out=""; reports=""
for a in "$@"; do
  case "$a" in
    --output_file=*) out="${a#*=}" ;;
    --reports_file=*) reports="${a#*=}" ;;
  esac
done
[ -n "$out" ] || exit 0
: > "$out"
[ -n "$reports" ] && while read -r f; do [ -f "$f" ] && cat "$f" >> "$out"; done < "$reports"
