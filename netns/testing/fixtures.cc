#include "netns/testing/fixtures.h"

#include <algorithm>
#include <string>
#include <utility>

namespace pnc::netns::testing {
namespace {

using rules::Chain;
using rules::Cidr;
using rules::Family;
using rules::Negatable;
using rules::Protocol;
using rules::Rule;
using rules::Table;

Rule R(rules::Target target) {
  Rule r;
  r.target = std::move(target);
  return r;
}
Rule Tcp(rules::Target target, std::optional<uint16_t> dport = std::nullopt, bool negate_port = false) {
  Rule r = R(std::move(target));
  r.protocol = Protocol::kTcp;
  if (dport) r.destination_port = Negatable<uint16_t>{*dport, negate_port};
  return r;
}
Rule Udp(rules::Target target, uint16_t dport) {
  Rule r = R(std::move(target));
  r.protocol = Protocol::kUdp;
  r.destination_port = Negatable<uint16_t>{dport, false};
  return r;
}
rules::JumpTarget Jump(std::string chain) { return rules::JumpTarget{std::move(chain)}; }

rules::FamilyRules Build(Family f, const FixtureOptions& o) {
  const bool v4 = f == Family::kIPv4;
  const Cidr localhost{f, v4 ? "127.0.0.1" : "::1", v4 ? 32 : 128};
  const Cidr passthrough{f, v4 ? "127.0.0.6" : "::6", v4 ? 32 : 128};
  const Negatable<std::string> lo{"lo", false};
  rules::FamilyRules fr{f, {}};

  // raw: conntrack zones for DNS.
  if (o.dns) {
    rules::TableRules raw{Table::kRaw, {}};
    Rule jump = R(Jump("ISTIO_OUTPUT_DNS"));
    jump.protocol = Protocol::kUdp;
    raw.chains.push_back(Chain{"OUTPUT", {jump}});
    Chain c{"ISTIO_OUTPUT_DNS", {}};
    Rule proxy = Udp(rules::CtZoneTarget{1}, 53);
    proxy.uid_owner = Negatable<uint32_t>{o.proxy_uid, false};
    c.rules.push_back(proxy);
    Rule app = Udp(rules::CtZoneTarget{2}, 53);
    app.uid_owner = Negatable<uint32_t>{o.proxy_uid, true};
    c.rules.push_back(app);
    Rule reply = R(rules::CtZoneTarget{2});  // the DNS proxy's answers to the app
    reply.protocol = Protocol::kUdp;
    reply.source_port = Negatable<uint16_t>{15053, false};
    c.rules.push_back(reply);
    raw.chains.push_back(std::move(c));
    fr.tables.push_back(std::move(raw));
  }

  // mangle: TPROXY inbound capture.
  if (o.tproxy) {
    rules::TableRules mangle{Table::kMangle, {}};
    mangle.chains.push_back(Chain{"PREROUTING", {Tcp(Jump("ISTIO_INBOUND"))}});
    mangle.chains.push_back(Chain{"OUTPUT", {Tcp(Jump("ISTIO_OUTPUT"))}});
    Chain divert{"ISTIO_DIVERT", {R(rules::MarkTarget{1337, 0xffffffff}), R(rules::AcceptTarget{})}};
    Chain inbound{"ISTIO_INBOUND", {}};
    for (uint16_t p : {15008, 15090, 15021, 15020}) inbound.rules.push_back(Tcp(rules::ReturnTarget{}, p));
    for (uint16_t p : o.exclude_inbound_ports) inbound.rules.push_back(Tcp(rules::ReturnTarget{}, p));
    Rule save = Tcp(rules::ConnmarkTarget{rules::ConnmarkTarget::Op::kSave});
    save.mark = rules::Negatable<uint32_t>{1337, false};
    inbound.rules.push_back(save);
    Rule established = Tcp(Jump("ISTIO_DIVERT"));
    established.socket_transparent = true;
    inbound.rules.push_back(established);
    inbound.rules.push_back(Tcp(Jump("ISTIO_TPROXY")));
    Chain output{"ISTIO_OUTPUT", {}};
    Rule restore = Tcp(rules::ConnmarkTarget{rules::ConnmarkTarget::Op::kRestore});
    restore.connmark = 1337;
    output.rules.push_back(restore);
    Rule tproxy = Tcp(rules::TproxyTarget{15006, 1337, 0xffffffff});
    tproxy.destination = Negatable<Cidr>{localhost, true};
    Chain tp{"ISTIO_TPROXY", {tproxy}};
    mangle.chains.push_back(std::move(divert));
    mangle.chains.push_back(std::move(inbound));
    mangle.chains.push_back(std::move(output));
    mangle.chains.push_back(std::move(tp));
    fr.tables.push_back(std::move(mangle));
  }

  // nat: REDIRECT capture (inbound only without TPROXY), outbound always.
  rules::TableRules nat{Table::kNat, {}};
  if (!o.tproxy) nat.chains.push_back(Chain{"PREROUTING", {Tcp(Jump("ISTIO_INBOUND"))}});
  Chain nat_output{"OUTPUT", {}};
  if (o.dns) {
    Rule dns_udp = Udp(Jump("ISTIO_OUTPUT_DNS"), 53);
    nat_output.rules.push_back(dns_udp);
  }
  nat_output.rules.push_back(R(Jump("ISTIO_OUTPUT")));
  nat.chains.push_back(std::move(nat_output));
  if (!o.tproxy) {
    Chain inbound{"ISTIO_INBOUND", {}};
    for (uint16_t p : {15008, 15090, 15021, 15020}) inbound.rules.push_back(Tcp(rules::ReturnTarget{}, p));
    for (uint16_t p : o.exclude_inbound_ports) inbound.rules.push_back(Tcp(rules::ReturnTarget{}, p));
    inbound.rules.push_back(Tcp(Jump("ISTIO_IN_REDIRECT")));
    nat.chains.push_back(std::move(inbound));
  }
  nat.chains.push_back(Chain{"ISTIO_IN_REDIRECT", {Tcp(rules::RedirectTarget{15006})}});
  Chain out{"ISTIO_OUTPUT", {}};
  for (uint16_t p : o.exclude_outbound_ports) {
    out.rules.push_back(Tcp(rules::ReturnTarget{}, p));
    out.rules.push_back(Udp(rules::ReturnTarget{}, p));
  }
  Rule r1 = R(rules::ReturnTarget{});
  r1.source = Negatable<Cidr>{passthrough, false};
  r1.out_interface = lo;
  out.rules.push_back(r1);
  for (bool gid : {false, true}) {
    const Negatable<uint32_t> owner{gid ? o.proxy_gid : o.proxy_uid, false};
    const Negatable<uint32_t> not_owner{owner.value, true};
    Rule self = R(Jump("ISTIO_IN_REDIRECT"));
    self.protocol = Protocol::kTcp;
    self.destination = Negatable<Cidr>{localhost, true};
    self.out_interface = lo;
    (gid ? self.gid_owner : self.uid_owner) = owner;
    Rule other_lo = R(rules::ReturnTarget{});
    other_lo.out_interface = lo;
    (gid ? other_lo.gid_owner : other_lo.uid_owner) = not_owner;
    Rule proxy = R(rules::ReturnTarget{});
    (gid ? proxy.gid_owner : proxy.uid_owner) = owner;
    out.rules.push_back(self);
    out.rules.push_back(other_lo);
    out.rules.push_back(proxy);
  }
  Rule to_localhost = R(rules::ReturnTarget{});
  to_localhost.destination = Negatable<Cidr>{localhost, false};
  out.rules.push_back(to_localhost);
  out.rules.push_back(R(Jump("ISTIO_REDIRECT")));
  if (o.dns) {
    Chain dns{"ISTIO_OUTPUT_DNS", {}};
    Rule proxy_uid = Udp(rules::ReturnTarget{}, 53);
    proxy_uid.uid_owner = Negatable<uint32_t>{o.proxy_uid, false};
    Rule proxy_gid = Udp(rules::ReturnTarget{}, 53);
    proxy_gid.gid_owner = Negatable<uint32_t>{o.proxy_gid, false};
    dns.rules.push_back(proxy_uid);
    dns.rules.push_back(proxy_gid);
    dns.rules.push_back(Udp(rules::RedirectTarget{15053}, 53));
    nat.chains.push_back(std::move(dns));
  }
  nat.chains.push_back(std::move(out));
  nat.chains.push_back(Chain{"ISTIO_REDIRECT", {Tcp(rules::RedirectTarget{15001})}});
  fr.tables.push_back(std::move(nat));
  // Canonical chain order (the one ReadBack produces): built-ins in hook order, then ours by name.
  auto rank = [](const Chain& c) {
    static const char* kOrder[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
    for (int i = 0; i < 5; ++i) {
      if (c.name == kOrder[i]) return i;
    }
    return 5;
  };
  for (auto& t : fr.tables) {
    std::stable_sort(t.chains.begin(), t.chains.end(), [&](const Chain& a, const Chain& b) {
      return rank(a) != rank(b) ? rank(a) < rank(b) : (rank(a) == 5 && a.name < b.name);
    });
  }
  return fr;
}

}  // namespace

rules::Ruleset IstioLikeRuleset(const FixtureOptions& options) {
  rules::Ruleset rs;
  if (options.ipv4) rs.families.push_back(Build(Family::kIPv4, options));
  if (options.ipv6) rs.families.push_back(Build(Family::kIPv6, options));
  if (options.tproxy) {
    if (options.ipv4) rs.routes.push_back(rules::PolicyRoute{Family::kIPv4, 1337, 133});
    if (options.ipv6) rs.routes.push_back(rules::PolicyRoute{Family::kIPv6, 1337, 133});
  }
  // Istio's inbound passthrough source for IPv6 (rules/ruleset.h).
  if (options.ipv6) rs.loopback_addresses.push_back(rules::Cidr{Family::kIPv6, "::6", 128});
  return rs;
}

}  // namespace pnc::netns::testing
