#include "controller/queue.h"

#include <atomic>
#include <initializer_list>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace pnc::controller {
namespace {

struct FakeClock {
  absl::Time t = absl::FromUnixSeconds(1000);
  std::function<absl::Time()> fn() {
    return [this] { return t; };
  }
  WorkQueue::Options Options() {  // the defaults, on this clock
    WorkQueue::Options o;
    o.now = fn();
    return o;
  }
  WorkQueue::Options Options(absl::Duration base_delay, absl::Duration max_delay = absl::Seconds(60)) {
    WorkQueue::Options o = Options();
    o.base_delay = base_delay;
    o.max_delay = max_delay;
    return o;
  }
};

// Each key waits (AddWaiting, cap 1 s), in this order.
void AddWaitingAll(WorkQueue& q, std::initializer_list<const char*> keys) {
  for (const char* key : keys) q.AddWaiting(key, absl::Seconds(1));
}

// Lets `d` pass, then hands out the key that is due and marks it done ("" when none is).
std::string PassAndTake(WorkQueue& q, FakeClock& clock, absl::Duration d) {
  clock.t += d;
  std::string k;
  if (!q.TryGet(&k)) return "";
  q.Done(k);
  return k;
}

// Hands out every ready key (each marked done at once), in order.
std::vector<std::string> Drain(WorkQueue& q) {
  std::vector<std::string> out;
  std::string k;
  while (q.TryGet(&k)) {
    out.push_back(k);
    q.Done(k);
  }
  return out;
}

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  WorkQueue q;
  EXPECT_TRUE(q.Add("a"));
  EXPECT_TRUE(q.Add("b"));
  EXPECT_TRUE(q.Add("a"));
  EXPECT_EQ(q.Len(), 2u);
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "a");
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "b");
  EXPECT_FALSE(q.TryGet(&k));
}

TEST(WorkQueue, KeyInProcessingIsNotHandedOutTwiceButRequeuedOnDone) {
  WorkQueue q;
  q.Add("a");
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  q.Add("a");  // changed while a worker holds it
  std::string k2;
  EXPECT_FALSE(q.TryGet(&k2));
  q.Done("a");
  ASSERT_TRUE(q.TryGet(&k2));
  EXPECT_EQ(k2, "a");
  q.Done("a");
  EXPECT_FALSE(q.TryGet(&k2));
}

TEST(WorkQueue, FirstKeysGoBeforeRechecks) {
  using P = WorkQueue::Priority;
  WorkQueue q;
  q.Add("done-1", P::kRecheck);
  q.Add("new-1");
  q.Add("done-2", P::kRecheck);
  q.Add("new-2", P::kFirst);
  q.Add("new-1", P::kRecheck);  // queued as kFirst: stays kFirst
  EXPECT_EQ(q.Len(), 4u);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"new-1", "new-2", "done-1", "done-2"}));
}

TEST(WorkQueue, RecheckMovesUpWhenAddedAsFirstAndIsHandedOutOnce) {
  using P = WorkQueue::Priority;
  WorkQueue q;
  q.Add("a", P::kRecheck);
  q.Add("b", P::kRecheck);
  q.Add("c");
  q.Add("b", P::kFirst);                                           // e.g. its sandbox was recreated
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"c", "b", "a"}));  // b once: its recheck entry was stale
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueue, RecheckAddedWhileProcessingIsRequeuedAsRecheckOnDone) {
  using P = WorkQueue::Priority;
  WorkQueue q;
  q.Add("a");
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  q.Add("a", P::kRecheck);  // the echo of its own mark, while the worker still holds it
  q.Add("b");
  q.Done("a");
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"b", "a"}));
}

TEST(WorkQueue, DueRetryOfAQueuedRecheckMovesItUp) {
  using P = WorkQueue::Priority;
  FakeClock clock;
  WorkQueue q(clock.Options());
  q.Add("b", P::kRecheck);
  q.AddAfter("a", absl::Milliseconds(50));
  q.Add("a", P::kRecheck);
  clock.t += absl::Milliseconds(50);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"a", "b"}));
}

