// The part of a Ruleset that lives outside netfilter: TPROXY policy routes (routing.h) and loopback addresses
// (loopback.h). Every backend syncs and reads it through these two functions, so iptc, nft and restore
// agree on it.
//
// They operate on the caller's NETLINK_ROUTE socket (open it inside the target netns), or on one they open
// in the calling thread's netns.
#ifndef PNC_NETNS_ROUTING_ROUTING_STATE_H_
#define PNC_NETNS_ROUTING_ROUTING_STATE_H_

#include <optional>

#include "absl/status/status.h"
#include "rules/ruleset.h"

namespace pnc::netns {

class MnlSocket;  // netns/routing/netlink.h

// Makes our policy routes and loopback addresses exactly those of `want` (its netfilter part is ignored).
// Addresses first: a source address must exist before anything routes traffic that uses it. An empty
// Ruleset removes ours.
absl::Status SyncRoutingState(MnlSocket& rtnl, const rules::Ruleset& want);
absl::Status SyncRoutingState(const rules::Ruleset& want);
// The same; when the sync sent nothing to the kernel, `*read_if_unchanged` receives what ReadRoutingState
// would fill in (routes and loopback_addresses; nothing else), computed from the sync's own dumps: a complete
// read of the kernel taken after our last write to it. Otherwise it is nullopt and the caller reads again.
absl::Status SyncRoutingState(MnlSocket& rtnl, const rules::Ruleset& want,
                              std::optional<rules::Ruleset>* read_if_unchanged);

// Fills out->routes and out->loopback_addresses with ours (the canonical orders of routing.h and loopback.h).
absl::Status ReadRoutingState(MnlSocket& rtnl, rules::Ruleset* out);
absl::Status ReadRoutingState(rules::Ruleset* out);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ROUTING_ROUTING_STATE_H_
