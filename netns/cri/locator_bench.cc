// Cost of one Locate: CRI against the fake server (two unary RPCs over a unix socket + JSON parse + open),
// and the cgroup scan over a synthetic /proc of ~300 processes and over this machine's real /proc. Run: bazel
// run -c opt //netns/cri:bench (as root: the netns parts need CAP_SYS_ADMIN).
#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "netns/cri/cgroup_locator.h"
#include "netns/cri/cri_api.pb.h"
#include "netns/cri/cri_locator.h"
#include "netns/cri/fake_cri_server.h"
#include "netns/routing/test_util.h"

namespace pnc::netns {
namespace {

namespace fs = std::filesystem;
constexpr char kUid[] = "8e4c2a6b-1f3d-4e5a-9b7c-0d2e4f6a8b1c";

using testing::NetnsThread;

// Parsing the sandbox poller's answer: a node's whole ListPodSandbox(READY) (330 sandboxes, each with the
// kubelet's labels and ~2 KiB of pod annotations) into the full message vs the identities the poller reads.
std::string NodeSandboxList() {
  runtime::v1::ListPodSandboxResponse full;
  for (int i = 0; i < 330; ++i) {
    runtime::v1::PodSandbox* s = full.add_items();
    s->set_id(std::string(64, 'a' + i % 26));
    s->mutable_metadata()->set_uid(absl::StrCat("8e4c2a6b-1f3d-4e5a-9b7c-", 100000000000 + i));
    s->mutable_metadata()->set_name(absl::StrCat("reviews-v2-5b667bcbf8-", i));
    s->mutable_metadata()->set_namespace_("bookinfo");
    s->set_state(runtime::v1::SANDBOX_READY);
    s->set_created_at(1700000000000000000 + i);
    auto& labels = *s->mutable_labels();
    for (const char* k :
         {"app", "version", "pod-template-hash", "io.kubernetes.pod.name", "io.kubernetes.pod.namespace",
          "io.kubernetes.pod.uid", "security.istio.io/tlsMode"})
      labels[k] = "value-of-some-length";
    auto& annotations = *s->mutable_annotations();
    annotations["sidecar.istio.io/status"] = std::string(600, 's');
    annotations["kubernetes.io/config.seen"] = "2024-05-01T10:00:00.000000000Z";
    annotations["prometheus.io/path"] = "/stats/prometheus";
    annotations["kubectl.kubernetes.io/default-container"] = "reviews";
    annotations["example.com/big"] = std::string(1400, 'b');
    s->set_runtime_handler("runc");
  }
  return full.SerializeAsString();
}

template <typename Message>
void BM_ParseNodeSandboxList(benchmark::State& state) {
  const std::string bytes = NodeSandboxList();
  for (auto _ : state) {
    Message m;
    if (!m.ParseFromString(bytes)) return state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(m.items_size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes.size()));
}
BENCHMARK_TEMPLATE(BM_ParseNodeSandboxList, runtime::v1::ListPodSandboxResponse)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_ParseNodeSandboxList, runtime::v1::ListPodSandboxIdentities)
    ->Unit(benchmark::kMicrosecond);

void BM_CriLocate(benchmark::State& state) {
  NetnsThread ns;
  if (ns.tid() == 0) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
  auto server = FakeCriServer::Start(FakeCriServer::RandomAbstractEndpoint("pnc-cri-bench"));
  if (!server.ok()) return state.SkipWithError("fake CRI server did not start");
  // A node-sized table: 110 pods, ours among them.
  for (int i = 0; i < 110; ++i) {
    FakeSandbox s;
    s.pod_uid = i == 0 ? kUid : absl::StrCat("00000000-0000-0000-0000-", 100000000000 + i);
    s.pod_name = absl::StrCat("pod-", i);
    s.pod_namespace = "bench";
    s.netns_path = ns.path();
    s.ips = {absl::StrCat("10.244.0.", i + 1)};
    (*server)->Upsert(s);
  }
  auto locator = NewCriLocator((*server)->endpoint());
  PodRef pod{kUid, "bench", "pod-0", {"10.244.0.1"}};
  if (!(*locator)->Locate(pod).ok()) return state.SkipWithError("Locate failed");
  for (auto _ : state) {
    absl::StatusOr<NetnsHandle> h = (*locator)->Locate(pod);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_CriLocate)->UseRealTime();

// A synthetic /proc with `n` processes in 110 pods' cgroups (systemd naming), ours included.
std::string MakeFakeProc(int n, const std::string& ns_target) {
  std::string root = absl::StrCat("/tmp/pnc-bench-proc-", getpid(), "-", n);
  fs::remove_all(root);
  for (int pid = 1000; pid < 1000 + n; ++pid) {
    std::string dir = absl::StrCat(root, "/", pid);
    fs::create_directories(dir);
    int pod = pid % 110;
    std::string uid = pod == 0 ? kUid : absl::StrCat("00000000-0000-0000-0000-", 100000000000 + pod);
    for (char& c : uid)
      if (c == '-') c = '_';
    std::ofstream(dir + "/cgroup") << "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                                   << uid << ".slice/cri-containerd-" << pid << ".scope\n";
    std::ofstream(dir + "/stat") << pid << " (app) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " << pid
                                 << " 1036288 1 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
    if (pod == 0 && !ns_target.empty()) {
      fs::create_directories(dir + "/ns");
      fs::create_symlink(ns_target, dir + "/ns/net");
    }
  }
  return root;
}

void BM_CgroupScanFakeProc(benchmark::State& state) {
  std::string root = MakeFakeProc(static_cast<int>(state.range(0)), "");
  size_t found = 0;
  for (auto _ : state) {
    absl::StatusOr<std::vector<int>> pids = FindPodProcesses(root, kUid);
    found = pids.ok() ? pids->size() : 0;
    benchmark::DoNotOptimize(pids);
  }
  state.counters["matches"] = static_cast<double>(found);
  fs::remove_all(root);
}
BENCHMARK(BM_CgroupScanFakeProc)->Arg(300)->UseRealTime();

void BM_CgroupLocateFakeProc(benchmark::State& state) {
  NetnsThread ns;
  if (ns.tid() == 0) return state.SkipWithError("needs root (unshare CLONE_NEWNET)");
  std::string root = MakeFakeProc(static_cast<int>(state.range(0)), ns.path());
  std::unique_ptr<Locator> locator = NewCgroupLocator(root);
  PodRef pod{kUid, "bench", "pod-0", {"127.0.0.1"}};  // lo's address: exercises the netlink IP check
  if (!locator->Locate(pod).ok()) return state.SkipWithError("Locate failed");
  for (auto _ : state) {
    absl::StatusOr<NetnsHandle> h = locator->Locate(pod);
    benchmark::DoNotOptimize(h);
  }
  fs::remove_all(root);
}
BENCHMARK(BM_CgroupLocateFakeProc)->Arg(300)->UseRealTime();

// The real /proc of this machine (procfs generates cgroup files on read): a scan for a pod that is not there.
void BM_CgroupScanRealProc(benchmark::State& state) {
  int processes = 0;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') ++processes;
    closedir(d);
  }
  for (auto _ : state) {
    absl::StatusOr<std::vector<int>> pids = FindPodProcesses("/proc", kUid);
    benchmark::DoNotOptimize(pids);
  }
  state.counters["processes"] = processes;
}
BENCHMARK(BM_CgroupScanRealProc)->UseRealTime();

}  // namespace
}  // namespace pnc::netns

BENCHMARK_MAIN();
