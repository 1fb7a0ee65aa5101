// One Ruleset rule <-> nftables expressions (libnftnl), the translation the nft backend writes and reads
// back.
//
// Encode appends, in the order rules/render.h's RenderNftables prints them: ip[6] saddr/daddr (payload load
// of the full address + bitwise for a prefix + cmp), meta iifname/oifname (16-byte cmp; "eth+" -> prefix
// cmp), meta l4proto, th sport/dport, meta skuid/skgid, meta mark, ct mark, socket transparent, then the
// target (verdict immediate; immediate port + redir; immediate port + tproxy + mark set + accept; mark set as
// immediate + meta set, or meta load + bitwise + meta set under a mask; meta load mark + ct set / ct load
// mark + meta set; immediate zone + ct set zone). Every expression uses register 1. Decode accepts exactly
// that, plus nft's own spelling of byte-aligned prefixes (a shorter payload load) and the fields the kernel
// adds when it reports redir (max = min, PROTO_SPECIFIED); anything else is an Internal error that names the
// expression and prints the rule.
#ifndef PNC_NETNS_NFT_RULE_CODEC_H_
#define PNC_NETNS_NFT_RULE_CODEC_H_

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/ruleset.h"

struct nftnl_rule;

namespace pnc::netns {

// "nat_ISTIO_OUTPUT", "mangle_PREROUTING": iptables table + chain as one nft chain name.
std::string NftChainName(rules::Table table, const std::string& chain);

// Appends `rule`'s expressions to `r`. InvalidArgument for rules the model allows but nft cannot express the
// same way or that make no sense here (port without protocol, address of the other family, host bits set, a
// jump to a chain not in `table_chains` or not ISTIO_*, REDIRECT outside nat, TPROXY outside mangle, CT
// outside raw).
absl::Status EncodeRule(nftnl_rule* r, rules::Family family, rules::Table table, const rules::Rule& rule,
                        const std::set<std::string>& table_chains);

// Reads `r`'s expressions back; `table` is the iptables table of the rule's chain, `where` names it in
// errors.
absl::StatusOr<rules::Rule> DecodeRule(nftnl_rule* r, rules::Family family, rules::Table table,
                                       const std::string& where);

}  // namespace pnc::netns

#endif  // PNC_NETNS_NFT_RULE_CODEC_H_
