// FakeClient: an in-memory API server for controller tests. Holds pods and namespaces, applies status patches
// with the UID precondition exactly like the real server (404 / 409), records events, and lets tests inject
// faults. Watches stream whatever the test pushes with PushPodEvent/PushNamespaceEvent until cancelled or
// CloseWatches().
#ifndef PNC_KUBE_FAKE_CLIENT_H_
#define PNC_KUBE_FAKE_CLIENT_H_

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "kube/client.h"

namespace pnc::kube {

class FakeClient : public Client {
 public:
  struct Patch {
    std::string namespace_name, name, uid;
    std::map<std::string, std::string> annotations;
  };

  // Object store (keyed by namespace/name, like the real server).
  void UpsertPod(const Pod& pod);
  void DeletePod(const std::string& namespace_name, const std::string& name);
  std::optional<Pod> GetPod(const std::string& namespace_name, const std::string& name) const;
  void UpsertNamespace(const Namespace& ns);

  // Fault injection: the next n patches / event creations fail with `status`.
  void FailNextPatches(int n, absl::Status status);
  void FailNextEvents(int n, absl::Status status);
  // Called at the start of every patch (before the precondition check): lets a test delete/recreate the pod
  // "mid-flight".
  void SetBeforePatchHook(std::function<void()> hook);

  // Watch feed.
  void PushPodEvent(WatchEvent<Pod> ev);
  void PushNamespaceEvent(WatchEvent<Namespace> ev);
  void CloseWatches();  // running watches return OK (as when the server's timeoutSeconds expires)

  std::vector<Patch> patches() const;
  std::vector<EventRecord> events() const;
  int list_calls() const;

  absl::StatusOr<ObjectList<Pod>> ListPods(const ListOptions& opts) override;
  absl::Status WatchPods(const WatchOptions& opts, const WatchHandler<Pod>& handler,
                         const std::atomic<bool>& cancel) override;
  absl::StatusOr<ObjectList<Namespace>> ListNamespaces(const ListOptions& opts) override;
  absl::Status WatchNamespaces(const WatchOptions& opts, const WatchHandler<Namespace>& handler,
                               const std::atomic<bool>& cancel) override;
  absl::Status PatchPodStatusAnnotations(const std::string& namespace_name, const std::string& name,
                                         const std::string& uid,
                                         const std::map<std::string, std::string>& annotations,
                                         std::string* resource_version = nullptr) override;
  absl::Status CreateEvent(const EventRecord& event) override;

 private:
  template <typename T>
  absl::Status WatchQueue(std::deque<WatchEvent<T>>* q, const WatchHandler<T>& handler,
                          const std::atomic<bool>& cancel);

  mutable absl::Mutex mu_;
  std::map<std::string, Pod> pods_ ABSL_GUARDED_BY(mu_);  // "ns/name"
  std::map<std::string, Namespace> namespaces_ ABSL_GUARDED_BY(mu_);
  int64_t rv_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Patch> patches_ ABSL_GUARDED_BY(mu_);
  std::vector<EventRecord> events_ ABSL_GUARDED_BY(mu_);
  int fail_patches_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_patch_status_ ABSL_GUARDED_BY(mu_);
  int fail_events_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_event_status_ ABSL_GUARDED_BY(mu_);
  std::function<void()> before_patch_ ABSL_GUARDED_BY(mu_);
  std::deque<WatchEvent<Pod>> pod_events_ ABSL_GUARDED_BY(mu_);
  std::deque<WatchEvent<Namespace>> ns_events_ ABSL_GUARDED_BY(mu_);
  int close_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int list_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pnc::kube

#endif  // PNC_KUBE_FAKE_CLIENT_H_
