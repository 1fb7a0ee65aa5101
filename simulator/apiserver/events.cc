#include "simulator/apiserver/events.h"

#include <cctype>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "simulator/apiserver/api_error.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

// core v1 name -> events.k8s.io/v1 name, for the fields whose names differ.
constexpr std::pair<const char*, const char*> kRenamed[] = {
    {"involvedObject", "regarding"},
    {"message", "note"},
    {"reportingComponent", "reportingController"},
    {"source", "deprecatedSource"},
    {"firstTimestamp", "deprecatedFirstTimestamp"},
    {"lastTimestamp", "deprecatedLastTimestamp"},
    {"count", "deprecatedCount"},
};

json Rename(const json& in, bool to_v1, const char* api_version) {
  if (!in.is_object()) return in;
  json out = in;
  for (const auto& [core, v1] : kRenamed) {
    const char* from = to_v1 ? core : v1;
    const char* to = to_v1 ? v1 : core;
    auto it = out.find(from);
    if (it == out.end()) continue;
    json value = std::move(*it);
    out.erase(from);
    out[to] = std::move(value);
  }
  out["apiVersion"] = api_version;
  out["kind"] = "Event";
  return out;
}

bool Empty(const json& v) {
  return v.is_null() || (v.is_string() && v.get<std::string>().empty()) ||
         (v.is_number() && v.get<double>() == 0) || (v.is_object() && v.empty());
}

std::string StringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

FieldCause TooLongCause(const std::string& field, size_t max) {
  return {"FieldValueTooLong", field, absl::StrCat("Too long: may not be more than ", max, " bytes")};
}

// A Kubernetes qualified name: [prefix/]name, name <= 63 characters of [A-Za-z0-9-_.] starting and ending
// alphanumeric, prefix a DNS subdomain.
bool IsQualifiedName(const std::string& s) {
  std::string name = s;
  size_t slash = s.find('/');
  if (slash != std::string::npos) {
    std::string prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (prefix.empty() || prefix.size() > 253) return false;
    for (char c : prefix) {
      if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
            c == '-' || c == '.'))
        return false;
    }
    if (!std::isalnum(static_cast<unsigned char>(prefix.front())) ||
        !std::isalnum(static_cast<unsigned char>(prefix.back())))
      return false;
  }
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

}  // namespace

json CoreEventToV1(const json& core) {
  json out = Rename(core, /*to_v1=*/true, "events.k8s.io/v1");
  if (out.is_object() && !out.contains("eventTime")) out["eventTime"] = nullptr;
  return out;
}

json V1EventToCore(const json& v1) {
  json out = Rename(v1, /*to_v1=*/false, "v1");
  // The null eventTime CoreEventToV1 adds is no change to the stored object.
  if (out.is_object() && out.contains("eventTime") && out["eventTime"].is_null()) out.erase("eventTime");
  return out;
}

absl::Status ValidateEventV1Create(const json& ev, const std::string& ns) {
  std::vector<FieldCause> causes;
  auto field = [&](const char* key) -> json {
    auto it = ev.find(key);
    return it == ev.end() ? json() : *it;
  };
  if (json series = field("series"); !series.is_null()) {
    if (!series.is_object()) {
      causes.push_back(InvalidCause("series", series, "must be an object"));
    } else {
      json count = series.value("count", json());
      if (!count.is_number_integer() || count.get<int64_t>() < 2) {
        causes.push_back(
            InvalidCause("series.count", count.is_null() ? json(0) : count, "should be at least 2"));
      }
      if (Empty(series.value("lastObservedTime", json()))) {
        causes.push_back(RequiredCause("series.lastObservedTime"));
      }
    }
  }
  if (Empty(field("eventTime"))) causes.push_back(RequiredCause("eventTime"));
  std::string type = StringField(ev, "type");
  if (type != "Normal" && type != "Warning") {
    causes.push_back(NotSupportedCause("type", type, {"Normal", "Warning"}));
  }
  for (const char* deprecated :
       {"deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount", "deprecatedSource"}) {
    if (!Empty(field(deprecated))) causes.push_back(InvalidCause(deprecated, "", "needs to be unset"));
  }
  std::string controller = StringField(ev, "reportingController");
  if (controller.empty()) {
    causes.push_back(RequiredCause("reportingController"));
  } else if (!IsQualifiedName(controller)) {
    causes.push_back(InvalidCause("reportingController", controller,
                                  "name part must consist of alphanumeric characters, '-', '_' or '.', and "
                                  "must start and end with an alphanumeric character"));
  }
  for (const char* key : {"reportingInstance", "action", "reason"}) {
    std::string v = StringField(ev, key);
    if (v.empty()) {
      causes.push_back(RequiredCause(key));
    } else if (v.size() > 128) {
      causes.push_back(TooLongCause(key, 128));
    }
  }
  if (StringField(ev, "note").size() > 1024) causes.push_back(TooLongCause("note", 1024));
  json regarding = field("regarding");
  if (regarding.is_object()) {
    std::string rns = StringField(regarding, "namespace");
    if (!rns.empty() && rns != ns) {
      causes.push_back(InvalidCause("regarding.namespace", rns, "does not match event.namespace"));
    }
  }
  if (causes.empty()) return absl::OkStatus();
  std::string name;
  if (auto md = ev.find("metadata"); md != ev.end() && md->is_object()) name = StringField(*md, "name");
  return InvalidError("Event", "events.k8s.io", name, causes);
}

}  // namespace pnc::sim
