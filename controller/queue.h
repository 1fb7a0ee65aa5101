// WorkQueue: the controller's rate-limited, de-duplicating queue of pod UIDs (client-go's workqueue
// semantics).
//
//  - A key is at most once in the queue; adding a key that is queued is a no-op.
//  - A key being processed (between Get and Done) is never handed to a second worker; adding it meanwhile
//    marks it dirty and it is re-queued by Done. This serialises all work on one pod.
//  - AddRateLimited delays a key by base * 2^(failures so far), capped at max_delay; Forget resets the count.
//  - The queue is bounded (queued + delayed keys): beyond max_items Add returns false and the key is dropped
//    (the periodic resync re-adds it), so a flood of events cannot exhaust memory.
//  - ShutDown wakes every Get, which then returns false; Done is still accepted.
//  - Outages (a shared dependency such as the container runtime is down; the key is not at fault):
//    ParkForOutage re-queues a key after outage_retry WITHOUT growing its failure count, so its own backoff
//    resumes where it was once the outage ends; ReleaseParked makes every parked key ready at once (call it
//    when the dependency answers again, e.g. on the first successful locate). A parked key stops being
//    parked when it is handed out by Get/TryGet (if it fails the same way again it is parked again).
//  - Two priorities: a key added as kRecheck (a pod that is done already: an echo of its own mark, a later
//    status update, a resync) is handed out only when no kFirst key (a pod still to be set up, whose init
//    container waits for it) is ready. Adding a queued kRecheck key as kFirst moves it up; a key queued as
//    kFirst stays kFirst. Delayed and parked keys come back as kFirst; waiting keys (AddWaiting: polls for
//    something that may still not be there) come back as kRecheck, by their timer or ReleaseWaiting, so that
//    polls never hold up a pod with fresh news; ReleaseWaitingKeys (what they wait for was seen) makes them
//    kFirst.
#ifndef PNC_CONTROLLER_QUEUE_H_
#define PNC_CONTROLLER_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pnc::controller {

class WorkQueue {
 public:
  struct Options {
    absl::Duration base_delay = absl::Milliseconds(50);
    absl::Duration max_delay = absl::Seconds(60);
    size_t max_items = 100000;
    absl::Duration outage_retry = absl::Milliseconds(200);
    std::function<absl::Time()> now = absl::Now;  // injectable for tests
  };
  explicit WorkQueue(Options options);
  WorkQueue() : WorkQueue(Options()) {}

  enum class Priority { kFirst, kRecheck };
  bool Add(const std::string& key, Priority priority = Priority::kFirst);
  bool AddAfter(const std::string& key, absl::Duration delay);
  // Returns the delay chosen (for logs); a negative duration means the key was dropped.
  absl::Duration AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  // False when the key was dropped (queue full, shutting down).
  bool ParkForOutage(const std::string& key);
  size_t ReleaseParked();  // how many keys were made ready
  size_t Parked() const;
  // A key waiting for something outside the process to appear (its pod's sandbox): backed off like
  // AddRateLimited (with a count of its own: waiting does not grow AddRateLimited's delay for the key's later
  // failures) but never longer than `cap`, and ReleaseWaiting(n) makes the n keys that have waited
  // longest ready at once (call it when a sign of a new sandbox appears, e.g. a new file in the runtime's
  // netns directory). `floor`: never sooner than this (a backstop timer while something else watches for
  // the key's news: the sandbox poller). Returns the delay chosen; negative when dropped.
  absl::Duration AddWaiting(const std::string& key, absl::Duration cap,
                            absl::Duration floor = absl::ZeroDuration());
  size_t ReleaseWaiting(size_t n = SIZE_MAX);  // how many keys were made ready
  size_t Waiting() const;
  // The keys ReleaseWaitingKeys can act on: waiting (AddWaiting) and not being processed, in key order.
  std::vector<std::string> WaitingKeys() const;
  // Makes those of `keys` that wait (AddWaiting; timer pending, or fired and queued as kRecheck) ready now
  // as kFirst: what they waited for is there, so their pod goes before re-checks. Keys being processed and
  // keys not waiting are left alone. Each key at most once until Forget: a key this released that is back to
  // waiting (what it waited for was listed but could not be used) keeps its own timer from then on, so a list
  // that keeps naming it cannot turn its backoff into a busy loop. Returns how many were made ready or moved
  // up.
  size_t ReleaseWaitingKeys(const std::vector<std::string>& keys);
  bool ReleasedByList(const std::string& key) const;  // ReleaseWaitingKeys released it since the last Forget
  // The same for one key, without the once-per-key rule (e.g. its backstop timer no longer has a watcher).
  bool ReleaseWaitingKey(const std::string& key);
  int NumRequeues(const std::string& key) const;  // AddRateLimited + AddWaiting calls since the last Forget

  // Blocks until a key is ready (true) or the queue shuts down (false).
  bool Get(std::string* key);
  // Non-blocking variant (moves due delayed keys first).
  bool TryGet(std::string* key);
  void Done(const std::string& key);

  void ShutDown();
  bool shutting_down() const;
  size_t Len() const;      // ready keys (both priorities)
  size_t Delayed() const;  // waiting keys
  uint64_t dropped() const;

 private:
  bool AddLocked(const std::string& key, Priority priority = Priority::kFirst)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends a dirty key that is not being processed to the deque of its priority.
  void PushLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AddAfterLocked(const std::string& key, absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PromoteDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PopLocked(std::string* key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReleaseWaitingLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes every key of `keys` ready now as kFirst (dropping its timer) and empties `keys`.
  size_t ReleaseLocked(std::set<std::string>& keys) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);    // kFirst keys, ready
  std::deque<std::string> recheck_ ABSL_GUARDED_BY(mu_);  // kRecheck keys, ready; may hold stale entries
  std::set<std::string> low_ ABSL_GUARDED_BY(mu_);        // dirty keys whose priority is kRecheck
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> waiting_ ABSL_GUARDED_BY(mu_);       // key -> ready time (earliest wins)
  std::multimap<absl::Time, std::string> by_time_ ABSL_GUARDED_BY(mu_);  // may hold stale entries
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);             // AddRateLimited's count per key
  std::map<std::string, int> waits_ ABSL_GUARDED_BY(mu_);                // AddWaiting's count per key
  // AddWaiting keys not handed out since, with the sequence number of their AddWaiting; and by that number
  // (may hold stale entries), for ReleaseWaiting's longest-waiting-first order.
  std::map<std::string, uint64_t> awaiting_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> awaiting_order_ ABSL_GUARDED_BY(mu_);
  uint64_t awaiting_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> parked_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> released_by_list_ ABSL_GUARDED_BY(mu_);  // ReleaseWaitingKeys, until Forget
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_QUEUE_H_
