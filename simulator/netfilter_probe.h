// ListNetfilterTables: which netfilter tables exist in a network namespace, to prove that the controller left
// a pod (or the node) alone. x_tables: /proc/thread-self/net/ip{,6}_tables_names read from a thread inside
// the namespace (only the tables someone instantiated are listed); nf_tables: `nft list tables` run inside it
// (argv, no shell).
#ifndef PNC_SIMULATOR_NETFILTER_PROBE_H_
#define PNC_SIMULATOR_NETFILTER_PROBE_H_

#include <string>

#include "absl/status/statusor.h"

namespace pnc::sim {

// `netns_fd` -1: the calling thread's namespace. `scratch_path`: a file for nft's output. Returns e.g.
// "ip:nat ip6:mangle nft:table ip istio_pnc", or "" when the namespace has no table at all.
absl::StatusOr<std::string> ListNetfilterTables(int netns_fd, const std::string& scratch_path);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_NETFILTER_PROBE_H_
