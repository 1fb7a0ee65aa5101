// FakeNode: kubelet + container runtime for the pods bound to one node, driven by an in-process watch on the
// Store.
//
// Lightweight mode: a pod gets a fake IP and goes Running at once (benchmarks; nodes without a controller).
// Netns mode (needs the netns sandbox), per pod, on its own thread, like kubelet's pod workers:
//   1. sandbox: a veth-linked network namespace from //netns/testing:sandbox; status.podIP/podIPs published
//      (phase Pending, init containers waiting); the sandbox is announced to the SandboxListener (fake CRI).
//   2. Downward API volumes <state>/<uid>/<volume> as the pod spec declares them (pod_shape.h; default
//      podinfo/pod_annotations), rewritten with kubelet's atomic ..data swap whenever the pod's annotations
//      or labels change.
//   3. init container: when the pod has a waiter init container (pod_shape.h: `pnc-waiter`, or
//   `istio-validation`
//      with the waiter's image, run with the pod spec's args and uid/gid), the REAL waiter binary runs inside
//      the pod netns (default uid 1000, non-root); its exit code and last output line go to
//      initContainerStatuses.
//   4. containers: a stand-in sidecar (listeners on 15001 and 15006 as the istio-proxy container's
//      runAsUser/runAsGroup, default 1337; a regular container or a native sidecar init container) and the
//      app
//   (uid
//      1000) that connects to a TEST-NET-1 address (192.0.2.10:80). Intercepted = the connection landed on
//      15001 with SO_ORIGINAL_DST 192.0.2.10:80. Without rules the SYN goes to the node peer, which forwards
//      nothing, so the connect times out (short timeout); with rules but no listener it is refused. A pod
//      outside the mesh is also probed for ANY netfilter table in its namespace (x_tables names, nft list
//      tables): none allowed.
//   5. status: phase Running (or Failed when the waiter failed: no init retries here), podIP(s), conditions,
//      init/container statuses.
//   Right when the waiter exits 0, before step 4, the node checks from real sockets that the pod's traffic is
//   ALREADY redirected (release_check.h: outbound to 15001, inbound to 15006, proxy uid/gid bypass) and
//   records the result with the mark it had seen: an app must never start before its redirection.
//   RecreateSandbox (a pause container crash, a runtime restart, a node reboot): the pod's containers and
//   network namespace are killed, and after `down` a NEW sandbox is created under the SAME pod UID (new
//   netns, new IP; the kernel may hand out the old nsfs inode again, never the old netns cookie). The
//   annotations stay as the API server has them (the old mark included), the Downward API volume is kept, the
//   status goes back to Pending with the new IP and restartCount + 1 (and a SandboxChanged Event), then the
//   waiter runs again as the init container and the pod continues as a new one. On deletion (DELETED, or
//   deletionTimestamp set by a graceful delete): the waiter is killed, listeners closed, the netns and volume
//   removed, the sandbox withdrawn; a graceful deletion is then completed with DELETE (grace 0).
// hostNetwork pods never get a netns: they report the node's IP and go Running.
#ifndef PNC_SIMULATOR_NODE_H_
#define PNC_SIMULATOR_NODE_H_

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "netns/cri/testing/sandbox_client.h"
#include "simulator/apiserver/store.h"
#include "simulator/pod_shape.h"
#include "simulator/recorder.h"
#include "simulator/sandbox_pool.h"

namespace pnc::netns::testing {
class Sandbox;
}
namespace pnc::netns::cri_testing {
class Containerd;
class SandboxClient;
class ContainerClient;
}  // namespace pnc::netns::cri_testing

