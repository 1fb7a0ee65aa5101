#include "netns/nft/nft_backend.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

using namespace pnc::rules;  // NOLINT: test brevity
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNft[] = "/usr/sbin/nft";

Cidr V4(std::string a, int len) { return Cidr{Family::kIPv4, std::move(a), len}; }
Cidr V6(std::string a, int len) { return Cidr{Family::kIPv6, std::move(a), len}; }

Rule R(Target t) {
  Rule r;
  r.target = std::move(t);
  return r;
}

// Istio's default REDIRECT-mode nat rules for one family (shape of istio-iptables output).
TableRules IstioNat(Family f) {
  bool v4 = f == Family::kIPv4;
  Cidr lo_src = v4 ? V4("127.0.0.6", 32) : V6("::6", 128);
  Cidr localhost = v4 ? V4("127.0.0.1", 32) : V6("::1", 128);
  TableRules t{.table = Table::kNat};
  Rule pre = R(JumpTarget{"ISTIO_INBOUND"});
  pre.protocol = Protocol::kTcp;
  Rule out = R(JumpTarget{"ISTIO_OUTPUT"});
  out.protocol = Protocol::kTcp;
  t.chains.push_back({"PREROUTING", {pre}});
  t.chains.push_back({"OUTPUT", {out}});
  Chain inbound{"ISTIO_INBOUND", {}};
  for (uint16_t p : {15008, 15090, 15021, 15020}) {
    Rule r = R(ReturnTarget{});
    r.protocol = Protocol::kTcp;
    r.destination_port = Negatable<uint16_t>{p};
    inbound.rules.push_back(r);
  }
  Rule in_all = R(JumpTarget{"ISTIO_IN_REDIRECT"});
  in_all.protocol = Protocol::kTcp;
  inbound.rules.push_back(in_all);
  Rule in_redirect = R(RedirectTarget{15006});
  in_redirect.protocol = Protocol::kTcp;
  Rule redirect = R(RedirectTarget{15001});
  redirect.protocol = Protocol::kTcp;
  Chain output{"ISTIO_OUTPUT", {}};
  {
    Rule r = R(ReturnTarget{});
    r.source = Negatable<Cidr>{lo_src};
    r.out_interface = Negatable<std::string>{"lo"};
    output.rules.push_back(r);
  }
  for (bool uid : {true, false}) {
    Rule a = R(JumpTarget{"ISTIO_IN_REDIRECT"});
    a.protocol = Protocol::kTcp;
    a.destination = Negatable<Cidr>{localhost, true};
    a.out_interface = Negatable<std::string>{"lo"};
    (uid ? a.uid_owner : a.gid_owner) = Negatable<uint32_t>{1337};
    Rule b = R(ReturnTarget{});
    b.protocol = Protocol::kTcp;
    b.out_interface = Negatable<std::string>{"lo"};
    (uid ? b.uid_owner : b.gid_owner) = Negatable<uint32_t>{1337, true};
    Rule c = R(ReturnTarget{});
    (uid ? c.uid_owner : c.gid_owner) = Negatable<uint32_t>{1337};
    output.rules.insert(output.rules.end(), {a, b, c});
  }
  Rule local = R(ReturnTarget{});
  local.destination = Negatable<Cidr>{localhost};
  output.rules.push_back(local);
  Rule excluded = R(ReturnTarget{});
  excluded.destination = Negatable<Cidr>{v4 ? V4("10.96.0.0", 12) : V6("fd00:10:96::", 112)};
  output.rules.push_back(excluded);
  output.rules.push_back(R(JumpTarget{"ISTIO_REDIRECT"}));
  // Chains of ours in name order, as ReadBack lists them.
  t.chains.push_back({"ISTIO_INBOUND", inbound.rules});
  t.chains.push_back({"ISTIO_IN_REDIRECT", {in_redirect}});
  t.chains.push_back({"ISTIO_OUTPUT", output.rules});
  t.chains.push_back({"ISTIO_REDIRECT", {redirect}});
  return t;
}

