// Kubernetes label and field selectors, parsed from the `labelSelector` / `fieldSelector` query parameters.
//
// Label grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements `k`, `!k`, `k=v`, `k==v`,
// `k!=v`, `k in (a,b)`, `k notin (a,b)`. As on the real server, `!=` and `notin` also match objects that lack
// the key. Field grammar: `path=v`, `path==v`, `path!=v` over a small per-resource set of dotted paths (see
// SupportedField); anything else is rejected with InvalidArgument (the server answers 400 BadRequest, like
// the real one).
#ifndef PNC_SIMULATOR_APISERVER_SELECTOR_H_
#define PNC_SIMULATOR_APISERVER_SELECTOR_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

class LabelSelector {
 public:
  enum class Op { kExists, kNotExists, kEquals, kNotEquals, kIn, kNotIn };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };

  static absl::StatusOr<LabelSelector> Parse(const std::string& text);
  // `labels` is metadata.labels (may be null or absent).
  bool Matches(const nlohmann::json& object) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  struct Requirement {
    std::string path;  // e.g. "spec.nodeName"
    bool equals;       // false: !=
    std::string value;
  };

  // `resource` is the plural resource name ("pods"); it decides which paths are allowed.
  static absl::StatusOr<FieldSelector> Parse(const std::string& resource, const std::string& text);
  bool Matches(const nlohmann::json& object) const;
  bool empty() const { return requirements_.empty(); }
  // The value of an exact `path=value` requirement, if any (used to index watchers by spec.nodeName).
  std::optional<std::string> ExactValue(const std::string& path) const;

 private:
  std::vector<Requirement> requirements_;
};

// True if `path` may be used in a field selector on `resource`.
bool SupportedField(const std::string& resource, const std::string& path);
// The string value of a dotted path inside an object ("" when absent, like the real field-label conversion).
std::string FieldValue(const nlohmann::json& object, const std::string& path);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_SELECTOR_H_
