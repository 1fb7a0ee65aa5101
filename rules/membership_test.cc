#include "rules/membership.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/annotations.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

using ::testing::HasSubstr;
using testing::InjectedPod;

PodFacts PlainPod() {
  PodFacts pod;
  pod.name = "plain";
  ContainerFacts app;
  app.name = "app";
  pod.containers.push_back(app);
  return pod;
}

void ExpectDecision(const PodFacts& pod, bool member, const std::string& reason_part) {
  MembershipDecision d = DecideMembership(pod);
  EXPECT_EQ(d.member, member) << d.reason;
  EXPECT_FALSE(d.reason.empty());
  EXPECT_THAT(d.reason, HasSubstr(reason_part));
}

TEST(MembershipTest, IstioInjectedPodIsMember) { ExpectDecision(InjectedPod(), true, "Istio-injected"); }

TEST(MembershipTest, NativeSidecarInitContainerCounts) {
  PodFacts pod = InjectedPod();
  ContainerFacts proxy = pod.containers.back();
  pod.containers.pop_back();
  proxy.restart_policy_always = true;
  pod.init_containers.push_back(proxy);
  ExpectDecision(pod, true, "Istio-injected");
  // A plain (run-to-completion) init container named istio-proxy is not a sidecar.
  pod.init_containers.back().restart_policy_always = false;
  ExpectDecision(pod, false, "no istio-proxy container");
}

TEST(MembershipTest, HostNetworkNeverMember) {
  PodFacts pod = InjectedPod();
  pod.host_network = true;
  ExpectDecision(pod, false, "hostNetwork");
  pod.annotations[kLegacyInitializeAnnotation] = "true";
  pod.namespace_annotations[kLegacyInitializeAnnotation] = "true";
  ExpectDecision(pod, false, "hostNetwork");
}

TEST(MembershipTest, InjectFalseOptsOut) {
  PodFacts pod = InjectedPod();
  pod.annotations[kInjectAnnotation] = "false";
  ExpectDecision(pod, false, "opted out by annotation");
  pod.labels[kInjectLabel] = "false";
  ExpectDecision(pod, false, "opted out by label");
  // The label is preferred over the annotation.
  pod.labels[kInjectLabel] = "true";
  ExpectDecision(pod, true, "Istio-injected");
  // Opt-out beats the 2018 opt-in too.
  PodFacts legacy = PlainPod();
  legacy.annotations[kLegacyInitializeAnnotation] = "true";
  legacy.labels[kInjectLabel] = "false";
  ExpectDecision(legacy, false, "opted out");
}

TEST(MembershipTest, InterceptionModeNoneIsNotAMemberNotAnError) {
  PodFacts pod = InjectedPod();
  pod.annotations[kInterceptionModeAnnotation] = "NONE";
  ExpectDecision(pod, false, "interceptionMode=NONE");
  pod.annotations[kInterceptionModeAnnotation] = " NONE ";
  ExpectDecision(pod, false, "interceptionMode=NONE");
  // Istio's values are case-sensitive: still a member, and BuildPlan rejects the value.
  pod.annotations[kInterceptionModeAnnotation] = "none";
  ExpectDecision(pod, true, "Istio-injected");
}

TEST(MembershipTest, IstioInitContainerExcludes) {
  PodFacts pod = InjectedPod();
  ContainerFacts init;
  init.name = kIstioInitContainerName;
  pod.init_containers.push_back(init);
  ExpectDecision(pod, false, "istio-init");
}

TEST(MembershipTest, ProxyWithoutStatusOrStatusWithoutProxy) {
  PodFacts pod = InjectedPod();
  pod.annotations.erase(kSidecarStatusAnnotation);
  ExpectDecision(pod, false, "not injected by Istio");
  PodFacts status_only = PlainPod();
  status_only.annotations[kSidecarStatusAnnotation] = "{}";
  ExpectDecision(status_only, false, "no istio-proxy container");
}

TEST(MembershipTest, LegacyOptInOnPod) {
  PodFacts pod = PlainPod();
  pod.annotations[kLegacyInitializeAnnotation] = "true";
  ExpectDecision(pod, true, "pod annotation istio-pod-network-controller/initialize=true");
}

TEST(MembershipTest, LegacyOptInOnNamespaceAndPodOverride) {
  PodFacts pod = PlainPod();
  pod.namespace_annotations[kLegacyInitializeAnnotation] = "true";
  ExpectDecision(pod, true, "namespace annotation");
  pod.annotations[kLegacyInitializeAnnotation] = "false";
  ExpectDecision(pod, false, "pod annotation istio-pod-network-controller/initialize=false");
  pod.namespace_annotations[kLegacyInitializeAnnotation] = "false";
  pod.annotations.erase(kLegacyInitializeAnnotation);
  ExpectDecision(pod, false, "namespace annotation istio-pod-network-controller/initialize=false");
}

TEST(MembershipTest, LegacyOptInInvalidValueIsEscapedInReason) {
  PodFacts pod = PlainPod();
  pod.annotations[kLegacyInitializeAnnotation] = "yes\n\x01" + std::string(200, 'x');
  MembershipDecision d = DecideMembership(pod);
  EXPECT_FALSE(d.member);
  EXPECT_THAT(d.reason, HasSubstr("\"yes\\n\\x01xxx"));
  EXPECT_EQ(d.reason.find('\n'), std::string::npos);
  EXPECT_LT(d.reason.size(), 300u);
  PodFacts ns = PlainPod();
  ns.namespace_annotations[kLegacyInitializeAnnotation] = "True";
  ExpectDecision(ns, false, "expected \"true\" or \"false\"");
}

TEST(MembershipTest, PlainPodIsNotMember) { ExpectDecision(PlainPod(), false, "not in the mesh"); }

}  // namespace
}  // namespace pnc::rules