Ruleset RedirectRuleset(bool with_v6) {
  Ruleset rs;
  rs.families.push_back({Family::kIPv4, {IstioNat(Family::kIPv4)}});
  if (with_v6) rs.families.push_back({Family::kIPv6, {IstioNat(Family::kIPv6)}});
  return rs;
}

// TPROXY mode + DNS conntrack zones: every remaining match and target kind.
Ruleset TproxyRuleset() {
  Ruleset rs;
  TableRules raw{.table = Table::kRaw};
  {
    Rule a = R(CtZoneTarget{1});
    a.protocol = Protocol::kUdp;
    a.source_port = Negatable<uint16_t>{5353, true};
    a.destination_port = Negatable<uint16_t>{53};
    a.uid_owner = Negatable<uint32_t>{1337};
    Rule b = R(CtZoneTarget{2});
    b.protocol = Protocol::kUdp;
    b.in_interface = Negatable<std::string>{"eth+"};
    b.source = Negatable<Cidr>{V4("10.0.0.0", 8), true};
    raw.chains.push_back({"PREROUTING", {b}});
    raw.chains.push_back({"OUTPUT", {a}});
  }
  TableRules mangle{.table = Table::kMangle};
  {
    Rule pre = R(JumpTarget{"ISTIO_INBOUND"});
    pre.protocol = Protocol::kTcp;
    Rule restore = R(ConnmarkTarget{ConnmarkTarget::Op::kRestore});
    restore.mark = std::nullopt;
    restore.connmark = 1337;
    restore.protocol = Protocol::kTcp;
    Rule divert = R(JumpTarget{"ISTIO_DIVERT"});
    divert.protocol = Protocol::kTcp;
    divert.socket_transparent = true;
    Rule tproxy = R(TproxyTarget{15006, 1337, 0xffffffff});
    tproxy.protocol = Protocol::kTcp;
    tproxy.destination = Negatable<Cidr>{V4("127.0.0.1", 32), true};
    Rule tproxy_masked = R(TproxyTarget{15006, 0x100, 0xff00});
    tproxy_masked.protocol = Protocol::kTcp;
    Rule mark = R(MarkTarget{1337, 0xffffffff});
    Rule mark_masked = R(MarkTarget{0x20, 0xf0});
    mark_masked.mark = rules::Negatable<uint32_t>{7, false};
    Rule save = R(ConnmarkTarget{ConnmarkTarget::Op::kSave});
    Rule accept = R(AcceptTarget{});
    accept.out_interface = Negatable<std::string>{"veth0", true};
    accept.gid_owner = Negatable<uint32_t>{0, true};
    mangle.chains.push_back({"PREROUTING", {pre, restore}});
    mangle.chains.push_back({"OUTPUT", {accept}});
    mangle.chains.push_back({"ISTIO_DIVERT", {mark, accept}});
    mangle.chains.push_back({"ISTIO_INBOUND", {divert, tproxy, tproxy_masked}});
    mangle.chains.push_back({"ISTIO_TPROXY", {mark_masked, save}});
  }
  rs.families.push_back({Family::kIPv4, {raw, mangle}});
  TableRules mangle6{.table = Table::kMangle};
  {
    Rule tproxy = R(TproxyTarget{15006, 1337, 0xffffffff});
    tproxy.protocol = Protocol::kTcp;
    tproxy.source = Negatable<Cidr>{V6("2001:db8::", 33)};
    tproxy.destination_port = Negatable<uint16_t>{15008, true};
    mangle6.chains.push_back({"PREROUTING", {R(JumpTarget{"ISTIO_INBOUND"})}});
    mangle6.chains.push_back({"ISTIO_INBOUND", {tproxy}});
  }
  rs.families.push_back({Family::kIPv6, {mangle6}});
  rs.routes = {{Family::kIPv4, 1337, 133}, {Family::kIPv6, 1337, 133}};
  return rs;
}

std::string InNetns(const NetnsHandle& ns, const std::vector<std::string>& argv) {
  absl::StatusOr<std::string> out = testing::RunCaptureIn(ns, argv);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

std::string NftList(const NetnsHandle& ns) { return InNetns(ns, {kNft, "list", "ruleset"}); }

class NftBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<NetnsHandle> ns = testing::NewThrowawayNetns();
    PNC_NETNS_OR_SKIP(ns.status());
    ns_.emplace(std::move(*ns));
  }
  std::optional<NetnsHandle> ns_;
  std::unique_ptr<Backend> backend_ = NewNftBackend();
};

