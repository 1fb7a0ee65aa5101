#include "controller/reconciler.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "controller/informer.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/fake_client.h"
#include "netns/fake_backend.h"
#include "netns/fake_inspector.h"
#include "netns/fake_locator.h"
#include "rules/annotations.h"
#include "rules/mark.h"

namespace pnc::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

kube::Pod MemberPod(const std::string& uid, const std::string& name = "web-1") {
  kube::Pod p;
  p.uid = uid;
  p.name = name;
  p.namespace_name = "shop";
  p.node_name = "node-a";
  p.phase = "Pending";
  p.annotations[rules::kSidecarStatusAnnotation] = R"({"containers":["istio-proxy"]})";
  kube::Container app;
  app.name = "app";
  app.ports.push_back({8080, "TCP"});
  kube::Container proxy;
  proxy.name = "istio-proxy";
  proxy.run_as_user = 1337;
  p.containers = {app, proxy};
  return p;
}

constexpr char kBootId[] = "0b5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b";

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([](const std::string&) {});
    kube::Namespace ns;
    ns.name = "shop";
    informer_.ReplaceNamespaces({ns});
    reconciler_ = NewReconciler();
  }
  void TearDown() override { SetLogSink(nullptr); }

  std::unique_ptr<Reconciler> NewReconciler() {  // also "restarts the controller"
    return std::make_unique<Reconciler>(
        Reconciler::Deps{&informer_, &client_, &locator_, &backend_, &metrics_, FakeAddressReader(),
                         &inspector_, kBootId, nullptr, &marker_},
        plan_config_, "node-a");
  }
  // What the pod's netns holds (FakeLocator handles have no fd for the real RTM_GETADDR dump).
  AddressReader FakeAddressReader() {
    return [this](const netns::NetnsHandle& h) -> absl::StatusOr<std::vector<std::string>> {
      ++address_reads_;
      last_address_netns_ = h.inode();
      if (!address_error_.ok()) return address_error_;
      return netns_addresses_;
    };
  }
  rules::Ruleset Installed(uint64_t inode) { return backend_.At(inode); }
  // The identity the controller must bind the mark of this pod's current sandbox to.
  std::string IdOf(const std::string& uid) {
    std::optional<netns::FakeLocator::Sandbox> sb = locator_.Get(uid);
    EXPECT_TRUE(sb.has_value());
    return sb ? rules::FormatNetnsIdentity({kBootId, sb->cookie}) : "";
  }
  int EventsWithReason(const std::string& reason) {
    int n = 0;
    for (const kube::EventRecord& e : client_.events()) n += e.reason == reason;
    return n;
  }
  void Add(const kube::Pod& p) {
    client_.UpsertPod(p);
    std::optional<kube::Pod> stored = client_.GetPod(p.namespace_name, p.name);  // with its resourceVersion
    ASSERT_TRUE(stored.has_value());
    informer_.ApplyPodEvent(kube::EventType::kAdded, *std::move(stored));
  }
  // Adds `p`, gives it sandbox 101 and has the reconciler initialize it (one patch).
  void Initialize(const kube::Pod& p) {
    Add(p);
    locator_.AddSandbox(p.uid, 101);
    ASSERT_EQ(reconciler_->Reconcile(p.uid).outcome, Outcome::kInitialized);
  }
  // Another writer (the kubelet's status update) changed the pod: a new resourceVersion comes over the watch.
  void KubeletUpdate(const kube::Pod& p) {
    std::optional<kube::Pod> now = client_.GetPod(p.namespace_name, p.name);
    ASSERT_TRUE(now.has_value());
    client_.UpsertPod(*now);
    SyncFromServer(p);
  }
  // What the watch would deliver after our patch.
  void SyncFromServer(const kube::Pod& p) {
    std::optional<kube::Pod> now = client_.GetPod(p.namespace_name, p.name);
    ASSERT_TRUE(now.has_value());
    informer_.ApplyPodEvent(kube::EventType::kModified, *std::move(now));
  }
  std::string StatusOf(const kube::Pod& p) {
    std::optional<kube::Pod> now = client_.GetPod(p.namespace_name, p.name);
    if (!now) return "<no pod>";
    auto it = now->annotations.find(rules::kStatusAnnotation);
    return it == now->annotations.end() ? "<none>" : it->second;
  }

  Informer informer_{Informer::Callbacks{}};
  kube::FakeClient client_;
  netns::FakeLocator locator_;
  netns::FakeBackend backend_;
  netns::FakeInspector inspector_;
  netns::FakeProofMarker marker_;
  rules::PlanConfig plan_config_;
  Metrics metrics_;
  std::unique_ptr<Reconciler> reconciler_;
  std::vector<std::string> netns_addresses_ = {"10.244.1.5"};
  absl::Status address_error_;
  int address_reads_ = 0;
  uint64_t last_address_netns_ = 0;
};

