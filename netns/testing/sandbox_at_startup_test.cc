#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/sandbox.h"

namespace pnc::netns::testing {
namespace {

// A second thread that lives until the end of the test (joined even when the test returns early).
struct BusyThread {
  absl::Notification done;
  std::thread t{[this] { done.WaitForNotification(); }};
  ~BusyThread() {
    done.Notify();
    t.join();
  }
};

TEST(SandboxAtStartupTest, ThreadsBeforeFirstUseDoNotMatter) {
  BusyThread busy;  // a first Sandbox::Get() now would fail: unshare needs a single-threaded process
  Sandbox* sandbox = nullptr;
  PNC_SANDBOX_OR_SKIP(sandbox);
  absl::StatusOr<PodNetns> pod = sandbox->CreatePodNetns("startup");
  ASSERT_TRUE(pod.ok()) << pod.status();
}

}  // namespace
}  // namespace pnc::netns::testing
