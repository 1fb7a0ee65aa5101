// Per-pod cost of programming a pod's network namespace, per backend, side by side in one run:
//   setns + Apply + ReadBack + compare (ApplyAndVerify) into a FRESH pod netns each iteration,
// on the planner's default Istio pod (IPv4, REDIRECT, 20 nat rules) and on the dual-stack TPROXY+DNS pod.
// Namespace creation and teardown happen outside the timed region (manual timing), in one of two schedules:
//   ApplyVerify/<backend>/<pod>             each pod is created right before its timed call and destroyed
//                                           right after it, so the kernel's asynchronous work for the
//                                           previous pod (netns cleanup, RCU callbacks) and for this pod's
//                                           creation runs during the timed call, as in a burst of pod starts
//                                           and deletions;
//   ApplyVerify/<backend>/<pod>/precreated  all pods are created first, then 1 s of idle, then each is timed;
//                                           all are destroyed after the last one: the call alone.
// --settle_us and --destroy_each vary the two schedules (which asynchronous kernel work overlaps the call).
// Reported per benchmark: median_us and p99_us over all iterations (counters), plus Google Benchmark's mean.
//
//   bazel run -c opt //netns:bench            (as root; or a user with user namespaces + subordinate ids)
//   bazel run -c opt //netns:bench -- --pods=1000 --benchmark_filter=iptc
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "netns/backend.h"
#include "netns/backends.h"
#include "netns/executor.h"
#include "netns/routing/routing.h"
#include "netns/testing/sandbox.h"
#include "rules/inputs.h"
#include "rules/plan.h"

ABSL_FLAG(int, pods, 500, "fresh sandbox pod namespaces per backend benchmark (iterations)");
ABSL_FLAG(
    int, settle_us, 0,
    "ApplyVerify/<backend>/<pod>: idle this long between creating a pod and timing it (lets the kernel's "
    "asynchronous work for the new pod finish first)");
ABSL_FLAG(
    bool, destroy_each, false,
    "ApplyVerify/.../precreated: destroy each pod right after its timed call instead of after the last one "
    "(the kernel's asynchronous teardown then overlaps the next pod's timed call)");

