// Rule <-> expressions round trips through a real netlink message (build, then parse), without the kernel and
// without privileges; the netns tests (nft_backend_test, render_crosscheck_test) cover what the kernel adds.
#include "netns/nft/rule_codec.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

using namespace pnc::rules;  // NOLINT: test brevity

struct RuleFree {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleFree>;

const std::set<std::string> kChains = {"ISTIO_OUTPUT", "ISTIO_REDIRECT"};

// Encodes, serialises to a netlink message, parses it back into a fresh rule object, decodes.
absl::StatusOr<Rule> RoundTrip(Family f, Table t, const Rule& rule) {
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, f == Family::kIPv4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, "istio_pnc");
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, "nat_ISTIO_OUTPUT");
  if (absl::Status s = EncodeRule(r.get(), f, t, rule, kChains); !s.ok()) return s;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE,
                                        f == Family::kIPv4 ? NFPROTO_IPV4 : NFPROTO_IPV6, 0, 1);
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  RulePtr parsed(nftnl_rule_alloc());
  if (nftnl_rule_nlmsg_parse(nlh, parsed.get()) < 0) return absl::InternalError("parse");
  return DecodeRule(parsed.get(), f, t, "test");
}

Rule With(Target t) {
  Rule r;
  r.target = std::move(t);
  return r;
}

std::vector<Rule> MatchVariants(Family f) {
  bool v4 = f == Family::kIPv4;
  std::vector<Cidr> cidrs =
      v4 ? std::vector<Cidr>{{f, "10.0.0.0", 8},
                             {f, "10.96.0.0", 12},
                             {f, "127.0.0.1", 32},
                             {f, "0.0.0.0", 0},
                             {f, "192.168.1.128", 25}}
         : std::vector<Cidr>{
               {f, "fd00::", 8}, {f, "2001:db8::", 33}, {f, "::1", 128}, {f, "::", 0}, {f, "fe80::", 10}};
  std::vector<Rule> out;
  for (bool neg : {false, true}) {
    for (const Cidr& c : cidrs) {
      Rule a = With(ReturnTarget{});
      a.source = Negatable<Cidr>{c, neg};
      out.push_back(a);
      Rule b = With(ReturnTarget{});
      b.destination = Negatable<Cidr>{c, neg};
      out.push_back(b);
    }
    for (std::string name : {"lo", "eth0", "veth1234567890a", "eth+"}) {
      Rule a = With(AcceptTarget{});
      a.in_interface = Negatable<std::string>{name, neg};
      out.push_back(a);
      Rule b = With(AcceptTarget{});
      b.out_interface = Negatable<std::string>{name, neg};
      out.push_back(b);
    }
    for (Protocol p : {Protocol::kTcp, Protocol::kUdp}) {
      Rule a = With(ReturnTarget{});
      a.protocol = p;
      a.source_port = Negatable<uint16_t>{53, neg};
      a.destination_port = Negatable<uint16_t>{65535, !neg};
      out.push_back(a);
    }
    Rule o = With(ReturnTarget{});
    o.uid_owner = Negatable<uint32_t>{1337, neg};
    o.gid_owner = Negatable<uint32_t>{1000650000, !neg};
    out.push_back(o);
  }
  // Everything at once, in model order.
  Rule all = With(JumpTarget{"ISTIO_REDIRECT"});
  all.protocol = Protocol::kTcp;
  all.source = Negatable<Cidr>{cidrs[0], true};
  all.destination = Negatable<Cidr>{cidrs[2]};
  all.in_interface = Negatable<std::string>{"eth0"};
  all.out_interface = Negatable<std::string>{"lo", true};
  all.source_port = Negatable<uint16_t>{1};
  all.destination_port = Negatable<uint16_t>{80, true};
  all.uid_owner = Negatable<uint32_t>{0};
  all.gid_owner = Negatable<uint32_t>{1337, true};
  all.mark = Negatable<uint32_t>{0x539, true};
  all.ct_related_established = true;
  all.connmark = 0xffffffff;
  all.socket_transparent = true;
  out.push_back(all);
  return out;
}

TEST(RuleCodecTest, EveryMatchRoundTrips) {
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    for (const Rule& rule : MatchVariants(f)) {
      absl::StatusOr<Rule> back = RoundTrip(f, Table::kNat, rule);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, rule);
    }
  }
}

