#include "netns/cri/cri_locator.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/cri/cri_api.pb.h"
#include "netns/cri/fake_cri_server.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

constexpr char kUid[] = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

using testing::NetnsThread;

class CriLocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeCriServer>> server =
        FakeCriServer::Start(FakeCriServer::RandomAbstractEndpoint("pnc-cri-test"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    absl::StatusOr<std::unique_ptr<Locator>> locator =
        NewCriLocator(server_->endpoint(), absl::Milliseconds(500));
    ASSERT_TRUE(locator.ok()) << locator.status();
    locator_ = std::move(*locator);
  }
  // The fake sandbox's netns: a parked thread in a fresh netns (skips the test when namespaces are
  // unavailable).
  bool MakeNetns() {
    ns_ = std::make_unique<NetnsThread>();
    return ns_->tid() != 0;
  }
  FakeSandbox Sandbox() {
    FakeSandbox s;
    s.pod_uid = kUid;
    s.pod_name = "web-0";
    s.pod_namespace = "shop";
    s.netns_path = ns_->path();
    s.pid = ns_->tid();
    s.ips = {"10.244.1.7", "fd00::7"};
    return s;
  }
  PodRef Pod() { return PodRef{kUid, "shop", "web-0", {"10.244.1.7", "fd00::7"}}; }
  uint64_t Inode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0);
    return st.st_ino;
  }

  std::unique_ptr<FakeCriServer> server_;
  std::unique_ptr<Locator> locator_;
  std::unique_ptr<NetnsThread> ns_;
};

#define REQUIRE_NETNS() \
  if (!MakeNetns()) PNC_NETNS_OR_SKIP(absl::PermissionDeniedError("unshare(CLONE_NEWNET) failed"))

TEST_F(CriLocatorTest, FindsTheSandboxNetnsByPath) {
  REQUIRE_NETNS();
  server_->Upsert(Sandbox());
  absl::StatusOr<NetnsHandle> h = locator_->Locate(Pod());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), Inode(ns_->path()));
  EXPECT_EQ(h->path(), ns_->path());
  EXPECT_EQ(locator_->Name(), "cri");
}

TEST_F(CriLocatorTest, FallsBackToPidWhenSpecHasNoPath) {
  REQUIRE_NETNS();
  FakeSandbox s = Sandbox();
  s.netns_path.clear();
  server_->Upsert(s);
  absl::StatusOr<NetnsHandle> h = locator_->Locate(Pod());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->path(), absl::StrCat("/proc/", ns_->tid(), "/ns/net"));
  EXPECT_EQ(h->inode(), Inode(ns_->path()));
}

TEST_F(CriLocatorTest, NotFoundUntilTheSandboxIsReady) {
  REQUIRE_NETNS();
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
  FakeSandbox s = Sandbox();
  s.ready = false;
  server_->Upsert(s);
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
  // Another pod's ready sandbox is never picked.
  FakeSandbox other = Sandbox();
  other.pod_uid = "11111111-2222-3333-4444-555555555555";
  server_->Upsert(other);
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
  s.ready = true;
  server_->Upsert(s);
  EXPECT_TRUE(locator_->Locate(Pod()).ok());
}

TEST_F(CriLocatorTest, PicksTheNewestReadySandbox) {
  REQUIRE_NETNS();
  NetnsThread old_ns;
  FakeSandbox old = Sandbox();
  old.attempt = 0;
  old.netns_path = old_ns.path();
  old.created_at_ns = 1000;
  FakeSandbox fresh = Sandbox();
  fresh.attempt = 1;
  fresh.created_at_ns = 2000;
  server_->Upsert(old);
  server_->Upsert(fresh);
  absl::StatusOr<NetnsHandle> h = locator_->Locate(Pod());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), Inode(ns_->path()));
}

