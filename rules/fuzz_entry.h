// The fuzz entry point shared by the libFuzzer binary (clang, sanitizers; fuzz_libfuzzer_test.sh) and the
// gcc-built regression test (fuzz_regression_test.cc). Input format, so the fuzzer reaches deep states
// quickly:
//   byte 0 = selector. Even: BuildPlan path. Odd: ParseIptablesSave path (bit 1 = family).
//   BuildPlan path: byte 1 = config bits (OpenShift, DNS, assume IPv6, TPROXY default), then '\n'-separated
//   entries; each entry's first byte picks a key (one of the annotations we read, the namespace uid-range, a
//   pod IP, the proxy runAsUser, or "anything before '='"), the rest is the value.
// Checks (abort on violation, which both harnesses report as a crash):
//   - BuildPlan errors are InvalidArgument, single-line and bounded (they go into Events and annotations);
//   - a successful plan renders, and its iptables-save text parses back to exactly the model (per family);
//   - whatever ParseIptablesSave accepts re-renders and re-parses to the same model.
#ifndef PNC_RULES_FUZZ_ENTRY_H_
#define PNC_RULES_FUZZ_ENTRY_H_

#include <cstddef>
#include <cstdint>

namespace pnc::rules {

int FuzzOneInput(const uint8_t* data, size_t size);

}  // namespace pnc::rules

#endif  // PNC_RULES_FUZZ_ENTRY_H_
