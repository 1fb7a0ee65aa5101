#include "rules/plan.h"

#include <algorithm>
#include <bitset>
#include <set>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rules/annotations.h"
#include "rules/values.h"

namespace pnc::rules {
namespace {

using internal::ParseCidr;
using internal::ParsePort;
using internal::QuoteToken;

absl::Status Bad(absl::string_view key, absl::string_view token, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": ", QuoteToken(token, kMaxTokenInMessage), " ", what));
}

// Returns the annotation value after the checks that apply to every value we read (size, control characters).
absl::StatusOr<std::optional<absl::string_view>> GetValue(const std::map<std::string, std::string>& m,
                                                          const char* key) {
  auto it = m.find(key);
  if (it == m.end()) return std::optional<absl::string_view>();
  absl::string_view v = it->second;
  if (v.size() > kMaxAnnotationBytes)
    return absl::InvalidArgumentError(absl::StrCat(key, ": value is ", v.size(),
                                                   " bytes, more than the limit of ", kMaxAnnotationBytes,
                                                   " (starts with ", QuoteToken(v, kMaxTokenInMessage), ")"));
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c == 0x7f) {
      size_t start = i > 16 ? i - 16 : 0;
      return Bad(key, v.substr(start, 32), absl::StrCat("contains a control character at byte ", i));
    }
  }
  return std::optional<absl::string_view>(v);
}

absl::string_view TrimSpaces(absl::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Splits a comma-separated list; empty value -> empty list; empty entry -> error; too many entries -> error.
absl::StatusOr<std::vector<absl::string_view>> SplitList(const char* key, absl::string_view value) {
  std::vector<absl::string_view> out;
  if (TrimSpaces(value).empty()) return out;
  size_t entries = static_cast<size_t>(std::count(value.begin(), value.end(), ',')) + 1;
  if (entries > kMaxListEntries)
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": list has ", entries, " entries, more than the limit of ", kMaxListEntries));
  out.reserve(entries);
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    absl::string_view t = TrimSpaces(part);
    if (t.empty()) return Bad(key, value, "has an empty entry");
    out.push_back(t);
  }
  return out;
}

struct PortList {
  bool star = false;
  std::vector<uint16_t> ports;
};

absl::StatusOr<PortList> ParsePortList(const char* key, absl::string_view value, bool allow_star) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  PortList out;
  std::bitset<65536> seen;
  for (absl::string_view t : *tokens) {
    if (t == "*") {
      if (!allow_star) return Bad(key, t, "is not allowed here (only a list of ports 1..65535)");
      if (tokens->size() != 1) return Bad(key, value, "mixes \"*\" with other entries");
      out.star = true;
      return out;
    }
    auto p = ParsePort(t);
    if (!p) return Bad(key, t, "is not a port (1..65535)");
    if (!seen.test(*p)) {
      seen.set(*p);
      out.ports.push_back(*p);
    }
  }
  return out;
}

struct CidrList {
  bool star = false;
  std::vector<Cidr> v4, v6;
};

absl::StatusOr<CidrList> ParseCidrList(const char* key, absl::string_view value, bool allow_star) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  CidrList out;
  std::set<std::pair<std::string, int>> seen;
  for (absl::string_view t : *tokens) {
    if (t == "*") {
      if (!allow_star) return Bad(key, t, "is not allowed here (only a list of CIDRs)");
      if (tokens->size() != 1) return Bad(key, value, "mixes \"*\" with other entries");
      out.star = true;
      return out;
    }
    auto c = ParseCidr(t);
    if (!c) return Bad(key, t, "is not a CIDR (address/prefix, e.g. 10.0.0.0/8 or fd00::/8)");
    if (!seen.insert({c->cidr.address, c->cidr.prefix_len}).second) continue;
    (c->cidr.family == Family::kIPv4 ? out.v4 : out.v6).push_back(std::move(c->cidr));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseInterfaceList(const char* key, absl::string_view value) {
  auto tokens = SplitList(key, value);
  if (!tokens.ok()) return tokens.status();
  std::vector<std::string> out;
  std::set<absl::string_view> seen;
  for (absl::string_view t : *tokens) {
    if (!internal::IsValidInterfaceName(t))
      return Bad(key, t, "is not an interface name (1..15 of [A-Za-z0-9_.-], not \".\" or \"..\")");
    if (seen.insert(t).second) out.emplace_back(t);
  }
  return out;
}

const ContainerFacts* FindProxy(const PodFacts& pod) {
  for (const auto& c : pod.containers)
    if (c.name == kProxyContainerName) return &c;
  for (const auto& c : pod.init_containers)
    if (c.name == kProxyContainerName) return &c;
  return nullptr;
}

// Kubernetes ids are int64 in the API; Linux ids are uint32 with (uid_t)-1 reserved.
absl::StatusOr<std::optional<uint32_t>> CheckId(std::optional<int64_t> v, const char* field) {
  if (!v) return std::optional<uint32_t>();
  if (*v < 0 || *v >= 0xffffffffLL)
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", *v, " is not a valid Linux id (0..4294967294)"));
  if (*v == 0)
    return std::optional<uint32_t>();  // root proxy: not an identity we can bypass by; use defaults
  return std::optional<uint32_t>(static_cast<uint32_t>(*v));
}

absl::StatusOr<uint32_t> OpenShiftFirstUid(const PodFacts& pod) {
  auto v = GetValue(pod.namespace_annotations, kOpenShiftUidRangeAnnotation);
  if (!v.ok()) return v.status();
  if (!v->has_value())
    return absl::InvalidArgumentError(absl::StrCat("namespace annotation ", kOpenShiftUidRangeAnnotation,
                                                   " is missing: cannot derive the proxy uid on OpenShift "
                                                   "(set runAsUser on the istio-proxy container)"));
  absl::string_view s = TrimSpaces(**v);
  size_t slash = s.find('/');
  if (slash == absl::string_view::npos)
    return Bad(kOpenShiftUidRangeAnnotation, s,
               "is not a uid range (expected <first>/<size>, e.g. 1000650000/10000)");
  auto first = internal::ParseUint32(s.substr(0, slash));
  auto size = internal::ParseUint32(s.substr(slash + 1));
  if (!first || !size || *first == 0 || *size == 0 ||
      static_cast<uint64_t>(*first) + *size - 1 >= 0xffffffffULL)
    return Bad(kOpenShiftUidRangeAnnotation, s,
               "is not a valid uid range (first uid 1.., size 1.., within 0..4294967294)");
  return *first;
}

std::optional<bool> ParseGoBool(absl::string_view v) {
  for (absl::string_view t : {"1", "t", "T", "TRUE", "true", "True"})
    if (v == t) return true;
  for (absl::string_view f : {"0", "f", "F", "FALSE", "false", "False"})
    if (v == f) return false;
  return std::nullopt;
}

}  // namespace

