#include "netns/testing/sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"

namespace pnc::netns::testing {
namespace {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&ss); }
};

absl::StatusOr<SockAddr> MakeAddr(const std::string& ip, uint16_t port) {
  SockAddr a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("not a numeric address: ", ip));
}

Endpoint FromAddr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    return Endpoint{buf, ntohs(sin->sin_port)};
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
  return Endpoint{buf, ntohs(sin6->sin6_port)};
}

absl::Status WaitFor(int fd, short events, absl::Duration timeout, const std::string& what) {
  pollfd p{fd, events, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  for (;;) {
    int n = poll(&p, 1, ms);
    if (n > 0) return absl::OkStatus();
    if (n == 0)
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": nothing within ", absl::FormatDuration(timeout)));
    if (errno != EINTR) return StatusFromErrno(errno, what);
  }
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

std::string Endpoint::ToString() const {
  if (ip.find(':') != std::string::npos) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

absl::StatusOr<UniqueFd> TcpListen(const std::string& ip, uint16_t port, bool transparent) {
  absl::StatusOr<SockAddr> addr = MakeAddr(ip, port);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return StatusFromErrno(errno, "socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr->family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (transparent) {
    const int rc = addr->family() == AF_INET
                       ? setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
                       : setsockopt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
    if (rc != 0) return StatusFromErrno(errno, "IP_TRANSPARENT");
  }
  if (bind(fd.get(), addr->get(), addr->len) != 0)
    return StatusFromErrno(errno, absl::StrCat("bind ", ip, ":", port));
  if (listen(fd.get(), 16) != 0) return StatusFromErrno(errno, "listen");
  return fd;
}

absl::StatusOr<UniqueFd> TcpConnect(const std::string& ip, uint16_t port, absl::Duration timeout) {
  absl::StatusOr<SockAddr> addr = MakeAddr(ip, port);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return StatusFromErrno(errno, "socket");
  const std::string what = absl::StrCat("connect ", Endpoint{ip, port}.ToString());
  if (connect(fd.get(), addr->get(), addr->len) != 0) {
    if (errno != EINPROGRESS) return StatusFromErrno(errno, what);
    if (absl::Status s = WaitFor(fd.get(), POLLOUT, timeout, what); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return StatusFromErrno(err, what);
  }
  fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

absl::StatusOr<UniqueFd> Accept(int listener, absl::Duration timeout) {
  if (absl::Status s = WaitFor(listener, POLLIN, timeout, "accept"); !s.ok()) return s;
  UniqueFd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return StatusFromErrno(errno, "accept");
  return fd;
}

bool HasPendingConnection(int listener) {
  pollfd p{listener, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

absl::StatusOr<Endpoint> LocalEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return StatusFromErrno(errno, "getsockname");
  return FromAddr(ss);
}

absl::StatusOr<Endpoint> PeerEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return StatusFromErrno(errno, "getpeername");
  return FromAddr(ss);
}

absl::StatusOr<Endpoint> OriginalDst(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return StatusFromErrno(errno, "getsockname");
  const bool v4 = ss.ss_family == AF_INET;
  len = sizeof(ss);
  const int rc = v4 ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len)
                    : getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
  if (rc != 0) return StatusFromErrno(errno, v4 ? "SO_ORIGINAL_DST" : "IP6T_SO_ORIGINAL_DST");
  return FromAddr(ss);
}

absl::StatusOr<UniqueFd> UdpBind(const std::string& ip, uint16_t port) {
  absl::StatusOr<SockAddr> addr = MakeAddr(ip, port);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(addr->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return StatusFromErrno(errno, "socket");
  int one = 1;
  if (addr->family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd.get(), addr->get(), addr->len) != 0)
    return StatusFromErrno(errno, absl::StrCat("bind udp ", ip, ":", port));
  return fd;
}

absl::Status UdpSendTo(const std::string& ip, uint16_t port, const std::string& payload) {
  absl::StatusOr<SockAddr> addr = MakeAddr(ip, port);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(addr->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return StatusFromErrno(errno, "socket");
  if (sendto(fd.get(), payload.data(), payload.size(), 0, addr->get(), addr->len) < 0) {
    return StatusFromErrno(errno, absl::StrCat("sendto ", Endpoint{ip, port}.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> UdpReceive(int fd, absl::Duration timeout, Endpoint* from) {
  if (absl::Status s = WaitFor(fd, POLLIN, timeout, "recvfrom"); !s.ok()) return s;
  char buf[2048];
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&ss), &len);
  if (n < 0) return StatusFromErrno(errno, "recvfrom");
  if (from != nullptr) *from = FromAddr(ss);
  return std::string(buf, n);
}

}  // namespace pnc::netns::testing
