// The Controller wired over kube::FakeClient + netns fakes: list, watch, relist on 410, workers, metrics
// server.
#include "controller/controller.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "controller/http_server.h"
#include "controller/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/fake_client.h"
#include "netns/fake_backend.h"
#include "netns/fake_inspector.h"
#include "netns/fake_locator.h"
#include "rules/annotations.h"

namespace pnc::controller {
namespace {

using ::testing::HasSubstr;

kube::Pod MemberPod(const std::string& uid, const std::string& name, const std::string& node = "node-a") {
  kube::Pod p;
  p.uid = uid;
  p.name = name;
  p.namespace_name = "shop";
  p.node_name = node;
  p.annotations[rules::kSidecarStatusAnnotation] = "{}";
  kube::Container proxy;
  proxy.name = "istio-proxy";
  p.containers = {proxy};
  return p;
}

// Waits (not a timing assertion: the bound only keeps a broken build from hanging).
template <typename F>
bool Eventually(F f) {
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (absl::Now() < end) {
    if (f()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return f();
}

std::string Status(kube::FakeClient& c, const std::string& name) {
  std::optional<kube::Pod> p = c.GetPod("shop", name);
  if (!p) return "<gone>";
  auto it = p->annotations.find(rules::kStatusAnnotation);
  return it == p->annotations.end() ? "<none>" : it->second;
}

// A node's fakes and the options every controller test shares: no resync, fake netns identity and marker,
// the pod's addresses read from the (fake) netns.
struct FakeNode {
  FakeNode() {
    if (!getenv("PNC_TEST_LOGS")) SetLogSink([](const std::string&) {});
    kube::Namespace ns;
    ns.name = "shop";
    client.UpsertNamespace(ns);
    options.node_name = "node-a";
    options.resync = absl::ZeroDuration();
    options.read_addresses = [](const netns::NetnsHandle&) -> absl::StatusOr<std::vector<std::string>> {
      return std::vector<std::string>{"10.244.1.5"};
    };
    options.inspector = &inspector;
    options.marker = &marker;
    options.boot_id = "0b5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b";
  }
  kube::FakeClient client;
  netns::FakeLocator locator;
  netns::FakeBackend backend;
  netns::FakeInspector inspector;
  netns::FakeProofMarker marker;
  Metrics metrics;
  ControllerOptions options;
};

// Pods whose init containers wait on a sandbox the kubelet has reported go first; pods set up already and
// pods without a published IP (no sandbox yet, as far as the kubelet said) are re-checks / polls.
TEST(Controller, EventPriorityPutsPodsWithAPublishedSandboxFirst) {
  EXPECT_EQ(EventPriority(/*set_up=*/false, /*pod_ips_published=*/true), WorkQueue::Priority::kFirst);
  EXPECT_EQ(EventPriority(false, false), WorkQueue::Priority::kRecheck);
  EXPECT_EQ(EventPriority(true, true), WorkQueue::Priority::kRecheck);
  EXPECT_EQ(EventPriority(true, false), WorkQueue::Priority::kRecheck);
}

// The runtime down (Unavailable) or too busy to answer in time (a CRI call past its deadline) is the
// runtime's state, not the pod's: the pod is parked, not backed off, and released by the next locate that
// succeeds.
TEST(Controller, RuntimeOutageParksPodsAndReleasesThemWhenItAnswers) {
  for (const absl::Status& outage :
       {absl::UnavailableError("connection refused (runtime restarting)"),
        absl::DeadlineExceededError("PodSandboxStatus: timed out after 2000 ms")}) {
    FakeNode n;
    n.client.UpsertPod(MemberPod("u1", "a"));
    n.locator.AddSandbox("u1", 1);
    n.locator.SetError("u1", outage);
    Controller c(n.options, &n.client, &n.locator, &n.backend, rules::PlanConfig{}, &n.metrics);
    c.Start();
    ASSERT_TRUE(Eventually([&] { return n.metrics.parked_pods && n.metrics.parked_pods() >= 1; })) << outage;
    n.locator.SetError("u1", absl::OkStatus());  // the runtime is back
    ASSERT_TRUE(Eventually([&] { return Status(n.client, "a") == "initialized"; })) << outage;
    EXPECT_EQ(n.metrics.parked_pods(), 0);
    EXPECT_TRUE(c.Stop(absl::Seconds(5)));
  }
}

// A pod whose sandbox does not exist yet waits on a long timer here (30 s, beyond the test's 20 s bound) and
// the sandbox poller's own interval is an hour: only a new file in the runtime's netns directory can have
// brought it back early, by a release (no poller) or by making the poller poll fast.
TEST(Controller, NewSandboxInTheNetnsDirectoryReleasesWaitingPods) {
  for (bool poller : {false, true}) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = std::string(tmp ? tmp : "/tmp") + "/netnsXXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    FakeNode n;
    n.client.UpsertPod(MemberPod("u1", "a"));
    n.options.queue.base_delay = absl::Seconds(30);
    n.options.sandbox_wait_cap = absl::Seconds(60);
    n.options.netns_dir = dir;
    n.options.sandbox_poll.interval = poller ? absl::Hours(1) : absl::ZeroDuration();
    n.options.sandbox_poll.fast_interval = absl::Milliseconds(1);
    Controller c(n.options, &n.client, &n.locator, &n.backend, rules::PlanConfig{}, &n.metrics);
    c.Start();
    ASSERT_TRUE(Eventually([&] { return n.metrics.errors.Value("locate_not_found") >= 1; }));
    n.locator.AddSandbox("u1", 1);
    std::ofstream(dir + "/cni-0a1b") << "";  // what the runtime's bind mount looks like to inotify
    ASSERT_TRUE(Eventually([&] { return Status(n.client, "a") == "initialized"; })) << poller;
    EXPECT_EQ(n.locator.list_calls() > 0, poller);
    EXPECT_TRUE(c.Stop(absl::Seconds(5)));
    unlink((dir + "/cni-0a1b").c_str());
    rmdir(dir.c_str());
  }
}

// Without any sign from the runtime's directory, the poller finds the sandbox of a pod that waits on a long
// timer, with one list call for all waiting pods instead of a locate per pod.
TEST(Controller, TheSandboxPollerReleasesWaitingPodsWhoseSandboxIsReady) {
  FakeNode n;
  for (const char* name : {"a", "b", "c"}) n.client.UpsertPod(MemberPod(std::string("u-") + name, name));
  n.options.queue.base_delay = absl::Seconds(30);
  n.options.sandbox_wait_cap = absl::Seconds(60);
  n.options.sandbox_poll.interval = absl::Milliseconds(10);
  Controller c(n.options, &n.client, &n.locator, &n.backend, rules::PlanConfig{}, &n.metrics);
  c.Start();
  ASSERT_TRUE(Eventually([&] { return n.metrics.errors.Value("locate_not_found") >= 3; }));
  const int locates = n.locator.locate_calls();
  n.locator.AddSandbox("u-a", 1);
  n.locator.AddSandbox("u-c", 3);
  ASSERT_TRUE(Eventually([&] { return Status(n.client, "a") == "initialized"; }));
  ASSERT_TRUE(Eventually([&] { return Status(n.client, "c") == "initialized"; }));
  EXPECT_EQ(Status(n.client, "b"), "<none>");        // still waiting for its sandbox
  EXPECT_EQ(n.locator.locate_calls(), locates + 2);  // only the two pods found ready were located again
  EXPECT_GE(n.locator.list_calls(), 1);
  EXPECT_TRUE(c.Stop(absl::Seconds(5)));
}

TEST(Controller, ListWatchRelistAndDrain) {
  if (!getenv("PNC_TEST_LOGS")) SetLogSink([](const std::string&) {});
  kube::FakeClient client;
  netns::FakeLocator locator;
  netns::FakeBackend backend;
  Metrics metrics;
  kube::Namespace ns;
  ns.name = "shop";
  client.UpsertNamespace(ns);
  client.UpsertPod(MemberPod("u1", "a"));
  client.UpsertPod(MemberPod("u-other", "elsewhere", "node-b"));  // not our node
  locator.AddSandbox("u1", 1);
  locator.AddSandbox("u-other", 9);

  ControllerOptions o;
  o.node_name = "node-a";
  o.workers = 2;
  o.resync = absl::ZeroDuration();
  o.watch_backoff_base = absl::Milliseconds(1);
  o.queue.base_delay = absl::Milliseconds(1);
  // The pods publish no IPs; fake handles have no fd for the real address dump.
  o.read_addresses = [](const netns::NetnsHandle&) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{"10.244.1.5"};
  };
  netns::FakeInspector inspector;
  o.inspector = &inspector;
  netns::FakeProofMarker marker;
  o.marker = &marker;
  o.boot_id = "0b5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b";
  Controller c(o, &client, &locator, &backend, rules::PlanConfig{}, &metrics);
  EXPECT_FALSE(c.Ready());
  c.Start();
  ASSERT_TRUE(Eventually([&] { return c.Ready(); }));
  ASSERT_TRUE(Eventually([&] { return Status(client, "a") == "initialized"; }));
  EXPECT_FALSE(backend.Has(9));  // field selector: other nodes' pods are never seen

  // A pod arrives through the watch before its sandbox exists; it is retried until the sandbox appears.
  kube::Pod b = MemberPod("u2", "b");
  client.UpsertPod(b);
  client.PushPodEvent({kube::EventType::kAdded, b, {}});
  ASSERT_TRUE(Eventually([&] { return metrics.errors.Value("locate_not_found") >= 2; }));
  EXPECT_EQ(Status(client, "b"), "<none>");
  locator.AddSandbox("u2", 2);
  ASSERT_TRUE(Eventually([&] { return Status(client, "b") == "initialized"; }));

  // 410 on the watch: the controller relists and picks up a pod it never got an event for.
  int lists_before = client.list_calls();
  client.UpsertPod(MemberPod("u3", "c"));
  locator.AddSandbox("u3", 3);
  kube::WatchEvent<kube::Pod> gone;
  gone.type = kube::EventType::kError;
  gone.status.code = 410;
  client.PushPodEvent(gone);
  ASSERT_TRUE(Eventually([&] { return Status(client, "c") == "initialized"; }));
  EXPECT_GT(client.list_calls(), lists_before);

  // A deleted pod leaves no per-UID reconciler state behind.
  EXPECT_EQ(c.reconciler().NumTracked(), 3u);
  client.DeletePod("shop", "b");
  client.PushPodEvent({kube::EventType::kDeleted, b, {}});
  ASSERT_TRUE(Eventually([&] { return c.reconciler().NumTracked() == 2; }));

  EXPECT_TRUE(c.Stop(absl::Seconds(5)));
  EXPECT_EQ(metrics.reconciles.Value("initialized"), 3);
  std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("pnc_event_to_applied_seconds_count 3"));
  EXPECT_THAT(text, HasSubstr("pnc_apply_duration_seconds_bucket{backend=\"fake\",le=\"+Inf\"} "));
  EXPECT_THAT(text, HasSubstr("pnc_errors_total{reason=\"locate_not_found\"}"));
  SetLogSink(nullptr);
}

std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  close(fd);
  return out;
}

