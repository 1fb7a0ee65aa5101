#!/bin/bash
# Real libFuzzer run, bounded in time: runs the clang-14 ASan/UBSan fuzzer built by //rules:rules_fuzzer
# (fuzz_build.sh; cached by Bazel like any other action) for PNC_FUZZ_SECONDS (default 20) seconds on a copy of the
# seed corpus. Fails on any crash, sanitizer report, leak, timeout or invariant violation (fuzz_entry.h).
set -euo pipefail
FUZZER="$1"
SECONDS_TO_RUN="${PNC_FUZZ_SECONDS:-20}"
WORK="${TEST_TMPDIR:-$(mktemp -d)}/fuzz"
mkdir -p "$WORK/corpus"
cp rules/testdata/fuzz_corpus/* "$WORK/corpus/"
status=0
"$FUZZER" "$WORK/corpus" -max_total_time="$SECONDS_TO_RUN" -timeout=5 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$WORK/" >"$WORK/fuzz.log" 2>&1 || status=$?
tail -n 40 "$WORK/fuzz.log"
if [[ "$status" != 0 ]]; then
  echo "FAIL: libFuzzer exited with $status; crashing input(s):" >&2
  for f in "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* "$WORK"/oom-*; do
    [[ -f "$f" ]] && { echo "$f" >&2; od -c "$f" | head -20 >&2; }
  done
  exit 1
fi
if ! grep -q "Done [0-9]* runs" "$WORK/fuzz.log"; then
  echo "FAIL: libFuzzer did not report a finished run" >&2
  exit 1
fi
echo "PASS: no crash in ${SECONDS_TO_RUN}s"
