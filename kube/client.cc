#include "kube/client.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pnc::kube {
namespace {
bool AlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
}  // namespace

bool IsDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!AlnumLower(s.front()) || !AlnumLower(s.back())) return false;
  for (char c : s)
    if (!AlnumLower(c) && c != '-') return false;
  return true;
}

bool IsDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsDns1123Label(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

absl::Status HttpError(long code, absl::string_view what, absl::string_view server_message) {
  std::string msg = absl::StrCat(what, ": HTTP ", code);
  if (!server_message.empty()) absl::StrAppend(&msg, ": ", server_message.substr(0, 512));
  switch (code) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 409:
      return absl::AbortedError(msg);
    case 410:
      return absl::OutOfRangeError(msg);
    case 408:
    case 504:
      return absl::DeadlineExceededError(msg);
    default:
      break;
  }
  if (code == 429 || code >= 500) return absl::UnavailableError(msg);
  return absl::UnknownError(msg);
}

absl::Status PatchStatusError(long code, absl::string_view what, absl::string_view body) {
  std::string message;
  bool uid_cause = false;
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) message = m->get<std::string>();
    if (auto d = j.find("details"); d != j.end() && d->is_object()) {
      if (auto c = d->find("causes"); c != d->end() && c->is_array()) {
        for (const nlohmann::json& cause : *c) {
          if (!cause.is_object()) continue;
          auto f = cause.find("field");
          if (f != cause.end() && f->is_string() && f->get<std::string>() == "metadata.uid") uid_cause = true;
        }
      }
    }
  }
  if (code == 422 && uid_cause) {
    return absl::AbortedError(absl::StrCat(what, ": HTTP 422: the object was replaced (metadata.uid differs)",
                                           message.empty() ? "" : ": ", message.substr(0, 512)));
  }
  return HttpError(code, what, message);
}

}  // namespace pnc::kube
