#include "simulator/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"
#include "netns/cri/fake_cri_server.h"
#include "netns/cri/testing/containerd.h"
#include "netns/testing/sandbox.h"
#include "simulator/apiserver/server.h"
#include "simulator/apiserver/store.h"
#include "simulator/controller_log.h"
#include "simulator/daemonset.h"
#include "simulator/forgery.h"
#include "simulator/loopback_port.h"
#include "simulator/netfilter_probe.h"
#include "simulator/netns_identity.h"
#include "simulator/node.h"
#include "simulator/priority.h"
#include "simulator/process.h"
#include "simulator/recorder.h"
#include "simulator/resource_sampler.h"

namespace pnc::sim {

using nlohmann::json;
namespace nt = pnc::netns::testing;

namespace {

constexpr char kSidecarStatus[] =
    R"({"initContainers":["pnc-waiter"],"containers":["istio-proxy"],"volumes":["istio-envoy","istio-data","podinfo"],"imagePullSecrets":null,"revision":"default"})";
// What Istio's injector writes in CNI mode (controller/testdata/istio_cni_*.json): istio-validation first,
// the proxy a native sidecar init container or a regular container.
constexpr char kCniNativeSidecarStatus[] =
    R"({"initContainers":["istio-validation","istio-proxy"],"containers":null,"volumes":["istio-envoy","istio-data","istio-podinfo"],"imagePullSecrets":null,"revision":"default"})";
constexpr char kCniSidecarContainerStatus[] =
    R"({"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["istio-envoy","istio-data","istio-podinfo"],"imagePullSecrets":null,"revision":"default"})";

// The fake CRI server of one node, fed by the node's sandboxes.
class CriListener : public SandboxListener {
 public:
  explicit CriListener(std::unique_ptr<netns::FakeCriServer> server) : server_(std::move(server)) {}
  void SandboxReady(const SandboxInfo& info) override {
    netns::FakeSandbox sb;
    sb.id = info.id;
    sb.pod_uid = info.pod_uid;
    sb.pod_name = info.pod_name;
    sb.pod_namespace = info.pod_namespace;
    sb.netns_path = info.netns_path;
    sb.ips = {info.ip};
    server_->Upsert(sb);
  }
  void SandboxRemoved(const SandboxInfo& info) override { server_->RemovePod(info.pod_uid); }
  const std::string& endpoint() const { return server_->endpoint(); }

 private:
  std::unique_ptr<netns::FakeCriServer> server_;
};

// Istio's CNI-mode injection as docs/deploy.md path b deploys it: the waiter replaces istio-validation (the
// pnc-waiter template), reads the injector's istio-podinfo volume and runs as 65532:65532; the proxy runs as
// 1337 with the injector's env; the mesh's capture settings are rendered onto the pod as annotations.
void AddIstioCniShape(const proto::PodTemplate& t, json& pod) {
  const bool native = t.mesh() == proto::PodTemplate::ISTIO_CNI_NATIVE_SIDECAR;
  json& md = pod["metadata"];
  json& spec = pod["spec"];
  md["labels"]["security.istio.io/tlsMode"] = "istio";
  md["labels"]["service.istio.io/canonical-name"] = t.name();
  md["labels"]["service.istio.io/canonical-revision"] = "latest";
  md["annotations"] = {
      {"istio.io/rev", "default"},
      {"kubectl.kubernetes.io/default-container", "app"},
      {"kubectl.kubernetes.io/default-logs-container", "app"},
      {"prometheus.io/path", "/stats/prometheus"},
      {"prometheus.io/port", "15020"},
      {"prometheus.io/scrape", "true"},
      {"sidecar.istio.io/interceptionMode", "REDIRECT"},
      {"sidecar.istio.io/status", native ? kCniNativeSidecarStatus : kCniSidecarContainerStatus},
      {"traffic.sidecar.istio.io/excludeInboundPorts", "15020"},
      {"traffic.sidecar.istio.io/includeInboundPorts", "*"},
      {"traffic.sidecar.istio.io/includeOutboundIPRanges", "*"}};
  json drop_all = {{"allowPrivilegeEscalation", false},
                   {"capabilities", {{"drop", {"ALL"}}}},
                   {"privileged", false},
                   {"readOnlyRootFilesystem", true},
                   {"runAsNonRoot", true}};
  json waiter_sc = drop_all;
  waiter_sc["runAsUser"] = 65532;
  waiter_sc["runAsGroup"] = 65532;
  waiter_sc["seccompProfile"] = {{"type", "RuntimeDefault"}};
  json validation = {
      {"name", "istio-validation"},
      {"image", "quay.io/istio-pod-network-controller/waiter:0.1.0"},
      {"command", {"/usr/local/bin/waiter"}},
      {"args", {"--file=/etc/istio/pod/annotations", "--timeout=300s"}},
      {"securityContext", waiter_sc},
      {"volumeMounts", {{{"mountPath", "/etc/istio/pod"}, {"name", "istio-podinfo"}, {"readOnly", true}}}}};
  json proxy_sc = drop_all;
  proxy_sc["runAsUser"] = 1337;
  proxy_sc["runAsGroup"] = 1337;
  json env = json::array();
  env.push_back({{"name", "PILOT_CERT_PROVIDER"}, {"value", "istiod"}});
  env.push_back({{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
  env.push_back(
      {{"name", "POD_NAMESPACE"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.namespace"}}}}}});
  env.push_back({{"name", "ISTIO_META_INTERCEPTION_MODE"}, {"value", "REDIRECT"}});
  env.push_back({{"name", "ISTIO_META_DNS_CAPTURE"}, {"value", "true"}});
  json proxy = {{"name", "istio-proxy"},
                {"image", "docker.io/istio/proxyv2:1.24.0"},
                {"args", {"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"}},
                {"ports", {{{"containerPort", 15090}, {"name", "http-envoy-prom"}, {"protocol", "TCP"}}}},
                {"env", env},
                {"securityContext", proxy_sc},
                {"volumeMounts",
                 {{{"mountPath", "/etc/istio/proxy"}, {"name", "istio-envoy"}},
                  {{"mountPath", "/var/lib/istio/data"}, {"name", "istio-data"}},
                  {{"mountPath", "/etc/istio/pod"}, {"name", "istio-podinfo"}}}}};
  spec["initContainers"] = {validation};
  if (native) {
    proxy["restartPolicy"] = "Always";
    spec["initContainers"].push_back(proxy);
  } else {
    spec["containers"].push_back(proxy);
  }
  spec["volumes"] = {
      {{"name", "istio-envoy"}, {"emptyDir", {{"medium", "Memory"}}}},
      {{"name", "istio-data"}, {"emptyDir", json::object()}},
      {{"name", "istio-podinfo"},
       {"downwardAPI",
        {{"items",
          {{{"path", "labels"}, {"fieldRef", {{"fieldPath", "metadata.labels"}}}},
           {{"path", "annotations"}, {"fieldRef", {{"fieldPath", "metadata.annotations"}}}}}}}}}};
}

}  // namespace

json PodFromTemplate(const proto::PodTemplate& t, const std::string& ns, const std::string& name,
                     const std::string& node) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"app", t.name()}}}}},
              {"spec",
               {{"containers",
                 {{{"name", "app"},
                   {"image", "registry.example/app:1"},
                   {"ports", {{{"containerPort", 8080}, {"protocol", "TCP"}}}},
                   {"securityContext", {{"runAsUser", 1000}, {"runAsNonRoot", true}}}}}}}}};
  json& md = pod["metadata"];
  json& spec = pod["spec"];
  for (const auto& [k, v] : t.labels()) md["labels"][k] = v;
  if (t.mesh() == proto::PodTemplate::ISTIO_CNI_NATIVE_SIDECAR ||
      t.mesh() == proto::PodTemplate::ISTIO_CNI_SIDECAR_CONTAINER) {
    AddIstioCniShape(t, pod);
  } else if (t.mesh() != proto::PodTemplate::NONE) {
    spec["containers"].push_back({{"name", "istio-proxy"},
                                  {"image", "docker.io/istio/proxyv2:1.22.0"},
                                  {"securityContext", {{"runAsUser", 1337}, {"runAsGroup", 1337}}}});
    spec["initContainers"] = {{{"name", kWaiterContainer},
                               {"image", "registry.example/pnc-waiter:1"},
                               {"securityContext", {{"runAsUser", 1000}, {"runAsNonRoot", true}}},
                               {"volumeMounts", {{{"name", "podinfo"}, {"mountPath", "/etc/podinfo"}}}}}};
    spec["volumes"] = {
        {{"name", "podinfo"},
         {"downwardAPI",
          {{"items",
            {{{"path", "pod_annotations"}, {"fieldRef", {{"fieldPath", "metadata.annotations"}}}}}}}}}};
  }
  if (t.mesh() == proto::PodTemplate::ISTIO_INJECTED) {
    md["annotations"]["sidecar.istio.io/status"] = kSidecarStatus;
  } else if (t.mesh() == proto::PodTemplate::LEGACY_2018) {
    md["annotations"]["istio-pod-network-controller/initialize"] = "true";
  }
  for (const auto& [k, v] : t.annotations()) md["annotations"][k] = v;
  if (t.host_network()) spec["hostNetwork"] = true;
  if (!node.empty()) spec["nodeName"] = node;
  return pod;
}

