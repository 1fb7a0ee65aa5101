#include "netns/routing/routing.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "netns/routing/netlink.h"

namespace pnc::netns {
namespace {

using rules::Family;
using rules::PolicyRoute;

// The kernel gives the loopback device ifindex 1 in every network namespace (LOOPBACK_IFINDEX).
constexpr uint32_t kLoopbackIfindex = 1;
constexpr uint32_t kFullMask = 0xffffffff;

int AddressFamily(Family f) { return f == Family::kIPv4 ? AF_INET : AF_INET6; }
const char* FamilyFlag(Family f) { return f == Family::kIPv4 ? "-4" : "-6"; }

// A policy rule as the kernel reports it (only the fields we set or that would make it not ours-as-planned).
struct RuleEntry {
  Family family;
  uint8_t protocol = 0;
  uint8_t action = 0;
  uint8_t dst_len = 0, src_len = 0;
  uint32_t priority = 0;
  std::optional<uint32_t> fwmark, fwmask;
  uint32_t table = 0;
  bool has_other_selectors = false;  // iif/oif/uid/ports...: not a plain fwmark rule
};

struct RouteEntry {
  Family family;
  uint8_t protocol = 0;
  uint8_t type = 0;
  uint8_t dst_len = 0;
  uint32_t table = 0;
  std::optional<uint32_t> oif, priority;
  bool has_gateway = false;
  std::vector<uint8_t> dst;  // raw RTA_DST, for deletes
};

bool IsPlannedRule(const RuleEntry& r, const PolicyRoute& p) {
  return r.family == p.family && r.action == FR_ACT_TO_TBL && r.dst_len == 0 && r.src_len == 0 &&
         r.priority == kRulePriority && r.fwmark == p.fwmark && r.fwmask.value_or(kFullMask) == kFullMask &&
         r.table == p.table && !r.has_other_selectors;
}

bool IsPlannedRoute(const RouteEntry& r) {
  return r.type == RTN_LOCAL && r.dst_len == 0 && r.oif == kLoopbackIfindex && !r.has_gateway;
}

// Families we manage, from an rtnetlink family byte (other families, e.g. MPLS, are skipped).
std::optional<Family> FamilyOf(int af) {
  if (af == AF_INET) return Family::kIPv4;
  if (af == AF_INET6) return Family::kIPv6;
  return std::nullopt;
}

// One AF_UNSPEC dump covers both families (and works where IPv6 is disabled).
absl::StatusOr<std::vector<RuleEntry>> DumpOurRules(MnlSocket& nl) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  fib_rule_hdr* frh = nullptr;
  nlmsghdr* nlh = PutRequest(buf, RTM_GETRULE, NLM_F_DUMP, nl.NextSeq(), &frh);
  frh->family = AF_UNSPEC;
  std::vector<RuleEntry> out;
  absl::Status s = nl.Dump(nlh, "dump ip rules", [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWRULE) return absl::OkStatus();
    const auto* h = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(m));
    std::optional<Family> family = FamilyOf(h->family);
    if (!family) return absl::OkStatus();
    RuleEntry e{.family = *family,
                .action = h->action,
                .dst_len = h->dst_len,
                .src_len = h->src_len,
                .table = h->table};
    ForEachAttr(m, sizeof(fib_rule_hdr), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case FRA_PROTOCOL:
          e.protocol = mnl_attr_get_u8(a);
          break;
        case FRA_PRIORITY:
          e.priority = mnl_attr_get_u32(a);
          break;
        case FRA_FWMARK:
          e.fwmark = mnl_attr_get_u32(a);
          break;
        case FRA_FWMASK:
          e.fwmask = mnl_attr_get_u32(a);
          break;
        case FRA_TABLE:
          e.table = mnl_attr_get_u32(a);
          break;
        case FRA_IIFNAME:
        case FRA_OIFNAME:
        case FRA_UID_RANGE:
        case FRA_IP_PROTO:
        case FRA_SPORT_RANGE:
        case FRA_DPORT_RANGE:
        case FRA_GOTO:
        case FRA_L3MDEV:
          e.has_other_selectors = true;
          break;
        default:
          break;
      }
    });
    if (e.protocol == kRouteProtocol) out.push_back(e);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<RouteEntry>> DumpOurRoutes(MnlSocket& nl) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  rtmsg* rtm = nullptr;
  nlmsghdr* nlh = PutRequest(buf, RTM_GETROUTE, NLM_F_DUMP, nl.NextSeq(), &rtm);
  rtm->rtm_family = AF_UNSPEC;
  // Only routes of our protocol: the kernel skips the others (the pod's own routes are most of the dump).
  nl.EnableDumpFilters();
  rtm->rtm_protocol = kRouteProtocol;
  std::vector<RouteEntry> out;
  absl::Status s = nl.Dump(nlh, "dump ip routes", [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWROUTE) return absl::OkStatus();
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
    std::optional<Family> family = FamilyOf(r->rtm_family);
    if (!family || r->rtm_protocol != kRouteProtocol) return absl::OkStatus();
    RouteEntry e{.family = *family,
                 .protocol = r->rtm_protocol,
                 .type = r->rtm_type,
                 .dst_len = r->rtm_dst_len,
                 .table = r->rtm_table};
    ForEachAttr(m, sizeof(rtmsg), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case RTA_TABLE:
          e.table = mnl_attr_get_u32(a);
          break;
        case RTA_OIF:
          e.oif = mnl_attr_get_u32(a);
          break;
        case RTA_PRIORITY:
          e.priority = mnl_attr_get_u32(a);
          break;
        case RTA_GATEWAY:
        case RTA_MULTIPATH:
        case RTA_VIA:
          e.has_gateway = true;
          break;
        case RTA_DST: {
          const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(a));
          e.dst.assign(p, p + mnl_attr_get_payload_len(a));
          break;
        }
        default:
          break;
      }
    });
    out.push_back(std::move(e));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

