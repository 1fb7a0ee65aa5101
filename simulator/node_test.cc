// FakeNode in netns mode with the REAL waiter and a stand-in controller (iptables-legacy in the pod netns +
// the status annotation), so the kubelet side is tested without the real controller: interception verified
// through SO_ORIGINAL_DST, a controller error fails the init container with its reason, a non-mesh pod is
// left alone, and deletion tears the sandbox down.
#include "simulator/node.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/netns.h"
#include "netns/testing/sandbox.h"
#include "rules/annotations.h"
#include "simulator/netfilter_probe.h"
#include "simulator/process.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
namespace nt = pnc::netns::testing;

constexpr char kStatus[] = "pod-network-controller.istio.io/status";

// What the controller does, reduced to the minimum: one REDIRECT rule, then the annotation (bound to the
// pod's netns inode, which the real waiter, running inside that netns, checks).
class StandInController : public SandboxListener {
 public:
  StandInController(Store* store, bool fail) : store_(store), fail_(fail) {}
  ~StandInController() override {
    for (auto& t : threads_) t.join();
  }
  void SandboxReady(const SandboxInfo& info) override {
    if (info.pod_name.rfind("mesh", 0) != 0) return;
    threads_.emplace_back([this, info] {
      std::string value = "initialized";
      std::string bound;  // like the real controller: the mark is bound to the pod's netns inode
      if (fail_ || info.pod_name == "mesh-bad") {
        value = "error: traffic.sidecar.istio.io/includeOutboundIPRanges: bad CIDR";
      } else {
        auto ns = netns::NetnsHandle::Open(info.netns_path);
        if (!ns.ok()) {
          value = "error: " + ns.status().ToString();
        } else {
          SpawnOptions so;
          so.argv = {"/usr/sbin/iptables-legacy",
                     "-w",
                     "-t",
                     "nat",
                     "-A",
                     "OUTPUT",
                     "-p",
                     "tcp",
                     "-m",
                     "owner",
                     "!",
                     "--uid-owner",
                     "1337",
                     "-d",
                     "192.0.2.0/24",
                     "-j",
                     "REDIRECT",
                     "--to-ports",
                     "15001"};
          so.netns_fd = ns->fd();
          auto child = ChildProcess::Spawn(so);
          int code = child.ok() ? child->Wait() : -1;
          if (code != 0) value = absl::StrCat("error: iptables exit ", code);
          bound = std::to_string(ns->inode());
        }
      }
      json annotations = {{kStatus, value}};
      if (!bound.empty()) annotations[rules::kNetnsAnnotation] = bound;
      auto r = store_->Patch(Resource::kPods, info.pod_namespace, info.pod_name, PatchType::kMerge,
                             {{"metadata", {{"uid", info.pod_uid}, {"annotations", annotations}}}},
                             Subresource::kStatus);
      EXPECT_TRUE(r.ok()) << r.status();
    });
  }
  void SandboxRemoved(const SandboxInfo& info) override { removed_++; }
  std::atomic<int> removed_{0};

 private:
  Store* store_;
  bool fail_;
  std::vector<std::thread> threads_;
};

json Pod(const std::string& name, bool mesh) {
  json p = {{"metadata", {{"name", name}}},
            {"spec", {{"nodeName", "node-1"}, {"containers", {{{"name", "app"}, {"image", "app"}}}}}}};
  if (mesh) {
    p["spec"]["containers"].push_back({{"name", "istio-proxy"}, {"image", "proxy"}});
    p["spec"]["initContainers"] = {{{"name", kWaiterContainer}, {"image", "waiter"}}};
  }
  return p;
}

std::optional<PodRecord> WaitSettled(Recorder& rec, Store& store, const std::string& name) {
  for (int i = 0; i < 400; ++i) {
    auto p = store.Get(Resource::kPods, "default", name);
    if (p.ok()) {
      auto r = rec.Get(FieldValue(**p, "metadata.uid"));
      if (r && r->settled) return r;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return std::nullopt;
}

class NodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PreloadNetfilterModules();  // iptables-legacy REDIRECT/owner inside the sandbox's user namespace
    auto sb = nt::Sandbox::Get();
    if (!sb.ok()) {
      sandbox_error_ = sb.status().ToString();
      return;
    }
    sandbox_ = *sb;
    char tmpl[] = "/tmp/pnc-node-test-XXXXXX";
    work_ = ::mkdtemp(tmpl);
    ::chmod(work_.c_str(), 0755);
    // The waiter runs as uid 1000: it needs a copy outside Bazel's root-only output tree.
    std::filesystem::copy_file(std::getenv("WAITER"), work_ + "/waiter");
    ::chmod((work_ + "/waiter").c_str(), 0755);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!work_.empty()) std::filesystem::remove_all(work_, ec);
  }
  void SetUp() override {
    if (sandbox_ == nullptr) {
      if (nt::Sandbox::Required()) FAIL() << "sandbox required but unavailable: " << sandbox_error_;
      GTEST_SKIP() << "sandbox unavailable, test not run: " << sandbox_error_;
    }
  }
  NodeOptions Options() {
    NodeOptions o;
    o.name = "node-1";
    o.state_dir = work_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    o.waiter_binary = work_ + "/waiter";
    o.waiter_timeout = absl::Seconds(20);
    return o;
  }
  static nt::Sandbox* sandbox_;
  static std::string sandbox_error_;
  static std::string work_;
};
nt::Sandbox* NodeTest::sandbox_ = nullptr;
std::string NodeTest::sandbox_error_;
std::string NodeTest::work_;

