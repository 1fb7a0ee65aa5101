// SandboxPoller: notices the ready sandbox of a pod that waits for one (WorkQueue::AddWaiting) without a
// locate per pod and timer: one runtime call lists the pods with a ready sandbox (Locator::ReadyPodUids) and
// every waiting pod among them goes to the front of the work queue at once. Its locate then still does every
// cross-check; the list is only a hint.
//
// Contract:
//  - Calls the runtime once at Start (whether it can list; healthy() from then on), then only while some pod
//    waits; never two calls at once; the next call starts no sooner than `interval` after the previous one
//    ended, nor sooner than that call took, up to `slow_call` (the runtime spends at most about half its time
//    answering the poller unless single calls take longer than that). Times are monotonic.
//  - For `hot_window` after Hint() (a sign that the runtime is creating a sandbox: a new file in its netns
//    directory, written before the sandbox is ready) the interval is `fast_interval`.
//  - A locator that cannot list (Unimplemented) stops the poller for good: the per-pod timers remain. Other
//    errors (runtime down, too slow) are logged once per kind of failure and polling goes on.
//  - A pod missed by a poll still goes at its own timer (the caller makes it a `backstop` while healthy()).
#ifndef PNC_CONTROLLER_SANDBOX_POLLER_H_
#define PNC_CONTROLLER_SANDBOX_POLLER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "controller/metrics.h"
#include "controller/queue.h"
#include "netns/locator.h"

namespace pnc::controller {

class SandboxPoller {
 public:
  struct Options {
    absl::Duration interval = absl::Milliseconds(100);
    absl::Duration fast_interval = absl::Milliseconds(5);
    absl::Duration hot_window = absl::Seconds(2);
    // While the poller is healthy, a waiting pod's own timer is only a backstop: this long.
    absl::Duration backstop = absl::Seconds(5);
    // A list that took longer than this does not count as healthy (pods keep their own short timers), and
    // the wait after a call is at most this long however long the call took.
    absl::Duration slow_call = absl::Seconds(1);
  };
  // `locator`, `queue` and `metrics` (may be null) must outlive the poller.
  SandboxPoller(Options options, netns::Locator* locator, WorkQueue* queue, Metrics* metrics = nullptr);
  ~SandboxPoller();  // Stop()
  SandboxPoller(const SandboxPoller&) = delete;
  SandboxPoller& operator=(const SandboxPoller&) = delete;

  void Start();  // the polling thread
  void Stop();   // wakes and joins it; idempotent
  // A sandbox is being created: poll at fast_interval for hot_window from now.
  void Hint();

  // One poll now, on the caller's thread (never at the same time as the poller thread's): lists ready
  // sandboxes if some pod waits and releases the waiting pods among them. Returns how many pods were released
  // (0 without a call when nobody waits).
  absl::StatusOr<size_t> PollOnce();

  // Started, not stopped, able to list, and its last call succeeded within `slow_call`: a waiting pod can
  // rely on it (its timer may be the backstop). When a call fails or is slow after one that was not, every
  // waiting pod not being processed is released once so that it goes back to its own short timers.
  bool healthy() const;
  uint64_t calls() const;     // runtime calls made
  uint64_t released() const;  // pods released by polls
  bool gave_up() const;       // the locator cannot list

 private:
  void Run();
  absl::StatusOr<size_t> Poll(bool even_if_nobody_waits);
  using Clock = std::chrono::steady_clock;  // waits and call times: a wall-clock step must not stall polling
  Clock::time_point NextPoll() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  netns::Locator* const locator_;
  WorkQueue* const queue_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool gave_up_ ABSL_GUARDED_BY(mu_) = false;
  bool hinted_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool reliable_ ABSL_GUARDED_BY(mu_) = false;  // the last call succeeded within slow_call
  absl::Mutex poll_mu_;                         // one call at a time (PollOnce and the thread)
  Clock::time_point hot_until_ ABSL_GUARDED_BY(mu_) = Clock::time_point::min();
  Clock::duration last_call_ ABSL_GUARDED_BY(mu_) = Clock::duration::zero();    // how long the last call took
  Clock::time_point last_end_ ABSL_GUARDED_BY(mu_) = Clock::time_point::min();  // when it ended
  uint64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t released_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);  // the kind of failure logged last ("" after a success)
  std::thread thread_;
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_SANDBOX_POLLER_H_