TEST_F(NftBackendTest, ApplyThenReadBackEqualsPlan) {
  Ruleset want = RedirectRuleset(true);
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
  EXPECT_TRUE(ApplyAndVerify(*backend_, *ns_, want).ok());
  // The nft tool sees our tables, hooks and translations.
  std::string listing = NftList(*ns_);
  EXPECT_THAT(listing, HasSubstr("table ip istio_pnc {"));
  EXPECT_THAT(listing, HasSubstr("table ip6 istio_pnc {"));
  EXPECT_THAT(listing, HasSubstr("chain nat_ISTIO_OUTPUT {"));
  EXPECT_THAT(listing, HasSubstr("type nat hook output priority -100; policy accept;"));
  EXPECT_THAT(listing, HasSubstr("tcp dport 15008 return"));
  EXPECT_THAT(listing, HasSubstr("ip6 saddr ::6 oifname \"lo\" return"));
  EXPECT_THAT(listing, HasSubstr("ip daddr != 127.0.0.1 oifname \"lo\" meta l4proto tcp meta skuid 1337 jump "
                                 "nat_ISTIO_IN_REDIRECT"));
  EXPECT_THAT(listing, HasSubstr("ip daddr 10.96.0.0/12 return"));
  EXPECT_THAT(listing, HasSubstr("meta l4proto tcp redirect to :15001"));
}

TEST_F(NftBackendTest, ApplyIsIdempotent) {
  Ruleset want = RedirectRuleset(true);
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  std::string first = NftList(*ns_);
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  EXPECT_EQ(NftList(*ns_), first);
  EXPECT_EQ(*backend_->ReadBack(*ns_), want);
}

TEST_F(NftBackendTest, ChangedRulesetReplacesOursAndKeepsForeignTables) {
  InNetns(*ns_, {kNft, "add table ip nat"});
  InNetns(*ns_, {kNft, "add chain ip nat OUTPUT { type nat hook output priority -100; }"});
  InNetns(*ns_, {kNft, "add rule ip nat OUTPUT tcp dport 9999 counter"});
  ASSERT_TRUE(backend_->Apply(*ns_, TproxyRuleset()).ok());
  Ruleset want = RedirectRuleset(false);
  want.families[0].tables[0].chains.pop_back();           // drop ISTIO_REDIRECT ...
  want.families[0].tables[0].chains[4].rules.pop_back();  // ... and the jump to it
  ASSERT_TRUE(backend_->Apply(*ns_, RedirectRuleset(true)).ok());
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
  std::string listing = NftList(*ns_);
  EXPECT_THAT(listing, Not(HasSubstr("mangle_")));             // stale iptables table gone
  EXPECT_THAT(listing, Not(HasSubstr("ip6 istio_pnc")));       // stale family gone
  EXPECT_THAT(listing, Not(HasSubstr("nat_ISTIO_REDIRECT")));  // stale chain gone
  EXPECT_THAT(listing, HasSubstr("tcp dport 9999 counter"));   // foreign rule untouched
  EXPECT_TRUE(got->routes.empty());
}

TEST_F(NftBackendTest, TproxyRoundTripsEveryMatchAndTarget) {
  Ruleset want = TproxyRuleset();
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
  std::string listing = NftList(*ns_);
  EXPECT_THAT(listing, HasSubstr("type filter hook prerouting priority mangle; policy accept;"));
  EXPECT_THAT(listing, HasSubstr("type route hook output priority mangle; policy accept;"));
  EXPECT_THAT(listing, HasSubstr("type filter hook prerouting priority raw; policy accept;"));
  EXPECT_THAT(listing, HasSubstr("socket transparent 1 jump mangle_ISTIO_DIVERT"));
  EXPECT_THAT(listing, HasSubstr("tproxy to :15006 meta mark set 0x00000539 accept"));
  EXPECT_THAT(listing, HasSubstr("udp sport != 5353 udp dport 53 meta skuid 1337 ct zone set 1"));
  EXPECT_THAT(listing, HasSubstr("iifname \"eth*\""));
  EXPECT_THAT(listing, HasSubstr("ct mark set meta mark"));
  EXPECT_THAT(listing, HasSubstr("meta mark set ct mark"));
  EXPECT_THAT(listing, HasSubstr("ip6 saddr 2001:db8::/33"));
  std::string rules4 = InNetns(*ns_, {"/usr/sbin/ip", "-4", "rule", "show"});
  EXPECT_THAT(rules4, HasSubstr("fwmark 0x539 lookup 133 proto 154"));
}