namespace {

double Ms(absl::Time from, absl::Time to) {
  if (from == absl::InfinitePast() || to == absl::InfinitePast()) return -1;
  return absl::ToDoubleMilliseconds(to - from);
}

std::string FmtMs(double ms) { return ms < 0 ? "-" : absl::StrFormat("%.0f", ms); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(std::ceil(p / 100.0 * v.size())) - 1;
  return v[std::min(idx, v.size() - 1)];
}

// The first sandbox of the pod (a recreated one included) whose waiter exited 0 before the traffic was
// redirected.
std::string ReleasedTooEarly(const PodRecord& r) {
  for (size_t i = 0; i < r.sandboxes.size(); ++i) {
    const SandboxRecord& sb = r.sandboxes[i];
    if (sb.waiter_exit == 0 && !sb.redirected_at_release) {
      return absl::StrCat("the waiter let sandbox #", i + 1, " (cookie ", sb.cookie,
                          ") go before its traffic was redirected: ", sb.release_summary);
    }
  }
  return "";
}

json CheckJson(const CheckResult& c) {
  return {{"verdict", CheckVerdictName(c.verdict)}, {"detail", c.detail}};
}

json ReleaseCheckJson(const ReleaseCheck& c) {
  return {{"passed", c.passed()},
          {"outbound", CheckJson(c.outbound)},
          {"inbound", CheckJson(c.inbound)},
          {"bypass", CheckJson(c.bypass)}};
}

json SandboxesJson(const std::vector<SandboxRecord>& sandboxes) {
  json out = json::array();
  for (const auto& s : sandboxes) {
    out.push_back({{"inode", s.inode},
                   {"cookie", s.cookie},
                   {"ip", s.ip},
                   {"waiter_exit", s.waiter_exit ? json(*s.waiter_exit) : json()},
                   {"redirected_at_release", s.redirected_at_release},
                   {"release", s.release_summary}});
  }
  return out;
}

json ForgeryJson(const ForgeryRecord& f, const PodRecord& r) {
  return {{"kind", f.kind},
          {"annotations", f.annotations},
          {"throwaway_inode", f.throwaway_inode},
          {"throwaway_cookie", f.throwaway_cookie},
          {"spray", f.spray},
          {"guess", GuessOutcome(f, r)}};
}

// Controller RSS / fd / thread figures of one controller process (one start).
struct ControllerResources {
  std::string node;
  int start = 0;  // 1 for the first start of this node's controller
  ResourceSeries series;
};

struct Created {
  std::string uid, ns, name, template_name;
};

class Run {
 public:
  Run(const proto::Scenario& s, const RunnerOptions& o) : scenario_(s), options_(o) {}

  absl::StatusOr<Report> Execute();

 private:
  absl::Status Setup();
  absl::Status StartController(size_t node_index);
  // Polls the controller's /readyz (its caches are synced, so pods created from now on are seen by its
  // watch).
  absl::Status WaitControllerReady(size_t node_index, absl::Duration timeout);
  void StopSampler(size_t node_index);
  void StopController(size_t node_index);
  absl::Status Step(const proto::Step& step);
  absl::Status CreatePod(const std::string& template_name, const std::string& ns, const std::string& name,
                         const std::string& node);
  // A forging tenant patches the pod's netns annotation with each guess of `forgery.spray`.
  void Spray(const std::string& ns, const std::string& name, const ForgeryRecord& forgery,
             absl::Duration every);
  absl::Status RecreateSandbox(const proto::RecreateSandbox& step);
  absl::Status Churn(const proto::Churn& step);
  absl::Status Helm(const proto::Helm& step);
  bool AllSettled();
  Report BuildReport();
  void Teardown();
  void Log(const std::string& msg) {
    if (options_.verbose)
      std::fprintf(stderr, "[sim %s] %s\n",
                   absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()).c_str(), msg.c_str());
  }

  const proto::Scenario& scenario_;
  RunnerOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ApiServer> server_;
  nt::Sandbox* sandbox_ = nullptr;  // null when every node is lightweight
  int throwaways_ = 0;
  Recorder recorder_;
  std::vector<std::unique_ptr<CriListener>> cri_;
  // Runtime containerd: one private containerd per such node (null for the others); outlives nodes_.
  std::vector<std::unique_ptr<netns::cri_testing::Containerd>> containerd_;
  std::vector<std::unique_ptr<FakeNode>> nodes_;
  std::vector<std::optional<ChildProcess>> controllers_;
  std::vector<int> controller_starts_;
  std::vector<int> metrics_ports_;
  std::vector<std::unique_ptr<ResourceSampler>> samplers_;
  std::vector<ControllerResources> resources_;
  std::vector<bool> wants_controller_;
  std::string kubeconfig_path_;
  std::vector<Created> created_;
  std::map<std::string, std::string> template_of_;  // ns/name -> template
  absl::Time start_;
  absl::Time end_;
  std::vector<std::string> step_log_;
  // Churned pods (uid) deleted by a churn step, and whether each had reached its expected outcome by then.
  std::map<std::string, bool> churned_;
  std::unique_ptr<FakeDaemonSets> daemonsets_;
  std::vector<std::string> helm_failures_;  // checks after helm steps that did not hold
};

// Every waiter holds an inotify instance until it exits, charged to its uid (all pods' waiters run as uid
// 1000 here); closing one takes an RCU grace period, so exited waiters still count for a while. Linux's
// default of 128 instances per user is too low for a dense node (330 pods: waiters failed with EMFILE); nodes
// are commonly set to 8192. Raised when we may (root in the initial namespaces), never lowered.
void RaiseInotifyInstanceLimit(int at_least, const std::function<void(const std::string&)>& log) {
  const char* kPath = "/proc/sys/fs/inotify/max_user_instances";
  int current = 0;
  {
    std::ifstream f(kPath);
    f >> current;
  }
  if (current <= 0 || current >= at_least) return;
  std::ofstream f(kPath);
  f << at_least;
  f.close();
  log(f.good() ? absl::StrCat("fs.inotify.max_user_instances raised from ", current, " to ", at_least)
               : absl::StrCat("fs.inotify.max_user_instances is ", current,
                              " and cannot be raised: waiters of a ", "dense node may fail with EMFILE"));
}

