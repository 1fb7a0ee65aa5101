// Read back: `iptables-save` / `ip6tables-save` text -> our part of it, in the Ruleset model.
//
// Returns ONLY what belongs to us: every ISTIO_* chain (with all its rules), and the rules of built-in chains
// that jump to an ISTIO_* chain (in the order they appear). Foreign tables, chains and rules are ignored
// without being parsed. Chains are ordered like BuildRuleset orders them (built-ins in fixed order, then ours
// by name), so an exec backend can verify with `ParseIptablesSave(save_output) == *planned.Find(family)`.
//
// Strict: our rules must use only the matches and targets ruleset.h models, in the spelling iptables-save
// prints (both legacy and nft variants of iptables 1.8.x). Anything else inside our chains (an unknown match,
// a goto, a port range, a CIDR of the other family, a partial mark mask, ...) is an InvalidArgument naming
// the line: somebody tampered with our chains, and verification must fail rather than pass on a partial
// understanding. Packet counters (`iptables-save -c`, "[12:345] -A ...") are accepted and ignored.
#ifndef PNC_RULES_IPTABLES_SAVE_H_
#define PNC_RULES_IPTABLES_SAVE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rules/ruleset.h"

namespace pnc::rules {

absl::StatusOr<FamilyRules> ParseIptablesSave(Family family, absl::string_view text);

}  // namespace pnc::rules

#endif  // PNC_RULES_IPTABLES_SAVE_H_
