// Store: the in-memory state of the fake API server (namespaces, pods, events, nodes) and its watch fan-out.
//
// Objects are nlohmann::json documents shared as immutable snapshots (ObjectPtr). Every committed change gets
// the next value of one global, monotonically increasing resourceVersion and is appended to a bounded history
// window; a watch may start from any resourceVersion still inside the window, older ones fail with 410
// Expired.
//
// Semantics follow the real server where clients can observe them:
// - create fills metadata.uid (random UUID v4, reproducible for a given seed), creationTimestamp,
// resourceVersion,
//   generation; pods get status.phase=Pending; namespaces get the kubernetes.io/metadata.name label.
// - a pod created without spec.nodeName is bound by the scheduler stand-in in a second commit (round-robin
// over
//   nodes by name), so node-scoped watchers see it arrive as ADDED when it enters their selector, like with a
//   real scheduler.
// - updates that change nothing do not bump the resourceVersion and emit no event.
// - the main resource ignores status changes; the `status` subresource ignores spec changes but keeps
// metadata
//   (labels/annotations) changes, as the real pods/status strategy does.
// - watches with a field/label selector see ADDED/DELETED when an object enters/leaves the selector.
// - deletion is immediate (no graceful termination); the DELETED event carries the object with the deletion
// RV.
//
// Thread-safe. Each event is encoded to its watch line at most once per event type and the same
// shared_ptr<const std::string> goes to every watcher.
#ifndef PNC_SIMULATOR_APISERVER_STORE_H_
#define PNC_SIMULATOR_APISERVER_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "simulator/apiserver/patch.h"
#include "simulator/apiserver/selector.h"

namespace pnc::sim {

// The kinds the server stores. The first four have behaviour (scheduling, graceful deletion, pod validation);
// the others are plain storage with the common metadata rules (what `helm install` of our chart needs).
enum class Resource {
  kNamespaces,
  kPods,
  kEvents,
  kNodes,
  kServiceAccounts,
  kSecrets,
  kConfigMaps,
  kClusterRoles,
  kClusterRoleBindings,
  kRoles,
  kRoleBindings,
  kDaemonSets,
  kValidatingAdmissionPolicies,
  kValidatingAdmissionPolicyBindings,
  // events.k8s.io/v1 Event: a view of the kEvents objects (events.h), stored and watched as kEvents.
  kEventsV1,
};
inline constexpr Resource kAllResources[] = {Resource::kNamespaces,
                                             Resource::kPods,
                                             Resource::kEvents,
                                             Resource::kNodes,
                                             Resource::kServiceAccounts,
                                             Resource::kSecrets,
                                             Resource::kConfigMaps,
                                             Resource::kClusterRoles,
                                             Resource::kClusterRoleBindings,
                                             Resource::kRoles,
                                             Resource::kRoleBindings,
                                             Resource::kDaemonSets,
                                             Resource::kValidatingAdmissionPolicies,
                                             Resource::kValidatingAdmissionPolicyBindings,
                                             Resource::kEventsV1};
inline constexpr size_t kResourceCount = sizeof(kAllResources) / sizeof(kAllResources[0]);

struct ResourceInfo {
  const char* plural;  // "pods"
  const char* kind;    // "Pod"
  bool namespaced;
  const char* short_name;          // "po" or ""
  const char* group;               // "" for core
  const char* version;             // "v1"
  bool has_status;                 // a status subresource
  std::string ApiVersion() const;  // "v1", "apps/v1"
};
const ResourceInfo& Info(Resource r);
std::optional<Resource> ResourceFromPlural(std::string_view group, std::string_view plural);
// The resource whose objects `r` serves: kEvents for kEventsV1 (one Event resource served under two groups,
// as on the real server), `r` itself otherwise.
Resource StorageOf(Resource r);

using ObjectPtr = std::shared_ptr<const nlohmann::json>;
using EventLine = std::shared_ptr<const std::string>;

enum class Subresource { kNone, kStatus };

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;  // 0: no limit
  std::string continue_token;
};