namespace pnc::sim {

// What a container runtime knows about a sandbox (for the fake CRI server).
struct SandboxInfo {
  std::string id;  // sandbox id
  std::string pod_uid, pod_namespace, pod_name;
  std::string netns_path;
  std::string ip;
};

class SandboxListener {
 public:
  virtual ~SandboxListener() = default;
  virtual void SandboxReady(const SandboxInfo& info) = 0;
  virtual void SandboxRemoved(const SandboxInfo& info) = 0;
};

struct NodeOptions {
  std::string name;
  bool lightweight = false;
  std::string state_dir;      // per-node directory for Downward API volumes and logs
  std::string waiter_binary;  // required in netns mode for pods with a waiter init container (pod_shape.h)
  absl::Duration waiter_timeout = absl::Seconds(60);
  uid_t app_uid = 1000;
  uid_t proxy_uid = 1337;  // and gid
  std::string test_net_ip = "192.0.2.10";
  uint16_t test_net_port = 80;
  absl::Duration no_redirect_timeout = absl::Milliseconds(300);
  // How late annotation changes reach the Downward API file (kubelet refreshes volumes on its own schedule);
  // changes within the window are coalesced. 0: at once.
  absl::Duration downward_api_delay = absl::ZeroDuration();
  // Pod namespaces created before the scenario starts and refilled in the background (sandbox_pool.h); 0:
  // each sandbox is created when its pod arrives.
  size_t sandbox_pool = 0;
  // setpriority() of every pod worker thread (inherited by the waiters it starts); 0: unchanged.
  int kubelet_nice = 0;
  // Runtime NETNS: at most this many sandboxes become ready per second, in arrival order (a real runtime's
  // throughput); 0: no limit.
  double sandboxes_per_second = 0;
  // Runtime containerd (scenario Node.runtime; not owned, must outlive the node): sandboxes through its CRI
  // (RunPodSandbox with attempt = sandbox generation, the pod IP and netns path from PodSandboxStatus,
  // StopPodSandbox + RemovePodSandbox at the end), the waiter as a container of `waiter_image` (imported into
  // it) with each Downward API volume directory bind-mounted read-only at the same path (the waiter's
  // --file= argument is the node path), its exit code from ContainerStatus and its last log line from the
  // CRI log. The release check's client side is the runtime's node netns (the CNI bridge, `cri_gateway_ip`);
  // release checks are serialized per node (they share the bridge address's bypass port). No netns sandbox.
  netns::cri_testing::Containerd* containerd = nullptr;
  std::string waiter_image;
  std::string cri_gateway_ip = "10.251.0.1";
};

class FakeNode {
 public:
  // `sandbox` may be null in lightweight mode; `listener` may be null.
  FakeNode(Store* store, Recorder* recorder, NodeOptions options, netns::testing::Sandbox* sandbox,
           SandboxListener* listener);
  ~FakeNode();  // Stop()

  // Creates the Node object and starts watching pods with spec.nodeName=<name>.
  absl::Status Start();
  void Stop();
  const std::string& name() const { return options_.name; }
  // Pods whose worker is still running (not yet settled or not yet torn down).
  int busy() const;
  // See the file comment. NotFound if no live pod ns/name runs (in netns mode) on this node.
  absl::Status RecreateSandbox(const std::string& ns, const std::string& name, absl::Duration down);

  // For every live pod with a sandbox: the netfilter tables in its netns ("" = none), by pod uid.
  std::map<std::string, absl::StatusOr<std::string>> LivePodTables();

  struct Pod;

 private:
  class Sink;
  void Dispatch();
  // `at`: when the store committed the event (latencies are taken from there, not from this node's dispatch).
  void OnPodEvent(const std::string& type, const ObjectPtr& pod, absl::Time at);
  void RunPod(std::shared_ptr<Pod> pod);
  enum class SandboxEnd { kDeleted, kRecreate };
  // One sandbox of the pod, from creation to deletion or a recreation request; `generation` counts from 0.
  SandboxEnd RunSandbox(const std::shared_ptr<Pod>& pod, int generation);
  // Runtime containerd: the waiter as a CRI container in `sandbox_id`; returns its exit code and last log
  // line (127 and the reason when it could not run). Stops it when the pod is deleted or its sandbox
  // recreated.
  std::pair<int, std::string> RunCriWaiter(const std::shared_ptr<Pod>& pod, const std::string& sandbox_id,
                                           const netns::cri_testing::PodSpec& cri_pod,
                                           const std::string& name, const std::vector<std::string>& args,
                                           std::optional<uid_t> uid, std::optional<gid_t> gid,
                                           const std::string& log);
  void PublishStatus(const Pod& pod, const nlohmann::json& status);
  void FinishDeletion(const std::string& ns, const std::string& name, const std::string& uid);
  void RefreshVolumeLocked(Pod& pod);

  Store* store_;
  Recorder* recorder_;
  NodeOptions options_;
  netns::testing::Sandbox* sandbox_;
  SandboxListener* listener_;
  std::unique_ptr<SandboxPool> pool_;
  // The next moment the fake runtime may make a sandbox ready (NodeOptions::sandboxes_per_second).
  absl::Mutex pace_mu_;
  absl::Time next_sandbox_ ABSL_GUARDED_BY(pace_mu_) = absl::InfinitePast();
  std::unique_ptr<netns::cri_testing::SandboxClient> cri_sandboxes_;     // runtime containerd
  std::unique_ptr<netns::cri_testing::ContainerClient> cri_containers_;  // runtime containerd
  absl::Mutex release_check_mu_;  // runtime containerd: one release check at a time (shared bridge address)
  std::shared_ptr<Sink> sink_;
  uint64_t watch_id_ = 0;
  mutable absl::Mutex mu_;
  struct Event {
    std::string type;
    ObjectPtr object;
    absl::Time at;
  };
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<absl::Time, std::shared_ptr<Pod>>> refreshes_ ABSL_GUARDED_BY(mu_);  // by due time
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<Pod>> pods_;  // by uid; dispatcher thread only
  std::thread dispatcher_;
  int next_ip_ = 2;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_NODE_H_
