// Renderers: Ruleset -> text for the exec backends (iptables-restore, nft -f) and for humans (goldens, the
// demo).
//
// iptables-restore (one family; feed to `iptables[-legacy]-restore --noflush` or `ip6tables[-legacy]-restore
// --noflush`). Per table one `*table` ... `COMMIT` block, which the kernel applies atomically:
//   :ISTIO_X - [0:0]          every chain of ours. Under --noflush this CREATES a missing chain and FLUSHES
//   an
//                             existing one, so re-applying our chains is idempotent.
//   -D PREROUTING <spec>      (RenderIptablesRestoreReplacing only) deletes each jump we installed before,
//   exactly as
//                             read back by ParseIptablesSave; a plain re-insert would duplicate it.
//   -X ISTIO_OLD              (RenderIptablesRestoreReplacing only) our chains that the new plan no longer
//   has. -A ISTIO_X <spec>         our rules, then
//   -A PREROUTING <spec>      our jumps APPENDED to the built-in chains, in order (as istio-iptables).
// Built-in chains are never declared (that would reset their policy) and foreign chains/rules are never
// mentioned. Rule specs use the exact spelling iptables-save prints (-s -d -i -o -p first, then -m modules,
// then -j), so the text of a rule round-trips through iptables-save unchanged.
//
// nftables (all families in one script for `nft -f`): one table per family, `ip istio_pnc` / `ip6 istio_pnc`.
// The script `add`s the table, `flush`es it (empties our chains without deleting anything: deletes cost ~13
// ms of RCU wait, see notes/netfilter-facts.md), declares every chain, then adds the rules, so it is
// idempotent. iptables tables map to chain-name prefixes: chain ISTIO_X of table nat is `nat_ISTIO_X`;
// built-in chain PREROUTING of nat is the base chain `nat_PREROUTING` (type nat hook prerouting priority
// -100). Priorities are iptables': raw -300, mangle -150, nat -100 (prerouting/output) / 100
// (input/postrouting), filter 0.
#ifndef PNC_RULES_RENDER_H_
#define PNC_RULES_RENDER_H_

#include <string>

#include "rules/ruleset.h"

namespace pnc::rules {

// First install into a netns that has none of our rules.
std::string RenderIptablesRestore(const FamilyRules& rules);

// Replace what ParseIptablesSave read back (`current`, same family) by `desired`, atomically per table and
// idempotently. With an empty `current` this equals RenderIptablesRestore(desired).
std::string RenderIptablesRestoreReplacing(const FamilyRules& desired, const FamilyRules& current);

// Only the cleanup half: removes everything `current` holds (jumps, then our chains).
std::string RenderIptablesRestoreCleanup(const FamilyRules& current);

// One rule as iptables-save prints it, without "-A CHAIN " (e.g. "-p tcp -m tcp --dport 15008 -j RETURN").
std::string RenderIptablesRuleSpec(Family family, const Rule& rule);

// What `iptables-save` prints (tables raw, mangle, nat, filter; built-in chains declared with ACCEPT policy,
// ours with "-"; ours sorted by name; rules as -A) for a netns that holds exactly `rules`. Used by tests, the
// fuzzer and fake backends; ParseIptablesSave(family, RenderIptablesSave(r)) == r for every BuildRuleset
// output.
std::string RenderIptablesSave(const FamilyRules& rules);

// The nft script for every family in `ruleset`.
std::string RenderNftables(const Ruleset& ruleset);
// The nft table name used for every family ("istio_pnc"); families are `ip` and `ip6`.
inline constexpr char kNftTableName[] = "istio_pnc";

// Human-readable routing state outside netfilter, one command per line: the policy routes ("ip -4 rule add
// fwmark 0x539 lookup 133" ...; TPROXY only), then the loopback addresses ("ip -6 addr add ::6/128 dev lo";
// whenever IPv6 is programmed). Empty when there is neither. The plan digest covers this text.
std::string RenderPolicyRoutes(const Ruleset& ruleset);

}  // namespace pnc::rules

#endif  // PNC_RULES_RENDER_H_
