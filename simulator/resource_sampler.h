// ResourceSampler: samples a process's VmRSS (/proc/<pid>/status) and open fd count (/proc/<pid>/fd) at a
// fixed interval on its own thread, for the scale scenarios' "no fd or memory growth" report
// (start/peak/end).
#ifndef PNC_SIMULATOR_RESOURCE_SAMPLER_H_
#define PNC_SIMULATOR_RESOURCE_SAMPLER_H_

#include <sys/types.h>

#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pnc::sim {

struct ResourceSample {
  int64_t rss_kib = 0;   // VmRSS = RssAnon + RssFile + RssShmem
  int64_t anon_kib = 0;  // RssAnon: heap, stacks (private to the process)
  int64_t file_kib = 0;  // RssFile: mapped binary and shared libraries (page cache, shared, reclaimable)
  int64_t fds = 0;
  int64_t threads = 0;
  int64_t cpu_ms = 0;  // user + system CPU time so far (/proc/<pid>/stat)
};

// One reading now. NotFound when the process is gone.
absl::StatusOr<ResourceSample> SampleProcess(pid_t pid);

struct ResourceSeries {
  ResourceSample start, peak, end;  // peak: field-wise maxima
  int samples = 0;
};

class ResourceSampler {
 public:
  ResourceSampler(pid_t pid, absl::Duration every);
  ~ResourceSampler();  // Stop()
  ResourceSampler(const ResourceSampler&) = delete;
  ResourceSampler& operator=(const ResourceSampler&) = delete;

  void Stop();  // takes a last sample (if the process still exists) and joins the thread
  ResourceSeries Series() const;
  pid_t pid() const { return pid_; }

 private:
  void Loop();
  void Take() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const pid_t pid_;
  const absl::Duration every_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  ResourceSeries series_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_RESOURCE_SAMPLER_H_
