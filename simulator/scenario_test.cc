// Scenario files: every shipped one parses and validates; a lightweight scenario runs end to end without a
// controller (no root needed) and its report says what happened; broken scenarios are rejected with a reason.
#include <unistd.h>

#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "simulator/runner.h"

namespace pnc::sim {
namespace {

std::string Runfile(const std::string& rel) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/istio_pod_network_controller/", rel);
}

TEST(ScenarioTest, ShippedScenariosParseAndValidate) {
  for (const char* name : {"smoke", "burst", "races", "multinode"}) {
    auto s = LoadScenario(Runfile(absl::StrCat("simulator/scenarios/", name, ".textproto")));
    ASSERT_TRUE(s.ok()) << name << ": " << s.status();
    EXPECT_EQ(s->name(), name);
    EXPECT_FALSE(s->timeline().empty());
  }
}

// Issue 8: races must keep sandbox recreation and every forgery variant (predicted inode / cookie, with an
// invalid and a valid traffic annotation, probe none), so the e2e cannot lose them silently.
TEST(ScenarioTest, RacesRecreatesSandboxesAndForgesEveryVariant) {
  auto s = LoadScenario(Runfile("simulator/scenarios/races.textproto"));
  ASSERT_TRUE(s.ok()) << s.status();
  int recreations = 0;
  std::set<std::string> created;
  for (const auto& step : s->timeline()) {
    recreations += step.has_recreate_sandbox();
    if (step.has_create()) created.insert(step.create().template_());
  }
  EXPECT_GE(recreations, 2);
  std::set<std::string> variants;
  for (const auto& t : s->templates()) {
    if (!t.has_forge() || created.count(t.name()) == 0) continue;
    bool invalid = t.annotations().count("traffic.sidecar.istio.io/includeOutboundIPRanges") > 0;
    EXPECT_TRUE(t.forge().status_initialized()) << t.name();
    EXPECT_EQ(t.forge().probe(), "none") << t.name();
    EXPECT_EQ(t.expect(), invalid ? proto::PodTemplate::FAILED : proto::PodTemplate::INTERCEPTED) << t.name();
    std::string guess = t.forge().spray() > 0 ? "SPRAY" : proto::Forgery::NetnsGuess_Name(t.forge().netns());
    variants.insert(absl::StrCat(guess, invalid ? "/invalid" : "/valid"));
  }
  EXPECT_EQ(variants, (std::set<std::string>{"PREDICTED_COOKIE/invalid", "PREDICTED_COOKIE/valid",
                                             "PREDICTED_INODE/invalid", "PREDICTED_INODE/valid",
                                             "SPRAY/invalid", "SPRAY/valid"}));
}

proto::Scenario Parse(const std::string& text) {
  proto::Scenario s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s)) << text;
  return s;
}

TEST(ScenarioTest, InvalidReferencesAreRejected) {
  EXPECT_FALSE(ValidateScenario(Parse(R"(templates { name: "t" })")).ok());  // no nodes
  auto unknown_template = ValidateScenario(
      Parse(R"(nodes { name: "n" } timeline { create { template: "x" namespace: "default" } })"));
  EXPECT_NE(unknown_template.message().find("unknown template"), std::string::npos) << unknown_template;
  auto unknown_ns = ValidateScenario(Parse(
      R"(nodes { name: "n" } templates { name: "t" } timeline { create { template: "t" namespace: "nope" } })"));
  EXPECT_NE(unknown_ns.message().find("unknown namespace"), std::string::npos) << unknown_ns;
  EXPECT_FALSE(ValidateScenario(Parse(R"(nodes { name: "n" } nodes { name: "n" })")).ok());
  EXPECT_FALSE(ValidateScenario(Parse(R"(nodes { name: "n" } templates { name: "t" expect: FAILED })")).ok());
  EXPECT_FALSE(ValidateScenario(Parse(R"(nodes { name: "n" } timeline { fault { } })")).ok());
  EXPECT_FALSE(
      ValidateScenario(Parse(R"(nodes { name: "n" } timeline { recreate_sandbox { name: "p" } })")).ok());
  EXPECT_FALSE(ValidateScenario(
                   Parse(R"(nodes { name: "n" } templates { name: "t" forge { status_initialized: true } })"))
                   .ok());
}

