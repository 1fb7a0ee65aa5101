#include "netns/cri/cgroup_locator.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kUid[] = "8e4c2a6b-1f3d-4e5a-9b7c-0d2e4f6a8b1c";
constexpr char kOtherUid[] = "8e4c2a6b-1f3d-4e5a-9b7c-0d2e4f6a8b1d";  // same prefix: defeats the pre-filter

std::string Underscored(const std::string& uid) { return absl::StrReplaceAll(uid, {{"-", "_"}}); }

// A fake /proc: <root>/<pid>/{cgroup,stat[,ns/net]}.
class FakeProc {
 public:
  FakeProc() {
    static std::atomic<int> n{0};
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/fakeproc-", getpid(), "-", n++);
    fs::remove_all(root_);
    fs::create_directories(root_);
    fs::create_directories(root_ + "/self");  // non-numeric entries are ignored
  }
  ~FakeProc() { fs::remove_all(root_); }
  const std::string& root() const { return root_; }

  std::string Add(int pid, const std::string& cgroup, uint64_t start, const std::string& comm = "pause") {
    std::string dir = absl::StrCat(root_, "/", pid);
    fs::create_directories(dir);
    std::ofstream(dir + "/cgroup") << cgroup;
    std::ofstream(dir + "/stat")
        << pid << " (" << comm << ") S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " << start
        << " 1036288 1 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
    return dir;
  }
  // ns/net -> a real namespace file.
  void LinkNetns(int pid, const std::string& target) {
    std::string ns = absl::StrCat(root_, "/", pid, "/ns");
    fs::create_directories(ns);
    fs::create_symlink(target, ns + "/net");
  }

 private:
  std::string root_;
};

std::string CgroupfsV1(const std::string& uid) {
  return absl::StrCat("12:pids:/kubepods/burstable/pod", uid, "/0123abcd\n",
                      "11:memory:/kubepods/burstable/pod", uid, "/0123abcd\n",
                      "1:name=systemd:/kubepods/burstable/pod", uid, "/0123abcd\n");
}
std::string SystemdV2(const std::string& qos_slice, const std::string& uid) {
  return absl::StrCat("0::/kubepods.slice/", qos_slice, "pod", Underscored(uid),
                      ".slice/cri-containerd-5d41402abc4b2a76b9719d911017c592.scope\n");
}

TEST(FindPodProcessesTest, MatchesBothNamingSchemesOldestFirst) {
  FakeProc proc;
  proc.Add(10, CgroupfsV1(kUid), 500);
  proc.Add(20, SystemdV2("kubepods-burstable.slice/kubepods-burstable-", kUid), 300);
  proc.Add(30, SystemdV2("kubepods-", kUid), 700, "we ird) (name");
  proc.Add(40, CgroupfsV1(kOtherUid), 100);
  proc.Add(50, absl::StrCat("0::/user.slice/pod", kUid, "/x\n"), 50);  // not under kubepods
  std::string upper = kUid;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  proc.Add(60, CgroupfsV1(upper), 900);
  proc.Add(70, absl::StrCat("0::/kubepods/besteffort/pod", kUid, "0/c\n"), 10);  // longer id, not ours
  proc.Add(80, "garbage without colons\n", 20);
  absl::StatusOr<std::vector<int>> pids = FindPodProcesses(proc.root(), kUid);
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(20, 10, 30, 60));
  // The same pod asked for with the systemd spelling.
  EXPECT_THAT(*FindPodProcesses(proc.root(), Underscored(kUid)), ElementsAre(20, 10, 30, 60));
  EXPECT_THAT(*FindPodProcesses(proc.root(), kOtherUid), ElementsAre(40));
  EXPECT_THAT(*FindPodProcesses(proc.root(), "00000000-0000-0000-0000-000000000000"), IsEmpty());
}

TEST(FindPodProcessesTest, StaticPodUidWithoutDashes) {
  FakeProc proc;
  const std::string uid = "5d41402abc4b2a76b9719d911017c592";
  proc.Add(
      7,
      absl::StrCat("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod", uid, ".slice/x\n"),
      1);
  EXPECT_THAT(*FindPodProcesses(proc.root(), uid), ElementsAre(7));
}

