#include "simulator/sandbox_pool.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/str_cat.h"

namespace pnc::sim {

namespace nt = pnc::netns::testing;

namespace {
// Bind-mount names must be unique among the live namespaces of the (process-wide) sandbox.
std::atomic<uint64_t> g_pool_counter{0};
}  // namespace

SandboxPool::SandboxPool(nt::Sandbox* sandbox, size_t target) : sandbox_(sandbox), target_(target) {}

SandboxPool::~SandboxPool() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (refill_.joinable()) refill_.join();
}

absl::StatusOr<nt::PodNetns> SandboxPool::Create() {
  return sandbox_->CreatePodNetns(absl::StrCat("sp", g_pool_counter.fetch_add(1)));
}

absl::Status SandboxPool::Fill() {
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (ready_.size() >= target_) return absl::OkStatus();
    }
    auto ns = Create();
    if (!ns.ok()) return ns.status();
    absl::MutexLock l(&mu_);
    ready_.push_back(*std::move(ns));
  }
}

void SandboxPool::StartRefill() {
  if (target_ == 0 || refill_.joinable()) return;
  refill_ = std::thread([this] { Refill(); });
}

void SandboxPool::Refill() {
  // Lowest priority for this thread only (Linux: a tid is a PRIO_PROCESS target): refilling must not compete
  // with the controller and the waiters for the CPU.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19);
  while (true) {
    {
      absl::MutexLock l(&mu_);
      auto wanted = [this]()
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || ready_.size() < target_; };
      mu_.Await(absl::Condition(&wanted));
      if (stopping_) return;
    }
    auto ns = Create();
    if (!ns.ok()) {
      std::fprintf(stderr, "sandbox pool refill: %s\n", ns.status().ToString().c_str());
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1));
      continue;
    }
    absl::MutexLock l(&mu_);
    ready_.push_back(*std::move(ns));
  }
}

absl::StatusOr<nt::PodNetns> SandboxPool::Take() {
  {
    absl::MutexLock l(&mu_);
    if (!ready_.empty()) {
      nt::PodNetns ns = std::move(ready_.front());
      ready_.pop_front();
      ++taken_;
      return ns;
    }
    ++inline_;
  }
  return Create();
}

size_t SandboxPool::taken_from_pool() const {
  absl::MutexLock l(&mu_);
  return taken_;
}

size_t SandboxPool::created_inline() const {
  absl::MutexLock l(&mu_);
  return inline_;
}

}  // namespace pnc::sim
