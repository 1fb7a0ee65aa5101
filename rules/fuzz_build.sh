#!/bin/bash
# Builds the libFuzzer binary for rules/ with clang-14 (-fsanitize=fuzzer,address,undefined).
# Usage (from the genrule //rules:rules_fuzzer): fuzz_build.sh OUT SRC.cc... ; include root is the current directory.
# Arguments are the genrule's own file names (argv, no user data).
set -euo pipefail
CXX=/usr/bin/clang++-14
if [[ ! -x "$CXX" ]]; then
  echo "fuzz_build: $CXX not found (Debian packages clang-14, libclang-rt-14-dev)" >&2
  exit 1
fi
if ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz_build: libFuzzer runtime missing (Debian package libclang-rt-14-dev)" >&2
  exit 1
fi
out="$1"
shift
objdir="$(mktemp -d)"
trap 'rm -rf "$objdir"' EXIT
# The sources get coverage + sanitizers; only the final link pulls in libFuzzer's main.
COMPILE=(-std=c++20 -O1 -g1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I.)
objs=()
pids=()
for src in "$@"; do
  obj="$objdir/$(basename "$src" .cc).o"
  "$CXX" "${COMPILE[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  objs+=("$obj")
  if (( ${#pids[@]} == 2 )); then  # two cores
    for p in "${pids[@]}"; do wait "$p"; done
    pids=()
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
# All absl shared objects; --as-needed keeps only the ones the target uses.
absl=()
for so in /usr/lib/x86_64-linux-gnu/libabsl_*.so; do
  name="$(basename "$so" .so)"
  absl+=("-l${name#lib}")
done
"$CXX" -fsanitize=fuzzer,address,undefined "${objs[@]}" -o "$out" -Wl,--as-needed "${absl[@]}" -lpthread
