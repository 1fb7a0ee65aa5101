#include "netns/testing/run_as.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"

namespace pnc::netns::testing {
absl::Status RunAs(uid_t uid, gid_t gid, const NetnsHandle* ns, absl::FunctionRef<absl::Status()> fn) {
  if (ns != nullptr && ns->fd() < 0) return absl::FailedPreconditionError("RunAs: netns handle has no fd");
  absl::Status result;
  auto body = [&] {
    if (ns != nullptr && setns(ns->fd(), CLONE_NEWNET) != 0) {
      result = StatusFromErrno(errno, absl::StrCat("RunAs: setns into ", ns->path()));
      return;
    }
    // Order matters: groups and gid first, while this thread still has CAP_SETGID.
    if (syscall(SYS_setgroups, 0, nullptr) != 0) {
      result = StatusFromErrno(errno, "RunAs: setgroups(0)");
      return;
    }
    if (syscall(SYS_setresgid, gid, gid, gid) != 0) {
      result = StatusFromErrno(errno, absl::StrCat("RunAs: setresgid(", gid, ")"));
      return;
    }
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) {
      result = StatusFromErrno(errno, absl::StrCat("RunAs: setresuid(", uid, ")"));
      return;
    }
    result = fn();
  };
  try {
    std::thread(body).join();  // the thread and its credentials die here
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("RunAs: cannot start thread: ", e.what()));
  }
  return result;
}

}  // namespace pnc::netns::testing
