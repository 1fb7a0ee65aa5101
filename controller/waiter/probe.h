// --probe: proves from inside the pod that outbound redirection is active, like Istio's istio-validation
// container. It listens on the outbound capture port (15001; the sidecar is not running yet, so the port is
// free), connects to a TEST-NET-1 address (RFC 5737, never routed), and succeeds only if its own listener
// accepts that connection and SO_ORIGINAL_DST names the TEST-NET address. Without redirection the SYN goes
// nowhere and the probe fails. Must run as a uid other than the proxy's (the proxy's traffic bypasses
// redirection).
#ifndef PNC_CONTROLLER_WAITER_PROBE_H_
#define PNC_CONTROLLER_WAITER_PROBE_H_

#include <cstdint>
#include <string>

namespace pnc::waiter {

struct ProbeOptions {
  uint16_t capture_port = 15001;
  std::string target_ip = "192.0.2.1";  // TEST-NET-1
  uint16_t target_port = 15002;
  int timeout_ms = 3000;
};

struct ProbeResult {
  bool ok = false;
  std::string message;
};

ProbeResult RunProbe(const ProbeOptions& options);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_PROBE_H_
