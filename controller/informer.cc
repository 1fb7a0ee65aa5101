#include "controller/informer.h"

#include <set>

namespace pnc::controller {

Informer::Informer(Callbacks callbacks, std::function<absl::Time()> now)
    : cb_(std::move(callbacks)), now_(std::move(now)) {}

void Informer::ReplacePods(std::vector<kube::Pod>&& pods) {
  std::vector<std::string> enqueue, deleted;
  {
    absl::MutexLock lock(&mu_);
    std::set<std::string> seen;
    for (kube::Pod& p : pods) {
      if (p.uid.empty()) continue;
      std::string uid = p.uid;  // copy: p is moved below
      seen.insert(uid);
      auto it = pods_.find(uid);
      if (it == pods_.end()) {
        enqueue.push_back(uid);
        pods_.emplace(uid, CachedPod{std::move(p), now_()});
      } else {
        // Enqueue every listed pod: a relist is rare and the reconciler's per-UID state makes it cheap.
        enqueue.push_back(uid);
        it->second.pod = std::move(p);
      }
    }
    for (auto it = pods_.begin(); it != pods_.end();) {
      if (!seen.count(it->first)) {
        deleted.push_back(it->first);
        it = pods_.erase(it);
      } else {
        ++it;
      }
    }
    pods_synced_ = true;
  }
  for (const std::string& uid : deleted)
    if (cb_.deleted) cb_.deleted(uid);
  for (const std::string& uid : enqueue)
    if (cb_.enqueue) cb_.enqueue(uid);
}

void Informer::ApplyPodEvent(kube::EventType type, kube::Pod&& pod) {
  if (pod.uid.empty()) return;
  std::string uid = pod.uid;
  bool was_deleted = false;
  {
    absl::MutexLock lock(&mu_);
    if (type == kube::EventType::kDeleted) {
      pods_.erase(uid);
      was_deleted = true;  // report even if unknown: the reconciler may hold state for it
    } else if (type == kube::EventType::kAdded || type == kube::EventType::kModified) {
      auto it = pods_.find(uid);
      if (it == pods_.end()) {
        pods_.emplace(uid, CachedPod{std::move(pod), now_()});
      } else {
        it->second.pod = std::move(pod);
      }
    } else {
      return;
    }
  }
  if (was_deleted) {
    if (cb_.deleted) cb_.deleted(uid);
    return;
  }
  if (cb_.enqueue) cb_.enqueue(uid);
}

void Informer::EnqueueNamespacePods(const std::string& ns, std::vector<std::string>* out) const {
  for (const auto& [uid, cp] : pods_)
    if (cp.pod.namespace_name == ns) out->push_back(uid);
}

void Informer::ReplaceNamespaces(std::vector<kube::Namespace>&& namespaces) {
  std::vector<std::string> enqueue;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::string, kube::Namespace> next;
    for (kube::Namespace& n : namespaces) {
      auto it = namespaces_.find(n.name);
      bool changed =
          it == namespaces_.end() || it->second.labels != n.labels || it->second.annotations != n.annotations;
      if (changed && namespaces_synced_) EnqueueNamespacePods(n.name, &enqueue);
      next.emplace(n.name, std::move(n));
    }
    namespaces_ = std::move(next);
    bool first = !namespaces_synced_;
    namespaces_synced_ = true;
    // Pods that waited for the namespace cache get another chance.
    if (first)
      for (const auto& [uid, cp] : pods_) enqueue.push_back(uid);
  }
  for (const std::string& uid : enqueue)
    if (cb_.enqueue) cb_.enqueue(uid);
}

void Informer::ApplyNamespaceEvent(kube::EventType type, kube::Namespace&& ns) {
  std::vector<std::string> enqueue;
  {
    absl::MutexLock lock(&mu_);
    if (type == kube::EventType::kDeleted) {
      namespaces_.erase(ns.name);
      return;
    }
    if (type != kube::EventType::kAdded && type != kube::EventType::kModified) return;
    auto it = namespaces_.find(ns.name);
    bool changed =
        it == namespaces_.end() || it->second.labels != ns.labels || it->second.annotations != ns.annotations;
    if (changed) EnqueueNamespacePods(ns.name, &enqueue);
    namespaces_[ns.name] = std::move(ns);
  }
  for (const std::string& uid : enqueue)
    if (cb_.enqueue) cb_.enqueue(uid);
}

bool Informer::PodHasIps(const std::string& uid) const {
  absl::MutexLock lock(&mu_);
  auto it = pods_.find(uid);
  return it != pods_.end() && !it->second.pod.pod_ips.empty();
}

std::optional<CachedPod> Informer::GetPod(const std::string& uid) const {
  absl::MutexLock lock(&mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end()) return std::nullopt;
  return it->second;
}

std::optional<kube::Namespace> Informer::GetNamespace(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = namespaces_.find(name);
  if (it == namespaces_.end()) return std::nullopt;
  return it->second;
}

bool Informer::NamespacesSynced() const {
  absl::MutexLock lock(&mu_);
  return namespaces_synced_;
}

bool Informer::WaitNamespacesSynced(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&namespaces_synced_), timeout);
}

bool Informer::PodsSynced() const {
  absl::MutexLock lock(&mu_);
  return pods_synced_;
}

std::vector<std::string> Informer::PodUids() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.reserve(pods_.size());
  for (const auto& [uid, cp] : pods_) out.push_back(uid);
  return out;
}

size_t Informer::NumPods() const {
  absl::MutexLock lock(&mu_);
  return pods_.size();
}

}  // namespace pnc::controller