TEST(RuleCodecTest, EveryTargetRoundTrips) {
  struct Case {
    Table table;
    Target target;
  };
  std::vector<Case> cases = {
      {Table::kNat, JumpTarget{"ISTIO_OUTPUT"}},
      {Table::kNat, ReturnTarget{}},
      {Table::kFilter, AcceptTarget{}},
      {Table::kNat, RedirectTarget{15001}},
      {Table::kMangle, TproxyTarget{15006, 1337, 0xffffffff}},
      {Table::kMangle, TproxyTarget{15006, 0x100, 0xff00}},
      {Table::kMangle, MarkTarget{1337, 0xffffffff}},
      {Table::kMangle, MarkTarget{0x20, 0xf0}},
      {Table::kMangle, MarkTarget{0, 0x1}},
      {Table::kMangle, ConnmarkTarget{ConnmarkTarget::Op::kSave}},
      {Table::kMangle, ConnmarkTarget{ConnmarkTarget::Op::kRestore}},
      {Table::kRaw, CtZoneTarget{1}},
      {Table::kRaw, CtZoneTarget{65535}},
  };
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    for (const Case& c : cases) {
      Rule rule = With(c.target);
      rule.protocol = Protocol::kTcp;
      absl::StatusOr<Rule> back = RoundTrip(f, c.table, rule);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, rule);
    }
  }
}

TEST(RuleCodecTest, RejectsWhatNftCannotExpressTheSameWay) {
  auto code = [](Family f, Table t, const Rule& r) { return RoundTrip(f, t, r).status().code(); };
  Rule port = With(ReturnTarget{});
  port.destination_port = Negatable<uint16_t>{80};  // no protocol
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, port), absl::StatusCode::kInvalidArgument);
  Rule other_family = With(ReturnTarget{});
  other_family.destination = Negatable<Cidr>{Cidr{Family::kIPv6, "::1", 128}};
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, other_family), absl::StatusCode::kInvalidArgument);
  Rule host_bits = With(ReturnTarget{});
  host_bits.source = Negatable<Cidr>{Cidr{Family::kIPv4, "10.0.0.1", 8}};
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, host_bits), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, With(JumpTarget{"ISTIO_UNKNOWN"})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Family::kIPv4, Table::kMangle, With(RedirectTarget{1})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, With(TproxyTarget{1, 1, 1})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Family::kIPv4, Table::kMangle, With(CtZoneTarget{1})), absl::StatusCode::kInvalidArgument);
  Rule bad_if = With(ReturnTarget{});
  bad_if.in_interface = Negatable<std::string>{"a-name-longer-than-15"};
  EXPECT_EQ(code(Family::kIPv4, Table::kNat, bad_if), absl::StatusCode::kInvalidArgument);
}

TEST(RuleCodecTest, ForeignExpressionsAreErrors) {
  RulePtr r(nftnl_rule_alloc());
  ASSERT_TRUE(EncodeRule(r.get(), Family::kIPv4, Table::kNat, With(ReturnTarget{}), kChains).ok());
  nftnl_expr* counter = nftnl_expr_alloc("counter");
  nftnl_rule_add_expr(r.get(), counter);  // after the verdict, as `nft add rule ... return counter` cannot be
  absl::StatusOr<Rule> back = DecodeRule(r.get(), Family::kIPv4, Table::kNat, "nat_X");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(back.status().message().find("nat_X"), std::string::npos);

  RulePtr empty(nftnl_rule_alloc());
  EXPECT_FALSE(DecodeRule(empty.get(), Family::kIPv4, Table::kNat, "nat_X").ok());  // no verdict at all
}

TEST(RuleCodecTest, JumpsStayInTheirTable) {
  RulePtr r(nftnl_rule_alloc());
  ASSERT_TRUE(
      EncodeRule(r.get(), Family::kIPv4, Table::kNat, With(JumpTarget{"ISTIO_OUTPUT"}), kChains).ok());
  EXPECT_TRUE(DecodeRule(r.get(), Family::kIPv4, Table::kNat, "x").ok());
  // The same expressions found in a mangle chain would jump across iptables tables: not ours.
  EXPECT_FALSE(DecodeRule(r.get(), Family::kIPv4, Table::kMangle, "x").ok());
  EXPECT_EQ(NftChainName(Table::kMangle, "PREROUTING"), "mangle_PREROUTING");
}

}  // namespace
}  // namespace pnc::netns
