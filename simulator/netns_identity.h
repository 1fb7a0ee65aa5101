// What the kernel says a network namespace IS, as the simulator records it and as a tenant can observe it:
// the nsfs inode (reused as soon as the namespace is freed) and the netns cookie (SO_NETNS_COOKIE, never
// reused within a boot), plus the node's boot id. The mark's identity text is "<boot_id>/<cookie>"
// (docs/mark.md). Nothing here needs a privilege beyond entering the namespace.
#ifndef PNC_SIMULATOR_NETNS_IDENTITY_H_
#define PNC_SIMULATOR_NETNS_IDENTITY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "netns/netns.h"

namespace pnc::sim {

struct NetnsFingerprint {
  uint64_t inode = 0;
  uint64_t cookie = 0;
};

// /proc/sys/kernel/random/boot_id without the newline (readable by anyone).
absl::StatusOr<std::string> BootId();

// getsockopt(SO_NETNS_COOKIE) on a socket created inside `ns`. Unimplemented on kernels before 5.14.
absl::StatusOr<uint64_t> NetnsCookie(const netns::NetnsHandle& ns);

// Inode and cookie of `ns`.
absl::StatusOr<NetnsFingerprint> Fingerprint(const netns::NetnsHandle& ns);

// "<boot_id>/<cookie>", the mark's identity text.
std::string IdentityText(const std::string& boot_id, uint64_t cookie);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_NETNS_IDENTITY_H_
