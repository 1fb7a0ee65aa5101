#include "netns/fake_locator.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace pnc::netns {

absl::StatusOr<NetnsHandle> FakeLocator::Locate(const PodRef& pod) {
  absl::MutexLock lock(&mu_);
  ++locate_calls_;
  if (auto e = errors_.find(pod.uid); e != errors_.end()) return e->second;
  auto it = sandboxes_.find(pod.uid);
  if (it == sandboxes_.end())
    return absl::NotFoundError(absl::StrCat("no sandbox for pod uid ", pod.uid, " yet"));
  return NetnsHandle::ForTesting(absl::StrCat("fake-netns-", it->second.inode), it->second.inode,
                                 it->second.cookie);
}

absl::StatusOr<std::vector<std::string>> FakeLocator::ReadyPodUids() {
  absl::MutexLock lock(&mu_);
  ++list_calls_;
  if (!list_error_.ok()) return list_error_;
  std::vector<std::string> uids;
  for (const auto& [uid, sb] : sandboxes_) uids.push_back(uid);
  return uids;
}

void FakeLocator::SetListError(absl::Status status) {
  absl::MutexLock lock(&mu_);
  list_error_ = std::move(status);
}

int FakeLocator::list_calls() const {
  absl::MutexLock lock(&mu_);
  return list_calls_;
}

FakeLocator::Sandbox FakeLocator::CreateSandbox(const std::string& pod_uid) {
  absl::MutexLock lock(&mu_);
  if (auto it = sandboxes_.find(pod_uid); it != sandboxes_.end()) {
    freed_.insert(it->second.inode);
    sandboxes_.erase(it);
  }
  // Lowest free number first: a freed one if any, else the next never used.
  std::set<uint64_t> used;
  for (const auto& [uid, sb] : sandboxes_) used.insert(sb.inode);
  uint64_t inode = 0;
  for (uint64_t f : freed_)
    if (used.count(f) == 0) {
      inode = f;
      break;
    }
  if (inode == 0) {
    inode = kFirstInode;
    while (used.count(inode) != 0) ++inode;
  }
  freed_.erase(inode);
  Sandbox sb{inode, next_cookie_};
  // Not strictly monotonic, like the kernel's per-CPU cookie allocation, but never reused.
  next_cookie_ += 1 + (next_cookie_ % 3);
  sandboxes_[pod_uid] = sb;
  return sb;
}

FakeLocator::Sandbox FakeLocator::RecreateSandbox(const std::string& pod_uid) {
  RemoveSandbox(pod_uid);
  return CreateSandbox(pod_uid);
}

std::optional<FakeLocator::Sandbox> FakeLocator::Get(const std::string& pod_uid) const {
  absl::MutexLock lock(&mu_);
  auto it = sandboxes_.find(pod_uid);
  if (it == sandboxes_.end()) return std::nullopt;
  return it->second;
}

void FakeLocator::AddSandbox(const std::string& pod_uid, uint64_t inode) {
  absl::MutexLock lock(&mu_);
  sandboxes_[pod_uid] = Sandbox{inode, next_cookie_};
  next_cookie_ += 1 + (next_cookie_ % 3);
}

void FakeLocator::RemoveSandbox(const std::string& pod_uid) {
  absl::MutexLock lock(&mu_);
  auto it = sandboxes_.find(pod_uid);
  if (it == sandboxes_.end()) return;
  freed_.insert(it->second.inode);
  sandboxes_.erase(it);
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
