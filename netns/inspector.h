// Inspector: what the controller learns about a located pod network namespace besides its rules: the
// namespace's never-reused identity and the routes the waiter's probe would take.
//
// Identity: the netns cookie (SO_NETNS_COOKIE on a socket created inside the namespace; Linux >= 5.14) plus
// the boot id. The kernel never hands out a cookie twice during a boot, whereas it hands out a freed nsfs
// inode number again at once (a sandbox recreated under the same pod UID usually gets its old inode back).
// On a kernel without SO_NETNS_COOKIE, CheckNetnsCookieSupport fails and the controller refuses to start:
// there is no silent fallback to inodes.
#ifndef PNC_NETNS_INSPECTOR_H_
#define PNC_NETNS_INSPECTOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "netns/netns.h"

namespace pnc::netns {

struct NetnsView {
  uint64_t cookie = 0;
  // For each queried address that has a route in the namespace: the route's output device ("lo" for a local
  // address). Unreachable addresses are absent.
  std::map<std::string, std::string> route_device;
};

class Inspector {
 public:
  virtual ~Inspector() = default;
  // One entry into the namespace: the cookie, and a route lookup (RTM_GETROUTE) per address in `routes`
  // (textual IPv4/IPv6; others are skipped).
  virtual absl::StatusOr<NetnsView> Inspect(const NetnsHandle& ns,
                                            const std::vector<std::string>& routes) = 0;
};

// The real one: RunInNetns + socket/getsockopt + rtnetlink. Errors: those of RunInNetns (FailedPrecondition
// for a handle without an fd), Unimplemented when the kernel lacks SO_NETNS_COOKIE.
class KernelInspector : public Inspector {
 public:
  absl::StatusOr<NetnsView> Inspect(const NetnsHandle& ns, const std::vector<std::string>& routes) override;
};

// The cookie of the calling thread's network namespace. Unimplemented (with the kernel requirement in the
// message) when the kernel lacks SO_NETNS_COOKIE.
absl::StatusOr<uint64_t> CurrentNetnsCookie();

// Fails with a clear message unless this kernel reports netns cookies (checked on the process's own netns).
absl::Status CheckNetnsCookieSupport();

// /proc/sys/kernel/random/boot_id, canonical (lowercase UUID, no newline).
absl::StatusOr<std::string> ReadBootId(const std::string& path = "/proc/sys/kernel/random/boot_id");

}  // namespace pnc::netns

#endif  // PNC_NETNS_INSPECTOR_H_
