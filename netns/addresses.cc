#include "netns/addresses.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "netns/executor.h"
#include "netns/routing/netlink.h"

namespace pnc::netns {

std::string InterfaceAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, addr.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

absl::StatusOr<std::vector<InterfaceAddress>> DumpCurrentNetnsAddresses() {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  char buf[MNL_SOCKET_BUFFER_SIZE];
  ifaddrmsg* ifa = nullptr;
  nlmsghdr* nlh = PutRequest(buf, RTM_GETADDR, NLM_F_DUMP, nl->NextSeq(), &ifa);
  ifa->ifa_family = AF_UNSPEC;
  std::vector<InterfaceAddress> out;
  absl::Status s = nl->Dump(nlh, "dump addresses", [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWADDR) return absl::OkStatus();
    const auto* a = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (a->ifa_family != AF_INET && a->ifa_family != AF_INET6) return absl::OkStatus();
    const size_t len = a->ifa_family == AF_INET ? 4 : 16;
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point links); IPv6 sends
    // IFA_ADDRESS only.
    const nlattr* local = nullptr;
    const nlattr* address = nullptr;
    ForEachAttr(m, sizeof(ifaddrmsg), [&](const nlattr* attr) {
      if (mnl_attr_get_payload_len(attr) != len) return;
      if (mnl_attr_get_type(attr) == IFA_LOCAL) local = attr;
      if (mnl_attr_get_type(attr) == IFA_ADDRESS) address = attr;
    });
    const nlattr* use = local != nullptr ? local : address;
    if (use == nullptr) return absl::OkStatus();
    InterfaceAddress ia;
    ia.family = a->ifa_family;
    ia.scope = a->ifa_scope;
    ia.ifindex = static_cast<int>(a->ifa_index);
    std::memcpy(ia.addr.data(), mnl_attr_get_payload(use), len);
    out.push_back(ia);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadGlobalAddresses(const NetnsHandle& ns) {
  std::vector<std::string> out;
  absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
    absl::StatusOr<std::vector<InterfaceAddress>> all = DumpCurrentNetnsAddresses();
    if (!all.ok()) return all.status();
    for (const InterfaceAddress& a : *all) {
      if (a.scope == RT_SCOPE_UNIVERSE) out.push_back(a.ToString());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace pnc::netns
