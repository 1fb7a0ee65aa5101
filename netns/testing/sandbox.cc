#include "netns/testing/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "netns/executor.h"
#include "netns/testing/netlink.h"

extern char** environ;

namespace pnc::netns::testing {
namespace {

constexpr int kIds = Sandbox::kMappedIds;

absl::Status Errno(int err, const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

int ThreadCount() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    int n;
    if (line.rfind("Threads:", 0) == 0 && absl::SimpleAtoi(line.substr(8), &n)) return n;
  }
  return -1;
}

struct SubidRange {
  uint32_t start = 0;
  uint32_t count = 0;
};

// First range of at least kIds - 1 ids for this user in /etc/subuid or /etc/subgid ("name:start:count" or
// "uid:start:count").
std::optional<SubidRange> FindSubidRange(const char* file, const std::string& user, uint32_t id) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() != 3 || (f[0] != user && f[0] != std::to_string(id))) continue;
    SubidRange r;
    if (absl::SimpleAtoi(f[1], &r.start) && absl::SimpleAtoi(f[2], &r.count) && r.count >= kIds - 1) return r;
  }
  return std::nullopt;
}

std::string UserName(uid_t uid) {
  std::ifstream in("/etc/passwd");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() >= 3 && f[2] == std::to_string(uid)) return f[0];
  }
  return std::to_string(uid);
}

bool WriteFile(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  return ok;
}

// Runs argv (absolute path in argv[0]) and waits; returns an error naming the tool on failure.
absl::Status Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int err = posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (err != 0) return Errno(err, absl::StrCat("spawn ", argv[0]));
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return Errno(errno, absl::StrCat("wait ", argv[0]));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(argv[0], " failed (wait status ", status, ")"));
  }
  return absl::OkStatus();
}

