#include "controller/sandbox_poller.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/log.h"

namespace pnc::controller {

SandboxPoller::SandboxPoller(Options options, netns::Locator* locator, WorkQueue* queue, Metrics* metrics)
    : options_(options), locator_(locator), queue_(queue), metrics_(metrics) {}

SandboxPoller::~SandboxPoller() { Stop(); }

void SandboxPoller::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void SandboxPoller::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SandboxPoller::Hint() {
  absl::MutexLock lock(&mu_);
  hot_until_ = absl::Now() + options_.hot_window;
  hinted_ = true;  // wakes Run to shorten its current wait
}

uint64_t SandboxPoller::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

uint64_t SandboxPoller::released() const {
  absl::MutexLock lock(&mu_);
  return released_;
}

bool SandboxPoller::healthy() const {
  absl::MutexLock lock(&mu_);
  return started_ && !stop_ && !gave_up_ && last_ok_;
}

bool SandboxPoller::gave_up() const {
  absl::MutexLock lock(&mu_);
  return gave_up_;
}

absl::Time SandboxPoller::NextPoll() const {
  const absl::Duration base = absl::Now() < hot_until_ ? options_.fast_interval : options_.interval;
  return last_end_ + std::max(base, last_call_);
}

absl::StatusOr<size_t> SandboxPoller::PollOnce() { return Poll(/*even_if_nobody_waits=*/false); }

absl::StatusOr<size_t> SandboxPoller::Poll(bool even_if_nobody_waits) {
  if (!even_if_nobody_waits && queue_->WaitingKeys().empty()) {
    absl::MutexLock lock(&mu_);  // nothing to look for: look again in an interval
    last_end_ = absl::Now();
    return 0;
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<std::string>> ready = locator_->ReadyPodUids();
  const absl::Duration took = absl::Now() - start;
  size_t released = 0;
  if (ready.ok()) released = queue_->ReleaseWaitingKeys(*ready);
  bool lost = false;
  {
    absl::MutexLock lock(&mu_);
    lost = last_ok_ && !ready.ok();
    last_ok_ = ready.ok();
    ++calls_;
    last_call_ = took;
    last_end_ = start + took;
    released_ += released;
    if (absl::IsUnimplemented(ready.status())) gave_up_ = true;
  }
  if (metrics_ != nullptr && !absl::IsUnimplemented(ready.status())) {
    metrics_->sandbox_polls.Inc(ready.ok() ? "ok" : "error");
    if (released > 0) metrics_->sandbox_poll_releases.Inc("", static_cast<double>(released));
  }
  if (released > 0 || !ready.ok())
    Log(LogLevel::kDebug, "sandbox poll",
        {{"took_ms", absl::StrCat(absl::ToDoubleMilliseconds(took))},
         {"ready", ready.ok() ? absl::StrCat(ready->size()) : std::string(ready.status().message())},
         {"released", absl::StrCat(released)}});
  // Pods waiting on backstop timers since the poller worked: back to their own short timers now.
  if (lost) queue_->ReleaseWaiting();
  if (!ready.ok()) return ready.status();
  return released;
}

void SandboxPoller::Run() {
  // The first call is made at once, whether or not a pod waits yet: it tells whether the locator can list
  // (and makes the poller healthy before the first pods of a burst wait on their short timers).
  absl::StatusOr<size_t> r = Poll(/*even_if_nobody_waits=*/true);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (gave_up_) {
        Log(LogLevel::kInfo,
            "the locator cannot list ready sandboxes; pods waiting for a sandbox retry on their timers",
            {{"error", std::string(r.status().message())}});
        return;
      }
      // One line per change of kind of failure, not one per poll.
      const std::string kind = r.ok() ? "" : absl::StatusCodeToString(r.status().code());
      if (kind != last_error_) {
        if (!kind.empty())
          Log(LogLevel::kWarning, "listing ready sandboxes failed; pods keep their timers meanwhile",
              {{"error", std::string(r.status().message())}});
        last_error_ = kind;
      }
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || hinted_; };
      const bool was_woken = mu_.AwaitWithDeadline(absl::Condition(&woken), NextPoll());
      if (stop_) return;
      if (was_woken) {  // a hint: the next poll may be due sooner now
        hinted_ = false;
        if (absl::Now() < NextPoll()) continue;
      }
    }
    r = PollOnce();
  }
}

}  // namespace pnc::controller
