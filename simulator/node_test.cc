// FakeNode in netns mode with the REAL waiter and a stand-in controller (iptables-legacy in the pod netns +
// the status annotation), so the kubelet side is tested without the real controller: interception verified
// through SO_ORIGINAL_DST, a controller error fails the init container with its reason, a non-mesh pod is
// left alone, and deletion tears the sandbox down.
#include "simulator/node.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/netns.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sandbox.h"
#include "netns/testing/sockets.h"
#include "rules/annotations.h"
#include "simulator/netfilter_probe.h"
#include "simulator/netns_identity.h"
#include "simulator/process.h"
#include "simulator/waiter_test_env.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
namespace nt = pnc::netns::testing;

constexpr char kStatus[] = "pod-network-controller.istio.io/status";
constexpr char kProbe[] = "pod-network-controller.istio.io/probe";

// What the controller does, reduced to the minimum: Istio-like REDIRECT rules (outbound to 15001 except the
// proxy's uid/gid, inbound to 15006), then the mark bound to the pod's netns identity with a probe target the
// rules capture (what the real waiter, running inside that netns, checks). Every sandbox of a pod (recreated
// ones too) is handled the same way.
class StandInController : public SandboxListener {
 public:
  StandInController(Store* store, bool fail) : store_(store), fail_(fail) {}
  ~StandInController() override {
    absl::MutexLock l(&mu_);
    for (auto& t : threads_) t.join();
  }
  void SandboxReady(const SandboxInfo& info) override {
    if (info.pod_name.rfind("mesh", 0) != 0) return;
    absl::MutexLock l(&mu_);
    ++ready_;
    threads_.emplace_back([this, info] {
      json annotations = {{kStatus, "initialized"}};
      if (fail_ || info.pod_name == "mesh-bad") {
        annotations[kStatus] = "error: traffic.sidecar.istio.io/includeOutboundIPRanges: bad CIDR";
      } else if (auto s = Apply(info.netns_path, &annotations); !s.ok()) {
        annotations[kStatus] = "error: " + s.ToString();
      }
      auto r = store_->Patch(Resource::kPods, info.pod_namespace, info.pod_name, PatchType::kMerge,
                             {{"metadata", {{"uid", info.pod_uid}, {"annotations", annotations}}}},
                             Subresource::kStatus);
      EXPECT_TRUE(r.ok()) << r.status();
    });
  }
  void SandboxRemoved(const SandboxInfo& info) override { removed_++; }
  std::atomic<int> removed_{0};
  int ready() {
    absl::MutexLock l(&mu_);
    return ready_;
  }

 private:
  static absl::Status Apply(const std::string& netns_path, json* annotations) {
    auto ns = netns::NetnsHandle::Open(netns_path);
    if (!ns.ok()) return ns.status();
    const std::vector<std::vector<std::string>> rules = {
        {"-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", "1337", "-j", "RETURN"},
        {"-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", "1337", "-j", "RETURN"},
        {"-A", "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001"},
        {"-A", "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"}};
    for (const auto& rule : rules) {
      SpawnOptions so;
      so.argv = {"/usr/sbin/iptables-legacy", "-w", "-t", "nat"};
      so.argv.insert(so.argv.end(), rule.begin(), rule.end());
      so.netns_fd = ns->fd();
      auto child = ChildProcess::Spawn(so);
      if (!child.ok()) return child.status();
      if (int code = child->Wait(); code != 0)
        return absl::InternalError(absl::StrCat("iptables exit ", code));
    }
    auto boot = BootId();
    if (!boot.ok()) return boot.status();
    auto cookie = NetnsCookie(*ns);
    if (!cookie.ok()) return cookie.status();
    (*annotations)[rules::kNetnsAnnotation] = IdentityText(*boot, *cookie);
    (*annotations)[kProbe] = "target=192.0.2.1:15002,capture=15001";
    return absl::OkStatus();
  }

