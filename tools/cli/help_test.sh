#!/usr/bin/env bash
# Every binary of the repository answers --help with exit code 0 and something on stdout.
set -uo pipefail
fail=0
for bin in "$@"; do
  out=$(timeout 20 "$bin" --help 2>/dev/null)
  rc=$?
  if [ "$rc" -ne 0 ] || [ -z "$out" ]; then
    echo "FAIL: $bin --help exited $rc with ${#out} bytes on stdout"
    fail=1
  else
    echo "ok: $bin --help"
  fi
done
exit $fail
