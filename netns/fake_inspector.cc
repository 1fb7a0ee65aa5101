#include "netns/fake_inspector.h"

namespace pnc::netns {

absl::StatusOr<NetnsView> FakeInspector::Inspect(const NetnsHandle& ns,
                                                 const std::vector<std::string>& routes) {
  absl::MutexLock lock(&mu_);
  ++calls_;
  if (!error_.ok()) return error_;
  if (ns.testing_cookie() == 0)
    return absl::FailedPreconditionError("fake inspector: handle " + ns.path() + " has no fake cookie");
  NetnsView v;
  v.cookie = ns.testing_cookie();
  if (default_device_)
    for (const std::string& r : routes) v.route_device[r] = *default_device_;
  return v;
}

void FakeInspector::SetDefaultRoute(std::optional<std::string> device) {
  absl::MutexLock lock(&mu_);
  default_device_ = std::move(device);
}

void FakeInspector::SetError(absl::Status status) {
  absl::MutexLock lock(&mu_);
  error_ = std::move(status);
}

int FakeInspector::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

}  // namespace pnc::netns
