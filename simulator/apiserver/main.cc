// The fake Kubernetes API server as a standalone process: point kubectl or the controller at it.
//
//   bazel run //simulator:apiserver -- --listen=127.0.0.1:8080 --write_kubeconfig=/tmp/sim.kubeconfig
//   kubectl --kubeconfig=/tmp/sim.kubeconfig get ns
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "simulator/apiserver/server.h"
#include "simulator/apiserver/store.h"
#include "tools/cli/help.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to listen on (port 0: pick a free port, printed on stdout)");
ABSL_FLAG(bool, tls, false, "serve HTTPS with a generated self-signed certificate (in the kubeconfig)");
ABSL_FLAG(std::string, token, "", "require this bearer token on every request");
ABSL_FLAG(std::string, write_kubeconfig, "", "write a kubeconfig for this server to this path");
ABSL_FLAG(int, threads, 1, "Asio threads");
ABSL_FLAG(absl::Duration, bookmark_interval, absl::Seconds(5),
          "period of BOOKMARK events on watches that ask");
ABSL_FLAG(int64_t, history, 200000, "watch history window (events); older resourceVersions get 410 Expired");
ABSL_FLAG(std::vector<std::string>, nodes, {}, "Node objects to create at start (comma-separated names)");
ABSL_FLAG(bool, scheduler, true, "bind pods without spec.nodeName to nodes round-robin");
ABSL_FLAG(
    bool, graceful_pod_deletion, false,
    "DELETE of a bound pod only sets deletionTimestamp (a kubelet must finish it); off: immediate deletion");

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  // --help lists this binary's own flags (absl matches the main file by name otherwise).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "simulator/apiserver/");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "A fake Kubernetes API server (namespaces, pods, events, nodes) for tests and demos.");
  if (int rc = pnc::cli::AnswerHelp(argc, argv, "apiserver/main.cc"); rc >= 0) return rc;
  absl::ParseCommandLine(argc, argv);
  pnc::sim::Store::Options so;
  so.history_size = static_cast<size_t>(absl::GetFlag(FLAGS_history));
  so.scheduler = absl::GetFlag(FLAGS_scheduler);
  so.graceful_pod_deletion = absl::GetFlag(FLAGS_graceful_pod_deletion);
  pnc::sim::Store store(so);
  for (const std::string& n : absl::GetFlag(FLAGS_nodes)) {
    auto s = store.Create(pnc::sim::Resource::kNodes, "", {{"metadata", {{"name", n}}}});
    if (!s.ok()) {
      std::fprintf(stderr, "node %s: %s\n", n.c_str(), s.status().ToString().c_str());
      return 1;
    }
  }
  pnc::sim::ServerOptions opts;
  opts.listen = absl::GetFlag(FLAGS_listen);
  opts.tls = absl::GetFlag(FLAGS_tls);
  opts.token = absl::GetFlag(FLAGS_token);
  opts.threads = absl::GetFlag(FLAGS_threads);
  opts.bookmark_interval = absl::GetFlag(FLAGS_bookmark_interval);
  auto server = pnc::sim::ApiServer::Start(&store, opts);
  if (!server.ok()) {
    std::fprintf(stderr, "apiserver: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::string path = absl::GetFlag(FLAGS_write_kubeconfig);
  if (!path.empty()) {
    std::ofstream f(path, std::ios::trunc);
    f << (*server)->Kubeconfig();
    if (!f.good()) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  std::printf("serving %s\n", (*server)->url().c_str());
  std::fflush(stdout);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) absl::SleepFor(absl::Milliseconds(100));
  (*server)->Stop();
  return 0;
}