TEST_F(ReconcilerTest, MemberIsAppliedVerifiedAndMarkedOnce) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kInitialized) << r.status;
  EXPECT_TRUE(backend_.Has(101));
  EXPECT_EQ(StatusOf(p), "initialized");
  ASSERT_EQ(client_.patches().size(), 1u);
  EXPECT_EQ(client_.patches()[0].uid, "u1");  // UID precondition
  // The same patch binds the status to the netns identity (boot id + cookie) the rules were verified in,
  // names the waiter's probe and the applied plan.
  EXPECT_EQ(client_.patches()[0].annotations.at(rules::kStatusAnnotation), "initialized");
  EXPECT_EQ(client_.patches()[0].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
  EXPECT_EQ(client_.patches()[0].annotations.at(rules::kProbeAnnotation),
            "target=192.0.2.1:15002,capture=15001");
  EXPECT_TRUE(rules::IsPlanDigest(client_.patches()[0].annotations.at(rules::kPlanAnnotation)));
  EXPECT_EQ(metrics_.event_to_applied.Count(), 1u);
  EXPECT_EQ(metrics_.applied_to_marked.Count(), 1u);
  EXPECT_EQ(metrics_.apply_duration.Count("fake"), 1u);

  SyncFromServer(p);  // our own patch comes back as MODIFIED
  const int locates = locator_.locate_calls();
  ReconcileResult echo = reconciler_->Reconcile("u1");
  EXPECT_EQ(echo.outcome, Outcome::kSkipped);
  EXPECT_EQ(echo.detail, "done (echo of our mark)");
  EXPECT_EQ(locator_.locate_calls(), locates);  // the echo says nothing about the sandbox
  EXPECT_EQ(backend_.apply_calls(), 1);
  EXPECT_EQ(client_.patches().size(), 1u);
  KubeletUpdate(p);  // any other change to the pod: the sandbox is located and its identity checked again
  ReconcileResult later = reconciler_->Reconcile("u1");
  EXPECT_EQ(later.outcome, Outcome::kSkipped);
  EXPECT_EQ(later.detail, "done");
  EXPECT_EQ(locator_.locate_calls(), locates + 1);
  EXPECT_EQ(backend_.apply_calls(), 1);
}

// Events delivered after our patch but older than it (the kubelet wrote before us; its event comes before our
// echo) still show the pod without our mark: the cache is behind, nobody changed the mark, nothing is patched
// again. After the echo, a real change of the mark is re-marked.
TEST_F(ReconcilerTest, AnEventOlderThanOurMarkIsNotTakenForATamperedMark) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  const kube::Pod before = *client_.GetPod("shop", "web-1");
  ASSERT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  kube::Pod older = before;  // the kubelet's update, committed before our patch
  older.resource_version = "older";
  informer_.ApplyPodEvent(kube::EventType::kModified, std::move(older));
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kSkipped) << r.detail;
  EXPECT_EQ(client_.patches().size(), 1u);
  SyncFromServer(p);  // the echo
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  // Now somebody really removes the mark: verified and marked again.
  kube::Pod tampered = *client_.GetPod("shop", "web-1");
  tampered.annotations.erase(rules::kStatusAnnotation);
  client_.UpsertPod(tampered);
  SyncFromServer(p);
  r = reconciler_->Reconcile("u1");
  EXPECT_NE(r.outcome, Outcome::kSkipped) << r.detail;
  EXPECT_EQ(client_.patches().size(), 2u);
  EXPECT_EQ(StatusOf(p), "initialized");
}

TEST_F(ReconcilerTest, NonMemberIsSkipped) {
  kube::Pod p = MemberPod("u1");
  p.containers.pop_back();  // no istio-proxy
  p.annotations.clear();
  Add(p);
  locator_.AddSandbox("u1", 101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(locator_.locate_calls(), 0);
  EXPECT_EQ(backend_.apply_calls(), 0);
  EXPECT_TRUE(client_.patches().empty());
}

TEST_F(ReconcilerTest, HostNetworkIsNeverTouched) {
  kube::Pod p = MemberPod("u1");
  p.host_network = true;
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kSkipped);
  EXPECT_EQ(r.detail, "hostNetwork");
  EXPECT_EQ(locator_.locate_calls(), 0);
  EXPECT_EQ(backend_.apply_calls(), 0);
}