TEST(HttpServer, ServesHandlerAndRejectsOtherMethods) {
  bool ready = false;
  absl::StatusOr<std::unique_ptr<HttpServer>> s =
      HttpServer::Start("127.0.0.1:0", [&](const std::string&, const std::string& path) -> HttpResponse {
        if (path == "/healthz") return {200, "text/plain", "ok\n"};
        if (path == "/readyz")
          return ready ? HttpResponse{200, "text/plain", "ready\n"}
                       : HttpResponse{503, "text/plain", "not ready\n"};
        return {404, "text/plain", "not found\n"};
      });
  ASSERT_TRUE(s.ok()) << s.status();
  int port = (*s)->port();
  EXPECT_THAT(Get(port, "/healthz"), HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(Get(port, "/readyz"), HasSubstr("HTTP/1.1 503"));
  ready = true;
  EXPECT_THAT(Get(port, "/readyz?verbose"), HasSubstr("ready\n"));
  EXPECT_THAT(Get(port, "/x"), HasSubstr("HTTP/1.1 404"));
  EXPECT_FALSE(HttpServer::Start("not-an-ip:80", nullptr).ok());
}

}  // namespace
}  // namespace pnc::controller

namespace pnc::controller {
namespace {

TEST(HttpServer, ASlowClientDoesNotHoldUpOthers) {
  absl::StatusOr<std::unique_ptr<HttpServer>> s =
      HttpServer::Start("127.0.0.1:0", [](const std::string&, const std::string&) -> HttpResponse {
        return {200, "", "ok\n"};
      });
  ASSERT_TRUE(s.ok()) << s.status();
  int port = (*s)->port();
  // Half a request head, then silence (a slowloris client, or one stuck mid-send).
  int slow = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(slow, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string head = "GET /healthz HTTP/1.1\r\n";
  ASSERT_EQ(send(slow, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  // Served while the slow connection is still open: with one-at-a-time serving this waited for the slow
  // client's deadline, which then closed it, and the end of its request below got no answer.
  EXPECT_THAT(Get(port, "/healthz"), HasSubstr("HTTP/1.1 200 OK"));
  ASSERT_EQ(send(slow, "\r\n", 2, MSG_NOSIGNAL), 2);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = recv(slow, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  close(slow);
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 200 OK"));
}

TEST(Informer, RelistDiffReportsVanishedPodsAndNamespaceChangesEnqueuePods) {
  std::vector<std::string> enq, del;
  Informer inf(Informer::Callbacks{[&](const std::string& u) { enq.push_back(u); },
                                   [&](const std::string& u) { del.push_back(u); }});
  EXPECT_FALSE(inf.PodsSynced());
  inf.ReplacePods({MemberPod("u1", "a"), MemberPod("u2", "b")});
  EXPECT_TRUE(inf.PodsSynced());
  EXPECT_EQ(enq, (std::vector<std::string>{"u1", "u2"}));
  enq.clear();
  inf.ApplyPodEvent(kube::EventType::kModified, MemberPod("u2", "b"));
  inf.ApplyPodEvent(kube::EventType::kBookmark, kube::Pod{});
  EXPECT_EQ(enq, (std::vector<std::string>{"u2"}));
  enq.clear();
  // u1 vanished while the watch was down; u3 appeared.
  inf.ReplacePods({MemberPod("u2", "b"), MemberPod("u3", "c")});
  EXPECT_EQ(del, (std::vector<std::string>{"u1"}));
  EXPECT_FALSE(inf.GetPod("u1").has_value());
  EXPECT_TRUE(inf.GetPod("u3").has_value());
  inf.ApplyPodEvent(kube::EventType::kDeleted, MemberPod("u2", "b"));
  EXPECT_EQ(del, (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(inf.NumPods(), 1u);

  enq.clear();
  kube::Namespace ns;
  ns.name = "shop";
  inf.ReplaceNamespaces({ns});  // first sync: every pod gets another chance
  EXPECT_EQ(enq, (std::vector<std::string>{"u3"}));
  enq.clear();
  inf.ApplyNamespaceEvent(kube::EventType::kModified, kube::Namespace(ns));  // unchanged: nothing
  EXPECT_TRUE(enq.empty());
  ns.labels["istio-injection"] = "enabled";
  inf.ApplyNamespaceEvent(kube::EventType::kModified, kube::Namespace(ns));
  EXPECT_EQ(enq, (std::vector<std::string>{"u3"}));
  EXPECT_EQ(inf.GetNamespace("shop")->labels.at("istio-injection"), "enabled");
}

// Workers wait on this before their first pod; it must wake up when the namespace list lands, not at the
// timeout.
TEST(Informer, WaitNamespacesSyncedWakesOnTheFirstList) {
  Informer inf(Informer::Callbacks{[](const std::string&) {}, [](const std::string&) {}});
  EXPECT_FALSE(inf.WaitNamespacesSynced(absl::Milliseconds(1)));
  absl::Notification waiting;
  std::atomic<bool> synced{false};
  std::thread waiter([&] {
    waiting.Notify();
    synced = inf.WaitNamespacesSynced(absl::Hours(1));  // an hour: only the list can end this wait in time
  });
  waiting.WaitForNotification();
  inf.ReplaceNamespaces({});
  waiter.join();
  EXPECT_TRUE(synced);
  EXPECT_TRUE(inf.WaitNamespacesSynced(absl::ZeroDuration()));
}

}  // namespace
}  // namespace pnc::controller