// A pod located before costs one call (PodSandboxStatus of its known sandbox) while that sandbox is READY;
// a recreated sandbox (the old one stopped first, as the kubelet does) is found by the full lookup again.
TEST_F(CriLocatorTest, KnownSandboxTakesOneCallUntilItIsReplaced) {
  REQUIRE_NETNS();
  FakeSandbox first = Sandbox();
  server_->Upsert(first);
  ASSERT_TRUE(locator_->Locate(Pod()).ok());
  int64_t calls = server_->calls();
  absl::StatusOr<NetnsHandle> again = locator_->Locate(Pod());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->inode(), Inode(ns_->path()));
  EXPECT_EQ(server_->calls(), calls + 1);

  NetnsThread next_ns;
  first.ready = false;  // stopped
  server_->Upsert(first);
  FakeSandbox second = Sandbox();
  second.attempt = 1;
  second.netns_path = next_ns.path();
  server_->Upsert(second);
  calls = server_->calls();
  absl::StatusOr<NetnsHandle> moved = locator_->Locate(Pod());
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->inode(), Inode(next_ns.path()));
  EXPECT_EQ(server_->calls(), calls + 3);  // the stale status, then list + status

  server_->RemovePod(kUid);  // gone: NotFound, and no stale answer afterwards
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
}

// One call lists every pod with a ready sandbox (no other pod, no sandbox that is not ready); a pod listed
// then takes one call to locate, with the same cross-checks as the full lookup.
TEST_F(CriLocatorTest, ReadyPodUidsListsReadySandboxesInOneCall) {
  REQUIRE_NETNS();
  FakeSandbox mine = Sandbox();
  server_->Upsert(mine);
  FakeSandbox starting = Sandbox();
  starting.pod_uid = "22222222-2222-3333-4444-555555555555";
  starting.ready = false;
  server_->Upsert(starting);
  FakeSandbox other = Sandbox();
  other.pod_uid = "11111111-2222-3333-4444-555555555555";
  other.pod_name = "other-0";
  server_->Upsert(other);
  int64_t calls = server_->calls();
  absl::StatusOr<std::vector<std::string>> uids = locator_->ReadyPodUids();
  ASSERT_TRUE(uids.ok()) << uids.status();
  std::sort(uids->begin(), uids->end());
  EXPECT_EQ(*uids, (std::vector<std::string>{kUid, "11111111-2222-3333-4444-555555555555"}));
  EXPECT_EQ(server_->calls(), calls + 1);

  calls = server_->calls();
  absl::StatusOr<NetnsHandle> h = locator_->Locate(Pod());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), Inode(ns_->path()));
  EXPECT_EQ(server_->calls(), calls + 1);
  // The listed sandbox is still checked against the pod: another name is refused.
  PodRef renamed = Pod();
  renamed.uid = "11111111-2222-3333-4444-555555555555";
  renamed.name = "impostor";
  EXPECT_TRUE(absl::IsFailedPrecondition(locator_->Locate(renamed).status()));
}

// A list forgets the pods it does not show: their next locate is the full lookup (list + status), not a
// status of a sandbox that is gone first.
TEST_F(CriLocatorTest, ReadyPodUidsForgetsSandboxesThatAreNoLongerReady) {
  REQUIRE_NETNS();
  server_->Upsert(Sandbox());
  ASSERT_TRUE(locator_->Locate(Pod()).ok());  // known now
  server_->RemovePod(kUid);
  absl::StatusOr<std::vector<std::string>> uids = locator_->ReadyPodUids();
  ASSERT_TRUE(uids.ok()) << uids.status();
  EXPECT_TRUE(uids->empty());
  int64_t calls = server_->calls();
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
  EXPECT_EQ(server_->calls(), calls + 1);  // the list only
}

