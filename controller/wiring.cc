#include "controller/wiring.h"

#include "absl/strings/str_cat.h"

namespace pnc::controller {

absl::StatusOr<std::unique_ptr<netns::Backend>> MakeBackend(const std::string& name) {
  if (name != "auto" && name != "iptc" && name != "nft" && name != "restore") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend must be auto, iptc, nft or restore, not \"", name, "\""));
  }
  return absl::UnimplementedError(
      absl::StrCat("backend \"", name, "\" is not built into this binary yet (netns/backends.h missing)"));
}

absl::StatusOr<std::unique_ptr<netns::Locator>> MakeLocator(const std::string& name,
                                                            const std::string& cri_endpoint,
                                                            const std::string& proc_root) {
  if (name != "auto" && name != "cri" && name != "cgroup") {
    return absl::InvalidArgumentError(
        absl::StrCat("--locator must be auto, cri or cgroup, not \"", name, "\""));
  }
  (void)cri_endpoint;
  (void)proc_root;
  return absl::UnimplementedError(
      absl::StrCat("locator \"", name, "\" is not built into this binary yet (netns/cri/ missing)"));
}

}  // namespace pnc::controller
