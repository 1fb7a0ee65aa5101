// istio-pod-network-controller: per-node DaemonSet that installs Istio's redirection rules into the network
// namespace of each meshed pod on its node, verifies them and marks the pod. See controller/README.md.
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "controller/controller.h"
#include "controller/http_server.h"
#include "controller/log.h"
#include "controller/mesh_defaults.h"
#include "controller/metrics.h"
#include "controller/wiring.h"
#include "kube/config.h"
#include "kube/curl_client.h"
#include "netns/inspector.h"
#include "rules/annotations.h"
#include "tools/cli/help.h"

namespace {
std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}
}  // namespace

ABSL_FLAG(
    std::string, kubeconfig, "",
    "Path to a kubeconfig (YAML or JSON). Empty: in-cluster config (KUBERNETES_SERVICE_HOST/PORT and the "
    "service-account token, re-read when it rotates), else $KUBECONFIG.");
ABSL_FLAG(std::string, context, "", "kubeconfig context to use (default: current-context).");
ABSL_FLAG(
    std::string, node_name, EnvOr("NODE_NAME", ""),
    "Name of this node: only pods with spec.nodeName equal to it are watched. Default: $NODE_NAME (set it "
    "from the Downward API spec.nodeName in the DaemonSet).");
ABSL_FLAG(int, workers, 4, "Number of pods reconciled in parallel.");
ABSL_FLAG(
    std::string, backend, "auto",
    "How rules are programmed: auto (detect what the node uses), iptc (legacy x_tables via libiptc), nft "
    "(nf_tables over netlink), restore (exec iptables-restore/ip6tables-restore).");
ABSL_FLAG(std::string, locator, "auto",
          "How a pod's network namespace is found: auto (CRI, then cgroup scan), cri (RuntimeService "
          "PodSandboxStatus), cgroup (scan /proc for the pod UID's cgroup).");
ABSL_FLAG(std::string, cri_endpoint, "unix:///run/containerd/containerd.sock",
          "CRI runtime endpoint (containerd: unix:///run/containerd/containerd.sock, CRI-O: "
          "unix:///var/run/crio/crio.sock).");
ABSL_FLAG(std::string, proc_root, "/proc", "Where the host's /proc is mounted (for the cgroup locator).");
ABSL_FLAG(std::string, distribution, "Kubernetes",
          "Kubernetes or OpenShift. OpenShift: the proxy uid comes from the namespace's "
          "openshift.io/sa.scc.uid-range annotation.");
ABSL_FLAG(int, proxy_uid, 1337, "UID of the sidecar proxy (its traffic bypasses redirection).");
ABSL_FLAG(int, proxy_gid, 1337, "GID of the sidecar proxy.");
ABSL_FLAG(bool, capture_dns, false,
          "Redirect DNS (udp/tcp 53) to the proxy's DNS port 15053, like ISTIO_META_DNS_CAPTURE.");
ABSL_FLAG(bool, assume_ipv6, false,
          "Program IPv6 rules even for pods that have no IPv6 address yet (IPv6 clusters).");
// Mesh-wide defaults, as Istio's injector values name them; used only for pods that do not carry the
// annotation themselves (Istio's injector in CNI mode writes them onto every injected pod).
ABSL_FLAG(
    std::optional<std::string>, mesh_include_ip_ranges, std::nullopt,
    "Istio global.proxy.includeIPRanges: default for traffic.sidecar.istio.io/includeOutboundIPRanges.");
ABSL_FLAG(
    std::optional<std::string>, mesh_exclude_ip_ranges, std::nullopt,
    "Istio global.proxy.excludeIPRanges: default for traffic.sidecar.istio.io/excludeOutboundIPRanges.");
ABSL_FLAG(
    std::optional<std::string>, mesh_include_inbound_ports, std::nullopt,
    "Istio global.proxy.includeInboundPorts: default for traffic.sidecar.istio.io/includeInboundPorts.");