  Store* store_;
  bool fail_;
  absl::Mutex mu_;
  int ready_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
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

// A fake node with the stand-in controller, and what they share.
struct StandInNode {
  StandInNode(NodeOptions options, netns::testing::Sandbox* sandbox, bool fail)
      : ctl(&store, fail), node(&store, &rec, std::move(options), sandbox, &ctl) {}
  Store store;
  Recorder rec;
  StandInController ctl;
  FakeNode node;
};

class NodeTest : public WaiterSandboxTest {
 protected:
  // Started, with the stand-in controller applying rules (fail: writing an annotation error instead); null
  // (and a test failure) when the node does not start.
  std::unique_ptr<StandInNode> StartStandInNode(bool fail) {
    auto n = std::make_unique<StandInNode>(Options(), sandbox_, fail);
    absl::Status started = n->node.Start();
    EXPECT_TRUE(started.ok()) << started;
    return started.ok() ? std::move(n) : nullptr;
  }
  NodeOptions Options() {
    NodeOptions o;
    o.name = "node-1";
    o.state_dir = work_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    o.waiter_binary = work_ + "/waiter";
    o.waiter_timeout = absl::Seconds(20);
    return o;
  }
};

// Appends one rule (`match`, then its target) to the nat table's OUTPUT chain of `ns` with iptables-legacy.
void AppendNatOutput(const netns::NetnsHandle& ns, const std::vector<std::string>& rule) {
  SpawnOptions so;
  so.argv = {"/usr/sbin/iptables-legacy", "-w", "-t", "nat", "-A", "OUTPUT"};
  so.argv.insert(so.argv.end(), rule.begin(), rule.end());
  so.netns_fd = ns.fd();
  auto child = ChildProcess::Spawn(so);
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_EQ(child->Wait(), 0) << absl::StrJoin(so.argv, " ");
}

// A connection from `ns` as uid/gid 2000: neither the app's nor the proxy's.
absl::StatusOr<nt::UniqueFd> ConnectAsOtherUid(const netns::NetnsHandle& ns, const std::string& ip,
                                               uint16_t port) {
  nt::UniqueFd out;
  absl::Status s = nt::RunAs(2000, 2000, &ns, [&]() -> absl::Status {
    auto c = nt::TcpConnect(ip, port, absl::Seconds(1));
    if (!c.ok()) return c.status();
    out = std::move(*c);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

TEST_F(NodeTest, MeshPodIsInterceptedAfterTheWaiterSucceeds) {
  std::unique_ptr<StandInNode> n = StartStandInNode(/*fail=*/false);
  ASSERT_NE(n, nullptr);
  Store& store = n->store;
  Recorder& rec = n->rec;
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
  for (int i = 0; i < 100 && n->ctl.removed_ < 1; ++i) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(n->ctl.removed_, 1);
  // The volume goes after the sandbox is withdrawn (the pod worker's last step): wait for it, do not race it.
  const std::string podinfo = Options().state_dir + "/" + uid + "/podinfo";
  for (int i = 0; i < 100 && std::filesystem::exists(podinfo); ++i) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(podinfo));
}

TEST_F(NodeTest, ControllerErrorFailsTheInitContainerWithItsReason) {
  std::unique_ptr<StandInNode> n = StartStandInNode(/*fail=*/true);
  ASSERT_NE(n, nullptr);
  Store& store = n->store;
  Recorder& rec = n->rec;
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

TEST_F(NodeTest, ReleaseCheckPassesWhenRulesAreInPlaceAtWaiterExit) {
  std::unique_ptr<StandInNode> n = StartStandInNode(/*fail=*/false);
  ASSERT_NE(n, nullptr);
  Store& store = n->store;
  Recorder& rec = n->rec;
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("mesh-1", true)).ok());
  auto r = WaitSettled(rec, store, "mesh-1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->waiter_exit, 0) << r->waiter_message;
  EXPECT_TRUE(r->release_check.passed()) << r->release_check.Summary();
  EXPECT_NE(r->release_check.outbound.detail.find("SO_ORIGINAL_DST 192.0.2.10:80"), std::string::npos)
      << r->release_check.Summary();
  EXPECT_NE(r->release_check.inbound.detail.find(":8080 landed on 15006"), std::string::npos)
      << r->release_check.Summary();
  EXPECT_NE(r->release_check.bypass.detail.find("uid 1337 gid 1337, uid 1000 gid 1337"), std::string::npos)
      << r->release_check.Summary();
  EXPECT_TRUE(r->marked_for_this_netns) << r->mark_at_release << " vs " << r->binding_detail;
}

// A waiter that exits 0 at once (here /bin/true) before anything installed rules: the node's check at that
// moment must say so, even though nothing else is wrong with the pod.
TEST_F(NodeTest, ReleaseCheckFailsWhenTheWaiterExitsBeforeTheRules) {
  Store store;
  Recorder rec;
  NodeOptions o = Options();
  o.waiter_binary = "/bin/true";
  FakeNode node(&store, &rec, o, sandbox_, nullptr);
  ASSERT_TRUE(node.Start().ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("mesh-early", true)).ok());
  auto r = WaitSettled(rec, store, "mesh-early");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->waiter_exit, 0);
  EXPECT_FALSE(r->release_check.passed());
  EXPECT_EQ(r->release_check.outbound.verdict, CheckVerdict::kFailed) << r->release_check.Summary();
  EXPECT_EQ(r->release_check.inbound.verdict, CheckVerdict::kFailed) << r->release_check.Summary();
  EXPECT_EQ(r->release_check.bypass.verdict, CheckVerdict::kPassed) << r->release_check.Summary();
  EXPECT_FALSE(r->intercepted);
}

// The proxy's uid bypass is checked, not assumed: rules that capture uid 1337 too fail the bypass check.
TEST_F(NodeTest, ReleaseCheckFailsWhenTheProxyIsCaptured) {
  auto pod = sandbox_->CreatePodNetns("capture-all");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_NO_FATAL_FAILURE(
      AppendNatOutput(pod->handle(), {"-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001"}));
  auto listeners = OpenCaptureListeners(pod->handle(), 1337, 1337);
  ASSERT_TRUE(listeners.ok()) << listeners.status();
  ReleaseCheck c = CheckInterceptionAtRelease({.pod = &pod->handle(),
                                               .client = &sandbox_->peer(),
                                               .pod_ip = pod->pod_ipv4,
                                               .client_ip = pod->peer_ipv4},
                                              *listeners);
  EXPECT_EQ(c.outbound.verdict, CheckVerdict::kPassed) << c.Summary();
  EXPECT_EQ(c.inbound.verdict, CheckVerdict::kFailed) << c.Summary();
  EXPECT_EQ(c.bypass.verdict, CheckVerdict::kFailed) << c.Summary();
  EXPECT_NE(c.bypass.detail.find("captured"), std::string::npos) << c.Summary();
  EXPECT_FALSE(nt::HasPendingConnection(listeners->outbound.get()));  // drained for the sidecar
}

// Only the check's own connection decides: a connection that something else in the pod made to a captured
// destination, queued on 15001 before the check's, is named in the detail and does not fail (or pass) it.
TEST_F(NodeTest, ReleaseCheckSkipsSomeoneElsesConnectionQueuedFirst) {
  auto pod = sandbox_->CreatePodNetns("foreign-first");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_NO_FATAL_FAILURE(
      AppendNatOutput(pod->handle(), {"-p", "tcp", "--dport", "1234", "-m", "owner", "!", "--uid-owner",
                                      "1337", "-j", "REDIRECT", "--to-ports", "15001"}));
  auto listeners = OpenCaptureListeners(pod->handle(), 1337, 1337);
  ASSERT_TRUE(listeners.ok()) << listeners.status();
  absl::StatusOr<nt::UniqueFd> foreign = ConnectAsOtherUid(pod->handle(), "192.0.2.1", 1234);
  ASSERT_TRUE(foreign.ok()) << foreign.status();
  ReleaseCheckOptions o{.pod = &pod->handle(),
                        .client = &sandbox_->peer(),
                        .pod_ip = pod->pod_ipv4,
                        .client_ip = pod->peer_ipv4,
                        .test_net_port = 1234};
  ReleaseCheck c = CheckInterceptionAtRelease(o, *listeners);
  EXPECT_EQ(c.outbound.verdict, CheckVerdict::kPassed) << c.Summary();
  EXPECT_NE(c.outbound.detail.find("not ours; original destination 192.0.2.1:1234"), std::string::npos)
      << c.Summary();
  // A queued foreign connection alone is not our connection arriving: without a redirect for the check's
  // destination the outbound check still fails.
  absl::StatusOr<nt::UniqueFd> foreign2 = ConnectAsOtherUid(pod->handle(), "192.0.2.1", 1234);
  ASSERT_TRUE(foreign2.ok()) << foreign2.status();
  o.test_net_port = 80;
  o.timeout = absl::Milliseconds(300);
  c = CheckInterceptionAtRelease(o, *listeners);
  EXPECT_EQ(c.outbound.verdict, CheckVerdict::kFailed) << c.Summary();
}

// Why the release check recognizes its connections by a nonce and not by source port: when a redirected
// connection's reply tuple clashes with one conntrack still holds (an earlier connection from the same source
// port to another captured destination, now in TIME_WAIT), NAT moves the source port. The listener then sees
// a peer port the client never had.
TEST_F(NodeTest, RedirectMovesTheSourcePortOnAConntrackClash) {
  auto pod = sandbox_->CreatePodNetns("nat-clash");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_NO_FATAL_FAILURE(AppendNatOutput(
      pod->handle(), {"-p", "tcp", "-d", "192.0.2.0/24", "-j", "REDIRECT", "--to-ports", "15001"}));
  auto listeners = OpenCaptureListeners(pod->handle(), 1337, 1337);
  ASSERT_TRUE(listeners.ok()) << listeners.status();
  std::vector<uint16_t> client_ports, seen_ports;
  for (const char* dst : {"192.0.2.1", "192.0.2.10"}) {  // two destinations, one source port
    ASSERT_TRUE(netns::RunInNetns(pod->handle(), [&]() -> absl::Status {
                  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                  int one = 1;
                  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                  sockaddr_in local{};
                  local.sin_family = AF_INET;
                  local.sin_port = htons(40123);
                  ::inet_pton(AF_INET, pod->pod_ipv4.c_str(), &local.sin_addr);
                  sockaddr_in remote{};
                  remote.sin_family = AF_INET;
                  remote.sin_port = htons(80);
                  ::inet_pton(AF_INET, dst, &remote.sin_addr);
                  absl::Status st = absl::OkStatus();
                  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
                      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
                    st = absl::InternalError(absl::StrCat("bind/connect: ", std::strerror(errno)));
                  }
                  auto me = nt::LocalEndpoint(fd);
                  if (st.ok() && me.ok()) client_ports.push_back(me->port);
                  ::close(fd);  // active close: this side's TIME_WAIT keeps the conntrack entry
                  return st;
                }).ok());
    auto accepted = nt::Accept(listeners->outbound.get(), absl::Seconds(1));
    ASSERT_TRUE(accepted.ok()) << accepted.status();
    auto peer = nt::PeerEndpoint(accepted->get());
    ASSERT_TRUE(peer.ok()) << peer.status();
    seen_ports.push_back(peer->port);
  }
  ASSERT_EQ(client_ports, (std::vector<uint16_t>{40123, 40123}));
  EXPECT_EQ(seen_ports[0], 40123);
  EXPECT_NE(seen_ports[1], 40123);  // moved by NAT: the same reply tuple is still in conntrack
}

