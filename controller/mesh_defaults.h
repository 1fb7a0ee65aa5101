// MeshDefaults: the mesh-wide redirection settings, as Istio's injector applies them.
//
// Istio keeps mesh-wide capture settings in its injector values (global.proxy.includeIPRanges,
// excludeIPRanges, includeInboundPorts, excludeInboundPorts, excludeOutboundPorts, ...) and in meshConfig
// (defaultConfig.interceptionMode). With the CNI-mode injection this product replaces Istio's CNI agent in
// (pilot.cni.enabled), the injector renders each of them into the pod's own `traffic.sidecar.istio.io/*` and
// `sidecar.istio.io/interceptionMode` annotations, with a pod annotation taking precedence, and the CNI
// plugin reads only the pod. So an Istio-injected pod already carries the mesh's values and no ConfigMap of
// istiod needs to be read (nor RBAC granted for it). These defaults cover pods that do not carry them: the
// 2018 opt-in, pods written by hand, an injection template that omits them. A pod's own annotation always
// wins.
#ifndef PNC_CONTROLLER_MESH_DEFAULTS_H_
#define PNC_CONTROLLER_MESH_DEFAULTS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "rules/inputs.h"

namespace pnc::controller {

struct MeshDefaults {
  // Annotation name (one of the redirection annotations of rules/annotations.h) -> value, as the injector
  // would write it.
  std::map<std::string, std::string> annotations;
};

// Fills every annotation of `defaults` that the pod does not set itself.
void ApplyMeshDefaults(const MeshDefaults& defaults, rules::PodFacts* pod);

// OK when every default names a redirection annotation and a pod carrying all of them plans (so a bad flag
// fails at startup, not per pod); else InvalidArgument naming the value.
absl::Status ValidateMeshDefaults(const MeshDefaults& defaults, const rules::PlanConfig& config);

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_MESH_DEFAULTS_H_