TEST_F(ReconcilerTest, PodOfAnotherNodeIsNeverTouched) {
  for (const char* node : {"node-b", ""}) {  // e.g. a server that ignored the field selector; unscheduled
    kube::Pod p = MemberPod(absl::StrCat("u-", node));
    p.node_name = node;
    Add(p);
    locator_.AddSandbox(p.uid, 101);
    ReconcileResult r = reconciler_->Reconcile(p.uid);
    EXPECT_EQ(r.outcome, Outcome::kSkipped) << node;
    EXPECT_EQ(r.detail, "other node");
  }
  EXPECT_EQ(locator_.locate_calls(), 0);
  EXPECT_EQ(backend_.apply_calls(), 0);
}

TEST_F(ReconcilerTest, TerminatingPodIsSkipped) {
  kube::Pod p = MemberPod("u1");
  p.deleting = true;
  Add(p);
  locator_.AddSandbox("u1", 101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(backend_.apply_calls(), 0);
}

TEST_F(ReconcilerTest, BadAnnotationGivesEventAndErrorAnnotationOnceWithoutRetry) {
  kube::Pod p = MemberPod("u1");
  p.annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = "70000";
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kPermanentError);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(locator_.locate_calls(), 0);
  EXPECT_EQ(address_reads_, 0);  // validated by the early plan, without the sandbox's addresses
  EXPECT_EQ(backend_.apply_calls(), 0);
  ASSERT_EQ(client_.events().size(), 1u);
  EXPECT_EQ(client_.events()[0].pod_uid, "u1");
  EXPECT_EQ(client_.events()[0].type, "Warning");
  EXPECT_EQ(client_.events()[0].host, "node-a");
  EXPECT_THAT(client_.events()[0].message, HasSubstr("excludeInboundPorts"));
  EXPECT_THAT(StatusOf(p), StartsWith("error: "));
  EXPECT_THAT(StatusOf(p), HasSubstr("70000"));
  EXPECT_EQ(metrics_.errors.Value("plan_invalid"), 1);

  // The patch comes back through the watch; a restarted controller must not report it again.
  SyncFromServer(p);
  reconciler_ = NewReconciler();
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kPermanentError);
  EXPECT_EQ(client_.events().size(), 1u);
  EXPECT_EQ(client_.patches().size(), 1u);

  // The user fixes the annotation: the pod is processed normally.
  kube::Pod fixed = *client_.GetPod("shop", "web-1");
  fixed.annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = "7000";
  Add(fixed);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(StatusOf(p), "initialized");
}

TEST_F(ReconcilerTest, BadAnnotationPatchFailureRetriesWithoutRepeatingTheEvent) {
  kube::Pod p = MemberPod("u1");
  p.annotations["traffic.sidecar.istio.io/includeOutboundIPRanges"] = "10.0.0.0";  // no prefix length
  Add(p);
  client_.FailNextPatches(2, absl::UnavailableError("HTTP 503"));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kPermanentError);
  EXPECT_EQ(client_.events().size(), 1u);
  EXPECT_THAT(StatusOf(p), StartsWith("error: "));
}

TEST_F(ReconcilerTest, AnnotationBrokenAfterInitializationIsNotFlippedToError) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  kube::Pod edited = *client_.GetPod("shop", "web-1");
  edited.annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = "http";
  Add(edited);
  reconciler_ = NewReconciler();  // restart
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kPermanentError);
  EXPECT_EQ(StatusOf(p), "initialized");
  EXPECT_TRUE(client_.events().empty());
  EXPECT_TRUE(backend_.Has(101));
}

TEST_F(ReconcilerTest, SandboxNotYetRetriesThenSucceeds) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  for (int i = 0; i < 3; ++i) {
    ReconcileResult r = reconciler_->Reconcile("u1");
    EXPECT_EQ(r.outcome, Outcome::kRetry);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kNotFound);
  }
  locator_.SetError("u1", absl::UnavailableError("runtime restarting"));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  locator_.SetError("u1", absl::OkStatus());
  EXPECT_EQ(StatusOf(p), "<none>");
  EXPECT_EQ(metrics_.errors.Value("locate_not_found"), 3);
  locator_.AddSandbox("u1", 7);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(StatusOf(p), "initialized");
}

