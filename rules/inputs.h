// Inputs of the pure rule pipeline: what the controller knows about a pod (from the API server) and its own
// configuration (from flags). kube/ fills PodFacts from a Pod + its Namespace; rules/ never sees JSON or
// HTTP.
//
// Everything in PodFacts is untrusted tenant input: rules/ validates it strictly (see plan.h).
#ifndef PNC_RULES_INPUTS_H_
#define PNC_RULES_INPUTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pnc::rules {

struct ContainerPortFacts {
  int64_t container_port = 0;  // as found in the spec; validated by rules/
  std::string protocol;        // "TCP", "UDP", "SCTP" or empty (= TCP)
};

struct ContainerFacts {
  std::string name;
  std::optional<int64_t> run_as_user;   // container securityContext.runAsUser
  std::optional<int64_t> run_as_group;  // container securityContext.runAsGroup
  std::vector<ContainerPortFacts> ports;
  bool restart_policy_always = false;  // init container with restartPolicy: Always (native sidecar)
};

struct PodFacts {
  std::string uid;
  std::string name;
  std::string namespace_name;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> namespace_annotations;  // of the pod's Namespace object
  std::map<std::string, std::string> namespace_labels;
  bool host_network = false;
  std::optional<int64_t> pod_run_as_user;   // pod securityContext.runAsUser
  std::optional<int64_t> pod_run_as_group;  // pod securityContext.runAsGroup
  std::vector<ContainerFacts> containers;
  std::vector<ContainerFacts> init_containers;
  std::vector<std::string> pod_ips;  // status.podIPs[*].ip (may be empty before the sandbox has an IP)
};

enum class Distribution { kKubernetes, kOpenShift };

// Controller-wide configuration (flags). Defaults match Istio's sidecar defaults.
struct PlanConfig {
  Distribution distribution = Distribution::kKubernetes;
  uint32_t default_proxy_uid = 1337;
  uint32_t default_proxy_gid = 1337;
  bool capture_dns =
      false;  // like Istio's ISTIO_META_DNS_CAPTURE; a pod annotation may not turn it on by itself
  // Families to program when the pod has no IPs yet: IPv4 always; IPv6 only when the pod has an IPv6 address
  // or this is set (clusters that are IPv6 single-stack).
  bool assume_ipv6 = false;
};

}  // namespace pnc::rules

#endif  // PNC_RULES_INPUTS_H_