// Runs in the helper child, which stays in the original user namespace: writes the parent's uid/gid maps.
absl::Status WriteMaps(pid_t target, uid_t uid, gid_t gid, const std::optional<SubidRange>& subuid,
                       const std::optional<SubidRange>& subgid) {
  const std::string pid = std::to_string(target);
  if (uid == 0) {
    // Root maps every id (as the initial namespace does), so OpenShift-style proxy uids (1000650000) work
    // too.
    const std::string map = "0 0 4294967295\n";
    if (!WriteFile(absl::StrCat("/proc/", pid, "/uid_map"), map)) return Errno(errno, "write uid_map");
    if (!WriteFile(absl::StrCat("/proc/", pid, "/gid_map"), map)) return Errno(errno, "write gid_map");
    return absl::OkStatus();
  }
  // Inner 0 is the user itself, inner 1..65535 the subordinate range.
  if (absl::Status s = Spawn({"/usr/bin/newuidmap", pid, "0", std::to_string(uid), "1", "1",
                              std::to_string(subuid->start), std::to_string(kIds - 1)});
      !s.ok()) {
    return s;
  }
  return Spawn({"/usr/bin/newgidmap", pid, "0", std::to_string(gid), "1", "1", std::to_string(subgid->start),
                std::to_string(kIds - 1)});
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 40) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::string Ipv4(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace

OwnedNetns::OwnedNetns(OwnedNetns&& other) noexcept
    : handle_(std::move(other.handle_)), path_(std::exchange(other.path_, std::string())) {}

OwnedNetns& OwnedNetns::operator=(OwnedNetns&& other) noexcept {
  if (this != &other) {
    Release();
    handle_ = std::move(other.handle_);
    path_ = std::exchange(other.path_, std::string());
  }
  return *this;
}

OwnedNetns::~OwnedNetns() { Release(); }

void OwnedNetns::Release() {
  if (path_.empty()) return;
  ::umount2(path_.c_str(), MNT_DETACH);
  ::unlink(path_.c_str());
  path_.clear();
}

absl::StatusOr<Sandbox*> Sandbox::Get() {
  static absl::StatusOr<Sandbox*>* result = [] {
    auto* sandbox = new Sandbox();
    absl::Status s = sandbox->Init();
    if (!s.ok()) {
      delete sandbox;
      return new absl::StatusOr<Sandbox*>(s);
    }
    return new absl::StatusOr<Sandbox*>(sandbox);
  }();
  return *result;
}

bool Sandbox::MapsUid(uint32_t uid) {
  std::ifstream in("/proc/self/uid_map");
  uint64_t inner, outer, count;
  while (in >> inner >> outer >> count) {
    if (uid >= inner && uid - inner < count) return true;
  }
  return false;
}

bool Sandbox::Required() {
  static const bool required = [] {
    std::ifstream in("/proc/self/uid_map");
    uint64_t inner = 1, outer = 1, count = 0;
    return geteuid() == 0 && (in >> inner >> outer >> count) && inner == 0 && outer == 0 &&
           count == 4294967295u;
  }();
  return required;
}

absl::Status Sandbox::Init() {
  (void)Required();  // evaluate before leaving the initial user namespace
  if (int n = ThreadCount(); n != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("Sandbox::Get() must be called while the process is single-threaded (it has ", n,
                     " threads): unshare(CLONE_NEWUSER|CLONE_NEWNS) is refused otherwise; call it before "
                     "starting threads"));
  }
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  std::optional<SubidRange> subuid, subgid;
  if (uid != 0) {
    const std::string user = UserName(uid);
    subuid = FindSubidRange("/etc/subuid", user, uid);
    subgid = FindSubidRange("/etc/subgid", user, uid);
    if (!subuid || !subgid) {
      return absl::FailedPreconditionError(
          absl::StrCat("not root and no range of >= ", kIds - 1, " subordinate ids for user ", user,
                       " in /etc/subuid and /etc/subgid: cannot map uid 1337 in a user namespace (add e.g. '",
                       user, ":100000:65536' to both files)"));
    }
    if (access("/usr/bin/newuidmap", X_OK) != 0 || access("/usr/bin/newgidmap", X_OK) != 0) {
      return absl::FailedPreconditionError(
          "not root and /usr/bin/newuidmap or newgidmap missing (package uidmap)");
    }
  }

  // The tmpfs mount point, created in the original view so that the helper can remove it at the end.
  const char* tmp = getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/pnc-sandbox.XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return Errno(errno, absl::StrCat("mkdtemp ", templ));
  dir_ = templ;

  // The helper child stays in the original user namespace (only a process there may write a map with more
  // than one id); it waits for the parent's unshare, writes the maps, reports one status byte and an error
  // text. Then it waits for EOF on `go` (the parent holds the write end, O_CLOEXEC, until it exits) and
  // removes the then empty mount point directory, so no /tmp/pnc-sandbox.* is left behind.
  int go[2], done[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(done, O_CLOEXEC) != 0) return Errno(errno, "pipe");
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) return Errno(errno, "fork");
  if (child == 0) {
    ::close(go[1]);
    ::close(done[0]);
    signal(SIGINT, SIG_IGN);  // outlive a Ctrl-C of the parent's process group long enough to clean up
    signal(SIGTERM, SIG_IGN);
    char c;
    if (::read(go[0], &c, 1) == 1) {
      absl::Status s = WriteMaps(parent, uid, gid, subuid, subgid);
      std::string msg = s.ok() ? "" : std::string(s.message());
      char ok = s.ok() ? 1 : 0;
      (void)!::write(done[1], &ok, 1);
      (void)!::write(done[1], msg.data(), msg.size());
      ::close(done[1]);
      while (::read(go[0], &c, 1) > 0) {
      }
    }
    ::rmdir(templ.c_str());
    _exit(0);
  }
  ::close(go[0]);
  ::close(done[1]);
  auto reap = [&] {
    ::close(go[1]);
    int st;
    waitpid(child, &st, 0);
  };
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) != 0) {
    const int err = errno;
    ::close(done[0]);
    reap();
    return absl::FailedPreconditionError(
        absl::StrCat("unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS): ", std::strerror(err),
                     " (user namespaces unavailable here: check kernel.unprivileged_userns_clone, "
                     "user.max_user_namespaces, a seccomp profile, or run as root)"));
  }
  char c = 1;
  (void)!::write(go[1], &c, 1);
  char ok = 0;
  std::string msg;
  if (::read(done[0], &ok, 1) == 1) {
    char buf[512];
    ssize_t n;
    while ((n = ::read(done[0], buf, sizeof(buf))) > 0) msg.append(buf, n);
  }
  ::close(done[0]);
  if (!ok) {
    reap();
    return absl::FailedPreconditionError(absl::StrCat("writing the sandbox uid/gid maps failed: ", msg));
  }
  // Be uid/gid 0 of the new namespace explicitly (already the case, since inner 0 maps our outer id).
  if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) return Errno(errno, "setresuid(0) in sandbox");

  // Mount events must not leak to (or from) the original mount namespace.
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return Errno(errno, "make / private");
  // (go[1] stays open for the life of the process: the helper removes dir_ when it sees EOF.)
  if (mount("pnc-sandbox", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=16m") !=
      0) {
    return Errno(errno, absl::StrCat("mount tmpfs on ", dir_));
  }
  const std::string lock = absl::StrCat(dir_, "/xtables.lock");
  setenv("XTABLES_LOCKFILE", lock.c_str(), 1);

  if (absl::Status s = SetLinkUp(1); !s.ok()) return s;  // lo of the sandbox's own ("host") namespace
  absl::StatusOr<OwnedNetns> peer = NewNetns("peer");
  if (!peer.ok()) return peer.status();
  peer_ = std::make_unique<OwnedNetns>(*std::move(peer));
  return absl::OkStatus();
}

