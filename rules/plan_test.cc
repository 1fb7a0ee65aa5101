// BuildPlan: table-driven validation errors (every error class names the annotation/field and the token) and
// the semantics of defaults, dedupe, normalisation, identity and families.
#include "rules/plan.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/annotations.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

using ::testing::HasSubstr;
using testing::InjectedPod;

struct ErrorCase {
  const char* what;
  std::string key;
  std::string value;
  std::vector<std::string> message_contains;
};

std::vector<ErrorCase> ErrorCases() {
  const std::string big(1 << 20, '1');  // 1 MB
  return {
      {"port 0",
       kExcludeInboundPortsAnnotation,
       "0",
       {kExcludeInboundPortsAnnotation, "\"0\"", "is not a port (1..65535)"}},
      {"port 70000",
       kExcludeInboundPortsAnnotation,
       "70000",
       {"traffic.sidecar.istio.io/excludeInboundPorts: \"70000\" is not a port (1..65535)"}},
      {"negative port", kIncludeInboundPortsAnnotation, "-1", {kIncludeInboundPortsAnnotation, "\"-1\""}},
      {"port range",
       kIncludeOutboundPortsAnnotation,
       "80-90",
       {kIncludeOutboundPortsAnnotation, "\"80-90\""}},
      {"port with sign",
       kExcludeOutboundPortsAnnotation,
       "+80",
       {kExcludeOutboundPortsAnnotation, "\"+80\""}},
      {"port word", kIncludeInboundPortsAnnotation, "http", {kIncludeInboundPortsAnnotation, "\"http\""}},
      {"star not allowed (exclude ports)",
       kExcludeInboundPortsAnnotation,
       "*",
       {kExcludeInboundPortsAnnotation, "\"*\"", "not allowed"}},
      {"star not allowed (outbound ports)",
       kIncludeOutboundPortsAnnotation,
       "*",
       {kIncludeOutboundPortsAnnotation, "\"*\"", "not allowed"}},
      {"star not allowed (exclude CIDRs)",
       kExcludeOutboundIPRangesAnnotation,
       "*",
       {kExcludeOutboundIPRangesAnnotation, "\"*\"", "not allowed"}},
      {"star mixed with ports",
       kIncludeInboundPortsAnnotation,
       "*,80",
       {kIncludeInboundPortsAnnotation, "\"*,80\"", "mixes"}},
      {"star mixed with CIDRs",
       kIncludeOutboundIPRangesAnnotation,
       "10.0.0.0/8,*",
       {kIncludeOutboundIPRangesAnnotation, "mixes"}},
      {"empty entry",
       kExcludeOutboundPortsAnnotation,
       "80,,81",
       {kExcludeOutboundPortsAnnotation, "\"80,,81\"", "empty entry"}},
      {"trailing comma",
       kExcludeOutboundPortsAnnotation,
       "80,",
       {kExcludeOutboundPortsAnnotation, "empty entry"}},
      {"CIDR without prefix",
       kExcludeOutboundIPRangesAnnotation,
       "10.0.0.1",
       {kExcludeOutboundIPRangesAnnotation, "\"10.0.0.1\"", "is not a CIDR"}},
      {"CIDR prefix too long v4",
       kExcludeOutboundIPRangesAnnotation,
       "10.0.0.0/33",
       {kExcludeOutboundIPRangesAnnotation, "\"10.0.0.0/33\""}},
      {"CIDR prefix too long v6", kIncludeOutboundIPRangesAnnotation, "fd00::/129", {"\"fd00::/129\""}},
      {"CIDR bad octet", kIncludeOutboundIPRangesAnnotation, "10.0.0.256/32", {"\"10.0.0.256/32\""}},
      {"CIDR short form", kIncludeOutboundIPRangesAnnotation, "10.1/16", {"\"10.1/16\""}},
      {"CIDR empty prefix", kIncludeOutboundIPRangesAnnotation, "10.0.0.0/", {"\"10.0.0.0/\""}},
      {"CIDR signed prefix", kIncludeOutboundIPRangesAnnotation, "10.0.0.0/+8", {"\"10.0.0.0/+8\""}},
      {"CIDR garbage", kExcludeOutboundIPRangesAnnotation, "not-an-ip/8", {"\"not-an-ip/8\""}},
      {"unknown mode",
       kInterceptionModeAnnotation,
       "BPF",
       {kInterceptionModeAnnotation, "\"BPF\"", "REDIRECT or TPROXY"}},
      {"mode lower case",
       kInterceptionModeAnnotation,
       "redirect",
       {kInterceptionModeAnnotation, "\"redirect\""}},
      {"mode NONE", kInterceptionModeAnnotation, "NONE", {kInterceptionModeAnnotation, "\"NONE\""}},
      {"status port 0", kStatusPortAnnotation, "0", {kStatusPortAnnotation, "\"0\""}},
      {"status port list", kStatusPortAnnotation, "15020,15021", {kStatusPortAnnotation, "\"15020,15021\""}},
      {"interface too long",
       kExcludeInterfacesAnnotation,
       "abcdefghijklmnop",
       {kExcludeInterfacesAnnotation, "\"abcdefghijklmnop\"", "not an interface name"}},
      {"interface slash", kExcludeInterfacesAnnotation, "eth/0", {"\"eth/0\""}},
      {"interface dot",
       kRerouteVirtualInterfacesAnnotation,
       ".",
       {kRerouteVirtualInterfacesAnnotation, "\".\""}},
      {"interface dotdot", kRerouteVirtualInterfacesAnnotation, "..", {"\"..\""}},
      {"interface quote", kExcludeInterfacesAnnotation, "eth\"0", {"\"eth\\\"0\""}},
      {"interface wildcard", kExcludeInterfacesAnnotation, "eth+", {"\"eth+\""}},
      {"interface inner space",
       kKubevirtInterfacesAnnotation,
       "tap 0",
       {kKubevirtInterfacesAnnotation, "\"tap 0\""}},
      {"control character",
       kExcludeInboundPortsAnnotation,
       "80\n-A OUTPUT -j ACCEPT",
       {kExcludeInboundPortsAnnotation, "control character", "\\n"}},
      {"tab",
       kExcludeInterfacesAnnotation,
       "eth0\teth1",
       {kExcludeInterfacesAnnotation, "control character"}},
      {"DEL",
       kInterceptionModeAnnotation,
       "REDIRECT\x7f",
       {kInterceptionModeAnnotation, "control character"}},
      {"NUL",
       kIncludeOutboundIPRangesAnnotation,
       std::string("10.0.0.0/8\0", 11),
       {"control character", "\\x00"}},
      {"1 MB value",
       kExcludeOutboundPortsAnnotation,
       big,
       {kExcludeOutboundPortsAnnotation, "1048576 bytes", "limit of 16384"}},
      {"list over 512 entries",
       kExcludeOutboundPortsAnnotation,
       [] {
         std::string s = "1";
         for (int i = 2; i <= 513; ++i) s += "," + std::to_string(i);
         return s;
       }(),
       {kExcludeOutboundPortsAnnotation, "513 entries", "limit of 512"}},
      {"long token truncated",
       kExcludeInboundPortsAnnotation,
       std::string(300, '9'),
       {kExcludeInboundPortsAnnotation, "...\" is not a port"}},
      {"non-UTF8 bytes escaped", kExcludeInterfacesAnnotation, "eth\xff", {"\"eth\\xff\""}},
  };
}

