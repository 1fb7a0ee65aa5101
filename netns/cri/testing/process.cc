#include "netns/cri/testing/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "netns/proc_file.h"
#include "netns/routing/test_util.h"

namespace pnc::netns::cri_testing {
namespace {

// 'Z' for a zombie, 0 when the process is gone.
char ProcessState(pid_t pid) {
  std::optional<std::string> stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return 0;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return 0;
  return (*stat)[paren + 2];
}

}  // namespace

std::optional<std::string> FindProgram(const std::string& name) {
  for (absl::string_view dir : absl::StrSplit(kSystemPath, ':')) {
    std::string path = absl::StrCat(dir, "/", name);
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return std::nullopt;
}

absl::StatusOr<pid_t> SpawnInNetns(const NetnsHandle& ns, const std::vector<std::string>& argv,
                                   const std::string& log_path) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    return absl::InvalidArgumentError("argv[0] must be an absolute path");
  absl::StatusOr<pid_t> result = absl::InternalError("spawn thread did not run");
  // Namespaces are per thread: a thread that entered `ns` spawns the child into it without touching the
  // netns of any other thread of this process.
  std::thread t([&] {
    if (::setns(ns.fd(), CLONE_NEWNET) != 0) {
      result = absl::InternalError(absl::StrCat("setns(", ns.path(), "): ", std::strerror(errno)));
      return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::string path_env = absl::StrCat("PATH=", kSystemPath);
    char* env[] = {path_env.data(), nullptr};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, args[0], &fa, &attr, args.data(), env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      result = absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(rc)));
    } else {
      result = pid;
    }
  });
  t.join();
  return result;
}

absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv) {
  return netns::testing::RunCapture(argv);
}

void KillAndReap(pid_t pid, int sig, absl::Duration grace) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  absl::Time deadline = absl::Now() + grace;
  for (;;) {
    int status;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

std::vector<pid_t> FindProcesses(const std::string& needle, const std::string& cgroup_component) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  const std::string cgroup_needle = absl::StrCat("/", cgroup_component, "/");
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(dir)) {
    pid_t pid;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 1 || pid == self) continue;
    bool match = false;
    if (!needle.empty()) {
      std::optional<std::string> cmdline = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
      if (cmdline) {
        for (absl::string_view arg : absl::StrSplit(*cmdline, '\0')) {
          if (arg.find(needle) != absl::string_view::npos) {
            match = true;
            break;
          }
        }
      }
    }
    if (!match && !cgroup_component.empty()) {
      std::optional<std::string> cgroup = ReadSmallFile(absl::StrCat("/proc/", pid, "/cgroup"));
      match = cgroup && absl::StrCat(*cgroup, "\n").find(cgroup_needle) != std::string::npos;
    }
    if (match && ProcessState(pid) != 'Z') out.push_back(pid);
  }
  ::closedir(dir);
  return out;
}

std::vector<pid_t> KillAll(const std::vector<pid_t>& pids, absl::Duration timeout) {
  for (pid_t pid : pids) ::kill(pid, SIGKILL);
  absl::Time deadline = absl::Now() + timeout;
  std::vector<pid_t> alive = pids;
  while (!alive.empty()) {
    std::vector<pid_t> still;
    for (pid_t pid : alive) {
      char state = ProcessState(pid);
      if (state != 0 && state != 'Z') still.push_back(pid);
    }
    alive.swap(still);
    if (alive.empty() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return alive;
}

}  // namespace pnc::netns::cri_testing