TEST_F(NftBackendTest, RemoveDeletesOnlyOurs) {
  InNetns(*ns_, {kNft, "add table inet foreign"});
  ASSERT_TRUE(backend_->Apply(*ns_, TproxyRuleset()).ok());
  ASSERT_TRUE(backend_->Remove(*ns_).ok());
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Ruleset{});
  std::string listing = NftList(*ns_);
  EXPECT_THAT(listing, Not(HasSubstr("istio_pnc")));
  EXPECT_THAT(listing, HasSubstr("table inet foreign"));
  EXPECT_THAT(InNetns(*ns_, {"/usr/sbin/ip", "-4", "rule", "show"}), Not(HasSubstr("proto 154")));
  EXPECT_TRUE(backend_->Remove(*ns_).ok());  // nothing left: still fine
}

TEST_F(NftBackendTest, ForeignExpressionInOurTableIsAnError) {
  ASSERT_TRUE(backend_->Apply(*ns_, RedirectRuleset(false)).ok());
  InNetns(*ns_, {kNft, "add rule ip istio_pnc nat_ISTIO_OUTPUT counter return"});
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("counter"));
  // Re-applying repairs it.
  ASSERT_TRUE(backend_->Apply(*ns_, RedirectRuleset(false)).ok());
  EXPECT_EQ(*backend_->ReadBack(*ns_), RedirectRuleset(false));
}

// A read-back after a verified one decodes from the same memo: a rule changed in the kernel since (same
// chain, same position, one port different) must still be reported as it is now.
TEST_F(NftBackendTest, RuleChangedAfterAVerifiedReadBackIsReported) {
  const Ruleset want = RedirectRuleset(false);
  ASSERT_TRUE(backend_->Apply(*ns_, want).ok());
  ASSERT_EQ(*backend_->ReadBack(*ns_), want);
  InNetns(*ns_, {kNft, "flush chain ip istio_pnc nat_ISTIO_INBOUND"});
  for (const char* port : {"15008", "15090", "15021", "15029"})
    InNetns(*ns_,
            {kNft, absl::StrCat("add rule ip istio_pnc nat_ISTIO_INBOUND tcp dport ", port, " return")});
  InNetns(*ns_,
          {kNft, "add rule ip istio_pnc nat_ISTIO_INBOUND meta l4proto tcp jump nat_ISTIO_IN_REDIRECT"});
  absl::StatusOr<Ruleset> got = backend_->ReadBack(*ns_);
  ASSERT_TRUE(got.ok()) << got.status();
  Ruleset changed = want;
  changed.families[0].tables[0].chains[2].rules[3].destination_port = Negatable<uint16_t>{15029};
  EXPECT_EQ(*got, changed);
}

// The one-entry path reads the kernel back after the batch: it reports what a separate ReadBack reports,
// including policy routes and a re-apply that had to repair foreign content, and Apply's errors as they are.
TEST_F(NftBackendTest, ApplyAndReadBackReportsTheKernelState) {
  Ruleset want = TproxyRuleset();
  absl::StatusOr<Ruleset> got = backend_->ApplyAndReadBack(*ns_, want);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
  EXPECT_FALSE(got->routes.empty());
  EXPECT_EQ(*backend_->ReadBack(*ns_), want);

  InNetns(*ns_, {kNft, "add rule ip istio_pnc mangle_ISTIO_DIVERT counter accept"});
  ASSERT_FALSE(backend_->ReadBack(*ns_).ok());
  got = backend_->ApplyAndReadBack(*ns_, want);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);

  Ruleset bad = RedirectRuleset(false);
  bad.families[0].tables[0].chains[2].rules[0].target = JumpTarget{"ISTIO_NOPE"};
  EXPECT_EQ(backend_->ApplyAndReadBack(*ns_, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*backend_->ReadBack(*ns_), want);  // unchanged
}

