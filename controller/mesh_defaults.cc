#include "controller/mesh_defaults.h"

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "rules/annotations.h"
#include "rules/plan.h"

namespace pnc::controller {
namespace {

bool IsRedirectionAnnotation(const std::string& key) {
  for (const char* k : {rules::kInterceptionModeAnnotation, rules::kIncludeOutboundIPRangesAnnotation,
                        rules::kExcludeOutboundIPRangesAnnotation, rules::kIncludeInboundPortsAnnotation,
                        rules::kExcludeInboundPortsAnnotation, rules::kIncludeOutboundPortsAnnotation,
                        rules::kExcludeOutboundPortsAnnotation, rules::kExcludeInterfacesAnnotation}) {
    if (key == k) return true;
  }
  return false;
}

}  // namespace

void ApplyMeshDefaults(const MeshDefaults& defaults, rules::PodFacts* pod) {
  for (const auto& [k, v] : defaults.annotations) pod->annotations.emplace(k, v);  // never overwrites
}

absl::Status ValidateMeshDefaults(const MeshDefaults& defaults, const rules::PlanConfig& config) {
  rules::PodFacts pod;
  pod.uid = "mesh-defaults";
  pod.name = "mesh-defaults";
  pod.namespace_name = "mesh-defaults";
  pod.containers.push_back({rules::kProxyContainerName, 1337, 1337, {}, false, {}});
  pod.pod_ips = {"10.0.0.1"};
  for (const auto& [k, v] : defaults.annotations) {
    if (!IsRedirectionAnnotation(k))
      return absl::InvalidArgumentError(
          absl::StrCat("mesh default for ", k, ": not a redirection annotation"));
    pod.annotations[k] = v;
  }
  if (auto it = pod.annotations.find(rules::kInterceptionModeAnnotation);
      it != pod.annotations.end() && it->second == "NONE") {
    pod.annotations.erase(it);  // NONE is "no redirection", valid, and not plannable by itself
  }
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(pod, config);
  if (!plan.ok())
    return absl::InvalidArgumentError(absl::StrCat("mesh-wide default: ", plan.status().message()));
  return absl::OkStatus();
}

}  // namespace pnc::controller