absl::Status Run::Setup() {
  RaiseInotifyInstanceLimit(8192,
                            [](const std::string& m) { std::fprintf(stderr, "simulator: %s\n", m.c_str()); });
  ::mkdir(options_.work_dir.c_str(), 0755);
  ::chmod(options_.work_dir.c_str(), 0755);
  bool need_netns = false;
  for (const auto& n : scenario_.nodes())
    need_netns |= !n.lightweight() && n.runtime() != proto::Node::CONTAINERD;
  nt::Sandbox* sandbox = nullptr;
  if (need_netns) {
    auto sb = nt::Sandbox::Get();
    if (!sb.ok())
      return absl::FailedPreconditionError(
          absl::StrCat("network namespace sandbox: ", sb.status().ToString()));
    sandbox = *sb;
  }
  sandbox_ = sandbox;
  if (!options_.waiter_binary.empty()) {
    // The waiter runs as a non-root uid: give it a copy it can execute (Bazel's output tree is root-only).
    std::string bin_dir = options_.work_dir + "/bin";
    ::mkdir(bin_dir.c_str(), 0755);
    std::string copy = bin_dir + "/waiter";
    std::error_code ec;
    std::filesystem::copy_file(options_.waiter_binary, copy,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("copy waiter to ", copy, ": ", ec.message()));
    ::chmod(copy.c_str(), 0755);
    options_.waiter_binary = copy;
  }
  Store::Options so;
  so.seed = scenario_.seed() == 0 ? 1 : scenario_.seed();
  so.graceful_pod_deletion = true;  // the fake kubelets complete deletions, as on a real cluster
  store_ = std::make_unique<Store>(so);
  ServerOptions sopt;
  sopt.tls = options_.tls;
  if (options_.tls) sopt.token = absl::StrCat("pnc-sim-", so.seed);
  sopt.bookmark_interval = absl::Seconds(2);
  auto server = ApiServer::Start(store_.get(), sopt);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  kubeconfig_path_ = options_.work_dir + "/kubeconfig";
  {
    std::ofstream f(kubeconfig_path_, std::ios::trunc);
    f << server_->Kubeconfig();
    if (!f.good()) return absl::InternalError("cannot write " + kubeconfig_path_);
  }
  Log(absl::StrCat("API server at ", server_->url(), ", kubeconfig ", kubeconfig_path_));
  for (const auto& ns : scenario_.namespaces()) {
    json obj = {{"metadata", {{"name", ns.name()}}}};
    for (const auto& [k, v] : ns.labels()) obj["metadata"]["labels"][k] = v;
    for (const auto& [k, v] : ns.annotations()) obj["metadata"]["annotations"][k] = v;
    auto r = store_->Create(Resource::kNamespaces, "", obj);
    if (!r.ok()) return r.status();
  }
  for (size_t i = 0; i < static_cast<size_t>(scenario_.nodes_size()); ++i) {
    const auto& n = scenario_.nodes(i);
    SandboxListener* listener = nullptr;
    containerd_.push_back(nullptr);
    if (n.runtime() == proto::Node::CONTAINERD) {
      if (options_.pause_binary.empty() || options_.waiter_image_archive.empty() ||
          options_.waiter_image.empty())
        return absl::InvalidArgumentError(absl::StrCat(
            "node ", n.name(),
            " has runtime CONTAINERD: pass --pause_binary, --waiter_image_archive and --waiter_image"));
      const absl::Time t0 = absl::Now();
      absl::StatusOr<std::unique_ptr<netns::cri_testing::Containerd>> ctrd =
          absl::UnknownError("not started");
      // At nice 0 like any node daemon: containerd, its shims and runc inherit it (priority.h).
      RunAtNice(
          0, [&] { ctrd = netns::cri_testing::Containerd::Start({.pause_binary = options_.pause_binary}); });
      if (!ctrd.ok())
        return absl::FailedPreconditionError(
            absl::StrCat("node ", n.name(), ": containerd: ", ctrd.status().ToString()));
      containerd_.back() = *std::move(ctrd);
      if (auto s = containerd_.back()->ImportImage(options_.waiter_image_archive, options_.waiter_image);
          !s.ok())
        return s;
      Log(absl::StrCat("node ", n.name(), ": containerd at ", containerd_.back()->endpoint(), " (pid ",
                       containerd_.back()->pid(), "), waiter image imported, ",
                       absl::FormatDuration(absl::Now() - t0)));
      cri_.push_back(nullptr);
    } else if (!n.lightweight()) {
      auto cri = netns::FakeCriServer::Start(absl::StrCat("unix-abstract:pnc-sim-", ::getpid(), "-", i));
      if (!cri.ok()) return cri.status();
      cri_.push_back(std::make_unique<CriListener>(*std::move(cri)));
      listener = cri_.back().get();
    } else {
      cri_.push_back(nullptr);
    }
    NodeOptions no;
    no.name = n.name();
    no.lightweight = n.lightweight();
    no.state_dir = absl::StrCat(options_.work_dir, "/", n.name());
    no.waiter_binary = options_.waiter_binary;
    no.downward_api_delay = absl::Milliseconds(n.downward_api_delay_ms());
    no.sandbox_pool = n.sandbox_pool();
    no.sandboxes_per_second = n.sandboxes_per_second();
    no.kubelet_nice = static_cast<int>(std::min<uint32_t>(n.kubelet_nice(), 19));
    no.waiter_timeout = absl::Milliseconds(std::max<uint32_t>(scenario_.expect().settle_timeout_ms(), 10000));
    no.containerd = containerd_.back().get();
    no.waiter_image = options_.waiter_image;
    nodes_.push_back(std::make_unique<FakeNode>(store_.get(), &recorder_, no, sandbox, listener));
    if (auto s = nodes_.back()->Start(); !s.ok()) return s;
  }
  if (!options_.controller_binary.empty()) {
    DaemonSetOptions dso;
    dso.images.binaries["controller"] = options_.controller_binary;
    dso.images.kubeconfig = kubeconfig_path_;
    dso.work_dir = options_.work_dir;
    std::vector<DaemonSetNode> ds_nodes;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (cri_[i]) ds_nodes.push_back({nodes_[i]->name(), cri_[i]->endpoint()});
    }
    daemonsets_ = std::make_unique<FakeDaemonSets>(store_.get(), std::move(dso), std::move(ds_nodes));
    if (auto s = daemonsets_->Start(); !s.ok()) return s;
  }
  controllers_.resize(nodes_.size());
  wants_controller_.resize(nodes_.size());
  controller_starts_.resize(nodes_.size());
  metrics_ports_.resize(nodes_.size());
  samplers_.resize(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const auto& n = scenario_.nodes(i);
    bool want = n.has_controller() ? n.controller() : !n.lightweight();
    wants_controller_[i] = want;
    if (!want) continue;
    if (options_.controller_binary.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", n.name(), " needs a controller: pass --controller_binary"));
    }
    if (auto s = StartController(i); !s.ok()) return s;
  }
  // The timeline starts once every controller has listed and watches: a pod created while a controller was
  // still starting would time its start-up, not its reaction.
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!controllers_[i]) continue;
    if (auto s = WaitControllerReady(i, absl::Seconds(20)); !s.ok()) return s;
    samplers_[i] = std::make_unique<ResourceSampler>(controllers_[i]->pid(), absl::Milliseconds(100));
  }
  return absl::OkStatus();
}

absl::Status Run::WaitControllerReady(size_t i, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (HttpGetOk(metrics_ports_[i], "/readyz")) return absl::OkStatus();
    if (controllers_[i]->WaitFor(absl::ZeroDuration()))
      return absl::InternalError(
          absl::StrCat("controller for ", scenario_.nodes(i).name(), " exited at start"));
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat("controller for ", scenario_.nodes(i).name(),
                                                  " not ready within ", absl::FormatDuration(timeout)));
}

void Run::StopSampler(size_t i) {
  if (!samplers_[i]) return;
  if (controllers_[i]) {  // the controller's own histograms (event -> applied -> marked), kept with the logs
    std::ofstream m(absl::StrCat(options_.work_dir, "/controller-", scenario_.nodes(i).name(), "-",
                                 controller_starts_[i], ".metrics"));
    m << HttpGet(metrics_ports_[i], "/metrics");
  }
  samplers_[i]->Stop();
  resources_.push_back({scenario_.nodes(i).name(), controller_starts_[i], samplers_[i]->Series()});
  samplers_[i].reset();
}

absl::Status Run::StartController(size_t i) {
  const auto& n = scenario_.nodes(i);
  SpawnOptions so;
  so.argv = {options_.controller_binary, absl::StrCat("--kubeconfig=", kubeconfig_path_),
             absl::StrCat("--node_name=", n.name()), absl::StrCat("--backend=", options_.backend)};
  auto port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  metrics_ports_[i] = *port;
  so.argv.push_back(absl::StrCat("--metrics_address=127.0.0.1:", *port));
  if (cri_[i]) {
    so.argv.push_back("--locator=cri");
    so.argv.push_back(absl::StrCat("--cri_endpoint=", cri_[i]->endpoint()));
  } else if (containerd_[i]) {
    so.argv.push_back("--locator=cri");
    so.argv.push_back(absl::StrCat("--cri_endpoint=", containerd_[i]->endpoint()));
    // Where this containerd bind-mounts sandbox network namespaces (netns_mounts_under_state_dir: the CRI
    // plugin's state dir, not /var/run/netns), created beforehand as the chart's hostPath
    // (DirectoryOrCreate) does, so that the controller's watch on it starts with the first sandbox.
    std::string netns_dir = absl::StrCat(containerd_[i]->dir(), "/state/io.containerd.grpc.v1.cri/netns");
    std::error_code ec;
    std::filesystem::create_directories(netns_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", netns_dir, ": ", ec.message()));
    so.argv.push_back(absl::StrCat("--netns_dir=", netns_dir));
  }
  for (const auto& a : options_.controller_extra_args) so.argv.push_back(a);
  so.log_path = absl::StrCat(options_.work_dir, "/controller-", n.name(), ".log");
  so.nice = 0;  // the system under test runs like any process on a node (priority.h)
  // This process's environment plus what the chart's DaemonSet sets for the controller.
  so.env.emplace();
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "GNUTLS_NO_IMPLICIT_INIT=")) so.env->push_back(*e);
  }
  so.env->push_back("GNUTLS_NO_IMPLICIT_INIT=1");
  auto child = ChildProcess::Spawn(so);
  if (!child.ok()) return child.status();
  controllers_[i].emplace(*std::move(child));
  ++controller_starts_[i];
  if (controller_starts_[i] > 1)  // the first start is sampled once ready (Setup)
    samplers_[i] = std::make_unique<ResourceSampler>(controllers_[i]->pid(), absl::Milliseconds(100));
  Log(absl::StrCat("controller for ", n.name(), " started (pid ", controllers_[i]->pid(),
                   "): ", absl::StrJoin(so.argv, " ")));
  return absl::OkStatus();
}

