#include "netns/routing/test_util.h"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "netns/executor.h"
#include "netns/testing/netlink.h"

extern char** environ;

namespace pnc::netns::testing {

absl::Status BringUpLoopback() { return SetLinkUp(1); }  // lo is ifindex 1 in every netns

NetnsThread::NetnsThread() {
  thread_ = std::thread([this] {
    if (unshare(CLONE_NEWNET) == 0 && BringUpLoopback().ok()) tid_ = static_cast<int>(gettid());
    started_.Notify();
    done_.WaitForNotification();
  });
  started_.WaitForNotification();
}

NetnsThread::~NetnsThread() {
  done_.Notify();
  thread_.join();
}

std::string NetnsThread::path() const { return absl::StrCat("/proc/", tid_, "/ns/net"); }

absl::Status RunInFreshNetns(absl::FunctionRef<void()> fn) {
  absl::Status status;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      status = absl::PermissionDeniedError(absl::StrCat("unshare(CLONE_NEWNET): ", std::strerror(errno)));
      return;
    }
    status = BringUpLoopback();
    if (status.ok()) fn();
  });
  t.join();
  return status;
}

absl::StatusOr<NetnsHandle> NewThrowawayNetns() {
  std::optional<absl::StatusOr<NetnsHandle>> result;
  absl::Status s = RunInFreshNetns([&] { result = NetnsHandle::Open("/proc/thread-self/ns/net"); });
  if (!s.ok()) return s;
  return std::move(*result);
}

absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  auto drain = [](int fd) {
    std::string s;
    char b[4096];
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) s.append(b, n);
    }
    close(fd);
    return s;
  };
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(rc)));
  }
  // Outputs here are small (a rule listing), so reading stdout fully before stderr cannot deadlock in
  // practice.
  std::string stdout_text = drain(out[0]);
  std::string stderr_text = drain(err[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed (status ", wstatus, "): ", stderr_text));
  }
  return stdout_text;
}

bool NamespacesRequired() {
  if (geteuid() != 0) return false;
  absl::StatusOr<std::string> map = []() -> absl::StatusOr<std::string> {
    int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::NotFoundError("uid_map");
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return std::string(buf, n > 0 ? n : 0);
  }();
  // The initial user namespace maps the whole range: "0 0 4294967295".
  if (!map.ok()) return false;
  std::vector<std::string> fields;
  for (absl::string_view f : absl::StrSplit(*map, ' ', absl::SkipWhitespace())) fields.emplace_back(f);
  return fields.size() >= 3 && fields[0] == "0" && fields[1] == "0" &&
         absl::StripAsciiWhitespace(fields[2]) == "4294967295";
}

std::string SkipReason(const absl::Status& s) {
  return absl::StrCat("SKIPPED: cannot create a network namespace here (needs root/CAP_SYS_ADMIN): ",
                      s.ToString());
}

absl::StatusOr<std::string> RunCaptureIn(const NetnsHandle& ns, const std::vector<std::string>& argv) {
  absl::StatusOr<std::string> out;
  absl::Status s = RunInNetns(ns, [&] {
    out = RunCapture(argv);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace pnc::netns::testing
