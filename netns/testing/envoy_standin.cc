#include "netns/testing/envoy_standin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"
#include "netns/testing/run_as.h"

namespace pnc::netns::testing {
namespace {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
};

absl::StatusOr<SockAddr> MakeAddr(const std::string& ip, uint16_t port) {
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", ip));
}

}  // namespace

absl::StatusOr<Endpoint> CapturedOriginalDst(int accepted_fd) {
  absl::StatusOr<Endpoint> orig = OriginalDst(accepted_fd);
  if (orig.ok()) return orig;
  return LocalEndpoint(accepted_fd);
}

absl::StatusOr<UniqueFd> ProxyUpstreamConnect(const NetnsHandle& pod, const UpstreamOptions& o,
                                              const std::string& dst_ip, uint16_t dst_port,
                                              absl::Duration timeout) {
  absl::StatusOr<SockAddr> dst = MakeAddr(dst_ip, dst_port);
  if (!dst.ok()) return dst.status();
  std::string src_ip = o.source_ip;
  if (src_ip.empty()) src_ip = dst->family == AF_INET ? "127.0.0.6" : "::6";
  absl::StatusOr<SockAddr> src = MakeAddr(src_ip, 0);
  if (!src.ok()) return src.status();
  // The socket belongs to the proxy identity and lives in the pod's netns.
  UniqueFd fd;
  absl::Status made = RunAs(o.uid, o.gid, &pod, [&]() -> absl::Status {
    int s = socket(dst->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return StatusFromErrno(errno, "socket");
    fd = UniqueFd(s);
    return absl::OkStatus();
  });
  if (!made.ok()) return made;
  const int one = 1;
  if (o.transparent) {
    const int rc = dst->family == AF_INET
                       ? setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
                       : setsockopt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
    if (rc != 0) return StatusFromErrno(errno, "IP_TRANSPARENT");
    const uint32_t mark = kStandInUpstreamMark;
    if (setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
      return StatusFromErrno(errno, "SO_MARK");
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&src->ss), src->len) != 0)
    return StatusFromErrno(errno, absl::StrCat("bind ", src_ip));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&dst->ss), dst->len) != 0 && errno != EINPROGRESS)
    return StatusFromErrno(errno, absl::StrCat("connect ", dst_ip, ":", dst_port));
  pollfd p{fd.get(), POLLOUT, 0};
  const int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (n == 0) return absl::DeadlineExceededError(absl::StrCat("upstream to ", dst_ip, ":", dst_port));
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return StatusFromErrno(err, absl::StrCat("upstream to ", dst_ip, ":", dst_port));
  return fd;
}

}  // namespace pnc::netns::testing
