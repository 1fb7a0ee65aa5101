// The CRI locator across a real containerd restart (netns/cri/testing): while the runtime is down every
// locate says Unavailable (the runtime's failure, not NotFound: the pod is not at fault), and the first
// locate after the runtime answers again succeeds, whether or not calls were made during the outage.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/cri/cri_locator.h"
#include "netns/cri/testing/containerd.h"
#include "netns/cri/testing/gtest_containerd.h"
#include "netns/cri/testing/sandbox_client.h"

namespace pnc::netns {
namespace {

using cri_testing::Containerd;
using cri_testing::SandboxClient;

constexpr char kUid[] = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
constexpr absl::Duration kOutage = absl::Seconds(3);

class RuntimeRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PNC_CONTAINERD_OR_SKIP(ctrd_);
    SandboxClient client(ctrd_->endpoint());
    absl::StatusOr<std::string> id = client.Run({kUid, "web-0", "shop", 0, ctrd_->CgroupParent(kUid)});
    ASSERT_TRUE(id.ok()) << id.status();
    absl::StatusOr<std::unique_ptr<Locator>> l = NewCriLocator(ctrd_->endpoint(), absl::Seconds(2));
    ASSERT_TRUE(l.ok()) << l.status();
    locator_ = std::move(*l);
    ASSERT_TRUE(locator_->Locate(pod_).ok());  // connected and working before the fault
  }

  // Restarts containerd; returns when a fresh client's CRI Version answers ("the runtime is back").
  void RestartRuntime() {
    absl::Status s = ctrd_->Restart();
    ASSERT_TRUE(s.ok()) << s;
  }

  // Locates until success (at most 10 s); the time from `since` to the first success, and how many tries.
  absl::Duration LocateUntilOk(absl::Time since, int* tries) {
    *tries = 0;
    while (absl::Now() - since < absl::Seconds(10)) {
      ++*tries;
      absl::StatusOr<NetnsHandle> h = locator_->Locate(pod_);
      if (h.ok()) return absl::Now() - since;
      last_error_ = h.status();
      absl::SleepFor(absl::Milliseconds(10));
    }
    return absl::InfiniteDuration();
  }

  std::unique_ptr<Containerd> ctrd_;
  std::unique_ptr<Locator> locator_;
  PodRef pod_{kUid, "shop", "web-0", {}};
  absl::Status last_error_;
};

TEST_F(RuntimeRestartTest, OutageIsUnavailableAndTheFirstLocateAfterRestartSucceeds) {
  ASSERT_TRUE(ctrd_->Kill().ok());
  // Pending pods keep retrying during the outage: every answer is Unavailable, and it comes fast (no call
  // sits out its whole deadline on a socket nobody serves).
  absl::Time outage_end = absl::Now() + kOutage;
  int calls = 0;
  absl::Duration slowest;
  while (absl::Now() < outage_end) {
    absl::Time t0 = absl::Now();
    absl::Status s = locator_->Locate(pod_).status();
    slowest = std::max(slowest, absl::Now() - t0);
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    ++calls;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_LT(slowest, absl::Seconds(1)) << "a locate during the outage took as long as " << slowest;
  RestartRuntime();
  absl::Time back = absl::Now();
  int tries = 0;
  absl::Duration after = LocateUntilOk(back, &tries);
  std::cerr << "outage with calls: " << calls << " locates during " << kOutage << " (slowest "
            << absl::FormatDuration(slowest) << "); first success " << absl::FormatDuration(after)
            << " after the runtime was back, after " << tries << " tries; last error: " << last_error_
            << "\n";
  EXPECT_EQ(tries, 1) << "the locator kept failing after the runtime was back; last error: " << last_error_;
  EXPECT_LT(after, absl::Seconds(1));
}

TEST_F(RuntimeRestartTest, OutageWithoutCallsInFlight) {
  ASSERT_TRUE(ctrd_->Kill().ok());
  absl::SleepFor(kOutage);
  RestartRuntime();
  absl::Time back = absl::Now();
  int tries = 0;
  absl::Duration after = LocateUntilOk(back, &tries);
  std::cerr << "outage without calls: first success " << absl::FormatDuration(after)
            << " after the runtime was back, after " << tries << " tries; last error: " << last_error_
            << "\n";
  EXPECT_EQ(tries, 1) << "the locator kept failing after the runtime was back; last error: " << last_error_;
  EXPECT_LT(after, absl::Seconds(1));
}

TEST_F(RuntimeRestartTest, RuntimeDownAtStartIsUnavailableNotNotFound) {
  ASSERT_TRUE(ctrd_->Kill().ok());
  absl::StatusOr<std::unique_ptr<Locator>> fresh = NewCriLocator(ctrd_->endpoint(), absl::Seconds(2));
  ASSERT_TRUE(fresh.ok());
  absl::Time t0 = absl::Now();
  absl::Status s = (*fresh)->Locate(pod_).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  RestartRuntime();
  EXPECT_TRUE((*fresh)->Locate(pod_).ok());
}

}  // namespace
}  // namespace pnc::netns