// Builds the attributes shared by add and delete of our fwmark rule.
nlmsghdr* PutRule(char* buf, uint16_t type, uint16_t flags, uint32_t seq, Family family, uint8_t action,
                  uint32_t priority, std::optional<uint32_t> fwmark, std::optional<uint32_t> fwmask,
                  uint32_t table) {
  fib_rule_hdr* frh = nullptr;
  nlmsghdr* nlh = PutRequest(buf, type, NLM_F_ACK | flags, seq, &frh);
  frh->family = AddressFamily(family);
  frh->action = action;
  frh->table = table < 256 ? table : RT_TABLE_UNSPEC;
  mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  if (fwmark) mnl_attr_put_u32(nlh, FRA_FWMARK, *fwmark);
  if (fwmask) mnl_attr_put_u32(nlh, FRA_FWMASK, *fwmask);
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  mnl_attr_put_u8(nlh, FRA_PROTOCOL, kRouteProtocol);
  return nlh;
}

absl::Status AddRule(MnlSocket& nl, const PolicyRoute& p) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = PutRule(buf, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, nl.NextSeq(), p.family, FR_ACT_TO_TBL,
                          kRulePriority, p.fwmark, kFullMask, p.table);
  return nl.Request(
      nlh, absl::StrCat("ip ", FamilyFlag(p.family), " rule add fwmark ", p.fwmark, " lookup ", p.table));
}

absl::Status DeleteRule(MnlSocket& nl, const RuleEntry& r) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh =
      PutRule(buf, RTM_DELRULE, 0, nl.NextSeq(), r.family, r.action, r.priority, r.fwmark, r.fwmask, r.table);
  absl::Status s = nl.Request(nlh, absl::StrCat("ip ", FamilyFlag(r.family), " rule del (proto ",
                                                kRouteProtocol, ", table ", r.table, ")"));
  return absl::IsNotFound(s) ? absl::OkStatus() : s;  // gone already: fine
}

nlmsghdr* PutRoute(char* buf, uint16_t type, uint16_t flags, uint32_t seq, Family family, uint8_t route_type,
                   uint8_t dst_len, const std::vector<uint8_t>& dst, uint32_t table,
                   std::optional<uint32_t> oif, std::optional<uint32_t> priority) {
  rtmsg* rtm = nullptr;
  nlmsghdr* nlh = PutRequest(buf, type, NLM_F_ACK | flags, seq, &rtm);
  rtm->rtm_family = AddressFamily(family);
  rtm->rtm_dst_len = dst_len;
  rtm->rtm_table = table < 256 ? table : RT_TABLE_UNSPEC;
  rtm->rtm_protocol = kRouteProtocol;
  rtm->rtm_scope = RT_SCOPE_HOST;
  rtm->rtm_type = route_type;
  if (!dst.empty()) mnl_attr_put(nlh, RTA_DST, dst.size(), dst.data());
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  if (oif) mnl_attr_put_u32(nlh, RTA_OIF, *oif);
  if (priority) mnl_attr_put_u32(nlh, RTA_PRIORITY, *priority);
  return nlh;
}

