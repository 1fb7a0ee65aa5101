// Minimal rtnetlink (libmnl) operations the sandbox needs to wire up test namespaces: link up, veth pair
// across two namespaces, addresses, default routes. Every function acts on the network namespace of the
// CALLING THREAD (call it from inside RunInNetns). Names and addresses come only from the harness itself,
// never from untrusted input.
#ifndef PNC_NETNS_TESTING_NETLINK_H_
#define PNC_NETNS_TESTING_NETLINK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pnc::netns::testing {

// Sets IFF_UP on the interface with this index (1 is "lo" in every fresh netns).
absl::Status SetLinkUp(int ifindex);

// Creates a veth pair: `name` stays in the current netns, `peer_name` is created directly inside the
// namespace referred to by `peer_netns_fd`. Both ends are down.
absl::Status CreateVethPair(const std::string& name, const std::string& peer_name, int peer_netns_fd);

// Interface index by name in the current netns; NotFound if absent.
absl::StatusOr<int> InterfaceIndex(const std::string& name);

// Adds `address`/`prefix_len` (IPv4 or IPv6 text) to the interface. IPv6 addresses are added with IFA_F_NODAD
// so they are usable at once (no duplicate address detection delay).
absl::Status AddAddress(int ifindex, const std::string& address, int prefix_len);

// Waits until the link's operational state is UP. The kernel attaches a device's real qdisc only when it
// processes the carrier change (linkwatch, which may lag by up to a second); until then packets sent on it
// are dropped, e.g. the first SYN of a test, which then costs a 1 s retransmission.
absl::Status WaitOperUp(int ifindex, absl::Duration timeout);

// Adds a default route (0.0.0.0/0 or ::/0, by the gateway's family) via `gateway` out of `ifindex`.
absl::Status AddDefaultRoute(int ifindex, const std::string& gateway);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_NETLINK_H_
