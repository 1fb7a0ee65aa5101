#include "rules/render.h"

#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rules/values.h"

namespace pnc::rules {
namespace {

using internal::FormatCidr;

const char* ProtoName(Protocol p) { return p == Protocol::kTcp ? "tcp" : "udp"; }
std::string Hex(uint32_t v) { return absl::StrCat("0x", absl::Hex(v)); }
const char* Neg(bool n) { return n ? "! " : ""; }

std::string TargetSpec(Family family, const Target& t) {
  struct V {
    Family family;
    std::string operator()(const JumpTarget& j) const { return absl::StrCat("-j ", j.chain); }
    std::string operator()(const ReturnTarget&) const { return "-j RETURN"; }
    std::string operator()(const AcceptTarget&) const { return "-j ACCEPT"; }
    std::string operator()(const RedirectTarget& r) const {
      return absl::StrCat("-j REDIRECT --to-ports ", r.to_port);
    }
    std::string operator()(const TproxyTarget& t) const {
      return absl::StrCat("-j TPROXY --on-port ", t.on_port, " --on-ip ",
                          family == Family::kIPv4 ? "0.0.0.0" : "::", " --tproxy-mark ", Hex(t.mark), "/",
                          Hex(t.mask));
    }
    std::string operator()(const MarkTarget& m) const {
      return absl::StrCat("-j MARK --set-xmark ", Hex(m.mark), "/", Hex(m.mask));
    }
    std::string operator()(const ConnmarkTarget& c) const {
      return absl::StrCat("-j CONNMARK ",
                          c.op == ConnmarkTarget::Op::kSave ? "--save-mark" : "--restore-mark",
                          " --nfmask 0xffffffff --ctmask 0xffffffff");
    }
    std::string operator()(const CtZoneTarget& c) const { return absl::StrCat("-j CT --zone ", c.zone); }
  };
  return std::visit(V{family}, t);
}

}  // namespace

std::string RenderIptablesRuleSpec(Family family, const Rule& r) {
  std::vector<std::string> parts;
  if (r.source) parts.push_back(absl::StrCat(Neg(r.source->negate), "-s ", FormatCidr(r.source->value)));
  if (r.destination)
    parts.push_back(absl::StrCat(Neg(r.destination->negate), "-d ", FormatCidr(r.destination->value)));
  if (r.in_interface)
    parts.push_back(absl::StrCat(Neg(r.in_interface->negate), "-i ", r.in_interface->value));
  if (r.out_interface)
    parts.push_back(absl::StrCat(Neg(r.out_interface->negate), "-o ", r.out_interface->value));
  if (r.protocol) {
    parts.push_back(absl::StrCat("-p ", ProtoName(*r.protocol)));
    if (r.source_port || r.destination_port) {
      std::string m = absl::StrCat("-m ", ProtoName(*r.protocol));
      if (r.source_port)
        absl::StrAppend(&m, " ", Neg(r.source_port->negate), "--sport ", r.source_port->value);
      if (r.destination_port)
        absl::StrAppend(&m, " ", Neg(r.destination_port->negate), "--dport ", r.destination_port->value);
      parts.push_back(std::move(m));
    }
  }
  if (r.uid_owner)
    parts.push_back(absl::StrCat("-m owner ", Neg(r.uid_owner->negate), "--uid-owner ", r.uid_owner->value));
  if (r.gid_owner)
    parts.push_back(absl::StrCat("-m owner ", Neg(r.gid_owner->negate), "--gid-owner ", r.gid_owner->value));
  if (r.mark) parts.push_back(absl::StrCat("-m mark ", Neg(r.mark->negate), "--mark ", Hex(r.mark->value)));
  if (r.connmark) parts.push_back(absl::StrCat("-m connmark --mark ", Hex(*r.connmark)));
  if (r.socket_transparent) parts.push_back("-m socket --transparent");
  if (r.ct_related_established) parts.push_back("-m conntrack --ctstate RELATED,ESTABLISHED");
  parts.push_back(TargetSpec(family, r.target));
  return absl::StrJoin(parts, " ");
}

namespace {

const TableRules* FindTable(const FamilyRules& fr, Table t) {
  for (const auto& tr : fr.tables)
    if (tr.table == t) return &tr;
  return nullptr;
}

}  // namespace

std::string RenderIptablesRestoreReplacing(const FamilyRules& desired, const FamilyRules& current) {
  std::string out;
  for (Table t : {Table::kRaw, Table::kMangle, Table::kNat, Table::kFilter}) {
    const TableRules* want = FindTable(desired, t);
    const TableRules* have = FindTable(current, t);
    if (want == nullptr && have == nullptr) continue;
    absl::StrAppend(&out, "*", TableName(t), "\n");
    // Declare (create or flush) every chain of ours, old and new, in name order.
    std::set<std::string> ours, keep;
    if (want)
      for (const auto& c : want->chains)
        if (!c.builtin()) ours.insert(c.name), keep.insert(c.name);
    if (have)
      for (const auto& c : have->chains)
        if (!c.builtin()) ours.insert(c.name);
    for (const auto& name : ours) absl::StrAppend(&out, ":", name, " - [0:0]\n");
    // Remove our old jumps from built-in chains, then chains we no longer want.
    if (have)
      for (const auto& c : have->chains)
        if (c.builtin())
          for (const auto& r : c.rules)
            absl::StrAppend(&out, "-D ", c.name, " ", RenderIptablesRuleSpec(current.family, r), "\n");
    for (const auto& name : ours)
      if (!keep.count(name)) absl::StrAppend(&out, "-X ", name, "\n");
    if (want) {
      // Our chains first, then our jumps APPENDED to the built-in chains, as istio-iptables does (restore
      // --noflush with -A): a rule someone else put there before us keeps running first.
      for (bool builtin : {false, true})
        for (const auto& c : want->chains) {
          if (c.builtin() != builtin) continue;
          for (const auto& r : c.rules)
            absl::StrAppend(&out, "-A ", c.name, " ", RenderIptablesRuleSpec(desired.family, r), "\n");
        }
    }
    absl::StrAppend(&out, "COMMIT\n");
  }
  return out;
}

std::string RenderIptablesRestore(const FamilyRules& rules) {
  FamilyRules none;
  none.family = rules.family;
  return RenderIptablesRestoreReplacing(rules, none);
}

std::string RenderIptablesRestoreCleanup(const FamilyRules& current) {
  FamilyRules none;
  none.family = current.family;
  return RenderIptablesRestoreReplacing(none, current);
}

std::string RenderIptablesSave(const FamilyRules& rules) {
  std::string out;
  for (const auto& t : rules.tables) {
    absl::StrAppend(&out, "*", TableName(t.table), "\n");
    for (const auto& c : t.chains)
      absl::StrAppend(&out, ":", c.name, c.builtin() ? " ACCEPT" : " -", " [0:0]\n");
    for (const auto& c : t.chains)
      for (const auto& r : c.rules)
        absl::StrAppend(&out, "-A ", c.name, " ", RenderIptablesRuleSpec(rules.family, r), "\n");
    absl::StrAppend(&out, "COMMIT\n");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// nftables

namespace {

struct BaseChain {
  const char* type;
  const char* hook;
  int priority;
};

std::optional<BaseChain> BaseChainFor(Table t, const std::string& builtin) {
  const char* hook = builtin == "PREROUTING"    ? "prerouting"
                     : builtin == "INPUT"       ? "input"
                     : builtin == "FORWARD"     ? "forward"
                     : builtin == "OUTPUT"      ? "output"
                     : builtin == "POSTROUTING" ? "postrouting"
                                                : nullptr;
  if (hook == nullptr) return std::nullopt;
  switch (t) {
    case Table::kRaw:
      return BaseChain{"filter", hook, -300};
    case Table::kMangle:
      // iptables' mangle OUTPUT re-routes after a mark change; nft's equivalent is a `route` chain.
      return BaseChain{builtin == "OUTPUT" ? "route" : "filter", hook, -150};
    case Table::kNat:
      return BaseChain{"nat", hook, (builtin == "PREROUTING" || builtin == "OUTPUT") ? -100 : 100};
    case Table::kFilter:
      return BaseChain{"filter", hook, 0};
  }
  return std::nullopt;
}

std::string NftChainName(Table t, const std::string& chain) { return absl::StrCat(TableName(t), "_", chain); }

std::string NftAddr(const Cidr& c) {
  int full = c.family == Family::kIPv4 ? 32 : 128;
  return c.prefix_len == full ? c.address : FormatCidr(c);
}

std::string NftMarkSet(const char* lhs, uint32_t mark, uint32_t mask) {
  if (mask == 0xffffffff) return absl::StrCat(lhs, " set ", Hex(mark));
  return absl::StrCat(lhs, " set ", lhs, " and ", Hex(~mask), " xor ", Hex(mark));
}

std::string NftRule(Family f, Table table, const Rule& r) {
  const char* ipk = f == Family::kIPv4 ? "ip" : "ip6";
  std::vector<std::string> p;
  if (r.source)
    p.push_back(absl::StrCat(ipk, " saddr ", r.source->negate ? "!= " : "", NftAddr(r.source->value)));
  if (r.destination)
    p.push_back(
        absl::StrCat(ipk, " daddr ", r.destination->negate ? "!= " : "", NftAddr(r.destination->value)));
  if (r.in_interface)
    p.push_back(
        absl::StrCat("iifname ", r.in_interface->negate ? "!= " : "", "\"", r.in_interface->value, "\""));
  if (r.out_interface)
    p.push_back(
        absl::StrCat("oifname ", r.out_interface->negate ? "!= " : "", "\"", r.out_interface->value, "\""));
  if (r.protocol) {
    const char* pn = ProtoName(*r.protocol);
    if (!r.source_port && !r.destination_port) p.push_back(absl::StrCat("meta l4proto ", pn));
    if (r.source_port)
      p.push_back(absl::StrCat(pn, " sport ", r.source_port->negate ? "!= " : "", r.source_port->value));
    if (r.destination_port)
      p.push_back(
          absl::StrCat(pn, " dport ", r.destination_port->negate ? "!= " : "", r.destination_port->value));
  }
  if (r.uid_owner)
    p.push_back(absl::StrCat("meta skuid ", r.uid_owner->negate ? "!= " : "", r.uid_owner->value));
  if (r.gid_owner)
    p.push_back(absl::StrCat("meta skgid ", r.gid_owner->negate ? "!= " : "", r.gid_owner->value));
  if (r.mark) p.push_back(absl::StrCat("meta mark ", r.mark->negate ? "!= " : "", Hex(r.mark->value)));
  if (r.connmark) p.push_back(absl::StrCat("ct mark ", Hex(*r.connmark)));
  if (r.socket_transparent) p.push_back("socket transparent 1");
  if (r.ct_related_established) p.push_back("ct state established,related");
  struct V {
    Table table;
    std::string operator()(const JumpTarget& j) const {
      return absl::StrCat("jump ", NftChainName(table, j.chain));
    }
    std::string operator()(const ReturnTarget&) const { return "return"; }
    std::string operator()(const AcceptTarget&) const { return "accept"; }
    std::string operator()(const RedirectTarget& r) const { return absl::StrCat("redirect to :", r.to_port); }
    std::string operator()(const TproxyTarget& t) const {
      // iptables' TPROXY sets the mark and accepts in one target; nft needs the three statements.
      return absl::StrCat("tproxy to :", t.on_port, " ", NftMarkSet("meta mark", t.mark, t.mask), " accept");
    }
    std::string operator()(const MarkTarget& m) const { return NftMarkSet("meta mark", m.mark, m.mask); }
    std::string operator()(const ConnmarkTarget& c) const {
      return c.op == ConnmarkTarget::Op::kSave ? "ct mark set meta mark" : "meta mark set ct mark";
    }
    std::string operator()(const CtZoneTarget& c) const { return absl::StrCat("ct zone set ", c.zone); }
  };
  p.push_back(std::visit(V{table}, r.target));
  return absl::StrJoin(p, " ");
}

}  // namespace

std::string RenderNftables(const Ruleset& ruleset) {
  std::string out;
  for (const auto& fr : ruleset.families) {
    const std::string fam = fr.family == Family::kIPv4 ? "ip" : "ip6";
    const std::string tbl = absl::StrCat(fam, " ", kNftTableName);
    absl::StrAppend(&out, "add table ", tbl, "\n", "flush table ", tbl, "\n");
    // Regular chains first so every jump target exists when rules are added.
    for (const auto& tr : fr.tables)
      for (const auto& c : tr.chains)
        if (!c.builtin()) absl::StrAppend(&out, "add chain ", tbl, " ", NftChainName(tr.table, c.name), "\n");
    for (const auto& tr : fr.tables)
      for (const auto& c : tr.chains) {
        if (!c.builtin()) continue;
        auto bc = BaseChainFor(tr.table, c.name);
        if (!bc) continue;  // not a hookable built-in; BuildRuleset never produces one
        absl::StrAppend(&out, "add chain ", tbl, " ", NftChainName(tr.table, c.name), " { type ", bc->type,
                        " hook ", bc->hook, " priority ", bc->priority, "; policy accept; }\n");
      }
    for (const auto& tr : fr.tables)
      for (const auto& c : tr.chains)
        for (const auto& r : c.rules)
          absl::StrAppend(&out, "add rule ", tbl, " ", NftChainName(tr.table, c.name), " ",
                          NftRule(fr.family, tr.table, r), "\n");
  }
  return out;
}

std::string RenderPolicyRoutes(const Ruleset& ruleset) {
  std::string out;
  for (const auto& r : ruleset.routes) {
    const char* f = r.family == Family::kIPv4 ? "-4" : "-6";
    absl::StrAppend(&out, "ip ", f, " rule add fwmark ", Hex(r.fwmark), " lookup ", r.table, "\n", "ip ", f,
                    " route add local default dev lo table ", r.table, "\n");
  }
  for (const Cidr& a : ruleset.loopback_addresses)
    absl::StrAppend(&out, "ip ", a.family == Family::kIPv4 ? "-4" : "-6", " addr add ", a.address, "/",
                    a.prefix_len, " dev lo\n");
  return out;
}

}  // namespace pnc::rules
