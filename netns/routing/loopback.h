// Loopback addresses of a Ruleset (rules::Ruleset::loopback_addresses, e.g. Istio's ::6/128) over rtnetlink.
//
// Both functions operate on the network namespace of the caller's NETLINK_ROUTE socket (open it inside the
// target netns, e.g. within RunInNetns).
//
// Ownership: an address we add carries IFA_PROTO kAddressProtocol (`ip -d addr` shows "proto 0x9a"; kernel
// >= 6.1 keeps it, older kernels drop the attribute). Only addresses on lo with our protocol are reported,
// replaced or deleted. A wanted address that already exists without our protocol (e.g. Istio's own init ran
// here) is taken over in place with NLM_F_REPLACE (never deleted and re-added, so sockets bound to it keep
// working); from then on it is ours, so Remove deletes it.
// IPv6 addresses are added without duplicate address detection (IFA_F_NODAD, as `ip addr add ... nodad`), so
// they are usable (bind) when the call returns, not only once the kernel's asynchronous DAD work has run.
#ifndef PNC_NETNS_ROUTING_LOOPBACK_H_
#define PNC_NETNS_ROUTING_LOOPBACK_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/ruleset.h"

namespace pnc::netns {

class MnlSocket;  // netns/routing/netlink.h

// Address protocol id marking our loopback addresses (same number as our routes' kRouteProtocol).
inline constexpr uint8_t kAddressProtocol = 154;

// Makes our loopback addresses exactly `want` (each a host address: /32 or /128): adds or takes over what is
// missing, leaves correct entries alone (a second call sends nothing), deletes ours not in `want`.
// When `read_if_unchanged` is given, it receives, if the call sent nothing to the kernel, what
// ReadLoopbackAddresses returns, computed from the address dump this call took; otherwise nullopt.
absl::Status SyncLoopbackAddresses(MnlSocket& rtnl, const std::vector<rules::Cidr>& want,
                                   std::optional<std::vector<rules::Cidr>>* read_if_unchanged = nullptr);

// Our loopback addresses in canonical form (inet_ntop spelling), IPv4 first, then by address.
absl::StatusOr<std::vector<rules::Cidr>> ReadLoopbackAddresses(MnlSocket& rtnl);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ROUTING_LOOPBACK_H_
