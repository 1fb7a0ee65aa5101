#include "netns/inspector.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"
#include "netns/executor.h"
#include "netns/routing/netlink.h"
#include "rules/mark.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace pnc::netns {
namespace {

// The route for `addr` in the calling thread's netns: its output device, or nullopt when unreachable.
absl::StatusOr<std::optional<std::string>> RouteDevice(MnlSocket& nl, const std::string& addr) {
  unsigned char bytes[16];
  int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, addr.c_str(), bytes) != 1) return std::optional<std::string>();
  alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
  rtmsg* rtm = nullptr;
  nlmsghdr* nlh = PutRequest(buf, RTM_GETROUTE, NLM_F_ACK, nl.NextSeq(), &rtm);
  rtm->rtm_family = family;
  rtm->rtm_dst_len = family == AF_INET ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, bytes);
  int oif = 0;
  absl::Status st =
      nl.SendAndWait(nlh, nlh->nlmsg_len, nlh->nlmsg_seq, "route lookup", [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWROUTE) return absl::OkStatus();
        ForEachAttr(m, sizeof(rtmsg), [&](const nlattr* a) {
          if (mnl_attr_get_type(a) == RTA_OIF) oif = static_cast<int>(mnl_attr_get_u32(a));
        });
        return absl::OkStatus();
      });
  // No usable route: ENETUNREACH / EHOSTUNREACH (Unavailable; also "unreachable" routes), EACCES
  // ("prohibit"), EINVAL ("blackhole"), ENOENT. A probe over such a route could never be redirected.
  switch (st.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return std::optional<std::string>();
    default:
      break;
  }
  if (!st.ok()) return st;
  char name[IF_NAMESIZE] = {};
  if (oif == 0 || if_indextoname(static_cast<unsigned>(oif), name) == nullptr)
    return std::optional<std::string>();
  return std::optional<std::string>(name);
}

}  // namespace

absl::StatusOr<uint64_t> CurrentNetnsCookie() {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return StatusFromErrno(errno, "socket for SO_NETNS_COOKIE");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err == ENOPROTOOPT)
    return absl::UnimplementedError(
        "this kernel does not report network namespace cookies (SO_NETNS_COOKIE, Linux >= 5.14); the "
        "controller needs them to identify a pod's network namespace (nsfs inodes are reused)");
  if (rc != 0) return StatusFromErrno(err, "getsockopt(SO_NETNS_COOKIE)");
  if (cookie == 0) return absl::InternalError("the kernel reported netns cookie 0");
  return cookie;
}

absl::Status CheckNetnsCookieSupport() { return CurrentNetnsCookie().status(); }

absl::StatusOr<std::string> ReadBootId(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StatusFromErrno(errno, absl::StrCat("open ", path));
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  int err = errno;
  ::close(fd);
  if (n < 0) return StatusFromErrno(err, absl::StrCat("read ", path));
  std::optional<std::string> id = rules::CanonicalBootId(std::string_view(buf, static_cast<size_t>(n)));
  if (!id) return absl::InternalError(absl::StrCat(path, " does not hold a boot id"));
  return *id;
}

absl::StatusOr<NetnsView> KernelInspector::Inspect(const NetnsHandle& ns,
                                                   const std::vector<std::string>& routes) {
  NetnsView view;
  absl::Status st = RunInNetns(ns, [&]() -> absl::Status {
    absl::StatusOr<uint64_t> cookie = CurrentNetnsCookie();
    if (!cookie.ok()) return cookie.status();
    view.cookie = *cookie;
    if (routes.empty()) return absl::OkStatus();
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    if (!nl.ok()) return nl.status();
    for (const std::string& addr : routes) {
      absl::StatusOr<std::optional<std::string>> dev = RouteDevice(*nl, addr);
      if (!dev.ok()) return dev.status();
      if (*dev) view.route_device[addr] = **dev;
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return view;
}

}  // namespace pnc::netns
