// The backends the functional tests and the benchmark run against, with what each needs for independent
// checks (the kernel's view through the matching command-line tool) and for planting foreign rules.
#ifndef PNC_NETNS_FUNCTIONAL_BACKENDS_H_
#define PNC_NETNS_FUNCTIONAL_BACKENDS_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "netns/backend.h"

namespace pnc::netns {

struct FunctionalBackend {
  std::string name;  // gtest-safe: [A-Za-z0-9]
  std::function<std::unique_ptr<Backend>()> make;
  std::vector<std::string> dump_argv;  // prints the netns's ruleset (legacy save / nft list)
  std::string istio_output_jump_line;  // how our nat OUTPUT -> ISTIO_OUTPUT jump prints, trimmed
  std::vector<std::vector<std::string>> add_foreign_argvs;  // plant rules that are not ours
  std::vector<std::string> tamper_argv;      // appends a rule we never write to our nat ISTIO_OUTPUT chain
  std::vector<std::string> foreign_needles;  // substrings of dump output proving they survived
};

std::vector<FunctionalBackend> FunctionalBackends();

// gtest prints parameters with this (instead of a byte dump).
inline void PrintTo(const FunctionalBackend& b, std::ostream* os) { *os << b.name; }

// Number of lines of `dump` that, trimmed, equal b.istio_output_jump_line.
int CountJumpsToIstioOutput(const FunctionalBackend& b, const std::string& dump);

}  // namespace pnc::netns

#endif  // PNC_NETNS_FUNCTIONAL_BACKENDS_H_
