// The fake API server over HTTP: Status objects, watch streams, faults, auth and TLS, seen by a libcurl
// client.
#include "simulator/apiserver/server.h"

#include <curl/curl.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simulator/apiserver/test_client.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
using testing::ClientConfig;
using ::testing::HasSubstr;
using testing::Request;
using testing::WatchReader;

const char kPod[] = R"({"metadata":{"name":"%s"},"spec":{"containers":[{"name":"app","image":"busybox"}]}})";

std::string PodJson(const std::string& name) {
  json p = json::parse(kPod);
  p["metadata"]["name"] = name;
  return p.dump();
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }
  void StartServer(ServerOptions o) {
    server_.reset();
    o.bookmark_interval = absl::Milliseconds(200);
    auto s = ApiServer::Start(&store_, o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    cfg_ = {server_->url(), o.token, server_->ca_pem()};
  }
  std::string Create(const std::string& name) {
    auto r = Request(cfg_, "POST", "/api/v1/namespaces/default/pods", PodJson(name));
    EXPECT_EQ(r.code, 201) << r.body;
    return r.Json()["metadata"]["resourceVersion"].get<std::string>();
  }

  Store store_;
  std::unique_ptr<ApiServer> server_;
  ClientConfig cfg_;
};

TEST_F(ServerTest, DiscoveryAndStatusObjects) {
  auto v = Request(cfg_, "GET", "/version");
  EXPECT_EQ(v.code, 200);
  EXPECT_EQ(v.Json()["major"], "1");
  auto api = Request(cfg_, "GET", "/api/v1");
  ASSERT_EQ(api.code, 200);
  EXPECT_EQ(api.Json()["kind"], "APIResourceList");
  auto nf = Request(cfg_, "GET", "/api/v1/namespaces/default/pods/nope");
  EXPECT_EQ(nf.code, 404);
  EXPECT_EQ(nf.Json(), json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
      "message":"pods \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"pods"},"code":404})"));
  auto bad = Request(cfg_, "GET", "/api/v1/pods?fieldSelector=spec.foo%3Dbar");
  EXPECT_EQ(bad.code, 400);
  EXPECT_EQ(bad.Json()["reason"], "BadRequest");
  auto garbage = Request(cfg_, "POST", "/api/v1/namespaces/default/pods", "{not json");
  EXPECT_EQ(garbage.code, 400);
  // Like the real server, an unsupported patch type is refused before the object is looked up.
  auto wrong_type = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/x", "{}", "application/xml");
  EXPECT_EQ(wrong_type.code, 415);
  // Server-side apply needs a field manager.
  auto no_manager =
      Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/x", "{}", "application/apply-patch+yaml");
  EXPECT_EQ(no_manager.code, 422);
  EXPECT_EQ(no_manager.Json()["details"]["causes"][0]["field"], "fieldManager");
  // Protobuf bodies: decoded for the kinds typed clients send that way (Helm's Secrets, Namespaces), 415 for
  // the others (like a server without that serializer).
  using namespace std::string_literals;
  const std::string magic = "k8s\0"s;
  const std::string pod_type = "\x0a\x02v1\x12\x03Pod"s;
  auto proto = Request(cfg_, "POST", "/api/v1/namespaces/default/pods",
                       magic + "\x0a\x09"s + pod_type + "\x12\x00"s, "application/vnd.kubernetes.protobuf");
  EXPECT_EQ(proto.code, 415);
  EXPECT_EQ(proto.Json()["reason"], "UnsupportedMediaType");
  const std::string ns_type = "\x0a\x02v1\x12\x09Namespace"s;
  const std::string ns_raw = "\x0a\x04\x0a\x02pb"s;  // Namespace{metadata: {name: "pb"}}
  auto ns = Request(cfg_, "POST", "/api/v1/namespaces", magic + "\x0a\x0f"s + ns_type + "\x12\x06"s + ns_raw,
                    "application/vnd.kubernetes.protobuf");
  EXPECT_EQ(ns.code, 201) << ns.body;
  EXPECT_EQ(ns.Json()["metadata"]["name"], "pb");
  auto truncated =
      Request(cfg_, "POST", "/api/v1/namespaces", magic + "\x0a\x7f"s, "application/vnd.kubernetes.protobuf");
  EXPECT_EQ(truncated.code, 400);
}