// The poller's lean view of a ListPodSandbox answer reads the same bytes as the full message, without the
// labels and annotations.
TEST(CriApiTest, ListPodSandboxIdentitiesReadsAFullAnswer) {
  runtime::v1::ListPodSandboxResponse full;
  for (int i = 0; i < 3; ++i) {
    runtime::v1::PodSandbox* s = full.add_items();
    s->set_id("sandbox-" + std::to_string(i));
    s->mutable_metadata()->set_uid("uid-" + std::to_string(i));
    s->mutable_metadata()->set_name("web-" + std::to_string(i));
    s->set_state(i == 1 ? runtime::v1::SANDBOX_NOTREADY : runtime::v1::SANDBOX_READY);
    s->set_created_at(1000 + i);
    (*s->mutable_labels())["io.kubernetes.pod.uid"] = "uid-" + std::to_string(i);
    (*s->mutable_annotations())["kubectl.kubernetes.io/last-applied-configuration"] = std::string(4096, 'x');
    s->set_runtime_handler("runc");
  }
  runtime::v1::ListPodSandboxIdentities lean;
  ASSERT_TRUE(lean.ParseFromString(full.SerializeAsString()));
  ASSERT_EQ(lean.items_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(lean.items(i).id(), full.items(i).id());
    EXPECT_EQ(lean.items(i).metadata().uid(), full.items(i).metadata().uid());
    EXPECT_EQ(lean.items(i).metadata().name(), full.items(i).metadata().name());
    EXPECT_EQ(lean.items(i).state(), full.items(i).state());
    EXPECT_EQ(lean.items(i).created_at(), full.items(i).created_at());
  }
}

TEST_F(CriLocatorTest, ReadyPodUidsReportsTheRuntimeUnavailable) {
  server_->FailNext(1);
  EXPECT_TRUE(absl::IsUnavailable(locator_->ReadyPodUids().status()));
}

TEST_F(CriLocatorTest, IpMismatchIsFailedPrecondition) {
  REQUIRE_NETNS();
  FakeSandbox s = Sandbox();
  s.ips = {"10.244.9.9"};
  server_->Upsert(s);
  absl::Status st = locator_->Locate(Pod()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("10.244.9.9"), std::string::npos);
  // Unknown IPs on either side skip the check.
  PodRef early = Pod();
  early.ips.clear();
  EXPECT_TRUE(locator_->Locate(early).ok());
}

TEST_F(CriLocatorTest, NameMismatchIsFailedPrecondition) {
  REQUIRE_NETNS();
  server_->Upsert(Sandbox());
  PodRef p = Pod();
  p.name = "web-1";
  EXPECT_EQ(locator_->Locate(p).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CriLocatorTest, HostNetnsIsRefused) {
  REQUIRE_NETNS();
  FakeSandbox s = Sandbox();
  s.netns_path = "/proc/1/ns/net";
  server_->Upsert(s);
  absl::Status st = locator_->Locate(Pod()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("host network namespace"), std::string::npos) << st;
}

TEST_F(CriLocatorTest, VanishedNetnsIsNotFound) {
  REQUIRE_NETNS();
  FakeSandbox s = Sandbox();
  s.netns_path = "/var/run/netns/cni-does-not-exist-4711";
  s.pid = 0;
  server_->Upsert(s);
  EXPECT_TRUE(absl::IsNotFound(locator_->Locate(Pod()).status()));
}

TEST_F(CriLocatorTest, InvisibleNetnsPathFallsBackToPid) {
  REQUIRE_NETNS();
  FakeSandbox s = Sandbox();
  s.netns_path = "/var/run/netns/cni-not-mounted-here";  // e.g. the DaemonSet does not mount /var/run/netns
  server_->Upsert(s);
  absl::StatusOr<NetnsHandle> h = locator_->Locate(Pod());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->inode(), Inode(ns_->path()));
}

TEST_F(CriLocatorTest, StalledRuntimeHitsTheDeadline) {
  REQUIRE_NETNS();
  server_->Upsert(Sandbox());
  server_->SetStall(absl::Seconds(5));
  absl::Time start = absl::Now();
  absl::Status st = locator_->Locate(Pod()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));  // bounded by the 500 ms call timeout, not the stall
  server_->SetStall(absl::ZeroDuration());
}

