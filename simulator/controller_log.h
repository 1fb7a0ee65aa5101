// What the controller's JSON log (controller/log.h) says about each pod, for the simulator's report.
#ifndef PNC_SIMULATOR_CONTROLLER_LOG_H_
#define PNC_SIMULATOR_CONTROLLER_LOG_H_

#include <map>
#include <string>

namespace pnc::sim {

// Per pod UID, the time the reconcile that last marked it `initialized` spent waiting for the locator (the
// container runtime's answers): the `locate_ms` field of its last "pod initialized" line. Lines that are not
// JSON objects or lack the fields are skipped; a missing file gives an empty map.
std::map<std::string, double> LocateMsByPod(const std::string& log_path);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_CONTROLLER_LOG_H_
