#include "netns/fake_locator.h"

#include "absl/strings/str_cat.h"

namespace pnc::netns {

absl::StatusOr<NetnsHandle> FakeLocator::Locate(const PodRef& pod) {
  absl::MutexLock lock(&mu_);
  ++locate_calls_;
  if (auto e = errors_.find(pod.uid); e != errors_.end()) return e->second;
  auto it = sandboxes_.find(pod.uid);
  if (it == sandboxes_.end())
    return absl::NotFoundError(absl::StrCat("no sandbox for pod uid ", pod.uid, " yet"));
  return NetnsHandle::ForTesting(absl::StrCat("fake-netns-", it->second), it->second);
}

void FakeLocator::AddSandbox(const std::string& pod_uid, uint64_t inode) {
  absl::MutexLock lock(&mu_);
  sandboxes_[pod_uid] = inode;
}

void FakeLocator::RemoveSandbox(const std::string& pod_uid) {
  absl::MutexLock lock(&mu_);
  sandboxes_.erase(pod_uid);
}

void FakeLocator::SetError(const std::string& pod_uid, absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (status.ok()) {
    errors_.erase(pod_uid);
  } else {
    errors_[pod_uid] = std::move(status);
  }
}

int FakeLocator::locate_calls() const {
  absl::MutexLock lock(&mu_);
  return locate_calls_;
}

}  // namespace pnc::netns
