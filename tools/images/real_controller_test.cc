// real_controller_test: the waiter image in a real containerd sandbox, released by the real controller, run
// as the //controller process and as the controller image in a pod of its own. See image_fixture.h and
// docs/deploy.md. Separate from image_test because it also depends on the simulator's fake API server.
#include <signal.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/cri/testing/container_client.h"
#include "netns/cri/testing/process.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/executor.h"
#include "simulator/apiserver/test_client.h"
#include "tools/images/image_fixture.h"

namespace pnc::netns::cri_testing::image_testing {
namespace {

// The real controller process (//controller binary, not the controller image: it runs outside any container,
// as root with the host's PID namespace and the CRI socket, like the DaemonSet's process; its network
// namespace is the fixture's private node netns, where the fake API server (//simulator/apiserver) listens on
// loopback) locates this fixture's real sandbox through CRI and programs it with nft. The test plays kubelet:
// it creates the sandbox under the API server's pod UID, publishes status.podIP, starts the waiter image as
// the init container and syncs the pod's annotations into the Downward-API-like file. The waiter must still
// be running 500 ms after its start with no controller, and exit 0 after the controller's mark, by its own
// datapath probe (as uid 65532, through the controller's rules, onto the listener it opens on the capture
// port).
class RealControllerTest : public ImageTest {
 protected:
  enum class Controller { kProcess, kImage };
  void Scenario(Controller how);
};

void RealControllerTest::Scenario(Controller how) {
  // The API server runs in the fixture's private node netns on the CNI bridge's gateway address (the host
  // netns is never touched); the test's HTTP calls are made from a thread in there.
  const NetnsHandle& node = ctrd_->node_netns();
  const std::string work = absl::StrCat(ctrd_->dir(), "/real");
  ASSERT_EQ(::mkdir(work.c_str(), 0700), 0);
  const std::string kubeconfig = absl::StrCat(work, "/kubeconfig");
  Daemon api;
  api.log = absl::StrCat(work, "/apiserver.log");
  absl::StatusOr<pid_t> pid =
      SpawnInNetns(node,
                   {Runfile("simulator/apiserver/apiserver"), "--listen=10.251.0.1:0", "--nodes=node-a",
                    "--scheduler=false", absl::StrCat("--write_kubeconfig=", kubeconfig)},
                   api.log);
  ASSERT_TRUE(pid.ok()) << pid.status();
  api.pid = *pid;
  std::string server;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); server.empty() && absl::Now() < deadline;) {
    std::ifstream in(kubeconfig);
    std::string line;
    while (std::getline(in, line)) {
      absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
      if (absl::ConsumePrefix(&l, "server:")) server = std::string(absl::StripAsciiWhitespace(l));
    }
    if (server.empty()) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(server.empty()) << api.Log();
  const sim::testing::ClientConfig cfg{.base_url = server};
  auto request = [&](const std::string& method, const std::string& path, const std::string& body = "",
                     const std::string& type = "application/json") {
    sim::testing::HttpResult r;
    absl::Status s = RunInNetns(node, [&]() -> absl::Status {
      r = sim::testing::Request(cfg, method, path, body, type);
      return absl::OkStatus();
    });
    if (!s.ok()) r.body = s.ToString();
    return r;
  };

  // An Istio-injected pod (CNI mode: no istio-init) bound to node-a, the waiter as its first init container.
  nlohmann::json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", "real"},
        {"namespace", "default"},
        {"annotations",
         {{"sidecar.istio.io/status",
           R"({"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["istio-podinfo"],)"
           R"("imagePullSecrets":null,"revision":"default"})"}}}}},
      {"spec",
       {{"nodeName", "node-a"},
        {"initContainers",
         {{{"name", "istio-validation"},
           {"image", (*images_)->waiter_ref},
           {"securityContext", {{"runAsUser", 65532}, {"runAsGroup", 65532}}}}}},
        {"containers",
         {{{"name", "app"}, {"image", "registry.example/app:1"}, {"securityContext", {{"runAsUser", 1000}}}},
          {{"name", "istio-proxy"},
           {"image", "docker.io/istio/proxyv2:1.22.0"},
           {"securityContext", {{"runAsUser", 1337}, {"runAsGroup", 1337}}}}}}}}};
  request("POST", "/api/v1/namespaces", R"({"metadata":{"name":"default"}})");
  sim::testing::HttpResult created = request("POST", "/api/v1/namespaces/default/pods", pod.dump());
  ASSERT_EQ(created.code, 201) << created.body;
  const std::string uid = created.Json()["metadata"].value("uid", "");
  ASSERT_FALSE(uid.empty()) << created.body;

  // kubelet: the sandbox for that UID, then status.podIP.
  PodSpec real = pod_;
  real.uid = uid;
  real.name = "real";
  real.cgroup_parent = ctrd_->CgroupParent(uid);
  real.log_directory = ctrd_->PodLogDirectory(uid);
  ASSERT_EQ(::mkdir(real.log_directory.c_str(), 0700), 0);
  absl::StatusOr<std::string> sandbox = sandboxes_->Run(real);
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  absl::StatusOr<SandboxFacts> facts = sandboxes_->Status(*sandbox);
  ASSERT_TRUE(facts.ok() && !facts->ip.empty()) << facts.status();
  nlohmann::json status = {
      {"status", {{"phase", "Pending"}, {"podIP", facts->ip}, {"podIPs", {{{"ip", facts->ip}}}}}}};
  sim::testing::HttpResult patched = request("PATCH", "/api/v1/namespaces/default/pods/real/status",
                                             status.dump(), "application/merge-patch+json");
  ASSERT_EQ(patched.code, 200) << patched.body;

  // kubelet: the Downward API file with the pod's annotations so far (no mark), then the init container.
  auto annotations_now = [&]() {
    std::map<std::string, std::string> ann;
    nlohmann::json j = request("GET", "/api/v1/namespaces/default/pods/real").Json();
    if (j.is_object() && j["metadata"].contains("annotations")) {
      for (const auto& [k, v] : j["metadata"]["annotations"].items()) {
        if (v.is_string()) ann[k] = v.get<std::string>();
      }
    }
    return ann;
  };
  std::map<std::string, std::string> annotations = annotations_now();
  ASSERT_EQ(annotations.count("pod-network-controller.istio.io/status"), 0u);
  PodInfo info(absl::StrCat(real.log_directory, "/podinfo"));
  info.Write(annotations);
  ContainerSpec waiter = WaiterSpec({"--file=/etc/podinfo/annotations", "--timeout=30s"});
  waiter.name = "istio-validation";
  waiter.mounts = {{info.dir(), "/etc/podinfo", true}};
  absl::StatusOr<std::string> id = containers_->Create(*sandbox, real, real.log_directory, waiter);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(containers_->Start(*id).ok());
  absl::SleepFor(absl::Milliseconds(500));
  absl::StatusOr<ContainerFacts> before = containers_->Status(*id);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->state, kContainerRunning) << "the waiter must hold the pod while no controller runs";

  // The DaemonSet's pod arrives.
  Daemon process;
  std::string controller_container;
  auto controller_log = [&]() -> std::string {
    if (how == Controller::kProcess) return process.Log();
    absl::StatusOr<ContainerFacts> cf = containers_->Status(controller_container);
    if (!cf.ok()) return cf.status().ToString();
    absl::StatusOr<std::string> l = ReadCriLog(cf->log_path);
    return absl::StrCat("controller container state ", cf->state, " exit ", cf->exit_code, ": ",
                        l.ok() ? *l : l.status().ToString());
  };
  if (how == Controller::kProcess) {
    process.log = absl::StrCat(work, "/controller.log");
    pid = SpawnInNetns(node,
                       {Runfile("controller/controller"), absl::StrCat("--kubeconfig=", kubeconfig),
                        "--node_name=node-a", "--backend=nft", "--locator=cri",
                        absl::StrCat("--cri_endpoint=", ctrd_->endpoint()), "--metrics_address="},
                       process.log);
    ASSERT_TRUE(pid.ok()) << pid.status();
    process.pid = *pid;
  } else {
    // The controller image in a pod of its own (pod network, not hostNetwork, like the chart's DaemonSet),
    // with the chart's securityContext and what the chart mounts: the CRI socket and the runtime's netns
    // directory (read-only), plus the kubeconfig (in a cluster: the service account).
    PodSpec pnc;
    pnc.uid = "99999999-8888-7777-6666-555555555555";
    pnc.name = "pnc-node-a";
    pnc.namespace_name = "istio-pnc";
    pnc.cgroup_parent = ctrd_->CgroupParent(pnc.uid);
    pnc.log_directory = ctrd_->PodLogDirectory(pnc.uid);
    ASSERT_EQ(::mkdir(pnc.log_directory.c_str(), 0700), 0);
    absl::StatusOr<std::string> pnc_sandbox = sandboxes_->Run(pnc);
    ASSERT_TRUE(pnc_sandbox.ok()) << pnc_sandbox.status();
    const std::string netns_dir = facts->netns_path.substr(0, facts->netns_path.rfind('/'));
    ASSERT_FALSE(netns_dir.empty()) << facts->netns_path;
    ContainerSpec c;
    c.name = "controller";
    c.image = (*images_)->controller_ref;
    c.args = {"--kubeconfig=/etc/pnc/kubeconfig",      "--node_name=node-a", "--backend=nft", "--locator=cri",
              "--cri_endpoint=unix:/run/pnc/cri.sock", "--metrics_address="};
    c.add_capabilities = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"};
    c.mounts = {{work, "/etc/pnc", true},
                {absl::StrCat(ctrd_->dir(), "/c.sock"), "/run/pnc/cri.sock", false},
                {netns_dir, netns_dir, true}};
    absl::StatusOr<std::string> cid = containers_->Create(*pnc_sandbox, pnc, pnc.log_directory, c);
    ASSERT_TRUE(cid.ok()) << cid.status() << "\n" << ctrd_->LogTail();
    controller_container = *cid;
    absl::Status started = containers_->Start(controller_container);
    ASSERT_TRUE(started.ok()) << started << "\n" << ctrd_->LogTail();
  }
  const absl::Time controller_started = absl::Now();

  // kubelet's Downward API sync: every change of the annotations reaches the file.
  for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    std::map<std::string, std::string> now = annotations_now();
    if (now != annotations) {
      annotations = now;
      info.Write(annotations);
    }
    if (annotations["pod-network-controller.istio.io/status"] == "initialized") break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(annotations["pod-network-controller.istio.io/status"], "initialized") << controller_log();
  const absl::Time marked = absl::Now();
  if (how == Controller::kImage) {
    // The mark came from the container (no controller process exists in this case), run as the chart runs it.
    absl::StatusOr<ContainerFacts> cf = containers_->Status(controller_container);
    ASSERT_TRUE(cf.ok()) << cf.status();
    EXPECT_EQ(cf->state, kContainerRunning) << controller_log();
    EXPECT_EQ(cf->spec_uid, 0);
    EXPECT_THAT(cf->spec_effective_caps, ::testing::UnorderedElementsAre("CAP_NET_ADMIN", "CAP_NET_RAW",
                                                                         "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"));
    EXPECT_TRUE(cf->spec_no_new_privileges);
    EXPECT_TRUE(cf->spec_readonly_root);
    EXPECT_TRUE(cf->spec_has_seccomp);
    EXPECT_THAT(controller_log(), HasSubstr(uid)) << "the container's own log names the pod it reconciled";
  }
  const std::string probe = annotations["pod-network-controller.istio.io/probe"];
  EXPECT_THAT(probe, HasSubstr("capture=15001")) << "a datapath probe, not the marker path";

  absl::StatusOr<ContainerFacts> f = containers_->WaitExited(*id, absl::Seconds(30));
  ASSERT_TRUE(f.ok()) << f.status();
  const absl::Time exited = absl::Now();
  absl::StatusOr<std::string> log = ReadCriLog(f->log_path);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(f->exit_code, 0) << *log << "\ncontroller:\n" << controller_log();
  EXPECT_THAT(*log, HasSubstr("redirected to port 15001"));
  std::fprintf(stderr,
               "controller %s: marked %s after its start, waiter exit %d seen %s after the mark; probe %s; "
               "waiter said: %s\n",
               how == Controller::kProcess ? "process" : "image",
               absl::FormatDuration(marked - controller_started).c_str(), f->exit_code,
               absl::FormatDuration(exited - marked).c_str(), probe.c_str(), log->c_str());
}

TEST_F(RealControllerTest, WaiterImageReleasesOnlyAfterTheControllerProcessInitializedItsSandbox) {
  Scenario(Controller::kProcess);
}

// The same with the controller image run by containerd: its libraries, its USER 0 with exactly the chart's
// four capabilities, no_new_privs, read-only root and RuntimeDefault seccomp suffice to locate, program and
// mark.
TEST_F(RealControllerTest, WaiterImageReleasesOnlyAfterTheControllerImageInitializedItsSandbox) {
  Scenario(Controller::kImage);
}

}  // namespace
}  // namespace pnc::netns::cri_testing::image_testing
