// Typed views of the Kubernetes objects the controller uses, and their JSON decoding.
//
// Only the fields we read are kept; unknown fields are ignored. Every decoder takes untrusted bytes and
// returns InvalidArgument on malformed JSON or on a field of the wrong type; it never throws and never
// crashes.
#ifndef PNC_KUBE_TYPES_H_
#define PNC_KUBE_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/inputs.h"

namespace pnc::kube {

struct ContainerPort {
  int64_t container_port = 0;
  std::string protocol;  // as written; empty means TCP
};

struct Container {
  std::string name;
  std::optional<int64_t> run_as_user;   // securityContext.runAsUser
  std::optional<int64_t> run_as_group;  // securityContext.runAsGroup
  std::vector<ContainerPort> ports;
  std::string restart_policy;  // init containers only: "Always" marks a native sidecar
  // istio-proxy only: env entries named ISTIO_* with a literal value (the injector renders the mesh's and the
  // pod's proxyMetadata there, e.g. ISTIO_META_DNS_CAPTURE, ISTIO_DUAL_STACK). Other containers' env is not
  // kept (memory per cached pod).
  std::map<std::string, std::string> env;
};

struct Pod {
  std::string uid;
  std::string name;
  std::string namespace_name;
  std::string resource_version;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> labels;
  bool deleting = false;  // metadata.deletionTimestamp is set
  std::string node_name;
  bool host_network = false;
  std::optional<int64_t> run_as_user;   // spec.securityContext.runAsUser
  std::optional<int64_t> run_as_group;  // spec.securityContext.runAsGroup
  std::vector<Container> containers;
  std::vector<Container> init_containers;
  std::string phase;                 // status.phase
  std::vector<std::string> pod_ips;  // status.podIPs[*].ip, falling back to status.podIP
};

struct Namespace {
  std::string uid;
  std::string name;
  std::string resource_version;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> labels;
};

// A metav1.Status as returned by the API server for failures (and inside watch ERROR events).
struct ApiStatus {
  int code = 0;        // HTTP code, e.g. 410
  std::string reason;  // e.g. "Expired", "NotFound", "Conflict"
  std::string message;
};

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };
const char* EventTypeName(EventType t);

// One line of a watch stream. For kBookmark only object.resource_version is meaningful; for kError only
// `status`.
template <typename T>
struct WatchEvent {
  EventType type = EventType::kAdded;
  T object;
  ApiStatus status;
};

template <typename T>
struct ObjectList {
  std::vector<T> items;
  std::string resource_version;  // list metadata.resourceVersion: where a following watch starts
  std::string continue_token;    // non-empty when the server paginated
};

absl::StatusOr<Pod> DecodePod(std::string_view json);
absl::StatusOr<Namespace> DecodeNamespace(std::string_view json);
absl::StatusOr<ObjectList<Pod>> DecodePodList(std::string_view json);
absl::StatusOr<ObjectList<Namespace>> DecodeNamespaceList(std::string_view json);
absl::StatusOr<WatchEvent<Pod>> DecodePodWatchEvent(std::string_view line);
absl::StatusOr<WatchEvent<Namespace>> DecodeNamespaceWatchEvent(std::string_view line);
// A metav1.Status body (error responses). NotFound if the body is JSON but not a Status.
absl::StatusOr<ApiStatus> DecodeStatus(std::string_view json);

// What rules/ needs to know about a pod. `ns` may be null when the namespace is unknown (treated as no
// labels).
rules::PodFacts ToPodFacts(const Pod& pod, const Namespace* ns);

}  // namespace pnc::kube

#endif  // PNC_KUBE_TYPES_H_
