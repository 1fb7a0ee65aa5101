// What the datapath probe adds to the waiter's exit: one RunProbe (listen on the capture port, connect to the
// target as an application uid, accept, SO_ORIGINAL_DST) in a sandbox pod netns whose rules the production
// planner built, per backend that installed them. Reports p50/p99/max over 500 probes per backend (the
// probe's kernel path does not depend on the backend, the rules do). Root or user namespaces needed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"
#include "controller/waiter/probe.h"
#include "netns/backend.h"
#include "netns/backends.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sandbox.h"
#include "rules/mark.h"
#include "rules/plan.h"

namespace pnc::waiter {
namespace {

using Clock = std::chrono::steady_clock;

void BM_Probe(benchmark::State& state, const char* backend_name, bool ipv6) {
  absl::StatusOr<netns::testing::Sandbox*> sb = netns::testing::Sandbox::Get();
  if (!sb.ok()) return state.SkipWithError(std::string(sb.status().message()).c_str());
  static int n = 0;
  absl::StatusOr<netns::testing::PodNetns> pod = (*sb)->CreatePodNetns("probe-bench-" + std::to_string(++n));
  if (!pod.ok()) return state.SkipWithError(std::string(pod.status().message()).c_str());
  rules::PodFacts facts;
  facts.uid = "u";
  facts.name = "p";
  facts.namespace_name = "ns";
  facts.containers.push_back({"istio-proxy", 1337, 1337, {}, false});
  facts.pod_ips = {pod->pod_ipv4, pod->pod_ipv6};
  rules::PlanConfig config;
  config.dual_stack = true;  // IPv6 rules for a dual-stack pod (Istio's ISTIO_DUAL_STACK)
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config);
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = netns::NewBackendByName(backend_name);
  if (!plan.ok() || !backend.ok() ||
      !netns::ApplyAndVerify(**backend, pod->handle(), rules::BuildRuleset(*plan)).ok())
    return state.SkipWithError("cannot install the rules");
  std::optional<rules::ProbeSpec> spec = rules::ParseProbeSpec(
      ipv6 ? "target=[2001:db8::1]:15002,capture=15001" : "target=192.0.2.1:15002,capture=15001");
  std::vector<double> us;
  for (auto _ : state) {
    ProbeResult r;
    Clock::time_point t0;
    Clock::time_point t1;
    absl::Status st = netns::testing::RunAs(1000, 1000, &pod->handle(), [&] {
      t0 = Clock::now();
      r = RunProbe(*spec, 1000);
      t1 = Clock::now();
      return absl::OkStatus();
    });
    if (!st.ok() || !r.ok) return state.SkipWithError(r.message.c_str());
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  state.counters["max_us"] = us.back();
}

BENCHMARK_CAPTURE(BM_Probe, iptc_v4, "iptc", false)->Iterations(500)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Probe, nft_v4, "nft", false)->Iterations(500)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Probe, nft_v6, "nft", true)->Iterations(500)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pnc::waiter

int main(int argc, char** argv) {
  // The sandbox must be entered while the process is single-threaded.
  absl::StatusOr<pnc::netns::testing::Sandbox*> sb = pnc::netns::testing::Sandbox::Get();
  if (!sb.ok())
    std::fprintf(stderr, "probe_bench: no sandbox: %s\n", std::string(sb.status().message()).c_str());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