TEST_F(NodeTest, MeshPodIsInterceptedAfterTheWaiterSucceeds) {
  Store store;
  Recorder rec;
  StandInController ctl(&store, false);
  FakeNode node(&store, &rec, Options(), sandbox_, &ctl);
  ASSERT_TRUE(node.Start().ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("mesh-1", true)).ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("plain", false)).ok());
  auto mesh = WaitSettled(rec, store, "mesh-1");
  ASSERT_TRUE(mesh);
  EXPECT_EQ(mesh->phase, "Running");
  EXPECT_EQ(mesh->waiter_exit, 0) << mesh->waiter_message;
  EXPECT_TRUE(mesh->intercepted) << mesh->interception_detail;
  EXPECT_EQ(mesh->status_annotation, "initialized");
  auto pod = store.Get(Resource::kPods, "default", "mesh-1");
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(FieldValue(**pod, "status.phase"), "Running");
  EXPECT_EQ(FieldValue(**pod, "status.podIP").rfind("10.250.", 0), 0u);
  EXPECT_EQ((**pod)["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0);

  auto plain = WaitSettled(rec, store, "plain");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->phase, "Running");
  EXPECT_FALSE(plain->intercepted);
  EXPECT_NE(plain->interception_detail.find("not redirected"), std::string::npos)
      << plain->interception_detail;

  std::string uid = mesh->uid;
  ASSERT_TRUE(store.Delete(Resource::kPods, "default", "mesh-1", {}).ok());
  for (int i = 0; i < 100 && ctl.removed_ < 1; ++i) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(ctl.removed_, 1);
  EXPECT_FALSE(std::filesystem::exists(Options().state_dir + "/" + uid + "/podinfo"));
}

TEST_F(NodeTest, ControllerErrorFailsTheInitContainerWithItsReason) {
  Store store;
  Recorder rec;
  StandInController ctl(&store, true);
  FakeNode node(&store, &rec, Options(), sandbox_, &ctl);
  ASSERT_TRUE(node.Start().ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("mesh-bad", true)).ok());
  auto r = WaitSettled(rec, store, "mesh-bad");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->phase, "Failed");
  ASSERT_TRUE(r->waiter_exit);
  EXPECT_NE(*r->waiter_exit, 0);
  EXPECT_NE(r->waiter_message.find("includeOutboundIPRanges"), std::string::npos) << r->waiter_message;
  auto pod = store.Get(Resource::kPods, "default", "mesh-bad");
  EXPECT_NE((**pod)["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
}

TEST_F(NodeTest, NetfilterProbeSeesXtablesAndNftTables) {
  auto ns = sandbox_->CreateBareNetns("probe-test");
  ASSERT_TRUE(ns.ok()) << ns.status();
  std::string scratch = work_ + "/probe.out";
  auto empty = ListNetfilterTables(ns->handle().fd(), scratch);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");
  auto run = [&](std::vector<std::string> argv) {
    SpawnOptions so;
    so.argv = std::move(argv);
    so.netns_fd = ns->handle().fd();
    auto child = ChildProcess::Spawn(so);
    ASSERT_TRUE(child.ok()) << child.status();
    ASSERT_EQ(child->Wait(), 0);
  };
  run({"/usr/sbin/iptables-legacy", "-w", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "RETURN"});
  run({"/usr/sbin/nft", "add", "table", "ip", "probe_test"});
  auto full = ListNetfilterTables(ns->handle().fd(), scratch);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_NE(full->find("ip:nat"), std::string::npos) << *full;
  EXPECT_NE(full->find("nft:table ip probe_test"), std::string::npos) << *full;
  // The probe looked into that namespace only: this process's own namespace is still clean.
  auto own = ListNetfilterTables(-1, scratch);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(*own, "");
}

}  // namespace
}  // namespace pnc::sim
