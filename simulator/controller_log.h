// What the controller's JSON log (controller/log.h) says about each pod, for the simulator's report.
#ifndef PNC_SIMULATOR_CONTROLLER_LOG_H_
#define PNC_SIMULATOR_CONTROLLER_LOG_H_

#include <map>
#include <string>

namespace pnc::sim {

// The reconcile that last marked a pod `initialized`, from its "pod initialized" line.
struct MarkingReconcile {
  double took_ms = 0;    // the whole reconcile (`took_ms`)
  double locate_ms = 0;  // of which waiting for the locator: the container runtime's answers (`locate_ms`)
  bool operator==(const MarkingReconcile& o) const {
    return took_ms == o.took_ms && locate_ms == o.locate_ms;
  }
};

// Per pod UID, from the last "pod initialized" line with both fields as non-negative numbers in strings
// (locate_ms <= took_ms). Other lines, and lines that are not JSON objects, are skipped; a missing file gives
// an empty map.
std::map<std::string, MarkingReconcile> MarkingReconcilesByPod(const std::string& log_path);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_CONTROLLER_LOG_H_
