#include "simulator/apiserver/patch.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

// Merge keys of the list fields that matter for core/v1 objects (k8s.io/api/core/v1 `patchMergeKey` tags).
const std::map<std::string, std::string>& MergeKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"ports", "containerPort"},
      {"env", "name"},
      {"volumes", "name"},
      {"volumeMounts", "mountPath"},
      {"conditions", "type"},
      {"containerStatuses", "name"},
      {"initContainerStatuses", "name"},
      {"ephemeralContainerStatuses", "name"},
      {"podIPs", "ip"},
      {"hostIPs", "ip"},
      {"imagePullSecrets", "name"},
      {"ownerReferences", "uid"},
      {"hostAliases", "ip"},
      {"addresses", "type"},
      {"taints", "key"},
      {"finalizers", ""},  // primitive list: merged as a set
  };
  return *keys;
}

absl::StatusOr<json> Strategic(const json& original, const json& patch);

absl::StatusOr<json> MergeList(const json& original, const json& patch, const std::string& key) {
  json out = original.is_array() ? original : json::array();
  if (key.empty()) {  // set of primitives
    for (const auto& v : patch) {
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    return out;
  }
  for (const auto& elem : patch) {
    if (!elem.is_object() || !elem.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("map: ", elem.dump(), " does not contain declared merge key: ", key));
    }
    auto same = [&](const json& o) { return o.is_object() && o.contains(key) && o.at(key) == elem.at(key); };
    auto it = std::find_if(out.begin(), out.end(), same);
    auto directive = elem.find("$patch");
    if (directive != elem.end() && *directive == "delete") {
      if (it != out.end()) out.erase(it);
      continue;
    }
    if (it == out.end()) {
      json clean = elem;
      clean.erase("$patch");
      out.push_back(std::move(clean));
    } else {
      auto merged = Strategic(*it, elem);
      if (!merged.ok()) return merged.status();
      *it = *std::move(merged);
    }
  }
  return out;
}

absl::StatusOr<json> Strategic(const json& original, const json& patch) {
  if (!patch.is_object()) return patch;
  json out = original.is_object() ? original : json::object();
  if (auto d = patch.find("$patch"); d != patch.end()) {
    if (*d == "replace") {
      json clean = patch;
      clean.erase("$patch");
      return clean;
    }
    if (*d == "delete") return json();  // caller drops the key
    return absl::InvalidArgumentError(absl::StrCat("unknown patch type: ", d->dump()));
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (absl::StartsWith(k, "$setElementOrder/") || k == "$retainKeys") continue;
    if (absl::StartsWith(k, "$deleteFromPrimitiveList/")) {
      std::string field = k.substr(std::string("$deleteFromPrimitiveList/").size());
      if (out.contains(field) && out[field].is_array() && v.is_array()) {
        json kept = json::array();
        for (const auto& e : out[field]) {
          if (std::find(v.begin(), v.end(), e) == v.end()) kept.push_back(e);
        }
        out[field] = std::move(kept);
      }
      continue;
    }
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      auto merged = Strategic(out.contains(k) ? out[k] : json(), v);
      if (!merged.ok()) return merged.status();
      if (merged->is_null()) {
        out.erase(k);
      } else {
        out[k] = *std::move(merged);
      }
    } else if (v.is_array() && MergeKeys().count(k) > 0) {
      auto merged = MergeList(out.contains(k) ? out[k] : json(), v, MergeKeys().at(k));
      if (!merged.ok()) return merged.status();
      out[k] = *std::move(merged);
    } else {
      out[k] = v;
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> ListMergeKey(const std::string& field) {
  auto it = MergeKeys().find(field);
  if (it == MergeKeys().end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<PatchType> PatchTypeFromContentType(const std::string& content_type) {
  std::string ct = content_type.substr(0, content_type.find(';'));
  if (ct == "application/merge-patch+json") return PatchType::kMerge;
  if (ct == "application/strategic-merge-patch+json") return PatchType::kStrategicMerge;
  if (ct == "application/json-patch+json") return PatchType::kJson;
  return absl::UnimplementedError(
      absl::StrCat("the body of the request was in an unknown format - accepted media types "
                   "include: application/json-patch+json, application/merge-patch+json, "
                   "application/strategic-merge-patch+json (got \"",
                   ct, "\")"));
}

absl::StatusOr<json> ApplyPatch(const json& original, PatchType type, const json& patch) {
  try {
    switch (type) {
      case PatchType::kMerge: {
        if (!patch.is_object()) return absl::InvalidArgumentError("merge patch must be a JSON object");
        json out = original;
        out.merge_patch(patch);
        return out;
      }
      case PatchType::kStrategicMerge:
        if (!patch.is_object())
          return absl::InvalidArgumentError("strategic merge patch must be a JSON object");
        return Strategic(original, patch);
      case PatchType::kJson:
        if (!patch.is_array()) return absl::InvalidArgumentError("json patch must be a JSON array");
        return original.patch(patch);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server rejected our request due to an error in our request: ", e.what()));
  }
  return absl::InternalError("unreachable");
}

}  // namespace pnc::sim
