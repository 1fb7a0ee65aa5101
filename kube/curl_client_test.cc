// Integration tests of CurlClient (+ Reflector) against an in-test HTTP server on loopback.
#include "kube/curl_client.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/reflector.h"
#include "kube/test_http_server.h"
#include "nlohmann/json.hpp"

namespace pnc::kube {
namespace {

using ::testing::HasSubstr;
using testing::HttpConn;
using testing::HttpRequest;
using testing::TestHttpServer;

std::string PodJson(const std::string& uid, const std::string& rv) {
  return R"({"metadata":{"name":"p-)" + uid + R"(","namespace":"ns","uid":")" + uid +
         R"(","resourceVersion":")" + rv + R"("},"spec":{"nodeName":"n1"}})";
}
std::string Event(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}\n";
}
std::string List(const std::string& rv, const std::vector<std::string>& items, const std::string& cont = "") {
  std::string s = R"({"kind":"PodList","metadata":{"resourceVersion":")" + rv + R"(","continue":")" + cont +
                  R"("},"items":[)";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
  return s + "]}";
}
const char kGone[] =
    R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version",)"
    R"("reason":"Expired","code":410})";

std::unique_ptr<CurlClient> NewClient(const TestHttpServer& server) {
  ClientConfig cfg;
  cfg.server = server.url();
  cfg.token = "t0k";
  absl::StatusOr<std::unique_ptr<CurlClient>> c = CurlClient::Create(cfg);
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

bool IsWatch(const HttpRequest& r) { return r.target.find("watch=true") != std::string::npos; }

TEST(CurlReflector, ChunkSplitsDropsAnd410ForceRelist) {
  std::atomic<int> lists{0}, watches{0};
  TestHttpServer server([&](const HttpRequest& req, HttpConn& conn) {
    if (!IsWatch(req)) {
      int n = ++lists;
      if (n == 1)
        conn.Respond(200, List("10", {PodJson("a", "9")}));
      else if (n == 2)
        conn.Respond(200, List("20", {PodJson("b", "11"), PodJson("c", "19")}));
      else
        conn.Respond(200, List("30", {PodJson("b", "11"), PodJson("c", "19")}));
      return;
    }
    int n = ++watches;
    if (n == 1) {
      // An event split across two chunks, a bookmark in the same chunk as the tail, then half an event and a
      // drop.
      std::string added = Event("ADDED", PodJson("b", "11"));
      std::string bookmark = Event("BOOKMARK", R"({"kind":"Pod","metadata":{"resourceVersion":"12"}})");
      conn.StartChunked();
      conn.Chunk(added.substr(0, 17));
      conn.Chunk(added.substr(17) + bookmark + added.substr(0, 10));
      return;  // connection closed without the terminating chunk
    }
    if (n == 2) {
      conn.Respond(410, kGone);
      return;
    }
    if (n == 3) {
      conn.StartChunked();
      conn.Chunk(Event("ERROR", kGone));
      conn.EndChunked();
      return;
    }
    conn.StartChunked();
    conn.Chunk(Event("MODIFIED", PodJson("c", "31")));
    while (!server.stopping() && !conn.WaitPeerClosed(50)) {
    }
  });
  std::unique_ptr<CurlClient> client = NewClient(server);

  std::vector<std::pair<int, std::string>> replaces;  // (count, rv)
  std::vector<std::string> events;
  std::vector<absl::StatusCode> errors;
  absl::Notification got_modified;
  Reflector<Pod>::Hooks hooks;
  hooks.on_replace = [&](std::vector<Pod>&& items, const std::string& rv) {
    replaces.emplace_back(static_cast<int>(items.size()), rv);
  };
  hooks.on_event = [&](EventType t, Pod&& p) {
    events.push_back(std::string(EventTypeName(t)) + " " + p.uid);
    if (t == EventType::kModified && !got_modified.HasBeenNotified()) got_modified.Notify();
  };
  hooks.on_error = [&](const absl::Status& st, const char*) { errors.push_back(st.code()); };
  Reflector<Pod>::Options opts;
  opts.field_selector = "spec.nodeName=n1";
  opts.backoff_base = absl::Milliseconds(5);
  Reflector<Pod> reflector([&](const ListOptions& o) { return client->ListPods(o); },
                           [&](const WatchOptions& o, const WatchHandler<Pod>& h,
                               const std::atomic<bool>& c) { return client->WatchPods(o, h, c); },
                           hooks, opts);
  std::thread runner([&] { reflector.Run(); });
  ASSERT_TRUE(got_modified.WaitForNotificationWithTimeout(absl::Seconds(20)));
  absl::Time stop_at = absl::Now();
  reflector.Stop();
  runner.join();
  EXPECT_LT(absl::Now() - stop_at, absl::Seconds(3));  // a generous bound: cancellation must not hang

  EXPECT_EQ(replaces, (std::vector<std::pair<int, std::string>>{{1, "10"}, {2, "20"}, {2, "30"}}));
  EXPECT_EQ(events, (std::vector<std::string>{"ADDED b", "MODIFIED c"}));
  EXPECT_THAT(errors, ::testing::ElementsAre(absl::StatusCode::kUnavailable, absl::StatusCode::kOutOfRange,
                                             absl::StatusCode::kOutOfRange));
  EXPECT_EQ(reflector.relists_after_gone(), 2);

  std::vector<std::string> watch_rvs, list_rvs;
  for (const HttpRequest& r : server.requests()) {
    EXPECT_EQ(r.headers.at("authorization"), "Bearer t0k");
    EXPECT_THAT(r.target, HasSubstr("fieldSelector=spec.nodeName%3Dn1"));
    if (IsWatch(r)) {
      EXPECT_THAT(r.target, HasSubstr("allowWatchBookmarks=true"));
      EXPECT_THAT(r.target, HasSubstr("timeoutSeconds="));
      size_t p = r.target.find("resourceVersion=");
      ASSERT_NE(p, std::string::npos);
      watch_rvs.push_back(r.target.substr(p + 16, r.target.find('&', p) - p - 16));
    } else {
      EXPECT_THAT(r.target, ::testing::StartsWith("/api/v1/pods?limit=500"));
      list_rvs.push_back(r.target.find("resourceVersion=0") != std::string::npos ? "0" : "latest");
    }
  }
  // The second watch resumes from the bookmark's RV (12), not the list's (10).
  EXPECT_EQ(watch_rvs, (std::vector<std::string>{"10", "12", "20", "30"}));
  // First list from the watch cache; relists after a 410 read the latest state.
  EXPECT_EQ(list_rvs, (std::vector<std::string>{"0", "latest", "latest"}));
}

TEST(CurlClient, ListFollowsContinueTokens) {
  TestHttpServer server([&](const HttpRequest& req, HttpConn& conn) {
    if (req.target.find("continue=c1") == std::string::npos) {
      conn.Respond(200, List("5", {PodJson("a", "1")}, "c1"));
    } else {
      conn.Respond(200, List("6", {PodJson("b", "2")}));
    }
  });
  absl::StatusOr<ObjectList<Pod>> list = NewClient(server)->ListPods({});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[1].uid, "b");
  EXPECT_EQ(list->resource_version, "6");
}