TEST(PlanValidationTest, EveryErrorClassNamesAnnotationAndToken) {
  for (const auto& c : ErrorCases()) {
    SCOPED_TRACE(c.what);
    PodFacts pod = InjectedPod();
    pod.annotations[c.key] = c.value;
    auto plan = BuildPlan(pod, PlanConfig{});
    ASSERT_FALSE(plan.ok()) << "accepted: " << c.value.substr(0, 80);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    for (const auto& s : c.message_contains) EXPECT_THAT(std::string(plan.status().message()), HasSubstr(s));
    // Messages go into Events and annotations: bounded and single-line.
    EXPECT_LT(plan.status().message().size(), 400u) << plan.status().message();
    EXPECT_EQ(plan.status().message().find('\n'), absl::string_view::npos) << plan.status().message();
  }
}

TEST(PlanValidationTest, ValuesAtTheBoundsAreAccepted) {
  PodFacts pod = InjectedPod();
  std::string ports = "1";
  for (int i = 2; i <= 512; ++i) ports += "," + std::to_string(i);
  pod.annotations[kExcludeOutboundPortsAnnotation] = ports;
  pod.annotations[kIncludeInboundPortsAnnotation] = "65535";
  pod.annotations[kExcludeInterfacesAnnotation] = "abcdefghijklmno";  // 15 bytes
  auto plan = BuildPlan(pod, PlanConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->exclude_outbound_ports.size(), 512u);
  EXPECT_EQ(plan->include_inbound_ports, std::vector<uint16_t>{65535});
}

