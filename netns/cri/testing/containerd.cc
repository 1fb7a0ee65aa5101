#include "netns/cri/testing/containerd.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/substitute.h"
#include "netns/cri/testing/process.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/routing/test_util.h"

namespace pnc::netns::cri_testing {
namespace {

constexpr char kDirPrefix[] = "/tmp/pnc-ctrd-";
constexpr char kSandboxImage[] = "pnc.local/pause:3.9";
constexpr char kBridge[] = "pncbr0";
constexpr char kSubnet[] = "10.251.0.0/24";
constexpr char kShimSocketDir[] = "/run/containerd/s";  // hard-coded in containerd 1.6
constexpr char kCniResultsDir[] = "/var/lib/cni/results";
// Which shared dirs were absent before the first of the fixtures running at the same time started.
constexpr char kSharedDirsMarker[] = "/tmp/.pnc-ctrd-shared-dirs-absent";

std::string Basename(const std::string& dir) { return dir.substr(dir.rfind('/') + 1); }
std::string SocketPath(const std::string& dir) { return absl::StrCat(dir, "/c.sock"); }

absl::Status WriteFile(const std::string& path, const std::string& content, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
    }
    off += n;
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Process start time (field 22 of /proc/PID/stat), to tell a live owner from a reused PID.
std::string StartTimeOf(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadWholeFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return "";
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return "";
  std::vector<std::string> f = absl::StrSplit(stat->substr(paren + 2), ' ', absl::SkipEmpty());
  return f.size() > 19 ? f[19] : "";
}

std::string ConfigToml(const std::string& dir, const std::string& runc) {
  return absl::Substitute(R"(version = 2
root = "$0/root"
state = "$0/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$0/c.sock"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$0/opt"
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = "$0/runc-v1"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$1"
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$0/cni"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "$2"
          Root = "$0/runc"
)",
                          dir, kSandboxImage, runc);
}

// The network name is the dir's basename, so TeardownFixtureDir can find libcni's result cache files.
std::string CniConflist(const std::string& dir) {
  return absl::Substitute(
      R"({"cniVersion": "0.4.0", "name": "$0", "plugins": [{"type": "bridge", "bridge": "$1",)"
      R"( "isGateway": true, "ipMasq": false, "hairpinMode": false, "ipam": {"type": "host-local",)"
      R"( "dataDir": "$2/ipam", "ranges": [[{"subnet": "$3"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]})",
      Basename(dir), kBridge, dir, kSubnet);
}

absl::Status CopyExecutable(const std::string& from, const std::string& to) {
  absl::StatusOr<std::string> content = ReadWholeFile(from);
  if (!content.ok()) return content.status();
  return WriteFile(to, *content, 0755);
}

// The sandbox image: the static pause binary as /pause in a one-layer OCI image, as an oci-archive.
absl::Status BuildPauseImage(const std::string& dir, const std::string& pause_binary,
                             const std::string& umoci, const std::string& tar) {
  const std::string layout = absl::StrCat(dir, "/image");
  const std::string image = absl::StrCat(layout, ":3.9");
  const std::string bundle = absl::StrCat(dir, "/image-bundle");
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {umoci, "init", "--layout", layout},
           {umoci, "new", "--image", image},
           {umoci, "unpack", "--rootless", "--image", image, bundle},
       }) {
    absl::StatusOr<std::string> out = RunTool(argv);
    if (!out.ok()) return out.status();
  }
  absl::Status s = CopyExecutable(pause_binary, absl::StrCat(bundle, "/rootfs/pause"));
  if (!s.ok()) return s;
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {umoci, "repack", "--image", image, bundle},
           {umoci, "config", "--image", image, "--config.entrypoint", "/pause"},
           {tar, "-C", layout, "-cf", absl::StrCat(dir, "/pause.tar"), "."},
       }) {
    absl::StatusOr<std::string> out = RunTool(argv);
    if (!out.ok()) return out.status();
  }
  return absl::OkStatus();
}

int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  if (type == FTW_DP) {
    ::rmdir(path);
  } else {
    ::unlink(path);
  }
  return 0;
}

int RemoveCgroupDir(const char* path, const struct stat*, int type, struct FTW*) {
  if (type == FTW_DP) ::rmdir(path);  // cgroupfs: rmdir of an empty cgroup; its files go with it
  return 0;
}

// Every mount point at or below `dir`, deepest first.
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  absl::StatusOr<std::string> info = ReadWholeFile("/proc/self/mountinfo");
  if (!info.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*info, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() < 5) continue;
    std::string mp;
    if (!absl::CUnescape(std::string(f[4]), &mp)) mp = std::string(f[4]);  // \040 etc. are octal escapes
    if (mp == dir || absl::StartsWith(mp, absl::StrCat(dir, "/"))) out.push_back(mp);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a > b; });
  return out;
}

}  // namespace

