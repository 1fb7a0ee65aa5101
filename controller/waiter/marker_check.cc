#include "controller/waiter/marker_check.h"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "controller/waiter/fd.h"
#include "rules/mark.h"

namespace pnc::waiter {
namespace {

// True when `m` is one of the controller's marker rules with `value`.
bool IsMarker(const nlmsghdr* m, uint32_t value) {
  if (m->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) return false;
  const auto* h = static_cast<const fib_rule_hdr*>(NLMSG_DATA(m));
  if (h->action != FR_ACT_NOP) return false;
  bool prio = false, mark = false, proto = false;
  int len = static_cast<int>(m->nlmsg_len - NLMSG_LENGTH(sizeof(fib_rule_hdr)));
  for (const rtattr* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(h) +
                                                         NLMSG_ALIGN(sizeof(fib_rule_hdr)));
       RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const void* d = RTA_DATA(a);
    size_t n = RTA_PAYLOAD(a);
    uint32_t u32 = 0;
    if (n >= sizeof u32) std::memcpy(&u32, d, sizeof u32);
    switch (a->rta_type) {
      case FRA_PRIORITY:
        prio = n >= 4 && u32 == rules::kProofMarkerPriority;
        break;
      case FRA_FWMARK:
        mark = n >= 4 && u32 == value;
        break;
      case FRA_PROTOCOL:
        proto = n >= 1 && *static_cast<const uint8_t*>(d) == rules::kProofMarkerProtocol;
        break;
      default:
        break;
    }
  }
  return prio && mark && proto;
}

}  // namespace

MarkerCheck CheckProofMarker(uint32_t value, std::string* error) {
  Fd s;
  s.fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s.fd < 0) {
    *error = std::string("netlink socket: ") + std::strerror(errno);
    return MarkerCheck::kError;
  }
  struct {
    nlmsghdr nh;
    fib_rule_hdr frh;
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(fib_rule_hdr));
  req.nh.nlmsg_type = RTM_GETRULE;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.frh.family = AF_INET;
  if (::send(s.fd, &req, req.nh.nlmsg_len, 0) < 0) {
    *error = std::string("netlink send: ") + std::strerror(errno);
    return MarkerCheck::kError;
  }
  alignas(nlmsghdr) char buf[16384];
  bool found = false;
  while (true) {
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = std::string("netlink recv: ") + std::strerror(errno);
      return MarkerCheck::kError;
    }
    if (n == 0) break;
    int left = static_cast<int>(n);
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(m, left);
         m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_type == NLMSG_DONE) return found ? MarkerCheck::kPresent : MarkerCheck::kAbsent;
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
        *error = std::string("ip rule dump: ") + std::strerror(-e->error);
        return MarkerCheck::kError;
      }
      if (m->nlmsg_type == RTM_NEWRULE && IsMarker(m, value)) found = true;
    }
  }
  return found ? MarkerCheck::kPresent : MarkerCheck::kAbsent;
}

}  // namespace pnc::waiter