TEST(PlanValidationTest, InvalidPodIpsAndIdsAreErrors) {
  {
    PodFacts pod = InjectedPod();
    pod.pod_ips = {"10.0.0.1", "10.0.0.300"};
    auto plan = BuildPlan(pod, {});
    ASSERT_FALSE(plan.ok());
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("status.podIPs: \"10.0.0.300\""));
  }
  for (int64_t bad : {int64_t{-1}, int64_t{4294967295}, int64_t{1} << 40}) {
    PodFacts pod = InjectedPod();
    pod.containers[1].run_as_user = bad;
    auto plan = BuildPlan(pod, {});
    ASSERT_FALSE(plan.ok()) << bad;
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("runAsUser"));
  }
}

TEST(PlanValidationTest, OpenShiftUidRangeErrors) {
  PlanConfig cfg;
  cfg.distribution = Distribution::kOpenShift;
  {
    PodFacts pod = InjectedPod();
    auto plan = BuildPlan(pod, cfg);
    ASSERT_FALSE(plan.ok());
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("openshift.io/sa.scc.uid-range is missing"));
  }
  for (const char* bad : {"1000650000", "1000650000/0", "0/10000", "abc/10", "4294967290/100", "-5/10",
                          "1000650000/10000/1", "1000650000-1000659999"}) {
    SCOPED_TRACE(bad);
    PodFacts pod = InjectedPod();
    pod.namespace_annotations[kOpenShiftUidRangeAnnotation] = bad;
    auto plan = BuildPlan(pod, cfg);
    ASSERT_FALSE(plan.ok());
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr(kOpenShiftUidRangeAnnotation));
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr(bad));
  }
}

TEST(PlanTest, DefaultsMatchIstio) {
  auto plan = BuildPlan(InjectedPod(), PlanConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mode, InterceptionMode::kRedirect);
  EXPECT_EQ(plan->proxy_uid, 1337u);
  EXPECT_EQ(plan->proxy_gid, 1337u);
  EXPECT_TRUE(plan->capture_all_inbound);
  EXPECT_TRUE(plan->capture_all_outbound);
  // The Istio CNI plugin: excludeInboundPorts "15020" + "15020,15021,15090"; excludeOutboundPorts "15020".
  EXPECT_EQ(plan->exclude_inbound_ports, (std::vector<uint16_t>{15020, 15021, 15090}));
  EXPECT_EQ(plan->exclude_outbound_ports, (std::vector<uint16_t>{15020}));
  EXPECT_TRUE(plan->ipv4);
  EXPECT_FALSE(plan->ipv6);
  EXPECT_FALSE(plan->capture_dns);
}