absl::Status AddRoute(MnlSocket& nl, Family family, uint32_t table) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = PutRoute(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, nl.NextSeq(), family, RTN_LOCAL,
                           0, {}, table, kLoopbackIfindex, std::nullopt);
  return nl.Request(
      nlh, absl::StrCat("ip ", FamilyFlag(family), " route replace local default dev lo table ", table));
}

absl::Status DeleteRoute(MnlSocket& nl, const RouteEntry& r) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = PutRoute(buf, RTM_DELROUTE, 0, nl.NextSeq(), r.family, r.type, r.dst_len, r.dst, r.table,
                           r.oif, r.priority);
  absl::Status s = nl.Request(nlh, absl::StrCat("ip ", FamilyFlag(r.family), " route del (proto ",
                                                kRouteProtocol, ", table ", r.table, ")"));
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

struct OurState {
  std::vector<RuleEntry> rules;
  std::vector<RouteEntry> routes;
};

absl::StatusOr<OurState> DumpAll(MnlSocket& nl) {
  OurState st;
  absl::StatusOr<std::vector<RuleEntry>> r = DumpOurRules(nl);
  if (!r.ok()) return r.status();
  st.rules = std::move(*r);
  absl::StatusOr<std::vector<RouteEntry>> rt = DumpOurRoutes(nl);
  if (!rt.ok()) return rt.status();
  st.routes = std::move(*rt);
  return st;
}

// Our rules of the planned shape, as PolicyRoutes (not yet checked for their route).
std::vector<PolicyRoute> PlannedShapeRules(const std::vector<RuleEntry>& rules) {
  std::vector<PolicyRoute> out;
  for (const RuleEntry& r : rules) {
    if (!r.fwmark) continue;
    PolicyRoute p{.family = r.family, .fwmark = *r.fwmark, .table = r.table};
    if (IsPlannedRule(r, p)) out.push_back(p);
  }
  return out;
}

// ReadPolicyRoutes' answer: the candidates whose table holds our planned route, in canonical order.
std::vector<PolicyRoute> Routed(const std::vector<PolicyRoute>& candidates,
                                const std::vector<RouteEntry>& routes) {
  std::vector<PolicyRoute> out;
  for (const PolicyRoute& p : candidates) {
    bool routed = std::any_of(routes.begin(), routes.end(), [&](const RouteEntry& rt) {
      return rt.family == p.family && rt.table == p.table && IsPlannedRoute(rt);
    });
    if (routed) out.push_back(p);
  }
  SortPolicyRoutes(out);
  return out;
}

}  // namespace

void SortPolicyRoutes(std::vector<PolicyRoute>& routes) {
  std::sort(routes.begin(), routes.end(), [](const PolicyRoute& a, const PolicyRoute& b) {
    return std::tuple(a.family == Family::kIPv6, a.table, a.fwmark) <
           std::tuple(b.family == Family::kIPv6, b.table, b.fwmark);
  });
}

absl::Status SyncPolicyRoutes(const std::vector<PolicyRoute>& want) {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  return SyncPolicyRoutes(*nl, want);
}

