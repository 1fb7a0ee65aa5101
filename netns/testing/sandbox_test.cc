#include "netns/testing/sandbox.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"

namespace pnc::netns::testing {
namespace {

uint64_t ThreadNetnsInode() {
  struct stat st;
  return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { PNC_SANDBOX_OR_SKIP(sandbox_); }
  Sandbox* sandbox_ = nullptr;
};

TEST_F(SandboxTest, UidMapCoversProxyUid) {
  std::ifstream in("/proc/self/uid_map");
  uint64_t inner = 1, outer = 0, count = 0;
  ASSERT_TRUE(in >> inner >> outer >> count);
  EXPECT_EQ(inner, 0u);
  // Either one line 0..65535 (root) or 0 plus a second line 1..65535 (newuidmap).
  uint64_t covered = count;
  uint64_t i2, o2, c2;
  if (in >> i2 >> o2 >> c2) covered += c2;
  EXPECT_GE(covered, 1338u);
  EXPECT_EQ(geteuid(), 0u);
}

TEST_F(SandboxTest, RefusesItsOwnNamespaceAsHost) {
  absl::StatusOr<NetnsHandle> self = NetnsHandle::Open("/proc/self/ns/net");
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(self.status().code(), absl::StatusCode::kFailedPrecondition) << self.status();
}

TEST_F(SandboxTest, PodsGetDistinctNamespacesAndAddresses) {
  absl::StatusOr<PodNetns> a = sandbox_->CreatePodNetns("sbx-a");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<PodNetns> b = sandbox_->CreatePodNetns("sbx-b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(a->handle().inode(), b->handle().inode());
  EXPECT_NE(a->handle().inode(), sandbox_->peer().inode());
  EXPECT_NE(a->pod_ipv4, b->pod_ipv4);
  EXPECT_NE(a->pod_ipv6, b->pod_ipv6);
  // The bind mount is a reopenable nsfs file naming the same namespace.
  absl::StatusOr<NetnsHandle> again = NetnsHandle::Open(a->netns.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->inode(), a->handle().inode());
  EXPECT_FALSE(sandbox_->CreatePodNetns("sbx-a").ok()) << "duplicate name must be refused";
  EXPECT_FALSE(sandbox_->CreatePodNetns("Bad/Name").ok());
}

TEST_F(SandboxTest, DestroyingRemovesTheFile) {
  std::string path;
  {
    absl::StatusOr<OwnedNetns> ns = sandbox_->CreateBareNetns("sbx-gone");
    ASSERT_TRUE(ns.ok()) << ns.status();
    path = ns->path();
    EXPECT_EQ(access(path.c_str(), F_OK), 0);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

// TCP from the pod to the peer end of its veth, over IPv4 and IPv6.
void ExpectPodReachesPeer(const PodNetns& pod, const NetnsHandle& peer, int family,
                          const std::string& peer_ip) {
  SCOPED_TRACE(peer_ip);
  int listener = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(9000);
    inet_pton(AF_INET, peer_ip.c_str(), &sin->sin_addr);
    len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(9000);
    inet_pton(AF_INET6, peer_ip.c_str(), &sin6->sin6_addr);
    len = sizeof(*sin6);
  }
  ASSERT_TRUE(RunInNetns(peer, [&]() -> absl::Status {
                listener = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
                    listen(listener, 4) != 0) {
                  return absl::InternalError(absl::StrCat("listen: ", strerror(errno)));
                }
                return absl::OkStatus();
              }).ok());
  int client = -1;
  absl::Status s = RunInNetns(pod.handle(), [&]() -> absl::Status {
    client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(client, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      return absl::InternalError(absl::StrCat("connect: ", strerror(errno)));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  pollfd p{listener, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 2000), 1);
  close(client);
  close(listener);
}

TEST_F(SandboxTest, PodReachesPeerOverBothFamilies) {
  absl::StatusOr<PodNetns> pod = sandbox_->CreatePodNetns("sbx-reach");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ExpectPodReachesPeer(*pod, sandbox_->peer(), AF_INET, pod->peer_ipv4);
  ExpectPodReachesPeer(*pod, sandbox_->peer(), AF_INET6, pod->peer_ipv6);
}

TEST_F(SandboxTest, RunAsChangesOnlyTheWorkerThread) {
  absl::StatusOr<PodNetns> pod = sandbox_->CreatePodNetns("sbx-runas");
  ASSERT_TRUE(pod.ok()) << pod.status();
  long uid = -1, gid = -1;
  uint64_t ns_inside = 0;
  absl::Status s = RunAs(1337, 1337, &pod->handle(), [&] {
    uid = syscall(SYS_geteuid);
    gid = syscall(SYS_getegid);
    ns_inside = ThreadNetnsInode();
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(uid, 1337);
  EXPECT_EQ(gid, 1337);
  EXPECT_EQ(ns_inside, pod->handle().inode());
  EXPECT_EQ(geteuid(), 0u);
  EXPECT_NE(ThreadNetnsInode(), pod->handle().inode());
  // Without capabilities the worker cannot regain root.
  s = RunAs(1000, 1000, nullptr, [] {
    if (syscall(SYS_setresuid, 0, 0, 0) == 0) return absl::InternalError("regained uid 0");
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace pnc::netns::testing
