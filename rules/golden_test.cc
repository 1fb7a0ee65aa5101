// Golden tests: pod annotations/spec + config -> plan -> iptables-restore text (per family) + nft script +
// routes.
//
// Each case's expected output lives in rules/testdata/golden/<case>.golden. A mismatch fails with a line
// diff. To regenerate after an intended change (then review `git diff rules/testdata`):
//   bazel run //rules:golden_test -- --update
// (or PNC_UPDATE_GOLDENS=1 with `bazel run`; the files are written into the source tree via
// $BUILD_WORKSPACE_DIRECTORY, so `bazel test` can never silently update them).
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rules/golden_cases.h"
#include "rules/iptables_save.h"
#include "rules/plan.h"
#include "rules/render.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

bool g_update = false;

using testing::Case;
std::vector<Case> Cases() { return testing::GoldenCases(); }

std::string RenderAll(const Case& c) {
  std::string out = absl::StrCat("# case: ", c.name, "\n# ", c.description, "\n");
  auto plan = BuildPlan(c.pod, c.config);
  if (!plan.ok()) return absl::StrCat(out, "# error: ", plan.status().ToString(), "\n");
  Ruleset rs = BuildRuleset(*plan);
  size_t rules = 0;
  for (const auto& fr : rs.families)
    for (const auto& t : fr.tables)
      for (const auto& ch : t.chains) rules += ch.rules.size();
  absl::StrAppend(&out, "# mode ", InterceptionModeName(plan->mode), ", proxy uid ", plan->proxy_uid, " gid ",
                  plan->proxy_gid, ", ", rules, " rules\n");
  for (const auto& fr : rs.families)
    absl::StrAppend(&out, "\n## iptables-restore ", FamilyName(fr.family), "\n", RenderIptablesRestore(fr));
  absl::StrAppend(&out, "\n## nft\n", RenderNftables(rs));
  if (!rs.routes.empty() || !rs.loopback_addresses.empty())
    absl::StrAppend(&out, "\n## routing\n", RenderPolicyRoutes(rs));
  return out;
}

TEST(GoldenTest, AtLeastFifteenCases) { EXPECT_GE(Cases().size(), 15u); }

TEST(GoldenTest, MatchesGoldenFiles) {
  const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    std::string got = RenderAll(c);
    EXPECT_EQ(got.find("# error:"), std::string::npos) << got;
    const std::string rel = absl::StrCat("rules/testdata/golden/", c.name, ".golden");
    if (g_update) {
      ASSERT_NE(ws, nullptr) << "--update needs `bazel run` (BUILD_WORKSPACE_DIRECTORY)";
      ASSERT_TRUE(testing::WriteFile(absl::StrCat(ws, "/", rel), got)) << rel;
      continue;
    }
    auto want = testing::ReadFile(rel);
    ASSERT_TRUE(want.has_value()) << "missing golden " << rel
                                  << "; run: bazel run //rules:golden_test -- --update";
    EXPECT_TRUE(*want == got) << "golden mismatch for " << rel
                              << " (regenerate: bazel run //rules:golden_test -- "
                              << "--update)\n"
                              << testing::LineDiff(*want, got);
  }
}

// Every rendered family survives iptables-save spelling: render the rules as iptables-save would print them
// and parse them back.
TEST(GoldenTest, EveryCaseRoundTripsThroughSaveSpelling) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    auto plan = BuildPlan(c.pod, c.config);
    ASSERT_TRUE(plan.ok()) << plan.status();
    Ruleset rs = BuildRuleset(*plan);
    for (const auto& fr : rs.families) {
      std::string save = RenderIptablesSave(fr);
      auto back = ParseIptablesSave(fr.family, save);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_TRUE(*back == fr) << save;
    }
  }
}

}  // namespace
}  // namespace pnc::rules

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--update") pnc::rules::g_update = true;
  if (const char* e = std::getenv("PNC_UPDATE_GOLDENS"); e && std::string(e) == "1")
    pnc::rules::g_update = true;
  return RUN_ALL_TESTS();
}