TEST_F(ServerTest, EventsK8sIoV1IsServedOverTheCoreEvents) {
  // Discovery: the group, its version and the resource.
  auto groups = Request(cfg_, "GET", "/apis").Json();
  bool listed = false;
  for (const auto& g : groups["groups"]) listed |= g["name"] == "events.k8s.io";
  EXPECT_TRUE(listed) << groups.dump();
  auto group = Request(cfg_, "GET", "/apis/events.k8s.io");
  ASSERT_EQ(group.code, 200);
  EXPECT_EQ(group.Json()["preferredVersion"]["groupVersion"], "events.k8s.io/v1");
  auto resources = Request(cfg_, "GET", "/apis/events.k8s.io/v1");
  ASSERT_EQ(resources.code, 200);
  EXPECT_EQ(resources.Json()["resources"][0]["name"], "events");
  EXPECT_EQ(resources.Json()["resources"][0]["namespaced"], true);
  auto openapi = Request(cfg_, "GET", "/openapi/v3/apis/events.k8s.io/v1");
  ASSERT_EQ(openapi.code, 200);
  EXPECT_TRUE(openapi.Json()["components"]["schemas"]["io.k8s.api.events.v1.Event"]["properties"].contains(
      "reportingController"));

  const std::string v1 =
      R"({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e1"},)"
      R"("eventTime":"2026-12-02T10:00:00.000000Z","type":"Normal","reason":"Started","action":"Start",)"
      R"("note":"hi","reportingController":"example.com/t","reportingInstance":"t-1",)"
      R"("regarding":{"kind":"Pod","name":"p","namespace":"default"}})";
  auto created = Request(cfg_, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", v1);
  ASSERT_EQ(created.code, 201) << created.body;
  EXPECT_EQ(created.Json()["note"], "hi");
  // The same object through core v1.
  auto core = Request(cfg_, "GET", "/api/v1/namespaces/default/events/e1");
  ASSERT_EQ(core.code, 200);
  EXPECT_EQ(core.Json()["message"], "hi");
  EXPECT_EQ(core.Json()["reportingComponent"], "example.com/t");
  auto list = Request(cfg_, "GET", "/apis/events.k8s.io/v1/events");
  ASSERT_EQ(list.code, 200);
  EXPECT_EQ(list.Json()["kind"], "EventList");
  EXPECT_EQ(list.Json()["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ(list.Json()["items"][0]["regarding"]["name"], "p");
  // An invalid v1 create is a 422 with causes.
  auto bad = Request(cfg_, "POST", "/apis/events.k8s.io/v1/namespaces/default/events",
                     R"({"metadata":{"name":"e2"},"type":"Normal"})");
  EXPECT_EQ(bad.code, 422);
  EXPECT_EQ(bad.Json()["details"]["group"], "events.k8s.io");
  EXPECT_GE(bad.Json()["details"]["causes"].size(), 5u);
  EXPECT_EQ(Request(cfg_, "DELETE", "/apis/events.k8s.io/v1/namespaces/default/events/e1").code, 200);
  EXPECT_EQ(Request(cfg_, "GET", "/api/v1/namespaces/default/events/e1").code, 404);
}

TEST_F(ServerTest, DryRunNeverPersists) {
  auto created = Request(cfg_, "POST", "/api/v1/namespaces/default/pods?dryRun=All", PodJson("dry"));
  EXPECT_EQ(created.code, 201) << created.body;
  EXPECT_EQ(created.Json()["metadata"]["name"], "dry");
  EXPECT_EQ(Request(cfg_, "GET", "/api/v1/namespaces/default/pods/dry").code, 404);
  Create("p");
  std::string rv =
      Request(cfg_, "GET", "/api/v1/namespaces/default/pods/p").Json()["metadata"]["resourceVersion"];
  auto patched = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/p?dryRun=All",
                         R"({"metadata":{"labels":{"x":"y"}}})", "application/merge-patch+json");
  EXPECT_EQ(patched.code, 200);
  EXPECT_EQ(patched.Json()["metadata"]["labels"]["x"], "y");
  auto applied = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/p?dryRun=All&fieldManager=t",
                         R"({"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"z":"1"}}})",
                         "application/apply-patch+yaml");
  EXPECT_EQ(applied.code, 200) << applied.body;
  EXPECT_EQ(Request(cfg_, "DELETE", "/api/v1/namespaces/default/pods/p?dryRun=All").code, 200);
  auto bad = Request(cfg_, "DELETE", "/api/v1/namespaces/default/pods/p?dryRun=Some");
  EXPECT_EQ(bad.code, 422);
  json now = Request(cfg_, "GET", "/api/v1/namespaces/default/pods/p").Json();
  EXPECT_EQ(now["metadata"]["resourceVersion"], rv);
  EXPECT_FALSE(now["metadata"].contains("labels"));
}

