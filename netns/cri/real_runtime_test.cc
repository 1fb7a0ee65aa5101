// The locators against a real containerd (netns/cri/testing): sandboxes made through CRI like kubelet makes
// them, found by the CRI locator and by the /proc cgroup scan, through the pod's life: before the sandbox,
// ready, stopped, removed, recreated under the same pod UID; and the production rules applied in the located
// netns redirect a real connection made inside the sandbox.
#include <sys/stat.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/backends.h"
#include "netns/cri/cgroup_locator.h"
#include "netns/cri/cri_locator.h"
#include "netns/cri/testing/containerd.h"
#include "netns/cri/testing/gtest_containerd.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/executor.h"
#include "netns/inspector.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sockets.h"
#include "rules/plan.h"

namespace pnc::netns {
namespace {

using cri_testing::Containerd;
using cri_testing::PodSpec;
using cri_testing::SandboxClient;
using cri_testing::SandboxFacts;

constexpr char kUid[] = "3f2e1d0c-5b4a-4978-8695-a4b3c2d1e0f9";

uint64_t InodeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class RealRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PNC_CONTAINERD_OR_SKIP(ctrd_);
    client_ = std::make_unique<SandboxClient>(ctrd_->endpoint());
    absl::StatusOr<std::unique_ptr<Locator>> cri = NewCriLocator(ctrd_->endpoint(), absl::Seconds(2));
    ASSERT_TRUE(cri.ok()) << cri.status();
    cri_ = std::move(*cri);
    cgroup_ = NewCgroupLocator("/proc");
  }

  PodSpec Pod(uint32_t attempt = 0) { return {kUid, "web-0", "shop", attempt, ctrd_->CgroupParent(kUid)}; }

  // RunPodSandbox + verbose status; fails the test on error.
  SandboxFacts RunSandbox(uint32_t attempt = 0) {
    absl::Time t0 = absl::Now();
    absl::StatusOr<std::string> id = client_->Run(Pod(attempt));
    EXPECT_TRUE(id.ok()) << id.status() << "\n" << ctrd_->LogTail();
    if (!id.ok()) return {};
    std::cerr << "RunPodSandbox (attempt " << attempt << "): " << absl::FormatDuration(absl::Now() - t0)
              << "\n";
    absl::StatusOr<SandboxFacts> facts = client_->Status(*id);
    EXPECT_TRUE(facts.ok()) << facts.status();
    return facts.ok() ? *facts : SandboxFacts{};
  }

  PodRef Ref(const std::string& ip) {
    return PodRef{kUid, "shop", "web-0",
                  ip.empty() ? std::vector<std::string>{} : std::vector<std::string>{ip}};
  }

  absl::StatusOr<NetnsHandle> TimedLocate(Locator& l, const PodRef& pod) {
    absl::Time t0 = absl::Now();
    absl::StatusOr<NetnsHandle> h = l.Locate(pod);
    std::cerr << l.Name() << " Locate: " << absl::FormatDuration(absl::Now() - t0) << " -> "
              << (h.ok() ? h->path() : h.status().ToString()) << "\n";
    return h;
  }

  std::unique_ptr<Containerd> ctrd_;
  std::unique_ptr<SandboxClient> client_;
  std::unique_ptr<Locator> cri_;
  std::unique_ptr<Locator> cgroup_;
};

TEST_F(RealRuntimeTest, CriLocatorFindsTheSandboxNetnsWithThePodIp) {
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  ASSERT_TRUE(absl::StartsWith(s.ip, "10.251.0.")) << s.ip;
  absl::StatusOr<NetnsHandle> h = TimedLocate(*cri_, Ref(s.ip));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->path(), s.netns_path);  // the bind mount under the fixture's state dir
  EXPECT_EQ(h->inode(), InodeOf(absl::StrCat("/proc/", s.pid, "/ns/net")));
  // The netns really holds the pod IP (checked from inside, not taken from the runtime's word).
  absl::StatusOr<bool> has_ip = false;
  ASSERT_TRUE(RunInNetns(*h, [&] {
                has_ip = CurrentNetnsHasAnyAddress({s.ip});
                return has_ip.status();
              }).ok());
  EXPECT_TRUE(*has_ip);
  // A pod that claims another IP is refused.
  EXPECT_EQ(cri_->Locate(Ref("10.251.0.250")).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RealRuntimeTest, CgroupLocatorFindsItWithoutTheCriSocket) {
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  absl::StatusOr<NetnsHandle> h = TimedLocate(*cgroup_, Ref(s.ip));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->path(), absl::StrCat("/proc/", s.pid, "/ns/net"));  // the pause process, oldest of the pod
  EXPECT_EQ(h->inode(), InodeOf(s.netns_path));
  EXPECT_EQ(cgroup_->Locate(Ref("10.251.0.250")).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RealRuntimeTest, PodEventBeforeTheSandboxExistsIsNotFoundThenFound) {
  // The pod is known to the API server, the runtime has nothing yet: retryable, not an error.
  absl::Status cri = cri_->Locate(Ref("")).status();
  EXPECT_TRUE(absl::IsNotFound(cri)) << cri;
  absl::Status cg = cgroup_->Locate(Ref("")).status();
  EXPECT_TRUE(absl::IsNotFound(cg)) << cg;
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  EXPECT_TRUE(cri_->Locate(Ref("")).ok());
  EXPECT_TRUE(cgroup_->Locate(Ref("")).ok());
}

