// The renderers against the real tools, inside a private network namespace this test creates (never the
// host's):
//  - iptables-restore text applies with iptables-{legacy,nft}-restore --noflush and iptables-save reads back
//  exactly
//    the model (ParseIptablesSave == planned) for every golden case and family;
//  - RenderIptablesRestoreReplacing(planned, read_back) re-applied is idempotent (identical save output, no
//  duplicate
//    jumps), switches modes cleanly, and RenderIptablesRestoreCleanup leaves nothing of ours;
//  - the nft script applies, and applying it twice gives the same ruleset.
// Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for unshare(CLONE_NEWNET)); without it every test is reported
// SKIPPED with the reason. As root in the initial user namespace (CI) a missing tool or a failed unshare is a
// test FAILURE, never a skip.
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rules/golden_cases.h"
#include "rules/iptables_save.h"
#include "rules/plan.h"
#include "rules/render.h"

namespace pnc::rules {
namespace {

std::string g_skip_reason;  // empty when we are in our own netns
bool g_must_run = false;    // root (as in CI): an unusable environment is a failure, not a skip

// Skips (unprivileged) or fails (root) when the environment cannot run these tests.
#define PNC_REAL_APPLY_OR_SKIP()                                                  \
  do {                                                                            \
    if (!g_skip_reason.empty()) {                                                 \
      if (g_must_run) FAIL() << "must run as root but cannot: " << g_skip_reason; \
      GTEST_SKIP() << g_skip_reason;                                              \
    }                                                                             \
  } while (0)
std::string g_lockfile;

struct Result {
  int status = -1;
  std::string out;  // stdout + stderr
};

// fork/exec with an argv vector (no shell), `input` on stdin, stdout+stderr captured.
Result Exec(const std::vector<std::string>& argv, const std::string& input = "") {
  Result r;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::string lock = "XTABLES_LOCKFILE=" + g_lockfile;
    char* envp[] = {const_cast<char*>(lock.c_str()), const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
                    nullptr};
    execve(args[0], args.data(), envp);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) > 0) r.out.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return r;
}

std::string Tool(const char* variant, Family f, const char* what) {
  return absl::StrCat("/usr/sbin/", f == Family::kIPv4 ? "iptables-" : "ip6tables-", variant, "-", what);
}

std::string SaveWithoutComments(const std::string& s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    if (s[pos] != '#') out.append(s, pos, nl - pos + 1);
    pos = nl + 1;
  }
  return out;
}

class RealApplyTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { PNC_REAL_APPLY_OR_SKIP(); }
  Result Restore(Family f, const std::string& text) {
    return Exec({Tool(GetParam(), f, "restore"), "--noflush"}, text);
  }
  std::string Save(Family f) {
    Result r = Exec({Tool(GetParam(), f, "save")});
    EXPECT_EQ(r.status, 0) << r.out;
    return SaveWithoutComments(r.out);
  }
};

TEST_P(RealApplyTest, EveryGoldenCaseAppliesReadsBackReappliesAndCleansUp) {
  for (const auto& c : testing::GoldenCases()) {
    auto plan = BuildPlan(c.pod, c.config);
    ASSERT_TRUE(plan.ok()) << plan.status();
    for (const auto& fr : BuildRuleset(*plan).families) {
      SCOPED_TRACE(absl::StrCat(c.name, " ", FamilyName(fr.family), " ", GetParam()));
      Result r = Restore(fr.family, RenderIptablesRestore(fr));
      ASSERT_EQ(r.status, 0) << r.out;
      std::string save1 = Save(fr.family);
      auto back = ParseIptablesSave(fr.family, save1);
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_TRUE(*back == fr) << save1;

      r = Restore(fr.family, RenderIptablesRestoreReplacing(fr, *back));
      ASSERT_EQ(r.status, 0) << r.out;
      std::string save2 = Save(fr.family);
      EXPECT_EQ(save1, save2) << "re-apply is not idempotent";

      r = Restore(fr.family, RenderIptablesRestoreCleanup(*back));
      ASSERT_EQ(r.status, 0) << r.out;
      auto after = ParseIptablesSave(fr.family, Save(fr.family));
      ASSERT_TRUE(after.ok()) << after.status();
      EXPECT_TRUE(after->tables.empty()) << "cleanup left rules behind";
    }
  }
}

