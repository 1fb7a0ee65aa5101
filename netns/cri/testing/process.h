// Process helpers for the containerd fixture: find programs, spawn a daemon inside a network namespace, run
// a tool to completion, find processes by what they reference, kill by PID. argv vectors only, never a shell.
#ifndef PNC_NETNS_CRI_TESTING_PROCESS_H_
#define PNC_NETNS_CRI_TESTING_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/netns.h"

namespace pnc::netns::cri_testing {

// The PATH the fixture hands to containerd (runc lives in /usr/sbin, which Bazel's test PATH lacks).
inline constexpr char kSystemPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Absolute path of `name` in kSystemPath, or nullopt.
std::optional<std::string> FindProgram(const std::string& name);

// posix_spawn()s argv (argv[0] absolute) from a thread that entered `ns` (so the child and everything it
// starts live in that netns), in its own process group, stdin /dev/null, stdout+stderr appended to
// `log_path`, environment PATH=kSystemPath only. The caller reaps it (KillAndReap).
absl::StatusOr<pid_t> SpawnInNetns(const NetnsHandle& ns, const std::vector<std::string>& argv,
                                   const std::string& log_path);

// Runs argv to completion in the caller's netns; its stdout, or Internal with stderr on non-zero exit.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv);

// Sends `sig` to our child `pid` and reaps it; after `grace` sends SIGKILL. No-op for pid <= 0.
void KillAndReap(pid_t pid, int sig, absl::Duration grace);

// PIDs (other than ours) whose /proc/PID/cmdline contains `needle` as a substring of one argument, or whose
// /proc/PID/cgroup names a path containing `/<cgroup_component>/` (when cgroup_component is non-empty).
std::vector<pid_t> FindProcesses(const std::string& needle, const std::string& cgroup_component);

// SIGKILLs each PID (not reaped: they are not our children) and waits up to `timeout` until every one is gone
// or a zombie. Returns the PIDs still alive.
std::vector<pid_t> KillAll(const std::vector<pid_t>& pids, absl::Duration timeout);

}  // namespace pnc::netns::cri_testing

#endif  // PNC_NETNS_CRI_TESTING_PROCESS_H_
