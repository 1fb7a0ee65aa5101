// SandboxPool: pod network namespaces created ahead of time, so a fake node's sandbox creation (netns + veth
// + addresses: a few ms of kernel work each, all on the same 2 cores as the controller) stays off the path
// the report times for the controller (sandbox ready -> marked).
//
// A real runtime pays that cost too, but on its own CPUs budget and before it reports the sandbox ready; here
// 110 namespaces created in a burst by the same process that serves the API used to delay every controller
// action. Take() hands out a pre-created namespace when one is left and creates one inline otherwise; a
// background thread at nice 19 refills the pool to its target size (for create/delete cycles).
//
// Not used by nodes whose scenario predicts netns identities (forged marks from a throwaway netns created
// just before the pod): a pooled namespace was created long before, so such a guess would miss for the wrong
// reason.
#ifndef PNC_SIMULATOR_SANDBOX_POOL_H_
#define PNC_SIMULATOR_SANDBOX_POOL_H_

#include <deque>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "netns/testing/sandbox.h"

namespace pnc::sim {

class SandboxPool {
 public:
  // `target` 0 disables the pool (Take() creates inline). `sandbox` must outlive the pool.
  SandboxPool(netns::testing::Sandbox* sandbox, size_t target);
  ~SandboxPool();  // stops the refill thread; unused namespaces are removed
  SandboxPool(const SandboxPool&) = delete;
  SandboxPool& operator=(const SandboxPool&) = delete;

  // Fills the pool to its target size on the calling thread.
  absl::Status Fill();
  // Starts the background refill thread (after Fill()).
  void StartRefill();
  absl::StatusOr<netns::testing::PodNetns> Take();

  size_t target() const { return target_; }
  size_t taken_from_pool() const;
  size_t created_inline() const;

 private:
  absl::StatusOr<netns::testing::PodNetns> Create();
  void Refill();

  netns::testing::Sandbox* sandbox_;
  const size_t target_;
  mutable absl::Mutex mu_;
  std::deque<netns::testing::PodNetns> ready_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  size_t inline_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread refill_;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_SANDBOX_POOL_H_
