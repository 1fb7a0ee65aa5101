#include "simulator/netns_identity.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"
#include "netns/executor.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // asm-generic/socket.h, Linux >= 5.14
#endif

namespace pnc::sim {

absl::StatusOr<std::string> BootId() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (!std::getline(f, id)) return absl::UnavailableError("cannot read /proc/sys/kernel/random/boot_id");
  id = std::string(absl::StripAsciiWhitespace(id));
  if (id.size() != 36) return absl::InternalError(absl::StrCat("unexpected boot id \"", id, "\""));
  return id;
}

absl::StatusOr<uint64_t> NetnsCookie(const netns::NetnsHandle& ns) {
  uint64_t cookie = 0;
  absl::Status s = netns::RunInNetns(ns, [&]() -> absl::Status {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return netns::StatusFromErrno(errno, "socket");
    socklen_t len = sizeof cookie;
    int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      if (err == ENOPROTOOPT) return absl::UnimplementedError("SO_NETNS_COOKIE needs Linux >= 5.14");
      return netns::StatusFromErrno(err, "getsockopt(SO_NETNS_COOKIE)");
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return cookie;
}

absl::StatusOr<NetnsFingerprint> Fingerprint(const netns::NetnsHandle& ns) {
  auto cookie = NetnsCookie(ns);
  if (!cookie.ok()) return cookie.status();
  return NetnsFingerprint{.inode = ns.inode(), .cookie = *cookie};
}

std::string IdentityText(const std::string& boot_id, uint64_t cookie) {
  return absl::StrCat(boot_id, "/", cookie);
}

}  // namespace pnc::sim
