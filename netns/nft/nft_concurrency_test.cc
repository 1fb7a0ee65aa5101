// Several callers applying into the same fresh netns at once (the controller never does this for one pod, but
// nothing may double): a table we saw absent is created with NLM_F_EXCL, so all but one batch fail atomically
// with EEXIST and retry through the re-apply path.
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/nft/nft_backend.h"
#include "netns/routing/test_util.h"
#include "rules/plan.h"

namespace pnc::netns {
namespace {

TEST(NftConcurrencyTest, ConcurrentAppliesIntoOneNetnsLeaveOneCopy) {
  rules::RedirectPlan plan;
  plan.ipv6 = true;
  const rules::Ruleset want = rules::BuildRuleset(plan);
  std::unique_ptr<Backend> backend = NewNftBackend();
  for (int round = 0; round < 10; ++round) {
    absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
    PNC_NETNS_OR_SKIP(ns.status());
    std::vector<absl::Status> results(6);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < results.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = backend->Apply(*ns, want); });
    }
    for (auto& t : threads) t.join();
    for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
    absl::StatusOr<rules::Ruleset> got = backend->ReadBack(*ns);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, want) << "round " << round;
  }
}

// A read-back while another writer commits into the same netns: the kernel marks a dump that a commit
// interrupted (NLM_F_DUMP_INTR), and the dump is taken again rather than failing with EINTR. A read-back may
// still see the writer's state change between its dumps; only "Interrupted system call" is not acceptable.
TEST(NftConcurrencyTest, ReadBackDuringCommitsIsNeverInterrupted) {
  rules::RedirectPlan plan;
  plan.ipv6 = true;
  const rules::Ruleset want = rules::BuildRuleset(plan);
  std::unique_ptr<Backend> backend = NewNftBackend();
  absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
  PNC_NETNS_OR_SKIP(ns.status());
  ASSERT_TRUE(backend->Apply(*ns, want).ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      (void)backend->Remove(*ns);
      (void)backend->Apply(*ns, want);
    }
  });
  int interrupted = 0, ok = 0;
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<rules::Ruleset> got = backend->ReadBack(*ns);
    if (got.ok()) ++ok;
    if (!got.ok() && absl::StrContains(got.status().message(), "Interrupted system call")) ++interrupted;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(interrupted, 0);
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace pnc::netns