absl::Status SyncPolicyRoutes(MnlSocket& rtnl, const std::vector<PolicyRoute>& want,
                              std::optional<std::vector<PolicyRoute>>* read_if_unchanged) {
  if (read_if_unchanged != nullptr) read_if_unchanged->reset();
  absl::StatusOr<OurState> have = DumpAll(rtnl);
  if (!have.ok()) return have.status();
  bool sent = false;

  // Routes first: a rule must not point at a table that lacks its route.
  std::set<std::pair<Family, uint32_t>> want_tables;
  for (const PolicyRoute& p : want) want_tables.insert({p.family, p.table});
  std::vector<bool> keep_route(have->routes.size(), false);
  for (const auto& [family, table] : want_tables) {
    bool present = false;
    for (size_t i = 0; i < have->routes.size(); ++i) {
      const RouteEntry& r = have->routes[i];
      if (r.family == family && r.table == table && IsPlannedRoute(r) && !present) {
        present = true;
        keep_route[i] = true;
      }
    }
    if (!present) {
      sent = true;
      if (absl::Status s = AddRoute(rtnl, family, table); !s.ok()) return s;
    }
  }

  std::vector<bool> keep_rule(have->rules.size(), false);
  std::set<std::tuple<Family, uint32_t, uint32_t>> seen;
  for (const PolicyRoute& p : want) {
    if (!seen.insert({p.family, p.fwmark, p.table}).second) continue;  // duplicate in input
    bool present = false;
    for (size_t i = 0; i < have->rules.size(); ++i) {
      if (!keep_rule[i] && IsPlannedRule(have->rules[i], p)) {
        keep_rule[i] = true;
        present = true;
        break;
      }
    }
    if (!present) {
      sent = true;
      if (absl::Status s = AddRule(rtnl, p); !s.ok()) return s;
    }
  }

  // Then remove our stale entries (rules before the routes they may point at).
  for (size_t i = 0; i < have->rules.size(); ++i) {
    if (keep_rule[i]) continue;
    sent = true;
    if (absl::Status s = DeleteRule(rtnl, have->rules[i]); !s.ok()) return s;
  }
  for (size_t i = 0; i < have->routes.size(); ++i) {
    const RouteEntry& r = have->routes[i];
    // A planned route that was replaced in place above is the same kernel entry: keep it.
    if (keep_route[i] || (IsPlannedRoute(r) && want_tables.count({r.family, r.table}))) continue;
    sent = true;
    if (absl::Status s = DeleteRoute(rtnl, r); !s.ok()) return s;
  }
  if (!sent && read_if_unchanged != nullptr)
    *read_if_unchanged = Routed(PlannedShapeRules(have->rules), have->routes);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> ReadNopRules(MnlSocket& rtnl, uint32_t priority) {
  absl::StatusOr<std::vector<RuleEntry>> rules = DumpOurRules(rtnl);
  if (!rules.ok()) return rules.status();
  std::vector<uint32_t> out;
  for (const RuleEntry& r : *rules) {
    if (r.family == Family::kIPv4 && r.action == FR_ACT_NOP && r.priority == priority && r.fwmark)
      out.push_back(*r.fwmark);
  }
  return out;
}

absl::Status AddNopRule(MnlSocket& rtnl, uint32_t priority, uint32_t fwmark) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = PutRule(buf, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, rtnl.NextSeq(), Family::kIPv4,
                          FR_ACT_NOP, priority, fwmark, kFullMask, 0);
  return rtnl.Request(nlh, absl::StrCat("ip rule add priority ", priority, " fwmark ", fwmark, " nop"));
}

absl::Status DeleteNopRule(MnlSocket& rtnl, uint32_t priority, uint32_t fwmark) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh =
      PutRule(buf, RTM_DELRULE, 0, rtnl.NextSeq(), Family::kIPv4, FR_ACT_NOP, priority, fwmark, kFullMask, 0);
  absl::Status s =
      rtnl.Request(nlh, absl::StrCat("ip rule del priority ", priority, " fwmark ", fwmark, " nop"));
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::StatusOr<std::vector<PolicyRoute>> ReadPolicyRoutes() {
  absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
  if (!nl.ok()) return nl.status();
  return ReadPolicyRoutes(*nl);
}

absl::StatusOr<std::vector<PolicyRoute>> ReadPolicyRoutes(MnlSocket& nl) {
  absl::StatusOr<std::vector<RuleEntry>> rules = DumpOurRules(nl);
  if (!rules.ok()) return rules.status();
  // Only a planned-shape rule of ours can be reported, and only if its table holds our route: without such a
  // rule the answer is empty whatever the routes are, so the route dump is skipped (most pods: REDIRECT
  // mode).
  std::vector<PolicyRoute> candidates = PlannedShapeRules(*rules);
  if (candidates.empty()) return candidates;
  absl::StatusOr<std::vector<RouteEntry>> routes = DumpOurRoutes(nl);
  if (!routes.ok()) return routes.status();
  return Routed(candidates, *routes);
}

}  // namespace pnc::netns
