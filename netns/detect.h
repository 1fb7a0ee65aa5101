// Backend detection for one network namespace, without side effects.
//
// Legacy x_tables and nf_tables can both hold rules in the same netns, and for the same hook the two run one
// after the other with no knowledge of each other (netfilter-facts.md): adding our rules to one while the
// pod's traffic is already steered by the other gives a setup nobody can reason about. So:
//  - legacy in use: /proc/thread-self/net/ip_tables_names or ip6_tables_names (read inside the netns)
//    lists a table; a table only exists once something used it (an iptables-legacy command, libiptc, us);
//  - nft in use: the nf_tables GETTABLE dump (ListNftTablesInCurrentNetns) returns any table, ours included.
// Neither: `preferred`. Only legacy: `preferred` if it is a legacy backend ("iptc"/"restore"), else "iptc".
// Only nft: "nft". Both: FailedPrecondition naming the tables found on each side. Nothing is created or
// loaded: no iptc_init, no `iptables-save -t` (both would instantiate a table).
#ifndef PNC_NETNS_DETECT_H_
#define PNC_NETNS_DETECT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "netns/netns.h"

namespace pnc::netns {

struct Detection {
  std::string backend;              // "iptc", "restore" or "nft"
  std::vector<std::string> legacy;  // "ipv4 nat", "ipv6 mangle", ...
  std::vector<std::string> nft;     // "ip istio_pnc", "inet filter", ...
};

// What the NODE's own network namespace uses, for `auto`'s choice in an empty pod namespace: legacy x_tables
// when any legacy table exists there (ip_tables_names / ip6_tables_names under `node_proc_net`, default
// "/proc/1/net", PID 1's namespace, the node's with hostPID). Side-effect free: a procfs read, no setns, no
// iptables command. (A legacy table exists only once something used legacy iptables there: kube-proxy or
// the kubelet in legacy mode, a legacy CNI plugin.)
struct NodeNetfilter {
  std::vector<std::string> legacy;  // "ipv4 nat", ...
  bool uses_legacy() const { return !legacy.empty(); }
  // What `auto` prefers in an empty pod namespace: "iptc" on a legacy node, else native "nft" (Istio and
  // kube-proxy prefer nft; nft-only kernels such as RHEL 10 have no x_tables at all).
  const char* preferred() const { return uses_legacy() ? "iptc" : "nft"; }
};
inline constexpr char kNodeProcNet[] = "/proc/1/net";
absl::StatusOr<NodeNetfilter> DetectNodeNetfilter(const std::string& node_proc_net = kNodeProcNet);

// `preferred`: "iptc", "restore" or "nft" (InvalidArgument otherwise).
absl::StatusOr<Detection> DetectBackend(const NetnsHandle& ns, absl::string_view preferred);

// The same decision from already collected facts (pure; unit-tested separately).
absl::StatusOr<Detection> DecideBackend(std::vector<std::string> legacy_tables,
                                        std::vector<std::string> nft_tables, absl::string_view preferred,
                                        absl::string_view where);

}  // namespace pnc::netns

#endif  // PNC_NETNS_DETECT_H_
