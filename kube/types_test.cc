#include "kube/types.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/curl_client.h"
#include "kube/line_splitter.h"

namespace pnc::kube {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr char kPod[] = R"({
  "kind": "Pod", "apiVersion": "v1",
  "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
               "annotations": {"sidecar.istio.io/status": "{}", "a": "b"}, "labels": {"app": "web"},
               "managedFields": [{"manager": "kubectl"}]},
  "spec": {"nodeName": "node-a", "hostNetwork": false,
           "securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
           "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always",
                               "securityContext": {"runAsUser": 1337},
                               "env": [{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"},
                                       {"name": "ISTIO_DUAL_STACK", "valueFrom": {"fieldRef": {}}},
                                       {"name": "PROXY_CONFIG", "value": "{}"}]}],
           "containers": [{"name": "app", "image": "x", "ports": [{"containerPort": 8080, "protocol": "TCP"},
                                                                  {"containerPort": 53, "protocol": "UDP"}],
                           "env": [{"name": "ISTIO_META_DNS_CAPTURE", "value": "false"}]}]},
  "status": {"phase": "Pending", "podIP": "10.0.0.5",
             "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
})";

TEST(DecodePod, ReadsTheFieldsWeUseAndIgnoresTheRest) {
  absl::StatusOr<Pod> pod = DecodePod(kPod);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->name, "web-1");
  EXPECT_EQ(pod->namespace_name, "shop");
  EXPECT_EQ(pod->uid, "u-1");
  EXPECT_EQ(pod->resource_version, "42");
  EXPECT_THAT(pod->annotations, ElementsAre(Pair("a", "b"), Pair("sidecar.istio.io/status", "{}")));
  EXPECT_THAT(pod->labels, ElementsAre(Pair("app", "web")));
  EXPECT_EQ(pod->node_name, "node-a");
  EXPECT_FALSE(pod->host_network);
  EXPECT_FALSE(pod->deleting);
  EXPECT_EQ(pod->run_as_user, 1000);
  EXPECT_EQ(pod->run_as_group, 3000);
  ASSERT_EQ(pod->init_containers.size(), 1u);
  EXPECT_EQ(pod->init_containers[0].restart_policy, "Always");
  EXPECT_EQ(pod->init_containers[0].run_as_user, 1337);
  // istio-proxy's literal ISTIO_* env only (valueFrom and other names skipped; other containers' env not
  // kept).
  EXPECT_THAT(pod->init_containers[0].env, ElementsAre(Pair("ISTIO_META_DNS_CAPTURE", "true")));
  ASSERT_EQ(pod->containers.size(), 1u);
  ASSERT_EQ(pod->containers[0].ports.size(), 2u);
  EXPECT_EQ(pod->containers[0].ports[1].container_port, 53);
  EXPECT_EQ(pod->containers[0].ports[1].protocol, "UDP");
  EXPECT_EQ(pod->phase, "Pending");
  EXPECT_THAT(pod->pod_ips, ElementsAre("10.0.0.5", "fd00::5"));

  rules::PodFacts f = ToPodFacts(*pod, nullptr);
  EXPECT_EQ(f.uid, "u-1");
  EXPECT_EQ(f.pod_run_as_user, 1000);
  ASSERT_EQ(f.init_containers.size(), 1u);
  EXPECT_TRUE(f.init_containers[0].restart_policy_always);
  EXPECT_EQ(f.init_containers[0].env.at("ISTIO_META_DNS_CAPTURE"), "true");
  EXPECT_TRUE(f.containers[0].env.empty());
  EXPECT_EQ(f.containers[0].ports[0].container_port, 8080);
  EXPECT_TRUE(f.namespace_labels.empty());
  Namespace ns;
  ns.labels["istio-injection"] = "enabled";
  EXPECT_EQ(ToPodFacts(*pod, &ns).namespace_labels.at("istio-injection"), "enabled");
}

