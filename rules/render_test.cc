// Renderer properties not covered by goldens: the replacing/cleanup transactions used for idempotent
// re-apply, and rule-spec round trips for every target kind.
#include "rules/render.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/annotations.h"
#include "rules/iptables_save.h"
#include "rules/plan.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

FamilyRules Build(std::map<std::string, std::string> annotations) {
  PodFacts pod = testing::InjectedPod();
  for (auto& [k, v] : annotations) pod.annotations[k] = v;
  auto plan = BuildPlan(pod, {});
  EXPECT_TRUE(plan.ok()) << plan.status();
  return BuildRuleset(*plan).families[0];
}

// Behaviour change: istio-iptables appends its jumps (-A with restore --noflush); so do we.
TEST(RenderTest, FirstApplyDeclaresOurChainsAndAppendsJumps) {
  std::string text = RenderIptablesRestore(Build({}));
  EXPECT_THAT(text, HasSubstr("*nat\n:ISTIO_INBOUND - [0:0]\n"));
  EXPECT_THAT(text, HasSubstr("-A PREROUTING -p tcp -j ISTIO_INBOUND\n"));
  EXPECT_THAT(text, HasSubstr("-A OUTPUT -j ISTIO_OUTPUT\n"));
  EXPECT_THAT(text, Not(HasSubstr("-I ")));
  EXPECT_THAT(text, Not(HasSubstr(":PREROUTING")));  // never reset a built-in policy
  EXPECT_THAT(text, Not(HasSubstr("-D ")));
  EXPECT_THAT(text, HasSubstr("COMMIT\n"));
}

TEST(RenderTest, ReplacingDeletesOldJumpsAndDropsChainsNoLongerPlanned) {
  FamilyRules old_rules = Build({});
  FamilyRules new_rules = Build({{kIncludeInboundPortsAnnotation, ""}});  // no ISTIO_INBOUND any more
  std::string text = RenderIptablesRestoreReplacing(new_rules, old_rules);
  EXPECT_THAT(text, HasSubstr("-D PREROUTING -p tcp -j ISTIO_INBOUND\n"));
  EXPECT_THAT(text, HasSubstr("-D OUTPUT -j ISTIO_OUTPUT\n"));
  EXPECT_THAT(text, HasSubstr("-X ISTIO_INBOUND\n"));
  EXPECT_THAT(text, HasSubstr("-A OUTPUT -j ISTIO_OUTPUT\n"));
  EXPECT_THAT(text, Not(HasSubstr("-A PREROUTING")));
  // Deletes come before the new jumps.
  EXPECT_LT(text.find("-D OUTPUT"), text.find("-A OUTPUT"));
}

TEST(RenderTest, ReplacingWithEmptyCurrentEqualsFirstApply) {
  FamilyRules rules = Build({{kInterceptionModeAnnotation, "TPROXY"}});
  FamilyRules none;
  EXPECT_EQ(RenderIptablesRestoreReplacing(rules, none), RenderIptablesRestore(rules));
}

TEST(RenderTest, CleanupRemovesEverything) {
  FamilyRules rules = Build({{kInterceptionModeAnnotation, "TPROXY"}});
  std::string text = RenderIptablesRestoreCleanup(rules);
  EXPECT_THAT(text, HasSubstr("*mangle\n"));
  EXPECT_THAT(text, HasSubstr("-X ISTIO_TPROXY\n"));
  EXPECT_THAT(text, HasSubstr("-X ISTIO_OUTPUT\n"));
  EXPECT_THAT(text, HasSubstr("-D PREROUTING -p tcp -j ISTIO_INBOUND\n"));
  EXPECT_THAT(text, Not(HasSubstr("-A ")));
  EXPECT_THAT(text, Not(HasSubstr("-I ")));
}

TEST(RenderTest, EveryTargetKindRoundTripsThroughRuleSpec) {
  std::vector<Rule> rules;
  auto add = [&](Target t) {
    Rule r;
    r.protocol = Protocol::kUdp;
    r.source_port = Negatable<uint16_t>{53, true};
    r.destination_port = Negatable<uint16_t>{5353, false};
    r.in_interface = Negatable<std::string>{"eth0", true};
    r.mark = Negatable<uint32_t>{7, false};
    r.connmark = 8;
    r.socket_transparent = true;
    r.uid_owner = Negatable<uint32_t>{1, true};
    r.gid_owner = Negatable<uint32_t>{2, false};
    r.source = Negatable<Cidr>{Cidr{Family::kIPv6, "fd00::", 8}, true};
    r.target = t;
    rules.push_back(r);
  };
  add(JumpTarget{"ISTIO_X"});
  add(ReturnTarget{});
  add(AcceptTarget{});
  add(RedirectTarget{15001});
  add(TproxyTarget{15006, 0x539, 0xffffffff});
  add(MarkTarget{0x539, 0xffffffff});
  add(ConnmarkTarget{ConnmarkTarget::Op::kSave});
  add(ConnmarkTarget{ConnmarkTarget::Op::kRestore});
  add(CtZoneTarget{65535});
  std::string save = "*mangle\n:ISTIO_A - [0:0]\n:ISTIO_X - [0:0]\n";
  for (const auto& r : rules) save += "-A ISTIO_A " + RenderIptablesRuleSpec(Family::kIPv6, r) + "\n";
  save += "COMMIT\n";
  auto back = ParseIptablesSave(Family::kIPv6, save);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << save;
  ASSERT_EQ(back->tables.size(), 1u);
  ASSERT_EQ(back->tables[0].chains.size(), 2u);
  EXPECT_TRUE(back->tables[0].chains[0].rules == rules) << save;
}

TEST(RenderTest, NftScriptUsesOneTablePerFamilyAndNeverDeletes) {
  PodFacts pod = testing::InjectedPod();
  pod.pod_ips = {"10.0.0.1", "fd00::1"};
  PlanConfig dual;
  dual.dual_stack = true;
  auto plan = BuildPlan(pod, dual);
  ASSERT_TRUE(plan.ok());
  std::string nft = RenderNftables(BuildRuleset(*plan));
  EXPECT_THAT(nft, HasSubstr("add table ip istio_pnc\nflush table ip istio_pnc\n"));
  EXPECT_THAT(nft, HasSubstr("add table ip6 istio_pnc\nflush table ip6 istio_pnc\n"));
  EXPECT_THAT(nft, HasSubstr("type nat hook prerouting priority -100"));
  EXPECT_THAT(nft, Not(HasSubstr("delete")));
  // Every jump target is declared before the first rule.
  EXPECT_LT(nft.find("add chain ip istio_pnc nat_ISTIO_REDIRECT\n"), nft.find("add rule ip istio_pnc"));
}

}  // namespace
}  // namespace pnc::rules
