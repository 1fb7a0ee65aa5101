#include "rules/plan.h"

#include <algorithm>
#include <bitset>
#include <set>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rules/annotations.h"
#include "rules/values.h"

namespace pnc::rules {
namespace {

using internal::ParseCidr;
using internal::ParsePort;
using internal::QuoteToken;

absl::Status Bad(absl::string_view key, absl::string_view token, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": ", QuoteToken(token, kMaxTokenInMessage), " ", what));
}

// Returns the annotation value after the checks that apply to every value we read (size, control characters).
absl::StatusOr<std::optional<absl::string_view>> GetValue(const std::map<std::string, std::string>& m,
                                                          const char* key) {
  auto it = m.find(key);
  if (it == m.end()) return std::optional<absl::string_view>();
  absl::string_view v = it->second;
  if (v.size() > kMaxAnnotationBytes)
    return absl::InvalidArgumentError(absl::StrCat(key, ": value is ", v.size(),
                                                   " bytes, more than the limit of ", kMaxAnnotationBytes,
                                                   " (starts with ", QuoteToken(v, kMaxTokenInMessage), ")"));
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c == 0x7f) {
      size_t start = i > 16 ? i - 16 : 0;
      return Bad(key, v.substr(start, 32), absl::StrCat("contains a control character at byte ", i));
    }
  }
  return std::optional<absl::string_view>(v);
}

absl::string_view TrimSpaces(absl::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Splits a comma-separated list; empty value -> empty list; empty entry -> error; too many entries -> error.
absl::StatusOr<std::vector<absl::string_view>> SplitList(const char* key, absl::string_view value) {
  std::vector<absl::string_view> out;
  if (TrimSpaces(value).empty()) return out;
  size_t entries = static_cast<size_t>(std::count(value.begin(), value.end(), ',')) + 1;
  if (entries > kMaxListEntries)
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": list has ", entries, " entries, more than the limit of ", kMaxListEntries));
  out.reserve(entries);
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    absl::string_view t = TrimSpaces(part);
    if (t.empty()) return Bad(key, value, "has an empty entry");
    out.push_back(t);
  }
  return out;
}

struct PortList {
  bool star = false;
  std::vector<uint16_t> ports;
};

absl::StatusOr<PortList> ParsePortList(const char* key, absl::string_view value, bool allow_star) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  PortList out;
  std::bitset<65536> seen;
  for (absl::string_view t : *tokens) {
    if (t == "*") {
      if (!allow_star) return Bad(key, t, "is not allowed here (only a list of ports 1..65535)");
      if (tokens->size() != 1) return Bad(key, value, "mixes \"*\" with other entries");
      out.star = true;
      return out;
    }
    auto p = ParsePort(t);
    if (!p) return Bad(key, t, "is not a port (1..65535)");
    if (!seen.test(*p)) {
      seen.set(*p);
      out.ports.push_back(*p);
    }
  }
  return out;
}

struct CidrList {
  bool star = false;
  std::vector<Cidr> v4, v6;
};

absl::StatusOr<CidrList> ParseCidrList(const char* key, absl::string_view value, bool allow_star) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  CidrList out;
  std::set<std::pair<std::string, int>> seen;
  for (absl::string_view t : *tokens) {
    if (t == "*") {
      if (!allow_star) return Bad(key, t, "is not allowed here (only a list of CIDRs)");
      if (tokens->size() != 1) return Bad(key, value, "mixes \"*\" with other entries");
      out.star = true;
      return out;
    }
    auto c = ParseCidr(t);
    if (!c) return Bad(key, t, "is not a CIDR (address/prefix, e.g. 10.0.0.0/8 or fd00::/8)");
    if (!seen.insert({c->cidr.address, c->cidr.prefix_len}).second) continue;
    (c->cidr.family == Family::kIPv4 ? out.v4 : out.v6).push_back(std::move(c->cidr));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseInterfaceList(const char* key, absl::string_view value) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  std::vector<std::string> out;
  std::set<absl::string_view> seen;
  for (absl::string_view t : *tokens) {
    if (!internal::IsValidInterfaceName(t))
      return Bad(key, t, "is not an interface name (1..15 of [A-Za-z0-9_.-], not \".\" or \"..\")");
    if (seen.insert(t).second) out.emplace_back(t);
  }
  return out;
}

const ContainerFacts* FindProxy(const PodFacts& pod) {
  for (const auto& c : pod.containers)
    if (c.name == kProxyContainerName) return &c;
  for (const auto& c : pod.init_containers)
    if (c.name == kProxyContainerName) return &c;
  return nullptr;
}