TEST_F(ServerTest, ServerSideApplyOwnsFieldsAndConflicts) {
  const char* apply = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"s","labels":{"a":"1"}},
      "spec":{"containers":[{"name":"app","image":"busybox"}]}})";
  auto created = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/s?fieldManager=one", apply,
                         "application/apply-patch+yaml");
  ASSERT_EQ(created.code, 201) << created.body;  // apply created it
  json mf = created.Json()["metadata"]["managedFields"];
  ASSERT_EQ(mf.size(), 1u);
  EXPECT_EQ(mf[0]["manager"], "one");
  EXPECT_EQ(mf[0]["operation"], "Apply");
  EXPECT_TRUE(mf[0]["fieldsV1"]["f:metadata"]["f:labels"].contains("f:a"));
  std::string other = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"s","labels":{"a":"2"}}})";
  auto conflict = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/s?fieldManager=two", other,
                          "application/apply-patch+yaml");
  EXPECT_EQ(conflict.code, 409);
  EXPECT_EQ(conflict.Json()["details"]["causes"][0]["reason"], "FieldManagerConflict");
  EXPECT_EQ(conflict.Json()["details"]["causes"][0]["field"], ".metadata.labels.a");
  auto forced = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/s?fieldManager=two&force=true", other,
                        "application/apply-patch+yaml");
  ASSERT_EQ(forced.code, 200) << forced.body;
  EXPECT_EQ(forced.Json()["metadata"]["labels"]["a"], "2");
  // Manager "one" drops label a from its config: it stays, "two" owns it now. Label b, which "one" adds and
  // then drops, goes.
  const std::string spec = R"("spec":{"containers":[{"name":"app","image":"busybox"}]})";
  auto again =
      Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/s?fieldManager=one",
              R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"s","labels":{"b":"x"}},)" + spec + "}",
              "application/apply-patch+yaml");
  ASSERT_EQ(again.code, 200) << again.body;
  EXPECT_EQ(again.Json()["metadata"]["labels"], json({{"a", "2"}, {"b", "x"}}));
  auto drop = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/s?fieldManager=one",
                      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"s"},)" + spec + "}",
                      "application/apply-patch+yaml");
  ASSERT_EQ(drop.code, 200) << drop.body;
  EXPECT_EQ(drop.Json()["metadata"]["labels"], json({{"a", "2"}}));
}

