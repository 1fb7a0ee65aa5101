// Backend factory by name, for the controller's --backend flag.
//
//   "iptc"    libiptc, legacy x_tables in process (iptc_backend.h)
//   "nft"     nftables over netlink (nft/nft_backend.h)
//   "restore" iptables-legacy-restore exec fallback (restore_backend.h)
//   "auto"    per namespace, DetectBackend(ns, preferred) (detect.h) picks iptc or nft from what the
//             namespace already holds and refuses one that holds both; an empty namespace gets `preferred`:
//             native nft unless the node itself uses legacy x_tables (DetectNodeNetfilter, read once when the
//             backend is created). Name() "auto".
#ifndef PNC_NETNS_BACKENDS_H_
#define PNC_NETNS_BACKENDS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "netns/backend.h"
#include "netns/detect.h"

namespace pnc::netns {

// InvalidArgument for any other name.
absl::StatusOr<std::unique_ptr<Backend>> NewBackendByName(absl::string_view name);

// "auto" with the node's netfilter read from `node_proc_net` (tests point it at a directory of their own).
// An unreadable directory is an error at creation.
absl::StatusOr<std::unique_ptr<Backend>> NewAutoBackend(const std::string& node_proc_net = kNodeProcNet);

}  // namespace pnc::netns

#endif  // PNC_NETNS_BACKENDS_H_
