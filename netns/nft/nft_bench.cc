// nft backend costs on the planner's default ruleset (REDIRECT, IPv4; and dual-stack TPROXY+DNS):
// first apply into a fresh netns + read-back verify (the controller's hot path), re-apply over our own rules
// (flushes rules, so close() waits for nf_tables' deferred destruction), and read-back alone. Each call
// includes the RunInNetns hand-off and setns. Run as root: bazel run -c opt //netns/nft:bench
#include <vector>

#include "benchmark/benchmark.h"
#include "netns/backend.h"
#include "netns/nft/nft_backend.h"
#include "netns/routing/test_util.h"
#include "rules/plan.h"

namespace pnc::netns {
namespace {

rules::Ruleset Plan(bool tproxy) {
  rules::RedirectPlan p;
  if (tproxy) {
    p.mode = rules::InterceptionMode::kTproxy;
    p.ipv6 = true;
    p.capture_dns = true;
  }
  return rules::BuildRuleset(p);
}

void BM_NftFirstApplyAndVerify(benchmark::State& state) {
  rules::Ruleset rs = Plan(state.range(0) != 0);
  std::unique_ptr<Backend> backend = NewNftBackend();
  for (auto _ : state) {
    state.PauseTiming();
    absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
    if (!ns.ok()) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
    state.ResumeTiming();
    if (!ApplyAndVerify(*backend, *ns, rs).ok()) return state.SkipWithError("apply failed");
    state.PauseTiming();
    ns = absl::UnknownError("");  // close the netns outside the timing
    state.ResumeTiming();
  }
}
BENCHMARK(BM_NftFirstApplyAndVerify)->Arg(0)->Arg(1)->Iterations(300)->UseRealTime();

// Re-apply of the identical ruleset: detected by a read-back, nothing is sent.
void BM_NftReapplySameAndVerify(benchmark::State& state) {
  rules::Ruleset rs = Plan(state.range(0) != 0);
  std::unique_ptr<Backend> backend = NewNftBackend();
  absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
  if (!ns.ok()) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
  if (!backend->Apply(*ns, rs).ok()) return state.SkipWithError("apply failed");
  for (auto _ : state) {
    if (!ApplyAndVerify(*backend, *ns, rs).ok()) return state.SkipWithError("apply failed");
  }
}
BENCHMARK(BM_NftReapplySameAndVerify)->Arg(0)->Arg(1)->Iterations(200)->UseRealTime();

// Re-apply of a changed ruleset, rotating over 16 pods' netns (alternating two plans per netns): flushes our
// rules. Closing an nf_tables socket then waits for RCU-deferred destruction while holding that netns' commit
// mutex; the backend closes on a background thread, so only a back-to-back re-apply of the SAME netns would
// still wait.
void BM_NftReapplyChangedAndVerify(benchmark::State& state) {
  rules::Ruleset a = Plan(state.range(0) != 0);
  rules::RedirectPlan p;
  p.exclude_outbound_ports = {15020, 9999};
  rules::Ruleset b = state.range(0) != 0 ? Plan(false) : rules::BuildRuleset(p);
  std::unique_ptr<Backend> backend = NewNftBackend();
  std::vector<NetnsHandle> pods;
  for (int i = 0; i < 16; ++i) {
    absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
    if (!ns.ok()) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
    if (!backend->Apply(*ns, a).ok()) return state.SkipWithError("apply failed");
    pods.push_back(std::move(*ns));
  }
  size_t i = 0;
  for (auto _ : state) {
    size_t pod = i % pods.size();
    bool to_b = (i / pods.size()) % 2 == 0;
    ++i;
    if (!ApplyAndVerify(*backend, pods[pod], to_b ? b : a).ok()) return state.SkipWithError("apply failed");
  }
}
BENCHMARK(BM_NftReapplyChangedAndVerify)->Arg(0)->Arg(1)->Iterations(320)->UseRealTime();

void BM_NftReadBack(benchmark::State& state) {
  rules::Ruleset rs = Plan(state.range(0) != 0);
  std::unique_ptr<Backend> backend = NewNftBackend();
  absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
  if (!ns.ok()) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
  if (!backend->Apply(*ns, rs).ok()) return state.SkipWithError("apply failed");
  for (auto _ : state) {
    absl::StatusOr<rules::Ruleset> got = backend->ReadBack(*ns);
    if (!got.ok() || *got != rs) return state.SkipWithError("read-back differs");
  }
}
BENCHMARK(BM_NftReadBack)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace pnc::netns

BENCHMARK_MAIN();