// The sandbox poller's call against the real runtime: the unfiltered ListPodSandbox(state=READY) lists the
// pod once its sandbox is READY and no longer once it is stopped; the cgroup locator cannot list.
TEST_F(RealRuntimeTest, ReadyPodUidsFollowsTheSandboxState) {
  absl::StatusOr<std::vector<std::string>> before = cri_->ReadyPodUids();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(std::count(before->begin(), before->end(), kUid), 0);
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  absl::StatusOr<std::vector<std::string>> ready = cri_->ReadyPodUids();
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(std::count(ready->begin(), ready->end(), kUid), 1);
  EXPECT_TRUE(TimedLocate(*cri_, Ref(s.ip)).ok());  // one PodSandboxStatus of the listed sandbox
  ASSERT_TRUE(client_->Stop(s.id).ok());
  absl::StatusOr<std::vector<std::string>> stopped = cri_->ReadyPodUids();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(std::count(stopped->begin(), stopped->end(), kUid), 0);
  EXPECT_TRUE(absl::IsNotFound(cri_->Locate(Ref(s.ip)).status()));
  EXPECT_TRUE(absl::IsUnimplemented(cgroup_->ReadyPodUids().status()));
  ASSERT_TRUE(client_->Remove(s.id).ok());
}

TEST_F(RealRuntimeTest, StoppedSandboxIsNotFoundAndItsNetnsIsGone) {
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  ASSERT_TRUE(cri_->Locate(Ref(s.ip)).ok());
  ASSERT_TRUE(client_->Stop(s.id).ok());
  absl::Status cri = cri_->Locate(Ref(s.ip)).status();
  EXPECT_TRUE(absl::IsNotFound(cri)) << cri;
  absl::Status cg = cgroup_->Locate(Ref(s.ip)).status();
  EXPECT_TRUE(absl::IsNotFound(cg)) << cg;
  struct stat st;
  EXPECT_NE(::stat(s.netns_path.c_str(), &st), 0) << "netns file still there after StopPodSandbox";
  ASSERT_TRUE(client_->Remove(s.id).ok());
  EXPECT_TRUE(absl::IsNotFound(cri_->Locate(Ref(s.ip)).status()));
  EXPECT_TRUE(absl::IsNotFound(client_->Status(s.id).status()));
}

TEST_F(RealRuntimeTest, HandleOpenedBeforeStopKeepsTheOldNetnsButNotItsIdentity) {
  // Mid-initialization: the controller holds a handle when kubelet stops the sandbox. The handle keeps the
  // (now empty) netns alive; a re-locate says NotFound, so nothing is marked for a dead sandbox.
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  absl::StatusOr<NetnsHandle> h = cri_->Locate(Ref(s.ip));
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(client_->Stop(s.id).ok());
  KernelInspector inspector;
  absl::StatusOr<NetnsView> view = inspector.Inspect(*h, {});
  ASSERT_TRUE(view.ok()) << view.status();  // still enterable through our fd
  absl::StatusOr<bool> has_ip = true;
  ASSERT_TRUE(RunInNetns(*h, [&] {
                has_ip = CurrentNetnsHasAnyAddress({s.ip});
                return has_ip.status();
              }).ok());
  EXPECT_FALSE(*has_ip) << "CNI DEL removed the pod's interface";
  EXPECT_TRUE(absl::IsNotFound(cri_->Locate(Ref(s.ip)).status()));
}

