// The waiter's datapath proof (docs/mark.md): from inside the pod's own network namespace, as the waiter's
// uid/gid (never the proxy's: the proxy's traffic bypasses the capture), connect to the target the
// controller named and require that THIS connection arrives on a listener the waiter opened on the capture
// port, with SO_ORIGINAL_DST equal to the target. That only happens when the pod's nat rules redirect it:
//  - the listener binds the capture port before Envoy runs (the waiter is the first init container);
//  - the accepted connection must come from the client's own address and carry the 16 random bytes the
//    probe's own client socket sent first, so nothing else that connects to the port counts (not the client's
//    source port: NAT moves it when the redirected reply tuple clashes with a conntrack entry of an earlier
//    connection from the same port); a connection from another address is dropped at once;
//  - the original destination must differ from the address the connection was accepted on, so a direct
//    connection to the capture port (no NAT) never counts, whatever target a forged mark names.
// A failed attempt (no route, no redirect within the attempt's timeout, port in use) is reported with the
// reason; the caller decides whether to try again.
#ifndef PNC_CONTROLLER_WAITER_PROBE_H_
#define PNC_CONTROLLER_WAITER_PROBE_H_

#include <cstdint>
#include <string>

#include "rules/mark.h"

namespace pnc::waiter {

struct ProbeResult {
  bool ok = false;
  std::string message;
  // The source port our connection arrived on the capture port with (0 if it did not arrive); it differs from
  // the client's own port when NAT moved it.
  uint16_t arrived_from_port = 0;
};

struct ProbeOptions {
  int timeout_ms = 1000;     // one attempt blocks at most this long
  uint16_t client_port = 0;  // 0: an ephemeral port (production); tests pin it to make NAT move it
};

// One attempt; `spec` must not be `none`. A connect the network refuses ends the attempt at once.
ProbeResult RunProbe(const rules::ProbeSpec& spec, const ProbeOptions& options);
inline ProbeResult RunProbe(const rules::ProbeSpec& spec, int timeout_ms) {
  return RunProbe(spec, ProbeOptions{timeout_ms, 0});
}

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_PROBE_H_
