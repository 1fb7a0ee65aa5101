// Parsing of the parts of an HTTP request the fake API server routes on: the query string and the resource
// path (/api/v1/... and /apis/<group>/<version>/...).
//
//   ParseQuery("/api/v1/pods?watch=1&labelSelector=a%3Db")  -> {watch: "1", labelSelector: "a=b"}
//   ParseResourcePath("/api/v1/namespaces/default/pods/p/status") -> {kPods, "default", "p", kStatus}
// Unknown groups, versions, resources or subresources are 404 NotFound ApiErrors, like the real server's.
#ifndef PNC_SIMULATOR_APISERVER_REQUEST_H_
#define PNC_SIMULATOR_APISERVER_REQUEST_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "simulator/apiserver/store.h"

namespace pnc::sim {

struct Query {
  std::map<std::string, std::string> values;
  std::string Get(const std::string& k) const;
  bool Has(const std::string& k) const { return values.count(k) > 0; }
  bool Bool(const std::string& k) const;  // "true" or "1"
};

// The query string of a request target (everything after '?'), URL-decoded.
Query ParseQuery(absl::string_view target);

// What a resource path addresses.
struct Target {
  Resource resource = Resource::kPods;
  std::string ns;
  std::string name;  // empty: the collection
  Subresource sub = Subresource::kNone;
  bool watch_prefix = false;  // /api/v1/watch/...
};

// `path` without the query. NotFound (404) for anything that is not a served resource path.
absl::StatusOr<Target> ParseResourcePath(absl::string_view path);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_REQUEST_H_
