// The simulator: runs a scenario against the real controller and waiter and prints the report.
//
//   bazel run //simulator -- --scenario=simulator/scenarios/smoke.textproto
//       --controller_binary=$PWD/bazel-bin/controller/controller
//       --waiter_binary=$PWD/bazel-bin/controller/waiter/waiter
//   (or simply `bazel run //e2e:demo -- smoke|burst|races|multinode`)
//
// Needs root or unprivileged user namespaces (each fake pod is a real network namespace inside a private
// sandbox; nothing touches the host's network). Exit code: 0 when every expectation held, 1 otherwise, 2 on
// setup errors.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "netns/testing/sandbox.h"
#include "simulator/priority.h"
#include "simulator/process.h"
#include "simulator/runner.h"
#include "tools/cli/help.h"

ABSL_FLAG(std::string, scenario, "", "scenario text proto (simulator/scenarios/*.textproto)");
ABSL_FLAG(std::string, controller_binary, "", "the controller binary (one child process per fake node)");
ABSL_FLAG(std::string, waiter_binary, "", "the waiter binary (the init container of mesh pods)");
ABSL_FLAG(std::string, backend, "iptc", "--backend passed to the controller");
ABSL_FLAG(std::string, helm_binary, "", "helm, for scenarios with helm steps");
ABSL_FLAG(std::string, chart, "", "the chart directory helm steps install");
ABSL_FLAG(std::vector<std::string>, controller_args, {}, "extra controller flags (comma-separated)");
ABSL_FLAG(std::string, report_json, "", "also write the report as JSON here");
ABSL_FLAG(std::string, work_dir, "",
          "logs, kubeconfig and Downward API volumes (default /tmp/pnc-sim-<pid>)");
ABSL_FLAG(bool, tls, true, "serve the API over HTTPS with a bearer token");
ABSL_FLAG(bool, verbose, false, "log every timeline step");
ABSL_FLAG(std::string, pause_binary, "",
          "nodes with runtime CONTAINERD: the static pause binary (//netns/cri/testing:pause) for the "
          "sandbox image");
ABSL_FLAG(
    std::string, waiter_image_archive, "",
    "nodes with runtime CONTAINERD: the waiter image's oci-archive (tools/images/build.sh --only waiter)");
ABSL_FLAG(std::string, waiter_image, "",
          "nodes with runtime CONTAINERD: the reference the waiter archive holds (quay.io/.../waiter:TAG)");

namespace {

// `bazel run` starts in the runfiles tree; resolve workspace-relative paths against the user's directory.
std::string Resolve(const std::string& path) {
  if (path.empty() || path[0] == '/' || ::access(path.c_str(), F_OK) == 0) return path;
  for (const char* env : {"BUILD_WORKING_DIRECTORY", "BUILD_WORKSPACE_DIRECTORY"}) {
    if (const char* dir = std::getenv(env)) {
      std::string p = absl::StrCat(dir, "/", path);
      if (::access(p.c_str(), F_OK) == 0) return p;
    }
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists this binary's own flags (absl matches the main file by name otherwise).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) { return absl::StrContains(file, "simulator/"); };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Runs a simulator scenario (fake API server, fake nodes on real network namespaces, the real "
      "controller and "
      "waiter) and prints a per-pod report.");
  if (int rc = pnc::cli::AnswerHelp(argc, argv, "simulator/main.cc"); rc >= 0) return rc;
  absl::ParseCommandLine(argc, argv);
  auto scenario = pnc::sim::LoadScenario(Resolve(absl::GetFlag(FLAGS_scenario)));
  if (!scenario.ok()) {
    std::fprintf(stderr, "simulator: %s\n", scenario.status().ToString().c_str());
    return 2;
  }
  // Before any thread and the sandbox's user namespace: the simulated API server and runtime are served
  // ahead of the node's own work and of the controller (simulator/priority.h).
  if (absl::Status s = pnc::sim::ServeAheadOfNodeWork(); !s.ok())
    std::fprintf(stderr, "simulator: priorities not set (%s); timings include the simulator's own load\n",
                 s.ToString().c_str());
  bool need_netns = false;
  for (const auto& n : scenario->nodes())
    need_netns |= !n.lightweight() && n.runtime() != pnc::sim::proto::Node::CONTAINERD;
  if (need_netns) {
    pnc::sim::PreloadNetfilterModules();  // module autoloading does not work from inside the sandbox
    // Before any thread exists: the sandbox unshares the user namespace of the whole process.
    auto sb = pnc::netns::testing::Sandbox::Get();
    if (!sb.ok()) {
      std::fprintf(
          stderr,
          "simulator: cannot create the network namespace sandbox (needs root or user namespaces): %s\n",
          sb.status().ToString().c_str());
      return 2;
    }
    if (absl::Status s = pnc::sim::StartNetnsExecutorAsNodeWork((*sb)->peer()); !s.ok())
      std::fprintf(stderr, "simulator: netns executor: %s\n", s.ToString().c_str());
  }
  pnc::sim::StartServingThread();
  pnc::sim::RunnerOptions o;
  o.controller_binary = Resolve(absl::GetFlag(FLAGS_controller_binary));
  o.waiter_binary = Resolve(absl::GetFlag(FLAGS_waiter_binary));
  o.backend = absl::GetFlag(FLAGS_backend);
  o.controller_extra_args = absl::GetFlag(FLAGS_controller_args);
  o.helm_binary = absl::GetFlag(FLAGS_helm_binary);
  o.chart_dir = absl::GetFlag(FLAGS_chart);
  o.pause_binary = Resolve(absl::GetFlag(FLAGS_pause_binary));
  o.waiter_image_archive = Resolve(absl::GetFlag(FLAGS_waiter_image_archive));
  o.waiter_image = absl::GetFlag(FLAGS_waiter_image);
  o.work_dir = absl::GetFlag(FLAGS_work_dir);
  if (o.work_dir.empty()) o.work_dir = absl::StrCat("/tmp/pnc-sim-", ::getpid());
  o.tls = absl::GetFlag(FLAGS_tls);
  o.verbose = absl::GetFlag(FLAGS_verbose);
  auto report = pnc::sim::RunScenario(*scenario, o);
  if (!report.ok()) {
    std::fprintf(stderr, "simulator: %s\n", report.status().ToString().c_str());
    return 2;
  }
  std::fputs(report->text.c_str(), stdout);
  std::string json_path = absl::GetFlag(FLAGS_report_json);
  if (!json_path.empty()) {
    // Relative output paths are relative to where the user ran `bazel run`.
    const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
    if (json_path[0] != '/' && cwd != nullptr) json_path = absl::StrCat(cwd, "/", json_path);
    std::ofstream f(json_path, std::ios::trunc);
    f << report->json.dump(2) << "\n";
    if (!f.good()) std::fprintf(stderr, "simulator: cannot write %s\n", json_path.c_str());
  }
  return report->passed ? 0 : 1;
}
