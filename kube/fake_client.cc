#include "kube/fake_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace pnc::kube {
namespace {
std::string Key(const std::string& ns, const std::string& name) { return absl::StrCat(ns, "/", name); }
}  // namespace

void FakeClient::UpsertPod(const Pod& pod) {
  absl::MutexLock lock(&mu_);
  Pod p = pod;
  p.resource_version = absl::StrCat(++rv_);
  pods_[Key(p.namespace_name, p.name)] = std::move(p);
}

void FakeClient::DeletePod(const std::string& ns, const std::string& name) {
  absl::MutexLock lock(&mu_);
  pods_.erase(Key(ns, name));
}

std::optional<Pod> FakeClient::GetPod(const std::string& ns, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = pods_.find(Key(ns, name));
  if (it == pods_.end()) return std::nullopt;
  return it->second;
}

void FakeClient::UpsertNamespace(const Namespace& ns) {
  absl::MutexLock lock(&mu_);
  Namespace n = ns;
  n.resource_version = absl::StrCat(++rv_);
  namespaces_[n.name] = std::move(n);
}

void FakeClient::FailNextPatches(int n, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_patches_ = n;
  fail_patch_status_ = std::move(status);
}

void FakeClient::FailNextEvents(int n, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_events_ = n;
  fail_event_status_ = std::move(status);
}

void FakeClient::SetBeforePatchHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  before_patch_ = std::move(hook);
}

void FakeClient::PushPodEvent(WatchEvent<Pod> ev) {
  absl::MutexLock lock(&mu_);
  pod_events_.push_back(std::move(ev));
}

void FakeClient::PushNamespaceEvent(WatchEvent<Namespace> ev) {
  absl::MutexLock lock(&mu_);
  ns_events_.push_back(std::move(ev));
}

void FakeClient::CloseWatches() {
  absl::MutexLock lock(&mu_);
  ++close_generation_;
}

std::vector<FakeClient::Patch> FakeClient::patches() const {
  absl::MutexLock lock(&mu_);
  return patches_;
}

std::vector<EventRecord> FakeClient::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

int FakeClient::list_calls() const {
  absl::MutexLock lock(&mu_);
  return list_calls_;
}

absl::StatusOr<ObjectList<Pod>> FakeClient::ListPods(const ListOptions& opts) {
  absl::MutexLock lock(&mu_);
  ++list_calls_;
  std::string node;
  if (opts.field_selector.rfind("spec.nodeName=", 0) == 0) node = opts.field_selector.substr(14);
  ObjectList<Pod> out;
  for (const auto& [k, p] : pods_)
    if (node.empty() || p.node_name == node) out.items.push_back(p);
  out.resource_version = absl::StrCat(rv_);
  return out;
}

absl::StatusOr<ObjectList<Namespace>> FakeClient::ListNamespaces(const ListOptions&) {
  absl::MutexLock lock(&mu_);
  ++list_calls_;
  ObjectList<Namespace> out;
  for (const auto& [k, n] : namespaces_) out.items.push_back(n);
  out.resource_version = absl::StrCat(rv_);
  return out;
}

template <typename T>
absl::Status FakeClient::WatchQueue(std::deque<WatchEvent<T>>* q, const WatchHandler<T>& handler,
                                    const std::atomic<bool>& cancel) {
  int gen;
  {
    absl::MutexLock lock(&mu_);
    gen = close_generation_;
  }
  while (true) {
    std::optional<WatchEvent<T>> ev;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !q->empty() || close_generation_ != gen || cancel.load();
      };
      // Poll-wake every 10 ms so `cancel` (not guarded by mu_) is noticed.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(10));
      if (cancel.load()) return absl::CancelledError("watch cancelled");
      if (close_generation_ != gen) return absl::OkStatus();
      if (!q->empty()) {
        ev = std::move(q->front());
        q->pop_front();
      }
    }
    if (!ev) continue;
    if (ev->type == EventType::kError && ev->status.code == 410)
      return absl::OutOfRangeError("watch: expired");
    if (!handler(*std::move(ev))) return absl::OkStatus();
  }
}

absl::Status FakeClient::WatchPods(const WatchOptions&, const WatchHandler<Pod>& handler,
                                   const std::atomic<bool>& cancel) {
  return WatchQueue<Pod>(&pod_events_, handler, cancel);
}

absl::Status FakeClient::WatchNamespaces(const WatchOptions&, const WatchHandler<Namespace>& handler,
                                         const std::atomic<bool>& cancel) {
  return WatchQueue<Namespace>(&ns_events_, handler, cancel);
}

absl::Status FakeClient::PatchPodStatusAnnotations(const std::string& ns, const std::string& name,
                                                   const std::string& uid,
                                                   const std::map<std::string, std::string>& annotations,
                                                   std::string* resource_version) {
  std::function<void()> hook;
  {
    absl::MutexLock lock(&mu_);
    hook = before_patch_;
  }
  if (hook) hook();
  absl::MutexLock lock(&mu_);
  if (fail_patches_ > 0) {
    --fail_patches_;
    return fail_patch_status_;
  }
  auto it = pods_.find(Key(ns, name));
  if (it == pods_.end()) return HttpError(404, "patch", "pods \"" + name + "\" not found");
  if (it->second.uid != uid) {
    // What a real kube-apiserver answers (422 Invalid, cause metadata.uid), through the real client's
    // mapping.
    return PatchStatusError(
        422, "patch",
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"Pod \")" + name +
            R"(\" is invalid: metadata.uid: Invalid value: \")" + uid +
            R"(\": field is immutable","reason":"Invalid","details":{"name":")" + name +
            R"(","kind":"Pod","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \")" + uid +
            R"(\": field is immutable","field":"metadata.uid"}]},"code":422})");
  }
  for (const auto& [k, v] : annotations) it->second.annotations[k] = v;
  it->second.resource_version = absl::StrCat(++rv_);
  if (resource_version != nullptr) *resource_version = it->second.resource_version;
  patches_.push_back({ns, name, uid, annotations});
  return absl::OkStatus();
}

absl::Status FakeClient::CreateEvent(const EventRecord& event) {
  absl::MutexLock lock(&mu_);
  if (fail_events_ > 0) {
    --fail_events_;
    return fail_event_status_;
  }
  events_.push_back(event);
  return absl::OkStatus();
}

}  // namespace pnc::kube
