// Which legacy x_tables tables exist in the CALLING THREAD's network namespace, without creating any.
//
// The kernel instantiates a legacy table in a namespace on first use (iptc_init, `iptables-legacy-save -t
// nat`), so "does this netns hold legacy rules" must be answered from
// /proc/thread-self/net/ip{,6}_tables_names, which lists only tables that exist. (/proc/net is
// /proc/self/net: the namespace of the MAIN thread, wrong on a RunInNetns worker.)
#ifndef PNC_NETNS_XTABLES_NAMES_H_
#define PNC_NETNS_XTABLES_NAMES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/ruleset.h"

namespace pnc::netns {

// Table names ("nat", "filter", ...) in kernel order. A missing file (module not loaded) is an empty list.
absl::StatusOr<std::vector<std::string>> LegacyTablesInCurrentNetns(rules::Family family);

// Same for the namespace of a procfs net directory, e.g. "/proc/1/net" (the network namespace of PID 1:
// the node's, when the caller shares the host PID namespace). Reading it creates nothing.
absl::StatusOr<std::vector<std::string>> LegacyTablesIn(const std::string& proc_net_dir,
                                                        rules::Family family);

// Same, as the Table enum; names we do not model (e.g. "security") are skipped.
absl::StatusOr<std::vector<rules::Table>> LegacyModelTablesInCurrentNetns(rules::Family family);

}  // namespace pnc::netns

#endif  // PNC_NETNS_XTABLES_NAMES_H_