TEST_F(ReconcilerTest, StuckPodGetsOneEvent) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  ReconcileResult r = reconciler_->Reconcile("u1");
  ASSERT_EQ(r.outcome, Outcome::kRetry);
  reconciler_->ReportStuck("u1", r.status, 8);
  reconciler_->ReportStuck("u1", r.status, 9);
  ASSERT_EQ(client_.events().size(), 1u);
  EXPECT_EQ(client_.events()[0].reason, "RedirectionDelayed");
  EXPECT_THAT(client_.events()[0].message, HasSubstr("after 8 attempts"));
  EXPECT_EQ(StatusOf(p), "<none>");  // an Event, never an annotation
}

TEST_F(ReconcilerTest, VerifyFailureNeverMarks) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  backend_.CorruptReadBack(true);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("verification failed"));
  EXPECT_EQ(StatusOf(p), "<none>");
  EXPECT_TRUE(client_.patches().empty());
  EXPECT_EQ(metrics_.errors.Value("verify_failed"), 1);

  backend_.FailNextApplies(1, absl::InternalError("iptc commit failed"));
  backend_.CorruptReadBack(false);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  EXPECT_EQ(metrics_.errors.Value("apply_failed"), 1);
  EXPECT_TRUE(client_.patches().empty());
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
}

TEST_F(ReconcilerTest, AlreadyInitializedIsVerifiedAndNotRemarked) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  SyncFromServer(p);
  reconciler_ = NewReconciler();  // controller restart
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kVerified);
  EXPECT_EQ(backend_.apply_calls(), 1);
  EXPECT_EQ(client_.patches().size(), 1u);
}

TEST_F(ReconcilerTest, WipedRulesAreReappliedButNotRemarked) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  SyncFromServer(p);
  backend_.Wipe(101);
  reconciler_ = NewReconciler();
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kReapplied);
  EXPECT_TRUE(backend_.Has(101));
  EXPECT_EQ(backend_.apply_calls(), 2);
  EXPECT_EQ(client_.patches().size(), 1u);

  // Resync in the same process: a reverify request reads back again.
  backend_.Wipe(101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);  // done, no reverify requested
  reconciler_->RequestReverify("u1");
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kReapplied);
  EXPECT_TRUE(backend_.Has(101));
}

TEST_F(ReconcilerTest, PodDeletedMidFlightIsDropped) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  client_.SetBeforePatchHook([&] { client_.DeletePod("shop", "web-1"); });
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kGone);
  EXPECT_TRUE(client_.patches().empty());
}

TEST_F(ReconcilerTest, DeletionDuringAnInFlightReconcileLeavesNoStateAfterTheNextPass) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  // The delete event is handled (cache + Forget) while the worker is between apply and mark; the patch
  // still succeeds (the API server has not removed the pod yet), so the in-flight pass records state.
  client_.SetBeforePatchHook([&] {
    informer_.ApplyPodEvent(kube::EventType::kDeleted, kube::Pod(p));
    reconciler_->Forget("u1");
  });
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  client_.SetBeforePatchHook(nullptr);
  EXPECT_EQ(reconciler_->NumTracked(), 1u);
  // The pass the controller enqueues on deletion drops it.
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kGone);
  EXPECT_EQ(reconciler_->NumTracked(), 0u);
}

TEST_F(ReconcilerTest, StuckReportForAVanishedPodCreatesNoState) {
  reconciler_->ReportStuck("never-seen", absl::NotFoundError("no sandbox"), 8);
  EXPECT_EQ(reconciler_->NumTracked(), 0u);
  EXPECT_TRUE(client_.events().empty());
}