// recreate_sandbox: same UID, new netns (the inode may come back, the cookie never), the old mark still on
// the pod, the waiter runs again and only the re-mark for the new sandbox lets it go.
TEST_F(NodeTest, RecreatedSandboxRunsTheWaiterAgainAndIsCheckedAtRelease) {
  Store store;
  Recorder rec;
  StandInController ctl(&store, false);
  NodeOptions o = Options();
  FakeNode node(&store, &rec, o, sandbox_, &ctl);
  ASSERT_TRUE(node.Start().ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("mesh-re", true)).ok());
  auto first = WaitSettled(rec, store, "mesh-re");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->phase, "Running");
  ASSERT_EQ(first->sandboxes.size(), 1u);
  const std::string old_ip = first->sandboxes[0].ip;

  EXPECT_TRUE(absl::IsNotFound(node.RecreateSandbox("default", "nope", absl::ZeroDuration())));
  ASSERT_TRUE(node.RecreateSandbox("default", "mesh-re", absl::Milliseconds(200)).ok());
  EXPECT_FALSE(rec.Get(first->uid)->settled);  // at once, so a wait for settlement waits for the new one
  auto second = WaitSettled(rec, store, "mesh-re");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->uid, first->uid);
  ASSERT_EQ(second->sandboxes.size(), 2u);
  EXPECT_NE(second->sandboxes[1].cookie, second->sandboxes[0].cookie);
  EXPECT_NE(second->sandboxes[1].ip, old_ip);
  std::printf("recreated sandbox: inode %lu -> %lu, cookie %lu -> %lu\n",
              static_cast<unsigned long>(second->sandboxes[0].inode),
              static_cast<unsigned long>(second->sandboxes[1].inode),
              static_cast<unsigned long>(second->sandboxes[0].cookie),
              static_cast<unsigned long>(second->sandboxes[1].cookie));
  EXPECT_EQ(second->phase, "Running");
  EXPECT_EQ(second->waiter_exit, 0) << second->waiter_message;
  EXPECT_TRUE(second->release_check.passed()) << second->release_check.Summary();
  EXPECT_TRUE(second->marked_for_this_netns) << second->mark_at_release << " vs " << second->binding_detail;
  EXPECT_EQ(ctl.ready(), 2);
  EXPECT_EQ(ctl.removed_, 1);
  auto pod = store.Get(Resource::kPods, "default", "mesh-re");
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(FieldValue(**pod, "status.podIP"), second->sandboxes[1].ip);
  EXPECT_EQ((**pod)["status"]["containerStatuses"][0]["restartCount"], 1);
  EXPECT_TRUE(std::filesystem::exists(o.state_dir + "/" + first->uid + "/waiter-1.log"));
}