// Kubernetes ids are int64 in the API; Linux ids are uint32 with (uid_t)-1 reserved.
absl::StatusOr<std::optional<uint32_t>> CheckId(std::optional<int64_t> v, const char* field) {
  if (!v) return std::optional<uint32_t>();
  if (*v < 0 || *v >= 0xffffffffLL)
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", *v, " is not a valid Linux id (0..4294967294)"));
  if (*v == 0)
    return std::optional<uint32_t>();  // root proxy: not an identity we can bypass by; use defaults
  return std::optional<uint32_t>(static_cast<uint32_t>(*v));
}

absl::StatusOr<uint32_t> OpenShiftFirstUid(const PodFacts& pod) {
  auto v = GetValue(pod.namespace_annotations, kOpenShiftUidRangeAnnotation);
  if (!v.ok()) return v.status();
  if (!v->has_value())
    return absl::InvalidArgumentError(absl::StrCat("namespace annotation ", kOpenShiftUidRangeAnnotation,
                                                   " is missing: cannot derive the proxy uid on OpenShift "
                                                   "(set runAsUser on the istio-proxy container)"));
  absl::string_view s = TrimSpaces(**v);
  size_t slash = s.find('/');
  if (slash == absl::string_view::npos)
    return Bad(kOpenShiftUidRangeAnnotation, s,
               "is not a uid range (expected <first>/<size>, e.g. 1000650000/10000)");
  auto first = internal::ParseUint32(s.substr(0, slash));
  auto size = internal::ParseUint32(s.substr(slash + 1));
  if (!first || !size || *first == 0 || *size == 0 ||
      static_cast<uint64_t>(*first) + *size - 1 >= 0xffffffffULL)
    return Bad(kOpenShiftUidRangeAnnotation, s,
               "is not a valid uid range (first uid 1.., size 1.., within 0..4294967294)");
  return *first;
}

}  // namespace

const char* InterceptionModeName(InterceptionMode m) {
  return m == InterceptionMode::kTproxy ? "TPROXY" : "REDIRECT";
}

