#include "netns/addresses.h"

#include <linux/rtnetlink.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(ReadGlobalAddressesTest, GlobalV4AndV6OnlyNoLoopbackNoLinkLocal) {
  absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
  PNC_NETNS_OR_SKIP(ns.status());
  // A fresh netns has only loopback (127.0.0.1, ::1: host scope): no pod address yet.
  absl::StatusOr<std::vector<std::string>> none = ReadGlobalAddresses(*ns);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());

  for (std::vector<std::string> argv : {
           std::vector<std::string>{"/usr/sbin/ip", "addr", "add", "10.244.1.7/24", "dev", "lo"},
           std::vector<std::string>{"/usr/sbin/ip", "-6", "addr", "add", "fd00:10:244::7/64", "dev", "lo"},
           std::vector<std::string>{"/usr/sbin/ip", "-6", "addr", "add", "fe80::7/64", "dev", "lo"},
           std::vector<std::string>{"/usr/sbin/ip", "addr", "add", "169.254.7.7/16", "dev", "lo", "scope",
                                    "link"},
       }) {
    absl::StatusOr<std::string> out = testing::RunCaptureIn(*ns, argv);
    ASSERT_TRUE(out.ok()) << argv[3] << ": " << out.status();
  }
  absl::StatusOr<std::vector<std::string>> got = ReadGlobalAddresses(*ns);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre("10.244.1.7", "fd00:10:244::7"));

  // The full dump does see the others, with their scopes.
  std::vector<std::pair<std::string, int>> all;
  ASSERT_TRUE(RunInNetns(*ns, [&]() -> absl::Status {
                absl::StatusOr<std::vector<InterfaceAddress>> d = DumpCurrentNetnsAddresses();
                if (!d.ok()) return d.status();
                for (const InterfaceAddress& a : *d) all.push_back({a.ToString(), a.scope});
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(all, ::testing::IsSupersetOf({std::pair<std::string, int>{"127.0.0.1", RT_SCOPE_HOST},
                                            std::pair<std::string, int>{"::1", RT_SCOPE_HOST},
                                            std::pair<std::string, int>{"fe80::7", RT_SCOPE_LINK},
                                            std::pair<std::string, int>{"169.254.7.7", RT_SCOPE_LINK}}));
}

TEST(ReadGlobalAddressesTest, HandleWithoutFdIsAnError) {
  NetnsHandle fake = NetnsHandle::ForTesting("fake", 42);
  EXPECT_EQ(ReadGlobalAddresses(fake).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pnc::netns