TEST_F(NftBackendTest, InvalidRulesetIsRejectedBeforeAnyChange) {
  Ruleset bad = RedirectRuleset(false);
  bad.families[0].tables[0].chains[2].rules[0].target = JumpTarget{"ISTIO_NOPE"};
  absl::Status s = backend_->Apply(*ns_, bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  Ruleset wrong_family = RedirectRuleset(false);
  wrong_family.families[0].tables[0].chains[5].rules[0].destination = Negatable<Cidr>{V6("::1", 128)};
  EXPECT_EQ(backend_->Apply(*ns_, wrong_family).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*backend_->ReadBack(*ns_), Ruleset{});
}

TEST_F(NftBackendTest, ListTablesIsReadOnly) {
  InNetns(*ns_, {kNft, "add table ip6 mytable"});
  std::vector<std::string> tables;
  ASSERT_TRUE(RunInNetns(*ns_, [&]() -> absl::Status {
                absl::StatusOr<std::vector<std::string>> t = ListNftTablesInCurrentNetns();
                if (!t.ok()) return t.status();
                tables = *t;
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(tables, std::vector<std::string>{"ip6 mytable"});
  EXPECT_EQ(InNetns(*ns_, {kNft, "list", "tables"}), "table ip6 mytable\n");
}

}  // namespace
}  // namespace pnc::netns

namespace pnc::netns {
namespace {

Ruleset ManyRules(int n) {
  Ruleset rs = RedirectRuleset(false);
  Chain& output = rs.families[0].tables[0].chains[4];  // ISTIO_OUTPUT
  std::vector<Rule> extra;
  for (int i = 0; i < n; ++i) {
    Rule r = R(ReturnTarget{});
    r.destination = Negatable<Cidr>{V4(absl::StrCat("10.", i / 256, ".", i % 256, ".0"), 24)};
    extra.push_back(r);
  }
  output.rules.insert(output.rules.begin(), extra.begin(), extra.end());
  return rs;
}

TEST_F(NftBackendTest, LargeRulesetInOneBatch) {
  Ruleset want = ManyRules(500);
  absl::Status s = backend_->Apply(*ns_, want);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(*backend_->ReadBack(*ns_), want);
}

TEST_F(NftBackendTest, OversizedRulesetIsRejectedWhole) {
  Ruleset huge = ManyRules(3000);
  huge.routes = {{Family::kIPv4, 1337, 133}};
  absl::Status s = backend_->Apply(*ns_, huge);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(*backend_->ReadBack(*ns_), Ruleset{});  // nothing half-applied, no policy route either
}

}  // namespace
}  // namespace pnc::netns

namespace pnc::netns {
namespace {

// The kernel refuses `redirect` outside prerouting/output; the whole batch fails and the error names the
// rule.
TEST_F(NftBackendTest, KernelRejectionNamesTheRuleAndChangesNothing) {
  Ruleset bad;
  Rule redirect = R(RedirectTarget{15001});
  redirect.protocol = Protocol::kTcp;
  bad.families.push_back({Family::kIPv4, {TableRules{Table::kNat, {Chain{"POSTROUTING", {redirect}}}}}});
  absl::Status s = backend_->Apply(*ns_, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("at: add rule ip istio_pnc nat_POSTROUTING"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("redir"));
  EXPECT_EQ(*backend_->ReadBack(*ns_), Ruleset{});
  // The socket drained the failed batch's replies: the next Apply works.
  ASSERT_TRUE(backend_->Apply(*ns_, RedirectRuleset(false)).ok());
  EXPECT_EQ(*backend_->ReadBack(*ns_), RedirectRuleset(false));
}

}  // namespace
}  // namespace pnc::netns
