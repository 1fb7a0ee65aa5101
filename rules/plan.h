// RedirectPlan: the validated, typed intent of one pod's redirection, and the Ruleset it turns into.
//
//   PodFacts + PlanConfig --BuildPlan--> RedirectPlan --BuildRuleset--> Ruleset --render.h--> text
//
// BuildPlan is the only place that reads untrusted pod input (annotations, securityContext, pod IPs). It is
// strict: every malformed value is an InvalidArgument whose message names the annotation (or field) and the
// offending token, e.g.  traffic.sidecar.istio.io/excludeInboundPorts: "70000" is not a port (1..65535)
// Tokens in messages are C-escaped and truncated to kMaxTokenInMessage bytes, because the message ends up in
// a Kubernetes Event and in the pod's status annotation.
//
// Parsing rules (see shared/notes/istio-redirect-spec.md for the annotation table and defaults):
//  - Values are comma-separated; spaces around entries are trimmed; an empty value is an empty list; an empty
//  entry
//    inside a non-empty list ("80,,81") is an error.
//  - Any annotation value longer than kMaxAnnotationBytes, or containing a control character (< 0x20 or
//  0x7f), is an
//    error (checked first, so a 1 MB value is rejected without being split).
//  - Lists longer than kMaxListEntries are an error. Duplicate entries are removed (first occurrence kept).
//  - Ports: decimal 1..65535, no signs, no ranges. "*" only for includeInboundPorts, and only alone.
//  - CIDRs: "address/prefix" (prefix required), IPv4 or IPv6, parsed with inet_pton. Host bits set are
//  NORMALISED
//    (10.1.2.3/8 -> 10.0.0.0/8), like Istio does; the canonical form is what goes into rules. "*" only for
//    includeOutboundIPRanges, alone. Lists are split per family.
//  - Interface names: 1..15 bytes, not "." or "..", and only [A-Za-z0-9_.-] (stricter than Linux, which also
//  allows
//    e.g. '+' and '@'; those have special meaning in iptables/nft or would need quoting).
//  - interceptionMode: exactly REDIRECT or TPROXY.
#ifndef PNC_RULES_PLAN_H_
#define PNC_RULES_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/inputs.h"
#include "rules/ruleset.h"

namespace pnc::rules {

inline constexpr size_t kMaxAnnotationBytes = 16 * 1024;
inline constexpr size_t kMaxListEntries = 512;
inline constexpr size_t kMaxTokenInMessage = 64;

// Fixed Istio ports / marks (spec note, "Ports and identities").
inline constexpr uint16_t kOutboundCapturePort = 15001;
inline constexpr uint16_t kInboundCapturePort = 15006;
inline constexpr uint16_t kHboneTunnelPort = 15008;
inline constexpr uint16_t kDnsCapturePort = 15053;
inline constexpr uint16_t kDefaultStatusPort = 15020;
inline constexpr uint32_t kTproxyMark = 1337;  // 0x539
// Envoy outbound -> own pod IP on lo (Istio's OutboundMark).
inline constexpr uint32_t kTproxyOutboundMark = 1338;
inline constexpr uint32_t kTproxyRouteTable = 133;
inline constexpr uint16_t kDnsUpstreamCtZone = 1;  // proxy <-> upstream DNS server
inline constexpr uint16_t kDnsCapturedCtZone = 2;  // app <-> DNS proxy (before/after NAT)

enum class InterceptionMode { kRedirect, kTproxy };
const char* InterceptionModeName(InterceptionMode m);  // "REDIRECT" / "TPROXY"

struct RedirectPlan {
  InterceptionMode mode = InterceptionMode::kRedirect;
  uint32_t proxy_uid = 1337;
  uint32_t proxy_gid = 1337;

  bool ipv4 = true;   // program iptables (v4) / ip table
  bool ipv6 = false;  // program ip6tables / ip6 table

  // Inbound. capture_all_inbound ("*"): everything but exclude_inbound_ports (and 15008) goes to 15006.
  // Otherwise only include_inbound_ports (already minus exclusions); both empty/false = no inbound capture.
  bool capture_all_inbound = true;
  std::vector<uint16_t> include_inbound_ports;
  std::vector<uint16_t> exclude_inbound_ports;  // always contains 15090, 15021, 15020 and the status port

  // Outbound.
  std::vector<uint16_t> include_outbound_ports;  // redirected regardless of destination CIDR
  std::vector<uint16_t> exclude_outbound_ports;  // bypass (tcp and udp)
  bool capture_all_outbound = true;              // includeOutboundIPRanges "*"
  std::vector<Cidr> include_outbound_cidrs_v4;   // used when !capture_all_outbound
  std::vector<Cidr> include_outbound_cidrs_v6;
  std::vector<Cidr> exclude_outbound_cidrs_v4;
  std::vector<Cidr> exclude_outbound_cidrs_v6;