TEST_F(ReconcilerTest, RecreatedSandboxOfADonePodIsReappliedOnTheNextEvent) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  SyncFromServer(p);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);  // same netns: nothing to do
  EXPECT_EQ(backend_.apply_calls(), 1);

  // The kubelet recreated the sandbox (same pod UID, new empty netns that gets the OLD inode number back, as
  // the kernel does); the pod still says `initialized`, bound to the old netns, so the new sandbox's waiter
  // keeps waiting until the mark is rebound.
  const std::string old_id = IdOf("u1");
  netns::FakeLocator::Sandbox again = locator_.RecreateSandbox("u1");
  ASSERT_EQ(again.inode, 101u);  // reused
  // The echo of our own mark says nothing about the sandbox (not re-located); the kubelet's status update
  // for the new sandbox is the next pod event (not a resync).
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  KubeletUpdate(p);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kInitialized) << r.detail;
  EXPECT_EQ(backend_.apply_calls(), 2);
  ASSERT_EQ(client_.patches().size(), 2u);
  EXPECT_EQ(client_.patches()[1].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
  EXPECT_NE(IdOf("u1"), old_id);
  EXPECT_EQ(metrics_.foreign_marks.Value("other_netns"), 0);  // our own earlier mark: not foreign
  EXPECT_EQ(EventsWithReason("UnverifiedRedirectMark"), 0);
  EXPECT_EQ(client_.patches()[1].annotations.at(rules::kStatusAnnotation), "initialized");
  SyncFromServer(p);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);  // done again, in the new netns
  EXPECT_EQ(backend_.apply_calls(), 2);
  // A controller restart now finds the mark bound to the current netns: verified, no churn.
  reconciler_ = NewReconciler();
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kVerified);
  EXPECT_EQ(backend_.apply_calls(), 2);
  EXPECT_EQ(client_.patches().size(), 2u);

  // A failed re-locate of a done pod is retried (with the queue's backoff), never dropped.
  SyncFromServer(p);
  locator_.SetError("u1", absl::UnavailableError("runtime restarting"));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  locator_.SetError("u1", absl::OkStatus());
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(backend_.apply_calls(), 2);
}

TEST_F(ReconcilerTest, ForgedInitializedAtCreationIsAppliedVerifiedAndBound) {
  // The pod's author wrote our status into the pod spec; no rules exist and no binding can match (the netns
  // did not exist when the pod was created).
  kube::Pod p = MemberPod("u1");
  p.annotations[rules::kStatusAnnotation] = rules::kStatusInitialized;
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kInitialized) << r.status;
  EXPECT_TRUE(backend_.Has(101));
  EXPECT_EQ(backend_.apply_calls(), 1);
  ASSERT_EQ(client_.patches().size(), 1u);
  EXPECT_EQ(client_.patches()[0].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
  SyncFromServer(p);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(client_.patches().size(), 1u);
}

