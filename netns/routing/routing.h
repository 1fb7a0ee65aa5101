// Policy routing for TPROXY: `ip rule add fwmark M lookup T` + `ip route add local default dev lo table T`,
// v4 and v6, over rtnetlink (libmnl).
//
// Both functions operate on the network namespace of the CALLING THREAD (run them inside RunInNetns); they
// open their own netlink socket there and never change namespace themselves.
//
// Ownership: everything we install carries protocol kRouteProtocol (rtm_protocol for routes, FRA_PROTOCOL for
// rules; `ip rule`/`ip route` show it as "proto 154"), and our rules sit at priority kRulePriority. Only
// entries with our protocol are read, replaced or deleted; other rules and routes are never touched. A
// pre-existing route with the same key (default, table T) is replaced by ours (NLM_F_REPLACE), i.e. we take
// it over: table T is TPROXY's. Requires the loopback device to be up (it always is in a pod's netns) and
// kernel >= 4.17 (FRA_PROTOCOL).
#ifndef PNC_NETNS_ROUTING_ROUTING_H_
#define PNC_NETNS_ROUTING_ROUTING_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/ruleset.h"

namespace pnc::netns {

class MnlSocket;  // netns/routing/netlink.h

// Routing protocol id marking our rules and routes ("not interpreted by the kernel" range, unused by known
// daemons).
inline constexpr uint8_t kRouteProtocol = 154;
// Priority of our fwmark rules: before the main table (32766), same slot `ip rule add` picks in a fresh
// netns.
inline constexpr uint32_t kRulePriority = 32765;

// Makes our policy routes in the current netns exactly `want`: adds what is missing, leaves correct entries
// alone (a second call with the same input sends no change), deletes our entries not in `want`. Sync({})
// removes all of ours. Not atomic across entries (rtnetlink has no batch); on error, call again.
absl::Status SyncPolicyRoutes(const std::vector<rules::PolicyRoute>& want);

// Our policy routes in the current netns: one PolicyRoute per rule of ours whose table also holds our local
// default route via lo in the same family (a rule without its route, or a route without a rule, is not
// reported, so a half-installed state fails verification). Order: IPv4 first, then IPv6; within a family by
// (table, fwmark).
absl::StatusOr<std::vector<rules::PolicyRoute>> ReadPolicyRoutes();

// The same two on the caller's NETLINK_ROUTE socket (opened in the current netns, e.g. MnlSocket::Open), for
// callers that do several steps in one namespace entry and want one socket for all of them.
// When `read_if_unchanged` is given, it receives, if the call sent nothing to the kernel, what
// ReadPolicyRoutes returns, computed from the rule and route dumps this call took; otherwise nullopt.
absl::Status SyncPolicyRoutes(MnlSocket& rtnl, const std::vector<rules::PolicyRoute>& want,
                              std::optional<std::vector<rules::PolicyRoute>>* read_if_unchanged = nullptr);
absl::StatusOr<std::vector<rules::PolicyRoute>> ReadPolicyRoutes(MnlSocket& rtnl);

// NOP rules of ours (FR_ACT_NOP, IPv4, protocol kRouteProtocol) at `priority`: they never change routing; the
// proof marker (netns/proof_marker.h) is one. ReadNopRules returns their fwmark values. SyncPolicyRoutes
// deletes them like any other rule of ours that is not a planned policy route: re-applying the rules
// withdraws the evidence until it is placed again.
absl::StatusOr<std::vector<uint32_t>> ReadNopRules(MnlSocket& rtnl, uint32_t priority);
absl::Status AddNopRule(MnlSocket& rtnl, uint32_t priority, uint32_t fwmark);
absl::Status DeleteNopRule(MnlSocket& rtnl, uint32_t priority, uint32_t fwmark);

// Canonical order used by ReadPolicyRoutes; callers comparing with a plan sort the plan the same way.
void SortPolicyRoutes(std::vector<rules::PolicyRoute>& routes);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ROUTING_ROUTING_H_