TEST(PlanTest, SpacesTrimmedDuplicatesRemovedHostBitsNormalised) {
  PodFacts pod = InjectedPod();
  pod.annotations[kExcludeInboundPortsAnnotation] = " 22 , 8081,22,15090 ";
  pod.annotations[kExcludeOutboundIPRangesAnnotation] = "10.1.2.3/8, 10.0.0.0/8 ,FD00::1/8,fd00::/8";
  pod.annotations[kExcludeInterfacesAnnotation] = "eth1,eth1";
  auto plan = BuildPlan(pod, PlanConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->exclude_inbound_ports, (std::vector<uint16_t>{22, 8081, 15090, 15020, 15021}));
  ASSERT_EQ(plan->exclude_outbound_cidrs_v4.size(), 1u);
  EXPECT_EQ(plan->exclude_outbound_cidrs_v4[0], (Cidr{Family::kIPv4, "10.0.0.0", 8}));
  ASSERT_EQ(plan->exclude_outbound_cidrs_v6.size(), 1u);
  EXPECT_EQ(plan->exclude_outbound_cidrs_v6[0], (Cidr{Family::kIPv6, "fd00::", 8}));
  EXPECT_EQ(plan->exclude_interfaces, std::vector<std::string>{"eth1"});
}

TEST(PlanTest, EmptyValuesMeanEmptyLists) {
  PodFacts pod = InjectedPod();
  pod.annotations[kIncludeInboundPortsAnnotation] = "";
  pod.annotations[kIncludeOutboundIPRangesAnnotation] = "  ";
  pod.annotations[kExcludeOutboundPortsAnnotation] = "";
  auto plan = BuildPlan(pod, PlanConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->capture_all_inbound);
  EXPECT_TRUE(plan->include_inbound_ports.empty());
  EXPECT_FALSE(plan->capture_all_outbound);
  EXPECT_TRUE(plan->include_outbound_cidrs_v4.empty());
  EXPECT_TRUE(plan->exclude_outbound_ports.empty());
  Ruleset rs = BuildRuleset(*plan);
  // No PREROUTING jump and no ISTIO_INBOUND at all; ISTIO_OUTPUT ends without a catch-all redirect.
  const auto& nat = rs.families[0].tables.back();
  for (const auto& c : nat.chains) {
    EXPECT_NE(c.name, "PREROUTING");
    EXPECT_NE(c.name, "ISTIO_INBOUND");
    if (c.name == "ISTIO_OUTPUT") {
      EXPECT_FALSE(std::holds_alternative<JumpTarget>(c.rules.back().target));
    }
  }
}

TEST(PlanTest, ProxyIdentityPrecedence) {
  PlanConfig k8s;
  PlanConfig os;
  os.distribution = Distribution::kOpenShift;
  {  // Container securityContext wins, even on OpenShift (no range needed).
    PodFacts pod = InjectedPod();
    pod.containers[1].run_as_user = 2000;
    pod.containers[1].run_as_group = 3000;
    auto plan = BuildPlan(pod, os);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->proxy_uid, 2000u);
    EXPECT_EQ(plan->proxy_gid, 3000u);
  }
  {  // Pod securityContext is inherited when the container has none.
    PodFacts pod = InjectedPod();
    pod.pod_run_as_user = 4000;
    auto plan = BuildPlan(pod, k8s);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->proxy_uid, 4000u);
    EXPECT_EQ(plan->proxy_gid, 1337u);
  }
  {  // runAsUser 0 is "not set".
    PodFacts pod = InjectedPod();
    pod.containers[1].run_as_user = 0;
    auto plan = BuildPlan(pod, k8s);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->proxy_uid, 1337u);
  }
  {  // OpenShift range.
    PodFacts pod = InjectedPod();
    pod.namespace_annotations[kOpenShiftUidRangeAnnotation] = "1000650000/10000";
    auto plan = BuildPlan(pod, os);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->proxy_uid, 1000650000u);
    EXPECT_EQ(plan->proxy_gid, 1000650000u);
    // ...which plain Kubernetes ignores.
    auto k = BuildPlan(pod, k8s);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(k->proxy_uid, 1337u);
  }
  {  // Config defaults.
    PlanConfig c;
    c.default_proxy_uid = 101;
    c.default_proxy_gid = 102;
    auto plan = BuildPlan(InjectedPod(), c);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->proxy_uid, 101u);
    EXPECT_EQ(plan->proxy_gid, 102u);
  }
  {  // Native sidecar (init container) carries the identity too.
    PodFacts pod = InjectedPod();
    pod.containers.pop_back();
    ContainerFacts proxy;
    proxy.name = "istio-proxy";
    proxy.restart_policy_always = true;
    proxy.run_as_user = 5000;
    pod.init_containers.push_back(proxy);
    auto plan = BuildPlan(pod, k8s);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->proxy_uid, 5000u);
  }
}

