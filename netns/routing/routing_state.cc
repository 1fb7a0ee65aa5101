#include "netns/routing/routing_state.h"

#include <linux/netlink.h>

#include "netns/routing/loopback.h"
#include "netns/routing/netlink.h"
#include "netns/routing/routing.h"

namespace pnc::netns {

absl::Status SyncRoutingState(MnlSocket& rtnl, const rules::Ruleset& want) {
  if (absl::Status s = SyncLoopbackAddresses(rtnl, want.loopback_addresses); !s.ok()) return s;
  return SyncPolicyRoutes(rtnl, want.routes);
}

absl::Status SyncRoutingState(MnlSocket& rtnl, const rules::Ruleset& want,
                              std::optional<rules::Ruleset>* read_if_unchanged) {
  read_if_unchanged->reset();
  std::optional<std::vector<rules::Cidr>> addresses;
  if (absl::Status s = SyncLoopbackAddresses(rtnl, want.loopback_addresses, &addresses); !s.ok()) return s;
  std::optional<std::vector<rules::PolicyRoute>> routes;
  if (absl::Status s = SyncPolicyRoutes(rtnl, want.routes, &routes); !s.ok()) return s;
  if (addresses && routes) {
    read_if_unchanged->emplace();
    (*read_if_unchanged)->loopback_addresses = *std::move(addresses);
    (*read_if_unchanged)->routes = *std::move(routes);
  }
  return absl::OkStatus();
}

absl::Status SyncRoutingState(const rules::Ruleset& want) {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  return SyncRoutingState(*nl, want);
}

absl::Status ReadRoutingState(MnlSocket& rtnl, rules::Ruleset* out) {
  absl::StatusOr<std::vector<rules::PolicyRoute>> routes = ReadPolicyRoutes(rtnl);
  if (!routes.ok()) return routes.status();
  absl::StatusOr<std::vector<rules::Cidr>> addresses = ReadLoopbackAddresses(rtnl);
  if (!addresses.ok()) return addresses.status();
  out->routes = *std::move(routes);
  out->loopback_addresses = *std::move(addresses);
  return absl::OkStatus();
}

absl::Status ReadRoutingState(rules::Ruleset* out) {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  return ReadRoutingState(*nl, out);
}

}  // namespace pnc::netns