namespace pnc::netns {
namespace {

testing::Sandbox* g_sandbox = nullptr;

// The planner's default injected pod (istio-proxy container, sidecar.istio.io/status), optionally dual-stack
// TPROXY with DNS capture.
rules::Ruleset PlannedRuleset(bool big) {
  rules::PodFacts pod;
  pod.uid = "00000000-0000-0000-0000-000000000001";
  pod.name = "bench";
  pod.namespace_name = "default";
  pod.annotations["sidecar.istio.io/status"] = R"({"containers":["istio-proxy"]})";
  pod.containers.push_back(rules::ContainerFacts{.name = "app"});
  pod.containers.push_back(rules::ContainerFacts{.name = "istio-proxy"});
  pod.pod_ips = {"10.244.1.5"};
  rules::PlanConfig config;
  if (big) {
    pod.annotations["sidecar.istio.io/interceptionMode"] = "TPROXY";
    pod.pod_ips.push_back("fd00:10:244::5");
    config.capture_dns = true;
    config.dual_stack = true;  // Istio programs IPv6 only with its dual-stack setting (since 066546f)
  }
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(pod, config);
  if (!plan.ok()) {
    std::fprintf(stderr, "BuildPlan: %s\n", plan.status().ToString().c_str());
    std::exit(1);
  }
  return rules::BuildRuleset(*plan);
}

int CountRules(const rules::Ruleset& rs) {
  int n = 0;
  for (const auto& f : rs.families)
    for (const auto& t : f.tables)
      for (const auto& c : t.chains) n += static_cast<int>(c.rules.size());
  return n;
}

void Report(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["median_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["pods"] = static_cast<double>(us.size());
}

// Times fn as this iteration's manual time and records it (microseconds) in `us`. On failure skips the
// benchmark with fn's error and returns false.
bool TimeIteration(benchmark::State& state, std::vector<double>& us, absl::FunctionRef<absl::Status()> fn) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status s = fn();
  const auto t1 = std::chrono::steady_clock::now();
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return false;
  }
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  state.SetIterationTime(seconds);
  us.push_back(seconds * 1e6);
  return true;
}

// `precreate`: the schedule of the file comment.
void BM_ApplyVerify(benchmark::State& state, const std::string& backend_name, bool big, bool precreate) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = NewBackendByName(backend_name);
  if (!backend.ok()) {
    state.SkipWithError(backend.status().ToString().c_str());
    return;
  }
  const rules::Ruleset rs = PlannedRuleset(big);
  state.counters["rules"] = CountRules(rs);
  static int counter = 0;
  std::vector<double> us;
  std::vector<std::optional<testing::PodNetns>> pods;
  if (precreate) {
    for (int64_t i = 0; i < state.max_iterations; ++i) {
      absl::StatusOr<testing::PodNetns> pod = g_sandbox->CreatePodNetns(absl::StrCat("b", ++counter));
      if (!pod.ok()) {
        state.SkipWithError(pod.status().ToString().c_str());
        return;
      }
      pods.emplace_back(*std::move(pod));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  size_t next = 0;
  for (auto _ : state) {
    std::optional<testing::PodNetns> fresh;
    const testing::PodNetns* pod;
    if (precreate) {
      pod = &*pods[next++];
    } else {
      absl::StatusOr<testing::PodNetns> p = g_sandbox->CreatePodNetns(absl::StrCat("b", ++counter));
      if (!p.ok()) {
        state.SkipWithError(p.status().ToString().c_str());
        break;
      }
      fresh.emplace(*std::move(p));
      pod = &*fresh;
      if (const int settle = absl::GetFlag(FLAGS_settle_us); settle > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(settle));
    }
    if (!TimeIteration(state, us, [&] { return ApplyAndVerify(**backend, pod->handle(), rs); })) break;
    if (precreate && absl::GetFlag(FLAGS_destroy_each)) pods[next - 1].reset();
  }
  Report(state, us);
}

// Where the time of one iptc ApplyAndVerify goes (fresh pod each iteration): Apply alone, ReadBack alone, and
// the policy-route read that both Apply (sync) and ReadBack perform.
void BM_IptcBreakdown(benchmark::State& state) {
  std::unique_ptr<Backend> backend = *NewBackendByName("iptc");
  const rules::Ruleset rs = PlannedRuleset(false);
  static int counter = 0;
  std::vector<double> apply_us, read_us, routes_us, total;
  for (auto _ : state) {
    absl::StatusOr<testing::PodNetns> pod = g_sandbox->CreatePodNetns(absl::StrCat("bd", ++counter));
    if (!pod.ok()) {
      state.SkipWithError(pod.status().ToString().c_str());
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = backend->Apply(pod->handle(), rs);
    const auto t1 = std::chrono::steady_clock::now();
    absl::StatusOr<rules::Ruleset> got = backend->ReadBack(pod->handle());
    const auto t2 = std::chrono::steady_clock::now();
    absl::Status r = RunInNetns(pod->handle(), [] { return ReadPolicyRoutes().status(); });
    const auto t3 = std::chrono::steady_clock::now();
    if (!s.ok() || !got.ok() || !r.ok() || !(*got == rs)) {
      state.SkipWithError("breakdown run failed");
      break;
    }
    auto us = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count() * 1e6; };
    apply_us.push_back(us(t0, t1));
    read_us.push_back(us(t1, t2));
    routes_us.push_back(us(t2, t3));
    state.SetIterationTime(std::chrono::duration<double>(t3 - t0).count());
  }
  auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  state.counters["apply_median_us"] = median(apply_us);
  state.counters["readback_median_us"] = median(read_us);
  state.counters["route_read_median_us"] = median(routes_us);
}

// A node starting 110 pods at once: 110 fresh pods (created beforehand, not timed) applied + verified by
// `threads` concurrent callers, as the controller's workers would. Reports the wall time of the whole burst.
void BM_Burst110(benchmark::State& state, const std::string& backend_name, int threads) {
  constexpr int kPods = 110;
  absl::StatusOr<std::unique_ptr<Backend>> backend = NewBackendByName(backend_name);
  if (!backend.ok()) {
    state.SkipWithError(backend.status().ToString().c_str());
    return;
  }
  const rules::Ruleset rs = PlannedRuleset(false);
  static int counter = 0;
  std::vector<double> ms;
  for (auto _ : state) {
    std::vector<testing::PodNetns> pods;
    for (int i = 0; i < kPods; ++i) {
      absl::StatusOr<testing::PodNetns> pod = g_sandbox->CreatePodNetns(absl::StrCat("burst", ++counter));
      if (!pod.ok()) {
        state.SkipWithError(pod.status().ToString().c_str());
        return;
      }
      pods.push_back(*std::move(pod));
    }
    std::atomic<int> next{0}, failures{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < kPods;) {
          if (!ApplyAndVerify(**backend, pods[i].handle(), rs).ok()) ++failures;
        }
      });
    }
    for (auto& w : workers) w.join();
    const auto t1 = std::chrono::steady_clock::now();
    if (failures > 0) {
      state.SkipWithError("apply failed in burst");
      return;
    }
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(seconds);
    ms.push_back(seconds * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) state.counters["burst_median_ms"] = ms[ms.size() / 2];
}

