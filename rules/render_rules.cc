// render: print the membership decision, the plan and the rules for a sample pod, without touching any
// namespace.
//
//   bazel run //rules:render_rules -- [flags] [annotation=value ...]
//   bazel run //rules:render_rules -- --pod_ips=10.0.0.5,fd00::5
//       sidecar.istio.io/interceptionMode=TPROXY traffic.sidecar.istio.io/includeInboundPorts=8080,9090
//   (one command line)
//
// Positional arguments are pod annotations (key=value; the value may contain commas). The pod is
// Istio-injected (istio-proxy container + sidecar.istio.io/status) unless --no-injected.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rules/annotations.h"
#include "rules/membership.h"
#include "rules/plan.h"
#include "rules/render.h"
#include "tools/cli/help.h"

ABSL_FLAG(std::vector<std::string>, pod_ips, {"10.244.1.5"},
          "pod IPs (comma-separated; empty = not known yet)");
ABSL_FLAG(std::string, format, "all", "what to print: iptables | nft | save | all");
ABSL_FLAG(bool, injected, true, "the pod carries an istio-proxy container and sidecar.istio.io/status");
ABSL_FLAG(bool, host_network, false, "spec.hostNetwork");
ABSL_FLAG(bool, capture_dns, false, "controller-wide DNS capture");
ABSL_FLAG(bool, assume_ipv6, false, "program IPv6 even without an IPv6 pod IP");
ABSL_FLAG(std::string, openshift_uid_range, "",
          "OpenShift mode with this namespace openshift.io/sa.scc.uid-range (e.g. 1000650000/10000)");
ABSL_FLAG(int64_t, proxy_run_as_user, 0, "istio-proxy securityContext.runAsUser (0 = unset)");
ABSL_FLAG(int64_t, proxy_run_as_group, 0, "istio-proxy securityContext.runAsGroup (0 = unset)");
ABSL_FLAG(std::vector<std::string>, namespace_annotations, {},
          "namespace annotations key=value (comma-separated, so values without commas only)");

namespace pnc::rules {
namespace {

int Main(const std::vector<char*>& args) {
  PodFacts pod;
  pod.name = "sample";
  pod.namespace_name = "default";
  pod.host_network = absl::GetFlag(FLAGS_host_network);
  pod.containers.push_back(ContainerFacts{.name = "app"});
  if (absl::GetFlag(FLAGS_injected)) {
    ContainerFacts proxy{.name = kProxyContainerName};
    if (int64_t u = absl::GetFlag(FLAGS_proxy_run_as_user)) proxy.run_as_user = u;
    if (int64_t g = absl::GetFlag(FLAGS_proxy_run_as_group)) proxy.run_as_group = g;
    pod.containers.push_back(proxy);
    pod.annotations[kSidecarStatusAnnotation] = R"({"containers":["istio-proxy"]})";
  }
  for (const auto& ip : absl::GetFlag(FLAGS_pod_ips))
    if (!ip.empty()) pod.pod_ips.push_back(ip);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string kv = args[i];
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      std::cerr << "render: positional argument " << kv << " is not annotation=value\n";
      return 2;
    }
    pod.annotations[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& kv : absl::GetFlag(FLAGS_namespace_annotations)) {
    size_t eq = kv.find('=');
    if (eq != std::string::npos) pod.namespace_annotations[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  PlanConfig config;
  config.capture_dns = absl::GetFlag(FLAGS_capture_dns);
  config.assume_ipv6 = absl::GetFlag(FLAGS_assume_ipv6);
  if (std::string r = absl::GetFlag(FLAGS_openshift_uid_range); !r.empty()) {
    config.distribution = Distribution::kOpenShift;
    pod.namespace_annotations[kOpenShiftUidRangeAnnotation] = r;
  }

  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "all" && format != "iptables" && format != "nft" && format != "save") {
    std::cerr << "render: unknown --format " << format << "\n";
    return 2;
  }
  MembershipDecision m = DecideMembership(pod);
  if (format == "all") std::cout << "# member: " << (m.member ? "yes" : "no") << " (" << m.reason << ")\n";
  auto plan = BuildPlan(pod, config);
  if (!plan.ok()) {
    std::cerr << kStatusAnnotation << ": " << kStatusErrorPrefix << plan.status().message() << "\n";
    return 1;
  }
  Ruleset rs = BuildRuleset(*plan);
  if (format == "all")
    std::cout << "# mode " << InterceptionModeName(plan->mode) << ", proxy uid " << plan->proxy_uid << " gid "
              << plan->proxy_gid << (plan->capture_dns ? ", DNS capture" : "") << "\n";
  for (const auto& fr : rs.families) {
    if (format == "all" || format == "iptables")
      std::cout << (format == "all"
                        ? absl::StrCat("\n## iptables-restore --noflush (", FamilyName(fr.family), ")\n")
                        : "")
                << RenderIptablesRestore(fr);
    if (format == "save") std::cout << RenderIptablesSave(fr);
  }
  if (format == "all" || format == "nft")
    std::cout << (format == "all" ? "\n## nft -f\n" : "") << RenderNftables(rs);
  if (format == "all" && (!rs.routes.empty() || !rs.loopback_addresses.empty()))
    std::cout << "\n## routing\n" << RenderPolicyRoutes(rs);
  return 0;
}

}  // namespace
}  // namespace pnc::rules

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prints the membership decision, plan and rules (iptables-restore per family, nft) for a sample pod.\n"
      "Usage: render_rules [flags] [annotation=value ...]\n"
      "Example: render_rules --pod_ips=10.0.0.5,fd00::5 sidecar.istio.io/interceptionMode=TPROXY "
      "traffic.sidecar.istio.io/includeInboundPorts=8080,9090");
  if (int rc = pnc::cli::AnswerHelp(argc, argv, "render_rules.cc"); rc >= 0) return rc;
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return pnc::rules::Main(args);
}
