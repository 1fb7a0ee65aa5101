// Builds the real netns backend and locator from flag values. Kept apart from main.cc so that the list of
// what is compiled in lives in one place.
#ifndef PNC_CONTROLLER_WIRING_H_
#define PNC_CONTROLLER_WIRING_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "netns/backend.h"
#include "netns/locator.h"

namespace pnc::controller {

// name: "auto" | "iptc" | "nft" | "restore".
absl::StatusOr<std::unique_ptr<netns::Backend>> MakeBackend(const std::string& name);
// name: "auto" (CRI, then cgroup scan) | "cri" | "cgroup".
absl::StatusOr<std::unique_ptr<netns::Locator>> MakeLocator(const std::string& name,
                                                            const std::string& cri_endpoint,
                                                            const std::string& proc_root);

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_WIRING_H_
