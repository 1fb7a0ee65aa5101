// Native nftables backend: programs a Ruleset over netlink (libnftnl + libmnl), one atomic batch per Apply.
//
// Layout in the pod's netns (the same as rules/render.h's RenderNftables script, checked by a test): one
// table per address family, `ip istio_pnc` / `ip6 istio_pnc`. An iptables table maps to a chain-name prefix:
// chain ISTIO_X of table nat is `nat_ISTIO_X`; built-in chain PREROUTING of nat is the base chain
// `nat_PREROUTING`, hooked like iptables-nft's (type nat at -100 prerouting/output and 100 input/postrouting;
// mangle -150 with OUTPUT as type route; raw -300; filter 0; policy accept). Everything in those two tables
// is ours; nothing outside them is touched.
//
// Why not Istio's native nftables layout (istio/istio tools/istio-nftables/pkg/constants: tables
// `inet istio-proxy-nat` / `istio-proxy-mangle` / `istio-proxy-raw`, base chains `prerouting`/`output`,
// regular chains `istio-inbound`, `istio-output`, ...), decided on purpose:
//  - Ownership. Those are the names Istio's own agents (istio-iptables / istio-cni in native-nftables mode)
//    create and manage. In a pod where one of them also runs (a half-migrated namespace, Istio's CNI left
//    installed), sharing the names would make us flush/delete Istio's tables and read Istio's rules back as
//    ours, breaking the contract "everything in our tables is ours, nothing else is touched" that Apply,
//    verification and Remove rely on. A distinct table name keeps both sides' ownership exact.
//  - Families. Istio's `inet` tables apply every rule without an address match to both IPv4 and IPv6. Our
//    Ruleset is per family and IPv6 must stay unprogrammed unless the dual-stack setting is on (IPv4
//    always, like istio-iptables' ip6tables half): per-family `ip`/`ip6` tables give exactly that and a
//    per-family read-back, without adding `meta nfproto` to every rule.
//  - One table per family instead of one per iptables table keeps a re-apply to one table flush per family in
//    one atomic batch, and Remove to one table delete per family.
//  - mangle OUTPUT stays `type route` (iptables semantics: a mark change re-routes, which the TPROXY reply
//    path's connmark restore -> fwmark 1337 -> table 133 uses); Istio's native layout declares it
//    `type filter`.
//
// Apply: one GETTABLE dump; in a fresh netns then one batch: add the table (with NLM_F_EXCL: should a
// concurrent Apply create it first, this batch fails atomically and retries through the re-apply path) and
// its chains, append all rules. Nothing is destroyed, so this hot path never waits on nf_tables' RCU-deferred
// destruction (netfilter-facts.md: ~13 ms). If our table exists: GETCHAIN + GETRULE dumps; when they already
// equal the plan, nothing is sent; otherwise one batch flushes our table's rules, deletes our stale chains
// (and the table of a family no longer planned), re-adds chains and rules. Every nf_tables socket is closed
// on a background thread, because close() blocks 10-18 ms after any destruction (the kernel flushes its
// deferred-destroy work on socket release, holding the netns' commit mutex). The batch is built and checked
// (size) first, then the routing state (routing_state.h) is synced, then the batch is sent: TPROXY'd packets
// find their route as soon as the rules exist, and an unsendable rule set changes nothing. ReadBack dumps our
// chains/rules and translates the expressions back into the Ruleset model exactly; any expression we do not
// write ourselves (nft's own short prefix loads excepted) is an Internal error naming it. A dumped rule whose
// expression bytes are identical to bytes this backend decoded before takes that decode's result
// (decode_memo.h); any other rule is parsed and decoded in full. Remove deletes our
// tables (cold path) and our policy routes. ApplyAndReadBack (what ApplyAndVerify calls) does Apply and then
// the read-back's dumps in ONE RunInNetns, on one nf_tables and one rtnetlink socket; when Apply's routing
// sync sent nothing, the routing part of the read-back is that sync's own dumps (routing_state.h). Validation
// and the translation into NFT_MSG_NEWRULE messages are done before entering the namespace and cached for the
// last 8 distinct Rulesets (pods of one workload share one); the read-back never uses that cache.
//
// Translation (iptables -> nft), in the expression order RenderNftables prints: -s/-d -> ip[6] saddr/daddr
// (payload + bitwise for a prefix + cmp); -i/-o -> meta iifname/oifname ("eth+" -> prefix cmp, shown "eth*");
// -p -> meta l4proto; --sport/--dport -> th sport/dport; owner -> meta skuid/skgid; -m mark -> meta mark;
// -m connmark -> ct mark; -m socket --transparent -> socket transparent 1; REDIRECT -> redirect to :P; TPROXY
// -> tproxy to :P + meta mark set + accept; MARK -> meta mark set; CONNMARK save/restore -> ct mark set meta
// mark / meta mark set ct mark; CT --zone -> ct zone set; -j chain/RETURN/ACCEPT -> jump/return/accept.
// Known nuances of the nft spelling versus x_tables (shared with iptables-nft and hand-written nft rules):
// a negated owner match (meta skuid != 1337) does not match packets without a socket, where xt_owner's
// negated --uid-owner does; socket transparent 1 also matches a transparent socket bound to a wildcard
// address, which xt_socket ignores unless --nowildcard (for Istio only Envoy's 0.0.0.0:15006 listener,
// reached by nothing but traffic addressed to port 15006 itself).
//
// ReadBack order: families IPv4 then IPv6; tables raw, mangle, nat, filter; built-in chains in the fixed
// order PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING, then ISTIO_* chains sorted by name (as libiptc lists
// them and rules/plan.h builds them); policy routes in routing.h's order.
#ifndef PNC_NETNS_NFT_NFT_BACKEND_H_
#define PNC_NETNS_NFT_NFT_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netns/backend.h"
#include "netns/nft/rule_codec.h"  // NftChainName
#include "rules/ruleset.h"

namespace pnc::netns {

// Our table's name in families ip and ip6 (equals rules::kNftTableName; a test checks).
inline constexpr char kNftTableName[] = "istio_pnc";

// Thread-safe; enters the target netns with RunInNetns (netns/executor.h).
std::unique_ptr<Backend> NewNftBackend();

// Every nftables table in the CALLING THREAD's netns as "<family> <name>" ("ip nat", "ip6 istio_pnc",
// "inet filter"), for backend detection. Read-only: one GETTABLE dump, creates nothing.
absl::StatusOr<std::vector<std::string>> ListNftTablesInCurrentNetns();

}  // namespace pnc::netns

#endif  // PNC_NETNS_NFT_NFT_BACKEND_H_