TEST_F(CriLocatorTest, RuntimeErrorsAreUnavailable) {
  REQUIRE_NETNS();
  server_->Upsert(Sandbox());
  server_->FailNext(1);
  EXPECT_TRUE(absl::IsUnavailable(locator_->Locate(Pod()).status()));
  EXPECT_TRUE(locator_->Locate(Pod()).ok());
}

TEST_F(CriLocatorTest, RuntimeVersion) {
  absl::StatusOr<std::string> v = CriRuntimeVersion(server_->endpoint());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "pnc-fake-cri 0.1.0 (CRI v1)");
  EXPECT_EQ(CriRuntimeVersion("nope").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CriLocatorStandaloneTest, NoServerIsUnavailable) {
  absl::StatusOr<std::unique_ptr<Locator>> l =
      NewCriLocator("/tmp/pnc-no-such-cri.sock", absl::Milliseconds(300));
  ASSERT_TRUE(l.ok());
  absl::Status st = (*l)->Locate(PodRef{kUid, "shop", "web-0", {}}).status();
  EXPECT_TRUE(absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) << st;
}

TEST(CriLocatorStandaloneTest, UnixSocketPathEndpoint) {
  // A short path (gRPC's unix paths stop at 107 bytes; TEST_TMPDIR may be longer), unique across parallel
  // runs.
  std::string path =
      absl::StrCat("/tmp/", FakeCriServer::RandomAbstractEndpoint("pnc-cri").substr(14), ".sock");
  unlink(path.c_str());
  absl::StatusOr<std::unique_ptr<FakeCriServer>> server = FakeCriServer::Start(path);
  ASSERT_TRUE(server.ok()) << server.status();
  for (std::string endpoint : {path, absl::StrCat("unix://", path), absl::StrCat("unix:", path)}) {
    absl::StatusOr<std::unique_ptr<Locator>> l = NewCriLocator(endpoint);
    ASSERT_TRUE(l.ok()) << endpoint;
    EXPECT_TRUE(absl::IsNotFound((*l)->Locate(PodRef{kUid, "", "", {}}).status())) << endpoint;
  }
  EXPECT_GE((*server)->calls(), 3);
  server->reset();
  unlink(path.c_str());
}

// A runtime restart on the same socket: Unavailable (fast) while nobody serves it, and the first locate after
// a server listens again reaches it (here: NotFound from the new, empty runtime), without waiting out gRPC's
// reconnect backoff.
TEST(CriLocatorStandaloneTest, ReconnectsAtOnceAfterTheRuntimeRestarts) {
  std::string path =
      absl::StrCat("/tmp/", FakeCriServer::RandomAbstractEndpoint("pnc-cri").substr(14), ".sock");
  unlink(path.c_str());
  absl::StatusOr<std::unique_ptr<FakeCriServer>> server = FakeCriServer::Start(path);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::unique_ptr<Locator>> l = NewCriLocator(path, absl::Seconds(2));
  ASSERT_TRUE(l.ok());
  const PodRef pod{kUid, "", "", {}};
  EXPECT_TRUE(absl::IsNotFound((*l)->Locate(pod).status()));
  server->reset();
  unlink(path.c_str());
  for (int i = 0; i < 20; ++i) {
    absl::Time t0 = absl::Now();
    absl::Status s = (*l)->Locate(pod).status();
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_LT(absl::Now() - t0, absl::Milliseconds(400)) << "a failed connect must not wait for a deadline";
    absl::SleepFor(absl::Milliseconds(50));
  }
  server = FakeCriServer::Start(path);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::Status first = (*l)->Locate(pod).status();
  EXPECT_TRUE(absl::IsNotFound(first)) << "first locate after the restart: " << first;
  server->reset();
  unlink(path.c_str());
}

TEST(CriLocatorStandaloneTest, RejectsBadEndpoints) {
  EXPECT_EQ(NewCriLocator("relative.sock").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCriLocator("tcp://1.2.3.4:5").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCriLocator("/" + std::string(120, 'x')).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCriLocator("/run/x.sock", absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pnc::netns
