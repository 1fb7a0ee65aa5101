// Choosing the waiter's datapath probe from the rules themselves (docs/mark.md).
//
// The probe must be a connection the pod's own rules redirect to the outbound capture port, from a uid/gid
// that is not the proxy's, over a route the pod really has (connect() fails with ENETUNREACH before the nat
// OUTPUT hook when there is no route). So instead of re-deriving "what is captured" from the plan's
// settings, the candidates are run through the Ruleset's nat OUTPUT rules by EvaluateNatOutput, a small
// evaluator of exactly the matches a Ruleset can hold. A match it cannot decide for the probe's packet
// (e.g. a source-port or socket match) rejects the candidate; it never guesses "captured".
//
// Pure: the route lookups are done by the caller (netns/) and passed in.
#ifndef PNC_RULES_PROBE_TARGET_H_
#define PNC_RULES_PROBE_TARGET_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rules/mark.h"
#include "rules/plan.h"
#include "rules/ruleset.h"

namespace pnc::rules {

// A new TCP connection generated inside the pod, as the nat OUTPUT hook sees its first packet. The uid/gid
// are "not any uid/gid the rules name" (the waiter never runs as the proxy): owner matches are decided as
// such.
struct OutboundTcp {
  Family family = Family::kIPv4;
  std::string source;       // the pod's address of this family ("" if unknown: a source match is undecidable)
  std::string destination;  // textual IP
  uint16_t destination_port = 0;
  std::string out_interface;  // the route's device
};

enum class NatVerdict {
  kNotRedirected,  // falls through or RETURNs to the built-in chain's policy
  kRedirected,     // REDIRECT; see redirect_port
  kUndecidable,    // a rule on the path depends on something the probe packet does not fix
};
struct NatDecision {
  NatVerdict verdict = NatVerdict::kNotRedirected;
  uint16_t redirect_port = 0;
};
NatDecision EvaluateNatOutput(const Ruleset& ruleset, const OutboundTcp& packet);

// Destination addresses worth a route lookup, best first: per family the plan programs, a documentation
// address (192.0.2.1 / 2001:db8::1, never routed anywhere) and then the first host of each included CIDR.
std::vector<std::string> ProbeCandidateAddresses(const RedirectPlan& plan);

// The first candidate (address order, then port order) that has a route (`route_device`: address -> output
// device, absent = unreachable; a route via "lo" means a local address and is skipped) and that the rules
// redirect to kOutboundCapturePort. ProbeSpec{.none = true} when there is none.
ProbeSpec ChooseProbe(const Ruleset& ruleset, const RedirectPlan& plan,
                      const std::vector<std::string>& pod_ips,
                      const std::map<std::string, std::string>& route_device);

}  // namespace pnc::rules

#endif  // PNC_RULES_PROBE_TARGET_H_