TEST_F(RealRuntimeTest, SandboxRecreatedUnderTheSameUidIsANewNetns) {
  KernelInspector inspector;
  SandboxFacts first = RunSandbox(0);
  ASSERT_TRUE(first.ready);
  absl::StatusOr<NetnsHandle> h1 = cri_->Locate(Ref(first.ip));
  ASSERT_TRUE(h1.ok()) << h1.status();
  const uint64_t inode1 = h1->inode();
  absl::StatusOr<NetnsView> v1 = inspector.Inspect(*h1, {});
  ASSERT_TRUE(v1.ok()) << v1.status();
  *h1 = NetnsHandle::ForTesting("closed", 0);  // let the old netns die with its sandbox

  // kubelet: the old sandbox is stopped, a new one (attempt+1) started; the old one is removed later.
  ASSERT_TRUE(client_->Stop(first.id).ok());
  SandboxFacts second = RunSandbox(1);
  ASSERT_TRUE(second.ready);
  absl::StatusOr<NetnsHandle> h2 = TimedLocate(*cri_, Ref(second.ip));
  ASSERT_TRUE(h2.ok()) << h2.status();
  EXPECT_EQ(h2->path(), second.netns_path);
  absl::StatusOr<NetnsView> v2 = inspector.Inspect(*h2, {});
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_NE(v2->cookie, v1->cookie) << "a recreated sandbox must have a new netns identity";
  std::cerr << "recreation: nsfs inode " << inode1 << " -> " << h2->inode()
            << (h2->inode() == inode1 ? " (REUSED)" : " (new)") << ", cookie " << v1->cookie << " -> "
            << v2->cookie << "\n";
  // The cgroup scan finds the new pause process (the old one is gone).
  absl::StatusOr<NetnsHandle> g2 = cgroup_->Locate(Ref(second.ip));
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_EQ(g2->inode(), h2->inode());
  ASSERT_TRUE(client_->Remove(first.id).ok());
  EXPECT_TRUE(cri_->Locate(Ref(second.ip)).ok());
}

// The production pipeline's rules (BuildPlan -> BuildRuleset -> nft backend) in the netns the CRI locator
// found; an app-uid connection made inside the sandbox lands on the 15001 listener with SO_ORIGINAL_DST.
TEST_F(RealRuntimeTest, ProductionRulesInTheLocatedNetnsRedirectARealConnection) {
  using testing::Accept;
  using testing::Endpoint;
  using testing::OriginalDst;
  using testing::RunAs;
  using testing::TcpConnect;
  using testing::TcpListen;
  using testing::UniqueFd;
  SandboxFacts s = RunSandbox();
  ASSERT_TRUE(s.ready);
  absl::StatusOr<NetnsHandle> ns = cri_->Locate(Ref(s.ip));
  ASSERT_TRUE(ns.ok()) << ns.status();

  UniqueFd listener;
  ASSERT_TRUE(RunInNetns(*ns, [&]() -> absl::Status {
                absl::StatusOr<UniqueFd> l = TcpListen("0.0.0.0", 15001);
                if (!l.ok()) return l.status();
                listener = std::move(*l);
                return absl::OkStatus();
              }).ok());
  auto connect_as = [&](uid_t uid) -> absl::Status {
    return RunAs(uid, uid, &*ns, [&]() -> absl::Status {
      return TcpConnect("192.0.2.1", 80, absl::Milliseconds(500)).status();
    });
  };
  // Control: without rules the connection goes to the pod's default route (the private bridge, which
  // routes nowhere) and never reaches the listener.
  EXPECT_FALSE(connect_as(1000).ok());
  EXPECT_FALSE(testing::HasPendingConnection(listener.get()));

  rules::PodFacts pod;
  pod.uid = kUid;
  pod.name = "web-0";
  pod.namespace_name = "shop";
  pod.pod_ips = {s.ip};
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(pod, rules::PlanConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::unique_ptr<Backend>> nft = NewBackendByName("nft");
  ASSERT_TRUE(nft.ok()) << nft.status();
  absl::Status applied = ApplyAndVerify(**nft, *ns, rules::BuildRuleset(*plan));
  ASSERT_TRUE(applied.ok()) << applied;

  ASSERT_TRUE(connect_as(1000).ok());
  absl::StatusOr<UniqueFd> conn = Accept(listener.get(), absl::Seconds(1));
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::StatusOr<Endpoint> orig = OriginalDst(conn->get());
  ASSERT_TRUE(orig.ok()) << orig.status();
  EXPECT_EQ(orig->ToString(), "192.0.2.1:80");
  absl::StatusOr<Endpoint> peer = testing::PeerEndpoint(conn->get());
  ASSERT_TRUE(peer.ok());
  EXPECT_EQ(peer->ip, s.ip);  // from the pod's own address

  // The proxy's uid bypasses the capture.
  EXPECT_FALSE(connect_as(1337).ok());
  EXPECT_FALSE(testing::HasPendingConnection(listener.get()));
}

}  // namespace
}  // namespace pnc::netns
