// Locator that scans /proc for the pod's processes by cgroup (no runtime socket needed).
#ifndef PNC_NETNS_CRI_CGROUP_LOCATOR_H_
#define PNC_NETNS_CRI_CGROUP_LOCATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/locator.h"

namespace pnc::netns {

// Fallback without a runtime socket: scans <proc_root>/*/cgroup for the pod UID (cgroupfs ".../pod<uid>/..."
// and systemd "kubepods-<qos>-pod<uid_with_underscores>.slice", dashes or underscores), picks the oldest
// process (start time, /proc/PID/stat field 22; the sandbox's pause process), opens <proc_root>/PID/ns/net,
// and when PodRef.ips is non-empty confirms that netns holds one of them (address dump inside it via
// RunInNetns), else FailedPrecondition. NotFound when no process of the pod exists yet. Thread-safe.
std::unique_ptr<Locator> NewCgroupLocator(std::string proc_root = "/proc");

// Exposed for tests and benchmarks: PIDs under proc_root whose cgroup names the pod, oldest first.
// InvalidArgument for a malformed UID.
absl::StatusOr<std::vector<int>> FindPodProcesses(const std::string& proc_root, const std::string& pod_uid);

// Exposed for tests: true when the calling thread's netns has any of `ips` on an interface.
absl::StatusOr<bool> CurrentNetnsHasAnyAddress(const std::vector<std::string>& ips);

}  // namespace pnc::netns

#endif  // PNC_NETNS_CRI_CGROUP_LOCATOR_H_