struct ListResult {
  std::vector<ObjectPtr> items;
  uint64_t resource_version = 0;
  std::string continue_token;        // empty: last page
  std::optional<int64_t> remaining;  // metadata.remainingItemCount
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  // "" or "0": synthetic ADDED events for the current state first, then changes. Otherwise: changes after
  // this RV.
  std::string resource_version;
  bool bookmarks = false;  // allowWatchBookmarks
  // sendInitialEvents=true (WatchList): the current objects as ADDED whatever resource_version says, then a
  // BOOKMARK annotated k8s.io/initial-events-end=true, then changes.
  bool send_initial_events = false;
};

struct Preconditions {
  std::optional<std::string> uid;
  std::optional<std::string> resource_version;
};

// Options every write shares (query parameters of create/update/patch/apply).
struct WriteOptions {
  bool dry_run =
      false;  // dryRun=All: validated and answered like the real write, nothing persisted or emitted
  std::string field_manager;  // records metadata.managedFields (empty: none recorded)
  bool force = false;         // server-side apply: take over conflicting fields
};

struct DeleteOptions {
  Preconditions preconditions;
  bool dry_run = false;
  // Pods with graceful deletion: unset = the pod's terminationGracePeriodSeconds; 0 = remove now.
  std::optional<int64_t> grace_period_seconds;
};

// Receives the events of one watch. Called with the store lock held, in resourceVersion order:
// implementations only queue (post to an executor) and never call back into the Store.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // type: ADDED, MODIFIED, DELETED or BOOKMARK. `line` is `{"type":...,"object":...}\n`, shared by all
  // watchers of this event; it is null when WantsLine() is false (in-process sinks read `object`).
  virtual void OnEvent(const std::string& type, const ObjectPtr& object, uint64_t rv,
                       const EventLine& line) = 0;
  // The store ended this watch (DropAllWatches, shutdown). No more events follow.
  virtual void OnClosed() = 0;
  virtual bool WantsLine() const { return true; }
  // False for the simulator's own in-process watchers (fake kubelets): the DropAllWatches fault models lost
  // client connections and must not blind the fake nodes.
  virtual bool Droppable() const { return true; }
};

// Encodes one watch line: {"type":T,"object":O}\n.
std::string EncodeWatchLine(const std::string& type, const nlohmann::json& object);