// Istio's CNI-mode shape with the pnc-waiter template (controller/testdata/istio_cni_pnc_waiter_pod.json,
// path b of docs/deploy.md): the node runs the waiter as the pod spec's `istio-validation` says: its args,
// the istio-podinfo volume (annotations + labels files) at the path the template mounts, uid/gid 65532; the
// proxy stand-in as istio-proxy's 1337 (a native sidecar, reported running once the pod runs).
json CniFixturePod(const std::string& name) {
  std::ifstream f("controller/testdata/istio_cni_pnc_waiter_pod.json");
  std::stringstream ss;
  ss << f.rdbuf();
  json p = json::parse(ss.str());
  p.erase("status");
  p["metadata"].erase("uid");
  p["metadata"].erase("resourceVersion");
  p["metadata"]["name"] = name;
  p["metadata"]["namespace"] = "default";
  p["spec"]["nodeName"] = "node-1";
  return p;
}

// /proc/<pid>/status "Uid:"/"Gid:" lines of the process whose command line contains `needle`; "" if none.
std::string IdsOfProcess(const std::string& needle) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::ifstream cmd(e.path() / "cmdline");
    std::string c((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    if (c.find(needle) == std::string::npos) continue;
    std::ifstream st(e.path() / "status");
    std::string line, out;
    while (std::getline(st, line)) {
      if (line.rfind("Uid:", 0) == 0 || line.rfind("Gid:", 0) == 0) out += line + "\n";
    }
    return out;
  }
  return "";
}

