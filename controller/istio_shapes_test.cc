// The pod shapes Istio's injector produces with CNI-mode injection (pilot.cni.enabled: no istio-init, an
// istio-validation init container, the mesh's capture settings rendered into the pod's annotations), as this
// product deploys with it (docs/deploy.md): path a, the stock istio-validation; path b, our waiter under
// that name; and a TPROXY pod whose proxy is a regular container. The fixtures in controller/testdata were
// written from Istio's injection template and golden data (facts, not copies). Each must decode, be a mesh
// member, plan, and get a datapath probe its own rules redirect.
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/types.h"
#include "rules/mark.h"
#include "rules/membership.h"
#include "rules/plan.h"
#include "rules/probe_target.h"

namespace pnc::controller {
namespace {

using ::testing::Contains;

struct Shape {
  kube::Pod pod;
  rules::PodFacts facts;
  rules::RedirectPlan plan;
};

Shape Load(const std::string& name) {
  std::ifstream f("controller/testdata/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  Shape s;
  absl::StatusOr<kube::Pod> pod = kube::DecodePod(ss.str());
  EXPECT_TRUE(pod.ok()) << name << ": " << pod.status();
  if (!pod.ok()) return s;
  s.pod = *pod;
  s.facts = kube::ToPodFacts(s.pod, nullptr);
  rules::MembershipDecision m = rules::DecideMembership(s.facts);
  EXPECT_TRUE(m.member) << name << ": " << m.reason;
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(s.facts, rules::PlanConfig{});
  EXPECT_TRUE(plan.ok()) << name << ": " << plan.status();
  if (plan.ok()) s.plan = *plan;
  return s;
}

std::string ProbeFor(const Shape& s) {
  std::map<std::string, std::string> routes;
  for (const std::string& a : rules::ProbeCandidateAddresses(s.plan)) routes[a] = "eth0";
  return rules::FormatProbeSpec(
      rules::ChooseProbe(rules::BuildRuleset(s.plan), s.plan, s.facts.pod_ips, routes));
}

TEST(IstioShapes, PathAStockValidationWithNativeSidecar) {
  Shape s = Load("istio_cni_native_sidecar_pod.json");
  EXPECT_EQ(s.plan.mode, rules::InterceptionMode::kRedirect);
  EXPECT_EQ(s.plan.proxy_uid,
            1337u);  // the native sidecar's runAsUser (an init container with restartPolicy Always)
  EXPECT_EQ(s.plan.proxy_gid, 1337u);
  EXPECT_THAT(s.plan.exclude_inbound_ports, Contains(15020));
  EXPECT_TRUE(s.plan.capture_dns);  // ISTIO_META_DNS_CAPTURE in the proxy's env, as the injector renders it
  EXPECT_EQ(ProbeFor(s), "target=192.0.2.1:15002,capture=15001");
}

TEST(IstioShapes, PathBOurWaiterAsIstioValidation) {
  Shape s = Load("istio_cni_pnc_waiter_pod.json");
  ASSERT_FALSE(s.pod.init_containers.empty());
  EXPECT_EQ(s.pod.init_containers[0].name, "istio-validation");  // Istio's injector moves it first
  EXPECT_EQ(s.pod.init_containers[0].run_as_user, 65532);  // never the proxy's uid: the probe is captured
  EXPECT_NE(s.pod.init_containers[0].run_as_user, static_cast<int64_t>(s.plan.proxy_uid));
  EXPECT_EQ(ProbeFor(s), "target=192.0.2.1:15002,capture=15001");
}

TEST(IstioShapes, TproxyWithTheProxyAsARegularContainer) {
  Shape s = Load("istio_cni_tproxy_sidecar_container_pod.json");
  EXPECT_EQ(s.plan.mode, rules::InterceptionMode::kTproxy);
  EXPECT_EQ(s.plan.proxy_gid, 1337u);
  EXPECT_THAT(s.plan.exclude_outbound_ports, Contains(5432));
  EXPECT_EQ(ProbeFor(s), "target=192.0.2.1:15002,capture=15001");
}

}  // namespace
}  // namespace pnc::controller
