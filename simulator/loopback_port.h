// Loopback helpers of the simulator.
//
// FreeLoopbackPort: a free TCP port on 127.0.0.1: bound and released at once, for a process the simulator
// starts right after (a controller's metrics server). Another process may take it in between; callers treat a
// failed bind of the started process as a failure of that start, not a hang.
#ifndef PNC_SIMULATOR_LOOPBACK_PORT_H_
#define PNC_SIMULATOR_LOOPBACK_PORT_H_

#include <string>

#include "absl/status/statusor.h"

namespace pnc::sim {

absl::StatusOr<int> FreeLoopbackPort();

// GET http://127.0.0.1:<port><path> (HTTP/1.1, Connection: close, 1 s receive timeout): the whole answer
// (status line, headers, body); "" when unreachable.
std::string HttpGet(int port, const std::string& path);
bool HttpGetOk(int port, const std::string& path);  // answered 200

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_LOOPBACK_PORT_H_