ABSL_FLAG(
    std::optional<std::string>, mesh_exclude_inbound_ports, std::nullopt,
    "Istio global.proxy.excludeInboundPorts: default for traffic.sidecar.istio.io/excludeInboundPorts.");
ABSL_FLAG(
    std::optional<std::string>, mesh_exclude_outbound_ports, std::nullopt,
    "Istio global.proxy.excludeOutboundPorts: default for traffic.sidecar.istio.io/excludeOutboundPorts.");
ABSL_FLAG(std::optional<std::string>, mesh_interception_mode, std::nullopt,
          "Istio meshConfig.defaultConfig.interceptionMode (REDIRECT, TPROXY or NONE): default for "
          "sidecar.istio.io/interceptionMode.");
ABSL_FLAG(
    std::string, netns_dir, "/var/run/netns",
    "The container runtime's network-namespace directory (containerd and CRI-O create sandbox netns there): "
    "a "
    "new file there is a sandbox being created, and the sandbox poller polls fast for a while (without one: "
    "the pod that has waited longest retries at once). Empty: no watch.");
ABSL_FLAG(absl::Duration, sandbox_wait_cap, absl::Seconds(1),
          "Longest retry interval for a pod whose sandbox does not exist yet, while the sandbox poller "
          "cannot list the runtime's sandboxes (while it can, the pod's own timer is a 5 s backstop).");
ABSL_FLAG(
    absl::Duration, sandbox_poll_interval, absl::Milliseconds(100),
    "While pods wait for their sandbox, list the runtime's ready sandboxes this often (one call for all "
    "of them; never more often than a call takes). 0 disables: pods wait for their own timers.");
ABSL_FLAG(absl::Duration, sandbox_poll_fast_interval, absl::Milliseconds(5),
          "The same, for 2 s after a new file in --netns_dir (a sandbox being created).");
ABSL_FLAG(std::string, metrics_address, ":15014",
          "host:port for /metrics (Prometheus), /healthz and /readyz. Empty disables the server.");
ABSL_FLAG(absl::Duration, resync, absl::Minutes(5),
          "How often every initialized pod's rules are read back and re-applied if missing. 0 disables.");
ABSL_FLAG(absl::Duration, watch_timeout, absl::Minutes(5),
          "timeoutSeconds of each watch request (plus up to 50% jitter).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: stop watching, then wait this long for in-flight pods before exiting.");
ABSL_FLAG(int, max_queue, 100000, "Bound of the work queue (pods beyond it wait for the next resync).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error. Logs are JSON lines on stderr.");

namespace pnc::controller {
namespace {

int Fail(const std::string& what, const absl::Status& st) {
  Log(LogLevel::kError, what, {{"error", std::string(st.message())}});
  return 2;
}

int Main() {
  std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "debug")
    SetMinLogLevel(LogLevel::kDebug);
  else if (level == "warning")
    SetMinLogLevel(LogLevel::kWarning);
  else if (level == "error")
    SetMinLogLevel(LogLevel::kError);
  else if (level != "info")
    return Fail("bad --log_level", absl::InvalidArgumentError(level));

  std::string node = absl::GetFlag(FLAGS_node_name);
  if (node.empty()) return Fail("no node name", absl::InvalidArgumentError("set --node_name or $NODE_NAME"));
  if (absl::GetFlag(FLAGS_workers) < 1 || absl::GetFlag(FLAGS_workers) > 256)
    return Fail("bad --workers", absl::InvalidArgumentError("must be between 1 and 256"));
  if (absl::GetFlag(FLAGS_sandbox_poll_interval) < absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_sandbox_poll_fast_interval) <= absl::ZeroDuration())
    return Fail("bad --sandbox_poll_interval / --sandbox_poll_fast_interval",
                absl::InvalidArgumentError("the interval must be >= 0 (0 disables), the fast one > 0"));
  // Kubernetes runAsUser/runAsGroup range; a negative value would silently wrap to a huge uint32.
  for (auto [name, v] : {std::pair<const char*, int>{"--proxy_uid", absl::GetFlag(FLAGS_proxy_uid)},
                         {"--proxy_gid", absl::GetFlag(FLAGS_proxy_gid)}}) {
    if (v < 0) {
      return Fail(absl::StrCat("bad ", name),
                  absl::InvalidArgumentError(absl::StrCat(v,
                                                          " is negative; use the sidecar's runAsUser/"
                                                          "runAsGroup (default 1337)")));
    }
  }