TEST(WorkQueue, SandboxPollsGoAfterFreshKeysUnlessTheirPodHasNews) {
  using P = WorkQueue::Priority;
  FakeClock clock;
  WorkQueue q(clock.Options());
  q.AddWaiting("poll-timer", absl::Seconds(1));
  q.AddWaiting("poll-news", absl::Seconds(1));
  clock.t += absl::Milliseconds(30);
  q.AddWaiting("poll-hint", absl::Seconds(1));
  clock.t += absl::Milliseconds(20);  // the timers of the first two are due, poll-hint's is not
  q.Add("fresh");
  q.Add("poll-news");  // its pod changed (e.g. status.podIP published): kFirst again
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "fresh");
  q.Done(k);
  // A new file in the runtime's netns directory: poll-hint now (the other two are queued already: nothing to
  // release there).
  EXPECT_EQ(q.ReleaseWaiting(), 1u);
  q.Add("fresh-2", P::kFirst);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"poll-news", "fresh-2", "poll-timer", "poll-hint"}));
}

// A release goes to a key whose timer is still pending, not to one whose timer fired and that waits in the
// queue already (it would gain nothing, and the key that can use the hint would keep waiting for its timer).
TEST(WorkQueue, ReleaseWaitingSkipsKeysQueuedAlready) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  q.AddWaiting("old-due", absl::Seconds(1));
  clock.t += absl::Milliseconds(60);
  q.AddWaiting("hint-target", absl::Seconds(1));
  q.Add("busy");
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));  // promotes old-due (queued as a poll) and hands out busy
  EXPECT_EQ(k, "busy");
  EXPECT_EQ(q.ReleaseWaiting(1), 1u);
  EXPECT_EQ(q.Waiting(), 1u);  // old-due: queued, leaves the waiting set when handed out
  q.Done(k);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"old-due", "hint-target"}));
  EXPECT_EQ(q.Waiting(), 0u);
}

// The sandbox poller found these pods' sandboxes ready: each goes now, before re-checks; pods still without a
// sandbox keep their timers; keys that do not wait are ignored.
TEST(WorkQueue, ReleaseWaitingKeysReleasesExactlyThoseKeysAsFirst) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  AddWaitingAll(q, {"a", "b", "c"});
  q.Add("recheck", WorkQueue::Priority::kRecheck);
  EXPECT_EQ(q.WaitingKeys(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(q.ReleaseWaitingKeys({"c", "a", "stranger", "recheck"}), 2u);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"c", "a", "recheck"}));
  EXPECT_EQ(q.WaitingKeys(), std::vector<std::string>{"b"});
  clock.t += absl::Seconds(1);
  EXPECT_EQ(Drain(q), std::vector<std::string>{"b"});  // its timer was kept
}

// A key whose timer fired waits in the queue as a poll (kRecheck); the poller's news moves it up.
TEST(WorkQueue, ReleaseWaitingKeysMovesUpAQueuedPoll) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  q.AddWaiting("p", absl::Seconds(1));
  q.Add("r", WorkQueue::Priority::kRecheck);
  q.Add("x");
  clock.t += absl::Milliseconds(60);
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));  // promotes p as a poll behind r; hands out x
  EXPECT_EQ(k, "x");
  EXPECT_EQ(q.WaitingKeys(), std::vector<std::string>{"p"});
  EXPECT_EQ(q.ReleaseWaitingKeys({"p"}), 1u);
  q.Done(k);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"p", "r"}));
}

// ReleaseWaitingKeys releases a key once until Forget; ReleaseWaitingKey has no such rule (the caller's
// reason is another: the key's backstop timer lost its watcher).
TEST(WorkQueue, ReleaseWaitingKeysOncePerKeyUntilForget) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  std::string k;
  for (int round = 0; round < 2; ++round) {
    q.AddWaiting("a", absl::Seconds(1));
    EXPECT_EQ(q.ReleaseWaitingKeys({"a"}), round == 0 ? 1u : 0u);
    EXPECT_EQ(q.ReleasedByList("a"), true);
    if (round == 1) EXPECT_TRUE(q.ReleaseWaitingKey("a"));
    ASSERT_TRUE(q.TryGet(&k));
    q.Done(k);
  }
  q.Forget("a");
  EXPECT_FALSE(q.ReleasedByList("a"));
  q.AddWaiting("a", absl::Seconds(1));
  EXPECT_EQ(q.ReleaseWaitingKeys({"a"}), 1u);
}

