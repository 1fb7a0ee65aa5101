#include "simulator/priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "netns/executor.h"

namespace pnc::sim {
namespace {

absl::Status SetThreadNice(int nice) {
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), nice) != 0)
    return absl::PermissionDeniedError(absl::StrCat("setpriority(", nice, "): ", std::strerror(errno)));
  return absl::OkStatus();
}

// One thread that runs the calls handed to it in order; lives as long as the process.
class ServingThread {
 public:
  ServingThread() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Run(absl::FunctionRef<void()> fn) {
    Call call{fn};
    absl::MutexLock l(&mu_);
    calls_.push_back(&call);
    auto done = [&call] { return call.done; };
    mu_.Await(absl::Condition(&done));
  }

 private:
  struct Call {
    absl::FunctionRef<void()> fn;
    bool done = false;
  };

  void Loop() {
    while (true) {
      Call* call;
      {
        absl::MutexLock l(&mu_);
        auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !calls_.empty(); };
        mu_.Await(absl::Condition(&any));
        call = calls_.front();
        calls_.pop_front();
      }
      call->fn();
      absl::MutexLock l(&mu_);
      call->done = true;
    }
  }

  absl::Mutex mu_;
  std::deque<Call*> calls_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

ServingThread* g_serving = nullptr;  // set once in main(), before other simulator threads; never freed

}  // namespace

absl::Status ServeAheadOfNodeWork() { return SetThreadNice(kServingNice); }

void StartServingThread() {
  if (g_serving == nullptr) g_serving = new ServingThread();
}

absl::Status StartNetnsExecutorAsNodeWork(const netns::NetnsHandle& any) {
  absl::Status st;
  RunAtNice(kNodeWorkNice, [&] { st = netns::RunInNetns(any, [] { return absl::OkStatus(); }); });
  return st;
}

void RunServed(absl::FunctionRef<void()> fn) {
  if (g_serving == nullptr) {
    fn();
    return;
  }
  g_serving->Run(fn);
}

void RunAtNice(int nice, const std::function<void()>& fn) {
  std::thread t([&] {
    (void)SetThreadNice(nice);
    fn();
  });
  t.join();
}

}  // namespace pnc::sim