TEST(PlanTest, Families) {
  struct F {
    std::vector<std::string> ips;
    bool assume_v6;
    bool v4, v6;
  };
  // istio-iptables: IPv4 always; IPv6 for a pod whose first address is IPv6, or any IPv6 address with
  // ISTIO_DUAL_STACK (tested below); assume_ipv6 only decides for a pod without IPs.
  for (const F& f : std::vector<F>{{{}, false, true, false},
                                   {{}, true, true, true},
                                   {{"10.0.0.1"}, false, true, false},
                                   {{"fd00::1"}, false, true, true},
                                   {{"10.0.0.1", "fd00::1"}, false, true, false},
                                   {{"fd00::1", "10.0.0.1"}, false, true, true},
                                   {{"10.0.0.1"}, true, true, false}}) {
    PodFacts pod = InjectedPod();
    pod.pod_ips = f.ips;
    PlanConfig c;
    c.assume_ipv6 = f.assume_v6;
    auto plan = BuildPlan(pod, c);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->ipv4, f.v4);
    EXPECT_EQ(plan->ipv6, f.v6);
    Ruleset rs = BuildRuleset(*plan);
    EXPECT_EQ(rs.Find(Family::kIPv4) != nullptr, f.v4);
    EXPECT_EQ(rs.Find(Family::kIPv6) != nullptr, f.v6);
  }
}

TEST(PlanTest, DualStackSettingFromConfigOrProxyEnv) {
  PodFacts pod = InjectedPod();
  pod.pod_ips = {"10.0.0.1", "fd00::1"};
  PlanConfig dual;
  dual.dual_stack = true;
  EXPECT_TRUE(BuildPlan(pod, dual)->ipv6);
  pod.containers[1].env[kDualStackEnv] = "false";
  EXPECT_FALSE(BuildPlan(pod, dual)->ipv6);  // the pod's env wins, as in Istio's CNI plugin
  pod.containers[1].env[kDualStackEnv] = "1";
  EXPECT_TRUE(BuildPlan(pod, PlanConfig{})->ipv6);
  pod.containers[1].env[kDualStackEnv] = "yes";
  auto bad = BuildPlan(pod, PlanConfig{});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("ISTIO_DUAL_STACK"));
}

