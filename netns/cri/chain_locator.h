// Locator that tries several locators in order.
#ifndef PNC_NETNS_CRI_CHAIN_LOCATOR_H_
#define PNC_NETNS_CRI_CHAIN_LOCATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/locator.h"

namespace pnc::netns {

// Tries each locator in order; the first success wins. A FailedPrecondition (the locator found the pod's
// namespace and refused it: host netns, another pod's sandbox, IP mismatch) stops the chain at once. If all
// fail: NotFound when every one said NotFound, otherwise the most informative error (other errors >
// NotFound), with every locator's message joined. Name: "chain(cri,cgroup)".
std::unique_ptr<Locator> NewChainLocator(std::vector<std::unique_ptr<Locator>> locators);

}  // namespace pnc::netns

#endif  // PNC_NETNS_CRI_CHAIN_LOCATOR_H_