TEST(CurlClient, ListErrors) {
  std::atomic<int> n{0};
  TestHttpServer server([&](const HttpRequest&, HttpConn& conn) {
    if (++n == 1)
      conn.Respond(503, R"({"kind":"Status","code":503,"message":"etcd down"})");
    else
      conn.Respond(200, "{not json");
  });
  std::unique_ptr<CurlClient> c = NewClient(server);
  absl::Status st = c->ListPods({}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(st.message()), HasSubstr("etcd down"));
  EXPECT_EQ(c->ListPods({}).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CurlClient, ConnectionRefusedIsUnavailable) {
  int port;
  {
    TestHttpServer s([](const HttpRequest&, HttpConn&) {});
    port = s.port();
  }
  ClientConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_EQ((*CurlClient::Create(cfg))->ListPods({}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(CurlClient, WatchGarbageLineIsDataLossAndCancelIsPrompt) {
  TestHttpServer server([&](const HttpRequest& req, HttpConn& conn) {
    conn.StartChunked();
    if (req.target.find("resourceVersion=1") != std::string::npos) {
      conn.Chunk("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":5}}}\n");
      conn.EndChunked();
      return;
    }
    while (!server.stopping() && !conn.WaitPeerClosed(50)) {
    }
  });
  std::unique_ptr<CurlClient> c = NewClient(server);
  std::atomic<bool> cancel{false};
  WatchOptions o;
  o.resource_version = "1";
  EXPECT_EQ(c->WatchPods(
                 o, [](WatchEvent<Pod>&&) { return true; }, cancel)
                .code(),
            absl::StatusCode::kDataLoss);
  o.resource_version = "2";
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(100));
    cancel.store(true);
  });
  EXPECT_EQ(c->WatchPods(
                 o, [](WatchEvent<Pod>&&) { return true; }, cancel)
                .code(),
            absl::StatusCode::kCancelled);
  t.join();
}

