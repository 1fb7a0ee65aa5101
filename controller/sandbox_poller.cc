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
  hot_until_ = Clock::now() + absl::ToChronoNanoseconds(options_.hot_window);
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
  return started_ && !stop_ && !gave_up_ && reliable_;
}

bool SandboxPoller::gave_up() const {
  absl::MutexLock lock(&mu_);
  return gave_up_;
}

SandboxPoller::Clock::time_point SandboxPoller::NextPoll() const {
  const Clock::duration base =
      absl::ToChronoNanoseconds(Clock::now() < hot_until_ ? options_.fast_interval : options_.interval);
  const Clock::duration took =
      std::min<Clock::duration>(last_call_, absl::ToChronoNanoseconds(options_.slow_call));
  if (last_end_ == Clock::time_point::min()) return Clock::now();  // no call yet: now
  return last_end_ + std::max(base, took);
}

absl::StatusOr<size_t> SandboxPoller::PollOnce() { return Poll(/*even_if_nobody_waits=*/false); }

absl::StatusOr<size_t> SandboxPoller::Poll(bool even_if_nobody_waits) {
  absl::MutexLock one_at_a_time(&poll_mu_);
  if (!even_if_nobody_waits && queue_->WaitingKeys().empty()) {
    absl::MutexLock lock(&mu_);  // nothing to look for: look again in an interval
    last_end_ = Clock::now();
    return 0;
  }
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::vector<std::string>> ready = locator_->ReadyPodUids();
  const Clock::time_point end = Clock::now();
  const absl::Duration took = absl::FromChrono(end - start);
  size_t released = 0;
  if (ready.ok()) released = queue_->ReleaseWaitingKeys(*ready);
  bool lost = false;
  {
    absl::MutexLock lock(&mu_);
    const bool reliable = ready.ok() && took <= options_.slow_call;
    lost = reliable_ && !reliable;
    reliable_ = reliable;
    ++calls_;
    last_call_ = end - start;
    last_end_ = end;
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
  // Pods waiting on backstop timers while the poller worked: back to their own short timers now.
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
      const Clock::duration wait =
          std::max<Clock::duration>(NextPoll() - Clock::now(), Clock::duration::zero());
      const bool was_woken = mu_.AwaitWithTimeout(absl::Condition(&woken), absl::FromChrono(wait));
      if (stop_) return;
      if (was_woken) {  // a hint: the next poll may be due sooner now
        hinted_ = false;
        if (Clock::now() < NextPoll()) continue;
      }
    }
    r = PollOnce();
  }
}

}  // namespace pnc::controller
