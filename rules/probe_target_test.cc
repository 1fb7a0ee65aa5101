#include "rules/probe_target.h"

#include "gtest/gtest.h"
#include "rules/annotations.h"
#include "rules/digest.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

struct Built {
  RedirectPlan plan;
  Ruleset ruleset;
  std::vector<std::string> ips;
};

Built Build(std::map<std::string, std::string> annotations, std::vector<std::string> ips = {"10.244.1.5"},
            PlanConfig config = {}) {
  PodFacts pod = testing::InjectedPod();
  for (auto& [k, v] : annotations) pod.annotations[k] = v;
  pod.pod_ips = ips;
  absl::StatusOr<RedirectPlan> plan = BuildPlan(pod, config);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return {};
  return {*plan, BuildRuleset(*plan), ips};
}

// Every documentation address routed via eth0, as in a pod with a default route.
std::map<std::string, std::string> DefaultRoute(const RedirectPlan& plan, const std::string& dev = "eth0") {
  std::map<std::string, std::string> m;
  for (const std::string& a : ProbeCandidateAddresses(plan)) m[a] = dev;
  return m;
}

std::string Choose(const Built& b, const std::map<std::string, std::string>& routes) {
  return FormatProbeSpec(ChooseProbe(b.ruleset, b.plan, b.ips, routes));
}

TEST(ChooseProbe, DefaultPodProbesTestNetOnTheFirstProbePort) {
  Built b = Build({});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "target=192.0.2.1:15002,capture=15001");
}

TEST(ChooseProbe, NoRouteNoProbe) {
  Built b = Build({});
  EXPECT_EQ(Choose(b, {}), "none");
  // Only a local route (the address is the pod's own): never a proof.
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan, "lo")), "none");
}

TEST(ChooseProbe, SkipsExcludedPortsAndRanges) {
  Built b = Build({{kExcludeOutboundPortsAnnotation, "15002,15003"}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "target=192.0.2.1:15004,capture=15001");
  b = Build({{kExcludeOutboundIPRangesAnnotation, "192.0.2.0/24"}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "target=198.51.100.1:15002,capture=15001");
}

TEST(ChooseProbe, IncludedRangesOnly) {
  Built b = Build({{kIncludeOutboundIPRangesAnnotation, "10.96.0.0/12,172.30.0.0/16"}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "target=10.96.0.1:15002,capture=15001");
  // The first included range has no route in the pod: the next one.
  std::map<std::string, std::string> routes = DefaultRoute(b.plan);
  routes.erase("10.96.0.1");
  EXPECT_EQ(Choose(b, routes), "target=172.30.0.1:15002,capture=15001");
}

TEST(ChooseProbe, NothingCapturedSaysNone) {
  Built b = Build({{kIncludeOutboundIPRangesAnnotation, ""}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "none");
}

TEST(ChooseProbe, IncludedPortsAloneAreUsed) {
  Built b = Build({{kIncludeOutboundIPRangesAnnotation, ""}, {kIncludeOutboundPortsAnnotation, "8443"}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "target=192.0.2.1:8443,capture=15001");
}

TEST(ChooseProbe, ExcludedInterfaceOfTheRouteIsNotCaptured) {
  Built b = Build({{kExcludeInterfacesAnnotation, "eth0"}});
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan)), "none");
  EXPECT_EQ(Choose(b, DefaultRoute(b.plan, "net1")), "target=192.0.2.1:15002,capture=15001");
}

// Istio programs IPv4 rules in every pod (also IPv6 single-stack ones), so the IPv6-only pod has both
// families' rules; what makes the probe IPv6 is that its netns has no IPv4 route.
TEST(ChooseProbe, Ipv6OnlyPodGetsAnIpv6Target) {
  Built b = Build({}, {"fd00:10:244::5"});
  ASSERT_TRUE(b.plan.ipv6);
  std::map<std::string, std::string> routes;
  routes["2001:db8::1"] = "eth0";
  EXPECT_EQ(Choose(b, routes), "target=[2001:db8::1]:15002,capture=15001");
}

// Behaviour change (Istio's ISTIO_DUAL_STACK): a dual-stack pod gets IPv6 rules only with the setting.
TEST(ChooseProbe, DualStackWithoutAnIpv4RouteUsesIpv6) {
  PlanConfig dual;
  dual.dual_stack = true;
  Built b = Build({}, {"10.244.1.5", "fd00:10:244::5"}, dual);
  std::map<std::string, std::string> routes;
  routes["2001:db8::1"] = "eth0";
  EXPECT_EQ(Choose(b, routes), "target=[2001:db8::1]:15002,capture=15001");
}

TEST(EvaluateNatOutput, FollowsIstioOrder) {
  Built b = Build({});
  OutboundTcp p{Family::kIPv4, "10.244.1.5", "192.0.2.1", 80, "eth0"};
  NatDecision d = EvaluateNatOutput(b.ruleset, p);
  EXPECT_EQ(d.verdict, NatVerdict::kRedirected);
  EXPECT_EQ(d.redirect_port, kOutboundCapturePort);
  p.destination = "127.0.0.1";  // loopback is never captured for a non-proxy uid
  p.out_interface = "lo";
  EXPECT_EQ(EvaluateNatOutput(b.ruleset, p).verdict, NatVerdict::kNotRedirected);
  p.family = Family::kIPv6;  // no IPv6 rules for an IPv4 pod
  p.destination = "2001:db8::1";
  p.out_interface = "eth0";
  EXPECT_EQ(EvaluateNatOutput(b.ruleset, p).verdict, NatVerdict::kNotRedirected);
}

TEST(EvaluateNatOutput, UndecidableMatchRejectsTheCandidate) {
  Ruleset rs;
  FamilyRules fr;
  TableRules nat;
  Rule sport;
  sport.protocol = Protocol::kTcp;
  sport.source_port = Negatable<uint16_t>{53, false};
  sport.target = ReturnTarget{};
  Rule redirect;
  redirect.target = RedirectTarget{15001};
  nat.chains.push_back(Chain{"OUTPUT", {sport, redirect}});
  fr.tables.push_back(nat);
  rs.families.push_back(fr);
  EXPECT_EQ(EvaluateNatOutput(rs, OutboundTcp{Family::kIPv4, "10.0.0.1", "192.0.2.1", 80, "eth0"}).verdict,
            NatVerdict::kUndecidable);
}

TEST(RulesetDigest, EqualForEqualRulesetsDifferentOtherwise) {
  Built a = Build({});
  Built a2 = Build({});
  Built c = Build({{kExcludeOutboundPortsAnnotation, "8080"}});
  EXPECT_EQ(RulesetDigest(a.ruleset), RulesetDigest(a2.ruleset));
  EXPECT_NE(RulesetDigest(a.ruleset), RulesetDigest(c.ruleset));
  EXPECT_TRUE(IsPlanDigest(RulesetDigest(a.ruleset)));
  EXPECT_NE(RulesetDigest(a.ruleset), RulesetDigest(Ruleset{}));
}

}  // namespace
}  // namespace pnc::rules
