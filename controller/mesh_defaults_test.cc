#include "controller/mesh_defaults.h"

#include "gtest/gtest.h"
#include "rules/annotations.h"

namespace pnc::controller {
namespace {

TEST(MeshDefaults, FillOnlyWhatThePodDoesNotSet) {
  MeshDefaults d;
  d.annotations[rules::kExcludeOutboundIPRangesAnnotation] = "169.254.169.254/32";
  d.annotations[rules::kIncludeOutboundIPRangesAnnotation] = "10.0.0.0/8";
  rules::PodFacts pod;
  pod.annotations[rules::kIncludeOutboundIPRangesAnnotation] = "*";  // the pod's own value wins, as in Istio
  ApplyMeshDefaults(d, &pod);
  EXPECT_EQ(pod.annotations[rules::kIncludeOutboundIPRangesAnnotation], "*");
  EXPECT_EQ(pod.annotations[rules::kExcludeOutboundIPRangesAnnotation], "169.254.169.254/32");
}

TEST(MeshDefaults, BadValuesFailAtStartup) {
  rules::PlanConfig config;
  MeshDefaults ok;
  ok.annotations[rules::kExcludeInboundPortsAnnotation] = "15090,8081";
  ok.annotations[rules::kInterceptionModeAnnotation] = "TPROXY";
  EXPECT_TRUE(ValidateMeshDefaults(ok, config).ok());
  MeshDefaults none;
  none.annotations[rules::kInterceptionModeAnnotation] = "NONE";
  EXPECT_TRUE(ValidateMeshDefaults(none, config).ok());
  MeshDefaults bad;
  bad.annotations[rules::kIncludeOutboundIPRangesAnnotation] = "10.0.0.0/33";
  absl::Status st = ValidateMeshDefaults(bad, config);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("10.0.0.0/33"), absl::string_view::npos) << st;
  MeshDefaults foreign;
  foreign.annotations["example.com/x"] = "1";
  EXPECT_FALSE(ValidateMeshDefaults(foreign, config).ok());
}

}  // namespace
}  // namespace pnc::controller
