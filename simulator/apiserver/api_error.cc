#include "simulator/apiserver/api_error.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pnc::sim {
namespace {

constexpr char kPayloadUrl[] = "type.pnc/k8s-status";

absl::StatusCode CodeFor(int http) {
  switch (http) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
    case 415:
      return absl::StatusCode::kUnimplemented;
    case 409:
      return absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

struct Fallback {
  int code;
  const char* reason;
};

Fallback FallbackFor(absl::StatusCode c) {
  switch (c) {
    case absl::StatusCode::kInvalidArgument:
      return {400, "BadRequest"};
    case absl::StatusCode::kUnauthenticated:
      return {401, "Unauthorized"};
    case absl::StatusCode::kPermissionDenied:
      return {403, "Forbidden"};
    case absl::StatusCode::kNotFound:
      return {404, "NotFound"};
    case absl::StatusCode::kUnimplemented:
      return {415, "UnsupportedMediaType"};
    case absl::StatusCode::kAlreadyExists:
      return {409, "AlreadyExists"};
    case absl::StatusCode::kAborted:
      return {409, "Conflict"};
    case absl::StatusCode::kOutOfRange:
      return {410, "Expired"};
    case absl::StatusCode::kResourceExhausted:
      return {429, "TooManyRequests"};
    case absl::StatusCode::kUnavailable:
      return {503, "ServiceUnavailable"};
    default:
      return {500, "InternalError"};
  }
}

}  // namespace

absl::Status ApiError(int http_code, const std::string& reason, const std::string& message,
                      const std::string& kind, const std::string& name) {
  absl::Status s(CodeFor(http_code), message);
  nlohmann::json meta = {{"code", http_code}, {"reason", reason}};
  if (!kind.empty() || !name.empty()) {
    nlohmann::json details = nlohmann::json::object();
    if (!name.empty()) details["name"] = name;
    if (!kind.empty()) details["kind"] = kind;
    meta["details"] = details;
  }
  s.SetPayload(kPayloadUrl, absl::Cord(meta.dump()));
  return s;
}

absl::Status NotFoundError(const std::string& resource, const std::string& name) {
  return ApiError(404, "NotFound", absl::StrCat(resource, " \"", name, "\" not found"), resource, name);
}

absl::Status AlreadyExistsError(const std::string& resource, const std::string& name) {
  return ApiError(409, "AlreadyExists", absl::StrCat(resource, " \"", name, "\" already exists"), resource,
                  name);
}

absl::Status ConflictError(const std::string& resource, const std::string& name, const std::string& why) {
  return ApiError(409, "Conflict",
                  absl::StrCat("Operation cannot be fulfilled on ", resource, " \"", name, "\": ", why),
                  resource, name);
}

absl::Status ExpiredError(const std::string& message) { return ApiError(410, "Expired", message); }

absl::Status BadRequestError(const std::string& message) { return ApiError(400, "BadRequest", message); }

FieldCause RequiredCause(const std::string& field, const std::string& detail) {
  return {"FieldValueRequired", field,
          detail.empty() ? "Required value" : absl::StrCat("Required value: ", detail)};
}

FieldCause InvalidCause(const std::string& field, const nlohmann::json& value, const std::string& detail) {
  return {"FieldValueInvalid", field, absl::StrCat("Invalid value: ", value.dump(), ": ", detail)};
}

FieldCause NotSupportedCause(const std::string& field, const nlohmann::json& value,
                             const std::vector<std::string>& supported) {
  std::string list;
  for (const auto& s : supported) absl::StrAppend(&list, list.empty() ? "" : ", ", "\"", s, "\"");
  return {"FieldValueNotSupported", field,
          absl::StrCat("Unsupported value: ", value.dump(), ": supported values: ", list)};
}

FieldCause ForbiddenCause(const std::string& field, const std::string& detail) {
  return {"FieldValueForbidden", field, absl::StrCat("Forbidden: ", detail)};
}

absl::Status ApiErrorWithCauses(int http_code, const std::string& reason, const std::string& message,
                                const std::string& kind, const std::string& name,
                                const std::vector<FieldCause>& causes) {
  absl::Status s(CodeFor(http_code), message);
  nlohmann::json jc = nlohmann::json::array();
  for (const auto& c : causes)
    jc.push_back({{"reason", c.reason}, {"message", c.message}, {"field", c.field}});
  nlohmann::json details = {{"causes", jc}};
  if (!name.empty()) details["name"] = name;
  if (!kind.empty()) details["kind"] = kind;
  nlohmann::json meta = {{"code", http_code}, {"reason", reason}, {"details", details}};
  s.SetPayload(kPayloadUrl, absl::Cord(meta.dump()));
  return s;
}

absl::Status InvalidError(const std::string& kind, const std::string& group, const std::string& name,
                          const std::vector<FieldCause>& causes) {
  std::string qualified = group.empty() ? kind : absl::StrCat(kind, ".", group);
  std::vector<std::string> parts;
  nlohmann::json jc = nlohmann::json::array();
  for (const auto& c : causes) {
    parts.push_back(c.field.empty() ? c.message : absl::StrCat(c.field, ": ", c.message));
    jc.push_back({{"reason", c.reason}, {"message", c.message}, {"field", c.field}});
  }
  std::string joined = parts.size() == 1 ? parts[0] : absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  absl::Status s(absl::StatusCode::kInvalidArgument,
                 absl::StrCat(qualified, " \"", name, "\" is invalid: ", joined));
  nlohmann::json details = {{"name", name}, {"kind", kind}, {"causes", jc}};
  if (!group.empty()) details["group"] = group;
  nlohmann::json meta = {{"code", 422}, {"reason", "Invalid"}, {"details", details}};
  s.SetPayload(kPayloadUrl, absl::Cord(meta.dump()));
  return s;
}

int HttpCode(const absl::Status& status) {
  if (status.ok()) return 200;
  if (auto p = status.GetPayload(kPayloadUrl)) {
    auto meta = nlohmann::json::parse(std::string(*p), nullptr, /*allow_exceptions=*/false);
    if (meta.is_object() && meta.contains("code")) return meta["code"].get<int>();
  }
  return FallbackFor(status.code()).code;
}

nlohmann::json StatusObject(const absl::Status& status) {
  nlohmann::json out = {{"kind", "Status"},
                        {"apiVersion", "v1"},
                        {"metadata", nlohmann::json::object()},
                        {"status", "Failure"},
                        {"message", std::string(status.message())}};
  Fallback fb = FallbackFor(status.code());
  out["reason"] = fb.reason;
  out["code"] = fb.code;
  if (auto p = status.GetPayload(kPayloadUrl)) {
    auto meta = nlohmann::json::parse(std::string(*p), nullptr, /*allow_exceptions=*/false);
    if (meta.is_object()) {
      if (meta.contains("reason")) out["reason"] = meta["reason"];
      if (meta.contains("code")) out["code"] = meta["code"];
      if (meta.contains("details")) out["details"] = meta["details"];
    }
  }
  return out;
}

}  // namespace pnc::sim
