#include "simulator/apiserver/table.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

std::string HumanAge(const json& obj) {
  std::string ts;
  if (obj.contains("metadata") && obj["metadata"].contains("creationTimestamp") &&
      obj["metadata"]["creationTimestamp"].is_string()) {
    ts = obj["metadata"]["creationTimestamp"].get<std::string>();
  }
  absl::Time t;
  std::string err;
  if (ts.empty() || !absl::ParseTime(absl::RFC3339_full, ts, &t, &err)) return "<unknown>";
  int64_t s = absl::ToInt64Seconds(absl::Now() - t);
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 3600 * 2) return absl::StrCat(s / 60, "m");
  if (s < 86400 * 2) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

json Column(const char* name, const char* type, const char* format, int priority) {
  return {{"name", name}, {"type", type}, {"format", format}, {"description", ""}, {"priority", priority}};
}

// kubectl's default table columns (a subset of the real printers).
json TableColumns(Resource r) {
  switch (r) {
    case Resource::kPods:
      return {Column("Name", "string", "name", 0), Column("Ready", "string", "", 0),
              Column("Status", "string", "", 0),   Column("Restarts", "string", "", 0),
              Column("Age", "string", "", 0),      Column("IP", "string", "", 1),
              Column("Node", "string", "", 1)};
    case Resource::kNamespaces:
      return {Column("Name", "string", "name", 0), Column("Status", "string", "", 0),
              Column("Age", "string", "", 0)};
    case Resource::kNodes:
      return {Column("Name", "string", "name", 0), Column("Status", "string", "", 0),
              Column("Age", "string", "", 0)};
    default:
      return {Column("Name", "string", "name", 0), Column("Age", "string", "", 0)};
    case Resource::kEvents:
    case Resource::kEventsV1:
      return {Column("Last Seen", "string", "", 0), Column("Type", "string", "", 0),
              Column("Reason", "string", "", 0), Column("Object", "string", "", 0),
              Column("Message", "string", "", 0)};
  }
  return json::array();
}

json TableRow(Resource r, const json& obj) {
  json cells;
  std::string name = FieldValue(obj, "metadata.name");
  switch (r) {
    case Resource::kPods: {
      size_t total =
          obj.contains("spec") && obj["spec"].contains("containers") ? obj["spec"]["containers"].size() : 0;
      size_t ready = 0;
      if (obj.contains("status") && obj["status"].contains("containerStatuses")) {
        for (const auto& cs : obj["status"]["containerStatuses"]) {
          if (cs.value("ready", false)) ++ready;
        }
      }
      std::string phase = FieldValue(obj, "status.phase");
      std::string reason = FieldValue(obj, "status.reason");
      cells = {name,
               absl::StrCat(ready, "/", total),
               reason.empty() ? phase : reason,
               "0",
               HumanAge(obj),
               FieldValue(obj, "status.podIP").empty() ? "<none>" : FieldValue(obj, "status.podIP"),
               FieldValue(obj, "spec.nodeName").empty() ? "<none>" : FieldValue(obj, "spec.nodeName")};
      break;
    }
    case Resource::kNamespaces:
      cells = {name, FieldValue(obj, "status.phase"), HumanAge(obj)};
      break;
    case Resource::kNodes:
      cells = {name, "Ready", HumanAge(obj)};
      break;
    case Resource::kEvents:
      cells = {HumanAge(obj), FieldValue(obj, "type"), FieldValue(obj, "reason"),
               absl::StrCat(absl::AsciiStrToLower(FieldValue(obj, "involvedObject.kind")), "/",
                            FieldValue(obj, "involvedObject.name")),
               FieldValue(obj, "message")};
      break;
    case Resource::kEventsV1:
      cells = {HumanAge(obj), FieldValue(obj, "type"), FieldValue(obj, "reason"),
               absl::StrCat(absl::AsciiStrToLower(FieldValue(obj, "regarding.kind")), "/",
                            FieldValue(obj, "regarding.name")),
               FieldValue(obj, "note")};
      break;
    default:
      cells = {name, HumanAge(obj)};
      break;
  }
  json meta = obj.value("metadata", json::object());
  return {
      {"cells", cells},
      {"object", {{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}}}};
}

}  // namespace

json TableOf(Resource r, const std::vector<ObjectPtr>& items, uint64_t rv, const std::string& cont) {
  json rows = json::array();
  for (const auto& o : items) rows.push_back(TableRow(r, *o));
  json md = {{"resourceVersion", std::to_string(rv)}};
  if (!cont.empty()) md["continue"] = cont;
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", md},
          {"columnDefinitions", TableColumns(r)},
          {"rows", rows}};
}

bool WantsTable(const std::string& accept) { return absl::StrContains(accept, "as=Table"); }

}  // namespace pnc::sim