TEST(CurlClient, PatchStatusCarriesUidPreconditionAndMapsConflicts) {
  TestHttpServer server([&](const HttpRequest& req, HttpConn& conn) {
    if (req.target.find("/pods/gone/") != std::string::npos) {
      conn.Respond(404, R"({"kind":"Status","code":404,"message":"pods \"gone\" not found"})");
      return;
    }
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (req.target.find("/pods/old-server/") != std::string::npos && body["metadata"]["uid"] != "u1") {
      conn.Respond(409,
                   R"({"kind":"Status","code":409,"message":"Precondition failed: UID in precondition"})");
      return;
    }
    if (req.target.find("/pods/bad-value/") != std::string::npos) {  // a 422 about another field
      conn.Respond(422, R"({"kind":"Status","code":422,"reason":"Invalid","message":"bad annotation",)"
                        R"("details":{"causes":[{"field":"metadata.annotations"}]}})");
      return;
    }
    if (body.is_discarded() || body["metadata"]["uid"] != "u1") {  // what kube-apiserver answers
      conn.Respond(422, R"({"kind":"Status","code":422,"reason":"Invalid","message":"Pod \"web-1\" is )"
                        R"(invalid: metadata.uid: Invalid value: \"u2\": field is immutable","details":{)"
                        R"("name":"web-1","kind":"Pod","causes":[{"reason":"FieldValueInvalid","field":)"
                        R"("metadata.uid"}]}})");
      return;
    }
    conn.Respond(200,
                 R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","resourceVersion":"4242"}})");
  });
  std::unique_ptr<CurlClient> c = NewClient(server);
  std::map<std::string, std::string> ann = {{"pod-network-controller.istio.io/status", "initialized"}};
  std::string rv = "stale";
  EXPECT_TRUE(c->PatchPodStatusAnnotations("shop", "web-1", "u1", ann, &rv).ok());
  EXPECT_EQ(rv, "4242");  // the pod's version after the patch, as the server answered
  EXPECT_EQ(c->PatchPodStatusAnnotations("shop", "web-1", "u2", ann).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(c->PatchPodStatusAnnotations("shop", "old-server", "u2", ann).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(c->PatchPodStatusAnnotations("shop", "bad-value", "u1", ann).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->PatchPodStatusAnnotations("shop", "gone", "u1", ann).code(), absl::StatusCode::kNotFound);
  // Untrusted names never reach the URL.
  EXPECT_EQ(c->PatchPodStatusAnnotations("shop", "../../x", "u1", ann).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->PatchPodStatusAnnotations("Shop", "web", "u1", ann).code(),
            absl::StatusCode::kInvalidArgument);

  std::vector<HttpRequest> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 5u);  // web-1 twice, old-server, bad-value, gone: the invalid names sent nothing
  EXPECT_EQ(reqs[0].method, "PATCH");
  EXPECT_EQ(reqs[0].target, "/api/v1/namespaces/shop/pods/web-1/status");
  EXPECT_EQ(reqs[0].headers.at("content-type"), "application/merge-patch+json");
  nlohmann::json body = nlohmann::json::parse(reqs[0].body);
  EXPECT_EQ(body["metadata"]["annotations"]["pod-network-controller.istio.io/status"], "initialized");
}

TEST(CurlClient, CreateEvent) {
  TestHttpServer server([&](const HttpRequest&, HttpConn& conn) { conn.Respond(201, "{}"); });
  std::unique_ptr<CurlClient> c = NewClient(server);
  EventRecord ev;
  ev.namespace_name = "shop";
  ev.pod_name = "web-1";
  ev.pod_uid = "u1";
  ev.reason = "InvalidAnnotation";
  ev.message = std::string(5000, 'x');
  ev.host = "node-a";
  ASSERT_TRUE(c->CreateEvent(ev).ok());
  std::vector<HttpRequest> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/api/v1/namespaces/shop/events");
  nlohmann::json j = nlohmann::json::parse(reqs[0].body);
  EXPECT_EQ(j["involvedObject"]["uid"], "u1");
  EXPECT_EQ(j["involvedObject"]["kind"], "Pod");
  EXPECT_EQ(j["reason"], "InvalidAnnotation");
  EXPECT_EQ(j["type"], "Warning");
  EXPECT_EQ(j["source"]["component"], "istio-pod-network-controller");
  EXPECT_EQ(j["count"], 1);
  EXPECT_EQ(j["message"].get<std::string>().size(), 1024u);
  EXPECT_TRUE(j["firstTimestamp"].is_string());
}

}  // namespace
}  // namespace pnc::kube
