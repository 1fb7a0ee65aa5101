// The annotation combinations covered by golden files (rules/testdata/golden/<name>.golden) and by the real
// iptables-save captures (rules/testdata/real_save/<name>.<family>.<legacy|nft>.txt). testonly.
#ifndef PNC_RULES_GOLDEN_CASES_H_
#define PNC_RULES_GOLDEN_CASES_H_

#include <string>
#include <vector>

#include "rules/inputs.h"

namespace pnc::rules::testing {

struct Case {
  std::string name;
  std::string description;
  PodFacts pod;
  PlanConfig config;
};

std::vector<Case> GoldenCases();

}  // namespace pnc::rules::testing

#endif  // PNC_RULES_GOLDEN_CASES_H_