std::string ShimSocketPath(const std::string& dir, const std::string& ns, const std::string& id) {
  const std::string key = absl::StrCat(SocketPath(dir), "/", ns, "/", id);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), md, &len, EVP_sha256(), nullptr);
  return absl::StrCat(kShimSocketDir, "/",
                      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), len)));
}

namespace {

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  return out;
}

// Written once (O_EXCL) by the first fixture of a concurrent group; the last one's teardown consumes it.
absl::Status WriteSharedDirsMarker(const std::string& absent) {
  int fd = ::open(kSharedDirsMarker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::OkStatus();  // another fixture already recorded the state before it started
  ::close(fd);
  return WriteFile(kSharedDirsMarker, absent);
}

// Dirs left by runs that crashed before their destructor ran (owner process gone).
void SweepStaleFixtures() {
  for (const std::string& name : ListDir("/tmp")) {
    if (!absl::StartsWith(name, "pnc-ctrd-")) continue;
    const std::string dir = absl::StrCat("/tmp/", name);
    absl::StatusOr<std::string> owner = ReadWholeFile(absl::StrCat(dir, "/owner"));
    if (owner.ok()) {
      std::vector<std::string> f = absl::StrSplit(*owner, ' ', absl::SkipEmpty());
      pid_t pid;
      if (f.size() == 2 && absl::SimpleAtoi(f[0], &pid) && StartTimeOf(pid) == f[1]) continue;  // alive
    } else {
      // No owner yet: another fixture between mkdtemp and writing it, unless that was long ago.
      struct stat st;
      if (::stat(dir.c_str(), &st) != 0 || absl::FromTimeT(st.st_mtime) > absl::Now() - absl::Minutes(1))
        continue;
    }
    std::fprintf(stderr, "containerd fixture: removing the leftovers of a crashed run in %s\n", dir.c_str());
    absl::Status s = TeardownFixtureDir(dir);
    if (!s.ok()) std::fprintf(stderr, "containerd fixture: %s\n", std::string(s.message()).c_str());
  }
}

}  // namespace

Containerd::Containerd(std::string dir, NetnsHandle node_netns, ContainerdOptions options)
    : dir_(std::move(dir)), node_netns_(std::move(node_netns)), options_(std::move(options)) {}

std::string Containerd::endpoint() const { return absl::StrCat("unix:", SocketPath(dir_)); }
std::string Containerd::cgroup_root() const { return Basename(dir_); }
std::string Containerd::CgroupParent(const std::string& pod_uid) const {
  return absl::StrCat("/", cgroup_root(), "/kubepods/besteffort/pod", pod_uid);
}

std::string Containerd::LogTail(size_t bytes) const {
  absl::StatusOr<std::string> log = ReadWholeFile(absl::StrCat(dir_, "/containerd.log"));
  if (!log.ok()) return "";
  return log->size() <= bytes ? *log : log->substr(log->size() - bytes);
}

