// Hand-built Istio-like rulesets for netns tests and benchmarks, independent of rules/plan (which has its own
// golden tests). They follow shared/notes/istio-redirect-spec.md closely enough to exercise every match and
// target the Ruleset model has: REDIRECT capture (nat), TPROXY capture (mangle + policy routes), DNS capture
// (nat + raw CT zones), owner/mark/connmark/socket matches, negations, interfaces, CIDRs, v4 and v6.
#ifndef PNC_NETNS_TESTING_FIXTURES_H_
#define PNC_NETNS_TESTING_FIXTURES_H_

#include <cstdint>
#include <vector>

#include "rules/ruleset.h"

namespace pnc::netns::testing {

struct FixtureOptions {
  bool ipv4 = true;
  bool ipv6 = true;
  bool tproxy = false;  // inbound via mangle TPROXY to 15006 (mark 1337, table 133) instead of nat REDIRECT
  bool dns = false;     // udp+tcp/53 from non-proxy uids to 15053, CT zones in raw
  uint32_t proxy_uid = 1337;
  uint32_t proxy_gid = 1337;
  std::vector<uint16_t> exclude_inbound_ports;   // besides 15008, 15020, 15021, 15090
  std::vector<uint16_t> exclude_outbound_ports;  // tcp and udp
};

rules::Ruleset IstioLikeRuleset(const FixtureOptions& options);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_FIXTURES_H_
