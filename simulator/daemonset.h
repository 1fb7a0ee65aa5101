// FakeDaemonSets: the DaemonSet controller and the nodes' kubelets for DaemonSets (what `helm install` of the
// chart creates). For every DaemonSet in the store and every fake node its nodeSelector matches, one process
// runs the pod template's first container, mapped by container_mapping.h (image -> local binary, the chart's
// args, env and mounts translated). A spec change (new generation: `helm upgrade`) replaces the processes
// node by node (SIGTERM, then start the new template), a deletion (`helm uninstall`) stops them. The
// DaemonSet's status (observedGeneration, desired/current/updated/ready/available counts, from each process's
// /readyz) is written back so `helm --wait` and `kubectl rollout status` see the rollout.
#ifndef PNC_SIMULATOR_DAEMONSET_H_
#define PNC_SIMULATOR_DAEMONSET_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "simulator/apiserver/store.h"
#include "simulator/container_mapping.h"
#include "simulator/process.h"

namespace pnc::sim {

struct DaemonSetNode {
  std::string name;
  std::string cri_endpoint;
};

struct DaemonSetOptions {
  ImageMap images;
  std::string work_dir;  // logs: <work_dir>/ds-<name>-<node>.log
};

class FakeDaemonSets {
 public:
  FakeDaemonSets(Store* store, DaemonSetOptions options, std::vector<DaemonSetNode> nodes);
  ~FakeDaemonSets();  // Stop()

  absl::Status Start();
  void Stop();  // every DaemonSet pod stopped

  // Processes currently running (all DaemonSets).
  int Running() const;
  // One line per start/stop/failure, in order.
  std::vector<std::string> History() const;
  // pids of the running processes (for resource sampling), by "<namespace>/<name>@<node>".
  std::map<std::string, pid_t> Pids() const;

 private:
  class Sink;
  struct DsPod {
    int64_t generation = 0;
    std::optional<ChildProcess> process;
    int metrics_port = 0;
  };
  void Loop();
  void Reconcile(const std::string& key, const ObjectPtr& ds);  // ds null: deleted
  void StopPod(const std::string& pod_key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Note(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* store_;
  DaemonSetOptions options_;
  std::vector<DaemonSetNode> nodes_;
  std::shared_ptr<Sink> sink_;
  uint64_t watch_id_ = 0;
  // Separate from mu_: the store calls the sink while it commits, and stopping a process (up to its grace
  // period, during which it may still talk to the API server) must never hold up the store.
  absl::Mutex events_mu_;
  std::deque<std::pair<std::string, ObjectPtr>> events_ ABSL_GUARDED_BY(events_mu_);  // null object: deleted
  bool stopping_ ABSL_GUARDED_BY(events_mu_) = false;
  mutable absl::Mutex mu_;
  std::map<std::string, DsPod> pods_ ABSL_GUARDED_BY(mu_);  // "<ns>/<ds>@<node>"
  std::vector<std::string> history_ ABSL_GUARDED_BY(mu_);
  std::thread
      loop_;  // also the parent thread of the processes (PR_SET_PDEATHSIG follows the spawning thread)
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_DAEMONSET_H_