// A key a worker has is not waiting any more: nothing to release.
TEST(WorkQueue, ReleaseWaitingKeysLeavesAKeyBeingProcessedAlone) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  q.AddWaiting("b", absl::Seconds(1));
  clock.t += absl::Milliseconds(60);
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "b");
  EXPECT_TRUE(q.WaitingKeys().empty());
  EXPECT_EQ(q.ReleaseWaitingKeys({"b"}), 0u);
  q.Done(k);
  EXPECT_TRUE(Drain(q).empty());
}

// Waiting for a sandbox is not failing: a key that polled several times gets the base delay for its first
// real failure.
TEST(WorkQueue, WaitingDoesNotGrowTheFailureBackoff) {
  FakeClock clock;
  WorkQueue q(clock.Options(absl::Milliseconds(10), absl::Seconds(10)));
  for (int i = 0; i < 6; ++i) {
    q.AddWaiting("a", absl::Seconds(1));
    ASSERT_EQ(PassAndTake(q, clock, absl::Seconds(1)), "a");
  }
  EXPECT_EQ(q.AddRateLimited("a"), absl::Milliseconds(10));
  EXPECT_EQ(q.NumRequeues("a"), 7);
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
}

TEST(WorkQueue, PerItemExponentialBackoffWithCapAndForget) {
  FakeClock clock;
  WorkQueue q(clock.Options(absl::Milliseconds(10), absl::Milliseconds(100)));
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 6; ++i) delays.push_back(q.AddRateLimited("a"));
  EXPECT_EQ(delays, (std::vector<absl::Duration>{absl::Milliseconds(10), absl::Milliseconds(20),
                                                 absl::Milliseconds(40), absl::Milliseconds(80),
                                                 absl::Milliseconds(100), absl::Milliseconds(100)}));
  EXPECT_EQ(q.NumRequeues("a"), 6);
  EXPECT_EQ(q.AddRateLimited("b"), absl::Milliseconds(10));  // independent per item
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);

  // Delayed keys become ready only when their time comes (earliest delay wins).
  std::string k;
  EXPECT_FALSE(q.TryGet(&k));
  clock.t += absl::Milliseconds(10);
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "a");  // its earliest pending delay was 10 ms
  q.Done(k);
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "b");
  q.Done(k);
  clock.t += absl::Seconds(1);
  EXPECT_FALSE(q.TryGet(&k));  // stale later entries of "a" do not re-add it
}

TEST(WorkQueue, OutageParkingKeepsTheBackoffAndReleasesAllAtOnce) {
  FakeClock clock;
  WorkQueue::Options o = clock.Options(absl::Milliseconds(50));
  o.outage_retry = absl::Milliseconds(200);
  WorkQueue q(o);
  std::string k;
  // "a" failed twice on its own (backoff 50, 100 ms), then the runtime went down.
  q.AddRateLimited("a");
  ASSERT_EQ(PassAndTake(q, clock, absl::Milliseconds(50)), "a");
  q.AddRateLimited("a");
  ASSERT_EQ(PassAndTake(q, clock, absl::Milliseconds(100)), "a");
  for (int i = 0; i < 5; ++i) {  // five outage retries: the failure count does not grow
    ASSERT_TRUE(q.ParkForOutage("a"));
    EXPECT_EQ(q.Parked(), 1u);
    clock.t += absl::Milliseconds(199);
    EXPECT_FALSE(q.TryGet(&k));
    clock.t += absl::Milliseconds(1);
    ASSERT_TRUE(q.TryGet(&k));  // retried after outage_retry, not after a doubled backoff
    EXPECT_EQ(q.Parked(), 0u);  // handed out: no longer parked
    q.Done(k);
  }
  EXPECT_EQ(q.NumRequeues("a"), 2);
  EXPECT_EQ(q.AddRateLimited("a"), absl::Milliseconds(200));  // resumes: 50 * 2^2
  ASSERT_EQ(PassAndTake(q, clock, absl::Milliseconds(200)), "a");

  // The runtime answers again: every parked key is ready now, not at its timer.
  for (std::string key : {"p1", "p2", "p3"}) ASSERT_TRUE(q.ParkForOutage(key));
  EXPECT_FALSE(q.TryGet(&k));
  EXPECT_EQ(q.ReleaseParked(), 3u);
  EXPECT_EQ(q.Parked(), 0u);
  std::set<std::string> got;
  while (q.TryGet(&k)) {
    got.insert(k);
    q.Done(k);
  }
  EXPECT_EQ(got, (std::set<std::string>{"p1", "p2", "p3"}));
  clock.t += absl::Seconds(1);
  EXPECT_FALSE(q.TryGet(&k));  // their outage timers are gone
  EXPECT_EQ(q.Delayed(), 0u);
}

