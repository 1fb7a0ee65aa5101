#include "netns/detect.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

// A procfs-like net directory standing for the node's namespace: ip_tables_names lists `legacy`.
std::string FakeNodeProcNet(const std::string& name, const std::string& legacy) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  mkdir(dir.c_str(), 0755);
  if (!legacy.empty()) std::ofstream(dir + "/ip_tables_names") << legacy;
  return dir;
}

TEST(NodeNetfilterTest, LegacyOnlyWhenTheNodeHasLegacyTables) {
  absl::StatusOr<NodeNetfilter> nft_node = DetectNodeNetfilter(FakeNodeProcNet("nft-node", ""));
  ASSERT_TRUE(nft_node.ok()) << nft_node.status();
  EXPECT_FALSE(nft_node->uses_legacy());
  EXPECT_STREQ(nft_node->preferred(), "nft");
  absl::StatusOr<NodeNetfilter> legacy_node =
      DetectNodeNetfilter(FakeNodeProcNet("legacy-node", "filter\nnat\n"));
  ASSERT_TRUE(legacy_node.ok()) << legacy_node.status();
  EXPECT_THAT(legacy_node->legacy, ::testing::ElementsAre("ipv4 filter", "ipv4 nat"));
  EXPECT_STREQ(legacy_node->preferred(), "iptc");
  // This process's own view works too (whatever it holds), and reading it creates nothing.
  EXPECT_TRUE(DetectNodeNetfilter("/proc/thread-self/net").ok());
}

TEST_F(DetectTest, AutoBackendPrefersNftUnlessTheNodeUsesLegacy) {
  const rules::Ruleset rs = testing::IstioLikeRuleset({});
  std::unique_ptr<Backend> nft = *NewBackendByName("nft");
  std::unique_ptr<Backend> iptc = *NewBackendByName("iptc");

  absl::StatusOr<std::unique_ptr<Backend>> on_nft_node = NewAutoBackend(FakeNodeProcNet("auto-nft", ""));
  ASSERT_TRUE(on_nft_node.ok()) << on_nft_node.status();
  testing::PodNetns fresh = NewPod("detect-auto-a");
  ASSERT_TRUE(ApplyAndVerify(**on_nft_node, fresh.handle(), rs).ok());
  absl::StatusOr<rules::Ruleset> via_nft = nft->ReadBack(fresh.handle());
  ASSERT_TRUE(via_nft.ok()) << via_nft.status();
  EXPECT_EQ(*via_nft, rs) << "an empty namespace on an nft node gets native nftables rules";
  ASSERT_TRUE(RunInNetns(fresh.handle(), [&]() -> absl::Status {
                for (rules::Family f : {rules::Family::kIPv4, rules::Family::kIPv6})
                  EXPECT_TRUE(LegacyTablesInCurrentNetns(f)->empty()) << "no x_tables touched";
                return absl::OkStatus();
              }).ok());

  absl::StatusOr<std::unique_ptr<Backend>> on_legacy_node =
      NewAutoBackend(FakeNodeProcNet("auto-legacy", "nat\n"));
  ASSERT_TRUE(on_legacy_node.ok()) << on_legacy_node.status();
  testing::PodNetns fresh2 = NewPod("detect-auto-b");
  ASSERT_TRUE(ApplyAndVerify(**on_legacy_node, fresh2.handle(), rs).ok());
  absl::StatusOr<rules::Ruleset> via_iptc = iptc->ReadBack(fresh2.handle());
  ASSERT_TRUE(via_iptc.ok()) << via_iptc.status();
  EXPECT_EQ(*via_iptc, rs) << "an empty namespace on a legacy node gets legacy rules";

  // Whatever the node, a namespace that already holds one side keeps it.
  testing::PodNetns nft_pod = NewPod("detect-auto-c");
  ASSERT_TRUE(nft->Apply(nft_pod.handle(), testing::IstioLikeRuleset({.dns = true})).ok());
  ASSERT_TRUE(ApplyAndVerify(**on_legacy_node, nft_pod.handle(), rs).ok());
  via_nft = nft->ReadBack(nft_pod.handle());
  ASSERT_TRUE(via_nft.ok());
  EXPECT_EQ(*via_nft, rs);
  ASSERT_TRUE((*on_legacy_node)->Remove(nft_pod.handle()).ok());

  testing::PodNetns legacy_pod = NewPod("detect-auto-d");
  ASSERT_TRUE(iptc->Apply(legacy_pod.handle(), testing::IstioLikeRuleset({.dns = true})).ok());
  ASSERT_TRUE(ApplyAndVerify(**on_nft_node, legacy_pod.handle(), rs).ok());
  via_iptc = iptc->ReadBack(legacy_pod.handle());
  ASSERT_TRUE(via_iptc.ok());
  EXPECT_EQ(*via_iptc, rs);
}

}  // namespace
}  // namespace pnc::netns
