// How a fake node reads the pod spec of a mesh pod, the way kubelet would run it:
//   - Downward API volumes: every `downwardAPI` volume of the pod with metadata.annotations / metadata.labels
//     items becomes <pod_dir>/<volume name>/<item path> (Istio's `istio-podinfo`: `annotations`, `labels`);
//     a pod without one gets the simulator's own `podinfo` volume with `pod_annotations`.
//   - The waiter init container: `pnc-waiter` (the simulator's own shape; the node supplies its args), or
//     `istio-validation` whose image is the waiter's (path b of docs/deploy.md: the injection template's
//     override). The latter runs with the pod spec's args: a --file=<path> under one of the container's
//     volumeMounts of a Downward API volume becomes that volume's directory on the node; any other --file
//     path is an error, like a missing mount in a real pod. runAsUser/runAsGroup come from its
//     securityContext. Istio's own istio-validation (path a: proxyv2 running istio-iptables --run-validation)
//     is not modelled: Unimplemented.
//   - The proxy: `istio-proxy` as a regular container or as a native sidecar (an init container with
//     restartPolicy Always), its runAsUser/runAsGroup.
#ifndef PNC_SIMULATOR_POD_SHAPE_H_
#define PNC_SIMULATOR_POD_SHAPE_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

inline constexpr char kWaiterContainer[] = "pnc-waiter";
inline constexpr char kIstioValidationContainer[] = "istio-validation";

struct DownwardVolumeSpec {
  std::string volume;  // directory name below the pod's state dir
  // (item path, fieldPath): fieldPath is metadata.annotations or metadata.labels
  std::vector<std::pair<std::string, std::string>> items;
};

std::vector<DownwardVolumeSpec> DownwardVolumes(const nlohmann::json& pod);

struct WaiterContainer {
  std::string name;
  std::vector<std::string> args;  // without argv[0]
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

// nullopt: no waiter init container. `pod_dir` is where DownwardVolumes() live on the node; `timeout` is the
// --timeout the node gives a `pnc-waiter` (whose spec carries no args).
absl::StatusOr<std::optional<WaiterContainer>> FindWaiter(const nlohmann::json& pod,
                                                          const std::string& pod_dir, absl::Duration timeout);

struct ProxyContainer {
  bool found = false;
  bool native_sidecar = false;  // an init container with restartPolicy Always
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};
ProxyContainer FindProxy(const nlohmann::json& pod);

// A container image's repository name without registry path, tag or digest, e.g. quay.io/x/waiter:0.1.0 ->
// waiter.
std::string ImageName(const std::string& image);

// Whether the init container is a native sidecar (restartPolicy Always): kubelet reports it running.
bool IsNativeSidecar(const nlohmann::json& container);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_POD_SHAPE_H_
