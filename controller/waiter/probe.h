// The waiter's datapath proof (docs/mark.md): from inside the pod's own network namespace, as the waiter's
// uid/gid (never the proxy's: the proxy's traffic bypasses the capture), connect to the target the
// controller named and require that THIS connection arrives on a listener the waiter opened on the capture
// port, with SO_ORIGINAL_DST equal to the target. That only happens when the pod's nat rules redirect it:
//  - the listener binds the capture port before Envoy runs (the waiter is the first init container);
//  - the accepted connection must come from the probe's own client socket (peer == client's local address),
//    so nothing else that connects to the port counts;
//  - the original destination must differ from the address the connection was accepted on, so a direct
//    connection to the capture port (no NAT) never counts, whatever target a forged mark names.
// A failed attempt (no route, no redirect within the attempt's timeout, port in use) is reported with the
// reason; the caller decides whether to try again.
#ifndef PNC_CONTROLLER_WAITER_PROBE_H_
#define PNC_CONTROLLER_WAITER_PROBE_H_

#include <string>

#include "rules/mark.h"

namespace pnc::waiter {

struct ProbeResult {
  bool ok = false;
  std::string message;
};

// One attempt; `spec` must not be `none`. Blocks at most timeout_ms.
ProbeResult RunProbe(const rules::ProbeSpec& spec, int timeout_ms);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_PROBE_H_
