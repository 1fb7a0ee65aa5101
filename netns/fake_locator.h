// FakeLocator: maps pod UID -> fake namespace inode, with "not created yet" and error states, for controller
// tests.
#ifndef PNC_NETNS_FAKE_LOCATOR_H_
#define PNC_NETNS_FAKE_LOCATOR_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "netns/locator.h"

namespace pnc::netns {

class FakeLocator : public Locator {
 public:
  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override;
  std::string Name() const override { return "fake"; }

  // The pod's sandbox exists with this fake inode.
  void AddSandbox(const std::string& pod_uid, uint64_t inode);
  void RemoveSandbox(const std::string& pod_uid);
  // Locate(pod_uid) returns `status` until cleared (e.g. FailedPrecondition for "host netns").
  void SetError(const std::string& pod_uid, absl::Status status);
  int locate_calls() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> sandboxes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  int locate_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_FAKE_LOCATOR_H_