absl::StatusOr<std::unique_ptr<Containerd>> Containerd::Start(const ContainerdOptions& options) {
  struct Need {
    const char* program;
    const char* package;
  };
  std::map<std::string, std::string> found;
  for (const Need& n :
       {Need{"containerd", "containerd"}, Need{"containerd-shim-runc-v2", "containerd"},
        Need{"ctr", "containerd"}, Need{"runc", "runc"}, Need{"umoci", "umoci"}, Need{"tar", "tar"}}) {
    std::optional<std::string> path = FindProgram(n.program);
    if (!path) {
      return absl::FailedPreconditionError(
          absl::StrCat(n.program, " not found in ", kSystemPath, " (Debian package ", n.package, ")"));
    }
    found[n.program] = *path;
  }
  for (const char* plugin : {"bridge", "host-local", "loopback"}) {
    if (::access(absl::StrCat("/usr/lib/cni/", plugin).c_str(), X_OK) != 0)
      return absl::FailedPreconditionError(
          absl::StrCat("/usr/lib/cni/", plugin, " missing (Debian package containernetworking-plugins)"));
  }
  if (options.pause_binary.empty() || ::access(options.pause_binary.c_str(), R_OK) != 0)
    return absl::FailedPreconditionError(absl::StrCat("pause binary not readable: ", options.pause_binary));
  if (::geteuid() != 0) return absl::PermissionDeniedError("containerd fixture needs root");

  SweepStaleFixtures();

  std::string tmpl = absl::StrCat(kDirPrefix, "XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr)
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  const std::string dir = tmpl;
  absl::StatusOr<NetnsHandle> node = netns::testing::NewThrowawayNetns();
  if (!node.ok()) {
    TeardownFixtureDir(dir).IgnoreError();
    return node.status();
  }
  // From here on the destructor undoes whatever was done.
  std::unique_ptr<Containerd> c(new Containerd(dir, std::move(*node), options));
  const pid_t self = ::getpid();
  std::string absent_shared;
  for (const char* shared : {kShimSocketDir, "/run/containerd", kCniResultsDir, "/var/lib/cni"}) {
    if (::access(shared, F_OK) != 0) absl::StrAppend(&absent_shared, shared, "\n");
  }
  for (absl::Status s : {
           WriteFile(absl::StrCat(dir, "/owner"), absl::StrCat(self, " ", StartTimeOf(self))),
           WriteSharedDirsMarker(absent_shared),
           WriteFile(absl::StrCat(dir, "/config.toml"), ConfigToml(dir, found["runc"])),
           ::mkdir(absl::StrCat(dir, "/cni").c_str(), 0700) == 0
               ? absl::OkStatus()
               : absl::InternalError(absl::StrCat("mkdir cni: ", std::strerror(errno))),
       }) {
    if (!s.ok()) return s;
  }
  absl::Status s = WriteFile(absl::StrCat(dir, "/cni/10-pnc.conflist"), CniConflist(dir));
  if (!s.ok()) return s;
  s = BuildPauseImage(dir, options.pause_binary, found["umoci"], found["tar"]);
  if (!s.ok()) return s;
  s = c->Launch();
  if (!s.ok()) return s;
  absl::StatusOr<std::string> imported =
      RunTool({found["ctr"], "--address", SocketPath(dir), "--namespace", "k8s.io", "images", "import",
               "--base-name", "pnc.local/pause", absl::StrCat(dir, "/pause.tar")});
  if (!imported.ok()) return imported.status();
  return c;
}

absl::Status Containerd::ImportImage(const std::string& oci_archive, const std::string& reference) {
  std::optional<std::string> ctr = FindProgram("ctr");
  if (!ctr) return absl::FailedPreconditionError("ctr not found (Debian package containerd)");
  const size_t colon = reference.rfind(':');
  if (colon == std::string::npos || reference.find('/', colon) != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("image reference without a tag: ", reference));
  // The archive's ref.name annotation is the full reference; with --base-name, ctr names only references
  // under it.
  absl::StatusOr<std::string> imported =
      RunTool({*ctr, "--address", SocketPath(dir_), "--namespace", "k8s.io", "images", "import",
               "--base-name", reference.substr(0, colon), oci_archive});
  if (!imported.ok()) return imported.status();
  absl::StatusOr<std::string> listed =
      RunTool({*ctr, "--address", SocketPath(dir_), "--namespace", "k8s.io", "images", "list", "--quiet"});
  if (!listed.ok()) return listed.status();
  for (absl::string_view name : absl::StrSplit(*listed, '\n')) {
    if (name == reference) return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("ctr import of ", oci_archive, " did not yield ", reference,
                                          "; import said: ", *imported, "; images: ", *listed));
}

std::string Containerd::PodLogDirectory(const std::string& pod_uid) const {
  return absl::StrCat(dir_, "/pods/", pod_uid);
}

absl::Status Containerd::Launch() {
  std::optional<std::string> containerd = FindProgram("containerd");
  if (!containerd) return absl::FailedPreconditionError("containerd not found");
  absl::StatusOr<pid_t> pid =
      SpawnInNetns(node_netns_, {*containerd, "--config", absl::StrCat(dir_, "/config.toml")},
                   absl::StrCat(dir_, "/containerd.log"));
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  return WaitUntilServing(options_.start_timeout);
}

absl::Status Containerd::WaitUntilServing(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  while (absl::Now() < deadline) {
    if (::kill(pid_, 0) != 0 || ::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = 0;
      return absl::InternalError(absl::StrCat("containerd exited during startup; log tail:\n", LogTail()));
    }
    if (::access(SocketPath(dir_).c_str(), F_OK) == 0) {
      SandboxClient client(endpoint(), absl::Milliseconds(500));
      absl::StatusOr<std::string> v = client.Version();
      if (v.ok()) return absl::OkStatus();
      last = v.status();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat("containerd did not answer CRI Version within ",
                                                  absl::FormatDuration(timeout), ": ", last.ToString(),
                                                  "; log tail:\n", LogTail()));
}

absl::Status Containerd::Kill() {
  if (pid_ <= 0) return absl::FailedPreconditionError("containerd is not running");
  KillAndReap(pid_, SIGKILL, absl::Seconds(2));
  pid_ = 0;
  return absl::OkStatus();
}

absl::Status Containerd::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("containerd is running");
  return Launch();
}

Containerd::~Containerd() {
  // While containerd answers, let it tear sandboxes down properly (CNI DEL, shim shutdown, unmounts).
  if (pid_ > 0) {
    SandboxClient client(endpoint(), absl::Seconds(10));
    absl::StatusOr<std::vector<std::string>> ids = client.ListIds();
    if (ids.ok()) {
      for (const std::string& id : *ids) {
        client.Stop(id).IgnoreError();
        client.Remove(id).IgnoreError();
      }
    }
    KillAndReap(pid_, SIGTERM, absl::Seconds(3));
    pid_ = 0;
  }
  absl::Status s = TeardownFixtureDir(dir_);
  if (!s.ok()) std::fprintf(stderr, "containerd fixture teardown: %s\n", std::string(s.message()).c_str());
}

absl::Status TeardownFixtureDir(const std::string& dir) {
  if (!absl::StartsWith(dir, kDirPrefix) || dir.find("/..") != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("not a fixture dir: ", dir));
  absl::Status first;
  auto note = [&first](absl::Status s) {
    if (first.ok() && !s.ok()) first = s;
  };
  const std::string name = Basename(dir);
  // Shim sockets are named after the task ids, which the state dir still lists.
  std::vector<std::string> shim_sockets;
  const std::string tasks = absl::StrCat(dir, "/state/io.containerd.runtime.v2.task");
  for (const std::string& ns : ListDir(tasks)) {
    for (const std::string& id : ListDir(absl::StrCat(tasks, "/", ns))) {
      shim_sockets.push_back(ShimSocketPath(dir, ns, id));
    }
  }
  // containerd and its shims name the dir on their command lines; sandbox processes live in our cgroups.
  for (int round = 0; round < 3; ++round) {
    std::vector<pid_t> pids = FindProcesses(dir, name);
    if (pids.empty()) break;
    std::vector<pid_t> alive = KillAll(pids, absl::Seconds(3));
    if (!alive.empty() && round == 2)
      note(absl::InternalError(absl::StrCat(alive.size(), " fixture processes survived SIGKILL")));
  }
  for (const std::string& mp : MountsUnder(dir)) {
    if (::umount2(mp.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      note(absl::InternalError(absl::StrCat("umount ", mp, ": ", std::strerror(errno))));
  }
  for (const std::string& hierarchy : ListDir("/sys/fs/cgroup")) {
    const std::string root = absl::StrCat("/sys/fs/cgroup/", hierarchy, "/", name);
    struct stat st;
    if (::stat(root.c_str(), &st) != 0) continue;
    ::nftw(root.c_str(), RemoveCgroupDir, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (::stat(root.c_str(), &st) == 0) note(absl::InternalError(absl::StrCat("cgroup left: ", root)));
  }
  for (const std::string& sock : shim_sockets) ::unlink(sock.c_str());
  // libcni's result cache: "<network>-<sandbox id>-<ifname>" for our network and containerd's built-in
  // "cni-loopback"; CNI DEL removes them, a killed runtime never ran DEL.
  std::vector<std::string> sandbox_ids =
      ListDir(absl::StrCat(dir, "/root/io.containerd.grpc.v1.cri/sandboxes"));
  for (const std::string& entry : ListDir(kCniResultsDir)) {
    bool ours = absl::StartsWith(entry, absl::StrCat(name, "-"));
    for (const std::string& id : sandbox_ids) {
      ours = ours || (absl::StartsWith(entry, "cni-loopback-") &&
                      absl::StrContains(entry, absl::StrCat("-", id, "-")));
    }
    if (ours) ::unlink(absl::StrCat(kCniResultsDir, "/", entry).c_str());
  }
  // Shared parents that did not exist when the first of the concurrently running fixtures started
  // (containerd and libcni create them on demand): the last fixture removes them when empty.
  bool last = true;
  for (const std::string& other : ListDir("/tmp")) {
    if (absl::StartsWith(other, "pnc-ctrd-") && other != name) last = false;
  }
  absl::StatusOr<std::string> absent = ReadWholeFile(kSharedDirsMarker);
  if (last && absent.ok()) {
    for (absl::string_view shared : absl::StrSplit(*absent, '\n', absl::SkipEmpty())) {
      if (shared == kShimSocketDir || shared == "/run/containerd" || shared == kCniResultsDir ||
          shared == "/var/lib/cni")
        ::rmdir(std::string(shared).c_str());
    }
    ::unlink(kSharedDirsMarker);
  }
  ::nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) note(absl::InternalError(absl::StrCat("could not remove ", dir)));
  return first;
}

}  // namespace pnc::netns::cri_testing
