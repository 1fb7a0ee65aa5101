// rules/ micro-benchmarks: `bazel run -c opt //rules:bench -- --benchmark_repetitions=10
// --benchmark_report_aggregates_only` (figures in docs/benchmarks.md, section "rules").
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "rules/annotations.h"
#include "rules/iptables_save.h"
#include "rules/membership.h"
#include "rules/plan.h"
#include "rules/render.h"

namespace pnc::rules {
namespace {

PodFacts DefaultPod() {
  PodFacts pod;
  pod.name = "web-1";
  pod.namespace_name = "shop";
  pod.annotations[kSidecarStatusAnnotation] = R"({"containers":["istio-proxy"]})";
  pod.containers.push_back(ContainerFacts{.name = "app"});
  pod.containers.push_back(ContainerFacts{.name = "istio-proxy"});
  pod.pod_ips = {"10.244.1.5"};
  return pod;
}

// Dual-stack TPROXY + DNS with hundreds of ports and CIDRs.
PodFacts LargePod() {
  PodFacts pod = DefaultPod();
  pod.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
  pod.annotations[kInterceptionModeAnnotation] = "TPROXY";
  std::string in, out, cidrs;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&in, i ? "," : "", 8000 + i);
  for (int i = 0; i < 200; ++i) absl::StrAppend(&out, i ? "," : "", 20000 + i);
  for (int i = 0; i < 250; ++i)
    absl::StrAppend(&cidrs, i ? "," : "", "10.", i, ".0.0/16,fd00:", absl::Hex(i), "::/32");
  pod.annotations[kIncludeInboundPortsAnnotation] = in;
  pod.annotations[kExcludeOutboundPortsAnnotation] = out;
  pod.annotations[kExcludeOutboundIPRangesAnnotation] = cidrs;
  pod.annotations[kExcludeInterfacesAnnotation] = "eth1,eth2,net1";
  pod.annotations[kRerouteVirtualInterfacesAnnotation] = "tap0,k6t-eth0";
  return pod;
}

PlanConfig LargeConfig() {
  PlanConfig c;
  c.capture_dns = true;
  return c;
}

size_t CountRules(const Ruleset& rs) {
  size_t n = 0;
  for (const auto& fr : rs.families)
    for (const auto& t : fr.tables)
      for (const auto& c : t.chains) n += c.rules.size();
  return n;
}

void BM_MembershipDefault(benchmark::State& state) {
  PodFacts pod = DefaultPod();
  for (auto _ : state) benchmark::DoNotOptimize(DecideMembership(pod));
}
BENCHMARK(BM_MembershipDefault);

void PlanAndRender(benchmark::State& state, const PodFacts& pod, const PlanConfig& cfg) {
  size_t rules = 0, bytes = 0;
  for (auto _ : state) {
    auto plan = BuildPlan(pod, cfg);
    if (!plan.ok()) {
      state.SkipWithError("BuildPlan failed");
      return;
    }
    Ruleset rs = BuildRuleset(*plan);
    bytes = 0;
    for (const auto& fr : rs.families) bytes += RenderIptablesRestore(fr).size();
    bytes += RenderNftables(rs).size();
    rules = CountRules(rs);
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["rules"] = static_cast<double>(rules);
  state.counters["text_bytes"] = static_cast<double>(bytes);
}

// Plan + ruleset + iptables-restore text (per family) + nft script.
void BM_PlanAndRenderDefault(benchmark::State& state) { PlanAndRender(state, DefaultPod(), PlanConfig{}); }
BENCHMARK(BM_PlanAndRenderDefault);

void BM_PlanAndRenderLarge(benchmark::State& state) { PlanAndRender(state, LargePod(), LargeConfig()); }
BENCHMARK(BM_PlanAndRenderLarge);

// Plan + model only (what the libiptc / netlink backends consume; no text).
void BM_PlanAndRulesetDefault(benchmark::State& state) {
  PodFacts pod = DefaultPod();
  for (auto _ : state) {
    auto plan = BuildPlan(pod, PlanConfig{});
    benchmark::DoNotOptimize(BuildRuleset(*plan));
  }
}
BENCHMARK(BM_PlanAndRulesetDefault);

void BM_RejectOneMegabyteAnnotation(benchmark::State& state) {
  PodFacts pod = DefaultPod();
  pod.annotations[kExcludeOutboundPortsAnnotation] = std::string(1 << 20, '1');
  for (auto _ : state) {
    auto plan = BuildPlan(pod, PlanConfig{});
    if (plan.ok()) state.SkipWithError("1 MB annotation accepted");
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_RejectOneMegabyteAnnotation);

void Parse(benchmark::State& state, const PodFacts& pod, const PlanConfig& cfg) {
  Ruleset rs = BuildRuleset(*BuildPlan(pod, cfg));
  const FamilyRules& want = rs.families[0];
  std::string text = RenderIptablesSave(want);
  for (auto _ : state) {
    auto back = ParseIptablesSave(want.family, text);
    if (!back.ok() || !(*back == want)) {
      state.SkipWithError("read back differs");
      return;
    }
    benchmark::DoNotOptimize(back);
  }
  state.counters["save_bytes"] = static_cast<double>(text.size());
}

// Read back + compare, as the exec backend's verify step does (IPv4 family).
void BM_ParseIptablesSaveDefault(benchmark::State& state) { Parse(state, DefaultPod(), PlanConfig{}); }
BENCHMARK(BM_ParseIptablesSaveDefault);

void BM_ParseIptablesSaveLarge(benchmark::State& state) { Parse(state, LargePod(), LargeConfig()); }
BENCHMARK(BM_ParseIptablesSaveLarge);

}  // namespace
}  // namespace pnc::rules
