// Errors as the Kubernetes API server reports them. An absl::Status carries the HTTP code and the Status
// `reason` in a payload so that the store can say "409 Conflict" precisely and the HTTP layer can render the
// Status object (kind Status, apiVersion v1, status Failure, message, reason, details, code) exactly like the
// real server.
#ifndef PNC_SIMULATOR_APISERVER_API_ERROR_H_
#define PNC_SIMULATOR_APISERVER_API_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

// `kind` is the plural resource ("pods") for details.kind, `name` the object name; both may be empty.
absl::Status ApiError(int http_code, const std::string& reason, const std::string& message,
                      const std::string& kind = "", const std::string& name = "");

absl::Status NotFoundError(const std::string& resource, const std::string& name);
absl::Status AlreadyExistsError(const std::string& resource, const std::string& name);
// 409 Conflict: "Operation cannot be fulfilled on <resource> \"<name>\": <why>".
absl::Status ConflictError(const std::string& resource, const std::string& name, const std::string& why);
absl::Status ExpiredError(const std::string& message);     // 410 Gone, reason Expired
absl::Status BadRequestError(const std::string& message);  // 400
absl::Status InvalidError(const std::string& resource, const std::string& name,
                          const std::string& message);  // 422

// The HTTP code of any status (errors created above keep theirs; other absl codes are mapped sensibly).
int HttpCode(const absl::Status& status);
// The metav1.Status object for an error.
nlohmann::json StatusObject(const absl::Status& status);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_API_ERROR_H_
