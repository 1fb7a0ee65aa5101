// Runs a Scenario: fake API server + fake nodes + the real controller (one child process per node) + the real
// waiter, plays the timeline (creations, deletions, recreations, controller restarts, faults), then checks
// the expectations and builds the report.
#ifndef PNC_SIMULATOR_RUNNER_H_
#define PNC_SIMULATOR_RUNNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "simulator/scenario.pb.h"

namespace pnc::sim {

struct RunnerOptions {
  std::string controller_binary;  // empty: no controller (only lightweight nodes make sense then)
  std::string waiter_binary;
  std::string backend = "iptc";  // --backend for the controller
  std::vector<std::string> controller_extra_args;
  std::string work_dir;  // logs, kubeconfig, Downward API volumes; created if missing
  bool tls = true;       // the controller talks HTTPS with a bearer token, like in a cluster
  bool verbose = false;
  // For `helm` steps: the Helm binary and the chart directory (charts/istio-pod-network-controller).
  std::string helm_binary;
  std::string chart_dir;
  // For nodes with runtime CONTAINERD: the static pause binary (//netns/cri/testing:pause) and the waiter
  // image (tools/images/build.sh --only waiter: the oci-archive and the reference it holds).
  std::string pause_binary;
  std::string waiter_image_archive;
  std::string waiter_image;
};

struct Report {
  bool passed = false;
  std::string text;  // human-readable table + summary
  nlohmann::json json;
};

// Needs the netns sandbox for non-lightweight nodes: call netns::testing::Sandbox::Get() first, while the
// process is still single-threaded (RunScenario does it, but only works if nothing started threads before).
absl::StatusOr<Report> RunScenario(const proto::Scenario& scenario, const RunnerOptions& options);

// Parses a text proto and validates it (ValidateScenario).
absl::StatusOr<proto::Scenario> LoadScenario(const std::string& path);
// References are consistent: unique node/template names, creations use known templates, namespaces and nodes.
absl::Status ValidateScenario(const proto::Scenario& scenario);

// The pod the runner creates from a template (`node` empty: not bound yet), before the API server fills in
// uid, resourceVersion and status.
nlohmann::json PodFromTemplate(const proto::PodTemplate& t, const std::string& ns, const std::string& name,
                               const std::string& node);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_RUNNER_H_
