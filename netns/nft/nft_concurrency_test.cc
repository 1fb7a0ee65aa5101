// Several callers applying into the same fresh netns at once (the controller never does this for one pod, but
// nothing may double): a table we saw absent is created with NLM_F_EXCL, so all but one batch fail atomically
// with EEXIST and retry through the re-apply path.
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace pnc::netns