  rules::PlanConfig plan;
  std::string dist = absl::GetFlag(FLAGS_distribution);
  if (dist == "Kubernetes") {
    plan.distribution = rules::Distribution::kKubernetes;
  } else if (dist == "OpenShift") {
    plan.distribution = rules::Distribution::kOpenShift;
  } else {
    return Fail("bad --distribution", absl::InvalidArgumentError("Kubernetes or OpenShift"));
  }
  plan.default_proxy_uid = static_cast<uint32_t>(absl::GetFlag(FLAGS_proxy_uid));
  plan.default_proxy_gid = static_cast<uint32_t>(absl::GetFlag(FLAGS_proxy_gid));
  plan.capture_dns = absl::GetFlag(FLAGS_capture_dns);
  plan.assume_ipv6 = absl::GetFlag(FLAGS_assume_ipv6);

  // API server config.
  absl::StatusOr<kube::ClientConfig> cfg;
  std::string kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
  if (!kubeconfig.empty()) {
    cfg = kube::LoadKubeconfig(kubeconfig, absl::GetFlag(FLAGS_context));
  } else {
    cfg = kube::LoadInClusterConfig();
    if (!cfg.ok() && std::getenv("KUBECONFIG") != nullptr) {
      cfg = kube::LoadKubeconfig(std::getenv("KUBECONFIG"), absl::GetFlag(FLAGS_context));
    }
  }
  if (!cfg.ok()) return Fail("cannot load API server config", cfg.status());
  absl::StatusOr<std::unique_ptr<kube::CurlClient>> client = kube::CurlClient::Create(*cfg);
  if (!client.ok()) return Fail("cannot create API client", client.status());

  // Backend detection and locator happen before readiness: /readyz stays 503 if they fail (we exit instead).
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = MakeBackend(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) return Fail("no netfilter backend", backend.status());
  absl::StatusOr<std::unique_ptr<netns::Locator>> locator = MakeLocator(
      absl::GetFlag(FLAGS_locator), absl::GetFlag(FLAGS_cri_endpoint), absl::GetFlag(FLAGS_proc_root));
  if (!locator.ok()) return Fail("no netns locator", locator.status());
  // A pod's netns is identified by its cookie (+ the boot id), never by its reusable inode: no cookies, no
  // controller (no silent fallback).
  if (absl::Status st = netns::CheckNetnsCookieSupport(); !st.ok())
    return Fail("cannot identify network namespaces", st);
  MeshDefaults mesh;
  for (auto [flag, key] :
       {std::pair{&FLAGS_mesh_include_ip_ranges, rules::kIncludeOutboundIPRangesAnnotation},
        std::pair{&FLAGS_mesh_exclude_ip_ranges, rules::kExcludeOutboundIPRangesAnnotation},
        std::pair{&FLAGS_mesh_include_inbound_ports, rules::kIncludeInboundPortsAnnotation},
        std::pair{&FLAGS_mesh_exclude_inbound_ports, rules::kExcludeInboundPortsAnnotation},
        std::pair{&FLAGS_mesh_exclude_outbound_ports, rules::kExcludeOutboundPortsAnnotation},
        std::pair{&FLAGS_mesh_interception_mode, rules::kInterceptionModeAnnotation}}) {
    if (std::optional<std::string> v = absl::GetFlag(*flag)) mesh.annotations[key] = *v;
  }
  if (absl::Status st = ValidateMeshDefaults(mesh, plan); !st.ok()) return Fail("bad --mesh_* flag", st);
  absl::StatusOr<std::string> boot_id = netns::ReadBootId();
  if (!boot_id.ok()) return Fail("cannot read the boot id", boot_id.status());

