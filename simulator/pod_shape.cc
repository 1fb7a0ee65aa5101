#include "simulator/pod_shape.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pnc::sim {

using nlohmann::json;

namespace {

const json& List(const json& pod, const char* key) {
  static const json kEmpty = json::array();
  if (!pod.contains("spec") || !pod["spec"].is_object()) return kEmpty;
  auto it = pod["spec"].find(key);
  return it == pod["spec"].end() || !it->is_array() ? kEmpty : *it;
}

template <typename T>
std::optional<T> SecurityId(const json& c, const char* key) {
  if (!c.contains("securityContext") || !c["securityContext"].is_object()) return std::nullopt;
  auto it = c["securityContext"].find(key);
  if (it == c["securityContext"].end() || !it->is_number_integer() || it->get<int64_t>() < 0)
    return std::nullopt;
  return static_cast<T>(it->get<int64_t>());
}

}  // namespace

bool IsNativeSidecar(const json& container) { return container.value("restartPolicy", "") == "Always"; }

std::vector<DownwardVolumeSpec> DownwardVolumes(const json& pod) {
  std::vector<DownwardVolumeSpec> out;
  for (const auto& v : List(pod, "volumes")) {
    if (!v.contains("downwardAPI") || !v["downwardAPI"].contains("items")) continue;
    DownwardVolumeSpec spec{.volume = v.value("name", "")};
    for (const auto& item : v["downwardAPI"]["items"]) {
      std::string field = item.contains("fieldRef") ? item["fieldRef"].value("fieldPath", "") : "";
      if (field == "metadata.annotations" || field == "metadata.labels")
        spec.items.emplace_back(item.value("path", ""), field);
    }
    if (!spec.volume.empty() && !spec.items.empty()) out.push_back(std::move(spec));
  }
  if (out.empty())
    out.push_back({.volume = "podinfo", .items = {{"pod_annotations", "metadata.annotations"}}});
  return out;
}

absl::StatusOr<std::optional<WaiterContainer>> FindWaiter(const json& pod, const std::string& pod_dir,
                                                          absl::Duration timeout) {
  for (const auto& c : List(pod, "initContainers")) {
    const std::string name = c.value("name", "");
    WaiterContainer w{
        .name = name, .uid = SecurityId<uid_t>(c, "runAsUser"), .gid = SecurityId<gid_t>(c, "runAsGroup")};
    if (name == kWaiterContainer) {
      w.args = {absl::StrCat("--file=", pod_dir, "/podinfo/pod_annotations"),
                absl::StrCat("--timeout=", absl::ToInt64Seconds(timeout), "s")};
      return w;
    }
    if (name != kIstioValidationContainer) continue;
    if (!absl::StrContains(ImageName(c.value("image", "")), "waiter")) {
      return absl::UnimplementedError(
          absl::StrCat("init container ", name, " runs ", c.value("image", ""),
                       ": Istio's own validation is not modelled by the fake node"));
    }
    std::vector<std::string> downward;
    for (const auto& v : DownwardVolumes(pod)) downward.push_back(v.volume);
    for (const auto& arg : c.value("args", json::array())) {
      if (!arg.is_string()) return absl::InvalidArgumentError(absl::StrCat(name, ": non-string arg"));
      std::string a = arg.get<std::string>();
      absl::string_view path = a;
      if (absl::ConsumePrefix(&path, "--file=")) {
        std::string mapped;
        for (const auto& m : c.value("volumeMounts", json::array())) {
          std::string mount = m.value("mountPath", "");
          std::string volume = m.value("name", "");
          absl::string_view rest = path;
          if (mount.empty() || !absl::ConsumePrefix(&rest, absl::StrCat(mount, "/"))) continue;
          if (std::find(downward.begin(), downward.end(), volume) == downward.end()) continue;
          mapped = absl::StrCat("--file=", pod_dir, "/", volume, "/", rest);
        }
        if (mapped.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": ", a, " is not under a Downward API volume mounted in the container"));
        }
        a = mapped;
      }
      w.args.push_back(a);
    }
    return w;
  }
  return std::nullopt;
}

ProxyContainer FindProxy(const json& pod) {
  ProxyContainer p;
  auto take = [&](const json& c, bool native) {
    p.found = true;
    p.native_sidecar = native;
    p.uid = SecurityId<uid_t>(c, "runAsUser");
    p.gid = SecurityId<gid_t>(c, "runAsGroup");
  };
  for (const auto& c : List(pod, "initContainers")) {
    if (c.value("name", "") == "istio-proxy" && IsNativeSidecar(c)) take(c, true);
  }
  for (const auto& c : List(pod, "containers")) {
    if (c.value("name", "") == "istio-proxy") take(c, false);
  }
  return p;
}

std::string ImageName(const std::string& image) {
  std::string repo = image.substr(0, image.find('@'));
  size_t slash = repo.rfind('/');
  size_t colon = repo.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    repo = repo.substr(0, colon);
  return slash == std::string::npos ? repo : repo.substr(slash + 1);
}

}  // namespace pnc::sim
