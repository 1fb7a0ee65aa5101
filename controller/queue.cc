#include "controller/queue.h"

#include <algorithm>

namespace pnc::controller {

WorkQueue::WorkQueue(Options options) : options_(std::move(options)) {}

bool WorkQueue::HasRoomLocked() const { return dirty_.size() + waiting_.size() < options_.max_items; }

void WorkQueue::PushLocked(const std::string& key) {
  if (low_.count(key)) {
    recheck_.push_back(key);
  } else {
    queue_.push_back(key);
  }
}

bool WorkQueue::AddLocked(const std::string& key, Priority priority) {
  if (shutting_down_) return false;
  if (dirty_.count(key)) {  // already queued (or queued for after Done)
    if (priority == Priority::kFirst && low_.erase(key) > 0 && !processing_.count(key)) {
      queue_.push_back(key);  // moved up; its recheck_ entry is now stale
    }
    return true;
  }
  if (!HasRoomLocked()) {
    ++dropped_;
    return false;
  }
  dirty_.insert(key);
  if (priority == Priority::kRecheck) low_.insert(key);
  if (!processing_.count(key)) PushLocked(key);
  return true;
}

bool WorkQueue::Add(const std::string& key, Priority priority) {
  absl::MutexLock lock(&mu_);
  return AddLocked(key, priority);
}

bool WorkQueue::AddAfter(const std::string& key, absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  return AddAfterLocked(key, delay);
}

bool WorkQueue::AddAfterLocked(const std::string& key, absl::Duration delay) {
  if (shutting_down_) return false;
  if (delay <= absl::ZeroDuration()) return AddLocked(key);
  absl::Time ready = options_.now() + delay;
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    if (ready < it->second) {  // keep the earliest; the stale by_time_ entry is skipped later
      it->second = ready;
      by_time_.emplace(ready, key);
    }
    return true;
  }
  if (!HasRoomLocked()) {
    ++dropped_;
    return false;
  }
  waiting_.emplace(key, ready);
  by_time_.emplace(ready, key);
  return true;
}

absl::Duration WorkQueue::AddRateLimited(const std::string& key) {
  int n;
  {
    absl::MutexLock lock(&mu_);
    n = failures_[key]++;
  }
  absl::Duration d = options_.base_delay * (1LL << std::min(n, 30));
  if (d > options_.max_delay || d < absl::ZeroDuration()) d = options_.max_delay;
  if (!AddAfter(key, d)) return -absl::Nanoseconds(1);
  return d;
}

bool WorkQueue::ParkForOutage(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (!AddAfterLocked(key, options_.outage_retry)) return false;
  parked_.insert(key);
  return true;
}

size_t WorkQueue::ReleaseLocked(std::set<std::string>& keys) {
  size_t n = 0;
  for (const std::string& key : keys) {
    waiting_.erase(key);  // its by_time_ entry is now stale and skipped
    if (AddLocked(key)) ++n;
  }
  keys.clear();
  return n;
}

size_t WorkQueue::ReleaseParked() {
  absl::MutexLock lock(&mu_);
  return ReleaseLocked(parked_);
}

absl::Duration WorkQueue::AddWaiting(const std::string& key, absl::Duration cap, absl::Duration floor) {
  absl::MutexLock lock(&mu_);
  int n = waits_[key]++;  // its own count: polls for a sandbox do not grow the backoff of real failures
  absl::Duration d = options_.base_delay * (1LL << std::min(n, 30));
  if (d > cap || d < absl::ZeroDuration()) d = cap;
  d = std::max(d, floor);
  if (!AddAfterLocked(key, d)) return -absl::Nanoseconds(1);
  auto [it, added] = awaiting_.emplace(key, awaiting_seq_);
  if (added) awaiting_order_.emplace(awaiting_seq_++, key);
  return d;
}

size_t WorkQueue::ReleaseWaiting(size_t n) {
  absl::MutexLock lock(&mu_);
  size_t released = 0;
  for (auto o = awaiting_order_.begin(); released < n && o != awaiting_order_.end();) {
    const std::string key = o->second;
    auto it = awaiting_.find(key);
    if (it == awaiting_.end() || it->second != o->first) {  // stale
      o = awaiting_order_.erase(o);
      continue;
    }
    // Only a key whose timer is still pending is released: one that is queued or being processed already
    // (its timer fired, or news about its pod came) gains nothing and must not use up the release.
    if (!waiting_.count(key) || dirty_.count(key) || processing_.count(key)) {
      ++o;
      continue;
    }
    o = awaiting_order_.erase(o);
    awaiting_.erase(it);
    waiting_.erase(key);  // its by_time_ entry is now stale and skipped
    if (AddLocked(key, Priority::kRecheck)) ++released;
  }
  return released;
}

