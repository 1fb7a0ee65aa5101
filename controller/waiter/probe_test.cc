// The waiter's --probe against real redirection: a sandbox pod netns (netns/testing) gets the default Istio
// plan via the iptc backend; the probe must pass as an application uid, and fail as the proxy uid (whose
// traffic bypasses capture) and in a pod netns without rules. Packets never leave the sandbox.
#include "controller/waiter/probe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/backends.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "rules/plan.h"

namespace pnc::waiter {
namespace {

using ::testing::HasSubstr;

ProbeResult ProbeAs(uid_t uid, const netns::NetnsHandle& ns) {
  ProbeResult out;
  ProbeOptions o;
  o.timeout_ms = 500;
  absl::Status st = netns::testing::RunAs(uid, uid, &ns, [&] {
    out = RunProbe(o);
    return absl::OkStatus();
  });
  if (!st.ok()) out.message = "RunAs failed: " + std::string(st.message());
  return out;
}

TEST(Probe, PassesOnlyWhenOutboundIsRedirected) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns("probe-pod");
  ASSERT_TRUE(pod.ok()) << pod.status();
  absl::StatusOr<netns::testing::PodNetns> bare = sb->CreatePodNetns("probe-bare");
  ASSERT_TRUE(bare.ok()) << bare.status();

  rules::PodFacts facts;
  facts.uid = "u";
  facts.name = "p";
  facts.namespace_name = "ns";
  facts.containers.push_back({"istio-proxy", 1337, 1337, {}, false});
  facts.pod_ips = {pod->pod_ipv4};
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, rules::PlanConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = netns::NewBackendByName("iptc");
  ASSERT_TRUE(backend.ok()) << backend.status();
  ASSERT_TRUE(netns::ApplyAndVerify(**backend, pod->handle(), rules::BuildRuleset(*plan)).ok());

  ProbeResult app = ProbeAs(1000, pod->handle());
  EXPECT_TRUE(app.ok) << app.message;
  EXPECT_THAT(app.message, HasSubstr("was redirected to port 15001"));

  ProbeResult proxy = ProbeAs(1337, pod->handle());  // the proxy's own traffic is not captured
  EXPECT_FALSE(proxy.ok) << proxy.message;

  ProbeResult none = ProbeAs(1000, bare->handle());
  EXPECT_FALSE(none.ok) << none.message;
}

}  // namespace
}  // namespace pnc::waiter