TEST_F(ReconcilerTest, ForgedBindingToAnotherNetnsIsNotTrusted) {
  kube::Pod p = MemberPod("u1");
  p.annotations[rules::kStatusAnnotation] = rules::kStatusInitialized;
  p.annotations[rules::kNetnsAnnotation] = "4026531840";  // a guess; not this pod's netns
  Add(p);
  locator_.AddSandbox("u1", 101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_TRUE(backend_.Has(101));
  ASSERT_EQ(client_.patches().size(), 1u);
  EXPECT_EQ(client_.patches()[0].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
  EXPECT_EQ(metrics_.foreign_marks.Value("unverified"), 1);
  EXPECT_EQ(EventsWithReason("UnverifiedRedirectMark"), 1);
}

TEST_F(ReconcilerTest, UnboundMarkWithRulesPresentIsBoundWithoutReapplying) {
  // Upgrade from a controller that did not write the binding: rules are there, only the binding is added.
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  kube::Pod old = *client_.GetPod("shop", "web-1");
  old.annotations.erase(rules::kNetnsAnnotation);
  Add(old);
  reconciler_ = NewReconciler();
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(backend_.apply_calls(), 1);  // read back equal: no second apply
  ASSERT_EQ(client_.patches().size(), 2u);
  EXPECT_EQ(client_.patches()[1].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
}

TEST_F(ReconcilerTest, ForgedInitializedWithBadAnnotationGetsTheError) {
  kube::Pod p = MemberPod("u1");
  p.annotations[rules::kStatusAnnotation] = rules::kStatusInitialized;
  p.annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = "http";
  Add(p);
  locator_.AddSandbox("u1", 101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kPermanentError);
  EXPECT_THAT(StatusOf(p), StartsWith("error: "));
  EXPECT_EQ(backend_.apply_calls(), 0);
}

TEST_F(ReconcilerTest, RecreatedSandboxWithAnnotationBrokenSinceGetsTheError) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  kube::Pod edited = *client_.GetPod("shop", "web-1");
  edited.annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = "http";
  Add(edited);
  locator_.RecreateSandbox("u1");  // same inode, new cookie, empty
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kPermanentError);
  EXPECT_THAT(StatusOf(p), StartsWith("error: "));  // the new sandbox's waiter fails with the reason
  EXPECT_EQ(backend_.apply_calls(), 1);
}

// What a tenant who predicts the next netns cookie can write at pod creation: our exact mark format, bound to
// the right identity, `probe: none`, any plan digest. No rules of ours are there, so it is not ours.
TEST_F(ReconcilerTest, ForgedMarkWithPredictedIdentityIsReplacedByAVerifiedOne) {
  for (const bool valid : {true, false}) {
    SCOPED_TRACE(valid ? "valid annotations" : "invalid annotation");
    const std::string uid = valid ? "u1" : "u2";
    kube::Pod p = MemberPod(uid, valid ? "web-1" : "web-2");
    locator_.AddSandbox(uid, valid ? 101 : 102);
    p.annotations[rules::kStatusAnnotation] = rules::kStatusInitialized;
    p.annotations[rules::kNetnsAnnotation] = IdOf(uid);  // predicted exactly
    p.annotations[rules::kProbeAnnotation] = "none";
    p.annotations[rules::kPlanAnnotation] = "0123456789abcdef";
    if (!valid) p.annotations["traffic.sidecar.istio.io/includeOutboundIPRanges"] = "10.0.0.0/33";
    Add(p);
    ReconcileResult r = reconciler_->Reconcile(uid);
    std::optional<kube::Pod> now = client_.GetPod("shop", p.name);
    if (valid) {
      EXPECT_EQ(r.outcome, Outcome::kInitialized) << r.status;
      EXPECT_EQ(now->annotations[rules::kProbeAnnotation], "target=192.0.2.1:15002,capture=15001");
      EXPECT_NE(now->annotations[rules::kPlanAnnotation], "0123456789abcdef");
    } else {
      EXPECT_EQ(r.outcome, Outcome::kPermanentError) << r.status;
      EXPECT_THAT(StatusOf(p), StartsWith("error: "));
    }
  }
  EXPECT_EQ(backend_.apply_calls(), 1);
  EXPECT_EQ(metrics_.foreign_marks.Value("unverified"), 2);
  EXPECT_EQ(EventsWithReason("UnverifiedRedirectMark"), 2);
}

// Istio reads the traffic annotations at pod start only: an edit on a running pod changes nothing live, and
// drift is repaired with the plan that was applied, also after a controller restart.
TEST_F(ReconcilerTest, AnnotationEditedOnARunningPodDoesNotRewriteItsLiveRules) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  const rules::Ruleset at_start = Installed(101);
  kube::Pod edited = *client_.GetPod("shop", "web-1");
  edited.annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] = "5432";
  Add(edited);
  reconciler_->RequestReverify("u1");
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kVerified);
  EXPECT_EQ(Installed(101), at_start);
  backend_.Wipe(101);  // drift
  reconciler_->RequestReverify("u1");
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kReapplied);
  EXPECT_EQ(Installed(101), at_start);  // the plan applied at start, not the edited one
  EXPECT_EQ(client_.patches().size(), 1u);

  // After a restart the mark's plan digest says the live rules are the ones applied at start.
  reconciler_ = NewReconciler();
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kVerified);
  EXPECT_EQ(Installed(101), at_start);
  EXPECT_EQ(client_.patches().size(), 1u);
  EXPECT_EQ(metrics_.foreign_marks.Value("unverified"), 0);
}

TEST_F(ReconcilerTest, AMarkChangedBySomeoneElseIsRewritten) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  kube::Pod tampered = *client_.GetPod("shop", "web-1");
  tampered.annotations[rules::kProbeAnnotation] = "none";
  Add(tampered);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(client_.GetPod("shop", "web-1")->annotations[rules::kProbeAnnotation],
            "target=192.0.2.1:15002,capture=15001");
  EXPECT_EQ(backend_.apply_calls(), 1);
}

TEST_F(ReconcilerTest, NoRouteForAProbeSaysNone) {
  inspector_.SetDefaultRoute(std::nullopt);
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  marker_.FailNext(absl::UnavailableError("netlink busy"));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);  // never `none` without the marker
  EXPECT_TRUE(client_.patches().empty());
  ASSERT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  std::optional<kube::Pod> now = client_.GetPod("shop", "web-1");
  EXPECT_EQ(now->annotations[rules::kProbeAnnotation], "none");
  EXPECT_EQ(marker_.At(101, locator_.Get("u1")->cookie),
            *rules::ProofMarkerValue(now->annotations[rules::kPlanAnnotation]));
}

