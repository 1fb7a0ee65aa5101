// Reflector: keeps a local view of one resource kind in step with the API server by list + watch.
//
//  - list (full; resourceVersion=0, from the watch cache) -> on_replace(items); the consumer diffs the items
//    against its cache.
//  - watch from the list's resourceVersion -> on_event for ADDED / MODIFIED / DELETED (bookmarks only move
//    the RV).
//  - the server closes the watch (timeoutSeconds) -> watch again from the last RV, at once.
//  - 410 Gone / ERROR 410 (RV too old) -> relist (from the latest state, resourceVersion="").
//  - any other failure -> wait (jittered exponential backoff), then watch again; relist after repeated
//    failures.
// Stop() makes Run() return promptly (a running watch notices within ~1 s).
#ifndef PNC_KUBE_REFLECTOR_H_
#define PNC_KUBE_REFLECTOR_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kube/client.h"

namespace pnc::kube {

// Jittered exponential backoff: base * 2^n, capped, each delay scaled by a random factor in [0.5, 1.0].
class Backoff {
 public:
  Backoff(absl::Duration base, absl::Duration cap) : base_(base), cap_(cap), rng_(std::random_device{}()) {}
  absl::Duration Next() {
    absl::Duration d = base_ * (1 << std::min(attempt_, 20));
    if (d > cap_) d = cap_;
    ++attempt_;
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return d * jitter(rng_);
  }
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  absl::Duration base_, cap_;
  int attempt_ = 0;
  std::mt19937 rng_;
};

template <typename T>
class Reflector {
 public:
  struct Hooks {
    std::function<void(std::vector<T>&&, const std::string& resource_version)> on_replace;
    std::function<void(EventType, T&&)> on_event;
    std::function<void(const absl::Status&, const char* phase)> on_error;  // logging/metrics; may be empty
  };
  struct Options {
    std::string field_selector;
    int watch_timeout_seconds =
        300;  // jittered by up to +50% per watch so a fleet does not reconnect in lockstep
    absl::Duration backoff_base = absl::Milliseconds(200);
    absl::Duration backoff_cap = absl::Seconds(30);
    int failures_before_relist = 5;
  };
  using ListFn = std::function<absl::StatusOr<ObjectList<T>>(const ListOptions&)>;
  using WatchFn =
      std::function<absl::Status(const WatchOptions&, const WatchHandler<T>&, const std::atomic<bool>&)>;

  Reflector(ListFn list, WatchFn watch, Hooks hooks, Options options)
      : list_(std::move(list)),
        watch_(std::move(watch)),
        hooks_(std::move(hooks)),
        options_(std::move(options)) {}

  // Blocks until Stop().
  void Run() {
    Backoff backoff(options_.backoff_base, options_.backoff_cap);
    std::mt19937 rng(std::random_device{}());
    std::string rv;
    int failures = 0;
    bool after_gone = false;
    while (!stopped_.load()) {
      if (rv.empty()) {
        ListOptions lo;
        lo.field_selector = options_.field_selector;
        // Like client-go: serve lists from the watch cache ("0"), except right after a 410, when the cache
        // may be behind the RV we already had: then read the latest state ("").
        lo.resource_version = after_gone ? "" : "0";
        absl::StatusOr<ObjectList<T>> list = list_(lo);
        if (!list.ok()) {
          Report(list.status(), "list");
          if (Sleep(backoff.Next())) return;
          continue;
        }
        after_gone = false;
        rv = list->resource_version;
        hooks_.on_replace(std::move(list->items), rv);
        lists_.fetch_add(1);
        backoff.Reset();
        failures = 0;
      }
      WatchOptions wo;
      wo.field_selector = options_.field_selector;
      wo.resource_version = rv;
      std::uniform_int_distribution<int> extra(0, options_.watch_timeout_seconds / 2);
      wo.timeout_seconds = options_.watch_timeout_seconds + extra(rng);
      bool progressed = false;
      absl::Status st = watch_(
          wo,
          [&](WatchEvent<T>&& ev) {
            if (ev.type == EventType::kError) {  // non-410 error events: report, keep going
              Report(absl::UnknownError(absl::StrCat("watch ERROR event ", ev.status.code, " ",
                                                     ev.status.reason, ": ", ev.status.message)),
                     "watch");
              return true;
            }
            if (!ev.object.resource_version.empty()) rv = ev.object.resource_version;
            progressed = true;
            if (ev.type != EventType::kBookmark) hooks_.on_event(ev.type, std::move(ev.object));
            return !stopped_.load();
          },
          stopped_);
      if (stopped_.load()) return;
      if (progressed) {
        backoff.Reset();
        failures = 0;
      }
      if (st.ok()) continue;  // server closed the watch: resume from rv
      Report(st, "watch");
      if (st.code() == absl::StatusCode::kOutOfRange) {  // 410: our RV is too old
        rv.clear();
        after_gone = true;
        relists_after_gone_.fetch_add(1);
        // Relist at once, unless the last watch made no progress at all: then a server that keeps answering
        // 410 would spin us in a list loop, so back off.
        if (!progressed && Sleep(backoff.Next())) return;
        continue;
      }
      if (++failures >= options_.failures_before_relist) rv.clear();
      if (Sleep(backoff.Next())) return;
    }
  }

  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_.store(true);
  }

  int lists() const { return lists_.load(); }
  int relists_after_gone() const { return relists_after_gone_.load(); }

 private:
  void Report(const absl::Status& st, const char* phase) {
    if (hooks_.on_error) hooks_.on_error(st, phase);
  }
  // Returns true when stopped.
  bool Sleep(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    auto stopped = [this] { return stopped_.load(); };
    mu_.AwaitWithTimeout(absl::Condition(&stopped), d);
    return stopped_.load();
  }

  ListFn list_;
  WatchFn watch_;
  Hooks hooks_;
  Options options_;
  absl::Mutex mu_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> lists_{0};
  std::atomic<int> relists_after_gone_{0};
};

}  // namespace pnc::kube

#endif  // PNC_KUBE_REFLECTOR_H_
