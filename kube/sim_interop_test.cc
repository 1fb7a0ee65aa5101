// CurlClient against the simulator's fake API server over HTTPS, configured only through the kubeconfig the
// server prints (certificate-authority-data + bearer token): TLS verification, node-scoped list, watch +
// reflector, status patch with the UID precondition, events, and relist after the history is compacted (410).
#include <atomic>
#include <iostream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/config.h"
#include "kube/curl_client.h"
#include "kube/reflector.h"
#include "nlohmann/json.hpp"
#include "simulator/apiserver/server.h"
#include "simulator/apiserver/store.h"

namespace pnc::kube {
namespace {

nlohmann::json PodJson(const std::string& name, const std::string& node) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "shop"}}},
          {"spec", {{"nodeName", node}, {"containers", {{{"name", "app"}, {"image", "x"}}}}}}};
}

TEST(SimulatorInterop, TlsKubeconfigListWatchPatchEventsRelist) {
  sim::Store store;
  sim::ServerOptions so;
  so.tls = true;
  so.token = "sekret";
  so.bookmark_interval = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<sim::ApiServer>> server = sim::ApiServer::Start(&store, so);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(store.Create(sim::Resource::kNamespaces, "", {{"metadata", {{"name", "shop"}}}}).ok());
  ASSERT_TRUE(store.Create(sim::Resource::kPods, "shop", PodJson("a", "node-a")).ok());
  ASSERT_TRUE(store.Create(sim::Resource::kPods, "shop", PodJson("b", "node-b")).ok());

  absl::StatusOr<ClientConfig> cfg = ParseKubeconfig((*server)->Kubeconfig(), "");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_FALSE(cfg->ca_data.empty());
  absl::StatusOr<std::unique_ptr<CurlClient>> client = CurlClient::Create(*cfg);
  ASSERT_TRUE(client.ok());
  CurlClient& c = **client;

  // Without the CA the TLS handshake must fail (verification is on).
  ClientConfig no_ca = *cfg;
  no_ca.ca_data.clear();
  EXPECT_EQ((*CurlClient::Create(no_ca))->ListPods({}).status().code(), absl::StatusCode::kUnavailable);
  // Without the token: 401.
  ClientConfig no_token = *cfg;
  no_token.token.clear();
  EXPECT_EQ((*CurlClient::Create(no_token))->ListPods({}).status().code(),
            absl::StatusCode::kUnauthenticated);

  ListOptions lo;
  lo.field_selector = "spec.nodeName=node-a";
  absl::StatusOr<ObjectList<Pod>> list = c.ListPods(lo);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  const Pod a = list->items[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_FALSE(a.uid.empty());

  // Patch: right UID works and lands in metadata.annotations; a wrong UID is a conflict; a missing pod 404.
  ASSERT_TRUE(c.PatchPodStatusAnnotations("shop", "a", a.uid,
                                          {{"pod-network-controller.istio.io/status", "initialized"}})
                  .ok());
  absl::StatusOr<sim::ObjectPtr> got = store.Get(sim::Resource::kPods, "shop", "a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((**got)["metadata"]["annotations"]["pod-network-controller.istio.io/status"], "initialized");
  EXPECT_EQ(c.PatchPodStatusAnnotations("shop", "a", "not-the-uid", {{"k", "v"}}).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(c.PatchPodStatusAnnotations("shop", "nope", a.uid, {{"k", "v"}}).code(),
            absl::StatusCode::kNotFound);

  EventRecord ev;
  ev.namespace_name = "shop";
  ev.pod_name = "a";
  ev.pod_uid = a.uid;
  ev.reason = "InvalidRedirectAnnotation";
  ev.message = "bad";
  ev.host = "node-a";
  ASSERT_TRUE(c.CreateEvent(ev).ok());

  // Reflector over HTTPS: events for our node only; after Compact + dropped watches the resume gets 410 ->
  // relist.
  std::atomic<int> replaces{0};
  absl::Notification saw_c, saw_d;
  Reflector<Pod>::Hooks hooks;
  std::atomic<bool> relisted_with_d{false};
  hooks.on_replace = [&](std::vector<Pod>&& items, const std::string&) {
    for (const Pod& p : items)
      if (p.name == "d") relisted_with_d = true;
    ++replaces;
  };
  hooks.on_event = [&](EventType t, Pod&& p) {
    EXPECT_EQ(p.node_name, "node-a");
    if (t == EventType::kAdded && p.name == "c" && !saw_c.HasBeenNotified()) saw_c.Notify();
    if (t == EventType::kAdded && p.name == "d" && !saw_d.HasBeenNotified()) saw_d.Notify();
  };
  Reflector<Pod>::Options ro;
  ro.field_selector = "spec.nodeName=node-a";
  ro.backoff_base = absl::Milliseconds(10);
  Reflector<Pod> r([&](const ListOptions& o) { return c.ListPods(o); },
                   [&](const WatchOptions& o, const WatchHandler<Pod>& h, const std::atomic<bool>& x) {
                     return c.WatchPods(o, h, x);
                   },
                   hooks, ro);
  std::thread t([&] { r.Run(); });
  for (int i = 0; i < 200 && replaces.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(store.Create(sim::Resource::kPods, "shop", PodJson("x-other", "node-b")).ok());
  ASSERT_TRUE(store.Create(sim::Resource::kPods, "shop", PodJson("c", "node-a")).ok());
  EXPECT_TRUE(saw_c.WaitForNotificationWithTimeout(absl::Seconds(20)));
  store.Compact();
  store.DropAllWatches();
  ASSERT_TRUE(store.Create(sim::Resource::kPods, "shop", PodJson("d", "node-a")).ok());
  // "d" must arrive: as an event if the server let the watch resume, or in a relist after 410 Expired.
  for (int i = 0; i < 2000 && !saw_d.HasBeenNotified() && !relisted_with_d.load(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(saw_d.HasBeenNotified() || relisted_with_d.load());
  std::cerr << "after compaction: " << (relisted_with_d.load() ? "relisted (410)" : "resumed") << ", lists "
            << replaces.load() << "\n";
  r.Stop();
  t.join();
}

}  // namespace
}  // namespace pnc::kube
