#include "controller/wiring.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "netns/backends.h"
#include "netns/cri/cgroup_locator.h"
#include "netns/cri/chain_locator.h"
#include "netns/cri/cri_locator.h"

namespace pnc::controller {

absl::StatusOr<std::unique_ptr<netns::Backend>> MakeBackend(const std::string& name) {
  if (name != "auto" && name != "iptc" && name != "nft" && name != "restore") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend must be auto, iptc, nft or restore, not \"", name, "\""));
  }
  return netns::NewBackendByName(name);
}

absl::StatusOr<std::unique_ptr<netns::Locator>> MakeLocator(const std::string& name,
                                                            const std::string& cri_endpoint,
                                                            const std::string& proc_root) {
  if (name == "cgroup") return netns::NewCgroupLocator(proc_root);
  if (name == "cri") return netns::NewCriLocator(cri_endpoint);
  if (name != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--locator must be auto, cri or cgroup, not \"", name, "\""));
  }
  // auto: the runtime knows best; the cgroup scan covers a runtime that is down or a sandbox it does not
  // report yet.
  absl::StatusOr<std::unique_ptr<netns::Locator>> cri = netns::NewCriLocator(cri_endpoint);
  if (!cri.ok()) return cri.status();
  std::vector<std::unique_ptr<netns::Locator>> chain;
  chain.push_back(*std::move(cri));
  chain.push_back(netns::NewCgroupLocator(proc_root));
  return netns::NewChainLocator(std::move(chain));
}

}  // namespace pnc::controller
