// RulesetDigest: a short, stable fingerprint of a Ruleset, written into the pod's mark
// (pod-network-controller.istio.io/plan) so that the controller can tell, even after a restart, whether the
// rules in a pod's netns are the ones it applied when the pod started. A change detector over our own
// canonical rendering (FNV-1a 64), not authentication: the rules read back from the kernel are what is
// trusted, the digest only says which plan they came from.
#ifndef PNC_RULES_DIGEST_H_
#define PNC_RULES_DIGEST_H_

#include <string>

#include "rules/ruleset.h"

namespace pnc::rules {

// 16 lowercase hex digits (rules::IsPlanDigest). Equal Rulesets give equal digests; the rendering covers
// every family, table, chain, rule and policy route.
std::string RulesetDigest(const Ruleset& ruleset);

}  // namespace pnc::rules

#endif  // PNC_RULES_DIGEST_H_
