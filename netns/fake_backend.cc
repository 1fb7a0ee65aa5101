#include "netns/fake_backend.h"

namespace pnc::netns {

absl::Status FakeBackend::Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) {
  absl::MutexLock lock(&mu_);
  ++apply_calls_;
  if (fail_next_ > 0) {
    --fail_next_;
    return fail_status_;
  }
  installed_[ns.inode()] = Installed{ns.testing_cookie(), ruleset};
  return absl::OkStatus();
}

absl::StatusOr<rules::Ruleset> FakeBackend::ReadBack(const NetnsHandle& ns) {
  absl::MutexLock lock(&mu_);
  auto it = installed_.find(ns.inode());
  // Same inode, another cookie: a new namespace that reuses a freed inode number, so it holds nothing.
  if (it == installed_.end() || it->second.cookie != ns.testing_cookie()) return rules::Ruleset{};
  rules::Ruleset out = it->second.ruleset;
  if (corrupt_) {
    for (auto& fam : out.families)
      for (auto& table : fam.tables)
        for (auto& chain : table.chains)
          if (!chain.rules.empty()) {
            chain.rules.pop_back();
            return out;
          }
  }
  return out;
}

absl::Status FakeBackend::Remove(const NetnsHandle& ns) {
  absl::MutexLock lock(&mu_);
  ++remove_calls_;
  installed_.erase(ns.inode());
  return absl::OkStatus();
}

void FakeBackend::FailNextApplies(int n, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_ = n;
  fail_status_ = std::move(status);
}

void FakeBackend::CorruptReadBack(bool corrupt) {
  absl::MutexLock lock(&mu_);
  corrupt_ = corrupt;
}

bool FakeBackend::Has(uint64_t inode) const {
  absl::MutexLock lock(&mu_);
  return installed_.count(inode) > 0;
}

rules::Ruleset FakeBackend::At(uint64_t inode) const {
  absl::MutexLock lock(&mu_);
  auto it = installed_.find(inode);
  return it == installed_.end() ? rules::Ruleset{} : it->second.ruleset;
}

int FakeBackend::apply_calls() const {
  absl::MutexLock lock(&mu_);
  return apply_calls_;
}

int FakeBackend::remove_calls() const {
  absl::MutexLock lock(&mu_);
  return remove_calls_;
}

void FakeBackend::Wipe(uint64_t inode) {
  absl::MutexLock lock(&mu_);
  installed_.erase(inode);
}

}  // namespace pnc::netns
