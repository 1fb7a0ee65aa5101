#include "netns/executor.h"

#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/sandbox.h"

namespace pnc::netns {
namespace {

uint64_t ThreadNetnsInode() {
  struct stat st;
  if (stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override { PNC_SANDBOX_OR_SKIP(sandbox_); }
  // The namespace stays alive as long as the test fixture (owned_ keeps the bind mounts).
  const NetnsHandle& NewNetns(const std::string& name) {
    absl::StatusOr<testing::OwnedNetns> ns = sandbox_->CreateBareNetns(name);
    if (!ns.ok()) {  // the harness itself is broken: nothing below can be meaningful
      std::fprintf(stderr, "CreateBareNetns(%s): %s\n", name.c_str(), ns.status().ToString().c_str());
      std::abort();
    }
    owned_.push_back(std::make_unique<testing::OwnedNetns>(*std::move(ns)));
    return owned_.back()->handle();
  }
  testing::Sandbox* sandbox_ = nullptr;
  std::vector<std::unique_ptr<testing::OwnedNetns>> owned_;
};

TEST_F(ExecutorTest, RunsInsideTargetOnAnotherThreadAndCallerStaysHome) {
  const NetnsHandle& ns = NewNetns("exec-a");
  const uint64_t caller_ns = ThreadNetnsInode();
  const pid_t caller_tid = gettid();
  uint64_t inside_ns = 0;
  pid_t inside_tid = 0;
  absl::Status s = RunInNetns(ns, [&] {
    inside_ns = ThreadNetnsInode();
    inside_tid = gettid();
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(inside_ns, ns.inode());
  EXPECT_NE(inside_ns, caller_ns);
  EXPECT_NE(inside_tid, caller_tid);
  EXPECT_EQ(ThreadNetnsInode(), caller_ns);
}

TEST_F(ExecutorTest, ReturnsFunctionStatus) {
  const NetnsHandle& ns = NewNetns("exec-b");
  absl::Status s = RunInNetns(ns, [] { return absl::AbortedError("from fn"); });
  EXPECT_EQ(s, absl::AbortedError("from fn"));
}

TEST_F(ExecutorTest, WorkerReturnsHomeBetweenCalls) {
  const NetnsHandle& a = NewNetns("exec-c");
  const NetnsHandle& b = NewNetns("exec-d");
  // Sequential calls reuse the same idle worker; each must see only its own target.
  for (int i = 0; i < 50; ++i) {
    const NetnsHandle& target = (i % 2 == 0) ? a : b;
    uint64_t seen = 0;
    ASSERT_TRUE(RunInNetns(target, [&] {
                  seen = ThreadNetnsInode();
                  return absl::OkStatus();
                }).ok());
    ASSERT_EQ(seen, target.inode()) << "iteration " << i;
  }
}

TEST_F(ExecutorTest, RefusesForTestingHandle) {
  NetnsHandle fake = NetnsHandle::ForTesting("fake-pod", 42);
  bool ran = false;
  absl::Status s = RunInNetns(fake, [&] {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(ran);
}

TEST_F(ExecutorTest, ConcurrentCallersEachSeeTheirNamespace) {
  constexpr int kCallers = 8;
  std::vector<const NetnsHandle*> nss;
  for (int i = 0; i < kCallers; ++i) nss.push_back(&NewNetns(absl::StrCat("exec-par-", i)));
  const uint64_t home = ThreadNetnsInode();
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) {
        uint64_t seen = 0;
        absl::Status s = RunInNetns(*nss[i], [&] {
          seen = ThreadNetnsInode();
          return absl::OkStatus();
        });
        if (!s.ok() || seen != nss[i]->inode() || ThreadNetnsInode() != home) ++wrong;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(ExecutorTest, NestedCallIsServedByAnotherWorker) {
  const NetnsHandle& outer = NewNetns("exec-outer");
  const NetnsHandle& inner = NewNetns("exec-inner");
  uint64_t seen_inner = 0, seen_outer_after = 0;
  absl::Status s = RunInNetns(outer, [&] {
    absl::Status in = RunInNetns(inner, [&] {
      seen_inner = ThreadNetnsInode();
      return absl::OkStatus();
    });
    seen_outer_after = ThreadNetnsInode();
    return in;
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(seen_inner, inner.inode());
  EXPECT_EQ(seen_outer_after, outer.inode());
}

// Drops the calling thread's effective capabilities (capset acts on the calling thread only): a worker that
// did this cannot setns() back home, nor could any thread it creates (capabilities are inherited).
absl::Status DropThreadCapabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return absl::InternalError("capget");
  data[0].effective = data[1].effective = 0;
  if (syscall(SYS_capset, &hdr, data) != 0) return absl::InternalError("capset");
  return absl::OkStatus();
}

TEST_F(ExecutorTest, WorkersAreNeverStartedByABrokenWorker) {
  // Every worker must be created from the home namespace with full capabilities, whoever needs it. Here a
  // worker stuck in a pod namespace without capabilities (about to be discarded) makes a nested call while
  // all other workers are busy, so the pool must start a new worker for it. A worker created by the broken
  // thread itself would inherit its namespace and lack of capabilities, fail to go home and fail the request.
  const NetnsHandle& outer = NewNetns("exec-broken-outer");
  const NetnsHandle& inner = NewNetns("exec-broken-inner");
  // kMaxNetnsWorkers concurrent calls occupy every worker: callers from outside the pool can never start more
  // than that, and this test binary never leaves more than that alive, so no worker is idle below.
  absl::BlockingCounter all_busy(kMaxNetnsWorkers);
  absl::Notification saturated, release;
  absl::Status nested;
  uint64_t nested_ns = 0;
  pid_t broken_tid = 0, nested_tid = 0;
  std::vector<std::thread> callers;
  std::vector<absl::Status> results(kMaxNetnsWorkers);
  for (int i = 0; i < kMaxNetnsWorkers; ++i) {
    callers.emplace_back([&, i] {
      results[i] = RunInNetns(outer, [&, i]() -> absl::Status {
        all_busy.DecrementCount();
        if (i != 0) {
          release.WaitForNotification();
          return absl::OkStatus();
        }
        saturated.WaitForNotification();
        broken_tid = gettid();
        if (absl::Status s = DropThreadCapabilities(); !s.ok()) return s;
        nested = RunInNetns(inner, [&] {
          nested_tid = gettid();
          nested_ns = ThreadNetnsInode();
          return absl::OkStatus();
        });
        return absl::OkStatus();
      });
    });
  }
  all_busy.Wait();
  saturated.Notify();
  callers[0].join();  // the broken worker's call, including its nested call, is complete
  EXPECT_TRUE(nested.ok()) << nested;
  EXPECT_EQ(nested_ns, inner.inode());
  EXPECT_NE(nested_tid, broken_tid);
  // The broken worker is discarded; later calls (served by the nested call's worker, every other worker is
  // still busy) run healthy in their target and return home.
  for (int i = 0; i < 5; ++i) {
    uint64_t seen = 0;
    pid_t tid = 0;
    absl::Status s = RunInNetns(inner, [&] {
      tid = gettid();
      seen = ThreadNetnsInode();
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(seen, inner.inode());
    EXPECT_NE(tid, broken_tid);
  }
  release.Notify();
  for (int i = 1; i < kMaxNetnsWorkers; ++i) callers[i].join();
  for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
}

TEST_F(ExecutorTest, WorkerThatCannotReturnHomeIsDiscarded) {
  const NetnsHandle& ns = NewNetns("exec-discard");
  // fn drops this worker thread's effective capabilities (capset acts on the calling thread only), so the
  // worker's setns() back home fails with EPERM: it must be discarded, and fn's status still returned.
  pid_t broken_tid = 0;
  absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
    broken_tid = gettid();
    return DropThreadCapabilities();
  });
  ASSERT_TRUE(s.ok()) << s;
  // The broken thread is gone (it exits right after reporting); later calls run on healthy workers.
  for (int i = 0; i < 20; ++i) {
    pid_t tid = 0;
    uint64_t seen = 0;
    ASSERT_TRUE(RunInNetns(ns, [&] {
                  tid = gettid();
                  seen = ThreadNetnsInode();
                  return absl::OkStatus();
                }).ok());
    EXPECT_NE(tid, broken_tid);
    EXPECT_EQ(seen, ns.inode());
  }
  const std::string task = absl::StrCat("/proc/self/task/", broken_tid);
  for (int i = 0; i < 100 && access(task.c_str(), F_OK) == 0; ++i) usleep(1000);
  EXPECT_NE(access(task.c_str(), F_OK), 0) << "discarded worker thread still alive";
}

}  // namespace
}  // namespace pnc::netns
