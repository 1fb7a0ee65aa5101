#include "netns/testing/netlink.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>  // before linux/ headers: they then skip their conflicting copies
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "netns/errno_status.h"
#include "netns/routing/netlink.h"

namespace pnc::netns::testing {
namespace {

// Sends one request with NLM_F_ACK on a fresh NETLINK_ROUTE socket of the calling thread's netns and waits
// for the kernel's ack. A fresh socket per request keeps this code free of shared state; the harness is not a
// hot path.
absl::Status Transact(nlmsghdr* nlh, const std::string& what) {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = nl->NextSeq();
  return nl->Request(nlh, what);
}

bool ParseAddress(const std::string& text, int* family, in6_addr* out) {
  if (inet_pton(AF_INET, text.c_str(), out) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

// IFLA_OPERSTATE of one link (IF_OPER_*), or -1 if the kernel did not report it.
absl::StatusOr<int> OperState(int ifindex) {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;  // the ack ends the wait after the one RTM_NEWLINK reply
  nlh->nlmsg_seq = nl->NextSeq();
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = ifindex;
  int state = -1;
  absl::Status s =
      nl->SendAndWait(nlh, nlh->nlmsg_len, nlh->nlmsg_seq, "get link", [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWLINK) return absl::OkStatus();
        ForEachAttr(reply, sizeof(ifinfomsg), [&](const nlattr* attr) {
          if (mnl_attr_get_type(attr) == IFLA_OPERSTATE && mnl_attr_validate(attr, MNL_TYPE_U8) >= 0) {
            state = mnl_attr_get_u8(attr);
          }
        });
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return state;
}

}  // namespace

absl::Status WaitOperUp(int ifindex, absl::Duration timeout) {
  constexpr int kOperUp = 6;  // IF_OPER_UP (linux/if.h, which clashes with net/if.h)
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<int> state = OperState(ifindex);
    if (!state.ok()) return state.status();
    if (*state == kOperUp) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("link ", ifindex, " not operationally up (state ",
                                                      *state, ") after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Microseconds(200));
  }
}

absl::Status SetLinkUp(int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = ifindex;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  return Transact(nlh, absl::StrCat("set link ", ifindex, " up"));
}

absl::Status CreateVethPair(const std::string& name, const std::string& peer_name, int peer_netns_fd) {
  if (name.size() >= IFNAMSIZ || peer_name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("interface name too long: ", name, "/", peer_name));
  }
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // The peer's attributes follow its own ifinfomsg header inside VETH_INFO_PEER.
  auto* peer_ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  peer_ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name.c_str());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
  return Transact(nlh, absl::StrCat("create veth ", name, "<->", peer_name));
}

absl::StatusOr<int> InterfaceIndex(const std::string& name) {
  unsigned idx = if_nametoindex(name.c_str());  // ioctl on a socket of the calling thread's netns
  if (idx == 0) return StatusFromErrno(errno, absl::StrCat("interface ", name));
  return static_cast<int>(idx);
}

absl::Status AddAddress(int ifindex, const std::string& address, int prefix_len) {
  int family;
  in6_addr addr;
  if (!ParseAddress(address, &family, &addr))
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address));
  const size_t len = family == AF_INET ? sizeof(in_addr) : sizeof(in6_addr);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = family;
  ifa->ifa_prefixlen = prefix_len;
  ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = ifindex;
  mnl_attr_put(nlh, IFA_LOCAL, len, &addr);
  mnl_attr_put(nlh, IFA_ADDRESS, len, &addr);
  return Transact(nlh, absl::StrCat("add address ", address, "/", prefix_len));
}

absl::Status AddDefaultRoute(int ifindex, const std::string& gateway) {
  int family;
  in6_addr gw;
  if (!ParseAddress(gateway, &family, &gw))
    return absl::InvalidArgumentError(absl::StrCat("bad gateway ", gateway));
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = family;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put(nlh, RTA_GATEWAY, family == AF_INET ? sizeof(in_addr) : sizeof(in6_addr), &gw);
  mnl_attr_put_u32(nlh, RTA_OIF, ifindex);
  return Transact(nlh, absl::StrCat("add default route via ", gateway));
}

}  // namespace pnc::netns::testing