absl::StatusOr<OwnedNetns> Sandbox::NewNetns(const std::string& name) {
  if (!ValidName(name))
    return absl::InvalidArgumentError(absl::StrCat("bad sandbox netns name '", name, "'"));
  const std::string path = absl::StrCat(dir_, "/", name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat("sandbox netns ", name, " exists"));
    return Errno(errno, absl::StrCat("create ", path));
  }
  ::close(fd);
  // unshare(CLONE_NEWNET) on a short-lived thread: only that thread enters the new namespace, and it dies
  // after bind-mounting it, so no thread of ours is ever left inside.
  absl::Status status;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      status = Errno(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    if (status = SetLinkUp(1); !status.ok()) return;
    // No IPv6 duplicate address detection on links created later (the veth's link-local addresses): tentative
    // addresses can delay the first neighbour exchange by a second. /proc/sys/net is the opener's netns.
    for (const char* knob :
         {"/proc/sys/net/ipv6/conf/default/accept_dad", "/proc/sys/net/ipv6/conf/all/accept_dad"}) {
      if (!WriteFile(knob, "0")) {
        status = Errno(errno, absl::StrCat("write ", knob));
        return;
      }
    }
    if (mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      status = Errno(errno, absl::StrCat("bind-mount netns on ", path));
    }
  }).join();
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status;
  }
  absl::StatusOr<NetnsHandle> handle = NetnsHandle::Open(path);
  if (!handle.ok()) {
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(path.c_str());
    return handle.status();
  }
  return OwnedNetns(*std::move(handle), path);
}

absl::StatusOr<OwnedNetns> Sandbox::CreateBareNetns(const std::string& name) { return NewNetns(name); }

absl::StatusOr<PodNetns> Sandbox::CreatePodNetns(const std::string& name) {
  int k;
  {
    absl::MutexLock lock(&mu_);
    k = next_index_++;
  }
  if (k > 16383)
    return absl::ResourceExhaustedError("sandbox address space exhausted (16383 pods per process)");
  absl::StatusOr<OwnedNetns> ns = NewNetns(name);
  if (!ns.ok()) return ns.status();
  PodNetns pod{name, *std::move(ns), k};
  pod.peer_interface = absl::StrCat("v", k);
  const uint32_t base = (10u << 24) | (250u << 16) | (4u * k);
  pod.peer_ipv4 = Ipv4(base + 1);
  pod.pod_ipv4 = Ipv4(base + 2);
  pod.peer_ipv6 = absl::StrCat("fd00:250:0:", absl::Hex(k), "::1");
  pod.pod_ipv6 = absl::StrCat("fd00:250:0:", absl::Hex(k), "::2");

  absl::Status s = RunInNetns(peer(), [&]() -> absl::Status {
    if (absl::Status s = CreateVethPair(pod.peer_interface, pod.pod_interface, pod.handle().fd()); !s.ok())
      return s;
    absl::StatusOr<int> idx = InterfaceIndex(pod.peer_interface);
    if (!idx.ok()) return idx.status();
    if (absl::Status s = AddAddress(*idx, pod.peer_ipv4, 30); !s.ok()) return s;
    if (absl::Status s = AddAddress(*idx, pod.peer_ipv6, 64); !s.ok()) return s;
    return SetLinkUp(*idx);
  });
  if (!s.ok()) return s;
  s = RunInNetns(pod.handle(), [&]() -> absl::Status {
    absl::StatusOr<int> idx = InterfaceIndex(pod.pod_interface);
    if (!idx.ok()) return idx.status();
    if (absl::Status s = AddAddress(*idx, pod.pod_ipv4, 30); !s.ok()) return s;
    if (absl::Status s = AddAddress(*idx, pod.pod_ipv6, 64); !s.ok()) return s;
    if (absl::Status s = SetLinkUp(*idx); !s.ok()) return s;
    if (absl::Status s = AddDefaultRoute(*idx, pod.peer_ipv4); !s.ok()) return s;
    if (absl::Status s = AddDefaultRoute(*idx, pod.peer_ipv6); !s.ok()) return s;
    return WaitOperUp(*idx, absl::Seconds(5));
  });
  if (!s.ok()) return s;
  // Both ends must carry traffic before the caller sends the first packet (see WaitOperUp).
  s = RunInNetns(peer(), [&]() -> absl::Status {
    absl::StatusOr<int> idx = InterfaceIndex(pod.peer_interface);
    if (!idx.ok()) return idx.status();
    return WaitOperUp(*idx, absl::Seconds(5));
  });
  if (!s.ok()) return s;
  return pod;
}

}  // namespace pnc::netns::testing
