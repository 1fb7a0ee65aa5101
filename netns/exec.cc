#include "netns/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pnc::netns {
namespace {

constexpr size_t kMaxOutputBytes = 64 << 20;  // a pod's iptables-save is a few KB; never buffer without bound

// Deliberately not StatusFromErrno: a failed pipe/spawn/poll is a local fault, and callers give codes meaning
// (NotFound: the pod is gone; in restore_backend, InvalidArgument: rules outside the model), so e.g.
// posix_spawn's ENOENT for a missing iptables-restore must not look like either.
absl::Status Errno(int err, const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void Close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

absl::StatusOr<ExecResult> Exec(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                absl::string_view input, absl::Duration timeout) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return absl::InvalidArgumentError("Exec needs an absolute program path");
  }
  Pipe in, out, err;
  // stdin is a socketpair, not a pipe, so that writing after the child closed it fails with EPIPE
  // (MSG_NOSIGNAL) instead of raising SIGPIPE in this process.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in.fd) != 0 || pipe2(out.fd, O_CLOEXEC) != 0 ||
      pipe2(err.fd, O_CLOEXEC) != 0) {
    return Errno(errno, "pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  // Every signal back to its default disposition: the child must not inherit, e.g., an ignored SIGPIPE.
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Errno(rc, absl::StrCat("spawn ", argv[0]));
  in.Close(0);
  out.Close(1);
  err.Close(1);

  ExecResult result;
  size_t written = 0;
  if (input.empty()) in.Close(1);
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false, too_much = false;
  while (!too_much && (out.fd[0] >= 0 || err.fd[0] >= 0 || in.fd[1] >= 0)) {
    pollfd fds[3];
    int n = 0;
    if (in.fd[1] >= 0) fds[n++] = {in.fd[1], POLLOUT, 0};
    if (out.fd[0] >= 0) fds[n++] = {out.fd[0], POLLIN, 0};
    if (err.fd[0] >= 0) fds[n++] = {err.fd[0], POLLIN, 0};
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int r = poll(fds, n, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return Errno(errno, "poll");
    for (int i = 0; i < n && r > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in.fd[1]) {
        // Never block here: the child may be waiting for us to drain its stdout first.
        ssize_t w =
            ::send(in.fd[1], input.data() + written, input.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) written += w;
        const bool again = w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
        if ((w < 0 && !again) || written == input.size()) in.Close(1);  // EPIPE: the child stopped reading
      } else {
        char buf[4096];
        ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
        Pipe& p = fds[i].fd == out.fd[0] ? out : err;
        std::string& sink = &p == &out ? result.out : result.err;
        if (got > 0) {
          sink.append(buf, got);
          if (result.out.size() + result.err.size() > kMaxOutputBytes) {
            too_much = true;
            break;
          }
        } else {
          p.Close(0);
        }
      }
    }
  }
  if (timed_out || too_much) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (too_much) {
    return absl::ResourceExhaustedError(
        absl::StrCat(argv[0], " wrote more than ", kMaxOutputBytes, " bytes"));
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", absl::FormatDuration(timeout)));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace pnc::netns