TEST_F(ServerTest, FieldValidationAndCauses) {
  json pod = json::parse(PodJson("v"));
  pod["spec"]["foo"] = 1;
  auto strict = Request(cfg_, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", pod.dump());
  EXPECT_EQ(strict.code, 400);
  EXPECT_THAT(strict.Json()["message"].get<std::string>(),
              HasSubstr("strict decoding error: unknown field \"spec.foo\""));
  auto warn = Request(cfg_, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Warn", pod.dump());
  EXPECT_EQ(warn.code, 201);
  EXPECT_THAT(warn.headers, HasSubstr("Warning: 299 - \"unknown field \\\"spec.foo\\\"\""));
  json bad = json::parse(PodJson("w"));
  bad["spec"]["restartPolicy"] = "Sometimes";
  bad["spec"]["containers"].push_back({{"name", "app"}});
  auto invalid = Request(cfg_, "POST", "/api/v1/namespaces/default/pods", bad.dump());
  EXPECT_EQ(invalid.code, 422);
  json causes = invalid.Json()["details"]["causes"];
  ASSERT_EQ(causes.size(), 3u) << invalid.body;
  EXPECT_EQ(causes[0]["field"], "spec.containers[1].name");
  EXPECT_EQ(causes[0]["reason"], "FieldValueDuplicate");
  EXPECT_EQ(causes[1]["field"], "spec.containers[1].image");
  EXPECT_EQ(causes[1]["reason"], "FieldValueRequired");
  EXPECT_EQ(causes[2]["field"], "spec.restartPolicy");
  EXPECT_EQ(causes[2]["reason"], "FieldValueNotSupported");
}

TEST_F(ServerTest, WatchListSendsInitialEventsThenBookmark) {
  Create("a");
  Create("b");
  auto rejected = Request(cfg_, "GET", "/api/v1/namespaces/default/pods?watch=1&sendInitialEvents=true");
  EXPECT_EQ(rejected.code, 422);
  WatchReader w(cfg_,
                "/api/v1/namespaces/default/pods?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                "&resourceVersionMatch=NotOlderThan");
  std::vector<std::string> types;
  for (int i = 0; i < 3; ++i) {
    auto e = w.Next(absl::Seconds(5));
    ASSERT_TRUE(e);
    types.push_back((*e)["type"]);
    if (i == 2) {
      EXPECT_EQ((*e)["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "ADDED", "BOOKMARK"}));
}

TEST_F(ServerTest, ListWithSelectorsAndPagination) {
  for (auto n : {"a", "b", "c"}) Create(n);
  auto list = Request(cfg_, "GET", "/api/v1/namespaces/default/pods?limit=2");
  ASSERT_EQ(list.code, 200);
  json l = list.Json();
  EXPECT_EQ(l["kind"], "PodList");
  EXPECT_EQ(l["items"].size(), 2u);
  EXPECT_EQ(l["metadata"]["remainingItemCount"], 1);
  std::string cont = l["metadata"]["continue"];
  auto rest = Request(cfg_, "GET", "/api/v1/namespaces/default/pods?limit=2&continue=" + cont);
  EXPECT_EQ(rest.Json()["items"].size(), 1u);
  EXPECT_EQ(rest.Json()["items"][0]["metadata"]["name"], "c");
  auto sel = Request(cfg_, "GET", "/api/v1/pods?fieldSelector=metadata.name%3Db");
  EXPECT_EQ(sel.Json()["items"].size(), 1u);
}

TEST_F(ServerTest, WatchStreamsResumesAndExpires) {
  std::string rv = Create("a");
  Create("b");
  {
    WatchReader w(cfg_, "/api/v1/namespaces/default/pods?watch=true&resourceVersion=" + rv);
    auto e = w.Next(absl::Seconds(5));
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["type"], "ADDED");
    EXPECT_EQ((*e)["object"]["metadata"]["name"], "b");
    auto del = Request(cfg_, "DELETE", "/api/v1/namespaces/default/pods/a");
    EXPECT_EQ(del.code, 200);
    EXPECT_EQ(del.Json()["metadata"]["name"], "a");
    e = w.Next(absl::Seconds(5));
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["type"], "DELETED");
    EXPECT_EQ((*e)["object"]["metadata"]["name"], "a");
  }
  store_.Compact();
  WatchReader old(cfg_, "/api/v1/watch/namespaces/default/pods?resourceVersion=" + rv);
  auto e = old.Next(absl::Seconds(5));
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["type"], "ERROR");
  EXPECT_EQ((*e)["object"]["code"], 410);
  EXPECT_EQ((*e)["object"]["reason"], "Expired");
  EXPECT_TRUE(old.Ended(absl::Seconds(5)));
  EXPECT_EQ(old.code(), 200);
}

TEST_F(ServerTest, BookmarksTimeoutAndDrop) {
  std::string rv = Create("a");
  {
    WatchReader w(cfg_, "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv);
    auto e = w.Next(absl::Seconds(5));
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["type"], "BOOKMARK");
    EXPECT_EQ((*e)["object"]["metadata"]["resourceVersion"], std::to_string(store_.ResourceVersion()));
  }
  WatchReader timed(cfg_, "/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=" + rv);
  EXPECT_TRUE(timed.Ended(absl::Seconds(10)));
  WatchReader dropped(cfg_, "/api/v1/pods?watch=1&resourceVersion=" + rv);
  for (int i = 0; i < 100 && store_.WatchCount() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(store_.WatchCount(), 1u);
  server_->DropAllWatches();
  EXPECT_TRUE(dropped.Ended(absl::Seconds(5)));
}

TEST_F(ServerTest, ClientDisconnectReleasesWatch) {
  {
    WatchReader w(cfg_, "/api/v1/pods?watch=1");
    for (int i = 0; i < 100 && store_.WatchCount() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(store_.WatchCount(), 1u);
  }
  for (int i = 0; i < 250 && store_.WatchCount() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(store_.WatchCount(), 0u);
}

TEST_F(ServerTest, InjectedFailuresAndEventDelay) {
  server_->FailNextRequests(2, 429);
  auto r1 = Request(cfg_, "GET", "/api/v1/pods");
  EXPECT_EQ(r1.code, 429);
  EXPECT_EQ(r1.Json()["reason"], "TooManyRequests");
  EXPECT_THAT(r1.headers, HasSubstr("Retry-After: 1"));
  EXPECT_EQ(Request(cfg_, "GET", "/api/v1/pods").code, 429);
  EXPECT_EQ(Request(cfg_, "GET", "/api/v1/pods").code, 200);
  server_->FailNextRequests(1, 500);
  auto r2 = Request(cfg_, "GET", "/api/v1/pods");
  EXPECT_EQ(r2.code, 500);
  EXPECT_EQ(r2.Json()["reason"], "InternalError");

  server_->SetEventDelay(absl::Seconds(2));
  WatchReader w(cfg_, "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(store_.ResourceVersion()));
  for (int i = 0; i < 100 && store_.WatchCount() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  Create("late");
  EXPECT_FALSE(w.Next(absl::Milliseconds(500)));  // held back by the fault
  auto e = w.Next(absl::Seconds(10));
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["object"]["metadata"]["name"], "late");
}

TEST_F(ServerTest, StatusSubresourcePatchOverHttp) {
  Create("p");
  auto got = Request(cfg_, "GET", "/api/v1/namespaces/default/pods/p").Json();
  std::string uid = got["metadata"]["uid"];
  auto replaced =
      Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/p/status",
              R"({"metadata":{"uid":"11111111-1111-4111-8111-111111111111","annotations":{"a":"b"}}})",
              "application/merge-patch+json");
  // A recreated pod (other UID): 422 Invalid like a real kube-apiserver, not 409.
  EXPECT_EQ(replaced.code, 422);
  EXPECT_EQ(replaced.Json()["reason"], "Invalid");
  EXPECT_EQ(replaced.Json()["details"]["causes"][0]["field"], "metadata.uid");
  auto ok = Request(cfg_, "PATCH", "/api/v1/namespaces/default/pods/p/status",
                    json{{"metadata", {{"uid", uid}, {"annotations", {{"a", "b"}}}}}}.dump(),
                    "application/strategic-merge-patch+json");
  ASSERT_EQ(ok.code, 200) << ok.body;
  EXPECT_EQ(ok.Json()["metadata"]["annotations"]["a"], "b");
  json put = ok.Json();
  put["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"];
  EXPECT_EQ(Request(cfg_, "PUT", "/api/v1/namespaces/default/pods/p", put.dump()).code, 409);
}

TEST_F(ServerTest, TokenAndTls) {
  ServerOptions o;
  o.tls = true;
  o.token = "t0ken";
  StartServer(o);
  EXPECT_THAT(cfg_.base_url, HasSubstr("https://"));
  EXPECT_EQ(Request(cfg_, "GET", "/api/v1/namespaces").code, 200);
  ClientConfig no_token = cfg_;
  no_token.token = "";
  auto denied = Request(no_token, "GET", "/api/v1/namespaces");
  EXPECT_EQ(denied.code, 401);
  EXPECT_EQ(denied.Json()["reason"], "Unauthorized");
  ClientConfig no_ca = cfg_;
  no_ca.ca_pem = "";
  EXPECT_EQ(Request(no_ca, "GET", "/api/v1/namespaces").code, 0);  // untrusted certificate: no response
  EXPECT_THAT(server_->Kubeconfig(), HasSubstr("certificate-authority-data: "));
  EXPECT_THAT(server_->Kubeconfig(), HasSubstr("token: t0ken"));
}

}  // namespace
}  // namespace pnc::sim

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_ALL);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
