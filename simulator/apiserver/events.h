// events.k8s.io/v1 Event: the same stored objects as core v1 Events, in the other group's field names, as the
// real server serves one Event resource under both groups (conversion through the internal type):
//   core v1            events.k8s.io/v1
//   involvedObject     regarding
//   message            note
//   reportingComponent reportingController
//   source             deprecatedSource
//   firstTimestamp     deprecatedFirstTimestamp
//   lastTimestamp      deprecatedLastTimestamp
//   count              deprecatedCount
// and the same names for metadata, reason, type, action, related, reportingInstance, eventTime and series.
// Validation of an events.k8s.io/v1 create follows the real server's rules for that request version (every
// problem one cause of a 422): eventTime required; type Normal or Warning; reportingController (a qualified
// name), reportingInstance, action and reason required, at most 128 bytes each; note at most 1 KiB; the
// deprecated* fields must be unset; series.count >= 2 and series.lastObservedTime required when series is
// set; regarding.namespace, when set, must be the Event's namespace.
#ifndef PNC_SIMULATOR_APISERVER_EVENTS_H_
#define PNC_SIMULATOR_APISERVER_EVENTS_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

// Stored (core v1) Event -> its events.k8s.io/v1 form. Fields absent in `core` stay absent, except eventTime,
// which the v1 type always carries (null when unset).
nlohmann::json CoreEventToV1(const nlohmann::json& core);

// events.k8s.io/v1 Event -> the core v1 form it is stored in. Unknown fields are kept as they are.
nlohmann::json V1EventToCore(const nlohmann::json& v1);

// 422 Invalid (kind Event, group events.k8s.io) with every cause, or OK. `ns` is the request's namespace.
absl::Status ValidateEventV1Create(const nlohmann::json& v1, const std::string& ns);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_EVENTS_H_
