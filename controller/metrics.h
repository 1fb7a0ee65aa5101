// Minimal Prometheus text-format (0.0.4) metrics: labelled counters, gauges and histograms. Thread-safe.
// Written by hand because we need a handful of series; a client library would add more code than it saves.
#ifndef PNC_CONTROLLER_METRICS_H_
#define PNC_CONTROLLER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace pnc::controller {

// One metric family with at most one label (label values are our own fixed strings, never pod data).
class Counter {
 public:
  Counter(std::string name, std::string help, std::string label = "");
  void Inc(const std::string& label_value = "", double v = 1);
  double Value(const std::string& label_value = "") const;
  void Render(std::string* out) const;

 private:
  const std::string name_, help_, label_;
  mutable absl::Mutex mu_;
  std::map<std::string, double> values_ ABSL_GUARDED_BY(mu_);
};

class Histogram {
 public:
  // Upper bounds in seconds, ascending; +Inf is implicit.
  Histogram(std::string name, std::string help, std::vector<double> bounds, std::string label = "");
  void Observe(double seconds, const std::string& label_value = "");
  uint64_t Count(const std::string& label_value = "") const;
  void Render(std::string* out) const;
  static std::vector<double> LatencyBuckets();  // 0.5 ms .. 60 s

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // non-cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  const std::string name_, help_, label_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<std::string, Series> series_ ABSL_GUARDED_BY(mu_);
};

// The controller's metrics, in one place so /metrics and the README agree.
struct Metrics {
  Metrics();
  std::string Render() const;

  Histogram event_to_applied;   // pnc_event_to_applied_seconds: pod first seen -> rules applied+verified
  Histogram applied_to_marked;  // pnc_applied_to_marked_seconds: rules verified -> status annotation patched
  Histogram apply_duration;     // pnc_apply_duration_seconds{backend}: ApplyAndVerify
  Histogram locate_duration;  // pnc_locate_duration_seconds{result}: Locator::Locate (the runtime's answers)
  Counter errors;             // pnc_errors_total{reason}
  Counter reconciles;         // pnc_reconciles_total{outcome}
  Counter foreign_marks;      // pnc_foreign_marks_total{kind}: `initialized` marks this controller did not
                              // write for the pod's current netns (kind: unverified, other_netns)
  Counter watch_restarts;     // pnc_watch_restarts_total{reason}
  Counter sandbox_polls;      // pnc_sandbox_polls_total{result}: one list of ready sandboxes (ok, error)
  Counter sandbox_poll_releases;  // pnc_sandbox_poll_releases_total: waiting pods a poll found ready
  // Gauges read at render time.
  std::function<double()> queue_depth;
  std::function<double()> cached_pods;
  std::function<double()> parked_pods;  // pnc_parked_pods: waiting for the container runtime to answer
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_METRICS_H_
