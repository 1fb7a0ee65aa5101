// Controller: wires the pod/namespace reflectors, the informer cache, the work queue, N workers running the
// Reconciler, and a periodic resync. main.cc builds one from flags; tests build one over kube::FakeClient.
#ifndef PNC_CONTROLLER_CONTROLLER_H_
#define PNC_CONTROLLER_CONTROLLER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/informer.h"
#include "controller/mesh_defaults.h"
#include "controller/metrics.h"
#include "controller/queue.h"
#include "controller/reconciler.h"
#include "controller/sandbox_poller.h"
#include "kube/client.h"
#include "kube/reflector.h"
#include "netns/dir_watcher.h"

namespace pnc::controller {

// The work queue priority of a pod event. kFirst: a pod not set up yet whose status.podIPs is published (the
// kubelet has its sandbox: an init container is about to wait for us). kRecheck: a pod set up already (the
// echo of its mark, a later status update), and a pod whose podIPs are not published yet: as far as the
// kubelet has said it has no sandbox, so its locate is a poll (the sandbox poller and its podIP event move it
// up).
WorkQueue::Priority EventPriority(bool set_up, bool pod_ips_published);

struct ControllerOptions {
  std::string node_name;
  int workers = 4;
  absl::Duration resync = absl::Minutes(5);  // re-verify initialized pods; 0 disables
  int watch_timeout_seconds = 300;
  int stuck_event_after = 8;  // failed attempts of one pod before a RedirectionDelayed Event (0: never)
  absl::Duration watch_backoff_base = absl::Milliseconds(200);
  WorkQueue::Options queue;
  AddressReader read_addresses;  // empty: netns::ReadGlobalAddresses (tests with fake handles inject one)
  netns::Inspector* inspector =
      nullptr;                 // null: a netns::KernelInspector (tests with fake handles inject one)
  std::string boot_id;         // empty: read from /proc/sys/kernel/random/boot_id
  MeshDefaults mesh_defaults;  // mesh-wide settings for pods that do not carry them (mesh_defaults.h)
  // The runtime's network-namespace directory (containerd and CRI-O bind-mount each sandbox netns there);
  // a new file releases the pods waiting for their sandbox. Empty: no watch.
  std::string netns_dir;
  // A pod whose sandbox does not exist yet is retried with backoff, but never later than this.
  absl::Duration sandbox_wait_cap = absl::Seconds(1);
  // Meanwhile one runtime call lists the ready sandboxes for all waiting pods (controller/sandbox_poller.h);
  // a new file in netns_dir makes it poll at fast_interval for a while. interval 0: no poller.
  SandboxPoller::Options sandbox_poll;
  netns::ProofMarker* marker =
      nullptr;  // null: a netns::KernelProofMarker (tests with fake handles inject one)
};

class Controller {
 public:
  Controller(ControllerOptions options, kube::Client* client, netns::Locator* locator,
             netns::Backend* backend, rules::PlanConfig plan_config, Metrics* metrics);
  ~Controller();

  void Start();
  // Ready once pods and namespaces have been listed once.
  bool Ready() const;
  // Stops the watches, stops handing out work and waits for in-flight reconciles up to `deadline`. Returns
  // false if some worker was still busy at the deadline (its thread is detached; the caller should exit
  // promptly).
  bool Stop(absl::Duration deadline);

  const Informer& informer() const { return informer_; }
  WorkQueue& queue() { return queue_; }
  const Reconciler& reconciler() const { return reconciler_; }

 private:
  void Worker();
  // After a reconcile: forget, retry later or park the pod, and log the outcome. True when the pod now waits
  // on the backstop timer (it relies on the sandbox poller).
  bool Requeue(const std::string& uid, const ReconcileResult& r, absl::Duration took);
  bool RetryLater(const std::string& uid, const ReconcileResult& r, absl::Duration took);
  void ResyncLoop();

  ControllerOptions options_;
  kube::Client* client_;
  netns::Locator* locator_;
  Metrics* metrics_;
  WorkQueue queue_;
  Informer informer_;
  Reconciler reconciler_;
  std::unique_ptr<kube::Reflector<kube::Pod>> pod_reflector_;
  std::unique_ptr<kube::Reflector<kube::Namespace>> ns_reflector_;
  std::vector<std::thread> threads_;  // reflectors + resync
  std::vector<std::thread> workers_;
  std::unique_ptr<SandboxPoller> sandbox_poller_;
  std::unique_ptr<netns::DirWatcher> sandbox_watcher_;
  absl::Mutex mu_;
  int busy_workers_ ABSL_GUARDED_BY(mu_) = 0;
  int live_workers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ = false;
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_CONTROLLER_H_
