// Waiting for the controller's status annotation in a Downward API file, with inotify on the file's
// DIRECTORY: the kubelet never rewrites the file in place, it swaps the `..data` symlink (rename(2) of
// `..data_tmp`), which a watch on the file itself would miss. Every event in the directory triggers one
// re-read; there is no polling.
#ifndef PNC_CONTROLLER_WAITER_WAIT_H_
#define PNC_CONTROLLER_WAITER_WAIT_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace pnc::waiter {

struct WaitOptions {
  std::string file = "/etc/podinfo/pod_annotations";
  std::string key = "pod-network-controller.istio.io/status";
  std::string value = "initialized";
  std::string error_prefix = "error: ";
  int64_t timeout_ms = 300000;
  // `value` counts only if netns_key holds the decimal nsfs inode of this process's network namespace
  // (stat("/proc/self/ns/net").st_ino, allowed without privileges). The controller writes it in the same
  // patch as the status; a status left by a recreated sandbox, or forged at pod creation, cannot match.
  bool require_netns_match = true;
  std::string netns_key = "pod-network-controller.istio.io/netns";
  uint64_t own_netns_inode = 0;  // 0: read /proc/self/ns/net (tests may set it)
};

enum class WaitOutcome {
  kReady,    // key == value
  kError,    // key starts with error_prefix; message = the reason (control bytes escaped, bounded)
  kTimeout,  // nothing conclusive before the deadline; message says what was last seen (including a value
             // bound to another netns, or not bound at all)
  kFailure,  // cannot watch (directory missing, inotify unavailable); message says why
};

struct WaitResult {
  WaitOutcome outcome = WaitOutcome::kFailure;
  std::string message;
  int reads = 0;  // how many times the file was read (1 + wake-ups)
};

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
