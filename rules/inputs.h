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
  // env[].name -> env[].value (literal values only). Read for the istio-proxy container: the Istio CNI
  // plugin takes ISTIO_META_DNS_CAPTURE and ISTIO_DUAL_STACK from there (the injector renders the mesh's
  // and the pod's proxyMetadata into it).
  std::map<std::string, std::string> env;
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
  // Mesh-wide ISTIO_META_DNS_CAPTURE: used for a pod whose istio-proxy container does not set the variable
  // itself (Istio's CNI plugin reads only the container's env, which the injector fills from the mesh's
  // defaultConfig.proxyMetadata and the pod's proxy.istio.io/config; a pod whose env we do not see gets the
  // mesh's value).
  bool capture_dns = false;
  // Mesh-wide ISTIO_DUAL_STACK (same precedence as capture_dns): IPv6 rules also for a pod that has an IPv4
  // address. Without it, like istio-iptables, IPv6 is programmed only for a pod whose primary address is
  // IPv6 (IPv6 single-stack); IPv4 always.
  bool dual_stack = false;
  // Families when the pod has no IPs yet: IPv4, plus IPv6 when this is set (IPv6 single-stack clusters).
  bool assume_ipv6 = false;
};

}  // namespace pnc::rules

#endif  // PNC_RULES_INPUTS_H_
