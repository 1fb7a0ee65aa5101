// FakeBackend: an in-memory Backend keyed by namespace inode, with fault injection, for controller tests.
// Like the kernel, a namespace that reuses a freed inode number (another fake cookie, netns/fake_locator.h)
// starts empty.
#ifndef PNC_NETNS_FAKE_BACKEND_H_
#define PNC_NETNS_FAKE_BACKEND_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "netns/backend.h"

namespace pnc::netns {

class FakeBackend : public Backend {
 public:
  std::string Name() const override { return "fake"; }
  absl::Status Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) override;
  absl::StatusOr<rules::Ruleset> ReadBack(const NetnsHandle& ns) override;
  absl::Status Remove(const NetnsHandle& ns) override;

  // Fault injection: the next `n` Apply calls fail with `status`.
  void FailNextApplies(int n, absl::Status status);
  // ReadBack returns a Ruleset missing the last rule of the first chain (simulates a half-applied or tampered
  // set).
  void CorruptReadBack(bool corrupt);
  // Inspection.
  bool Has(uint64_t inode) const;
  // What was last applied at this inode, whichever namespace (cookie) it was; empty if none.
  rules::Ruleset At(uint64_t inode) const;
  int apply_calls() const;
  int remove_calls() const;
  // Pretend someone else (an admin, a crash) wiped our rules in a namespace.
  void Wipe(uint64_t inode);

 private:
  mutable absl::Mutex mu_;
  struct Installed {
    uint64_t cookie = 0;
    rules::Ruleset ruleset;
  };
  std::map<uint64_t, Installed> installed_ ABSL_GUARDED_BY(mu_);
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  bool corrupt_ ABSL_GUARDED_BY(mu_) = false;
  int apply_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int remove_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_FAKE_BACKEND_H_