TEST_F(ReconcilerTest, NoMarkerWhenAProbeExists) {
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  EXPECT_EQ(marker_.At(101, locator_.Get("u1")->cookie), 0u);
}

TEST_F(ReconcilerTest, ReadMarkClassifies) {
  rules::NetnsIdentity now{kBootId, 42};
  std::map<std::string, std::string> a;
  EXPECT_EQ(ReadMark(a, now).state, MarkState::kNone);
  a[rules::kStatusAnnotation] = "error: x";
  EXPECT_EQ(ReadMark(a, now).state, MarkState::kNone);
  a[rules::kStatusAnnotation] = "initialized";
  EXPECT_EQ(ReadMark(a, now).state, MarkState::kUnbound);
  a[rules::kNetnsAnnotation] = "4026532281";
  EXPECT_EQ(ReadMark(a, now).state, MarkState::kUnbound);
  a[rules::kNetnsAnnotation] = rules::FormatNetnsIdentity({kBootId, 43});
  EXPECT_EQ(ReadMark(a, now).state, MarkState::kOtherNetns);
  a[rules::kNetnsAnnotation] = rules::FormatNetnsIdentity(now);
  a[rules::kPlanAnnotation] = "not-a-digest";
  MarkView v = ReadMark(a, now);
  EXPECT_EQ(v.state, MarkState::kThisNetns);
  EXPECT_EQ(v.plan_digest, "");
}

TEST_F(ReconcilerTest, PodWithoutPublishedIpsIsPlannedWithTheNetnsAddresses) {
  // Dual-stack pod (mesh-wide ISTIO_DUAL_STACK) reconciled before status.podIPs is published: IPv6 rules
  // too, not IPv4 only.
  plan_config_.dual_stack = true;
  reconciler_ = NewReconciler();
  netns_addresses_ = {"10.244.1.5", "fd00:10:244::5", "fd00:10:244::6"};
  kube::Pod p = MemberPod("u1");
  ASSERT_TRUE(p.pod_ips.empty());
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  ASSERT_EQ(r.outcome, Outcome::kInitialized) << r.status;
  EXPECT_EQ(address_reads_, 1);
  EXPECT_EQ(last_address_netns_, 101u);
  rules::Ruleset got = Installed(101);
  EXPECT_NE(got.Find(rules::Family::kIPv4), nullptr);
  EXPECT_NE(got.Find(rules::Family::kIPv6), nullptr);

  // IPv6-only.
  netns_addresses_ = {"fd00:10:244::7"};
  kube::Pod p2 = MemberPod("u2", "web-2");
  Add(p2);
  locator_.AddSandbox("u2", 102);
  ASSERT_EQ(reconciler_->Reconcile("u2").outcome, Outcome::kInitialized);
  EXPECT_NE(Installed(102).Find(rules::Family::kIPv4), nullptr);  // Istio programs IPv4 always
  EXPECT_NE(Installed(102).Find(rules::Family::kIPv6), nullptr);
}

TEST_F(ReconcilerTest, PublishedIpsWithAnotherFamilyReplanOnTheNextEvent) {
  plan_config_.dual_stack = true;
  reconciler_ = NewReconciler();
  // The netns had only its IPv4 address when it was read; status.podIPs later shows both families.
  netns_addresses_ = {"10.244.1.5"};
  kube::Pod p = MemberPod("u1");
  ASSERT_NO_FATAL_FAILURE(Initialize(p));
  EXPECT_EQ(Installed(101).Find(rules::Family::kIPv6), nullptr);
  SyncFromServer(p);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);

  kube::Pod published = *client_.GetPod("shop", "web-1");
  published.pod_ips = {"10.244.1.5"};  // same family set: no churn
  Add(published);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(backend_.apply_calls(), 1);

  published.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
  Add(published);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_NE(Installed(101).Find(rules::Family::kIPv6), nullptr);
  ASSERT_EQ(client_.patches().size(), 2u);  // same netns, but a new plan digest in the mark
  EXPECT_EQ(client_.patches()[1].annotations.at(rules::kNetnsAnnotation), IdOf("u1"));
  SyncFromServer(published);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  EXPECT_EQ(backend_.apply_calls(), 2);
}

