// FakeInspector: reports the cookie a fake handle carries (NetnsHandle::ForTesting, set by FakeLocator) and
// routes from a table the test controls (default: every address via "eth0", like a pod with a default
// route). A handle without a fake cookie is an error, as a kernel without cookies would be.
#ifndef PNC_NETNS_FAKE_INSPECTOR_H_
#define PNC_NETNS_FAKE_INSPECTOR_H_

#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "netns/inspector.h"

namespace pnc::netns {

class FakeInspector : public Inspector {
 public:
  absl::StatusOr<NetnsView> Inspect(const NetnsHandle& ns, const std::vector<std::string>& routes) override;

  // Route every queried address via `device` (nullopt: nothing is routable).
  void SetDefaultRoute(std::optional<std::string> device);
  // Fail every Inspect with `status` until cleared with OkStatus().
  void SetError(absl::Status status);
  int calls() const;

 private:
  mutable absl::Mutex mu_;
  std::optional<std::string> default_device_ ABSL_GUARDED_BY(mu_) = "eth0";
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_FAKE_INSPECTOR_H_
