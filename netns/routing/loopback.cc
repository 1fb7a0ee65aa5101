#include "netns/routing/loopback.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "netns/routing/netlink.h"

namespace pnc::netns {
namespace {

using rules::Cidr;
using rules::Family;

// The kernel gives the loopback device ifindex 1 in every network namespace (LOOPBACK_IFINDEX).
constexpr uint32_t kLoopbackIfindex = 1;

struct AddressEntry {
  Cidr cidr;
  uint8_t protocol = 0;
};

int AddressFamily(Family f) { return f == Family::kIPv4 ? AF_INET : AF_INET6; }

std::string CidrText(const Cidr& c) { return absl::StrCat(c.address, "/", c.prefix_len); }

// Every address on lo (both families), with its protocol.
absl::StatusOr<std::vector<AddressEntry>> DumpLoopback(MnlSocket& nl) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  ifaddrmsg* ifa = nullptr;
  nlmsghdr* nlh = PutRequest(buf, RTM_GETADDR, NLM_F_DUMP, nl.NextSeq(), &ifa);
  ifa->ifa_family = AF_UNSPEC;
  nl.EnableDumpFilters();
  ifa->ifa_index = kLoopbackIfindex;  // lo only (the kernel skips the other devices)
  std::vector<AddressEntry> out;
  absl::Status s = nl.Dump(nlh, "dump addresses", [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWADDR) return absl::OkStatus();
    const auto* h = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (h->ifa_index != kLoopbackIfindex || (h->ifa_family != AF_INET && h->ifa_family != AF_INET6))
      return absl::OkStatus();
    AddressEntry e;
    e.cidr.family = h->ifa_family == AF_INET ? Family::kIPv4 : Family::kIPv6;
    e.cidr.prefix_len = h->ifa_prefixlen;
    const void* local = nullptr;
    const void* address = nullptr;
    ForEachAttr(m, sizeof(ifaddrmsg), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case IFA_LOCAL:
          local = mnl_attr_get_payload(a);
          break;
        case IFA_ADDRESS:
          address = mnl_attr_get_payload(a);
          break;
        case IFA_PROTO:
          e.protocol = mnl_attr_get_u8(a);
          break;
        default:
          break;
      }
    });
    const void* raw = local != nullptr ? local : address;  // IPv4 reports IFA_LOCAL, IPv6 IFA_ADDRESS
    if (raw == nullptr) return absl::OkStatus();
    char text[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(h->ifa_family, raw, text, sizeof(text)) == nullptr) return absl::OkStatus();
    e.cidr.address = text;
    out.push_back(std::move(e));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status PutAddress(MnlSocket& nl, uint16_t type, uint16_t flags, const Cidr& c, bool with_protocol,
                        absl::string_view what) {
  unsigned char raw[sizeof(in6_addr)] = {};
  const int af = AddressFamily(c.family);
  if (inet_pton(af, c.address.c_str(), raw) != 1)
    return absl::InvalidArgumentError(absl::StrCat("loopback address ", CidrText(c), ": not an address"));
  const size_t len = c.family == Family::kIPv4 ? sizeof(in_addr) : sizeof(in6_addr);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  ifaddrmsg* ifa = nullptr;
  nlmsghdr* nlh = PutRequest(buf, type, NLM_F_ACK | flags, nl.NextSeq(), &ifa);
  ifa->ifa_family = af;
  ifa->ifa_prefixlen = c.prefix_len;
  ifa->ifa_index = kLoopbackIfindex;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;  // what `ip addr add` and Istio's netlink.AddrAdd use
  mnl_attr_put(nlh, IFA_LOCAL, len, raw);
  mnl_attr_put(nlh, IFA_ADDRESS, len, raw);
  if (with_protocol) mnl_attr_put_u8(nlh, IFA_PROTO, kAddressProtocol);
  if (type == RTM_NEWADDR && c.family == Family::kIPv6) {
    // Usable at once: without NODAD the kernel adds the address as tentative and clears that only when its
    // (asynchronous) DAD work runs, which on a loopback device does no detection at all; until then bind()
    // to it fails with EADDRNOTAVAIL. `ip addr add ... nodad` does the same.
    ifa->ifa_flags = IFA_F_NODAD;
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
  }
  return nl.Request(nlh, what);
}

bool HostPrefix(const Cidr& c) { return c.prefix_len == (c.family == Family::kIPv4 ? 32 : 128); }

// Ours among `have`, in ReadLoopbackAddresses' order.
std::vector<Cidr> Ours(const std::vector<AddressEntry>& have) {
  std::vector<Cidr> out;
  for (const AddressEntry& e : have)
    if (e.protocol == kAddressProtocol) out.push_back(e.cidr);
  std::sort(out.begin(), out.end(), [](const Cidr& a, const Cidr& b) {
    return std::tuple(a.family == Family::kIPv6, a.address, a.prefix_len) <
           std::tuple(b.family == Family::kIPv6, b.address, b.prefix_len);
  });
  return out;
}

}  // namespace

absl::Status SyncLoopbackAddresses(MnlSocket& rtnl, const std::vector<Cidr>& want,
                                   std::optional<std::vector<Cidr>>* read_if_unchanged) {
  if (read_if_unchanged != nullptr) read_if_unchanged->reset();
  for (const Cidr& c : want)
    if (!HostPrefix(c))
      return absl::InvalidArgumentError(
          absl::StrCat("loopback address ", CidrText(c), ": not a host address"));
  absl::StatusOr<std::vector<AddressEntry>> have = DumpLoopback(rtnl);
  if (!have.ok()) return have.status();
  bool sent = false;
  for (const Cidr& c : want) {
    auto it = std::find_if(have->begin(), have->end(), [&](const AddressEntry& e) { return e.cidr == c; });
    if (it != have->end() && it->protocol == kAddressProtocol) continue;
    // Absent: created with our protocol. Present but not ours: NLM_F_REPLACE sets our protocol in place.
    const bool present = it != have->end();
    sent = true;
    absl::Status s =
        PutAddress(rtnl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, c, true,
                   absl::StrCat("ip addr ", present ? "replace " : "add ", CidrText(c), " dev lo"));
    if (!s.ok()) return s;
  }
  for (const AddressEntry& e : *have) {
    if (e.protocol != kAddressProtocol || std::find(want.begin(), want.end(), e.cidr) != want.end()) continue;
    sent = true;
    absl::Status s = PutAddress(rtnl, RTM_DELADDR, 0, e.cidr, false,
                                absl::StrCat("ip addr del ", CidrText(e.cidr), " dev lo"));
    if (!s.ok() && !absl::IsNotFound(s)) return s;  // gone already: fine
  }
  if (!sent && read_if_unchanged != nullptr) *read_if_unchanged = Ours(*have);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Cidr>> ReadLoopbackAddresses(MnlSocket& rtnl) {
  absl::StatusOr<std::vector<AddressEntry>> have = DumpLoopback(rtnl);
  if (!have.ok()) return have.status();
  return Ours(*have);
}

}  // namespace pnc::netns