TEST(ScenarioTest, LightweightScenarioRunsWithoutController) {
  auto s = Parse(R"(
    name: "light" seed: 7
    nodes { name: "l1" lightweight: true }
    nodes { name: "l2" lightweight: true }
    namespaces { name: "ns" }
    templates { name: "plain" expect: UNTOUCHED }
    timeline { create { template: "plain" namespace: "ns" count: 6 rate_per_second: 200 } }
    timeline { delete { namespace: "ns" name: "plain-2" recreate: true } }
    timeline { fault { drop_watches: true } }
    timeline { create { template: "plain" namespace: "ns" name_prefix: "late" count: 2 } }
    timeline { wait_settled { timeout_ms: 10000 } }
    expect { settle_timeout_ms: 10000 })");
  ASSERT_TRUE(ValidateScenario(s).ok());
  RunnerOptions o;
  o.work_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/work");
  o.tls = false;
  auto report = RunScenario(s, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->passed) << report->text;
  EXPECT_EQ(report->json["pods_created"], 9);  // 6 + the recreation + 2
  EXPECT_EQ(report->json["pods_deleted"], 1);
  EXPECT_EQ(report->json["pods_checked"], 8);
  std::set<std::string> nodes;
  for (const auto& p : report->json["pods"]) {
    if (p["result"] == "gone") continue;
    EXPECT_EQ(p["phase"], "Running") << p.dump();
    nodes.insert(p["node"].get<std::string>());
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"l1", "l2"}));  // the scheduler stand-in spreads pods round-robin
  EXPECT_NE(report->text.find("RESULT: PASS"), std::string::npos);
}

TEST(ScenarioTest, SameSeedSameUidsAndPlacement) {
  auto s = Parse(R"(
    name: "det" seed: 42
    nodes { name: "a" lightweight: true }
    nodes { name: "b" lightweight: true }
    nodes { name: "c" lightweight: true }
    templates { name: "plain" expect: UNTOUCHED }
    timeline { create { template: "plain" namespace: "default" count: 7 } }
    timeline { wait_settled { timeout_ms: 5000 } })");
  auto run = [&](int k) {
    RunnerOptions o;
    o.work_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/det", k);
    o.tls = false;
    auto report = RunScenario(s, o);
    EXPECT_TRUE(report.ok()) << report.status();
    std::vector<std::string> out;
    for (const auto& p : report->json["pods"]) {
      out.push_back(absl::StrCat(p["name"].get<std::string>(), "@", p["node"].get<std::string>(), "#",
                                 p["uid"].get<std::string>()));
    }
    return out;
  };
  auto first = run(1);
  EXPECT_EQ(first.size(), 7u);
  EXPECT_EQ(first, run(2));
  s.set_seed(43);
  EXPECT_NE(first, run(3));  // another seed, other UIDs
}

TEST(ScenarioTest, UnmetExpectationFailsTheReport) {
  // A mesh pod on a lightweight node with no controller never gets intercepted: the report must say FAIL.
  auto s = Parse(R"(
    name: "unmet"
    nodes { name: "l1" lightweight: true }
    templates { name: "mesh" mesh: ISTIO_INJECTED expect: INTERCEPTED }
    timeline { create { template: "mesh" namespace: "default" } }
    timeline { wait_settled { timeout_ms: 5000 } }
    expect { settle_timeout_ms: 5000 })");
  RunnerOptions o;
  o.work_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/unmet");
  o.tls = false;
  auto report = RunScenario(s, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->passed);
  EXPECT_EQ(report->json["failures"], 1);
  EXPECT_NE(report->json["pods"][0]["reason"].get<std::string>().find("not intercepted"), std::string::npos)
      << report->json["pods"][0].dump();
}

}  // namespace
}  // namespace pnc::sim