const char* InterceptionModeName(InterceptionMode m) {
  return m == InterceptionMode::kTproxy ? "TPROXY" : "REDIRECT";
}

absl::StatusOr<RedirectPlan> BuildPlan(const PodFacts& pod, const PlanConfig& config) {
  RedirectPlan plan;
  const auto& ann = pod.annotations;

  // Mode.
  {
    auto v = GetValue(ann, kInterceptionModeAnnotation);
    if (!v.ok()) return v.status();
    if (v->has_value()) {
      absl::string_view m = TrimSpaces(**v);
      if (m == "REDIRECT") {
        plan.mode = InterceptionMode::kRedirect;
      } else if (m == "TPROXY") {
        plan.mode = InterceptionMode::kTproxy;
      } else {
        return Bad(kInterceptionModeAnnotation, m, "is not an interception mode (REDIRECT or TPROXY)");
      }
    }
  }

  // Status port (always excluded from inbound capture).
  {
    auto v = GetValue(ann, kStatusPortAnnotation);
    if (!v.ok()) return v.status();
    if (v->has_value()) {
      absl::string_view t = TrimSpaces(**v);
      auto p = ParsePort(t);
      if (!p) return Bad(kStatusPortAnnotation, t, "is not a port (1..65535)");
      plan.status_port = *p;
    }
  }

  // Inbound ports.
  {
    auto v = GetValue(ann, kExcludeInboundPortsAnnotation);
    if (!v.ok()) return v.status();
    auto excl = ParsePortList(kExcludeInboundPortsAnnotation, v->value_or("15020"), false);
    if (!excl.ok()) return excl.status();
    // The CNI plugin's order: the annotation's list (default 15020), then 15020,15021,15090; the status port.
    std::vector<uint16_t> all = excl->ports;
    all.insert(all.end(), {15020, 15021, 15090, plan.status_port});
    std::bitset<65536> seen;
    for (uint16_t p : all) {
      if (seen.test(p)) continue;
      seen.set(p);
      plan.exclude_inbound_ports.push_back(p);
    }
    auto iv = GetValue(ann, kIncludeInboundPortsAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParsePortList(kIncludeInboundPortsAnnotation, iv->value_or("*"), true);
    if (!incl.ok()) return incl.status();
    plan.capture_all_inbound = incl->star;
    for (uint16_t p : incl->ports)
      if (!seen.test(p) && p != kHboneTunnelPort) plan.include_inbound_ports.push_back(p);
  }

  // Outbound ports.
  {
    auto v = GetValue(ann, kExcludeOutboundPortsAnnotation);
    if (!v.ok()) return v.status();
    auto excl = ParsePortList(kExcludeOutboundPortsAnnotation, v->value_or("15020"), false);
    if (!excl.ok()) return excl.status();
    plan.exclude_outbound_ports = std::move(excl->ports);
    auto iv = GetValue(ann, kIncludeOutboundPortsAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParsePortList(kIncludeOutboundPortsAnnotation, iv->value_or(""), false);
    if (!incl.ok()) return incl.status();
    for (uint16_t p : incl->ports)
      if (std::find(plan.exclude_outbound_ports.begin(), plan.exclude_outbound_ports.end(), p) ==
          plan.exclude_outbound_ports.end())
        plan.include_outbound_ports.push_back(p);
  }

  // Outbound CIDRs.
  {
    auto iv = GetValue(ann, kIncludeOutboundIPRangesAnnotation);
    if (!iv.ok()) return iv.status();
    auto incl = ParseCidrList(kIncludeOutboundIPRangesAnnotation, iv->value_or("*"), true);
    if (!incl.ok()) return incl.status();
    plan.capture_all_outbound = incl->star;
    plan.include_outbound_cidrs_v4 = std::move(incl->v4);
    plan.include_outbound_cidrs_v6 = std::move(incl->v6);
    auto ev = GetValue(ann, kExcludeOutboundIPRangesAnnotation);
    if (!ev.ok()) return ev.status();
    auto excl = ParseCidrList(kExcludeOutboundIPRangesAnnotation, ev->value_or(""), false);
    if (!excl.ok()) return excl.status();
    plan.exclude_outbound_cidrs_v4 = std::move(excl->v4);
    plan.exclude_outbound_cidrs_v6 = std::move(excl->v6);
  }

  // Interfaces.
  {
    auto v = GetValue(ann, kExcludeInterfacesAnnotation);
    if (!v.ok()) return v.status();
    auto l = ParseInterfaceList(kExcludeInterfacesAnnotation, v->value_or(""));
    if (!l.ok()) return l.status();
    plan.exclude_interfaces = std::move(*l);
    const char* key = kRerouteVirtualInterfacesAnnotation;
    auto rv = GetValue(ann, key);
    if (!rv.ok()) return rv.status();
    if (!rv->has_value()) {
      key = kKubevirtInterfacesAnnotation;
      rv = GetValue(ann, key);
      if (!rv.ok()) return rv.status();
    }
    auto r = ParseInterfaceList(key, rv->value_or(""));
    if (!r.ok()) return r.status();
    plan.reroute_interfaces = std::move(*r);
  }

  // Proxy identity: container securityContext, else pod securityContext, else OpenShift range, else defaults.
  {
    const ContainerFacts* proxy = FindProxy(pod);
    std::optional<int64_t> uid = proxy && proxy->run_as_user ? proxy->run_as_user : pod.pod_run_as_user;
    std::optional<int64_t> gid = proxy && proxy->run_as_group ? proxy->run_as_group : pod.pod_run_as_group;
    auto u = CheckId(uid, "istio-proxy securityContext.runAsUser");
    if (!u.ok()) return u.status();
    auto g = CheckId(gid, "istio-proxy securityContext.runAsGroup");
    if (!g.ok()) return g.status();
    plan.proxy_uid = config.default_proxy_uid;
    plan.proxy_gid = config.default_proxy_gid;
    if (config.distribution == Distribution::kOpenShift && (!u->has_value() || !g->has_value())) {
      auto first = OpenShiftFirstUid(pod);
      if (!first.ok()) return first.status();
      // The restricted SCC runs the proxy as the first uid of the namespace range; we use it for the gid as
      // well.
      plan.proxy_uid = *first;
      plan.proxy_gid = *first;
    }
    if (u->has_value()) plan.proxy_uid = **u;
    if (g->has_value()) plan.proxy_gid = **g;
  }

  // Per-pod proxy settings the Istio CNI plugin reads from the istio-proxy container's env (Go
  // strconv.ParseBool spellings); the mesh-wide value when the container does not set the variable.
  const ContainerFacts* proxy = FindProxy(pod);
  bool dual_stack = config.dual_stack;
  plan.capture_dns = config.capture_dns;
  if (proxy != nullptr) {
    for (auto [name, field] : {std::pair<const char*, bool*>{kDnsCaptureEnv, &plan.capture_dns},
                               std::pair<const char*, bool*>{kDualStackEnv, &dual_stack}}) {
      auto it = proxy->env.find(name);
      if (it == proxy->env.end()) continue;
      std::optional<bool> b = ParseGoBool(it->second);
      if (!b)
        return Bad(absl::StrCat("istio-proxy env ", name), it->second,
                   "is not a boolean (true/false, 1/0, t/f)");
      *field = *b;
    }
  }

  // Families. istio-iptables always programs IPv4; IPv6 when the pod's (first) address is IPv6, or, with
  // ISTIO_DUAL_STACK, when it has any IPv6 address.
  {
    if (pod.pod_ips.size() > 16)
      return absl::InvalidArgumentError(
          absl::StrCat("status.podIPs: ", pod.pod_ips.size(), " addresses (max 16)"));
    bool has6 = false, primary6 = false;
    for (size_t i = 0; i < pod.pod_ips.size(); ++i) {
      auto f = internal::ParseIpAddressFamily(pod.pod_ips[i]);
      if (!f) return Bad("status.podIPs", pod.pod_ips[i], "is not an IP address");
      if (*f == Family::kIPv6) {
        has6 = true;
        if (i == 0) primary6 = true;
      }
    }
    plan.ipv4 = true;
    plan.ipv6 = pod.pod_ips.empty() ? config.assume_ipv6 : (primary6 || (dual_stack && has6));
  }
  return plan;
}

}  // namespace pnc::rules
