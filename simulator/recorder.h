// Recorder: the per-pod timeline the report is built from, filled by the scenario runner and the fake nodes.
#ifndef PNC_SIMULATOR_RECORDER_H_
#define PNC_SIMULATOR_RECORDER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simulator/release_check.h"

namespace pnc::sim {

// One network namespace a node created for a pod (a recreate_sandbox step adds another under the same UID).
struct SandboxRecord {
  uint64_t inode = 0;   // nsfs inode
  uint64_t cookie = 0;  // SO_NETNS_COOKIE (0: unreadable)
  std::string ip;
  // What its waiter did (kept when a later sandbox replaces it, so a too-early release is never forgotten).
  std::optional<int> waiter_exit;
  bool redirected_at_release = false;  // release_check passed when the waiter exited 0
  std::string release_summary;         // release_check.Summary() + the mark then
};

// What a forging tenant wrote on the pod at creation (set by the runner), and what it based its guesses on.
struct ForgeryRecord {
  std::string kind;  // "predicted inode", "predicted cookie", "status only", ...
  std::map<std::string, std::string> annotations;      // the forged mark as written
  uint64_t throwaway_inode = 0, throwaway_cookie = 0;  // the throwaway netns created and freed just before
  std::vector<std::string> spray;  // netns values patched on the pod one after the other after its creation
};

struct PodRecord {
  std::string uid, namespace_name, name, template_name, node;
  absl::Time created = absl::InfinitePast();        // create committed
  absl::Time recreated = absl::InfinitePast();      // last recreate_sandbox request (latencies count from it)
  absl::Time sandbox_ready = absl::InfinitePast();  // netns + IP ready, announced on the fake CRI socket
  absl::Time annotated = absl::InfinitePast();      // controller's status annotation reached the API server
  absl::Time waiter_exited = absl::InfinitePast();
  absl::Time intercepted_at = absl::InfinitePast();
  absl::Time settled_at = absl::InfinitePast();  // final phase published
  std::string status_annotation;                 // last value of pod-network-controller.istio.io/status
  std::string netns_annotation;                  // last value of pod-network-controller.istio.io/netns
  std::optional<int> waiter_exit;
  std::string waiter_message;  // last line of the waiter's output
  // How the node ran the pod's containers, from its spec (pod_shape.h): the waiter init container's name,
  // uid:gid and args; the proxy stand-in's uid:gid and whether the proxy is a native sidecar.
  std::string waiter_container;
  uint32_t waiter_uid = 0, waiter_gid = 0;
  std::vector<std::string> waiter_args;
  bool proxy_found = false, proxy_native_sidecar = false;
  uint32_t proxy_uid = 0, proxy_gid = 0;
  bool interception_checked = false;
  bool intercepted = false;
  std::string interception_detail;
  // When the waiter exited: whether the API server's pod (as this node had seen it) carried the controller's
  // mark bound to this sandbox's netns inode (status initialized + pod-network-controller.istio.io/netns).
  bool binding_checked = false;
  bool marked_for_this_netns = false;
  std::string binding_detail;
  std::string mark_at_release;  // status/netns/probe annotations the node had when the waiter exited
  // Run by the node when the waiter exited 0, before the sidecar and app started (release_check.h).
  ReleaseCheck release_check;
  std::vector<SandboxRecord> sandboxes;  // in creation order; the last one is current
  std::optional<ForgeryRecord> forgery;
  bool tables_checked = false;   // non-mesh pods: the pod netns was probed for netfilter tables
  std::string netfilter_tables;  // what the probe found ("" = none)
  std::string phase = "Pending";
  bool settled = false;
  bool deleted = false;
};

class Recorder {
 public:
  void Update(const std::string& uid, const std::function<void(PodRecord&)>& fn) {
    absl::MutexLock l(&mu_);
    PodRecord& r = pods_[uid];
    r.uid = uid;
    fn(r);
  }
  std::optional<PodRecord> Get(const std::string& uid) const {
    absl::MutexLock l(&mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<PodRecord> Snapshot() const {
    absl::MutexLock l(&mu_);
    std::vector<PodRecord> out;
    for (const auto& [uid, r] : pods_) out.push_back(r);
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, PodRecord> pods_;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_RECORDER_H_
