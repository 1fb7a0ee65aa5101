// The rule layout: RedirectPlan -> Ruleset, following istio-iptables
// (tools/istio-iptables/pkg/capture/run.go) as the Istio CNI plugin drives it (cni/pkg/plugin). See plan.h
// for the layout and the documented differences. Pure and deterministic.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rules/plan.h"

namespace pnc::rules {

namespace {

constexpr char kInbound[] = "ISTIO_INBOUND";
constexpr char kInRedirect[] = "ISTIO_IN_REDIRECT";
constexpr char kRedirect[] = "ISTIO_REDIRECT";
constexpr char kOutput[] = "ISTIO_OUTPUT";
constexpr char kOutputDns[] = "ISTIO_OUTPUT_DNS";
constexpr char kDivert[] = "ISTIO_DIVERT";
constexpr char kTproxy[] = "ISTIO_TPROXY";
constexpr char kSaveMark[] = "ISTIO_SAVE_MARK";

// Tiny fluent builder so the rule lists below read like the iptables they produce.
struct R {
  Rule r;
  R& tcp() {
    r.protocol = Protocol::kTcp;
    return *this;
  }
  R& udp() {
    r.protocol = Protocol::kUdp;
    return *this;
  }
  R& proto(Protocol p) {
    r.protocol = p;
    return *this;
  }
  R& src(const Cidr& c, bool neg = false) {
    r.source = Negatable<Cidr>{c, neg};
    return *this;
  }
  R& dst(const Cidr& c, bool neg = false) {
    r.destination = Negatable<Cidr>{c, neg};
    return *this;
  }
  R& in(const std::string& i, bool neg = false) {
    r.in_interface = Negatable<std::string>{i, neg};
    return *this;
  }
  R& out(const std::string& o, bool neg = false) {
    r.out_interface = Negatable<std::string>{o, neg};
    return *this;
  }
  R& sport(uint16_t p) {
    r.source_port = Negatable<uint16_t>{p, false};
    return *this;
  }
  R& dport(uint16_t p, bool neg = false) {
    r.destination_port = Negatable<uint16_t>{p, neg};
    return *this;
  }
  R& uid(uint32_t u, bool neg = false) {
    r.uid_owner = Negatable<uint32_t>{u, neg};
    return *this;
  }
  R& gid(uint32_t g, bool neg = false) {
    r.gid_owner = Negatable<uint32_t>{g, neg};
    return *this;
  }
  R& mark(uint32_t m, bool neg = false) {
    r.mark = Negatable<uint32_t>{m, neg};
    return *this;
  }
  R& established() {
    r.ct_related_established = true;
    return *this;
  }
  R& connmark(uint32_t m) {
    r.connmark = m;
    return *this;
  }
  R& transparent() {
    r.socket_transparent = true;
    return *this;
  }
  Rule jump(const char* chain) {
    r.target = JumpTarget{chain};
    return r;
  }
  Rule ret() {
    r.target = ReturnTarget{};
    return r;
  }
  Rule accept() {
    r.target = AcceptTarget{};
    return r;
  }
  Rule redirect(uint16_t port) {
    r.target = RedirectTarget{port};
    return r;
  }
  Rule tproxy(uint16_t port, uint32_t m) {
    r.target = TproxyTarget{port, m, 0xffffffff};
    return r;
  }
  Rule set_mark(uint32_t m) {
    r.target = MarkTarget{m, 0xffffffff};
    return r;
  }
  Rule connmark_op(ConnmarkTarget::Op op) {
    r.target = ConnmarkTarget{op};
    return r;
  }
  Rule ct_zone(uint16_t z) {
    r.target = CtZoneTarget{z};
    return r;
  }
};

Cidr Host(Family f, const char* v4, const char* v6) {
  return f == Family::kIPv4 ? Cidr{Family::kIPv4, v4, 32} : Cidr{Family::kIPv6, v6, 128};
}

int BuiltinRank(const std::string& name) {
  static constexpr absl::string_view kOrder[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  for (int i = 0; i < 5; ++i)
    if (name == kOrder[i]) return i;
  return 5;
}

// Accumulates chains of one table, then emits them in canonical order (built-ins fixed, ours by name).
class TableBuilder {
 public:
  explicit TableBuilder(Table t) : table_(t) {}
  std::vector<Rule>& operator[](const std::string& chain) {
    for (auto& c : chains_)
      if (c.name == chain) return c.rules;
    chains_.push_back(Chain{chain, {}});
    return chains_.back().rules;
  }
  bool empty() const { return chains_.empty(); }
  TableRules Finish() && {
    std::stable_sort(chains_.begin(), chains_.end(), [](const Chain& a, const Chain& b) {
      int ra = a.builtin() ? BuiltinRank(a.name) : 5, rb = b.builtin() ? BuiltinRank(b.name) : 5;
      if (ra != rb) return ra < rb;
      return !a.builtin() && a.name < b.name;
    });
    return TableRules{table_, std::move(chains_)};
  }

 private:
  Table table_;
  std::vector<Chain> chains_;
};

// Go's netip.Addr.IsLoopback on the (normalised) network address: 127.0.0.0/8 or ::1.
bool IsLoopbackCidr(const Cidr& c) {
  if (c.family == Family::kIPv4) return c.address.rfind("127.", 0) == 0;
  return c.address == "::1";
}

FamilyRules BuildFamily(const RedirectPlan& plan, Family f) {
  const Cidr loopback = Host(f, "127.0.0.1", "::1");
  const Cidr passthrough = Host(f, "127.0.0.6", "::6");
  const uint32_t uid = plan.proxy_uid, gid = plan.proxy_gid;
  const bool tproxy = plan.mode == InterceptionMode::kTproxy;
  const bool inbound = plan.capture_all_inbound || !plan.include_inbound_ports.empty();
  const bool dns = plan.capture_dns;
  const auto& include_cidrs =
      f == Family::kIPv4 ? plan.include_outbound_cidrs_v4 : plan.include_outbound_cidrs_v6;
  const auto& exclude_cidrs =
      f == Family::kIPv4 ? plan.exclude_outbound_cidrs_v4 : plan.exclude_outbound_cidrs_v6;
  // Istio: "If loopback explicitly set via OutboundIPRangesInclude, then don't return" -- over BOTH families.
  bool include_loopback = false;
  for (const auto* list : {&plan.include_outbound_cidrs_v4, &plan.include_outbound_cidrs_v6})
    for (const Cidr& c : *list) include_loopback |= IsLoopbackCidr(c);
  if (plan.capture_all_outbound) include_loopback = false;

  FamilyRules fr;
  fr.family = f;

  // raw: DNS conntrack zones (addDNSConntrackZones, capture-all form as the CNI plugin sets it). xt_CT keeps
  // the FIRST zone assigned to a packet, so the proxy's rules come first.
  TableBuilder raw(Table::kRaw);
  if (dns) {
    raw["OUTPUT"].push_back(R().jump(kOutputDns));
    raw["PREROUTING"].push_back(R().jump(kInbound));
    auto& out = raw[kOutputDns];
    out.push_back(R().udp().dport(53).uid(uid).ct_zone(kDnsUpstreamCtZone));
    out.push_back(R().udp().sport(kDnsCapturePort).uid(uid).ct_zone(kDnsCapturedCtZone));
    out.push_back(R().udp().dport(53).gid(gid).ct_zone(kDnsUpstreamCtZone));
    out.push_back(R().udp().sport(kDnsCapturePort).gid(gid).ct_zone(kDnsCapturedCtZone));
    out.push_back(R().udp().dport(53).ct_zone(kDnsCapturedCtZone));
    raw[kInbound].push_back(R().udp().sport(53).ct_zone(kDnsUpstreamCtZone));
  }

  // mangle: TPROXY (handleInboundPortsInclude + the TPROXY block at the end of Run()).
  TableBuilder mangle(Table::kMangle);
  if (tproxy) {
    if (inbound) {
      mangle["PREROUTING"].push_back(R().tcp().jump(kInbound));
      auto& in = mangle[kInbound];
      for (const auto& i : plan.exclude_interfaces) in.push_back(R().in(i).ret());
      // Istio inserts these three at positions 1..3: the proxy's own marked upstream leg, its passthrough
      // from 127.0.0.6, and anything else on lo that the proxy did not mark 1338 (app -> own pod IP).
      in.push_back(R().tcp().mark(kTproxyMark).ret());
      in.push_back(R().src(passthrough).in("lo").tcp().ret());
      in.push_back(R().in("lo").tcp().mark(kTproxyOutboundMark, true).ret());
      if (plan.capture_all_inbound) {
        for (uint16_t p : plan.exclude_inbound_ports) in.push_back(R().tcp().dport(p).ret());
        in.push_back(R().tcp().established().jump(kDivert));
        in.push_back(R().tcp().jump(kTproxy));
      } else {
        for (uint16_t p : plan.include_inbound_ports) {
          in.push_back(R().tcp().dport(p).established().jump(kDivert));
          in.push_back(R().tcp().dport(p).jump(kTproxy));
        }
      }
      mangle[kDivert].push_back(R().set_mark(kTproxyMark));
      mangle[kDivert].push_back(R().accept());
      mangle[kTproxy].push_back(R().dst(loopback, true).tcp().tproxy(kInboundCapturePort, kTproxyMark));
    }
    // Save the mark Envoy's original_src listener filter put on its upstream leg as the connection mark.
    mangle["PREROUTING"].push_back(R().tcp().mark(kTproxyMark).jump(kSaveMark));
    mangle[kSaveMark].push_back(R().connmark_op(ConnmarkTarget::Op::kSave));
    mangle["OUTPUT"].push_back(R().jump(kOutput));
    auto& out = mangle[kOutput];
    for (const auto& i : plan.exclude_interfaces) out.push_back(R().out(i).ret());
    out.push_back(R().out("lo").tcp().mark(kTproxyMark).ret());
    out.push_back(R().dst(loopback, true).out("lo").tcp().uid(uid).set_mark(kTproxyOutboundMark));
    out.push_back(R().dst(loopback, true).out("lo").tcp().gid(gid).set_mark(kTproxyOutboundMark));
    // Replies of the app on a marked connection: restore the mark so policy routing (fwmark -> table 133,
    // local default via lo) delivers them to Envoy's transparent socket.
    out.push_back(R().tcp().connmark(kTproxyMark).connmark_op(ConnmarkTarget::Op::kRestore));
  }

  // nat.
  TableBuilder nat(Table::kNat);
  // Rerouted (VM) interfaces: their traffic to the included ranges goes to the OUTBOUND capture
  // (handleOutboundIncludeRules); the rest of it is not captured at all (shortCircuitKubeInternalInterface).
  for (const auto& i : plan.reroute_interfaces) {
    if (plan.capture_all_outbound) {
      nat["PREROUTING"].push_back(R().in(i).jump(kRedirect));
    } else {
      for (const auto& c : include_cidrs) nat["PREROUTING"].push_back(R().in(i).dst(c).jump(kRedirect));
    }
  }
  if (!tproxy && inbound) {
    nat["PREROUTING"].push_back(R().tcp().jump(kInbound));
    auto& in = nat[kInbound];
    for (const auto& i : plan.reroute_interfaces) in.push_back(R().in(i).ret());
    for (const auto& i : plan.exclude_interfaces) in.push_back(R().in(i).ret());
    in.push_back(R().tcp().dport(kHboneTunnelPort).ret());
    if (plan.capture_all_inbound) {
      for (uint16_t p : plan.exclude_inbound_ports) in.push_back(R().tcp().dport(p).ret());
      in.push_back(R().tcp().jump(kInRedirect));
    } else {
      for (uint16_t p : plan.include_inbound_ports) in.push_back(R().tcp().dport(p).jump(kInRedirect));
    }
  }
  nat[kInRedirect].push_back(R().tcp().redirect(kInboundCapturePort));
  nat[kRedirect].push_back(R().tcp().redirect(kOutboundCapturePort));
  nat["OUTPUT"].push_back(R().jump(kOutput));
  auto& out = nat[kOutput];
  for (const auto& i : plan.exclude_interfaces) out.push_back(R().out(i).ret());
  for (uint16_t p : plan.exclude_outbound_ports) {
    out.push_back(R().tcp().dport(p).ret());
    out.push_back(R().udp().dport(p).ret());
  }
  out.push_back(R().src(passthrough).out("lo").ret());
  // Per proxy id: the proxy's own connection to a local non-loopback address (app -> VIP -> Envoy outbound
  // -> the pod's own IP) goes to the inbound listener; other lo traffic of the app returns (unless loopback
  // is an included range); the proxy's traffic returns. With DNS, tcp/53 on lo is left to the DNS capture.
  for (bool by_uid : {true, false}) {
    auto owner = [&](R r, bool neg = false) -> R {
      return by_uid ? std::move(r.uid(uid, neg)) : std::move(r.gid(gid, neg));
    };
    if (dns && by_uid)
      // Istio matches `-m multiport ! --dports 53,15008` here (uid only); a single-port model says the same
      // with this RETURN first: the proxy's tcp/53 on lo skips ISTIO_IN_REDIRECT and reaches the RETURN
      // below in Istio's rules too.
      out.push_back(owner(R().dst(loopback, true).out("lo").tcp().dport(53)).ret());
    out.push_back(
        owner(R().dst(loopback, true).out("lo").tcp().dport(kHboneTunnelPort, true)).jump(kInRedirect));
    if (!include_loopback) {
      if (dns)
        out.push_back(owner(R().out("lo").tcp().dport(53, true), true).ret());
      else
        out.push_back(owner(R().out("lo"), true).ret());
    }
    out.push_back(owner(R()).ret());
  }
  if (dns) out.push_back(R().jump(kOutputDns));
  out.push_back(R().dst(loopback).ret());
  for (const auto& c : exclude_cidrs) out.push_back(R().dst(c).ret());
  for (uint16_t p : plan.include_outbound_ports) out.push_back(R().tcp().dport(p).jump(kRedirect));
  if (plan.capture_all_outbound) {
    out.push_back(R().jump(kRedirect));
  } else {
    for (const auto& c : include_cidrs) out.push_back(R().dst(c).jump(kRedirect));
  }

  if (dns) {  // after the last use of `out`: adding a chain may move the others
    nat[kOutputDns].push_back(R().tcp().dport(53).redirect(kDnsCapturePort));
    nat[kOutputDns].push_back(R().udp().dport(53).redirect(kDnsCapturePort));
  }

  if (!raw.empty()) fr.tables.push_back(std::move(raw).Finish());
  if (!mangle.empty()) fr.tables.push_back(std::move(mangle).Finish());
  fr.tables.push_back(std::move(nat).Finish());
  return fr;
}

}  // namespace

Ruleset BuildRuleset(const RedirectPlan& plan) {
  Ruleset rs;
  // tools/common/tproxy: the fwmark rule and the local route exist when inbound ports are captured in
  // TPROXY mode, per programmed family.
  const bool tproxy_routes = plan.mode == InterceptionMode::kTproxy &&
                             (plan.capture_all_inbound || !plan.include_inbound_ports.empty());
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    if ((f == Family::kIPv4 && !plan.ipv4) || (f == Family::kIPv6 && !plan.ipv6)) continue;
    rs.families.push_back(BuildFamily(plan, f));
    if (tproxy_routes) rs.routes.push_back(PolicyRoute{f, kTproxyMark, kTproxyRouteTable});
  }
  // configureIPv6Addresses: ::6/128 on lo whenever IPv6 is programmed (REDIRECT and TPROXY alike).
  if (plan.ipv6) rs.loopback_addresses.push_back(Cidr{Family::kIPv6, "::6", 128});
  return rs;
}

}  // namespace pnc::rules
