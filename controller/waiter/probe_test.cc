// The waiter's probe against real redirection: a sandbox pod netns (netns/testing) gets the production plan
// through the iptc and nft backends; the probe must pass as an application uid, and fail as the proxy uid
// (whose traffic bypasses capture), in a pod netns without rules, and for forged targets. Packets never leave
// the sandbox.
#include "controller/waiter/probe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/backends.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "rules/mark.h"
#include "rules/plan.h"

namespace pnc::waiter {
namespace {

using ::testing::HasSubstr;

ProbeResult ProbeAs(uid_t uid, const netns::NetnsHandle& ns, const std::string& spec_text) {
  ProbeResult out;
  std::optional<rules::ProbeSpec> spec = rules::ParseProbeSpec(spec_text);
  if (!spec) {
    out.message = "bad spec " + spec_text;
    return out;
  }
  absl::Status st = netns::testing::RunAs(uid, uid, &ns, [&] {
    out = RunProbe(*spec, 300);
    return absl::OkStatus();
  });
  if (!st.ok()) out.message = "RunAs failed: " + std::string(st.message());
  return out;
}

void ApplyDefaultPlan(const std::string& backend_name, const netns::testing::PodNetns& pod,
                      std::vector<std::string> ips) {
  rules::PodFacts facts;
  facts.uid = "u";
  facts.name = "p";
  facts.namespace_name = "ns";
  facts.containers.push_back({"istio-proxy", 1337, 1337, {}, false});
  facts.pod_ips = std::move(ips);
  rules::PlanConfig config;
  config.dual_stack = true;  // IPv6 rules for a dual-stack pod (Istio's ISTIO_DUAL_STACK)
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = netns::NewBackendByName(backend_name);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::Status st = netns::ApplyAndVerify(**backend, pod.handle(), rules::BuildRuleset(*plan));
  ASSERT_TRUE(st.ok()) << st;
}

constexpr char kV4[] = "target=192.0.2.1:15002,capture=15001";
constexpr char kV6[] = "target=[2001:db8::1]:15002,capture=15001";

TEST(Probe, PassesOnlyWhenOutboundIsRedirected) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  for (const char* backend : {"iptc", "nft"}) {
    SCOPED_TRACE(backend);
    absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns(std::string("probe-pod-") + backend);
    ASSERT_TRUE(pod.ok()) << pod.status();
    ApplyDefaultPlan(backend, *pod, {pod->pod_ipv4, pod->pod_ipv6});

    for (const char* spec : {kV4, kV6}) {
      ProbeResult app = ProbeAs(1000, pod->handle(), spec);
      EXPECT_TRUE(app.ok) << spec << ": " << app.message;
      EXPECT_THAT(app.message, HasSubstr("was redirected to port 15001"));
      ProbeResult proxy = ProbeAs(1337, pod->handle(), spec);  // the proxy's own traffic is not captured
      EXPECT_FALSE(proxy.ok) << proxy.message;
    }
    // Forged targets: the pod's own address on another port is not redirected for an app uid (loopback
    // RETURN), and a target equal to the capture port is refused by the parser already.
    ProbeResult own = ProbeAs(1000, pod->handle(), "target=" + pod->pod_ipv4 + ":15002,capture=15001");
    EXPECT_FALSE(own.ok) << own.message;
    EXPECT_FALSE(rules::ParseProbeSpec("target=" + pod->pod_ipv4 + ":15001,capture=15001").has_value());
  }
  absl::StatusOr<netns::testing::PodNetns> bare = sb->CreatePodNetns("probe-bare");
  ASSERT_TRUE(bare.ok()) << bare.status();
  for (const char* spec : {kV4, kV6}) {
    ProbeResult none = ProbeAs(1000, bare->handle(), spec);
    EXPECT_FALSE(none.ok) << none.message;
    EXPECT_THAT(none.message, HasSubstr("not redirected"));
  }
}

}  // namespace
}  // namespace pnc::waiter