TEST(DecodePod, DeletionTimestampAndPodIpFallback) {
  absl::StatusOr<Pod> pod = DecodePod(
      R"({"metadata":{"uid":"u","deletionTimestamp":"2024-01-01T00:00:00Z","annotations":null},
          "spec":{"hostNetwork":true},"status":{"podIP":"10.1.1.1"}})");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_TRUE(pod->deleting);
  EXPECT_TRUE(pod->host_network);
  EXPECT_THAT(pod->pod_ips, ElementsAre("10.1.1.1"));
}

TEST(DecodePod, WrongTypesAreErrorsNotCrashes) {
  for (const char* bad : {
           R"({"metadata":{"name":5}})",
           R"({"metadata":{"annotations":{"a":1}}})",
           R"({"metadata":"x"})",
           R"({"spec":{"hostNetwork":"yes"}})",
           R"({"spec":{"containers":{}}})",
           R"({"spec":{"containers":[{"ports":[{"containerPort":"80"}]}]}})",
           R"({"spec":{"securityContext":{"runAsUser":1.5}}})",
           R"({"spec":{"securityContext":{"runAsUser":18446744073709551615}}})",
           R"({"status":{"podIPs":["10.0.0.1"]}})",
           R"([1,2])",
       }) {
    absl::StatusOr<Pod> pod = DecodePod(bad);
    EXPECT_EQ(pod.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(DecodePod, GarbageIsAnError) {
  for (const char* bad : {"", "{", "nul", "{\"metadata\":{\"uid\":\"u\"}", "\xff\xfe", "{}}"}) {
    EXPECT_EQ(DecodePod(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// Deterministic mutation sweep: truncations and byte flips of a real pod must never crash or throw.
TEST(DecodePod, MutatedInputNeverCrashes) {
  std::string base = std::string(R"({"type":"MODIFIED","object":)") + kPod + "}";
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u; };
  int ok = 0, errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = base;
    if (i % 3 == 0) s.resize(next() % s.size());
    int flips = 1 + next() % 4;
    for (int f = 0; f < flips && !s.empty(); ++f) s[next() % s.size()] = static_cast<char>(next() & 0xff);
    absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(s);
    (ev.ok() ? ok : errors)++;
    (void)DecodePodList(s);  // exercised for crashes only
  }
  EXPECT_GT(errors, 0);  // the sweep did reach the error paths
  EXPECT_EQ(ok + errors, 3000);
}

TEST(DecodeWatchEvent, AddedModifiedDeleted) {
  for (auto [text, type] :
       {std::pair{"ADDED", EventType::kAdded}, std::pair{"MODIFIED", EventType::kModified},
        std::pair{"DELETED", EventType::kDeleted}}) {
    std::string line =
        std::string(R"({"type":")") + text + R"(","object":{"metadata":{"uid":"u9","name":"p"}}})";
    absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(line);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(ev->type, type);
    EXPECT_EQ(ev->object.uid, "u9");
  }
}

TEST(DecodeWatchEvent, Bookmark) {
  absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12345",
          "annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}})");
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->type, EventType::kBookmark);
  EXPECT_EQ(ev->object.resource_version, "12345");
}

TEST(DecodeWatchEvent, ErrorEventCarries410) {
  absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
          "message":"too old resource version: 1 (5)","reason":"Expired","code":410}})j");
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->type, EventType::kError);
  EXPECT_EQ(ev->status.code, 410);
  EXPECT_EQ(ev->status.reason, "Expired");
  EXPECT_EQ(ev->status.message, "too old resource version: 1 (5)");
}

TEST(DecodeWatchEvent, Malformed) {
  for (const char* bad :
       {R"({"type":"ADDED"})", R"({"type":"WHAT","object":{}})", R"({"type":"ADDED","object":[]})",
        R"({"type":"ERROR","object":{"kind":"Pod"}})", R"({"type":"ADDED","object":{"metadata":)"}) {
    EXPECT_FALSE(DecodePodWatchEvent(bad).ok()) << bad;
  }
}

