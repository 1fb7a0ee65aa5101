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
};

enum class WaitOutcome {
  kReady,    // key == value
  kError,    // key starts with error_prefix; message = the reason
  kTimeout,  // nothing conclusive before the deadline; message says what was last seen
  kFailure,  // cannot watch (directory missing, inotify unavailable); message says why
};

struct WaitResult {
  WaitOutcome outcome = WaitOutcome::kFailure;
  std::string message;
  int reads = 0;  // how many times the file was read (1 + wake-ups)
};

// Blocks until an outcome. `cancel` (optional) is checked at least every 100 ms, for benchmarks/tests.
WaitResult WaitForAnnotation(const WaitOptions& options, const std::atomic<bool>* cancel = nullptr);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_WAIT_H_
