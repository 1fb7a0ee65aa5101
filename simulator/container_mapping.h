// How a fake node runs a DaemonSet's container without a container runtime: the image is mapped to a locally
// built binary and the pod spec's wiring is translated to this machine, so the chart's flags, env and mounts
// are what the process gets:
//   - command/args with $(VAR) expanded from the container's env (Downward API fieldRefs: spec.nodeName,
//     metadata.name, metadata.namespace; literal values);
//   - a hostPath volume of type Socket (the CRI socket) mounted at P: "unix://P" becomes the node's fake CRI
//     endpoint;
//   - an emptyDir mounted at P: the prefix P in args and env values becomes a per-pod directory;
//   - --metrics_address=<host>:<containerPort>: 127.0.0.1:<free port> (all fake nodes share this host's
//   network;
//     a real pod has its own IP); the readiness probe is then served there;
//   - the service account token mount: KUBECONFIG=<the simulator's kubeconfig> (the controller falls back to
//   it
//     when the in-cluster files are absent).
// Securitycontext, resources and probes other than readiness are not enforced.
#ifndef PNC_SIMULATOR_CONTAINER_MAPPING_H_
#define PNC_SIMULATOR_CONTAINER_MAPPING_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "simulator/process.h"

namespace pnc::sim {

struct NodeRuntime {
  std::string node_name;
  std::string cri_endpoint;  // e.g. unix-abstract:pnc-sim-1-0
  std::string pod_name, pod_namespace;
  std::string pod_dir;  // emptyDir volumes go below
};

struct ImageMap {
  // image repository's last path component (before ':' / '@') -> binary, e.g. "controller" -> .../controller
  std::map<std::string, std::string> binaries;
  std::string kubeconfig;
};

struct MappedContainer {
  SpawnOptions spawn;
  int metrics_port = 0;  // where /readyz is served (0: none found)
};

// Unimplemented for an image with no mapping; InvalidArgument for a container the pod spec cannot wire.
absl::StatusOr<MappedContainer> MapContainer(const nlohmann::json& pod_spec, const nlohmann::json& container,
                                             const NodeRuntime& node, const ImageMap& images);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_CONTAINER_MAPPING_H_
