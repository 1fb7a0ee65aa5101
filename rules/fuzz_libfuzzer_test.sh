#!/bin/bash
# Real libFuzzer run, bounded in time: compiles the rules/ sources and the fuzz target with clang-14
# (-fsanitize=fuzzer,address,undefined) and runs it for PNC_FUZZ_SECONDS (default 20) seconds on a copy of the seed
# corpus. Fails on any crash, sanitizer report, leak or invariant violation (fuzz_entry.h).
# No user data reaches this script: the inputs are the test's own data files.
set -euo pipefail

CXX=/usr/bin/clang++-14
if [[ ! -x "$CXX" ]]; then
  echo "FAIL: $CXX not found (install clang-14 and libclang-rt-14-dev: tools/ensure-deps.sh)" >&2
  exit 1
fi
if ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "FAIL: libFuzzer runtime missing (Debian package libclang-rt-14-dev)" >&2
  exit 1
fi

SECONDS_TO_RUN="${PNC_FUZZ_SECONDS:-20}"
WORK="${TEST_TMPDIR:-$(mktemp -d)}/fuzz"
mkdir -p "$WORK/corpus" "$WORK/obj"
cp rules/testdata/fuzz_corpus/* "$WORK/corpus/"

# All absl shared objects; --as-needed keeps only the ones the target uses.
ABSL_LIBS=()
for so in /usr/lib/x86_64-linux-gnu/libabsl_*.so; do
  name="$(basename "$so" .so)"
  ABSL_LIBS+=("-l${name#lib}")
done

SRCS=(rules/ruleset.cc rules/values.cc rules/membership.cc rules/plan.cc rules/render.cc rules/iptables_save.cc
      rules/fuzz_entry.cc rules/fuzz_libfuzzer_main.cc)
FLAGS=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)
objs=()
for src in "${SRCS[@]}"; do
  obj="$WORK/obj/$(basename "$src" .cc).o"
  # -fsanitize=fuzzer only on the entry/target; the library gets coverage instrumentation via fuzzer-no-link.
  "$CXX" "${FLAGS[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}" -c "$src" -o "$obj" &
  objs+=("$obj")
  # Two cores: at most two compiles at a time.
  if (( ${#objs[@]} % 2 == 0 )); then wait; fi
done
wait
"$CXX" "${FLAGS[@]}" "${objs[@]}" -o "$WORK/rules_fuzzer" -Wl,--as-needed "${ABSL_LIBS[@]}" -lpthread
echo "built $WORK/rules_fuzzer; fuzzing for ${SECONDS_TO_RUN}s"

status=0
"$WORK/rules_fuzzer" "$WORK/corpus" -max_total_time="$SECONDS_TO_RUN" -timeout=5 -rss_limit_mb=2048 \
  -max_len=8192 -print_final_stats=1 -artifact_prefix="$WORK/" >"$WORK/fuzz.log" 2>&1 || status=$?
tail -n 40 "$WORK/fuzz.log"
if [[ "$status" != 0 ]]; then
  echo "FAIL: libFuzzer exited with $status; crashing input(s):" >&2
  ls -l "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* 2>/dev/null >&2 || true
  for f in "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-*; do
    [[ -f "$f" ]] && od -c "$f" | head -20 >&2
  done
  exit 1
fi
echo "PASS: no crash in ${SECONDS_TO_RUN}s"