// Behaviour change: per pod like Istio's CNI plugin (ISTIO_META_DNS_CAPTURE in the istio-proxy env, the
// mesh-wide setting otherwise), and an excluded outbound port 53 no longer switches it off: Istio keeps the
// DNS rules (its port-53 RETURN comes first in ISTIO_OUTPUT).
TEST(PlanTest, DnsCapturePerPodEnvElseMeshWide) {
  PlanConfig c;
  c.capture_dns = true;
  PodFacts pod = InjectedPod();
  EXPECT_TRUE(BuildPlan(pod, c)->capture_dns);
  pod.annotations[kExcludeOutboundPortsAnnotation] = "53";
  EXPECT_TRUE(BuildPlan(pod, c)->capture_dns);
  EXPECT_FALSE(BuildPlan(InjectedPod(), PlanConfig{})->capture_dns);
  PodFacts env = InjectedPod();
  env.containers[1].env[kDnsCaptureEnv] = "true";
  EXPECT_TRUE(BuildPlan(env, PlanConfig{})->capture_dns);
  env.containers[1].env[kDnsCaptureEnv] = "False";
  EXPECT_FALSE(BuildPlan(env, c)->capture_dns);
}

TEST(PlanTest, RerouteAnnotationPrefersNewSpelling) {
  PodFacts pod = InjectedPod();
  pod.annotations[kKubevirtInterfacesAnnotation] = "old0";
  pod.annotations[kRerouteVirtualInterfacesAnnotation] = "new0";
  auto plan = BuildPlan(pod, {});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->reroute_interfaces, std::vector<std::string>{"new0"});
}

TEST(PlanTest, DefaultRulesetIsTwentyNatRules) {
  auto plan = BuildPlan(InjectedPod(), {});
  ASSERT_TRUE(plan.ok());
  Ruleset rs = BuildRuleset(*plan);
  ASSERT_EQ(rs.families.size(), 1u);
  ASSERT_EQ(rs.families[0].tables.size(), 1u);
  EXPECT_EQ(rs.families[0].tables[0].table, Table::kNat);
  size_t n = 0;
  for (const auto& c : rs.families[0].tables[0].chains) n += c.rules.size();
  EXPECT_EQ(n, 20u);
  EXPECT_TRUE(rs.routes.empty());
  EXPECT_TRUE(BuildRuleset(*plan) == rs);  // deterministic
}

TEST(PlanTest, TproxyAddsPolicyRoutesPerFamily) {
  PodFacts pod = InjectedPod();
  pod.annotations[kInterceptionModeAnnotation] = "TPROXY";
  pod.pod_ips = {"10.0.0.1", "fd00::1"};
  PlanConfig dual;
  dual.dual_stack = true;
  auto plan = BuildPlan(pod, dual);
  ASSERT_TRUE(plan.ok());
  Ruleset rs = BuildRuleset(*plan);
  ASSERT_EQ(rs.routes.size(), 2u);
  EXPECT_EQ(rs.routes[0], (PolicyRoute{Family::kIPv4, 1337, 133}));
  EXPECT_EQ(rs.routes[1], (PolicyRoute{Family::kIPv6, 1337, 133}));
  // With no inbound capture there is nothing to divert: no routes (tools/common/tproxy checks the same).
  pod.annotations[kIncludeInboundPortsAnnotation] = "";
  auto none = BuildPlan(pod, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(BuildRuleset(*none).routes.empty());
}

TEST(PlanTest, BuiltinChainsOnlyHoldJumpsToOurChains) {
  PodFacts pod = InjectedPod();
  pod.annotations[kInterceptionModeAnnotation] = "TPROXY";
  pod.annotations[kRerouteVirtualInterfacesAnnotation] = "tap0";
  pod.pod_ips = {"10.0.0.1", "fd00::1"};
  PlanConfig c;
  c.capture_dns = true;
  auto plan = BuildPlan(pod, c);
  ASSERT_TRUE(plan.ok());
  for (const auto& fr : BuildRuleset(*plan).families)
    for (const auto& t : fr.tables)
      for (const auto& ch : t.chains) {
        if (!ch.builtin()) continue;
        for (const auto& r : ch.rules) {
          const auto* j = std::get_if<JumpTarget>(&r.target);
          ASSERT_NE(j, nullptr) << ch.name;
          EXPECT_EQ(j->chain.rfind("ISTIO_", 0), 0u);
        }
      }
}

}  // namespace
}  // namespace pnc::rules
