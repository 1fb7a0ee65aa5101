// ChildProcess: fork+exec with an argv vector (never a shell), optionally inside a network namespace and as
// another uid/gid, with stdout+stderr appended to a log file. The child gets PR_SET_PDEATHSIG(SIGKILL) so
// nothing outlives the simulator. Used for the real waiter (init container) and the real controller.
#ifndef PNC_SIMULATOR_PROCESS_H_
#define PNC_SIMULATOR_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pnc::sim {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the executable path
  int netns_fd = -1;              // setns() into it before exec
  std::optional<uid_t> uid;       // drop to this uid/gid (and no supplementary groups) before exec
  std::optional<gid_t> gid;
  std::string log_path;  // stdout+stderr appended here; empty: inherit
  // The child's whole environment ("K=V"); nullopt: inherit this process's.
  std::optional<std::vector<std::string>> env;
  // The child's nice value, best effort (simulator/priority.h); nullopt: the spawning thread's.
  std::optional<int> nice;
};

class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // SIGKILL + reap if still running

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Blocks until exit; the exit code, or 128 + signal number.
  int Wait();
  // Waits up to `timeout`; nullopt if still running.
  std::optional<int> WaitFor(absl::Duration timeout);
  bool running() const { return pid_ > 0 && !exit_code_; }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Netfilter/veth kernel modules the controller's backends and the sandbox need. Inside the sandbox's user
// namespace the kernel refuses module autoloading, so on a kernel that builds them as modules (Debian's) they
// must be loaded from the initial user namespace first. Best effort: only as root, one `modprobe -q <name>`
// (argv, no shell) per module; modules that are built in or absent are skipped silently. Never touches any
// network namespace's config. Call before netns::testing::Sandbox::Get() (it only forks, it starts no
// threads). Returns how many loads succeeded.
int PreloadNetfilterModules();

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_PROCESS_H_
