// The interface addresses of a network namespace, from an RTM_GETADDR dump (no `ip` binary, no parsing of
// text). Used to cross-check a located sandbox against the pod's IPs (cgroup locator) and to learn a pod's
// addresses before the API server publishes status.podIPs (the controller plans IPv6 rules only when the pod
// has an IPv6 address).
#ifndef PNC_NETNS_ADDRESSES_H_
#define PNC_NETNS_ADDRESSES_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netns/netns.h"

namespace pnc::netns {

struct InterfaceAddress {
  int family = AF_UNSPEC;          // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};  // first 4 bytes for AF_INET
  uint8_t scope = 0;               // RT_SCOPE_UNIVERSE (global), RT_SCOPE_LINK, RT_SCOPE_HOST (loopback)
  int ifindex = 0;
  std::string ToString() const;  // inet_ntop form
};

// Every IPv4/IPv6 address of the CALLING THREAD's network namespace (run it inside RunInNetns).
absl::StatusOr<std::vector<InterfaceAddress>> DumpCurrentNetnsAddresses();

// The global-scope addresses (RT_SCOPE_UNIVERSE: no loopback, no link-local) of `ns`, in dump order (by
// interface, then address), as text. Empty when the sandbox has no address yet (CNI still running).
// Errors: those of RunInNetns (FailedPrecondition for a handle without an fd) and of the netlink dump.
absl::StatusOr<std::vector<std::string>> ReadGlobalAddresses(const NetnsHandle& ns);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ADDRESSES_H_