  // Signals are taken synchronously by sigwait in this thread; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  Metrics metrics;
  ControllerOptions opts;
  opts.node_name = node;
  opts.boot_id = *boot_id;
  opts.netns_dir = absl::GetFlag(FLAGS_netns_dir);
  opts.sandbox_wait_cap = absl::GetFlag(FLAGS_sandbox_wait_cap);
  opts.sandbox_poll.interval = absl::GetFlag(FLAGS_sandbox_poll_interval);
  opts.sandbox_poll.fast_interval = absl::GetFlag(FLAGS_sandbox_poll_fast_interval);
  opts.mesh_defaults = std::move(mesh);
  opts.workers = absl::GetFlag(FLAGS_workers);
  opts.resync = absl::GetFlag(FLAGS_resync);
  opts.watch_timeout_seconds =
      std::max<int>(1, static_cast<int>(absl::ToInt64Seconds(absl::GetFlag(FLAGS_watch_timeout))));
  opts.queue.max_items = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_max_queue)));
  Controller controller(opts, client->get(), locator->get(), backend->get(), plan, &metrics);

  std::unique_ptr<HttpServer> http;
  std::string addr = absl::GetFlag(FLAGS_metrics_address);
  if (!addr.empty()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> s =
        HttpServer::Start(addr, [&](const std::string&, const std::string& path) -> HttpResponse {
          if (path == "/metrics") return {200, "text/plain; version=0.0.4; charset=utf-8", metrics.Render()};
          if (path == "/healthz") return {200, "text/plain", "ok\n"};
          if (path == "/readyz") {
            return controller.Ready() ? HttpResponse{200, "text/plain", "ready\n"}
                                      : HttpResponse{503, "text/plain", "waiting for the first list\n"};
          }
          return {404, "text/plain", "not found\n"};
        });
    if (!s.ok()) return Fail("cannot start metrics server", s.status());
    http = *std::move(s);
  }

  Log(LogLevel::kInfo, "starting",
      {{"node", node},
       {"server", cfg->server},
       {"backend", (*backend)->Name()},
       {"locator", (*locator)->Name()},
       {"workers", std::to_string(opts.workers)},
       {"distribution", dist},
       {"metrics_address", addr}});
  controller.Start();

  int sig = 0;
  sigwait(&sigs, &sig);
  Log(LogLevel::kInfo, "shutting down", {{"signal", std::to_string(sig)}});
  bool drained = controller.Stop(absl::GetFlag(FLAGS_shutdown_grace));
  http.reset();
  if (!drained) {
    Log(LogLevel::kWarning, "workers still busy at the shutdown deadline; exiting anyway");
    std::_Exit(1);  // detached workers still reference the controller
  }
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace
}  // namespace pnc::controller

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own malloc arena (up to 8 per core) and keeps what a thread
  // freed resident in that arena. The controller's threads allocate little and rarely at the same time, so
  // two arenas bound that memory without contention worth measuring. MALLOC_ARENA_MAX overrides it.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
  absl::SetProgramUsageMessage(
      "istio-pod-network-controller: programs Istio's traffic redirection into the network namespace of each "
      "meshed pod on this node, verifies it and marks the pod with "
      "pod-network-controller.istio.io/status=initialized.\n"
      "Usage: controller --node_name=NODE [--kubeconfig=PATH] [flags]");
  if (int rc = pnc::cli::AnswerHelp(argc, argv, "controller_main.cc"); rc >= 0) return rc;
  absl::ParseCommandLine(argc, argv);
  return pnc::controller::Main();
}