TEST(DecodeStatus, Gone) {
  absl::StatusOr<ApiStatus> st = DecodeStatus(
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"gone","reason":"Gone","code":410})");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->code, 410);
  EXPECT_EQ(DecodeStatus(R"({"kind":"Pod"})").status().code(), absl::StatusCode::kNotFound);
}

TEST(DecodeList, PodListWithContinue) {
  absl::StatusOr<ObjectList<Pod>> list = DecodePodList(
      R"({"kind":"PodList","metadata":{"resourceVersion":"77","continue":"tok"},
          "items":[{"metadata":{"uid":"a"}},{"metadata":{"uid":"b"}}]})");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->resource_version, "77");
  EXPECT_EQ(list->continue_token, "tok");
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[1].uid, "b");
  EXPECT_FALSE(DecodePodList(R"({"items":[{"metadata":{"uid":7}}]})").ok());
  absl::StatusOr<ObjectList<Namespace>> nsl =
      DecodeNamespaceList(R"({"metadata":{"resourceVersion":"3"},"items":[{"metadata":{"name":"shop",
          "labels":{"istio-injection":"enabled"}}}]})");
  ASSERT_TRUE(nsl.ok());
  EXPECT_EQ(nsl->items[0].labels.at("istio-injection"), "enabled");
}

TEST(LineSplitter, EventsSpanningChunksAndSeveralPerChunk) {
  LineSplitter s;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) {
    lines.emplace_back(l);
    return absl::OkStatus();
  };
  ASSERT_TRUE(s.Feed("{\"a\":", collect).ok());
  ASSERT_TRUE(s.Feed("1}\n{\"b\"", collect).ok());
  ASSERT_TRUE(s.Feed(":2}\n\n{\"c\":3}\r\n{", collect).ok());
  EXPECT_THAT(lines, ElementsAre("{\"a\":1}", "{\"b\":2}", "{\"c\":3}\r"));
  EXPECT_EQ(s.pending(), 1u);
}

TEST(LineSplitter, BoundsLineLengthAndPropagatesErrors) {
  LineSplitter s(8);
  auto ok = [](std::string_view) { return absl::OkStatus(); };
  EXPECT_EQ(s.Feed("0123456789", ok).code(), absl::StatusCode::kResourceExhausted);
  LineSplitter t;
  EXPECT_EQ(t.Feed("x\ny\n", [](std::string_view) { return absl::DataLossError("bad"); }).code(),
            absl::StatusCode::kDataLoss);
}

TEST(Names, Dns1123) {
  EXPECT_TRUE(IsDns1123Label("shop-1"));
  EXPECT_FALSE(IsDns1123Label("Shop"));
  EXPECT_FALSE(IsDns1123Label("-a"));
  EXPECT_FALSE(IsDns1123Label("a/b"));
  EXPECT_FALSE(IsDns1123Label(std::string(64, 'a')));
  EXPECT_TRUE(IsDns1123Subdomain("web-1.v2"));
  EXPECT_FALSE(IsDns1123Subdomain("web..1"));
  EXPECT_FALSE(IsDns1123Subdomain("../etc"));
  EXPECT_FALSE(IsDns1123Subdomain(""));
}

TEST(Names, UrlEscape) {
  EXPECT_EQ(UrlEscape("spec.nodeName=node-1"), "spec.nodeName%3Dnode-1");
  EXPECT_EQ(UrlEscape("a b/&?#"), "a%20b%2F%26%3F%23");
}

TEST(HttpError, Mapping) {
  EXPECT_EQ(HttpError(404, "x", "").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HttpError(409, "x", "").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(HttpError(410, "x", "").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(HttpError(503, "x", "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpError(429, "x", "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpError(403, "x", "").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpError(422, "x", "").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pnc::kube
