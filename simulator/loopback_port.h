// A free TCP port on 127.0.0.1: bound and released at once, for a process the simulator starts right after
// (a controller's metrics server). Another process may take it in between; callers treat a failed bind of the
// started process as a failure of that start, not a hang.
#ifndef PNC_SIMULATOR_LOOPBACK_PORT_H_
#define PNC_SIMULATOR_LOOPBACK_PORT_H_

#include "absl/status/statusor.h"

namespace pnc::sim {

absl::StatusOr<int> FreeLoopbackPort();

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_LOOPBACK_PORT_H_
