#include "simulator/process.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace pnc::sim {

namespace {

// What the child needs, prepared by the parent: the child runs in the parent's memory (CLONE_VM) until execv.
struct ChildSetup {
  char* const* argv;
  char* const* envp;  // null: inherit
  int log_fd;
  int err_fd;
  int netns_fd;
  pid_t parent;
  bool drop_groups;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<int> nice;
};

// Runs in the child created with CLONE_VM | CLONE_VFORK, on its own stack, while the parent thread is
// suspended until execv (or _exit). Only raw system calls: glibc's setres[ug]id/setgroups would broadcast the
// credential change to the PARENT's threads (they share its thread list), and nothing here may take a lock a
// parent thread could hold.
int ChildMain(void* arg) {
  const ChildSetup& c = *static_cast<const ChildSetup*>(arg);
  auto fail = [&](int step) {
    int msg[2] = {step, errno};
    (void)!::write(c.err_fd, msg, sizeof(msg));
    ::_exit(127);
  };
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != c.parent) ::_exit(127);
  sigset_t all;
  sigemptyset(&all);
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, sizeof(uint64_t));
  if (c.log_fd >= 0) {
    if (::dup2(c.log_fd, 1) < 0 || ::dup2(c.log_fd, 2) < 0) fail(1);
  }
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  // Best effort: inside the netns sandbox's user namespace a lower nice value than the spawning thread's is
  // refused (priority.h), and a child at the wrong priority is still the right child.
  if (c.nice) (void)::setpriority(PRIO_PROCESS, 0, *c.nice);
  if (c.netns_fd >= 0 && ::setns(c.netns_fd, CLONE_NEWNET) != 0) fail(2);
  if (c.drop_groups && ::syscall(SYS_setgroups, 0, nullptr) != 0) fail(3);
  if (c.gid && ::syscall(SYS_setresgid, *c.gid, *c.gid, *c.gid) != 0) fail(4);
  if (c.uid && ::syscall(SYS_setresuid, *c.uid, *c.uid, *c.uid) != 0) fail(5);
  if (c.envp != nullptr) {
    ::execve(c.argv[0], c.argv, c.envp);
  } else {
    ::execv(c.argv[0], c.argv);
  }
  fail(6);
  return 127;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("empty argv");
  // Everything the child needs is prepared before the clone.
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    for (const auto& e : *options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  int log_fd = -1;
  if (!options.log_path.empty()) {
    log_fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
      return absl::InternalError(absl::StrCat("open ", options.log_path, ": ", std::strerror(errno)));
  }
  // A pipe reports exec failures (errno) back to the parent.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    return absl::InternalError("pipe2");
  }
  ChildSetup setup{argv.data(),
                   options.env ? envp.data() : nullptr,
                   log_fd,
                   err_pipe[1],
                   options.netns_fd,
                   ::getpid(),
                   options.gid.has_value() || options.uid.has_value(),
                   options.uid,
                   options.gid,
                   options.nice};
  // Like posix_spawn: no copy of the parent's page tables (fork() of this many-threaded, large process took
  // milliseconds each and stalled every other thread's page faults while 110 waiters were spawned).
  constexpr size_t kStack = 64 << 10;
  std::unique_ptr<char[]> stack(new char[kStack]);
  pid_t pid = ::clone(ChildMain, stack.get() + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &setup);
  ::close(err_pipe[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) {
    ::close(err_pipe[0]);
    return absl::InternalError(absl::StrCat("clone: ", std::strerror(errno)));
  }
  int msg[2];
  ssize_t n = ::read(err_pipe[0], msg, sizeof(msg));
  ::close(err_pipe[0]);
  ChildProcess child(pid);
  if (n == sizeof(msg)) {
    child.Wait();
    static const char* kSteps[] = {"", "dup2", "setns", "setgroups", "setresgid", "setresuid", "execv"};
    return absl::InternalError(
        absl::StrCat("spawn ", options.argv[0], ": ", kSteps[msg[0] % 7], ": ", std::strerror(msg[1])));
  }
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), exit_code_(o.exit_code_) {
  o.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    this->~ChildProcess();
    pid_ = o.pid_;
    exit_code_ = o.exit_code_;
    o.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

static int Decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int ChildProcess::Wait() {
  if (exit_code_) return *exit_code_;
  if (pid_ <= 0) return -1;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  exit_code_ = Decode(status);
  return *exit_code_;
}

std::optional<int> ChildProcess::WaitFor(absl::Duration timeout) {
  if (exit_code_) return exit_code_;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = Decode(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) return -1;
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

int PreloadNetfilterModules() {
  if (::geteuid() != 0) return 0;
  const char* modprobe = ::access("/usr/sbin/modprobe", X_OK) == 0 ? "/usr/sbin/modprobe"
                         : ::access("/sbin/modprobe", X_OK) == 0   ? "/sbin/modprobe"
                                                                   : nullptr;
  if (modprobe == nullptr) return 0;
  static const char* kModules[] = {
      "veth",         "ip_tables",       "iptable_nat",  "iptable_mangle", "iptable_raw", "ip6_tables",
      "ip6table_nat", "ip6table_mangle", "ip6table_raw", "xt_REDIRECT",    "xt_TPROXY",   "xt_owner",
      "xt_mark",      "xt_connmark",     "xt_conntrack", "xt_socket",      "xt_comment",  "xt_tcpudp",
      "xt_multiport", "xt_CT",           "nf_tables",    "nft_chain_nat",  "nft_redir",   "nft_ct",
      "nft_socket",   "nft_tproxy",      "nft_compat",   "nf_conntrack",   "nf_nat",
  };
  int loaded = 0;
  for (const char* m : kModules) {
    SpawnOptions so;
    so.argv = {modprobe, "-q", m};
    so.log_path = "/dev/null";
    auto child = ChildProcess::Spawn(so);
    if (child.ok() && child->Wait() == 0) ++loaded;
  }
  return loaded;
}

}  // namespace pnc::sim
