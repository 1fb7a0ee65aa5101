// Watch-stream decode throughput: bytes arrive in 16 KiB chunks (as libcurl hands them over), are split into
// lines and decoded into typed Pods. Pods look like real ones (managedFields, several containers, env,
// volumes), ~4 KiB each.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kube/line_splitter.h"
#include "kube/types.h"

namespace pnc::kube {
namespace {

std::string RealisticPod(int i) {
  std::string n = std::to_string(i);
  std::string s =
      R"({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"reviews-v2-)" + n +
      R"(","generateName":"reviews-v2-5b667bcbf8-","namespace":"bookinfo","uid":"6f1c9f6e-1b2a-4c3d-9e8f-)" +
      std::string(12 - std::min<size_t>(12, n.size()), '0') + n + R"(","resourceVersion":")" +
      std::to_string(100000 + i) +
      R"(","creationTimestamp":"2024-05-01T10:00:00Z","labels":{"app":"reviews","version":"v2",
"pod-template-hash":"5b667bcbf8","security.istio.io/tlsMode":"istio","service.istio.io/canonical-name":"reviews"},
"annotations":{"kubectl.kubernetes.io/default-container":"reviews","prometheus.io/path":"/stats/prometheus",
"prometheus.io/port":"15020","prometheus.io/scrape":"true","sidecar.istio.io/status":"{\"initContainers\":null,\"containers\":[\"istio-proxy\"],\"volumes\":[\"workload-socket\",\"credential-socket\",\"workload-certs\",\"istio-envoy\",\"istio-data\",\"istio-podinfo\",\"istio-token\",\"istiod-ca-cert\"],\"imagePullSecrets\":null,\"revision\":\"default\"}"},
"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"reviews-v2-5b667bcbf8","uid":"0a0b0c0d","controller":true,"blockOwnerDeletion":true}],
"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{},"f:version":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0a0b0c0d\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"reviews\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":9080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}},
{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:00:05Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{},"f:containerStatuses":{},"f:podIP":{},"f:podIPs":{}}},"subresource":"status"}]},
"spec":{"volumes":[{"name":"workload-socket","emptyDir":{}},{"name":"istio-envoy","emptyDir":{"medium":"Memory"}},{"name":"istio-podinfo","downwardAPI":{"items":[{"path":"labels","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.labels"}},{"path":"annotations","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.annotations"}}],"defaultMode":420}},{"name":"istio-token","projected":{"sources":[{"serviceAccountToken":{"audience":"istio-ca","expirationSeconds":43200,"path":"istio-token"}}],"defaultMode":420}}],
"containers":[{"name":"reviews","image":"docker.io/istio/examples-bookinfo-reviews-v2:1.18.0","ports":[{"containerPort":9080,"protocol":"TCP"}],"env":[{"name":"LOG_DIR","value":"/tmp/logs"}],"resources":{},"securityContext":{"runAsUser":1000}},
{"name":"istio-proxy","image":"docker.io/istio/proxyv2:1.22.0","args":["proxy","sidecar","--domain","$(POD_NAMESPACE).svc.cluster.local","--proxyLogLevel=warning","--log_output_level=default:info"],"ports":[{"name":"http-envoy-prom","containerPort":15090,"protocol":"TCP"}],"env":[{"name":"PILOT_CERT_PROVIDER","value":"istiod"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}},{"name":"ISTIO_META_APP_CONTAINERS","value":"reviews"}],"resources":{"limits":{"cpu":"2","memory":"1Gi"},"requests":{"cpu":"100m","memory":"128Mi"}},"securityContext":{"runAsUser":1337,"runAsGroup":1337,"runAsNonRoot":true,"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}],
"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"bookinfo-reviews","nodeName":"node-a","securityContext":{},"schedulerName":"default-scheduler"},
"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2024-05-01T10:00:06Z"}],"hostIP":"10.0.0.10","podIP":"10.244.1.)" +
      std::to_string(i % 250) + R"(","podIPs":[{"ip":"10.244.1.)" + std::to_string(i % 250) +
      R"("}],"startTime":"2024-05-01T10:00:00Z","qosClass":"Burstable"}}})";
  std::string line;
  for (char c : s)
    if (c != '\n') line.push_back(c);
  return line + "\n";
}

void BM_DecodeWatchStream(benchmark::State& state) {
  std::string stream;
  const int kEvents = 1000;
  for (int i = 0; i < kEvents; ++i) stream += RealisticPod(i);
  const size_t kChunk = 16 * 1024;
  int64_t decoded = 0;
  for (auto _ : state) {
    LineSplitter splitter;
    for (size_t off = 0; off < stream.size(); off += kChunk) {
      absl::Status st =
          splitter.Feed(std::string_view(stream).substr(off, kChunk), [&](std::string_view line) {
            absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(line);
            if (!ev.ok()) return ev.status();
            benchmark::DoNotOptimize(ev->object.uid.data());
            ++decoded;
            return absl::OkStatus();
          });
      if (!st.ok()) state.SkipWithError(std::string(st.message()).c_str());
    }
  }
  state.SetItemsProcessed(decoded);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(stream.size()));
  state.counters["bytes_per_event"] = static_cast<double>(stream.size()) / kEvents;
}
BENCHMARK(BM_DecodeWatchStream)->Unit(benchmark::kMillisecond);

void BM_DecodeBookmark(benchmark::State& state) {
  const std::string line =
      R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"123456"}}})";
  for (auto _ : state) {
    absl::StatusOr<WatchEvent<Pod>> ev = DecodePodWatchEvent(line);
    benchmark::DoNotOptimize(ev.ok());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeBookmark);

}  // namespace
}  // namespace pnc::kube

BENCHMARK_MAIN();
