#include "rules/fuzz_entry.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "rules/annotations.h"
#include "rules/iptables_save.h"
#include "rules/membership.h"
#include "rules/plan.h"
#include "rules/render.h"

namespace pnc::rules {
namespace {

[[noreturn]] void Fail(const char* what, absl::string_view detail) {
  std::fprintf(stderr, "fuzz invariant violated: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void CheckRoundTrip(const FamilyRules& fr) {
  std::string save = RenderIptablesSave(fr);
  auto back = ParseIptablesSave(fr.family, save);
  if (!back.ok()) Fail("rendered rules do not parse", back.status().message());
  if (!(*back == fr)) Fail("rendered rules parse to a different model", save);
}

void FuzzPlan(absl::string_view in) {
  static const char* const kKeys[] = {
      kInterceptionModeAnnotation,
      kIncludeOutboundIPRangesAnnotation,
      kExcludeOutboundIPRangesAnnotation,
      kIncludeInboundPortsAnnotation,
      kExcludeInboundPortsAnnotation,
      kIncludeOutboundPortsAnnotation,
      kExcludeOutboundPortsAnnotation,
      kExcludeInterfacesAnnotation,
      kRerouteVirtualInterfacesAnnotation,
      kKubevirtInterfacesAnnotation,
      kStatusPortAnnotation,
      kLegacyInitializeAnnotation,
  };
  constexpr size_t kNumKeys = sizeof(kKeys) / sizeof(kKeys[0]);
  PlanConfig config;
  PodFacts pod;
  pod.name = "fuzz";
  pod.containers.push_back(ContainerFacts{.name = "istio-proxy"});
  pod.annotations[kSidecarStatusAnnotation] = "{}";
  if (!in.empty()) {
    uint8_t bits = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    if (bits & 1) config.distribution = Distribution::kOpenShift;
    config.capture_dns = bits & 2;
    config.assume_ipv6 = bits & 4;
    if (bits & 8) pod.annotations[kInterceptionModeAnnotation] = "TPROXY";
    pod.host_network = bits & 16;
  }
  while (!in.empty()) {
    size_t nl = in.find('\n');
    absl::string_view entry = in.substr(0, nl);
    in = nl == absl::string_view::npos ? absl::string_view() : in.substr(nl + 1);
    if (entry.empty()) continue;
    uint8_t sel = static_cast<uint8_t>(entry[0]) % (kNumKeys + 4);
    absl::string_view value = entry.substr(1);
    if (sel < kNumKeys) {
      pod.annotations[kKeys[sel]] = std::string(value);
    } else if (sel == kNumKeys) {
      pod.namespace_annotations[kOpenShiftUidRangeAnnotation] = std::string(value);
    } else if (sel == kNumKeys + 1) {
      pod.pod_ips.emplace_back(value);
    } else if (sel == kNumKeys + 2) {
      int64_t v = 0;
      for (char c : value.substr(0, 12)) v = v * 10 + (static_cast<unsigned char>(c) % 10);
      if (!value.empty() && value[0] == '-') v = -v;
      pod.containers[0].run_as_user = v;
    } else {
      size_t eq = value.find('=');
      if (eq != absl::string_view::npos)
        pod.annotations[std::string(value.substr(0, eq))] = std::string(value.substr(eq + 1));
    }
  }
  MembershipDecision m = DecideMembership(pod);
  if (m.reason.empty() || m.reason.size() > 512 || m.reason.find('\n') != std::string::npos)
    Fail("bad membership reason", m.reason);
  auto plan = BuildPlan(pod, config);
  if (!plan.ok()) {
    absl::string_view msg = plan.status().message();
    if (plan.status().code() != absl::StatusCode::kInvalidArgument) Fail("unexpected status code", msg);
    if (msg.empty() || msg.size() > 512) Fail("error message empty or unbounded", msg.substr(0, 600));
    for (char c : msg)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) Fail("control character in error message", msg);
    return;
  }
  Ruleset rs = BuildRuleset(*plan);
  if (rs.families.empty()) Fail("plan without families", "");
  for (const auto& fr : rs.families) {
    CheckRoundTrip(fr);
    if (RenderIptablesRestore(fr).empty()) Fail("empty restore text", "");
  }
  if (RenderNftables(rs).empty()) Fail("empty nft script", "");
}

void FuzzSave(Family family, absl::string_view in) {
  auto parsed = ParseIptablesSave(family, in);
  if (!parsed.ok()) return;
  for (const auto& t : parsed->tables)
    for (const auto& c : t.chains)
      if (c.builtin() && c.rules.empty()) Fail("empty built-in chain returned", c.name);
  CheckRoundTrip(*parsed);
  (void)RenderIptablesRestoreReplacing(*parsed, *parsed);
}

}  // namespace

int FuzzOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.empty()) return 0;
  uint8_t sel = static_cast<uint8_t>(in[0]);
  in.remove_prefix(1);
  if (sel % 2 == 0) {
    FuzzPlan(in);
  } else {
    FuzzSave(sel & 2 ? Family::kIPv6 : Family::kIPv4, in);
  }
  return 0;
}

}  // namespace pnc::rules
