// Exec: run a program with an argv vector and stdin text, collect its output. Never a shell, never a PATH
// lookup (argv[0] must be an absolute path), a fixed environment, a timeout after which the child is killed.
//
// The child is created with posix_spawn from the CALLING THREAD, so it inherits that thread's namespaces:
// call Exec inside RunInNetns to run a tool inside a pod's network namespace. All fds of this process are
// O_CLOEXEC; the child sees only its three pipes.
#ifndef PNC_NETNS_EXEC_H_
#define PNC_NETNS_EXEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pnc::netns {

struct ExecResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Errors: InvalidArgument (relative argv[0]), DeadlineExceeded (killed after `timeout`), ResourceExhausted
// (killed after more than 64 MiB of output), Internal (spawn/pipe). A non-zero exit is NOT an error here:
// inspect exit_code. The child starts with default signal dispositions and an empty signal mask.
absl::StatusOr<ExecResult> Exec(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                absl::string_view input, absl::Duration timeout);

}  // namespace pnc::netns

#endif  // PNC_NETNS_EXEC_H_
