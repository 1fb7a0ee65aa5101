#include "netns/routing/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/routing/netlink.h"
#include "netns/routing/routing_state.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

using rules::Cidr;
using rules::Family;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const Cidr kSix{Family::kIPv6, "::6", 128};

std::string Ip(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/sbin/ip");
  absl::StatusOr<std::string> out = testing::RunCapture(args);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

// bind() to [addr]:0 succeeds only when addr is a local address (no IPV6_FREEBIND).
bool CanBind6(const char* addr) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  inet_pton(AF_INET6, addr, &a.sin6_addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

#define IN_FRESH_NETNS(...)                                               \
  do {                                                                    \
    absl::Status setup_ = testing::RunInFreshNetns([&] { __VA_ARGS__; }); \
    PNC_NETNS_OR_SKIP(setup_);                                            \
  } while (0)

TEST(LoopbackTest, AddsReadsAndRemovesOurAddressOnly) {
  IN_FRESH_NETNS({
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    ASSERT_TRUE(nl.ok()) << nl.status();
    EXPECT_FALSE(CanBind6("::6"));                      // control: a fresh lo holds only ::1
    Ip({"-6", "addr", "add", "::7/128", "dev", "lo"});  // foreign: never touched
    ASSERT_TRUE(SyncLoopbackAddresses(*nl, {kSix}).ok());
    absl::StatusOr<std::vector<Cidr>> got = ReadLoopbackAddresses(*nl);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_THAT(*got, ElementsAre(kSix));
    EXPECT_THAT(Ip({"-6", "addr", "show", "dev", "lo"}), HasSubstr("inet6 ::6/128 scope global"));
    // Not tentative (no DAD pending): usable at once, even when the kernel's addrconf work runs late.
    EXPECT_THAT(Ip({"-6", "addr", "show", "dev", "lo"}), HasSubstr("inet6 ::6/128 scope global nodad"));
    EXPECT_TRUE(CanBind6("::6"));                          // what Envoy's inbound passthrough cluster does
    ASSERT_TRUE(SyncLoopbackAddresses(*nl, {kSix}).ok());  // idempotent
    EXPECT_THAT(*ReadLoopbackAddresses(*nl), ElementsAre(kSix));

    ASSERT_TRUE(SyncRoutingState(*nl, rules::Ruleset{}).ok());  // Remove
    EXPECT_THAT(*ReadLoopbackAddresses(*nl), IsEmpty());
    const std::string after = Ip({"-6", "addr", "show", "dev", "lo"});
    EXPECT_THAT(after, Not(HasSubstr("::6/128")));
    EXPECT_THAT(after, HasSubstr("::7/128"));
    EXPECT_THAT(after, HasSubstr("::1/128"));
  });
}

TEST(LoopbackTest, TakesOverAPreexistingAddressInPlace) {
  IN_FRESH_NETNS({
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    ASSERT_TRUE(nl.ok()) << nl.status();
    Ip({"-6", "addr", "add", "::6/128", "dev", "lo"});    // as Istio's own init would have
    EXPECT_THAT(*ReadLoopbackAddresses(*nl), IsEmpty());  // not ours
    ASSERT_TRUE(SyncLoopbackAddresses(*nl, {}).ok());
    EXPECT_THAT(Ip({"-6", "addr", "show", "dev", "lo"}), HasSubstr("::6/128"));  // not ours: kept
    ASSERT_TRUE(SyncLoopbackAddresses(*nl, {kSix}).ok());
    EXPECT_THAT(*ReadLoopbackAddresses(*nl), ElementsAre(kSix));
    const std::vector<std::string> parts = absl::StrSplit(Ip({"-6", "addr", "show", "dev", "lo"}), "::6/128");
    EXPECT_EQ(parts.size(), 2u);  // one copy
  });
}

// A sync that sends nothing hands back the read of its own dumps, equal to a separate read; one that changes
// anything (an address or a policy route) hands back nothing.
TEST(RoutingStateTest, SyncReportsTheReadOnlyWhenItChangedNothing) {
  IN_FRESH_NETNS({
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    ASSERT_TRUE(nl.ok()) << nl.status();
    rules::Ruleset want;
    want.loopback_addresses = {kSix};
    want.routes = {{Family::kIPv4, 1337, 133}, {Family::kIPv6, 1337, 133}};
    std::optional<rules::Ruleset> read;
    ASSERT_TRUE(SyncRoutingState(*nl, want, &read).ok());
    EXPECT_FALSE(read.has_value());  // first sync: added everything

    ASSERT_TRUE(SyncRoutingState(*nl, want, &read).ok());
    ASSERT_TRUE(read.has_value());
    rules::Ruleset separate;
    ASSERT_TRUE(ReadRoutingState(*nl, &separate).ok());
    EXPECT_EQ(read->loopback_addresses, separate.loopback_addresses);
    EXPECT_EQ(read->routes, separate.routes);
    EXPECT_EQ(read->loopback_addresses, want.loopback_addresses);
    EXPECT_EQ(read->routes, want.routes);

    // Something of ours that is not planned: deleted, so no read is handed back.
    Ip({"-4", "rule", "add", "fwmark", "7", "lookup", "134", "proto", "154"});
    ASSERT_TRUE(SyncRoutingState(*nl, want, &read).ok());
    EXPECT_FALSE(read.has_value());
    Ip({"-6", "addr", "del", "::6/128", "dev", "lo"});
    ASSERT_TRUE(SyncRoutingState(*nl, want, &read).ok());
    EXPECT_FALSE(read.has_value());
    ASSERT_TRUE(SyncRoutingState(*nl, rules::Ruleset{}, &read).ok());
    EXPECT_FALSE(read.has_value());
    ASSERT_TRUE(SyncRoutingState(*nl, rules::Ruleset{}, &read).ok());
    ASSERT_TRUE(read.has_value());
    EXPECT_THAT(read->loopback_addresses, IsEmpty());
    EXPECT_THAT(read->routes, IsEmpty());
  });
}

TEST(LoopbackTest, RejectsNonHostPrefix) {
  IN_FRESH_NETNS({
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    ASSERT_TRUE(nl.ok()) << nl.status();
    EXPECT_TRUE(absl::IsInvalidArgument(SyncLoopbackAddresses(*nl, {Cidr{Family::kIPv6, "::", 64}})));
  });
}

}  // namespace
}  // namespace pnc::netns