// The executor alone: hand-off to a worker + setns there and back, empty fn.
void BM_RunInNetnsEmpty(benchmark::State& state) {
  absl::StatusOr<testing::OwnedNetns> ns = g_sandbox->CreateBareNetns("bench-exec");
  if (!ns.ok()) {
    state.SkipWithError(ns.status().ToString().c_str());
    return;
  }
  std::vector<double> us;
  for (auto _ : state) {
    if (!TimeIteration(state, us,
                       [&] { return RunInNetns(ns->handle(), [] { return absl::OkStatus(); }); })) {
      break;
    }
  }
  Report(state, us);
}

void RegisterAll(int pods) {
  for (bool big : {false, true}) {
    for (const char* name : {"iptc", "nft", "restore"}) {
      benchmark::RegisterBenchmark(
          absl::StrCat("ApplyVerify/", name, big ? "/dualstack_tproxy_dns" : "/default").c_str(),
          [name = std::string(name), big](benchmark::State& s) { BM_ApplyVerify(s, name, big, false); })
          ->Iterations(pods)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(
          absl::StrCat("ApplyVerify/", name, big ? "/dualstack_tproxy_dns" : "/default", "/precreated")
              .c_str(),
          [name = std::string(name), big](benchmark::State& s) { BM_ApplyVerify(s, name, big, true); })
          ->Iterations(pods)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (const char* name : {"iptc", "nft", "restore"}) {
    benchmark::RegisterBenchmark(absl::StrCat("Burst110/", name, "/threads:4").c_str(),
                                 [name = std::string(name)](benchmark::State& s) { BM_Burst110(s, name, 4); })
        ->Iterations(5)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("Breakdown/iptc/default", BM_IptcBreakdown)
      ->Iterations(pods)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("RunInNetns/empty", BM_RunInNetnsEmpty)
      ->Iterations(20000)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace pnc::netns

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::printf(
          "Usage: bench [--pods=N] [--benchmark_filter=REGEX] [--benchmark_repetitions=N] "
          "[--benchmark_*...]\n"
          "Per-pod setns + apply + read-back verify for the iptc, nft and restore backends, each in N "
          "(default\n"
          "500) fresh sandbox pod namespaces (user+net+mount namespaces; needs root or user namespaces with\n"
          "subordinate ids). Reports median_us and p99_us per backend; namespace creation is not timed.\n"
          "ApplyVerify/<backend>/<pod> creates each pod right before its timed call and destroys it right\n"
          "after; .../precreated creates all pods first and destroys them after the last timed call.\n"
          "--settle_us=N idles N us between creating and timing a pod; --destroy_each destroys each\n"
          "precreated pod right after its timed call.\n");
      return 0;
    }
  }
  // Enter the sandbox first, while the process is single-threaded.
  absl::StatusOr<pnc::netns::testing::Sandbox*> sandbox = pnc::netns::testing::Sandbox::Get();
  benchmark::Initialize(&argc, argv);  // consumes --benchmark_* flags
  absl::SetProgramUsageMessage(
      "Per-pod setns + apply + read-back verify for the iptc, nft and restore backends in fresh sandbox "
      "namespaces.\nFlags: --pods=N plus Google Benchmark's --benchmark_* flags.");
  absl::ParseCommandLine(argc, argv);
  if (!sandbox.ok()) {
    std::fprintf(stderr, "cannot create the sandbox: %s\n", sandbox.status().ToString().c_str());
    return 1;
  }
  pnc::netns::g_sandbox = *sandbox;
  pnc::netns::RegisterAll(absl::GetFlag(FLAGS_pods));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