// A pod whose sandbox does not exist yet: backoff as usual but capped, and released at once when a new
// sandbox shows up on the node.
TEST(WorkQueue, WaitingKeysAreCappedAndReleasedBySignal) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  std::string k;
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 6; ++i) {
    delays.push_back(q.AddWaiting("a", absl::Milliseconds(500)));
    ASSERT_EQ(PassAndTake(q, clock, delays.back()), "a");
  }
  EXPECT_EQ(delays, (std::vector<absl::Duration>{absl::Milliseconds(50), absl::Milliseconds(100),
                                                 absl::Milliseconds(200), absl::Milliseconds(400),
                                                 absl::Milliseconds(500), absl::Milliseconds(500)}));
  // A floor (the backstop while the sandbox poller watches): never sooner, whatever the count.
  EXPECT_EQ(q.AddWaiting("a", absl::Milliseconds(500), absl::Seconds(5)), absl::Seconds(5));
  EXPECT_EQ(PassAndTake(q, clock, absl::Seconds(5) - absl::Milliseconds(1)), "");
  ASSERT_EQ(PassAndTake(q, clock, absl::Milliseconds(1)), "a");
  for (std::string key : {"w1", "w2"})
    ASSERT_TRUE(q.AddWaiting(key, absl::Seconds(1)) > absl::ZeroDuration());
  EXPECT_EQ(q.Waiting(), 2u);
  EXPECT_FALSE(q.TryGet(&k));
  EXPECT_EQ(q.ReleaseWaiting(), 2u);
  std::set<std::string> got;
  while (q.TryGet(&k)) {
    got.insert(k);
    q.Done(k);
  }
  EXPECT_EQ(got, (std::set<std::string>{"w1", "w2"}));
  EXPECT_EQ(q.Waiting(), 0u);
  clock.t += absl::Seconds(2);
  EXPECT_FALSE(q.TryGet(&k));  // their timers are gone
}

TEST(WorkQueue, ReleaseWaitingTakesTheLongestWaitingFirst) {
  FakeClock clock;
  WorkQueue q(clock.Options());
  AddWaitingAll(q, {"a", "b", "c"});
  std::string k;
  EXPECT_FALSE(q.TryGet(&k));
  EXPECT_EQ(q.ReleaseWaiting(1), 1u);
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_EQ(k, "a");
  q.Done(k);
  q.AddWaiting("a", absl::Seconds(1));  // failed again: now it has waited least
  EXPECT_EQ(q.ReleaseWaiting(2), 2u);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(q.Waiting(), 1u);
}

TEST(WorkQueue, BoundDropsBeyondMaxItems) {
  WorkQueue::Options o;
  o.max_items = 2;
  WorkQueue q(o);
  EXPECT_TRUE(q.Add("a"));
  EXPECT_TRUE(q.AddAfter("b", absl::Hours(1)));
  EXPECT_FALSE(q.Add("c"));
  EXPECT_FALSE(q.AddAfter("d", absl::Hours(1)));
  EXPECT_TRUE(q.Add("a"));  // already there: not a new item
  EXPECT_EQ(q.dropped(), 2u);
  std::string k;
  ASSERT_TRUE(q.TryGet(&k));
  EXPECT_TRUE(q.Add("c"));  // room again
}

TEST(WorkQueue, ShutDownWakesBlockedGetters) {
  WorkQueue q;
  std::atomic<int> returned{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      std::string k;
      while (q.Get(&k)) q.Done(k);
      ++returned;
    });
  q.Add("x");
  q.ShutDown();
  for (auto& t : ts) t.join();
  EXPECT_EQ(returned.load(), 3);
  EXPECT_FALSE(q.Add("y"));
  std::string k;
  EXPECT_FALSE(q.Get(&k));
}

TEST(WorkQueue, BlockingGetSeesDelayedKey) {
  WorkQueue q;
  q.AddAfter("late", absl::Milliseconds(20));
  std::string k;
  ASSERT_TRUE(q.Get(&k));  // returns once the delay has passed
  EXPECT_EQ(k, "late");
}

}  // namespace
}  // namespace pnc::controller