TEST(FindPodProcessesTest, RejectsMalformedUids) {
  FakeProc proc;
  for (std::string bad :
       {"", "../../etc/passwd", "8e4c2a6b-1f3d-4e5a-9b7c", ".*", "8e4c2a6b-1f3d-4e5a-9b7c-0d2e4f6a8b1c/x"}) {
    EXPECT_EQ(FindPodProcesses(proc.root(), bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(FindPodProcesses("/nonexistent-proc-root", kUid).status().code(), absl::StatusCode::kUnavailable);
}

TEST(CurrentNetnsHasAnyAddressTest, SeesLoopbackOnly) {
  absl::Status setup = testing::RunInFreshNetns([] {
    EXPECT_TRUE(*CurrentNetnsHasAnyAddress({"127.0.0.1"}));
    EXPECT_TRUE(*CurrentNetnsHasAnyAddress({"10.1.1.1", "::1"}));
    EXPECT_FALSE(*CurrentNetnsHasAnyAddress({"10.1.1.1"}));
    EXPECT_FALSE(*CurrentNetnsHasAnyAddress({}));
    EXPECT_EQ(CurrentNetnsHasAnyAddress({"not-an-ip"}).status().code(), absl::StatusCode::kInvalidArgument);
  });
  PNC_NETNS_OR_SKIP(setup);
}

absl::Status AddAddress(const NetnsHandle& ns, const std::string& cidr) {
  return RunInNetns(ns, [&] {
    return testing::RunCapture({"/usr/sbin/ip", "addr", "add", cidr, "dev", "lo"}).status();
  });
}

TEST(CgroupLocatorTest, LocatesThroughAFakeProcTree) {
  absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
  PNC_NETNS_OR_SKIP(ns.status());
  FakeProc proc;
  // pid 5 is the oldest but has exited (no ns/net); pid 6 holds the sandbox netns.
  proc.Add(5, CgroupfsV1(kUid), 10);
  proc.Add(6, CgroupfsV1(kUid), 20);
  proc.LinkNetns(6, absl::StrCat("/proc/", getpid(), "/fd/", ns->fd()));
  std::unique_ptr<Locator> locator = NewCgroupLocator(proc.root());
  EXPECT_EQ(locator->Name(), "cgroup");

  absl::StatusOr<NetnsHandle> h = locator->Locate(PodRef{kUid, "shop", "web-0", {}});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), ns->inode());

  // With the pod IP known, the netns must hold it.
  PodRef with_ip{kUid, "shop", "web-0", {"10.244.3.9"}};
  absl::Status st = locator->Locate(with_ip).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  ASSERT_TRUE(AddAddress(*ns, "10.244.3.9/32").ok());
  h = locator->Locate(with_ip);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), ns->inode());

  EXPECT_TRUE(absl::IsNotFound(locator->Locate(PodRef{kOtherUid, "", "", {}}).status()));
}

TEST(CgroupLocatorTest, RefusesAPodProcessInTheHostNetns) {
  FakeProc proc;
  proc.Add(9, CgroupfsV1(kUid), 10);
  proc.LinkNetns(9, "/proc/self/ns/net");
  absl::Status st = NewCgroupLocator(proc.root())->Locate(PodRef{kUid, "", "", {}}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
}

// A real process in a new netns; its fake /proc entry carries a kubepods cgroup but links the real stat and
// ns.
TEST(CgroupLocatorTest, RealProcessInNewNetns) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // async-signal-safe calls only
    char ok = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
    (void)!write(ready[1], &ok, 1);
    if (!ok) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  if (!ok) PNC_NETNS_OR_SKIP(absl::PermissionDeniedError("unshare(CLONE_NEWNET) in a child failed"));

  FakeProc proc;
  std::string dir = absl::StrCat(proc.root(), "/", child);
  fs::create_directories(dir);
  std::ofstream(dir + "/cgroup") << SystemdV2("kubepods-besteffort.slice/kubepods-besteffort-", kUid);
  fs::create_symlink(absl::StrCat("/proc/", child, "/stat"), dir + "/stat");
  fs::create_symlink(absl::StrCat("/proc/", child, "/ns"), dir + "/ns");

  absl::StatusOr<NetnsHandle> child_ns = NetnsHandle::Open(absl::StrCat("/proc/", child, "/ns/net"));
  ASSERT_TRUE(child_ns.ok()) << child_ns.status();
  ASSERT_TRUE(RunInNetns(*child_ns, [] { return testing::BringUpLoopback(); }).ok());
  ASSERT_TRUE(AddAddress(*child_ns, "10.77.0.5/32").ok());

  absl::StatusOr<NetnsHandle> h =
      NewCgroupLocator(proc.root())->Locate(PodRef{kUid, "ns", "pod", {"10.77.0.5"}});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), child_ns->inode());
}

}  // namespace
}  // namespace pnc::netns
