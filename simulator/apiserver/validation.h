// Field validation of the kinds whose spec the fake API server interprets, as the real server validates them:
// every problem found is one cause of a single 422 Invalid Status (details.causes).
//
// Pods: spec.containers required and non-empty; each container (and init container) needs a DNS-1123 label
// name, unique in the pod, and an image; enums restartPolicy, dnsPolicy, imagePullPolicy, port protocol;
// containerPort in 1..65535; terminationGracePeriodSeconds/activeDeadlineSeconds non-negative / positive.
#ifndef PNC_SIMULATOR_APISERVER_VALIDATION_H_
#define PNC_SIMULATOR_APISERVER_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

absl::Status ValidatePod(const nlohmann::json& pod, const std::string& name);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_VALIDATION_H_
