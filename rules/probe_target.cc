#include "rules/probe_target.h"

#include <arpa/inet.h>

#include <array>
#include <optional>

namespace pnc::rules {
namespace {

using Bytes = std::array<uint8_t, 16>;

std::optional<Bytes> ParseIp(Family f, const std::string& text) {
  Bytes b{};
  if (inet_pton(f == Family::kIPv4 ? AF_INET : AF_INET6, text.c_str(), b.data()) != 1) return std::nullopt;
  return b;
}

// Tri-state result of one match.
enum class M { kYes, kNo, kUnknown };
M Not(M m, bool negate) {
  if (m == M::kUnknown || !negate) return m;
  return m == M::kYes ? M::kNo : M::kYes;
}
M And(M a, M b) {
  if (a == M::kNo || b == M::kNo) return M::kNo;
  if (a == M::kUnknown || b == M::kUnknown) return M::kUnknown;
  return M::kYes;
}

M InCidr(Family f, const std::string& ip, const Cidr& c) {
  if (ip.empty()) return M::kUnknown;
  if (c.family != f) return M::kNo;
  std::optional<Bytes> a = ParseIp(f, ip), n = ParseIp(f, c.address);
  if (!a || !n) return M::kUnknown;
  int bits = c.prefix_len;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if (((*a)[i] & mask) != ((*n)[i] & mask)) return M::kNo;
  }
  return M::kYes;
}

// iptables interface match: exact, or a prefix when the pattern ends with '+'.
M Interface(const std::string& name, const std::string& pattern) {
  if (!pattern.empty() && pattern.back() == '+')
    return name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0 ? M::kYes : M::kNo;
  return name == pattern ? M::kYes : M::kNo;
}

M Matches(const Rule& r, const OutboundTcp& p) {
  M m = M::kYes;
  if (r.protocol) m = And(m, *r.protocol == Protocol::kTcp ? M::kYes : M::kNo);
  if (r.source) m = And(m, Not(InCidr(p.family, p.source, r.source->value), r.source->negate));
  if (r.destination)
    m = And(m, Not(InCidr(p.family, p.destination, r.destination->value), r.destination->negate));
  if (r.in_interface) m = And(m, M::kNo);  // no input interface in OUTPUT (iptables refuses -i there)
  if (r.out_interface)
    m = And(m, Not(Interface(p.out_interface, r.out_interface->value), r.out_interface->negate));
  if (r.source_port) m = And(m, M::kUnknown);  // an ephemeral port: not fixed by the probe
  if (r.destination_port)
    m = And(m, Not(p.destination_port == r.destination_port->value ? M::kYes : M::kNo,
                   r.destination_port->negate));
  // The prober is never the proxy: a uid/gid owner match names the proxy's ids only.
  if (r.uid_owner) m = And(m, Not(M::kNo, r.uid_owner->negate));
  if (r.gid_owner) m = And(m, Not(M::kNo, r.gid_owner->negate));
  if (r.mark)  // a new connection carries no mark
    m = And(m, Not(r.mark->value == 0 ? M::kYes : M::kNo, r.mark->negate));
  if (r.connmark) m = And(m, *r.connmark == 0 ? M::kYes : M::kNo);
  if (r.socket_transparent) m = And(m, M::kUnknown);
  if (r.ct_related_established) m = And(m, M::kNo);  // the probe's SYN is a NEW connection
  return m;
}

const TableRules* NatOf(const Ruleset& rs, Family f) {
  const FamilyRules* fr = rs.Find(f);
  if (fr == nullptr) return nullptr;
  for (const TableRules& t : fr->tables)
    if (t.table == Table::kNat) return &t;
  return nullptr;
}

const Chain* FindChain(const TableRules& t, const std::string& name) {
  for (const Chain& c : t.chains)
    if (c.name == name) return &c;
  return nullptr;
}

// nullopt: the chain ran to its end or RETURNed (continue in the caller).
std::optional<NatDecision> RunChain(const TableRules& t, const Chain& c, const OutboundTcp& p, int depth) {
  if (depth > 16) return NatDecision{NatVerdict::kUndecidable, 0};
  for (const Rule& r : c.rules) {
    M m = Matches(r, p);
    if (m == M::kNo) continue;
    if (m == M::kUnknown) return NatDecision{NatVerdict::kUndecidable, 0};
    if (const auto* j = std::get_if<JumpTarget>(&r.target)) {
      const Chain* next = FindChain(t, j->chain);
      if (next == nullptr) return NatDecision{NatVerdict::kUndecidable, 0};
      if (std::optional<NatDecision> d = RunChain(t, *next, p, depth + 1)) return d;
      continue;
    }
    if (std::holds_alternative<ReturnTarget>(r.target)) return std::nullopt;
    if (std::holds_alternative<AcceptTarget>(r.target)) return NatDecision{NatVerdict::kNotRedirected, 0};
    if (const auto* red = std::get_if<RedirectTarget>(&r.target))
      return NatDecision{NatVerdict::kRedirected, red->to_port};
    return NatDecision{NatVerdict::kUndecidable, 0};  // no other target belongs in nat OUTPUT
  }
  return std::nullopt;
}

// Ports the probe may use: not a port of the proxy's own, not DNS.
constexpr uint16_t kProbePorts[] = {15002, 15003, 15004, 15005, 15007, 15009, 15010, 15011};
bool ReservedPort(uint16_t p) {
  return p == 53 || p == kOutboundCapturePort || p == kInboundCapturePort || p == kHboneTunnelPort ||
         p == kDnsCapturePort || p == 15020 || p == 15021 || p == 15090;
}

// The first host of a CIDR (the network address itself for /32 and /128, and /31 /127).
std::optional<std::string> FirstHost(const Cidr& c) {
  std::optional<Bytes> b = ParseIp(c.family, c.address);
  if (!b) return std::nullopt;
  int width = c.family == Family::kIPv4 ? 32 : 128;
  if (c.prefix_len < width - 1) {
    int last = width / 8 - 1;
    for (int i = last; i >= 0; --i)
      if (++(*b)[i] != 0) break;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(c.family == Family::kIPv4 ? AF_INET : AF_INET6, b->data(), buf, sizeof buf);
  return std::string(buf);
}

}  // namespace

NatDecision EvaluateNatOutput(const Ruleset& ruleset, const OutboundTcp& packet) {
  const TableRules* nat = NatOf(ruleset, packet.family);
  if (nat == nullptr) return {};
  const Chain* output = FindChain(*nat, "OUTPUT");
  if (output == nullptr) return {};
  return RunChain(*nat, *output, packet, 0).value_or(NatDecision{});
}

std::vector<std::string> ProbeCandidateAddresses(const RedirectPlan& plan) {
  std::vector<std::string> out;
  auto add = [&](const std::string& a) {
    for (const std::string& o : out)
      if (o == a) return;
    out.push_back(a);
  };
  auto add_cidrs = [&](const std::vector<Cidr>& cidrs) {
    for (size_t i = 0; i < cidrs.size() && i < 8; ++i)
      if (std::optional<std::string> h = FirstHost(cidrs[i])) add(*h);
  };
  // Documentation addresses first (never routed anywhere): TEST-NET-1..3 (RFC 5737), 2001:db8::/32 (RFC
  // 3849); several, in case an excluded range covers one. Then the first host of each included CIDR.
  if (plan.ipv4) {
    add("192.0.2.1");
    add("198.51.100.1");
    add("203.0.113.1");
    if (!plan.capture_all_outbound) add_cidrs(plan.include_outbound_cidrs_v4);
  }
  if (plan.ipv6) {
    add("2001:db8::1");
    add("2001:db8:ffff::1");
    if (!plan.capture_all_outbound) add_cidrs(plan.include_outbound_cidrs_v6);
  }
  return out;
}

ProbeSpec ChooseProbe(const Ruleset& ruleset, const RedirectPlan& plan,
                      const std::vector<std::string>& pod_ips,
                      const std::map<std::string, std::string>& route_device) {
  std::vector<uint16_t> ports;
  for (uint16_t p : kProbePorts) ports.push_back(p);
  for (size_t i = 0; i < plan.include_outbound_ports.size() && i < 8; ++i)
    if (!ReservedPort(plan.include_outbound_ports[i])) ports.push_back(plan.include_outbound_ports[i]);
  for (const std::string& addr : ProbeCandidateAddresses(plan)) {
    auto dev = route_device.find(addr);
    if (dev == route_device.end() || dev->second == "lo") continue;
    Family f = addr.find(':') != std::string::npos ? Family::kIPv6 : Family::kIPv4;
    std::string source;
    for (const std::string& ip : pod_ips)
      if ((ip.find(':') != std::string::npos) == (f == Family::kIPv6)) {
        source = ip;
        break;
      }
    for (uint16_t port : ports) {
      NatDecision d = EvaluateNatOutput(ruleset, OutboundTcp{f, source, addr, port, dev->second});
      if (d.verdict != NatVerdict::kRedirected || d.redirect_port != kOutboundCapturePort) continue;
      ProbeSpec spec;
      spec.ipv6 = f == Family::kIPv6;
      std::optional<Bytes> b = ParseIp(f, addr);
      if (!b) break;
      spec.address = *b;
      spec.port = port;
      spec.capture_port = kOutboundCapturePort;
      if (!ParseProbeSpec(FormatProbeSpec(spec))) break;  // e.g. an included CIDR of loopback
      return spec;
    }
  }
  return ProbeSpec{.none = true};
}

}  // namespace pnc::rules
