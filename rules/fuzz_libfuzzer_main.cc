// libFuzzer entry (clang -fsanitize=fuzzer); see fuzz_entry.h for the input format and the checked
// invariants.
#include "rules/fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return pnc::rules::FuzzOneInput(data, size);
}