TEST_F(ReconcilerTest, PublishedIpsWinAndTheNetnsIsNotAsked) {
  kube::Pod p = MemberPod("u1");
  p.pod_ips = {"10.244.1.5"};
  netns_addresses_ = {"10.244.1.5", "fd00:10:244::5"};
  Add(p);
  locator_.AddSandbox("u1", 101);
  ASSERT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(address_reads_, 0);
  EXPECT_EQ(Installed(101).Find(rules::Family::kIPv6), nullptr);
}

TEST_F(ReconcilerTest, NetnsWithoutAnAddressYetRetriesInsteadOfGuessing) {
  netns_addresses_ = {};  // CNI has not configured the sandbox yet
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  ReconcileResult r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status.message(), HasSubstr("no global address yet"));
  EXPECT_EQ(backend_.apply_calls(), 0);
  EXPECT_TRUE(client_.patches().empty());

  address_error_ = absl::PermissionDeniedError("setns: operation not permitted");
  r = reconciler_->Reconcile("u1");
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(backend_.apply_calls(), 0);

  address_error_ = absl::OkStatus();
  netns_addresses_ = {"fd00:10:244::5"};
  ASSERT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_NE(Installed(101).Find(rules::Family::kIPv6), nullptr);
}

TEST_F(ReconcilerTest, RecreatedPodWithSameNameIsNotMarkedByTheOldUid) {
  kube::Pod old_pod = MemberPod("u-old");
  Add(old_pod);
  locator_.AddSandbox("u-old", 101);
  locator_.AddSandbox("u-new", 202);
  kube::Pod new_pod = MemberPod("u-new");  // same namespace/name
  client_.SetBeforePatchHook([&] { client_.UpsertPod(new_pod); });
  EXPECT_EQ(reconciler_->Reconcile("u-old").outcome, Outcome::kGone);  // 409 on the UID precondition
  EXPECT_TRUE(client_.patches().empty());
  EXPECT_EQ(StatusOf(new_pod), "<none>");  // the new pod was NOT marked on the strength of the old netns

  client_.SetBeforePatchHook(nullptr);
  informer_.ApplyPodEvent(kube::EventType::kDeleted, kube::Pod(old_pod));
  reconciler_->Forget("u-old");
  informer_.ApplyPodEvent(kube::EventType::kAdded, kube::Pod(new_pod));
  EXPECT_EQ(reconciler_->Reconcile("u-new").outcome, Outcome::kInitialized);
  EXPECT_TRUE(backend_.Has(202));
  EXPECT_EQ(StatusOf(new_pod), "initialized");
  EXPECT_EQ(reconciler_->Reconcile("u-old").outcome, Outcome::kGone);  // not in the cache any more
}

TEST_F(ReconcilerTest, PatchServerErrorRetriesAndReappliesIdempotently) {
  kube::Pod p = MemberPod("u1");
  Add(p);
  locator_.AddSandbox("u1", 101);
  client_.FailNextPatches(1, absl::UnavailableError("HTTP 503"));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kRetry);
  EXPECT_TRUE(backend_.Has(101));  // applied; the crash-between-apply-and-mark case
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
  EXPECT_EQ(backend_.apply_calls(), 2);
  EXPECT_EQ(metrics_.errors.Value("patch_failed"), 1);
}

TEST_F(ReconcilerTest, NamespaceOptInReachesMembership) {
  kube::Pod p = MemberPod("u1");
  p.containers.pop_back();  // not Istio-injected: only the 2018 namespace opt-in can make it a member
  p.annotations.clear();
  Add(p);
  locator_.AddSandbox("u1", 101);
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kSkipped);
  kube::Namespace ns;
  ns.name = "shop";
  ns.annotations[rules::kLegacyInitializeAnnotation] = "true";
  informer_.ApplyNamespaceEvent(kube::EventType::kModified, std::move(ns));
  EXPECT_EQ(reconciler_->Reconcile("u1").outcome, Outcome::kInitialized);
}

TEST_F(ReconcilerTest, NamespaceCacheNotSyncedIsTransient) {
  Informer fresh{Informer::Callbacks{}};
  Reconciler r(Reconciler::Deps{&fresh, &client_, &locator_, &backend_, &metrics_, FakeAddressReader()},
               rules::PlanConfig{}, "node-a");
  fresh.ApplyPodEvent(kube::EventType::kAdded, MemberPod("u1"));
  EXPECT_EQ(r.Reconcile("u1").outcome, Outcome::kRetry);
}

}  // namespace
}  // namespace pnc::controller
