#include "controller/metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pnc::controller {
namespace {

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return absl::StrFormat("%.17g", v);
}

std::string Labels(const std::string& name, const std::string& value, const std::string& extra = "") {
  std::string parts;
  if (!name.empty()) absl::StrAppend(&parts, name, "=\"", value, "\"");
  if (!extra.empty()) absl::StrAppend(&parts, parts.empty() ? "" : ",", extra);
  return parts.empty() ? "" : absl::StrCat("{", parts, "}");
}

}  // namespace

Counter::Counter(std::string name, std::string help, std::string label)
    : name_(std::move(name)), help_(std::move(help)), label_(std::move(label)) {}

void Counter::Inc(const std::string& label_value, double v) {
  absl::MutexLock lock(&mu_);
  values_[label_value] += v;
}

double Counter::Value(const std::string& label_value) const {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(label_value);
  return it == values_.end() ? 0 : it->second;
}

void Counter::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " counter\n");
  absl::MutexLock lock(&mu_);
  if (values_.empty() && label_.empty()) absl::StrAppend(out, name_, " 0\n");
  for (const auto& [lv, v] : values_) absl::StrAppend(out, name_, Labels(label_, lv), " ", Num(v), "\n");
}

Histogram::Histogram(std::string name, std::string help, std::vector<double> bounds, std::string label)
    : name_(std::move(name)), help_(std::move(help)), label_(std::move(label)), bounds_(std::move(bounds)) {}

std::vector<double> Histogram::LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void Histogram::Observe(double seconds, const std::string& label_value) {
  absl::MutexLock lock(&mu_);
  Series& s = series_[label_value];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size() + 1, 0);
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  ++s.buckets[i];
  ++s.count;
  s.sum += seconds;
}

uint64_t Histogram::Count(const std::string& label_value) const {
  absl::MutexLock lock(&mu_);
  auto it = series_.find(label_value);
  return it == series_.end() ? 0 : it->second.count;
}

void Histogram::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " histogram\n");
  absl::MutexLock lock(&mu_);
  for (const auto& [lv, s] : series_) {
    uint64_t cum = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cum += s.buckets[i];
      double le = i < bounds_.size() ? bounds_[i] : INFINITY;
      absl::StrAppend(out, name_, "_bucket", Labels(label_, lv, absl::StrCat("le=\"", Num(le), "\"")), " ",
                      cum, "\n");
    }
    absl::StrAppend(out, name_, "_sum", Labels(label_, lv), " ", Num(s.sum), "\n");
    absl::StrAppend(out, name_, "_count", Labels(label_, lv), " ", s.count, "\n");
  }
}

Metrics::Metrics()
    : event_to_applied("pnc_event_to_applied_seconds",
                       "Time from the first watch event of a pod to its rules being applied and verified.",
                       Histogram::LatencyBuckets()),
      applied_to_marked("pnc_applied_to_marked_seconds",
                        "Time from verified rules to the status annotation being patched.",
                        Histogram::LatencyBuckets()),
      apply_duration("pnc_apply_duration_seconds", "Duration of apply + read-back verification, per backend.",
                     Histogram::LatencyBuckets(), "backend"),
      locate_duration("pnc_locate_duration_seconds",
                      "Duration of one locate of a pod's sandbox netns (the container runtime's answers).",
                      Histogram::LatencyBuckets(), "result"),
      errors("pnc_errors_total", "Errors by reason.", "reason"),
      reconciles("pnc_reconciles_total", "Reconcile outcomes.", "outcome"),
      foreign_marks(
          "pnc_foreign_marks_total",
          "Initialized marks found that this controller did not write for the pod's current network "
          "namespace (forged, or from a previous sandbox); each was replaced by a verified one.",
          "kind"),
      watch_restarts("pnc_watch_restarts_total", "List/watch failures and restarts.", "reason"),
      sandbox_polls("pnc_sandbox_polls_total",
                    "Runtime calls listing the ready sandboxes for the pods waiting for one.", "result"),
      sandbox_poll_releases("pnc_sandbox_poll_releases_total",
                            "Pods waiting for their sandbox that a poll found ready (located at once).") {}

std::string Metrics::Render() const {
  std::string out;
  event_to_applied.Render(&out);
  applied_to_marked.Render(&out);
  apply_duration.Render(&out);
  locate_duration.Render(&out);
  errors.Render(&out);
  reconciles.Render(&out);
  foreign_marks.Render(&out);
  watch_restarts.Render(&out);
  sandbox_polls.Render(&out);
  sandbox_poll_releases.Render(&out);
  if (queue_depth) {
    absl::StrAppend(&out,
                    "# HELP pnc_queue_depth Pods waiting in the work queue.\n# TYPE pnc_queue_depth gauge\n",
                    "pnc_queue_depth ", Num(queue_depth()), "\n");
  }
  if (parked_pods) {
    absl::StrAppend(&out,
                    "# HELP pnc_parked_pods Pods waiting for the container runtime to answer (no backoff "
                    "growth).\n# TYPE pnc_parked_pods gauge\npnc_parked_pods ",
                    Num(parked_pods()), "\n");
  }
  if (cached_pods) {
    absl::StrAppend(&out, "# HELP pnc_cached_pods Pods of this node in the informer cache.\n",
                    "# TYPE pnc_cached_pods gauge\npnc_cached_pods ", Num(cached_pods()), "\n");
  }
  return out;
}

}  // namespace pnc::controller
