#include "controller/sandbox_poller.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "controller/log.h"
#include "gtest/gtest.h"
#include "netns/fake_locator.h"

namespace pnc::controller {
namespace {

// Timers that never fire within a test: only the poller can release a waiting pod.
WorkQueue::Options NoTimers() {
  WorkQueue::Options o;
  o.base_delay = absl::Hours(1);
  return o;
}

// Waits for `done` (not a timing assertion: the bound only keeps a broken build from hanging).
// `done` is called until it returns true (once more after that is one too many: it may take something).
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (true) {
    if (done()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

class SandboxPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([](const std::string&) {});
  }
  void TearDown() override { SetLogSink(nullptr); }

  // Puts `uid` into the queue as a pod waiting for its sandbox (handed out once, then AddWaiting).
  void Wait(const std::string& uid) {
    ASSERT_TRUE(queue_.Add(uid));
    std::string got;
    ASSERT_TRUE(queue_.TryGet(&got));
    ASSERT_EQ(got, uid);
    queue_.AddWaiting(uid, absl::Hours(1));
    queue_.Done(uid);
  }

  WorkQueue queue_{NoTimers()};
  netns::FakeLocator locator_;
};

TEST_F(SandboxPollerTest, NoWaitingPodMeansNoRuntimeCall) {
  SandboxPoller poller({}, &locator_, &queue_);
  locator_.CreateSandbox("a");
  absl::StatusOr<size_t> r = poller.PollOnce();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(locator_.list_calls(), 0);
  EXPECT_EQ(poller.calls(), 0u);
}

// At Start, one call whether or not a pod waits: the poller is healthy (waiting pods may use the backstop)
// before the first pod waits.
TEST_F(SandboxPollerTest, StartCallsOnceAndBecomesHealthy) {
  SandboxPoller::Options o;
  o.interval = absl::Hours(1);
  SandboxPoller poller(o, &locator_, &queue_);
  EXPECT_FALSE(poller.healthy());
  poller.Start();
  EXPECT_TRUE(Eventually([&] { return poller.healthy(); }));
  EXPECT_EQ(locator_.list_calls(), 1);
  poller.Stop();
  EXPECT_FALSE(poller.healthy());
}

TEST_F(SandboxPollerTest, ReleasesExactlyTheWaitingPodsWhoseSandboxIsReady) {
  SandboxPoller poller({}, &locator_, &queue_);
  Wait("a");
  Wait("b");
  Wait("c");
  locator_.CreateSandbox("a");
  locator_.CreateSandbox("c");
  locator_.CreateSandbox("not-waiting");
  absl::StatusOr<size_t> r = poller.PollOnce();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 2u);
  EXPECT_EQ(locator_.list_calls(), 1);  // one call for all of them
  EXPECT_EQ(locator_.locate_calls(), 0);
  std::vector<std::string> got;
  std::string key;
  while (queue_.TryGet(&key)) got.push_back(key);
  EXPECT_EQ(got, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(queue_.WaitingKeys(), std::vector<std::string>{"b"});  // still on its timer
}

TEST_F(SandboxPollerTest, ReleasedPodsGoBeforeRechecks) {
  SandboxPoller poller({}, &locator_, &queue_);
  Wait("new");
  ASSERT_TRUE(queue_.Add("done-pod", WorkQueue::Priority::kRecheck));
  locator_.CreateSandbox("new");
  ASSERT_TRUE(poller.PollOnce().ok());
  std::string key;
  ASSERT_TRUE(queue_.TryGet(&key));
  EXPECT_EQ(key, "new");
}

TEST_F(SandboxPollerTest, ARuntimeErrorReleasesNobodyAndPollingGoesOn) {
  SandboxPoller poller({}, &locator_, &queue_);
  Wait("a");
  locator_.CreateSandbox("a");
  locator_.SetListError(absl::UnavailableError("runtime restarting"));
  absl::StatusOr<size_t> r = poller.PollOnce();
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(queue_.Len(), 0u);
  EXPECT_FALSE(poller.gave_up());
  locator_.SetListError(absl::OkStatus());
  r = poller.PollOnce();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 1u);
}

// Pods on backstop timers while the poller worked go back to their own short timers when it stops working.
TEST_F(SandboxPollerTest, LosingTheRuntimeReleasesWaitingPodsOnce) {
  SandboxPoller poller({}, &locator_, &queue_);
  Wait("a");
  Wait("b");
  ASSERT_TRUE(poller.PollOnce().ok());  // neither has a sandbox yet
  EXPECT_EQ(queue_.Len(), 0u);
  locator_.SetListError(absl::UnavailableError("runtime restarting"));
  EXPECT_FALSE(poller.PollOnce().ok());
  EXPECT_EQ(queue_.Len(), 2u);  // both ready now, to be located (and parked) the usual way
  std::string k;
  while (queue_.TryGet(&k)) {
    queue_.AddWaiting(k, absl::Hours(1));
    queue_.Done(k);
  }
  EXPECT_FALSE(poller.PollOnce().ok());  // still failing: nothing released again
  EXPECT_EQ(queue_.Len(), 0u);
}

// A pod the list names but whose locate still fails goes back to waiting; the list does not release it again
// (until Forget), or a list that keeps naming it would turn its backoff into a poll-rate loop.
TEST_F(SandboxPollerTest, ReleasesAPodOnlyOnceUntilItIsForgotten) {
  SandboxPoller poller({}, &locator_, &queue_);
  Wait("a");
  locator_.CreateSandbox("a");
  ASSERT_EQ(*poller.PollOnce(), 1u);
  std::string k;
  ASSERT_TRUE(queue_.TryGet(&k));
  EXPECT_TRUE(queue_.ReleasedByList(k));
  queue_.AddWaiting(k, absl::Hours(1));  // still not located
  queue_.Done(k);
  EXPECT_EQ(*poller.PollOnce(), 0u);
  EXPECT_EQ(queue_.Len(), 0u);
  queue_.Forget("a");  // located at last, later waits again (e.g. a new sandbox)
  EXPECT_FALSE(queue_.ReleasedByList("a"));
  EXPECT_EQ(*poller.PollOnce(), 1u);
}

// A list that succeeds but slowly is no watcher to rely on: not healthy, pods keep their short timers.
TEST_F(SandboxPollerTest, ASlowListIsNotHealthy) {
  class Slow : public netns::FakeLocator {
   public:
    absl::StatusOr<std::vector<std::string>> ReadyPodUids() override {
      absl::SleepFor(absl::Milliseconds(20));
      return FakeLocator::ReadyPodUids();
    }
  } slow;
  SandboxPoller::Options o;
  o.interval = absl::Hours(1);
  o.slow_call = absl::Milliseconds(1);
  SandboxPoller poller(o, &slow, &queue_);
  poller.Start();
  ASSERT_TRUE(Eventually([&] { return poller.calls() >= 1; }));
  ASSERT_EQ(poller.calls(), 1u);
  EXPECT_FALSE(poller.healthy());
  EXPECT_FALSE(poller.gave_up());
}

// A locator without a cheap list (the /proc cgroup scan): the poller stops, the timers remain.
class NoListLocator : public netns::Locator {
 public:
  absl::StatusOr<netns::NetnsHandle> Locate(const netns::PodRef&) override {
    return absl::NotFoundError("no");
  }
  std::string Name() const override { return "nolist"; }
};

TEST_F(SandboxPollerTest, ALocatorThatCannotListStopsThePoller) {
  NoListLocator locator;
  SandboxPoller::Options o;
  o.interval = absl::Milliseconds(1);
  SandboxPoller poller(o, &locator, &queue_);
  Wait("a");
  poller.Start();
  EXPECT_TRUE(Eventually([&] { return poller.gave_up(); }));
  const uint64_t calls = poller.calls();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(poller.calls(), calls);  // no more calls
  EXPECT_EQ(queue_.WaitingKeys(), std::vector<std::string>{"a"});
}

TEST_F(SandboxPollerTest, AHintMakesTheThreadPollFastInsteadOfWaitingItsInterval) {
  SandboxPoller::Options o;
  o.interval = absl::Hours(1);  // without the hint, nothing within the test
  o.fast_interval = absl::Milliseconds(1);
  o.hot_window = absl::Hours(1);
  SandboxPoller poller(o, &locator_, &queue_);
  poller.Start();
  // Past the start call (which would find "a" by itself): from here on only the hint can bring a call.
  ASSERT_TRUE(Eventually([&] { return poller.calls() >= 1; }));
  ASSERT_EQ(poller.calls(), 1u);
  Wait("a");
  locator_.CreateSandbox("a");
  poller.Hint();
  std::string key;
  ASSERT_TRUE(Eventually([&] { return queue_.TryGet(&key); }));
  EXPECT_EQ(key, "a");
  EXPECT_EQ(poller.released(), 1u);
  poller.Stop();
}

// A runtime that takes a while to answer, recording when each call started and ended.
class SlowListLocator : public netns::Locator {
 public:
  absl::StatusOr<netns::NetnsHandle> Locate(const netns::PodRef&) override {
    return absl::NotFoundError("no");
  }
  std::string Name() const override { return "slow"; }
  absl::StatusOr<std::vector<std::string>> ReadyPodUids() override {
    const absl::Time start = absl::Now();
    absl::SleepFor(absl::Milliseconds(5));
    absl::MutexLock lock(&mu);
    calls.push_back({start, absl::Now()});
    return std::vector<std::string>{};
  }
  absl::Mutex mu;
  std::vector<std::pair<absl::Time, absl::Time>> calls ABSL_GUARDED_BY(mu);
};

TEST_F(SandboxPollerTest, NeverCallsAgainSoonerThanTheLastCallTook) {
  SlowListLocator locator;
  SandboxPoller::Options o;
  o.interval = absl::Microseconds(1);
  o.fast_interval = absl::Microseconds(1);
  SandboxPoller poller(o, &locator, &queue_);
  Wait("a");  // never gets a sandbox: the poller keeps polling
  poller.Start();
  while (poller.calls() < 6) absl::SleepFor(absl::Milliseconds(1));
  poller.Stop();
  absl::MutexLock lock(&locator.mu);
  ASSERT_GE(locator.calls.size(), 6u);
  for (size_t i = 1; i < locator.calls.size(); ++i) {
    const absl::Duration took = locator.calls[i - 1].second - locator.calls[i - 1].first;
    const absl::Duration gap = locator.calls[i].first - locator.calls[i - 1].second;
    EXPECT_GE(gap, took) << "call " << i;  // never more than one call at a time, and idle at least as long
  }
}

}  // namespace
}  // namespace pnc::controller
