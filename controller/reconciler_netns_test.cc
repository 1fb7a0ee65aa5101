// The reconciler on a real kernel: sandbox pod network namespaces (netns/testing), the real backends (iptc,
// nft, auto) and rules/, with only the API server faked. Proves select -> plan -> locate -> apply -> verify
// -> mark with real netfilter state, restart verification, re-apply after the rules are wiped, and that
// traffic is really redirected afterwards (the waiter's probe, run as an application uid inside the pod
// netns).
#include <map>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "controller/informer.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "controller/reconciler.h"
#include "controller/waiter/probe.h"
#include "gtest/gtest.h"
#include "kube/fake_client.h"
#include "netns/backends.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "rules/annotations.h"
#include "rules/mark.h"

namespace pnc::controller {
namespace {

// Maps pod UID -> bind-mounted netns path of a sandbox pod.
class PathLocator : public netns::Locator {
 public:
  void Add(const std::string& uid, const std::string& path) {
    absl::MutexLock l(&mu_);
    paths_[uid] = path;
  }
  absl::StatusOr<netns::NetnsHandle> Locate(const netns::PodRef& pod) override {
    absl::MutexLock l(&mu_);
    auto it = paths_.find(pod.uid);
    if (it == paths_.end()) return absl::NotFoundError("no sandbox yet");
    return netns::NetnsHandle::Open(it->second);
  }
  std::string Name() const override { return "path"; }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> paths_;
};

kube::Pod MemberPod(const std::string& uid, const std::string& name, const std::string& ip) {
  kube::Pod p;
  p.uid = uid;
  p.name = name;
  p.namespace_name = "shop";
  p.node_name = "node-a";
  p.annotations[rules::kSidecarStatusAnnotation] = "{}";
  kube::Container app;
  app.name = "app";
  kube::Container proxy;
  proxy.name = "istio-proxy";
  proxy.run_as_user = 1337;
  p.containers = {app, proxy};
  p.pod_ips = {ip};
  return p;
}

class ReconcilerNetnsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ReconcilerNetnsTest, AppliesVerifiesMarksAndRepairs) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  SetLogSink([](const std::string&) {});
  const std::string backend_name = GetParam();
  absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns(std::string("rk-") + backend_name);
  ASSERT_TRUE(pod.ok()) << pod.status();
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = netns::NewBackendByName(backend_name);
  ASSERT_TRUE(backend.ok()) << backend.status();

  kube::FakeClient client;
  Informer informer{Informer::Callbacks{}};
  kube::Namespace ns;
  ns.name = "shop";
  informer.ReplaceNamespaces({ns});
  PathLocator locator;
  Metrics metrics;
  auto reconciler = [&] {
    return std::make_unique<Reconciler>(
        Reconciler::Deps{&informer, &client, &locator, backend->get(), &metrics}, rules::PlanConfig{},
        "node-a");
  };
  kube::Pod p = MemberPod("uid-1", "web", pod->pod_ipv4);
  client.UpsertPod(p);
  informer.ApplyPodEvent(kube::EventType::kAdded, kube::Pod(p));

  std::unique_ptr<Reconciler> r = reconciler();
  EXPECT_EQ(r->Reconcile("uid-1").outcome, Outcome::kRetry);  // sandbox not there yet
  locator.Add("uid-1", pod->netns.path());
  ReconcileResult res = r->Reconcile("uid-1");
  ASSERT_EQ(res.outcome, Outcome::kInitialized) << res.status;
  ASSERT_EQ(client.patches().size(), 1u);

  // Redirection really works: the probe the controller wrote into the mark passes as an app uid.
  auto probe_passes = [&](const netns::NetnsHandle& h) {
    std::optional<kube::Pod> now = client.GetPod("shop", "web");
    std::optional<rules::ProbeSpec> spec = rules::ParseProbeSpec(now->annotations[rules::kProbeAnnotation]);
    EXPECT_TRUE(spec.has_value() && !spec->none) << now->annotations[rules::kProbeAnnotation];
    if (!spec || spec->none) return false;
    waiter::ProbeResult probe;
    EXPECT_TRUE(netns::testing::RunAs(1000, 1000, &h, [&] {
                  probe = waiter::RunProbe(*spec, 1000);
                  return absl::OkStatus();
                }).ok());
    EXPECT_TRUE(probe.ok) << probe.message;
    return probe.ok;
  };
  EXPECT_TRUE(probe_passes(pod->handle()));
  EXPECT_EQ(client.GetPod("shop", "web")->annotations[rules::kProbeAnnotation],
            "target=192.0.2.1:15002,capture=15001");

  // Restart: the pod is initialized and its rules are intact -> verified, not re-applied, not re-marked.
  informer.ApplyPodEvent(kube::EventType::kModified, *client.GetPod("shop", "web"));
  r = reconciler();
  res = r->Reconcile("uid-1");
  EXPECT_EQ(res.outcome, Outcome::kVerified) << res.status;

  // Someone wipes our rules: the next resync re-applies them (no new patch).
  ASSERT_TRUE((*backend)->Remove(pod->handle()).ok());
  r->RequestReverify("uid-1");
  res = r->Reconcile("uid-1");
  EXPECT_EQ(res.outcome, Outcome::kReapplied) << res.status;
  EXPECT_EQ(client.patches().size(), 1u);
  r->RequestReverify("uid-1");
  EXPECT_EQ(r->Reconcile("uid-1").outcome, Outcome::kVerified);
  EXPECT_EQ(metrics.errors.Value("verify_failed"), 0);

  // The sandbox is recreated under the same pod UID: a new, empty netns (usually with the old inode number).
  // The next event re-applies and re-marks it for the new identity.
  const uint64_t old_inode = pod->handle().inode();
  const std::string old_netns = client.GetPod("shop", "web")->annotations[rules::kNetnsAnnotation];
  pod = absl::StatusOr<netns::testing::PodNetns>(absl::UnknownError("freed"));
  absl::SleepFor(absl::Milliseconds(300));  // the kernel frees the old namespace asynchronously
  absl::StatusOr<netns::testing::PodNetns> again = sb->CreatePodNetns(std::string("rk2-") + backend_name);
  ASSERT_TRUE(again.ok()) << again.status();
  std::printf("recreated sandbox: inode %s\n", again->handle().inode() == old_inode ? "reused" : "new");
  locator.Add("uid-1", again->netns.path());
  informer.ApplyPodEvent(kube::EventType::kModified, *client.GetPod("shop", "web"));
  res = r->Reconcile("uid-1");
  EXPECT_EQ(res.outcome, Outcome::kInitialized) << res.status;
  EXPECT_NE(client.GetPod("shop", "web")->annotations[rules::kNetnsAnnotation], old_netns);
  EXPECT_TRUE(probe_passes(again->handle()));
  SetLogSink(nullptr);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReconcilerNetnsTest, ::testing::Values("iptc", "nft", "auto"));

}  // namespace
}  // namespace pnc::controller