TEST_F(NodeTest, IstioCniPodRunsTheWaiterFromItsSpec) {
  std::unique_ptr<StandInNode> n = StartStandInNode(/*fail=*/false);  // acts on pods named mesh*
  ASSERT_NE(n, nullptr);
  Store& store = n->store;
  Recorder& rec = n->rec;

  // No controller for this one: the waiter waits, and can be looked at.
  auto created = store.Create(Resource::kPods, "default", CniFixturePod("cni-wait"));
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string uid = FieldValue(**created, "metadata.uid");
  const std::string dir = Options().state_dir + "/" + uid + "/istio-podinfo";
  std::string ids;
  for (int i = 0; i < 200 && ids.empty(); ++i) {
    ids = IdsOfProcess(dir + "/annotations");
    if (ids.empty()) absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_NE(ids.find("Uid:\t65532\t65532\t65532\t65532"), std::string::npos) << ids;
  EXPECT_NE(ids.find("Gid:\t65532\t65532\t65532\t65532"), std::string::npos) << ids;
  std::ifstream annotations(dir + "/annotations"), labels(dir + "/labels");
  std::string a((std::istreambuf_iterator<char>(annotations)), std::istreambuf_iterator<char>());
  std::string l((std::istreambuf_iterator<char>(labels)), std::istreambuf_iterator<char>());
  EXPECT_NE(a.find("sidecar.istio.io/interceptionMode=\"REDIRECT\""), std::string::npos) << a;
  EXPECT_NE(l.find("app=\"reviews\""), std::string::npos) << l;
  // The controller's error reaches it through that file: the init container fails under its own name.
  ASSERT_TRUE(
      store
          .Patch(Resource::kPods, "default", "cni-wait", PatchType::kMerge,
                 {{"metadata", {{"annotations", {{kStatus, "error: traffic.sidecar.istio.io/x: bad"}}}}}},
                 Subresource::kStatus)
          .ok());
  auto failed = WaitSettled(rec, store, "cni-wait");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->phase, "Failed");
  EXPECT_EQ(failed->waiter_container, "istio-validation");
  EXPECT_EQ(failed->waiter_uid, 65532u);
  EXPECT_EQ(failed->waiter_gid, 65532u);
  EXPECT_EQ(failed->waiter_args,
            (std::vector<std::string>{absl::StrCat("--file=", dir, "/annotations"), "--timeout=300s"}));
  auto pod = store.Get(Resource::kPods, "default", "cni-wait");
  ASSERT_TRUE(pod.ok());
  EXPECT_NE(FieldValue(**pod, "status.message").find("init container istio-validation exited with"),
            std::string::npos)
      << (**pod)["status"].dump();

  // With the stand-in controller: released, checked at release, intercepted; the proxy is istio-proxy's 1337.
  ASSERT_TRUE(store.Create(Resource::kPods, "default", CniFixturePod("mesh-cni")).ok());
  auto ok = WaitSettled(rec, store, "mesh-cni");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->phase, "Running");
  EXPECT_EQ(ok->waiter_exit, 0) << ok->waiter_message;
  EXPECT_TRUE(ok->release_check.passed()) << ok->release_check.Summary();
  EXPECT_TRUE(ok->intercepted) << ok->interception_detail;
  EXPECT_TRUE(ok->proxy_found && ok->proxy_native_sidecar);
  EXPECT_EQ(ok->proxy_uid, 1337u);
  EXPECT_EQ(ok->proxy_gid, 1337u);
  pod = store.Get(Resource::kPods, "default", "mesh-cni");
  ASSERT_TRUE(pod.ok());
  const json& init = (**pod)["status"]["initContainerStatuses"];
  ASSERT_EQ(init.size(), 2u) << init.dump();
  EXPECT_EQ(init[0]["name"], "istio-validation");
  EXPECT_EQ(init[0]["state"]["terminated"]["exitCode"], 0);
  EXPECT_EQ(init[1]["name"], "istio-proxy");
  EXPECT_TRUE(init[1]["state"].contains("running")) << init.dump();
  EXPECT_EQ(init[1]["ready"], true);
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
