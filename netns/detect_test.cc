#include "netns/detect.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backends.h"
#include "netns/executor.h"
#include "netns/nft/nft_backend.h"
#include "netns/testing/fixtures.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/xtables_names.h"

namespace pnc::netns {
namespace {

using ::testing::HasSubstr;

TEST(DecideBackendTest, EmptyNamespaceTakesPreferred) {
  for (const char* pref : {"iptc", "restore", "nft"}) {
    absl::StatusOr<Detection> d = DecideBackend({}, {}, pref, "ns");
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->backend, pref);
  }
}

TEST(DecideBackendTest, FollowsWhatIsThere) {
  EXPECT_EQ(DecideBackend({"ipv4 nat"}, {}, "nft", "ns")->backend, "iptc");
  EXPECT_EQ(DecideBackend({"ipv4 nat"}, {}, "restore", "ns")->backend, "restore");
  EXPECT_EQ(DecideBackend({}, {"ip nat"}, "iptc", "ns")->backend, "nft");
  EXPECT_EQ(DecideBackend({}, {"ip istio_pnc"}, "restore", "ns")->backend, "nft");
}

TEST(DecideBackendTest, RefusesMixedWithClearMessage) {
  absl::StatusOr<Detection> d = DecideBackend({"ipv4 nat"}, {"inet filter"}, "iptc", "network namespace /x");
  ASSERT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("/x already holds both legacy iptables tables (ipv4 nat)"));
  EXPECT_THAT(d.status().message(), HasSubstr("nftables tables (inet filter)"));
}

TEST(DecideBackendTest, RejectsUnknownPreference) {
  EXPECT_EQ(DecideBackend({}, {}, "iptables", "ns").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewBackendByName("iptables").status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"iptc", "nft", "restore", "auto"}) {
    absl::StatusOr<std::unique_ptr<Backend>> b = NewBackendByName(name);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->Name(), name);
  }
}

class DetectTest : public ::testing::Test {
 protected:
  void SetUp() override { PNC_SANDBOX_OR_SKIP(sandbox_); }
  testing::PodNetns NewPod(const std::string& name) {
    absl::StatusOr<testing::PodNetns> pod = sandbox_->CreatePodNetns(name);
    if (!pod.ok()) {
      std::fprintf(stderr, "CreatePodNetns: %s\n", pod.status().ToString().c_str());
      std::abort();
    }
    return *std::move(pod);
  }
  testing::Sandbox* sandbox_ = nullptr;
};

TEST_F(DetectTest, FreshNamespaceAndNoSideEffects) {
  testing::PodNetns pod = NewPod("detect-fresh");
  absl::StatusOr<Detection> d = DetectBackend(pod.handle(), "nft");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->backend, "nft");
  EXPECT_TRUE(d->legacy.empty());
  EXPECT_TRUE(d->nft.empty());
  // Detection created nothing on either side.
  ASSERT_TRUE(RunInNetns(pod.handle(), [&]() -> absl::Status {
                for (rules::Family f : {rules::Family::kIPv4, rules::Family::kIPv6}) {
                  absl::StatusOr<std::vector<std::string>> names = LegacyTablesInCurrentNetns(f);
                  if (!names.ok()) return names.status();
                  EXPECT_TRUE(names->empty());
                }
                absl::StatusOr<std::vector<std::string>> nft = ListNftTablesInCurrentNetns();
                if (!nft.ok()) return nft.status();
                EXPECT_TRUE(nft->empty());
                return absl::OkStatus();
              }).ok());
}

TEST_F(DetectTest, SeesEachBackendAndRefusesBoth) {
  testing::PodNetns pod = NewPod("detect-both");
  const rules::Ruleset rs = testing::IstioLikeRuleset({.ipv6 = false});
  std::unique_ptr<Backend> iptc = *NewBackendByName("iptc");
  std::unique_ptr<Backend> nft = *NewBackendByName("nft");
  ASSERT_TRUE(iptc->Apply(pod.handle(), rs).ok());
  absl::StatusOr<Detection> d = DetectBackend(pod.handle(), "nft");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->backend, "iptc");
  EXPECT_THAT(d->legacy, ::testing::Contains("ipv4 nat"));

  testing::PodNetns other = NewPod("detect-nft");
  ASSERT_TRUE(nft->Apply(other.handle(), rs).ok());
  d = DetectBackend(other.handle(), "iptc");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->backend, "nft");

  ASSERT_TRUE(nft->Apply(pod.handle(), rs).ok());  // now both in one netns
  d = DetectBackend(pod.handle(), "iptc");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition) << d.status();
}

TEST_F(DetectTest, AutoBackendFollowsTheNamespace) {
  const rules::Ruleset rs = testing::IstioLikeRuleset({});
  std::unique_ptr<Backend> autob = *NewBackendByName("auto");
  testing::PodNetns fresh = NewPod("detect-auto-a");
  ASSERT_TRUE(ApplyAndVerify(*autob, fresh.handle(), rs).ok());
  absl::StatusOr<rules::Ruleset> via_iptc = (*NewBackendByName("iptc"))->ReadBack(fresh.handle());
  ASSERT_TRUE(via_iptc.ok());
  EXPECT_EQ(*via_iptc, rs) << "an empty namespace gets legacy rules";

  testing::PodNetns nft_pod = NewPod("detect-auto-b");
  ASSERT_TRUE(
      (*NewBackendByName("nft"))->Apply(nft_pod.handle(), testing::IstioLikeRuleset({.dns = true})).ok());
  ASSERT_TRUE(ApplyAndVerify(*autob, nft_pod.handle(), rs).ok());
  absl::StatusOr<rules::Ruleset> via_nft = (*NewBackendByName("nft"))->ReadBack(nft_pod.handle());
  ASSERT_TRUE(via_nft.ok());
  EXPECT_EQ(*via_nft, rs);
  ASSERT_TRUE(autob->Remove(nft_pod.handle()).ok());
}

}  // namespace
}  // namespace pnc::netns