class Store {
 public:
  struct Options {
    size_t history_size = 200000;        // events kept for watch resume
    bool scheduler = true;               // bind pods without spec.nodeName to nodes round-robin
    uint64_t seed = 1;                   // UIDs and generated names
    bool graceful_pod_deletion = false;  // see Delete(); only useful when fake kubelets finish the deletion
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  Store() : Store(Options()) {}
  explicit Store(Options options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Pods are validated like the real server's (422 with details.causes, see validation.h).
  absl::StatusOr<ObjectPtr> Create(Resource r, const std::string& ns, nlohmann::json object,
                                   const WriteOptions& write = {});
  absl::StatusOr<ObjectPtr> Get(Resource r, const std::string& ns, const std::string& name) const;
  absl::StatusOr<ListResult> List(Resource r, const std::string& ns, const ListOptions& options) const;
  // PUT. A metadata.resourceVersion in `object` must match (409 Conflict otherwise); empty means
  // unconditional. A metadata.uid that differs from the stored one is 422 Invalid ("metadata.uid: Invalid
  // value: ...: field is immutable", details.causes), as on the real server.
  absl::StatusOr<ObjectPtr> Update(Resource r, const std::string& ns, const std::string& name,
                                   nlohmann::json object, Subresource sub, const WriteOptions& write = {});
  // PATCH. metadata.resourceVersion inside a merge or strategic patch is a precondition (409 Conflict);
  // a metadata.uid that differs from the stored one is 422 Invalid (immutable field), like Update.
  absl::StatusOr<ObjectPtr> Patch(Resource r, const std::string& ns, const std::string& name, PatchType type,
                                  const nlohmann::json& patch, Subresource sub,
                                  const WriteOptions& write = {});
  // Server-side apply (application/apply-patch+yaml): creates the object when absent (not for status), else
  // merges the applied configuration with the field ownership rules of managed_fields.h.
  // write.field_manager is required (400 otherwise, like the real server).
  absl::StatusOr<ObjectPtr> Apply(Resource r, const std::string& ns, const std::string& name,
                                  const nlohmann::json& applied, Subresource sub, const WriteOptions& write);
  // Pods bound to a node are deleted gracefully when Options::graceful_pod_deletion is set, like on a real
  // cluster: the first DELETE only sets metadata.deletionTimestamp / deletionGracePeriodSeconds (a MODIFIED
  // event) and the node's kubelet removes the pod with a second DELETE (grace 0) once its containers are
  // gone. Otherwise, and for every other resource, deletion is immediate.
  absl::StatusOr<ObjectPtr> Delete(Resource r, const std::string& ns, const std::string& name,
                                   const DeleteOptions& options);

  // Starts a watch; returns its id. OutOfRange (410 Expired) when resource_version fell out of the history
  // window.
  absl::StatusOr<uint64_t> Watch(Resource r, const std::string& ns, const WatchOptions& options,
                                 std::shared_ptr<WatchSink> sink);
  void Unwatch(uint64_t id);
  // Sends a BOOKMARK with the current resourceVersion to one watch (if it asked for bookmarks).
  void Bookmark(uint64_t id);

  // Fault hooks.
  void Compact();         // forget the whole history: every watch resume from an older RV gets 410
  void DropAllWatches();  // end every droppable watch stream (clients must re-list or resume)

  uint64_t ResourceVersion() const;
  size_t WatchCount() const;
  uint64_t OldestResumableVersion() const;  // watches from RVs below this get 410

 private:
  struct Watcher {
    Resource resource;
    std::string ns;
    LabelSelector labels;
    FieldSelector fields;
    std::optional<std::string> node;  // pods watched with spec.nodeName=<node>: indexed
    bool bookmarks;
    std::shared_ptr<WatchSink> sink;
  };
  struct Event {
    uint64_t rv;
    Resource resource;
    std::string type;  // ADDED / MODIFIED / DELETED
    ObjectPtr object;
    ObjectPtr prev;  // MODIFIED: previous state (for selector transitions)
    // Lazily encoded lines: [0] the event as typed, [1] ADDED(object), [2] DELETED(prev with new RV).
    mutable EventLine lines[3];
  };
  using Key = std::string;  // "ns/name" or "name"

  absl::StatusOr<ObjectPtr> CreateLocked(Resource r, const std::string& ns, nlohmann::json object,
                                         const WriteOptions& write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ObjectPtr> CommitUpdateLocked(Resource r, const ObjectPtr& old, nlohmann::json next,
                                               Subresource sub, const WriteOptions& write,
                                               bool from_apply = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ObjectPtr CommitLocked(Resource r, const std::string& type, nlohmann::json object, ObjectPtr prev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseWatches(bool only_droppable);
  void UnindexLocked(uint64_t id, const Watcher& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FanOutLocked(const Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeliverLocked(Watcher& w, const Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked(const ObjectPtr& pod) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ObjectPtr> DeleteLocked(Resource r, const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewUidLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NowLocked() const;
  bool WatcherMatches(const Watcher& w, const nlohmann::json& object) const;

  const Options options_;
  mutable absl::Mutex mu_;
  uint64_t rv_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t compacted_rv_ ABSL_GUARDED_BY(mu_) = 0;  // events with rv <= this are gone
  std::map<Key, ObjectPtr> objects_[kResourceCount] ABSL_GUARDED_BY(mu_);
  std::deque<Event> history_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  size_t next_node_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  // Watch ids per resource that are not node-indexed, and pod watches indexed by spec.nodeName.
  std::set<uint64_t> general_[kResourceCount] ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::set<uint64_t>> by_node_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_STORE_H_
