#include "simulator/apiserver/discovery.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "simulator/apiserver/schema.h"
#include "simulator/apiserver/store.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

constexpr char kVersionJson[] =
    R"({"major":"1","minor":"35","gitVersion":"v1.35.0-pnc-simulator","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.25.0","compiler":"gc","platform":"linux/amd64"})";

// "api/v1" or "apis/<group>/<version>": the OpenAPI v3 path of a group version.
std::string GroupVersionPath(const ResourceInfo& info) {
  return *info.group ? absl::StrCat("apis/", info.group, "/", info.version) : "api/v1";
}

json ResourceList(const std::string& group, const std::string& version) {
  const std::vector<std::string> rw = {"create", "delete", "get", "list", "patch", "update", "watch"};
  json resources = json::array();
  for (Resource r : kAllResources) {
    const ResourceInfo& info = Info(r);
    if (group != info.group || version != info.version) continue;
    std::string singular = info.kind;
    for (auto& c : singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    json res = {{"name", info.plural},
                {"singularName", singular},
                {"namespaced", info.namespaced},
                {"kind", info.kind},
                {"verbs", rw}};
    if (*info.short_name) res["shortNames"] = {info.short_name};
    if (r == Resource::kPods || r == Resource::kDaemonSets) res["categories"] = {"all"};
    resources.push_back(res);
    if (info.has_status) {
      resources.push_back({{"name", absl::StrCat(info.plural, "/status")},
                           {"singularName", ""},
                           {"namespaced", info.namespaced},
                           {"kind", info.kind},
                           {"verbs", {"get", "patch", "update"}}});
    }
  }
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", group.empty() ? version : absl::StrCat(group, "/", version)},
          {"resources", resources}};
}

json GroupList() {
  std::map<std::string, std::set<std::string>> groups;
  for (Resource r : kAllResources) {
    if (*Info(r).group) groups[Info(r).group].insert(Info(r).version);
  }
  json list = json::array();
  for (const auto& [g, versions] : groups) {
    json vs = json::array();
    for (const auto& v : versions) vs.push_back({{"groupVersion", absl::StrCat(g, "/", v)}, {"version", v}});
    list.push_back({{"name", g}, {"versions", vs}, {"preferredVersion", vs[0]}});
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}};
}

json OpenApiV3Root() {
  json paths = json::object();
  for (Resource r : kAllResources) {
    std::string gv = GroupVersionPath(Info(r));
    paths[gv] = {{"serverRelativeURL", absl::StrCat("/openapi/v3/", gv, "?hash=pnc-simulator-2")}};
  }
  return {{"paths", paths}};
}

// One group version: a PATCH operation per kind (its GVK and the fieldValidation parameter, which is how
// kubectl detects server-side field validation) and every component schema.
std::optional<json> OpenApiV3GroupVersion(const std::string& gv_path) {
  json paths = json::object();
  for (Resource r : kAllResources) {
    const ResourceInfo& info = Info(r);
    std::string gv = GroupVersionPath(info);
    if (gv != gv_path) continue;
    std::string path = info.namespaced
                           ? absl::StrCat("/", gv, "/namespaces/{namespace}/", info.plural, "/{name}")
                           : absl::StrCat("/", gv, "/", info.plural, "/{name}");
    json ok = {{"description", "OK"},
               {"content",
                {{"application/json", {{"schema", {{"$ref", "#/components/schemas/" + SchemaName(r)}}}}}}}};
    json op = {{"x-kubernetes-group-version-kind",
                {{"group", info.group}, {"version", info.version}, {"kind", info.kind}}},
               {"x-kubernetes-action", "patch"},
               {"parameters",
                {{{"name", "fieldValidation"}, {"in", "query"}, {"schema", {{"type", "string"}}}},
                 {{"name", "fieldManager"}, {"in", "query"}, {"schema", {{"type", "string"}}}},
                 {{"name", "dryRun"}, {"in", "query"}, {"schema", {{"type", "string"}}}}}},
               {"responses", {{"200", ok}}}};
    paths[path] = {{"patch", op}};
  }
  if (paths.empty()) return std::nullopt;
  return json{{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes (pnc simulator)"}, {"version", "v1.35.0"}}},
              {"paths", paths},
              {"components", {{"schemas", ComponentSchemas()}}}};
}

// OpenAPI v2 for older kubectl (e.g. Debian's 1.20), which fetches /openapi/v2 as protobuf (gnostic's
// openapi_v2.Document) before create/apply and gives up on 404. A document with no definitions makes it skip
// client-side schema validation for every kind. Hand-encoded: Document{swagger(1): "2.0", info(2):
// Info{title(1), version(2)}}.
std::string OpenApiV2Protobuf() {
  auto field = [](int number, const std::string& bytes) {
    std::string out(1, static_cast<char>((number << 3) | 2));  // length-delimited
    out.push_back(static_cast<char>(bytes.size()));            // < 128 bytes: one-byte varint
    return out + bytes;
  };
  return field(1, "2.0") + field(2, field(1, "Kubernetes (pnc simulator)") + field(2, "v1.35.0"));
}

}  // namespace

std::optional<Document> DiscoveryDocument(const std::string& raw_path, const std::string& server_address) {
  std::string path = raw_path;
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/version") return Document{kVersionJson};
  if (path == "/api") {
    return Document{json{
        {"kind", "APIVersions"},
        {"versions", {"v1"}},
        {"serverAddressByClientCIDRs", {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}}
                        .dump()};
  }
  if (path == "/apis") return Document{GroupList().dump()};
  if (path == "/api/v1") return Document{ResourceList("", "v1").dump()};
  if (path == "/openapi/v2") return Document{OpenApiV2Protobuf(), "application/octet-stream"};
  if (path == "/openapi/v3") return Document{OpenApiV3Root().dump()};
  if (absl::StartsWith(path, "/openapi/v3/")) {
    auto doc = OpenApiV3GroupVersion(path.substr(std::string("/openapi/v3/").size()));
    if (doc) return Document{doc->dump()};
    return std::nullopt;
  }
  if (absl::StartsWith(path, "/apis/")) {
    std::vector<std::string> seg;
    for (absl::string_view s : absl::StrSplit(path.substr(6), '/')) seg.emplace_back(s);
    if (seg.size() == 2) {
      json list = ResourceList(seg[0], seg[1]);
      if (!list["resources"].empty()) return Document{list.dump()};
    }
    if (seg.size() == 1) {
      json groups = GroupList();
      for (const auto& g : groups["groups"]) {
        if (g["name"] == seg[0]) {
          json out = g;
          out["kind"] = "APIGroup";
          out["apiVersion"] = "v1";
          return Document{out.dump()};
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace pnc::sim
