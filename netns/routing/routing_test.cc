#include "netns/routing/routing.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/routing/netlink.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

using rules::Family;
using rules::PolicyRoute;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kIp[] = "/usr/sbin/ip";

std::string Ip(std::vector<std::string> args) {
  args.insert(args.begin(), kIp);
  absl::StatusOr<std::string> out = testing::RunCapture(args);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

int CountLines(const std::string& text, const std::string& needle) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n'))
    if (absl::StrContains(line, needle)) ++n;
  return n;
}

// Every test body runs on its own thread in a fresh netns; the host netns is never touched.
#define IN_FRESH_NETNS(...)                                               \
  do {                                                                    \
    absl::Status setup_ = testing::RunInFreshNetns([&] { __VA_ARGS__; }); \
    PNC_NETNS_OR_SKIP(setup_);                                            \
  } while (0)

TEST(RoutingTest, InstallsRuleAndLocalRouteBothFamilies) {
  IN_FRESH_NETNS({
    std::vector<PolicyRoute> want = {{Family::kIPv6, 1337, 133}, {Family::kIPv4, 1337, 133}};
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    absl::StatusOr<std::vector<PolicyRoute>> got = ReadPolicyRoutes();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_THAT(*got,
                ElementsAre(PolicyRoute{Family::kIPv4, 1337, 133}, PolicyRoute{Family::kIPv6, 1337, 133}));
    // Cross-check with iproute2.
    EXPECT_EQ(CountLines(Ip({"-4", "rule", "show"}), "32765:\tfrom all fwmark 0x539 lookup 133 proto 154"),
              1);
    EXPECT_EQ(CountLines(Ip({"-6", "rule", "show"}), "32765:\tfrom all fwmark 0x539 lookup 133 proto 154"),
              1);
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "133"}), HasSubstr("local default dev lo proto 154"));
    EXPECT_THAT(Ip({"-6", "route", "show", "table", "133"}), HasSubstr("local default dev lo proto 154"));
  });
}

TEST(RoutingTest, IdempotentLeavesExactlyOneCopy) {
  IN_FRESH_NETNS({
    std::vector<PolicyRoute> want = {{Family::kIPv4, 1337, 133}};
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    EXPECT_EQ(CountLines(Ip({"-4", "rule", "show"}), "fwmark 0x539"), 1);
    EXPECT_EQ(CountLines(Ip({"-4", "route", "show", "table", "133"}), "local default"), 1);
    EXPECT_THAT(*ReadPolicyRoutes(), ElementsAre(PolicyRoute{Family::kIPv4, 1337, 133}));
  });
}

TEST(RoutingTest, ChangeReplacesOursAndKeepsForeignEntries) {
  IN_FRESH_NETNS({
    // Someone else's rule and route (default protocol "boot").
    Ip({"-4", "rule", "add", "fwmark", "7", "lookup", "200"});
    Ip({"-4", "route", "add", "local", "default", "dev", "lo", "table", "200"});
    ASSERT_TRUE(SyncPolicyRoutes({{Family::kIPv4, 1337, 133}}).ok());
    ASSERT_TRUE(SyncPolicyRoutes({{Family::kIPv4, 1338, 134}}).ok());
    EXPECT_THAT(*ReadPolicyRoutes(), ElementsAre(PolicyRoute{Family::kIPv4, 1338, 134}));
    std::string rules_text = Ip({"-4", "rule", "show"});
    EXPECT_THAT(rules_text, Not(HasSubstr("lookup 133")));
    EXPECT_THAT(rules_text, HasSubstr("fwmark 0x53a lookup 134 proto 154"));
    EXPECT_THAT(rules_text, HasSubstr("fwmark 0x7 lookup 200"));
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "133"}), IsEmpty());
    // Removing everything of ours leaves the foreign entries.
    ASSERT_TRUE(SyncPolicyRoutes({}).ok());
    EXPECT_THAT(*ReadPolicyRoutes(), IsEmpty());
    EXPECT_THAT(Ip({"-4", "rule", "show"}), HasSubstr("fwmark 0x7 lookup 200"));
    EXPECT_THAT(Ip({"-4", "rule", "show"}), Not(HasSubstr("proto 154")));
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "200"}), HasSubstr("local default dev lo"));
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "134"}), IsEmpty());
  });
}

TEST(RoutingTest, HalfInstalledStateIsNotReportedAndIsRepaired) {
  IN_FRESH_NETNS({
    std::vector<PolicyRoute> want = {{Family::kIPv4, 1337, 133}};
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    Ip({"-4", "route", "del", "local", "default", "dev", "lo", "table", "133"});
    EXPECT_THAT(*ReadPolicyRoutes(), IsEmpty());  // the rule alone does not count
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    EXPECT_THAT(*ReadPolicyRoutes(), ElementsAre(PolicyRoute{Family::kIPv4, 1337, 133}));
    EXPECT_EQ(CountLines(Ip({"-4", "rule", "show"}), "fwmark 0x539"), 1);
  });
}

// ReadPolicyRoutes skips the route dump when no rule of ours exists; a route of ours left without its rule
// is still not reported, and Sync({}) still finds and deletes it.
TEST(RoutingTest, RouteWithoutRuleIsNotReportedAndIsRemoved) {
  IN_FRESH_NETNS({
    ASSERT_TRUE(SyncPolicyRoutes({{Family::kIPv4, 1337, 133}}).ok());
    Ip({"-4", "rule", "del", "fwmark", "1337", "lookup", "133"});
    EXPECT_THAT(*ReadPolicyRoutes(), IsEmpty());
    absl::StatusOr<MnlSocket> rtnl = MnlSocket::Open(NETLINK_ROUTE);
    ASSERT_TRUE(rtnl.ok()) << rtnl.status();
    EXPECT_THAT(*ReadPolicyRoutes(*rtnl), IsEmpty());
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "133"}), HasSubstr("local default dev lo"));
    ASSERT_TRUE(SyncPolicyRoutes(*rtnl, {}).ok());
    EXPECT_THAT(Ip({"-4", "route", "show", "table", "133"}), Not(HasSubstr("local default")));
  });
}

TEST(RoutingTest, LargeTableIdsUseTheExtendedAttribute) {
  IN_FRESH_NETNS({
    std::vector<PolicyRoute> want = {{Family::kIPv6, 0x10000, 1000}};
    ASSERT_TRUE(SyncPolicyRoutes(want).ok());
    EXPECT_THAT(*ReadPolicyRoutes(), ElementsAre(PolicyRoute{Family::kIPv6, 0x10000, 1000}));
    EXPECT_THAT(Ip({"-6", "route", "show", "table", "1000"}), HasSubstr("local default dev lo"));
  });
}

}  // namespace
}  // namespace pnc::netns
