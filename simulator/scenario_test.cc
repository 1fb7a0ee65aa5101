// Scenario files: every shipped one parses and validates; a lightweight scenario runs end to end without a
// controller (no root needed) and its report says what happened; broken scenarios are rejected with a reason.
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "simulator/pod_shape.h"
#include "simulator/runner.h"

namespace pnc::sim {
namespace {

std::string Runfile(const std::string& rel) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/istio_pod_network_controller/", rel);
}

nlohmann::json Fixture(const std::string& name) {
  std::ifstream f(Runfile(absl::StrCat("controller/testdata/", name)));
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

const nlohmann::json& Named(const nlohmann::json& list, const std::string& name) {
  for (const auto& c : list) {
    if (c.value("name", "") == name) return c;
  }
  static const nlohmann::json kNone;
  ADD_FAILURE() << "no " << name << " in " << list.dump();
  return kNone;
}

std::vector<std::string> Names(const nlohmann::json& list) {
  std::vector<std::string> out;
  for (const auto& c : list) out.push_back(c.value("name", ""));
  return out;
}

// Issue 10 item 4: the simulator's CNI-mode kinds build the pods of controller/testdata/istio_cni_*.json (the
// injector's shapes, path b), and the fake node reads them as kubelet would: the waiter with the template's
// args on the istio-podinfo volume as 65532:65532, the proxy as 1337:1337.
TEST(ScenarioTest, IstioCniKindsHaveTheInjectorsShape) {
  const nlohmann::json want = Fixture("istio_cni_pnc_waiter_pod.json");
  const nlohmann::json want_container = Fixture("istio_cni_tproxy_sidecar_container_pod.json");
  for (auto mesh :
       {proto::PodTemplate::ISTIO_CNI_NATIVE_SIDECAR, proto::PodTemplate::ISTIO_CNI_SIDECAR_CONTAINER}) {
    SCOPED_TRACE(proto::PodTemplate::Mesh_Name(mesh));
    const bool native = mesh == proto::PodTemplate::ISTIO_CNI_NATIVE_SIDECAR;
    proto::PodTemplate t;
    t.set_name("cni");
    t.set_mesh(mesh);
    const nlohmann::json pod = PodFromTemplate(t, "apps", "cni-0", "node-1");
    const auto& md = pod["metadata"];
    const auto& spec = pod["spec"];
    // Annotations the injector renders: the capture settings, exactly as in the fixture.
    for (const auto& [k, v] : want["metadata"]["annotations"].items()) {
      if (absl::StartsWith(k, "traffic.sidecar.istio.io/") || k == "sidecar.istio.io/interceptionMode" ||
          k == "istio.io/rev" || absl::StartsWith(k, "prometheus.io/")) {
        EXPECT_EQ(md["annotations"].value(k, ""), v) << k;
      }
    }
    auto status = nlohmann::json::parse(md["annotations"]["sidecar.istio.io/status"].get<std::string>());
    auto want_status = nlohmann::json::parse(
        (native ? want : want_container)["metadata"]["annotations"]["sidecar.istio.io/status"]
            .get<std::string>());
    EXPECT_EQ(status["initContainers"], want_status["initContainers"]);
    EXPECT_EQ(status["containers"], want_status["containers"]);
    EXPECT_EQ(md["labels"]["security.istio.io/tlsMode"], "istio");
    // The waiter under Istio's name, first, as the pnc-waiter template overrides it.
    ASSERT_TRUE(spec.contains("initContainers"));
    const std::vector<std::string> init_names =
        native ? std::vector<std::string>{"istio-validation", "istio-proxy"}
               : std::vector<std::string>{"istio-validation"};
    EXPECT_EQ(Names(spec["initContainers"]), init_names);
    const auto& validation = spec["initContainers"][0];
    const auto& want_validation = Named(want["spec"]["initContainers"], "istio-validation");
    for (const char* k : {"args", "securityContext", "volumeMounts"})
      EXPECT_EQ(validation[k], want_validation[k]) << k;
    EXPECT_EQ(Named(spec["volumes"], "istio-podinfo"), Named(want["spec"]["volumes"], "istio-podinfo"));
    // The proxy.
    const auto& proxy = Named(native ? spec["initContainers"] : spec["containers"], "istio-proxy");
    EXPECT_EQ(proxy.value("restartPolicy", ""), native ? "Always" : "");
    EXPECT_EQ(proxy["securityContext"],
              Named(want["spec"]["initContainers"], "istio-proxy")["securityContext"]);
    EXPECT_EQ(Named(proxy["env"], "ISTIO_META_DNS_CAPTURE")["value"], "true");
    EXPECT_EQ(Named(proxy["env"], "ISTIO_META_INTERCEPTION_MODE")["value"], "REDIRECT");

    // What the fake node runs.
    auto waiter = FindWaiter(pod, "/state/uid", absl::Seconds(60));
    ASSERT_TRUE(waiter.ok()) << waiter.status();
    ASSERT_TRUE(waiter->has_value());
    EXPECT_EQ((*waiter)->name, "istio-validation");
    EXPECT_EQ((*waiter)->args,
              (std::vector<std::string>{"--file=/state/uid/istio-podinfo/annotations", "--timeout=300s"}));
    EXPECT_EQ((*waiter)->uid, 65532u);
    EXPECT_EQ((*waiter)->gid, 65532u);
    ProxyContainer p = FindProxy(pod);
    EXPECT_TRUE(p.found);
    EXPECT_EQ(p.native_sidecar, native);
    EXPECT_EQ(p.uid, 1337u);
    EXPECT_EQ(p.gid, 1337u);
    auto volumes = DownwardVolumes(pod);
    ASSERT_EQ(volumes.size(), 1u);
    EXPECT_EQ(volumes[0].volume, "istio-podinfo");
    EXPECT_EQ(volumes[0].items, (std::vector<std::pair<std::string, std::string>>{
                                    {"labels", "metadata.labels"}, {"annotations", "metadata.annotations"}}));
  }
  // The fixture itself reads the same way; Istio's own validation (path a) is not something the node runs.
  auto fixture_waiter = FindWaiter(want, "/d", absl::Seconds(60));
  ASSERT_TRUE(fixture_waiter.ok() && fixture_waiter->has_value()) << fixture_waiter.status();
  EXPECT_EQ((*fixture_waiter)->args,
            (std::vector<std::string>{"--file=/d/istio-podinfo/annotations", "--timeout=300s"}));
  EXPECT_EQ(FindWaiter(Fixture("istio_cni_native_sidecar_pod.json"), "/d", absl::Seconds(60)).status().code(),
            absl::StatusCode::kUnimplemented);
  // A --file outside the container's Downward API mounts is an error, like a missing mount.
  nlohmann::json broken = want;
  broken["spec"]["initContainers"][0]["args"][0] = "--file=/etc/podinfo/annotations";
  EXPECT_EQ(FindWaiter(broken, "/d", absl::Seconds(60)).status().code(), absl::StatusCode::kInvalidArgument);
  // The simulator's own shape keeps its node-supplied args and default volume.
  proto::PodTemplate legacy;
  legacy.set_name("mesh");
  legacy.set_mesh(proto::PodTemplate::ISTIO_INJECTED);
  auto own = FindWaiter(PodFromTemplate(legacy, "apps", "m", ""), "/d", absl::Seconds(60));
  ASSERT_TRUE(own.ok() && own->has_value());
  EXPECT_EQ((*own)->args, (std::vector<std::string>{"--file=/d/podinfo/pod_annotations", "--timeout=60s"}));
  EXPECT_EQ((*own)->uid, 1000u);
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
