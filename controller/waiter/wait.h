// Waiting for the controller's mark in a Downward API file, with inotify on the file's DIRECTORY: the kubelet
// never rewrites the file in place, it swaps the `..data` symlink (rename(2) of `..data_tmp`), which a watch
// on the file itself would miss. Every event in the directory triggers one re-read.
//
// The annotation is only the wake-up (docs/mark.md). kReady requires, on the same read:
//  1. status == `initialized`;
//  2. the netns identity ("<boot_id>/<cookie>") equal to this process's own network namespace (a mark left
//     from a recreated sandbox, or from before a reboot, never matches; an nsfs inode would);
//  3. the datapath probe the mark names passing in this netns (controller/waiter/probe.h); or, when the mark
//     says `none` (no capturable outbound TCP connection), the controller's proof marker for the mark's plan
//     present in this netns (marker_check.h), which nothing inside the pod can create. The note says which.
// While 1-2 hold but the probe fails, the probe is repeated on every directory event and every
// probe_interval_ms until the timeout. `error: ...` ends the wait at once.
#ifndef PNC_CONTROLLER_WAITER_WAIT_H_
#define PNC_CONTROLLER_WAITER_WAIT_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "rules/mark.h"

namespace pnc::waiter {

struct WaitOptions {
  std::string file = "/etc/podinfo/pod_annotations";
  std::string key = "pod-network-controller.istio.io/status";
  std::string value = "initialized";
  std::string error_prefix = "error: ";
  int64_t timeout_ms = 300000;
  // Condition 2 (off only for debugging: then any `initialized` passes this step).
  bool require_netns_match = true;
  std::string netns_key = "pod-network-controller.istio.io/netns";
  // This process's identity; nullopt: read SO_NETNS_COOKIE and /proc/sys/kernel/random/boot_id.
  std::optional<rules::NetnsIdentity> own_identity;
  // Condition 3 (off only for debugging: then the identity alone releases the pod, and kReady's note says
  // so).
  bool probe = true;
  std::string probe_key = "pod-network-controller.istio.io/probe";
  std::string plan_key = "pod-network-controller.istio.io/plan";
  int probe_attempt_ms = 300;
  int probe_interval_ms = 200;
};

enum class WaitOutcome {
  kReady,    // conditions 1-3 above; note says how the redirection was proven
  kError,    // key starts with error_prefix; message = the reason (control bytes escaped, bounded)
  kTimeout,  // nothing conclusive before the deadline; message says what was last seen (including a value
             // bound to another netns, or not bound at all)
  kFailure,  // cannot watch (directory missing, inotify unavailable); message says why
};

struct WaitResult {
  WaitOutcome outcome = WaitOutcome::kFailure;
  std::string message;
  std::string note;  // kReady: the probe's result, or why none was run
  int reads = 0;     // how many times the file was read (1 + wake-ups)
  int probes = 0;    // probe attempts
};

// This process's network namespace identity (socket + getsockopt(SO_NETNS_COOKIE), boot id file). Returns
// false with `error` set when the kernel or /proc cannot tell.
bool ReadOwnIdentity(rules::NetnsIdentity* out, std::string* error);

// Owns the inotify watch. Split from WaitForAnnotation because closing an inotify fd is slow: the kernel
// waits for an SRCU grace period when the group is destroyed (measured ~10 ms on a loaded 2-core VM), so
// callers that care about latency act on the result first and destroy the watcher afterwards (the waiter
// binary simply exits).
class AnnotationWatcher {
 public:
  explicit AnnotationWatcher(WaitOptions options);
  ~AnnotationWatcher();
  AnnotationWatcher(const AnnotationWatcher&) = delete;
  AnnotationWatcher& operator=(const AnnotationWatcher&) = delete;

  // Blocks until an outcome. `cancel` (optional) is checked at least every 100 ms, for benchmarks/tests.
  WaitResult Wait(const std::atomic<bool>* cancel = nullptr);

 private:
  WaitOptions o_;
  int fd_ = -1;
  std::string setup_error_;
};

WaitResult WaitForAnnotation(const WaitOptions& options, const std::atomic<bool>* cancel = nullptr);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_WAIT_H_
