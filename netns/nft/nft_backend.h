// Native nftables backend: programs a Ruleset over netlink (libnftnl + libmnl), one atomic batch per Apply.
//
// Layout in the pod's netns: one nftables table per (address family, iptables table) of the Ruleset, named
// `<ip|ip6> istio_pnc_<raw|mangle|nat|filter>`. Inside it, chains carry exactly the Ruleset's names: the
// built-in ones (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING) are base chains hooked like iptables-nft's
// (type nat at dstnat/srcnat priority, mangle -150 (OUTPUT: type route), raw -300, filter 0; policy accept),
// the ISTIO_* ones are regular chains. Separate tables keep every name identical to the iptables view
// (ISTIO_INBOUND exists in both nat and mangle in TPROXY mode) and make our part of the ruleset trivially
// identifiable: tables named istio_pnc_*.
//
// Apply: one GETTABLE dump (plus a GETCHAIN dump if tables of ours already exist), then one batch: add tables
// and chains (idempotent adds), flush our pre-existing chains, delete our stale chains/tables, append all
// rules. A first apply into a fresh netns deletes nothing, so it does not pay the ~13 ms close() wait that
// nf_tables imposes after destroying objects (netfilter-facts.md); a re-apply over existing rules does. Then
// the TPROXY policy routes (routing.h). ReadBack dumps our tables/chains/rules and translates expressions
// back into the Ruleset model exactly; any expression we do not write ourselves yields an Internal error.
// Remove deletes our tables (cold path) and our policy routes.
//
// Translation (iptables -> nft): -p -> meta l4proto; -s/-d -> payload load + bitwise (prefix) + cmp; -i/-o ->
// meta iifname/oifname ("eth+" wildcard -> prefix cmp); --dport -> th dport; owner -> meta skuid/skgid; -m
// mark -> meta mark; -m connmark -> ct mark; -m socket --transparent -> socket transparent 1; REDIRECT ->
// redirect to :P; TPROXY -> tproxy to :P + meta mark set + accept; MARK -> meta mark set; CONNMARK
// save/restore -> ct mark set meta mark / meta mark set ct mark; --sport -> th sport; CT --zone -> ct zone
// set; -j chain/RETURN/ACCEPT -> jump/return/accept. Known nuance shared with iptables-nft: a negated owner
// match
// (`meta skuid != 1337`) does not match packets without a socket, where xt_owner's `! --uid-owner` would.
//
// ReadBack order: families IPv4 then IPv6; tables raw, mangle, nat, filter; built-in chains in the fixed
// order PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING, then ISTIO_* chains sorted by name (as libiptc lists
// them); policy routes as routing.h orders them.
#ifndef PNC_NETNS_NFT_NFT_BACKEND_H_
#define PNC_NETNS_NFT_NFT_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netns/backend.h"
#include "rules/ruleset.h"

namespace pnc::netns {

// Our table's name in families ip and ip6 (equals rules::kNftTableName; a test checks).
inline constexpr char kNftTableName[] = "istio_pnc";

// "nat_ISTIO_OUTPUT", "mangle_PREROUTING".
std::string NftChainName(rules::Table table, const std::string& chain);

// Thread-safe; enters the target netns with RunInNetns (netns/executor.h).
std::unique_ptr<Backend> NewNftBackend();

// Every nftables table in the CALLING THREAD's netns as "<family> <name>" ("ip nat", "ip6 istio_pnc_nat",
// "inet filter"), for backend detection. Read-only: one GETTABLE dump, creates nothing.
absl::StatusOr<std::vector<std::string>> ListNftTablesInCurrentNetns();

}  // namespace pnc::netns

#endif  // PNC_NETNS_NFT_NFT_BACKEND_H_
