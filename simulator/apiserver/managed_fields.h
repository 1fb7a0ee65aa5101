// metadata.managedFields as server-side apply keeps them: which field manager owns which fields (FieldsV1).
//
// A field set is a FieldsV1 tree: {"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":
// {"k:{\"name\":\"app\"}":{".":{},"f:image":{}}}}}. Keys are "f:<field>", "k:<merge key JSON>" for items of
// lists with a strategic merge key, "v:<value JSON>" for sets of primitives, and "." for the item itself;
// atomic lists and scalars are leaves ({}).
//
// Rules (simplified from the real apiserver's structured-merge-diff, observable behaviour kept):
// - Apply (RecordApply): the manager's set becomes exactly the applied config's fields. A field also owned by
//   another manager whose value the apply would change is a conflict (409 with causes) unless `force`, which
//   takes it over. Fields the manager applied before, omits now and no one else owns are removed.
// - Create/Update/Patch (RecordUpdate): the manager gains every field whose value changed; other managers
// lose
//   them. Entries left with no fields are dropped.
// Managed fields of the main resource and of the status subresource (subresource: status) are kept apart.
#ifndef PNC_SIMULATOR_APISERVER_MANAGED_FIELDS_H_
#define PNC_SIMULATOR_APISERVER_MANAGED_FIELDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

struct ManagerInfo {
  std::string manager;      // fieldManager
  std::string api_version;  // "v1", "apps/v1"
  std::string time;         // RFC 3339
  bool status = false;      // the status subresource
};

// The FieldsV1 tree of the fields an object sets (identity/system metadata excluded; status only for the
// status subresource, spec only for the main resource).
nlohmann::json FieldSetOf(const nlohmann::json& object, bool status);

// `old` is the stored object (null JSON for a create), `next` the object after the update; returns `next`
// with metadata.managedFields updated.
nlohmann::json RecordUpdate(const nlohmann::json& old, nlohmann::json next, const ManagerInfo& who);

// Server-side apply: merges `applied` into `live` (null JSON: create) and returns the new object with its
// managedFields. 409 Conflict (details.causes, reason FieldManagerConflict) on conflicts without `force`.
absl::StatusOr<nlohmann::json> ApplyConfiguration(const nlohmann::json& live, const nlohmann::json& applied,
                                                  const ManagerInfo& who, bool force,
                                                  const std::string& plural, const std::string& name);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_MANAGED_FIELDS_H_
