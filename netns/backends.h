// Backend factory by name, for the controller's --backend flag.
//
//   "iptc"    libiptc, legacy x_tables in process (iptc_backend.h)
//   "nft"     nftables over netlink (nft/nft_backend.h)
//   "restore" iptables-legacy-restore exec fallback (restore_backend.h)
//   "auto"    per namespace, DetectBackend(ns, "iptc") (detect.h) picks iptc or nft from what the
//             namespace already holds (iptc for an empty one) and refuses one that holds both. Name() "auto".
#ifndef PNC_NETNS_BACKENDS_H_
#define PNC_NETNS_BACKENDS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "netns/backend.h"

namespace pnc::netns {

// InvalidArgument for any other name.
absl::StatusOr<std::unique_ptr<Backend>> NewBackendByName(absl::string_view name);

}  // namespace pnc::netns

#endif  // PNC_NETNS_BACKENDS_H_