TEST_P(RealApplyTest, ReplacingSwitchesModeWithoutLeftovers) {
  auto cases = testing::GoldenCases();
  const testing::Case* from = nullptr;
  const testing::Case* to = nullptr;
  for (const auto& c : cases) {
    if (c.name == "default") from = &c;
    if (c.name == "tproxy") to = &c;
  }
  ASSERT_TRUE(from && to);
  FamilyRules a = BuildRuleset(*BuildPlan(from->pod, from->config)).families[0];
  FamilyRules b = BuildRuleset(*BuildPlan(to->pod, to->config)).families[0];
  ASSERT_EQ(Restore(Family::kIPv4, RenderIptablesRestore(a)).status, 0);
  auto cur = ParseIptablesSave(Family::kIPv4, Save(Family::kIPv4));
  ASSERT_TRUE(cur.ok() && *cur == a);
  Result r = Restore(Family::kIPv4, RenderIptablesRestoreReplacing(b, *cur));
  ASSERT_EQ(r.status, 0) << r.out;
  cur = ParseIptablesSave(Family::kIPv4, Save(Family::kIPv4));
  ASSERT_TRUE(cur.ok()) << cur.status();
  EXPECT_TRUE(*cur == b);
  // And back.
  r = Restore(Family::kIPv4, RenderIptablesRestoreReplacing(a, *cur));
  ASSERT_EQ(r.status, 0) << r.out;
  cur = ParseIptablesSave(Family::kIPv4, Save(Family::kIPv4));
  ASSERT_TRUE(cur.ok());
  EXPECT_TRUE(*cur == a);
  ASSERT_EQ(Restore(Family::kIPv4, RenderIptablesRestoreCleanup(*cur)).status, 0);
}

TEST_P(RealApplyTest, ForeignRulesSurviveApplyAndCleanup) {
  const char* foreign =
      "*nat\n:CNI-HOSTPORT - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT\n"
      "-A CNI-HOSTPORT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.9:80\nCOMMIT\n";
  ASSERT_EQ(Restore(Family::kIPv4, foreign).status, 0);
  std::string before = Save(Family::kIPv4);
  FamilyRules a = BuildRuleset(*BuildPlan(testing::GoldenCases()[0].pod, {})).families[0];
  ASSERT_EQ(Restore(Family::kIPv4, RenderIptablesRestore(a)).status, 0);
  std::string with = Save(Family::kIPv4);
  EXPECT_NE(with.find("-j CNI-HOSTPORT"), std::string::npos);
  // Our jumps are appended (as istio-iptables does): after the foreign one already in PREROUTING.
  EXPECT_GT(with.find("-A PREROUTING -p tcp -j ISTIO_INBOUND"), with.find("-A PREROUTING -m addrtype"));
  auto cur = ParseIptablesSave(Family::kIPv4, with);
  ASSERT_TRUE(cur.ok() && *cur == a);
  ASSERT_EQ(Restore(Family::kIPv4, RenderIptablesRestoreCleanup(*cur)).status, 0);
  EXPECT_EQ(Save(Family::kIPv4), before);
  Exec({Tool(GetParam(), Family::kIPv4, "restore")}, "*nat\nCOMMIT\n");  // flush the table for the next test
}

INSTANTIATE_TEST_SUITE_P(Variants, RealApplyTest, ::testing::Values("legacy", "nft"));

TEST(RealNftTest, ScriptAppliesAndIsIdempotent) {
  PNC_REAL_APPLY_OR_SKIP();
  for (const auto& c : testing::GoldenCases()) {
    SCOPED_TRACE(c.name);
    Ruleset rs = BuildRuleset(*BuildPlan(c.pod, c.config));
    std::string script = RenderNftables(rs);
    Result r = Exec({"/usr/sbin/nft", "-f", "-"}, script);
    ASSERT_EQ(r.status, 0) << r.out << "\n" << script;
    Result l1 = Exec({"/usr/sbin/nft", "list", "ruleset"});
    r = Exec({"/usr/sbin/nft", "-f", "-"}, script);
    ASSERT_EQ(r.status, 0) << r.out;
    Result l2 = Exec({"/usr/sbin/nft", "list", "ruleset"});
    EXPECT_EQ(l1.out, l2.out);
    for (const auto& fr : rs.families)
      Exec({"/usr/sbin/nft", "delete", "table", fr.family == Family::kIPv4 ? "ip" : "ip6", kNftTableName});
  }
}

}  // namespace
}  // namespace pnc::rules

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* tmp = std::getenv("TEST_TMPDIR");
  pnc::rules::g_lockfile = std::string(tmp ? tmp : "/tmp") + "/xtables.lock";
  {
    // Root in the initial user namespace (uid_map "0 0 4294967295"), as in CI.
    std::ifstream in("/proc/self/uid_map");
    uint64_t inner = 1, outer = 1, count = 0;
    pnc::rules::g_must_run =
        geteuid() == 0 && (in >> inner >> outer >> count) && inner == 0 && outer == 0 && count == 4294967295u;
  }
  if (geteuid() != 0) {
    pnc::rules::g_skip_reason =
        "not root: needs CAP_SYS_ADMIN/CAP_NET_ADMIN for a private netns (CI runs as root)";
  } else if (unshare(CLONE_NEWNET) != 0) {
    pnc::rules::g_skip_reason = std::string("unshare(CLONE_NEWNET) failed: ") + std::strerror(errno);
  } else if (access("/usr/sbin/iptables-legacy-restore", X_OK) != 0 || access("/usr/sbin/nft", X_OK) != 0) {
    pnc::rules::g_skip_reason = "iptables/nft binaries missing (Debian packages iptables, nftables)";
  }
  if (!pnc::rules::g_skip_reason.empty())
    std::fprintf(stderr, "%s: %s\n", pnc::rules::g_must_run ? "FAILING (root)" : "SKIPPING",
                 pnc::rules::g_skip_reason.c_str());
  return RUN_ALL_TESTS();
}