  // Interfaces.
  std::vector<std::string> exclude_interfaces;  // neither inbound nor outbound capture on these
  std::vector<std::string>
      reroute_interfaces;  // tcp arriving on these goes to the outbound capture (VMs, KubeVirt)

  uint16_t status_port = kDefaultStatusPort;
  // ISTIO_META_DNS_CAPTURE: tcp/udp dport 53 -> 15053 (nat) + conntrack zones (raw).
  bool capture_dns = false;

  friend bool operator==(const RedirectPlan&, const RedirectPlan&) = default;
};

// Validates and combines pod input and controller config. Pure and deterministic.
absl::StatusOr<RedirectPlan> BuildPlan(const PodFacts& pod, const PlanConfig& config);

// Rule layout (layout.cc; per family; goldens in rules/testdata/golden show every variant). It follows
// istio-iptables (tools/istio-iptables/pkg/capture/run.go) as Istio's CNI plugin drives it (capture-all DNS,
// excludeOutboundPorts default 15020), rule for rule and in Istio's order:
//   raw     (DNS) OUTPUT -> ISTIO_OUTPUT_DNS: proxy uid/gid udp dport 53 -> CT zone 1, sport 15053 -> zone 2,
//           then udp dport 53 -> zone 2;  PREROUTING -> ISTIO_INBOUND: udp sport 53 -> zone 1
//   mangle  (TPROXY) PREROUTING -p tcp -> ISTIO_INBOUND: mark 1337 RETURN, -s 127.0.0.6 -i lo RETURN,
//           -i lo mark != 1338 RETURN, excluded ports RETURN, ctstate RELATED,ESTABLISHED -> ISTIO_DIVERT
//           (MARK 1337, ACCEPT), rest -> ISTIO_TPROXY (! -d 127.0.0.1 TPROXY 15006 mark 1337);
//           PREROUTING -p tcp mark 1337 -> ISTIO_SAVE_MARK (CONNMARK save);
//           OUTPUT -> ISTIO_OUTPUT: -o lo mark 1337 RETURN, proxy uid/gid ! -d 127.0.0.1 -o lo MARK 1338,
//           connmark 1337 CONNMARK restore;  Ruleset.routes: fwmark 1337 -> table 133 (local default via lo)
//   nat     PREROUTING -> [reroute: -i IF [-d included CIDR] -> ISTIO_REDIRECT] [REDIRECT: -p tcp ->
//           ISTIO_INBOUND: 15008 RETURN, excluded ports RETURN, rest (or listed ports) -> ISTIO_IN_REDIRECT]
//           OUTPUT -> ISTIO_OUTPUT: excluded ports tcp+udp RETURN, -s 127.0.0.6 -o lo RETURN, per proxy uid
//           then gid (lo ! -d 127.0.0.1 tcp ! 15008 -> ISTIO_IN_REDIRECT; lo non-proxy RETURN unless loopback
//           is an included range; proxy RETURN), [DNS: -> ISTIO_OUTPUT_DNS: tcp/udp dport 53 -> REDIRECT
//           15053], -d 127.0.0.1 RETURN, excluded CIDRs RETURN, included ports and CIDRs (or all) ->
//           ISTIO_REDIRECT (REDIRECT 15001); ISTIO_IN_REDIRECT = REDIRECT 15006
// Differences from istio-iptables, none of which changes what a packet meets (the traffic matrix,
// netns/traffic_matrix_test.cc, runs both spellings' outcomes as facts):
//  - built-in chains hold only our jumps (exact cleanup and read-back), so Istio's `-i/-o IF -j RETURN` in
//    PREROUTING/OUTPUT (excluded and rerouted interfaces) are the first RETURNs of the chain they guard, and
//    CONNMARK --save-mark sits in ISTIO_SAVE_MARK, the mangle OUTPUT rules in mangle ISTIO_OUTPUT;
//  - Istio's `-m multiport ! --dports 53,15008` (DNS, uid rule) is a tcp/53 RETURN followed by `! --dport
//    15008`: the proxy's tcp/53 on lo returns in both;
//  - dead chains are not created (nat ISTIO_INBOUND in TPROXY mode; mangle ISTIO_INBOUND without inbound
//    capture), and our jumps into built-in chains are appended as one block (Istio inserts reroute jumps at
//    position 1 and appends the rest: they differ only when a foreign rule already sits in nat PREROUTING).
//
// Pure and deterministic: chains of each table are built-ins first (fixed order), then ours sorted by name
// (the order iptables-save prints them in, so a read-back compares equal). Built-in chains only ever hold
// jumps to ISTIO_* chains.
Ruleset BuildRuleset(const RedirectPlan& plan);

}  // namespace pnc::rules

#endif  // PNC_RULES_PLAN_H_
