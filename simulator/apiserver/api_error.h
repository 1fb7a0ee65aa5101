// Errors as the Kubernetes API server reports them. An absl::Status carries the HTTP code and the Status
// `reason` in a payload so that the store can say "409 Conflict" precisely and the HTTP layer can render the
// Status object (kind Status, apiVersion v1, status Failure, message, reason, details, code) exactly like the
// real server.
#ifndef PNC_SIMULATOR_APISERVER_API_ERROR_H_
#define PNC_SIMULATOR_APISERVER_API_ERROR_H_

#include <string>
#include <vector>

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

// One field error of a 422 Invalid Status (details.causes[]): `reason` is the cause type the real server uses
// (FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueForbidden, FieldValueDuplicate,
// FieldValueTooLong), `field` the JSON path ("spec.containers[0].name"), `message` the error body without
// the field ("Required value", "Invalid value: \"x\": field is immutable").
struct FieldCause {
  std::string reason;
  std::string field;
  std::string message;
};
FieldCause RequiredCause(const std::string& field, const std::string& detail = "");
// `value` is rendered as JSON (strings quoted, like the real server's %#v for strings).
FieldCause InvalidCause(const std::string& field, const nlohmann::json& value, const std::string& detail);
FieldCause NotSupportedCause(const std::string& field, const nlohmann::json& value,
                             const std::vector<std::string>& supported);
FieldCause ForbiddenCause(const std::string& field, const std::string& detail);

// Any Status error with details.causes (e.g. 409 Conflict with FieldManagerConflict causes).
absl::Status ApiErrorWithCauses(int http_code, const std::string& reason, const std::string& message,
                                const std::string& kind, const std::string& name,
                                const std::vector<FieldCause>& causes);

// 422 Invalid for an object of `kind` ("Pod"; group "" for core): message
// `Pod "p" is invalid: <field>: <message>` (several causes: `[a: x, b: y]`), details {name, group, kind,
// causes}, like apierrors.NewInvalid.
absl::Status InvalidError(const std::string& kind, const std::string& group, const std::string& name,
                          const std::vector<FieldCause>& causes);

// The HTTP code of any status (errors created above keep theirs; other absl codes are mapped sensibly).
int HttpCode(const absl::Status& status);
// The metav1.Status object for an error.
nlohmann::json StatusObject(const absl::Status& status);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_API_ERROR_H_
