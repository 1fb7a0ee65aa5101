// EnvoyStandIn: the parts of an Istio sidecar's datapath that decide what redirection must let through, for
// traffic-matrix tests in sandbox namespaces. Not a proxy: it opens the sockets Envoy opens and reports
// where connections land.
//  - outbound listener on 15001 (v4 + v6), inbound listener on 15006 (IP_TRANSPARENT in TPROXY mode, as
//    Envoy's inbound listener with transparent: true), DNS listener 15053 (udp + tcp);
//  - the inbound upstream leg to the app: REDIRECT mode binds 127.0.0.6 (::6) like Envoy's
//    InboundPassthroughCluster; TPROXY mode is transparent (IP_TRANSPARENT, bound to the ORIGINAL source
//    address, SO_MARK 1337) like Envoy's original_src listener filter;
//  - everything created as the proxy's identity, so xt_owner / meta skuid see the proxy. That identity
//    depends on the interception mode exactly as Istio's injector sets it (istio/istio
//    manifests/charts/istio-control/istio-discovery/files/injection-template.yaml, istio-proxy
//    securityContext): REDIRECT runs as uid 1337 / gid 1337; TPROXY runs as uid 0 / gid 1337 with
//    NET_ADMIN (runAsUser: 0, runAsGroup: 1337). The difference matters: the transparent upstream leg of a
//    uid-1337 proxy matches the nat `-o lo ! -d 127.0.0.1 --uid-owner 1337 -j ISTIO_IN_REDIRECT` rule and is
//    REDIRECTed back to 127.0.0.1:15006 with a foreign source, and the handshake never completes (the
//    traffic matrix's TPROXY upstream row times out with uid 1337 on every backend; the SYN-ACK from a
//    loopback address towards eth0 is not routable). Istio's uid-0 proxy leaves nat
//    at `-o lo ! --uid-owner 1337 -j RETURN`. Envoy holds NET_ADMIN in TPROXY mode; here the privileged
//    socket options (IP_TRANSPARENT, SO_MARK) are set by the calling (capable) thread on the socket the
//    proxy identity created, which the kernel checks the same way (capability of the caller; the owner
//    match uses the socket file's credentials).
#ifndef PNC_NETNS_TESTING_ENVOY_STANDIN_H_
#define PNC_NETNS_TESTING_ENVOY_STANDIN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/netns.h"
#include "netns/testing/sockets.h"

namespace pnc::netns::testing {

inline constexpr uint16_t kStandInOutboundPort = 15001;
inline constexpr uint16_t kStandInInboundPort = 15006;
inline constexpr uint16_t kStandInDnsPort = 15053;
inline constexpr uint32_t kStandInUpstreamMark = 1337;

// The proxy's process identity as Istio's injector sets it for each interception mode (see above).
struct ProxyIdentity {
  uint32_t uid = 1337, gid = 1337;
};
inline constexpr ProxyIdentity kRedirectModeProxy{1337, 1337};
inline constexpr ProxyIdentity kTproxyModeProxy{0, 1337};

// The original destination of a connection accepted by a capture listener: SO_ORIGINAL_DST when it was
// REDIRECTed (NAT), else its local address (TPROXY does not NAT: the accepted socket IS the original
// destination).
absl::StatusOr<Endpoint> CapturedOriginalDst(int accepted_fd);

struct UpstreamOptions {
  bool transparent = false;  // TPROXY: original source, IP_TRANSPARENT, SO_MARK 1337
  std::string source_ip;     // transparent: the original client address; else 127.0.0.6 / ::6
  uint32_t uid = 1337, gid = 1337;
};

// The proxy's upstream connection to the app at dst_ip:dst_port inside `pod`, within `timeout`.
absl::StatusOr<UniqueFd> ProxyUpstreamConnect(const NetnsHandle& pod, const UpstreamOptions& o,
                                              const std::string& dst_ip, uint16_t dst_port,
                                              absl::Duration timeout);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_ENVOY_STANDIN_H_