absl::StatusOr<RedirectPlan> BuildPlan(const PodFacts& pod, const PlanConfig& config) {
  RedirectPlan plan;
  const auto& ann = pod.annotations;

  // Mode.
  {
    auto v = GetValue(ann, kInterceptionModeAnnotation);
    if (!v.ok()) return v.status();
    if (v->has_value()) {
      absl::string_view m = TrimSpaces(**v);
      if (m == "REDIRECT") {
        plan.mode = InterceptionMode::kRedirect;
      } else if (m == "TPROXY") {
        plan.mode = InterceptionMode::kTproxy;
      } else {
        return Bad(kInterceptionModeAnnotation, m, "is not an interception mode (REDIRECT or TPROXY)");
      }
    }
  }

  // Status port (always excluded from inbound capture).
  {
    auto v = GetValue(ann, kStatusPortAnnotation);
    if (!v.ok()) return v.status();
    if (v->has_value()) {
      absl::string_view t = TrimSpaces(**v);
      auto p = ParsePort(t);
      if (!p) return Bad(kStatusPortAnnotation, t, "is not a port (1..65535)");
      plan.status_port = *p;
    }
  }

  // Inbound ports.
  {
    auto v = GetValue(ann, kExcludeInboundPortsAnnotation);
    if (!v.ok()) return v.status();
    auto excl = ParsePortList(kExcludeInboundPortsAnnotation, v->value_or("15020"), false);
    if (!excl.ok()) return excl.status();
    std::vector<uint16_t> all = {15090, 15021, 15020, plan.status_port};
    all.insert(all.end(), excl->ports.begin(), excl->ports.end());
    std::bitset<65536> seen;
    for (uint16_t p : all) {
      if (seen.test(p)) continue;
      seen.set(p);
      plan.exclude_inbound_ports.push_back(p);
    }
    auto iv = GetValue(ann, kIncludeInboundPortsAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParsePortList(kIncludeInboundPortsAnnotation, iv->value_or("*"), true);
    if (!incl.ok()) return incl.status();
    plan.capture_all_inbound = incl->star;
    for (uint16_t p : incl->ports)
      if (!seen.test(p) && p != kHboneTunnelPort) plan.include_inbound_ports.push_back(p);
  }

  // Outbound ports.
  {
    auto v = GetValue(ann, kExcludeOutboundPortsAnnotation);
    if (!v.ok()) return v.status();
    auto excl = ParsePortList(kExcludeOutboundPortsAnnotation, v->value_or("15020"), false);
    if (!excl.ok()) return excl.status();
    plan.exclude_outbound_ports = std::move(excl->ports);
    auto iv = GetValue(ann, kIncludeOutboundPortsAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParsePortList(kIncludeOutboundPortsAnnotation, iv->value_or(""), false);
    if (!incl.ok()) return incl.status();
    for (uint16_t p : incl->ports)
      if (std::find(plan.exclude_outbound_ports.begin(), plan.exclude_outbound_ports.end(), p) ==
          plan.exclude_outbound_ports.end())
        plan.include_outbound_ports.push_back(p);
  }

  // Outbound CIDRs.
  {
    auto iv = GetValue(ann, kIncludeOutboundIPRangesAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParseCidrList(kIncludeOutboundIPRangesAnnotation, iv->value_or("*"), true);
    if (!incl.ok()) return incl.status();
    plan.capture_all_outbound = incl->star;
    plan.include_outbound_cidrs_v4 = std::move(incl->v4);
    plan.include_outbound_cidrs_v6 = std::move(incl->v6);
    auto ev = GetValue(ann, kExcludeOutboundIPRangesAnnotation);
    if (!ev.ok()) return ev.status();
    auto excl = ParseCidrList(kExcludeOutboundIPRangesAnnotation, ev->value_or(""), false);
    if (!excl.ok()) return excl.status();
    plan.exclude_outbound_cidrs_v4 = std::move(excl->v4);
    plan.exclude_outbound_cidrs_v6 = std::move(excl->v6);
  }

  // Interfaces.
  {
    auto v = GetValue(ann, kExcludeInterfacesAnnotation);
    if (!v.ok()) return v.status();
    auto l = ParseInterfaceList(kExcludeInterfacesAnnotation, v->value_or(""));
    if (!l.ok()) return l.status();
    plan.exclude_interfaces = std::move(*l);
    const char* key = kRerouteVirtualInterfacesAnnotation;
    auto rv = GetValue(ann, key);
    if (!rv.ok()) return rv.status();
    if (!rv->has_value()) {
      key = kKubevirtInterfacesAnnotation;
      rv = GetValue(ann, key);
      if (!rv.ok()) return rv.status();
    }
    auto r = ParseInterfaceList(key, rv->value_or(""));
    if (!r.ok()) return r.status();
    plan.reroute_interfaces = std::move(*r);
  }

  // Proxy identity: container securityContext, else pod securityContext, else OpenShift range, else defaults.
  {
    const ContainerFacts* proxy = FindProxy(pod);
    std::optional<int64_t> uid = proxy && proxy->run_as_user ? proxy->run_as_user : pod.pod_run_as_user;
    std::optional<int64_t> gid = proxy && proxy->run_as_group ? proxy->run_as_group : pod.pod_run_as_group;
    auto u = CheckId(uid, "istio-proxy securityContext.runAsUser");
    if (!u.ok()) return u.status();
    auto g = CheckId(gid, "istio-proxy securityContext.runAsGroup");
    if (!g.ok()) return g.status();
    plan.proxy_uid = config.default_proxy_uid;
    plan.proxy_gid = config.default_proxy_gid;
    if (config.distribution == Distribution::kOpenShift && (!u->has_value() || !g->has_value())) {
      auto first = OpenShiftFirstUid(pod);
      if (!first.ok()) return first.status();
      // The restricted SCC runs the proxy as the first uid of the namespace range; we use it for the gid as
      // well.
      plan.proxy_uid = *first;
      plan.proxy_gid = *first;
    }
    if (u->has_value()) plan.proxy_uid = **u;
    if (g->has_value()) plan.proxy_gid = **g;
  }

  // Families.
  {
    if (pod.pod_ips.size() > 16)
      return absl::InvalidArgumentError(
          absl::StrCat("status.podIPs: ", pod.pod_ips.size(), " addresses (max 16)"));
    bool has4 = false, has6 = false;
    for (const auto& ip : pod.pod_ips) {
      auto f = internal::ParseIpAddressFamily(ip);
      if (!f) return Bad("status.podIPs", ip, "is not an IP address");
      (*f == Family::kIPv4 ? has4 : has6) = true;
    }
    if (!has4 && !has6) {
      plan.ipv4 = true;
      plan.ipv6 = config.assume_ipv6;
    } else {
      plan.ipv4 = has4;
      plan.ipv6 = has6 || config.assume_ipv6;
    }
  }

  // DNS capture is controller-wide; an explicit exclusion of port 53 wins (otherwise ISTIO_OUTPUT_DNS, which
  // runs before ISTIO_OUTPUT, would capture it anyway).
  plan.capture_dns = config.capture_dns &&
                     std::find(plan.exclude_outbound_ports.begin(), plan.exclude_outbound_ports.end(), 53) ==
                         plan.exclude_outbound_ports.end();
  return plan;
}

// ---------------------------------------------------------------------------------------------------------------
// BuildRuleset

namespace {

constexpr char kInbound[] = "ISTIO_INBOUND";
constexpr char kInRedirect[] = "ISTIO_IN_REDIRECT";
constexpr char kRedirect[] = "ISTIO_REDIRECT";
constexpr char kOutput[] = "ISTIO_OUTPUT";
constexpr char kOutputDns[] = "ISTIO_OUTPUT_DNS";
constexpr char kPrert[] = "ISTIO_PRERT";
constexpr char kDivert[] = "ISTIO_DIVERT";
constexpr char kTproxy[] = "ISTIO_TPROXY";
constexpr char kSaveMark[] = "ISTIO_SAVE_MARK";
constexpr char kRestoreMark[] = "ISTIO_RESTORE_MARK";

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
  R& mark(uint32_t m) {
    r.mark = m;
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

FamilyRules BuildFamily(const RedirectPlan& plan, Family f) {
  const Cidr loopback = Host(f, "127.0.0.1", "::1");
  const Cidr passthrough = Host(f, "127.0.0.6", "::6");
  const uint32_t uid = plan.proxy_uid, gid = plan.proxy_gid;
  const bool tproxy = plan.mode == InterceptionMode::kTproxy;
  const bool inbound = plan.capture_all_inbound || !plan.include_inbound_ports.empty();
  const auto& include_cidrs =
      f == Family::kIPv4 ? plan.include_outbound_cidrs_v4 : plan.include_outbound_cidrs_v6;
  const auto& exclude_cidrs =
      f == Family::kIPv4 ? plan.exclude_outbound_cidrs_v4 : plan.exclude_outbound_cidrs_v6;

  FamilyRules fr;
  fr.family = f;

  // raw: DNS conntrack zones. xt_CT keeps the FIRST zone assigned to a packet, so proxy-specific rules come
  // first.
  TableBuilder raw(Table::kRaw);
  if (plan.capture_dns) {
    raw["PREROUTING"].push_back(R().udp().jump(kPrert));
    raw["OUTPUT"].push_back(R().udp().jump(kOutputDns));
    auto& dns = raw[kOutputDns];
    dns.push_back(R().udp().dport(53).uid(uid).ct_zone(kDnsUpstreamCtZone));
    dns.push_back(R().udp().sport(kDnsCapturePort).uid(uid).ct_zone(kDnsCapturedCtZone));
    dns.push_back(R().udp().dport(53).gid(gid).ct_zone(kDnsUpstreamCtZone));
    dns.push_back(R().udp().sport(kDnsCapturePort).gid(gid).ct_zone(kDnsCapturedCtZone));
    dns.push_back(R().udp().dport(53).ct_zone(kDnsCapturedCtZone));
    raw[kPrert].push_back(R().udp().sport(53).ct_zone(kDnsUpstreamCtZone));
  }

  // Inbound capture rules (shared shape for nat/REDIRECT and mangle/TPROXY).
  auto inbound_chain = [&](std::vector<Rule>& chain) {
    for (const auto& i : plan.exclude_interfaces) chain.push_back(R().in(i).ret());
    // TPROXY runs in mangle, before nat's PREROUTING reroute jump: leave rerouted (VM) traffic to it.
    if (tproxy)
      for (const auto& i : plan.reroute_interfaces) chain.push_back(R().in(i).ret());
    if (plan.capture_all_inbound) {
      chain.push_back(R().tcp().dport(kHboneTunnelPort).ret());
      for (uint16_t p : plan.exclude_inbound_ports) chain.push_back(R().tcp().dport(p).ret());
      if (tproxy) {
        chain.push_back(R().tcp().transparent().jump(kDivert));
        chain.push_back(R().tcp().jump(kTproxy));
      } else {
        chain.push_back(R().tcp().jump(kInRedirect));
      }
    } else {
      for (uint16_t p : plan.include_inbound_ports) {
        if (tproxy) {
          chain.push_back(R().tcp().dport(p).transparent().jump(kDivert));
          chain.push_back(R().tcp().dport(p).jump(kTproxy));
        } else {
          chain.push_back(R().tcp().dport(p).jump(kInRedirect));
        }
      }
    }
  };

  // mangle: TPROXY inbound.
  TableBuilder mangle(Table::kMangle);
  if (tproxy && inbound) {
    mangle["PREROUTING"].push_back(R().tcp().jump(kInbound));
    mangle["PREROUTING"].push_back(R().tcp().mark(kTproxyMark).jump(kSaveMark));
    mangle["OUTPUT"].push_back(R().tcp().connmark(kTproxyMark).jump(kRestoreMark));
    mangle[kDivert].push_back(R().set_mark(kTproxyMark));
    mangle[kDivert].push_back(R().accept());
    inbound_chain(mangle[kInbound]);
    mangle[kTproxy].push_back(R().dst(loopback, true).tcp().tproxy(kInboundCapturePort, kTproxyMark));
    mangle[kSaveMark].push_back(R().connmark_op(ConnmarkTarget::Op::kSave));
    mangle[kRestoreMark].push_back(R().connmark_op(ConnmarkTarget::Op::kRestore));
  }

  // nat.
  TableBuilder nat(Table::kNat);
  for (const auto& i : plan.reroute_interfaces) nat["PREROUTING"].push_back(R().in(i).tcp().jump(kRedirect));
  if (!tproxy && inbound) {
    nat["PREROUTING"].push_back(R().tcp().jump(kInbound));
    inbound_chain(nat[kInbound]);
  }
  nat[kInRedirect].push_back(R().tcp().redirect(kInboundCapturePort));
  nat[kRedirect].push_back(R().tcp().redirect(kOutboundCapturePort));
  if (plan.capture_dns) {
    nat["OUTPUT"].push_back(R().jump(kOutputDns));
    auto& dns = nat[kOutputDns];
    for (const auto& i : plan.exclude_interfaces) dns.push_back(R().out(i).ret());
    dns.push_back(R().uid(uid).ret());
    dns.push_back(R().gid(gid).ret());
    dns.push_back(R().udp().dport(53).redirect(kDnsCapturePort));
    dns.push_back(R().tcp().dport(53).redirect(kDnsCapturePort));
  }
  nat["OUTPUT"].push_back(R().jump(kOutput));
  auto& out = nat[kOutput];
  // TPROXY: traffic the proxy marked for the app must not be captured again on its way back through lo.
  if (tproxy) out.push_back(R().out("lo").tcp().mark(kTproxyMark).ret());
  for (const auto& i : plan.exclude_interfaces) out.push_back(R().out(i).ret());
  for (uint16_t p : plan.exclude_outbound_ports) {
    out.push_back(R().tcp().dport(p).ret());
    out.push_back(R().udp().dport(p).ret());
  }
  out.push_back(R().src(passthrough).out("lo").ret());
  // App -> own pod IP through the proxy: the proxy's outbound leg arrives on lo and goes to the inbound
  // listener.
  out.push_back(
      R().dst(loopback, true).out("lo").tcp().dport(kHboneTunnelPort, true).uid(uid).jump(kInRedirect));
  out.push_back(R().out("lo").uid(uid, true).ret());
  out.push_back(R().uid(uid).ret());
  out.push_back(
      R().dst(loopback, true).out("lo").tcp().dport(kHboneTunnelPort, true).gid(gid).jump(kInRedirect));
  out.push_back(R().out("lo").gid(gid, true).ret());
  out.push_back(R().gid(gid).ret());
  out.push_back(R().dst(loopback).ret());
  for (const auto& c : exclude_cidrs) out.push_back(R().dst(c).ret());
  for (uint16_t p : plan.include_outbound_ports) out.push_back(R().tcp().dport(p).jump(kRedirect));
  if (plan.capture_all_outbound) {
    out.push_back(R().jump(kRedirect));
  } else {
    for (const auto& c : include_cidrs) out.push_back(R().dst(c).jump(kRedirect));
  }

  if (!raw.empty()) fr.tables.push_back(std::move(raw).Finish());
  if (!mangle.empty()) fr.tables.push_back(std::move(mangle).Finish());
  fr.tables.push_back(std::move(nat).Finish());
  return fr;
}

}  // namespace

Ruleset BuildRuleset(const RedirectPlan& plan) {
  Ruleset rs;
  const bool tproxy_routes = plan.mode == InterceptionMode::kTproxy &&
                             (plan.capture_all_inbound || !plan.include_inbound_ports.empty());
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    if ((f == Family::kIPv4 && !plan.ipv4) || (f == Family::kIPv6 && !plan.ipv6)) continue;
    rs.families.push_back(BuildFamily(plan, f));
    if (tproxy_routes) rs.routes.push_back(PolicyRoute{f, kTproxyMark, kTproxyRouteTable});
  }
  return rs;
}

}  // namespace pnc::rules