std::vector<std::string> WorkQueue::WaitingKeys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  for (const auto& [key, seq] : awaiting_) {
    if (!processing_.count(key) && (waiting_.count(key) || low_.count(key))) keys.push_back(key);
  }
  return keys;
}

bool WorkQueue::ReleaseWaitingLocked(const std::string& key) {
  auto it = awaiting_.find(key);
  if (it == awaiting_.end() || processing_.count(key)) return false;
  if (dirty_.count(key)) {  // its timer fired: queued as a poll (kRecheck); move it up
    return low_.count(key) && AddLocked(key, Priority::kFirst);
  }
  if (!waiting_.count(key)) return false;
  awaiting_order_.erase(it->second);
  awaiting_.erase(it);
  waiting_.erase(key);  // its by_time_ entry is now stale and skipped
  return AddLocked(key, Priority::kFirst);
}

size_t WorkQueue::ReleaseWaitingKeys(const std::vector<std::string>& keys) {
  absl::MutexLock lock(&mu_);
  size_t released = 0;
  for (const std::string& key : keys) {
    if (released_by_list_.count(key)) continue;  // once per key until Forget
    if (ReleaseWaitingLocked(key)) {
      released_by_list_.insert(key);
      ++released;
    }
  }
  return released;
}

bool WorkQueue::ReleaseWaitingKey(const std::string& key) {
  absl::MutexLock lock(&mu_);
  return ReleaseWaitingLocked(key);
}

bool WorkQueue::ReleasedByList(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return released_by_list_.count(key) > 0;
}

size_t WorkQueue::Waiting() const {
  absl::MutexLock lock(&mu_);
  return awaiting_.size();
}

size_t WorkQueue::Parked() const {
  absl::MutexLock lock(&mu_);
  return parked_.size();
}

void WorkQueue::Forget(const std::string& key) {
  absl::MutexLock lock(&mu_);
  failures_.erase(key);
  waits_.erase(key);
  released_by_list_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto f = failures_.find(key);
  auto w = waits_.find(key);
  return (f == failures_.end() ? 0 : f->second) + (w == waits_.end() ? 0 : w->second);
}

void WorkQueue::PromoteDueLocked() {
  absl::Time now = options_.now();
  while (!by_time_.empty() && by_time_.begin()->first <= now) {
    auto [t, key] = *by_time_.begin();
    by_time_.erase(by_time_.begin());
    auto it = waiting_.find(key);
    if (it == waiting_.end() || it->second != t) continue;  // stale
    waiting_.erase(it);
    // A poll for a sandbox that did not exist yet (AddWaiting) is kRecheck; any other due retry is kFirst.
    const bool poll = awaiting_.count(key) > 0;
    if (dirty_.count(key)) {  // queued already: a due retry moves a queued kRecheck entry up
      if (!poll && low_.erase(key) > 0 && !processing_.count(key)) queue_.push_back(key);
      continue;
    }
    dirty_.insert(key);  // room was reserved while it waited
    if (poll) low_.insert(key);
    if (!processing_.count(key)) PushLocked(key);
  }
}

bool WorkQueue::PopLocked(std::string* key) {
  // kFirst entries are never stale; a kRecheck entry is stale once its key was moved up or handed out.
  while (queue_.empty() && !recheck_.empty() && !low_.count(recheck_.front())) recheck_.pop_front();
  std::deque<std::string>& from = queue_.empty() ? recheck_ : queue_;
  if (from.empty()) return false;
  *key = std::move(from.front());
  from.pop_front();
  if (processing_.count(*key) || !dirty_.count(*key)) return PopLocked(key);  // a duplicate entry
  low_.erase(*key);
  dirty_.erase(*key);
  parked_.erase(*key);
  if (auto it = awaiting_.find(*key); it != awaiting_.end()) {
    awaiting_order_.erase(it->second);
    awaiting_.erase(it);
  }
  processing_.insert(*key);
  return true;
}

bool WorkQueue::Get(std::string* key) {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (shutting_down_) return false;
    PromoteDueLocked();
    if (PopLocked(key)) return true;
    absl::Duration wait = absl::Seconds(1);
    if (!by_time_.empty()) wait = std::min(wait, by_time_.begin()->first - options_.now());
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutting_down_ || !queue_.empty() || !recheck_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), std::max(wait, absl::Milliseconds(1)));
  }
}

bool WorkQueue::TryGet(std::string* key) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;
  PromoteDueLocked();
  return PopLocked(key);
}

void WorkQueue::Done(const std::string& key) {
  absl::MutexLock lock(&mu_);
  processing_.erase(key);
  if (dirty_.count(key)) PushLocked(key);
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
}

bool WorkQueue::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() const {
  absl::MutexLock lock(&mu_);
  size_t low = 0;
  for (const std::string& key : low_) low += processing_.count(key) ? 0 : 1;
  return queue_.size() + low;
}

size_t WorkQueue::Delayed() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

uint64_t WorkQueue::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace pnc::controller
