#include "netns/fake_backend.h"

namespace pnc::netns {

absl::Status FakeBackend::Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) {
  absl::MutexLock lock(&mu_);
  ++apply_calls_;
  if (fail_next_ > 0) {
    --fail_next_;
    return fail_status_;
  }
  installed_[ns.inode()] = ruleset;
  return absl::OkStatus();
}

absl::StatusOr<rules::Ruleset> FakeBackend::ReadBack(const NetnsHandle& ns) {
  absl::MutexLock lock(&mu_);
  auto it = installed_.find(ns.inode());
  if (it == installed_.end()) return rules::Ruleset{};
  rules::Ruleset out = it->second;
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
