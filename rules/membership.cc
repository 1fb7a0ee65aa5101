#include "rules/membership.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rules/annotations.h"
#include "rules/values.h"

namespace pnc::rules {
namespace {

const std::string* Lookup(const std::map<std::string, std::string>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

bool HasProxy(const PodFacts& pod) {
  for (const auto& c : pod.containers)
    if (c.name == kProxyContainerName) return true;
  for (const auto& c : pod.init_containers)
    if (c.name == kProxyContainerName && c.restart_policy_always) return true;
  return false;
}

bool HasIstioInit(const PodFacts& pod) {
  for (const auto& c : pod.init_containers)
    if (c.name == kIstioInitContainerName) return true;
  return false;
}

MembershipDecision No(std::string reason) { return {false, std::move(reason)}; }
MembershipDecision Yes(std::string reason) { return {true, std::move(reason)}; }

}  // namespace

MembershipDecision DecideMembership(const PodFacts& pod) {
  using internal::QuoteToken;
  if (pod.host_network)
    return No("hostNetwork pod: it shares the node's network namespace, never redirected");

  // Opt-out: label wins over annotation (Istio's precedence).
  const std::string* inject = Lookup(pod.labels, kInjectLabel);
  const char* inject_source = "label";
  if (inject == nullptr) {
    inject = Lookup(pod.annotations, kInjectAnnotation);
    inject_source = "annotation";
  }
  if (inject != nullptr && *inject == "false")
    return No(absl::StrCat("opted out by ", inject_source, " ", kInjectLabel, "=false"));

  if (HasIstioInit(pod))
    return No("pod has an istio-init init container, which programs the redirection itself");

  // Istio's "no redirection at all" mode (the proxy runs, but traffic reaches it only when addressed to it):
  // not a member, never an error.
  if (const std::string* mode = Lookup(pod.annotations, kInterceptionModeAnnotation);
      mode != nullptr && absl::StripAsciiWhitespace(*mode) == "NONE")
    return No(absl::StrCat(kInterceptionModeAnnotation, "=NONE: no traffic redirection for this pod"));

  const bool proxy = HasProxy(pod);
  const bool injected = Lookup(pod.annotations, kSidecarStatusAnnotation) != nullptr;
  if (proxy && injected)
    return Yes(absl::StrCat("Istio-injected pod (", kProxyContainerName, " container and ",
                            kSidecarStatusAnnotation, " annotation)"));

  // 2018-compatible opt-in. An explicit value on the pod decides; otherwise the namespace's.
  if (const std::string* v = Lookup(pod.annotations, kLegacyInitializeAnnotation)) {
    if (*v == "true") return Yes(absl::StrCat("pod annotation ", kLegacyInitializeAnnotation, "=true"));
    if (*v == "false") return No(absl::StrCat("pod annotation ", kLegacyInitializeAnnotation, "=false"));
    return No(absl::StrCat("pod annotation ", kLegacyInitializeAnnotation, " has value ", QuoteToken(*v),
                           ", expected \"true\" or \"false\""));
  }
  if (const std::string* v = Lookup(pod.namespace_annotations, kLegacyInitializeAnnotation)) {
    if (*v == "true") return Yes(absl::StrCat("namespace annotation ", kLegacyInitializeAnnotation, "=true"));
    if (*v == "false")
      return No(absl::StrCat("namespace annotation ", kLegacyInitializeAnnotation, "=false"));
    return No(absl::StrCat("namespace annotation ", kLegacyInitializeAnnotation, " has value ",
                           QuoteToken(*v), ", expected \"true\" or \"false\""));
  }

  if (proxy)
    return No(absl::StrCat("has an ", kProxyContainerName, " container but no ", kSidecarStatusAnnotation,
                           " annotation (not injected by Istio) and no opt-in"));
  if (injected)
    return No(absl::StrCat("has the ", kSidecarStatusAnnotation, " annotation but no ", kProxyContainerName,
                           " container"));
  return No("not in the mesh: no istio-proxy sidecar and no istio-pod-network-controller/initialize opt-in");
}

}  // namespace pnc::rules