void Run::StopController(size_t i) {
  if (!controllers_[i]) return;
  StopSampler(i);
  controllers_[i]->Signal(SIGTERM);
  if (!controllers_[i]->WaitFor(absl::Seconds(10))) {
    controllers_[i]->Signal(SIGKILL);
    controllers_[i]->Wait();
  }
  Log(absl::StrCat("controller for ", scenario_.nodes(i).name(), " stopped"));
  controllers_[i].reset();
}

absl::Status Run::CreatePod(const std::string& template_name, const std::string& ns, const std::string& name,
                            const std::string& node) {
  const proto::PodTemplate* t = nullptr;
  for (const auto& tt : scenario_.templates()) {
    if (tt.name() == template_name) t = &tt;
  }
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown template ", template_name));
  json pod = PodFromTemplate(*t, ns, name, node);
  std::optional<ForgeryRecord> forgery;
  if (t->has_forge()) {
    auto f = PlanForgery(t->forge(), sandbox_, &throwaways_);
    if (!f.ok()) return f.status();
    for (const auto& [k, v] : f->annotations) pod["metadata"]["annotations"][k] = v;
    forgery = *std::move(f);
  }
  auto created = store_->Create(Resource::kPods, ns, pod);
  if (!created.ok()) return created.status();
  std::string uid = FieldValue(**created, "metadata.uid");
  absl::Time now = absl::Now();
  recorder_.Update(uid, [&](PodRecord& r) {
    r.created = now;
    r.namespace_name = ns;
    r.name = name;
    r.template_name = template_name;
    r.forgery = forgery;
  });
  created_.push_back({uid, ns, name, template_name});
  template_of_[ns + "/" + name] = template_name;
  if (forgery && !forgery->spray.empty()) {
    Spray(ns, name, *forgery, absl::Milliseconds(std::max<uint32_t>(t->forge().spray_interval_ms(), 1)));
  }
  return absl::OkStatus();
}

void Run::Spray(const std::string& ns, const std::string& name, const ForgeryRecord& forgery,
                absl::Duration every) {
  absl::SleepFor(every);  // the node creates the sandbox meanwhile
  for (const std::string& value : forgery.spray) {
    // An editor's patch on the pod itself (not pods/status), as `kubectl annotate --overwrite` does.
    json patch = {{"metadata", {{"annotations", {{"pod-network-controller.istio.io/netns", value}}}}}};
    auto r = store_->Patch(Resource::kPods, ns, name, PatchType::kMerge, patch, Subresource::kNone);
    if (!r.ok()) Log(absl::StrCat("spray on ", ns, "/", name, ": ", r.status().ToString()));
    absl::SleepFor(every);
  }
}

