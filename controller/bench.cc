// Reconcile cost per pod with fake netns (FakeLocator/FakeBackend) and a no-op API client: the controller's
// own CPU cost per pod (membership, plan, ruleset, locate, apply+read-back compare, patch encode), excluding
// the kernel.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "controller/informer.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "controller/reconciler.h"
#include "netns/fake_backend.h"
#include "netns/fake_inspector.h"
#include "netns/fake_locator.h"
#include "rules/annotations.h"

namespace pnc::controller {
namespace {

class NullClient : public kube::Client {
 public:
  absl::StatusOr<kube::ObjectList<kube::Pod>> ListPods(const kube::ListOptions&) override {
    return absl::UnimplementedError("bench");
  }
  absl::Status WatchPods(const kube::WatchOptions&, const kube::WatchHandler<kube::Pod>&,
                         const std::atomic<bool>&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<kube::ObjectList<kube::Namespace>> ListNamespaces(const kube::ListOptions&) override {
    return absl::UnimplementedError("bench");
  }
  absl::Status WatchNamespaces(const kube::WatchOptions&, const kube::WatchHandler<kube::Namespace>&,
                               const std::atomic<bool>&) override {
    return absl::OkStatus();
  }
  absl::Status PatchPodStatusAnnotations(const std::string&, const std::string& name, const std::string&,
                                         const std::map<std::string, std::string>& ann,
                                         std::string* = nullptr) override {
    marks[name] = ann;
    return absl::OkStatus();
  }
  std::map<std::string, std::map<std::string, std::string>> marks;  // pod name -> last mark written
  absl::Status CreateEvent(const kube::EventRecord&) override { return absl::OkStatus(); }
};

kube::Pod MemberPod(int i, bool initialized) {
  kube::Pod p;
  p.uid = "uid-" + std::to_string(i);
  p.name = "web-" + std::to_string(i);
  p.namespace_name = "shop";
  p.node_name = "node-a";
  p.annotations[rules::kSidecarStatusAnnotation] = R"({"containers":["istio-proxy"]})";
  p.annotations["traffic.sidecar.istio.io/excludeOutboundIPRanges"] = "10.96.0.1/32,169.254.169.254/32";
  if (initialized) p.annotations[rules::kStatusAnnotation] = rules::kStatusInitialized;
  kube::Container app;
  app.name = "app";
  app.ports = {{8080, "TCP"}, {9090, "TCP"}};
  kube::Container proxy;
  proxy.name = "istio-proxy";
  proxy.run_as_user = 1337;
  p.containers = {app, proxy};
  p.pod_ips = {"10.244.1." + std::to_string(i % 250)};
  return p;
}

struct Fixture {
  explicit Fixture(bool initialized) {
    SetLogSink([](const std::string&) {});
    kube::Namespace ns;
    ns.name = "shop";
    informer.ReplaceNamespaces({ns});
    std::vector<kube::Pod> pods;
    for (int i = 0; i < kPods; ++i) {
      pods.push_back(MemberPod(i, initialized));
      locator.AddSandbox("uid-" + std::to_string(i), 1000 + i);
    }
    informer.ReplacePods(std::move(pods));
  }
  // What the watch would bring back after the marks were written.
  void SyncMarks() {
    std::vector<kube::Pod> pods;
    for (int i = 0; i < kPods; ++i) {
      kube::Pod p = MemberPod(i, false);
      for (const auto& [k, v] : client.marks[p.name]) p.annotations[k] = v;
      pods.push_back(std::move(p));
    }
    informer.ReplacePods(std::move(pods));
  }
  static constexpr int kPods = 256;
  Informer informer{Informer::Callbacks{}};
  NullClient client;
  netns::FakeLocator locator;
  netns::FakeBackend backend;
  Metrics metrics;
  netns::FakeInspector inspector;
  netns::FakeProofMarker marker;
  Reconciler reconciler{
      Reconciler::Deps{&informer, &client, &locator, &backend, &metrics, nullptr, &inspector,
                       "0b5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b", nullptr, &marker},
      rules::PlanConfig{}, "node-a"};
};

// New pod: select -> plan -> locate -> apply -> verify -> mark.
void BM_ReconcileNewPod(benchmark::State& state) {
  Fixture f(false);
  int i = 0;
  for (auto _ : state) {
    std::string uid = "uid-" + std::to_string(i++ % Fixture::kPods);
    f.reconciler.Forget(uid);  // make it new again
    ReconcileResult r = f.reconciler.Reconcile(uid);
    if (r.outcome != Outcome::kInitialized) state.SkipWithError("unexpected outcome");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReconcileNewPod);

// Resync of an initialized pod: locate + inspect + plan + read back + compare, no apply, no patch.
void BM_ReconcileVerifyInitialized(benchmark::State& state) {
  Fixture f(false);
  for (int i = 0; i < Fixture::kPods; ++i) {  // rules are in place, and the pods carry our marks
    std::string uid = "uid-" + std::to_string(i);
    f.reconciler.Reconcile(uid);
  }
  f.SyncMarks();
  int i = 0;
  for (auto _ : state) {
    std::string uid = "uid-" + std::to_string(i++ % Fixture::kPods);
    f.reconciler.RequestReverify(uid);
    ReconcileResult r = f.reconciler.Reconcile(uid);
    if (r.outcome != Outcome::kVerified) state.SkipWithError("unexpected outcome");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReconcileVerifyInitialized);

// The echo of our own patch (MODIFIED event for a done pod): must be nearly free.
void BM_ReconcileDoneEcho(benchmark::State& state) {
  Fixture f(false);
  for (int i = 0; i < Fixture::kPods; ++i) f.reconciler.Reconcile("uid-" + std::to_string(i));
  f.SyncMarks();
  int i = 0;
  for (auto _ : state) {
    ReconcileResult r = f.reconciler.Reconcile("uid-" + std::to_string(i++ % Fixture::kPods));
    if (r.outcome != Outcome::kSkipped) state.SkipWithError("unexpected outcome");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReconcileDoneEcho);

}  // namespace
}  // namespace pnc::controller

BENCHMARK_MAIN();
