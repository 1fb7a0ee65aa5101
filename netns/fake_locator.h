// FakeLocator: maps pod UID -> a fake sandbox network namespace, with "not created yet" and error states, for
// controller tests. As unkind as the kernel: CreateSandbox hands out the LOWEST FREE inode number (so a
// sandbox recreated under the same pod UID usually gets its old inode back), while every sandbox gets a
// cookie that is never handed out again (netns/inspector.h); handles carry that cookie for FakeInspector.
#ifndef PNC_NETNS_FAKE_LOCATOR_H_
#define PNC_NETNS_FAKE_LOCATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "netns/locator.h"

namespace pnc::netns {

class FakeLocator : public Locator {
 public:
  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override;
  std::string Name() const override { return "fake"; }
  // The UIDs with a sandbox (in UID order), or the error set by SetListError.
  absl::StatusOr<std::vector<std::string>> ReadyPodUids() override;
  void SetListError(absl::Status status);
  int list_calls() const;

  struct Sandbox {
    uint64_t inode = 0;
    uint64_t cookie = 0;
  };
  // A new sandbox for the pod (replacing any): the lowest free inode (a freed one first, else the next from
  // kFirstInode), a fresh cookie.
  Sandbox CreateSandbox(const std::string& pod_uid);
  // The pod's sandbox exists with this fake inode (a fresh cookie).
  void AddSandbox(const std::string& pod_uid, uint64_t inode);
  void RemoveSandbox(const std::string& pod_uid);
  // Remove + Create: what a pause-container crash or node reboot does to a pod's netns.
  Sandbox RecreateSandbox(const std::string& pod_uid);
  std::optional<Sandbox> Get(const std::string& pod_uid) const;
  static constexpr uint64_t kFirstInode = 4026532200;
  // Locate(pod_uid) returns `status` until cleared (e.g. FailedPrecondition for "host netns").
  void SetError(const std::string& pod_uid, absl::Status status);
  int locate_calls() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, Sandbox> sandboxes_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> freed_ ABSL_GUARDED_BY(mu_);  // inode numbers of removed sandboxes, reused first
  uint64_t next_cookie_ ABSL_GUARDED_BY(mu_) = 4097;
  std::map<std::string, absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  int locate_calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status list_error_ ABSL_GUARDED_BY(mu_);
  int list_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_FAKE_LOCATOR_H_