absl::Status Run::RecreateSandbox(const proto::RecreateSandbox& rs) {
  // The node may not have picked the pod up yet right after its creation.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::Status last = absl::NotFoundError("no node");
  while (true) {
    for (auto& n : nodes_) {
      last = n->RecreateSandbox(rs.namespace_(), rs.name(), absl::Milliseconds(rs.down_ms()));
      if (last.ok() || !absl::IsNotFound(last)) return last;
    }
    if (absl::Now() >= deadline) return last;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::Status Run::Churn(const proto::Churn& c) {
  const uint32_t concurrent = c.concurrent() == 0 ? 10 : c.concurrent();
  const absl::Duration timeout =
      absl::Milliseconds(c.settle_timeout_ms() == 0 ? 30000 : c.settle_timeout_ms());
  const std::string prefix = c.name_prefix().empty() ? c.template_() : c.name_prefix();
  std::deque<Created> live;
  auto retire = [&]() -> absl::Status {
    Created oldest = live.front();
    live.pop_front();
    absl::Time deadline = absl::Now() + timeout;
    std::optional<PodRecord> r;
    while (true) {
      r = recorder_.Get(oldest.uid);
      if ((r && r->settled) || absl::Now() >= deadline) break;
      absl::SleepFor(absl::Milliseconds(2));
    }
    bool reached = r && r->settled && r->phase == "Running" && r->intercepted && r->waiter_exit == 0;
    churned_[oldest.uid] = reached;
    auto d = store_->Delete(Resource::kPods, oldest.ns, oldest.name, {});
    if (!d.ok()) return d.status();
    return absl::OkStatus();
  };
  for (uint32_t k = 0; k < c.cycles(); ++k) {
    if (live.size() >= concurrent) {
      if (auto s = retire(); !s.ok()) return s;
    }
    std::string name = absl::StrCat(prefix, "-", k);
    if (auto s = CreatePod(c.template_(), c.namespace_(), name, ""); !s.ok()) return s;
    live.push_back(created_.back());
  }
  int reached = 0;
  for (const auto& [uid, ok] : churned_) reached += ok;
  step_log_.push_back(absl::StrCat("churn ", c.cycles(), " x ", c.template_(), " (", concurrent,
                                   " live): deleted ", churned_.size(), ", of which ", reached,
                                   " had been intercepted"));
  return absl::OkStatus();
}

absl::Status Run::Helm(const proto::Helm& h) {
  if (options_.helm_binary.empty() || options_.chart_dir.empty())
    return absl::FailedPreconditionError("helm steps need --helm_binary and --chart");
  const std::string release = h.release().empty() ? "pnc" : h.release();
  const std::string ns = h.namespace_().empty() ? "istio-system" : h.namespace_();
  const std::string action = proto::Helm::Action_Name(h.action());
  SpawnOptions so;
  so.argv = {options_.helm_binary};
  switch (h.action()) {
    case proto::Helm::INSTALL:
      so.argv.insert(so.argv.end(), {"install", release, options_.chart_dir, "--create-namespace"});
      break;
    case proto::Helm::UPGRADE:
      so.argv.insert(so.argv.end(), {"upgrade", release, options_.chart_dir});
      break;
    default:
      so.argv.insert(so.argv.end(), {"uninstall", release});
      break;
  }
  so.argv.insert(so.argv.end(), {"-n", ns, "--wait", "--timeout=60s"});
  for (const auto& kv : h.set()) so.argv.insert(so.argv.end(), {"--set", kv});
  std::string home = options_.work_dir + "/helm-home";
  ::mkdir(home.c_str(), 0755);
  so.env =
      std::vector<std::string>{absl::StrCat("KUBECONFIG=", kubeconfig_path_), absl::StrCat("HOME=", home),
                               absl::StrCat("PATH=", std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin")};
  so.log_path = options_.work_dir + "/helm.log";
  so.nice = 0;
  {
    std::ofstream log(so.log_path, std::ios::app);
    log << "$ " << absl::StrJoin(so.argv, " ") << "\n";
  }
  auto child = ChildProcess::Spawn(so);
  if (!child.ok()) return child.status();
  std::optional<int> code = child->WaitFor(absl::Seconds(120));
  if (!code) {
    child->Signal(SIGKILL);
    code = child->Wait();
  }
  if (*code != 0) {
    return absl::InternalError(absl::StrCat("helm ", absl::AsciiStrToLower(action), " exited with ", *code,
                                            " (see ", so.log_path, ")"));
  }
  std::string summary =
      absl::StrCat("helm ", absl::AsciiStrToLower(action), " ", release, " -n ", ns,
                   h.set().empty() ? "" : absl::StrCat(" --set ", absl::StrJoin(h.set(), ",")));
  if (h.action() == proto::Helm::UNINSTALL) {
    // The DaemonSet is gone: its controllers must stop; pods they initialized must keep their redirection.
    absl::Time deadline = absl::Now() + absl::Seconds(40);
    while (daemonsets_ && daemonsets_->Running() > 0 && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(20));
    int running = daemonsets_ ? daemonsets_->Running() : 0;
    if (running > 0)
      helm_failures_.push_back(absl::StrCat("after uninstall ", running, " controller(s) still run"));
    int kept = 0, checked = 0;
    std::map<std::string, absl::StatusOr<std::string>> tables;
    for (auto& n : nodes_) tables.merge(n->LivePodTables());
    for (const auto& c : created_) {
      auto r = recorder_.Get(c.uid);
      if (!r || r->deleted || !r->intercepted) continue;
      ++checked;
      auto t = tables.find(c.uid);
      if (t != tables.end() && t->second.ok() && !t->second->empty()) {
        ++kept;
      } else {
        helm_failures_.push_back(absl::StrCat(c.ns, "/", c.name, " lost its rules after uninstall: ",
                                              t == tables.end() ? "no sandbox"
                                              : t->second.ok()  ? "no netfilter table"
                                                                : t->second.status().ToString()));
      }
    }
    absl::StrAppend(&summary, ": controllers left ", running, "; initialized pods that kept their rules ",
                    kept, "/", checked);
  } else if (daemonsets_) {
    absl::StrAppend(&summary, ": ", daemonsets_->Running(), " controller(s) run from the DaemonSet");
  }
  step_log_.push_back(summary);
  return absl::OkStatus();
}

absl::Status Run::Step(const proto::Step& step) {
  if (step.after_ms() > 0) absl::SleepFor(absl::Milliseconds(step.after_ms()));
  switch (step.action_case()) {
    case proto::Step::kCreate: {
      const auto& c = step.create();
      uint32_t count = c.count() == 0 ? 1 : c.count();
      std::string prefix = c.name_prefix().empty() ? c.template_() : c.name_prefix();
      absl::Time t0 = absl::Now();
      for (uint32_t k = 0; k < count; ++k) {
        if (c.rate_per_second() > 0) {
          absl::Time due = t0 + absl::Seconds(k / c.rate_per_second());
          if (absl::Now() < due) absl::SleepFor(due - absl::Now());
        }
        std::string name =
            count == 1 && c.name_prefix().empty() ? prefix : absl::StrCat(prefix, "-", c.start_index() + k);
        if (auto s = CreatePod(c.template_(), c.namespace_(), name, c.node()); !s.ok()) return s;
      }
      step_log_.push_back(absl::StrCat("create ", count, " x ", c.template_(), " in ", c.namespace_()));
      break;
    }
    case proto::Step::kDelete: {
      const auto& d = step.delete_();
      auto r = store_->Delete(Resource::kPods, d.namespace_(), d.name(), {});
      if (!r.ok()) return r.status();
      std::string old_uid = FieldValue(**r, "metadata.uid");
      step_log_.push_back(
          absl::StrCat("delete ", d.namespace_(), "/", d.name(), d.recreate() ? " and recreate" : ""));
      if (d.recreate()) {
        // Like a StatefulSet: the same name can only come back once the terminating pod is gone.
        absl::Time deadline = absl::Now() + absl::Seconds(30);
        while (absl::Now() < deadline) {
          auto cur = store_->Get(Resource::kPods, d.namespace_(), d.name());
          if (!cur.ok() || FieldValue(**cur, "metadata.uid") != old_uid) break;
          absl::SleepFor(absl::Milliseconds(5));
        }
        std::string t = d.template_().empty() ? template_of_[d.namespace_() + "/" + d.name()] : d.template_();
        if (auto s = CreatePod(t, d.namespace_(), d.name(), ""); !s.ok()) return s;
      }
      break;
    }
    case proto::Step::kRestartController: {
      const auto& rc = step.restart_controller();
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (!rc.node().empty() && rc.node() != scenario_.nodes(i).name()) continue;
        if (!controllers_[i]) continue;
        StopController(i);
        if (rc.down_ms() > 0) absl::SleepFor(absl::Milliseconds(rc.down_ms()));
        if (auto s = StartController(i); !s.ok()) return s;
      }
      step_log_.push_back(absl::StrCat("restart controller ", rc.node().empty() ? "(all)" : rc.node()));
      break;
    }
    case proto::Step::kStopController:
    case proto::Step::kStartController: {
      bool stop = step.action_case() == proto::Step::kStopController;
      const std::string& node = stop ? step.stop_controller().node() : step.start_controller().node();
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (!node.empty() && node != scenario_.nodes(i).name()) continue;
        if (!wants_controller_[i]) continue;
        if (stop) {
          StopController(i);
        } else if (!controllers_[i]) {
          if (auto s = StartController(i); !s.ok()) return s;
        }
      }
      step_log_.push_back(
          absl::StrCat(stop ? "stop" : "start", " controller ", node.empty() ? "(all)" : node));
      break;
    }
    case proto::Step::kFault: {
      const auto& f = step.fault();
      switch (f.kind_case()) {
        case proto::Fault::kDropWatches:
          server_->DropAllWatches();
          step_log_.push_back("fault: drop all watches");
          break;
        case proto::Fault::kCompact:
          store_->Compact();
          step_log_.push_back("fault: compact history (resumes get 410)");
          break;
        case proto::Fault::kFailRequests429:
          server_->FailNextRequests(f.fail_requests_429(), 429);
          step_log_.push_back(absl::StrCat("fault: next ", f.fail_requests_429(), " requests -> 429"));
          break;
        case proto::Fault::kFailRequests500:
          server_->FailNextRequests(f.fail_requests_500(), 500);
          step_log_.push_back(absl::StrCat("fault: next ", f.fail_requests_500(), " requests -> 500"));
          break;
        case proto::Fault::kDelayEventsMs:
          server_->SetEventDelay(absl::Milliseconds(f.delay_events_ms()));
          step_log_.push_back(absl::StrCat("fault: delay watch events by ", f.delay_events_ms(), " ms"));
          break;
        default:
          return absl::InvalidArgumentError("empty fault");
      }
      break;
    }
    case proto::Step::kRecreateSandbox: {
      const auto& rs = step.recreate_sandbox();
      if (auto s = RecreateSandbox(rs); !s.ok()) return s;
      step_log_.push_back(absl::StrCat("recreate sandbox of ", rs.namespace_(), "/", rs.name(), " (down ",
                                       rs.down_ms(), " ms)"));
      break;
    }
    case proto::Step::kChurn:
      if (auto s = Churn(step.churn()); !s.ok()) return s;
      break;
    case proto::Step::kHelm:
      if (auto s = Helm(step.helm()); !s.ok()) return s;
      break;
    case proto::Step::kWaitSettled: {
      absl::Time deadline = absl::Now() + absl::Milliseconds(step.wait_settled().timeout_ms());
      while (!AllSettled() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
      step_log_.push_back(absl::StrCat("wait settled: ", AllSettled() ? "yes" : "TIMED OUT"));
      break;
    }
    default:
      return absl::InvalidArgumentError("empty step");
  }
  Log(step_log_.back());
  return absl::OkStatus();
}

bool Run::AllSettled() {
  for (const auto& c : created_) {
    auto r = recorder_.Get(c.uid);
    if (!r) return false;
    if (r->deleted) continue;
    if (!r->settled) return false;
  }
  return true;
}

Report Run::BuildReport() {
  Report report;
  std::map<std::string, const proto::PodTemplate*> templates;
  for (const auto& t : scenario_.templates()) templates[t.name()] = &t;
  absl::Duration limit = absl::Milliseconds(
      scenario_.expect().settle_timeout_ms() == 0 ? 60000 : scenario_.expect().settle_timeout_ms());
  std::vector<double> to_intercept, to_annotated, to_waiter, sandbox_to_annotated;
  int marked_before_kubelet = 0;
  // sandbox -> annotated split three ways per pod, where the controller's log says: the marking reconcile's
  // wait for the locator (the runtime's answers), the rest of that reconcile (the controller's own work:
  // inspect, apply, verify, the status patch) and everything before it (noticing the sandbox, the queue).
  std::map<std::string, MarkingReconcile> marking;
  for (const auto& n : scenario_.nodes()) {
    std::map<std::string, MarkingReconcile> m =
        MarkingReconcilesByPod(absl::StrCat(options_.work_dir, "/controller-", n.name(), ".log"));
    marking.insert(m.begin(), m.end());
  }
  std::vector<double> runtime_share, own_work, before_reconcile;
  int failures = 0, deleted = 0, checked = 0;
  absl::Time first_created = absl::InfiniteFuture(), last_intercepted = absl::InfinitePast();
  // hostNetwork pods live in the node's namespace, which here is the sandbox's root netns (this process's).
  // Nothing in the simulator creates netfilter tables there, so any table means someone programmed the node.
  std::string node_netns_tables;
  bool any_host_network = false;
  for (const auto& t : scenario_.templates()) any_host_network |= t.host_network();
  if (any_host_network) {
    auto tables = ListNetfilterTables(-1, options_.work_dir + "/nft-node-tables.out");
    node_netns_tables = tables.ok() ? *tables : absl::StrCat("probe failed: ", tables.status().ToString());
  }
  // Events the controller posted, by involvedObject.uid (reported, not asserted: the annotation is the
  // contract).
  std::map<std::string, json> events;
  if (auto list = store_->List(Resource::kEvents, "", {}); list.ok()) {
    for (const auto& e : list->items) {
      std::string uid = FieldValue(*e, "involvedObject.uid");
      if (!events[uid].is_array()) events[uid] = json::array();
      events[uid].push_back({{"type", FieldValue(*e, "type")},
                             {"reason", FieldValue(*e, "reason")},
                             {"message", FieldValue(*e, "message")}});
    }
  }
  json pods = json::array();
  std::ostringstream table;
  std::ostringstream failed_detail;  // the whole reason of every failed pod (the table cuts it)
  table << absl::StrFormat("%-22s %-8s %-7s %-11s %8s %9s %8s %9s  %-6s %s\n", "POD", "TEMPLATE", "NODE",
                           "EXPECT", "SANDBOX", "ANNOTATED", "WAITER", "INTERCEPT", "RESULT", "DETAIL");
  for (const auto& c : created_) {
    PodRecord r = recorder_.Get(c.uid).value_or(PodRecord{});
    const proto::PodTemplate* t = templates[c.template_name];
    std::string expect = proto::PodTemplate::Outcome_Name(t->expect());
    std::string result = "ok";
    std::string why;
    if (r.deleted && churned_.count(c.uid) && !churned_[c.uid]) {
      result = "FAIL";
      why = absl::StrCat("churned before it was intercepted: phase ", r.phase, ", ", r.interception_detail);
      ++deleted;
      ++failures;
    } else if (r.deleted) {
      result = "gone";
      why = "deleted by the timeline";
      ++deleted;
    } else {
      ++checked;
      switch (t->expect()) {
        case proto::PodTemplate::INTERCEPTED:
          if (!r.settled) {
            why = "never settled";
          } else if (r.phase != "Running") {
            why = absl::StrCat("phase ", r.phase, "; waiter: ", r.waiter_message);
          } else if (auto early = ReleasedTooEarly(r); !early.empty()) {
            why = early;
          } else if (r.waiter_exit == 0 && !r.release_check.passed()) {
            // Checked when the waiter exited, before the app started: even if the traffic ends up
            // redirected later (a retransmitted SYN after the rules arrive), the app was let go too early.
            why = absl::StrCat("the waiter let the pod go before its traffic was redirected: ",
                               r.release_check.Summary(), "; mark then: ", r.mark_at_release);
          } else if (!r.intercepted) {
            why = absl::StrCat("not intercepted: ", r.interception_detail);
          } else if (r.intercepted_at - std::max(r.created, r.recreated) > limit) {
            why = absl::StrCat("intercepted after ",
                               FmtMs(Ms(std::max(r.created, r.recreated), r.intercepted_at)), " ms > limit");
          }
          break;
        case proto::PodTemplate::UNTOUCHED:
          if (!r.settled) {
            why = "never settled";
          } else if (r.phase != "Running") {
            why = absl::StrCat("phase ", r.phase);
          } else if (r.annotated != absl::InfinitePast()) {
            why = absl::StrCat("annotated by the controller: ", r.status_annotation);
          } else if (r.intercepted) {
            why = "traffic was intercepted";
          } else if (r.interception_checked && !absl::StrContains(r.interception_detail, "not redirected")) {
            why = absl::StrCat("rules present? ", r.interception_detail);
          } else if (r.tables_checked && !r.netfilter_tables.empty()) {
            why = absl::StrCat("netfilter tables in the pod's namespace: ", r.netfilter_tables);
          } else if (t->host_network() && !node_netns_tables.empty()) {
            why = absl::StrCat("netfilter tables in the node's namespace: ", node_netns_tables);
          }
          if (why.empty() && t->host_network()) {
            r.interception_detail = "node netns checked: no netfilter table";
          } else if (why.empty() && r.tables_checked) {
            r.interception_detail = "not redirected (connect timed out); no netfilter table in the pod netns";
          }
          break;
        case proto::PodTemplate::FAILED:
          if (!r.settled) {
            why = "never settled";
          } else if (r.phase != "Failed" || !r.waiter_exit || *r.waiter_exit == 0) {
            why = absl::StrCat("expected a failed init container, got phase ", r.phase);
          } else if (!t->expect_failure_contains().empty() &&
                     !absl::StrContains(r.status_annotation, t->expect_failure_contains()) &&
                     !absl::StrContains(r.waiter_message, t->expect_failure_contains())) {
            why = absl::StrCat("failure reason lacks \"", t->expect_failure_contains(),
                               "\": ", r.status_annotation);
          }
          break;
        default:
          break;
      }
      if (!why.empty()) {
        result = "FAIL";
        ++failures;
      }
    }
    if (r.intercepted) {
      to_intercept.push_back(Ms(r.created, r.intercepted_at));
      last_intercepted = std::max(last_intercepted, r.intercepted_at);
    }
    if (r.annotated != absl::InfinitePast() && r.created != absl::InfinitePast())
      to_annotated.push_back(Ms(r.created, r.annotated));
    // The controller's own share: from the moment the fake kubelet published the sandbox (CRI + status.podIP)
    // to the commit of the controller's mark in the store.
    // Pods marked `initialized` only (an `error:` status is written at plan time, without a sandbox). Runtime
    // containerd: the runtime reports a sandbox READY (the controller may find it) a little before the fake
    // kubelet has read RunPodSandbox's answer; a mark committed in between counts as 0 ms. With a recreated
    // sandbox a mark older than the current sandbox is the old sandbox's and does not count.
    if (r.annotated != absl::InfinitePast() && r.sandbox_ready != absl::InfinitePast() &&
        r.status_annotation == "initialized") {
      std::optional<double> total;
      if (r.annotated >= r.sandbox_ready) {
        total = Ms(r.sandbox_ready, r.annotated);
      } else if (r.sandboxes.size() <= 1) {
        total = 0;
        ++marked_before_kubelet;
      }
      if (total) {
        sandbox_to_annotated.push_back(*total);
        // A pod marked before the kubelet's answer has no "before" to split (counted in the total only).
        if (auto it = marking.find(r.uid); r.annotated >= r.sandbox_ready && it != marking.end()) {
          runtime_share.push_back(it->second.locate_ms);
          own_work.push_back(it->second.took_ms - it->second.locate_ms);
          before_reconcile.push_back(std::max(0.0, *total - it->second.took_ms));
        }
      }
    }
    if (r.waiter_exited != absl::InfinitePast()) to_waiter.push_back(Ms(r.created, r.waiter_exited));
    if (r.created != absl::InfinitePast()) first_created = std::min(first_created, r.created);
    std::string detail = why.empty()
                             ? (r.status_annotation.empty() ? r.interception_detail
                                                            : absl::StrCat("status=", r.status_annotation))
                             : why;
    if (!why.empty()) failed_detail << "  " << c.ns << "/" << c.name << ": " << why << "\n";
    if (detail.size() > 90) detail = detail.substr(0, 87) + "...";
    table << absl::StrFormat("%-22s %-8s %-7s %-11s %8s %9s %8s %9s  %-6s %s\n", c.ns + "/" + c.name,
                             c.template_name, r.node, expect, FmtMs(Ms(r.created, r.sandbox_ready)),
                             FmtMs(Ms(r.created, r.annotated)), FmtMs(Ms(r.created, r.waiter_exited)),
                             FmtMs(Ms(r.created, r.intercepted_at)), result, detail);
    json p = {
        {"namespace", c.ns},
        {"name", c.name},
        {"uid", c.uid},
        {"template", c.template_name},
        {"node", r.node},
        {"expect", expect},
        {"result", result},
        {"reason", why},
        {"phase", r.phase},
        {"status_annotation", r.status_annotation},
        {"waiter_exit", r.waiter_exit ? json(*r.waiter_exit) : json()},
        {"waiter_message", r.waiter_message},
        {"mesh", proto::PodTemplate::Mesh_Name(t->mesh())},
        {"waiter_container", r.waiter_container.empty() ? json()
                                                        : json{{"name", r.waiter_container},
                                                               {"uid", r.waiter_uid},
                                                               {"gid", r.waiter_gid},
                                                               {"args", r.waiter_args}}},
        {"proxy",
         r.proxy_found
             ? json{{"uid", r.proxy_uid}, {"gid", r.proxy_gid}, {"native_sidecar", r.proxy_native_sidecar}}
             : json()},
        {"intercepted", r.intercepted},
        {"interception_detail", r.interception_detail},
        {"marked_for_this_netns_at_waiter_exit", r.marked_for_this_netns},
        {"mark_at_waiter_exit", r.mark_at_release},
        {"release_check", ReleaseCheckJson(r.release_check)},
        {"sandboxes", SandboxesJson(r.sandboxes)},
        {"forgery", r.forgery ? ForgeryJson(*r.forgery, r) : json()},
        {"netfilter_tables_checked", r.tables_checked},
        {"netfilter_tables", r.netfilter_tables},
        {"ms_created_to_sandbox", Ms(r.created, r.sandbox_ready)},
        // Wall-clock times (Unix ms; -1: never) to line the pod up with the controller's log.
        {"unix_ms_sandbox",
         r.sandbox_ready == absl::InfinitePast() ? -1 : absl::ToUnixMillis(r.sandbox_ready)},
        {"unix_ms_annotated", r.annotated == absl::InfinitePast() ? -1 : absl::ToUnixMillis(r.annotated)},
        {"ms_created_to_annotated", Ms(r.created, r.annotated)},
        {"ms_sandbox_to_annotated", r.annotated >= r.sandbox_ready ? Ms(r.sandbox_ready, r.annotated) : -1},
        {"ms_created_to_waiter_exit", Ms(r.created, r.waiter_exited)},
        {"ms_created_to_intercepted", Ms(r.created, r.intercepted_at)},
        {"events", events.count(c.uid) ? events[c.uid] : json::array()}};
    pods.push_back(p);
  }
  // Sandbox recreations (inode reuse vs cookie) and what each forgery got.
  std::ostringstream recreations, forgeries;
  int recreated = 0, inode_reused = 0, cookie_differs = 0;
  for (const auto& c : created_) {
    PodRecord r = recorder_.Get(c.uid).value_or(PodRecord{});
    for (size_t i = 1; i < r.sandboxes.size(); ++i) {
      const SandboxRecord& a = r.sandboxes[i - 1];
      const SandboxRecord& b = r.sandboxes[i];
      ++recreated;
      inode_reused += a.inode == b.inode;
      cookie_differs += a.cookie != b.cookie;
      recreations << absl::StrFormat("  %s/%s: inode %d -> %d (%s), cookie %d -> %d (%s)\n", c.ns, c.name,
                                     a.inode, b.inode, a.inode == b.inode ? "REUSED" : "new", a.cookie,
                                     b.cookie, a.cookie == b.cookie ? "SAME" : "differs");
    }
    if (r.forgery) {
      // The sandbox the forged mark was written for is the first one.
      std::optional<int> exit = r.sandboxes.empty() ? std::nullopt : r.sandboxes.front().waiter_exit;
      std::string got = exit ? absl::StrCat("waiter exit ", *exit) : "waiter never exited";
      if (exit == 0)
        absl::StrAppend(&got, ", at release: ",
                        r.sandboxes.front().redirected_at_release ? "redirected" : "NOT redirected");
      forgeries << absl::StrFormat("  %s/%s [%s]: %s; %s; phase %s, status %s\n", c.ns, c.name,
                                   r.forgery->kind, GuessOutcome(*r.forgery, r), got, r.phase,
                                   r.status_annotation.empty() ? "-" : r.status_annotation.substr(0, 60));
    }
  }
  if (recreated > 0) {
    recreations.str(
        absl::StrFormat("sandbox recreations under the same pod UID: %d; nsfs inode reused %d/%d; netns "
                        "cookie differed %d/%d\n%s",
                        recreated, inode_reused, recreated, cookie_differs, recreated, recreations.str()));
  }
  if (!forgeries.str().empty())
    forgeries.str("forged marks (tenant's guess; what the waiter did; end state):\n" + forgeries.str());
  double pods_per_s = -1;
  if (!to_intercept.empty() && last_intercepted > first_created) {
    pods_per_s = to_intercept.size() / absl::ToDoubleSeconds(last_intercepted - first_created);
  }
  int restarts = 0;
  for (int s : controller_starts_) restarts += std::max(0, s - 1);
  failures += static_cast<int>(helm_failures_.size());
  report.passed = failures == 0 && checked > 0;
  std::ostringstream out;
  out << "scenario " << scenario_.name() << " (seed " << scenario_.seed() << "): " << created_.size()
      << " pods created, " << deleted << " deleted by the timeline, " << checked << " checked, " << failures
      << " failed; controller restarts: " << restarts << "\n";
  out << "timeline:\n";
  for (const auto& s : step_log_) out << "  - " << s << "\n";
  out << "\nper pod, ms after creation (SANDBOX: netns + IP published; ANNOTATED: the controller's status "
         "annotation "
         "reached the API server, which it writes only after applying and reading back the rules; WAITER: "
         "the init "
         "container exited; INTERCEPT: the app's connect to 192.0.2.10:80 landed on 15001):\n"
      << table.str() << "\n";
  if (!failed_detail.str().empty()) out << "failed pods, whole reasons:\n" << failed_detail.str() << "\n";
  out << recreations.str() << forgeries.str();
  out << absl::StrFormat(
      "sandbox -> annotated:   p50 %.1f ms  p99 %.1f ms  (n=%d; the controller's share: "
      "sandbox published -> its mark committed%s)\n",
      Percentile(sandbox_to_annotated, 50), Percentile(sandbox_to_annotated, 99), sandbox_to_annotated.size(),
      marked_before_kubelet == 0
          ? ""
          : absl::StrCat("; ", marked_before_kubelet,
                         " marked before the kubelet had the runtime's answer, counted as 0"));
  if (!runtime_share.empty()) {
    out << absl::StrFormat(
        "  split (n=%d), p50 / p99 ms: before the marking reconcile (noticing the sandbox, the queue) %.1f / "
        "%.1f; in it, the runtime's answers (locate) %.1f / %.1f and the controller's own work (inspect, "
        "apply, verify, patch) %.1f / %.1f\n",
        runtime_share.size(), Percentile(before_reconcile, 50), Percentile(before_reconcile, 99),
        Percentile(runtime_share, 50), Percentile(runtime_share, 99), Percentile(own_work, 50),
        Percentile(own_work, 99));
  }
  out << absl::StrFormat("created -> annotated:   p50 %s ms  p99 %s ms  (n=%d)\n",
                         FmtMs(Percentile(to_annotated, 50)), FmtMs(Percentile(to_annotated, 99)),
                         to_annotated.size());
  out << absl::StrFormat("created -> waiter exit: p50 %s ms  p99 %s ms  (n=%d)\n",
                         FmtMs(Percentile(to_waiter, 50)), FmtMs(Percentile(to_waiter, 99)),
                         to_waiter.size());
  out << absl::StrFormat("created -> intercepted: p50 %s ms  p99 %s ms  (n=%d)\n",
                         FmtMs(Percentile(to_intercept, 50)), FmtMs(Percentile(to_intercept, 99)),
                         to_intercept.size());
  out << absl::StrFormat("throughput: %s pods/s (intercepted pods / (last interception - first creation))\n",
                         pods_per_s < 0 ? "-" : absl::StrFormat("%.1f", pods_per_s));
  if (daemonsets_ && !daemonsets_->History().empty()) {
    out << "DaemonSet pods (fake nodes running the chart's controller container):\n";
    for (const auto& line : daemonsets_->History()) out << "  " << line << "\n";
  }
  for (const auto& f : helm_failures_) out << "FAILED after helm: " << f << "\n";
  int churn_ok = 0;
  for (const auto& [uid, ok] : churned_) churn_ok += ok;
  if (!churned_.empty())
    out << absl::StrFormat("churn: %d pods deleted by churn steps, %d intercepted before their deletion\n",
                           churned_.size(), churn_ok);
  json resources = json::array();
  for (const ControllerResources& c : resources_) {
    const ResourceSeries& rs = c.series;
    out << absl::StrFormat(
        "controller %s (start %d): RSS start %.1f / peak %.1f / end %.1f MiB (anon %.1f / %.1f / %.1f, file "
        "%.1f / "
        "%.1f / %.1f); fds %d / %d / %d; threads %d / "
        "%d / "
        "%d; CPU %.2f s over the run (%d samples)\n",
        c.node, c.start, rs.start.rss_kib / 1024.0, rs.peak.rss_kib / 1024.0, rs.end.rss_kib / 1024.0,
        rs.start.anon_kib / 1024.0, rs.peak.anon_kib / 1024.0, rs.end.anon_kib / 1024.0,
        rs.start.file_kib / 1024.0, rs.peak.file_kib / 1024.0, rs.end.file_kib / 1024.0, rs.start.fds,
        rs.peak.fds, rs.end.fds, rs.start.threads, rs.peak.threads, rs.end.threads,
        (rs.end.cpu_ms - rs.start.cpu_ms) / 1000.0, rs.samples);
    auto sample = [](const ResourceSample& x) {
      return json{{"rss_kib", x.rss_kib}, {"anon_kib", x.anon_kib}, {"file_kib", x.file_kib},
                  {"fds", x.fds},         {"threads", x.threads},   {"cpu_ms", x.cpu_ms}};
    };
    resources.push_back({{"node", c.node},
                         {"start", c.start},
                         {"samples", rs.samples},
                         {"at_start", sample(rs.start)},
                         {"peak", sample(rs.peak)},
                         {"at_end", sample(rs.end)}});
  }
  out << (report.passed ? "RESULT: PASS" : "RESULT: FAIL") << "\n";
  report.text = out.str();
  report.json = {
      {"scenario", scenario_.name()},
      {"seed", scenario_.seed()},
      {"passed", report.passed},
      {"pods_created", created_.size()},
      {"pods_deleted", deleted},
      {"pods_checked", checked},
      {"failures", failures},
      {"controller_restarts", restarts},
      {"timeline", step_log_},
      {"latency_ms",
       {{"created_to_annotated",
         {{"p50", Percentile(to_annotated, 50)}, {"p99", Percentile(to_annotated, 99)}}},
        {"created_to_waiter_exit", {{"p50", Percentile(to_waiter, 50)}, {"p99", Percentile(to_waiter, 99)}}},
        {"sandbox_to_annotated",
         {{"p50", Percentile(sandbox_to_annotated, 50)},
          {"p99", Percentile(sandbox_to_annotated, 99)},
          {"n", sandbox_to_annotated.size()},
          {"marked_before_kubelet", marked_before_kubelet},
          {"runtime_share", {{"p50", Percentile(runtime_share, 50)}, {"p99", Percentile(runtime_share, 99)}}},
          {"own_work", {{"p50", Percentile(own_work, 50)}, {"p99", Percentile(own_work, 99)}}},
          {"before_reconcile",
           {{"p50", Percentile(before_reconcile, 50)}, {"p99", Percentile(before_reconcile, 99)}}},
          {"n_split", runtime_share.size()}}},
        {"created_to_intercepted",
         {{"p50", Percentile(to_intercept, 50)}, {"p99", Percentile(to_intercept, 99)}}}}},
      {"pods_per_second", pods_per_s},
      {"controller_resources", resources},
      {"daemonset_history", daemonsets_ ? json(daemonsets_->History()) : json::array()},
      {"helm_failures", helm_failures_},
      {"churn", {{"deleted", churned_.size()}, {"intercepted_before_deletion", churn_ok}}},
      {"sandbox_recreations",
       {{"count", recreated}, {"inode_reused", inode_reused}, {"cookie_differed", cookie_differs}}},
      {"pods", pods}};
  return report;
}

void Run::Teardown() {
  for (size_t i = 0; i < controllers_.size(); ++i) StopController(i);
  if (daemonsets_) daemonsets_->Stop();
  for (auto& n : nodes_) n->Stop();
  nodes_.clear();
  if (server_) server_->Stop();
  cri_.clear();
  containerd_.clear();  // full teardown of each private containerd (sandboxes, shims, mounts, cgroups)
}

absl::StatusOr<Report> Run::Execute() {
  if (auto s = Setup(); !s.ok()) {
    Teardown();
    return s;
  }
  start_ = absl::Now();
  absl::Status status;
  for (const auto& step : scenario_.timeline()) {
    status = Step(step);
    if (!status.ok()) break;
  }
  // Controllers that died are a failure of their own.
  std::vector<std::string> died;
  for (size_t i = 0; i < controllers_.size(); ++i) {
    if (controllers_[i] && controllers_[i]->WaitFor(absl::ZeroDuration())) {
      died.push_back(absl::StrCat(scenario_.nodes(i).name(), " (exit ",
                                  *controllers_[i]->WaitFor(absl::ZeroDuration()), ")"));
    }
  }
  for (size_t i = 0; i < samplers_.size(); ++i) StopSampler(i);
  Report report = BuildReport();
  Teardown();
  if (!status.ok()) return status;
  if (!died.empty()) {
    report.passed = false;
    report.text +=
        absl::StrCat("controller exited unexpectedly on: ", absl::StrJoin(died, ", "), "\nRESULT: FAIL\n");
    report.json["passed"] = false;
    report.json["controllers_died"] = died;
  }
  report.text += absl::StrCat("logs: ", options_.work_dir, "\n");
  return report;
}

}  // namespace

absl::StatusOr<proto::Scenario> LoadScenario(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  proto::Scenario s;
  if (!google::protobuf::TextFormat::ParseFromString(ss.str(), &s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse ", path, " as a pnc.sim.proto.Scenario text proto"));
  }
  if (auto v = ValidateScenario(s); !v.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", v.message()));
  return s;
}

absl::Status ValidateScenario(const proto::Scenario& s) {
  std::set<std::string> nodes, templates, namespaces = {"default"};
  if (s.nodes().empty()) return absl::InvalidArgumentError("no nodes");
  for (const auto& n : s.nodes()) {
    if (n.name().empty() || !nodes.insert(n.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("empty or duplicate node name \"", n.name(), "\""));
    }
    if (n.runtime() == proto::Node::CONTAINERD && (n.lightweight() || n.sandbox_pool() > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", n.name(), ": runtime CONTAINERD is neither lightweight nor pooled"));
    }
  }
  for (const auto& t : s.templates()) {
    if (t.name().empty() || !templates.insert(t.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("empty or duplicate template name \"", t.name(), "\""));
    }
    if (t.has_forge() && t.mesh() == proto::PodTemplate::NONE) {
      return absl::InvalidArgumentError(
          absl::StrCat("template ", t.name(), ": forged marks only on mesh pods"));
    }
    if (t.expect() == proto::PodTemplate::FAILED && t.mesh() == proto::PodTemplate::NONE) {
      return absl::InvalidArgumentError(
          absl::StrCat("template ", t.name(), ": only mesh pods can fail initialization"));
    }
  }
  for (const auto& n : s.namespaces()) namespaces.insert(n.name());
  for (int i = 0; i < s.timeline_size(); ++i) {
    const auto& step = s.timeline(i);
    std::string where = absl::StrCat("timeline[", i, "]: ");
    switch (step.action_case()) {
      case proto::Step::kCreate:
        if (templates.count(step.create().template_()) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "unknown template \"", step.create().template_(), "\""));
        }
        if (namespaces.count(step.create().namespace_()) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "unknown namespace \"", step.create().namespace_(), "\""));
        }
        if (!step.create().node().empty() && nodes.count(step.create().node()) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "unknown node \"", step.create().node(), "\""));
        }
        break;
      case proto::Step::kDelete:
        if (!step.delete_().template_().empty() && templates.count(step.delete_().template_()) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "unknown template \"", step.delete_().template_(), "\""));
        }
        break;
      case proto::Step::kRestartController:
        if (!step.restart_controller().node().empty() && nodes.count(step.restart_controller().node()) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(where, "unknown node"));
        }
        break;
      case proto::Step::kFault:
        if (step.fault().kind_case() == proto::Fault::KIND_NOT_SET) {
          return absl::InvalidArgumentError(absl::StrCat(where, "empty fault"));
        }
        break;
      case proto::Step::kStopController:
      case proto::Step::kStartController: {
        const std::string& node = step.action_case() == proto::Step::kStopController
                                      ? step.stop_controller().node()
                                      : step.start_controller().node();
        if (!node.empty() && nodes.count(node) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(where, "unknown node \"", node, "\""));
        }
        break;
      }
      case proto::Step::kRecreateSandbox:
        if (step.recreate_sandbox().namespace_().empty() || step.recreate_sandbox().name().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(where, "recreate_sandbox needs namespace and name"));
        }
        break;
      case proto::Step::kHelm:
        break;
      case proto::Step::kChurn:
        if (templates.count(step.churn().template_()) == 0 ||
            namespaces.count(step.churn().namespace_()) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(where, "churn: unknown template or namespace"));
        }
        if (step.churn().cycles() == 0)
          return absl::InvalidArgumentError(absl::StrCat(where, "churn: no cycles"));
        break;
      case proto::Step::kWaitSettled:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(where, "empty step"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Report> RunScenario(const proto::Scenario& scenario, const RunnerOptions& options) {
  Run run(scenario, options);
  return run.Execute();
}

}  // namespace pnc::sim
