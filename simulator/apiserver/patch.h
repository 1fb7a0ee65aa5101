// PATCH bodies as the real API server understands them, on nlohmann::json documents.
//
// - JSON merge patch (RFC 7386, application/merge-patch+json).
// - Strategic merge patch (application/strategic-merge-patch+json): merge patch plus list merging by the
// merge keys of
//   the core/v1 Pod/Namespace/Node schema (containers by name, conditions by type, ...), `$patch:
//   replace|delete` directives and `$deleteFromPrimitiveList/`; `$setElementOrder/` and `$retainKeys` are
//   accepted and ignored (they only order/prune, which no client in this project depends on).
// - JSON patch (RFC 6902, application/json-patch+json).
// Errors are InvalidArgument (the server answers 400 BadRequest / 422).
#ifndef PNC_SIMULATOR_APISERVER_PATCH_H_
#define PNC_SIMULATOR_APISERVER_PATCH_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

enum class PatchType { kMerge, kStrategicMerge, kJson };

// Maps a Content-Type header to a PatchType; Unimplemented (415) for anything else, e.g. server-side apply.
absl::StatusOr<PatchType> PatchTypeFromContentType(const std::string& content_type);

// The strategic-merge key of a list field: "containers" -> "name"; "" for a set of primitives (finalizers);
// nullopt for an atomic list (replaced as a whole).
std::optional<std::string> ListMergeKey(const std::string& field);

absl::StatusOr<nlohmann::json> ApplyPatch(const nlohmann::json& original, PatchType type,
                                          const nlohmann::json& patch);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_PATCH_H_
