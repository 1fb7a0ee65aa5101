// Informer: the node's pods (keyed by UID) and the cluster's namespaces, kept by two kube::Reflectors, and
// the read-only Store the reconciler uses. Every pod change enqueues the pod's UID; a namespace change
// enqueues the pods of that namespace (membership and the OpenShift uid range depend on it). A relist is
// diffed against the cache: pods that vanished while the watch was down are reported as deleted.
#ifndef PNC_CONTROLLER_INFORMER_H_
#define PNC_CONTROLLER_INFORMER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kube/types.h"

namespace pnc::controller {

struct CachedPod {
  kube::Pod pod;
  absl::Time first_seen;  // when this UID was first seen (start of the event->applied latency)
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::optional<CachedPod> GetPod(const std::string& uid) const = 0;
  virtual std::optional<kube::Namespace> GetNamespace(const std::string& name) const = 0;
  virtual bool NamespacesSynced() const = 0;
};

class Informer : public Store {
 public:
  struct Callbacks {
    std::function<void(const std::string& uid)> enqueue;
    std::function<void(const std::string& uid)> deleted;
  };
  explicit Informer(Callbacks callbacks, std::function<absl::Time()> now = absl::Now);

  // Reflector hooks.
  void ReplacePods(std::vector<kube::Pod>&& pods);
  void ApplyPodEvent(kube::EventType type, kube::Pod&& pod);
  void ReplaceNamespaces(std::vector<kube::Namespace>&& namespaces);
  void ApplyNamespaceEvent(kube::EventType type, kube::Namespace&& ns);

  std::optional<CachedPod> GetPod(const std::string& uid) const override;
  // Whether the cached pod has status.podIPs (false for an unknown UID); cheaper than GetPod.
  bool PodHasIps(const std::string& uid) const;
  std::optional<kube::Namespace> GetNamespace(const std::string& name) const override;
  bool NamespacesSynced() const override;
  // Blocks until the namespace cache has been filled once or `timeout` passes; returns NamespacesSynced().
  bool WaitNamespacesSynced(absl::Duration timeout) const;
  bool PodsSynced() const;
  std::vector<std::string> PodUids() const;
  size_t NumPods() const;

 private:
  void EnqueueNamespacePods(const std::string& ns, std::vector<std::string>* out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  Callbacks cb_;
  std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  std::map<std::string, CachedPod> pods_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, kube::Namespace> namespaces_ ABSL_GUARDED_BY(mu_);
  bool pods_synced_ ABSL_GUARDED_BY(mu_) = false;
  bool namespaces_synced_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_INFORMER_H_
