#include "kube/types.h"

#include <exception>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "rules/annotations.h"

namespace pnc::kube {
namespace {

using nlohmann::json;

absl::Status Bad(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("json: ", path, ": ", what));
}

// Returns the member, or nullptr when it is absent or null (Kubernetes omits or nulls empty fields alike).
const json* Member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status Str(const json& obj, const char* key, std::string* out, absl::string_view path) {
  const json* v = Member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return Bad(path, absl::StrCat(key, " is not a string"));
  *out = v->get_ref<const std::string&>();
  return absl::OkStatus();
}

absl::Status Bool(const json& obj, const char* key, bool* out, absl::string_view path) {
  const json* v = Member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return Bad(path, absl::StrCat(key, " is not a boolean"));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status Int(const json& obj, const char* key, std::optional<int64_t>* out, absl::string_view path) {
  const json* v = Member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return Bad(path, absl::StrCat(key, " overflows"));
    *out = static_cast<int64_t>(u);
    return absl::OkStatus();
  }
  if (!v->is_number_integer()) return Bad(path, absl::StrCat(key, " is not an integer"));
  *out = v->get<int64_t>();
  return absl::OkStatus();
}

absl::Status StrMap(const json& obj, const char* key, std::map<std::string, std::string>* out,
                    absl::string_view path) {
  const json* v = Member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return Bad(path, absl::StrCat(key, " is not an object"));
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string()) return Bad(path, absl::StrCat(key, "[", it.key(), "] is not a string"));
    (*out)[it.key()] = it.value().get_ref<const std::string&>();
  }
  return absl::OkStatus();
}

absl::Status Obj(const json& obj, const char* key, const json** out, absl::string_view path) {
  *out = Member(obj, key);
  if (*out != nullptr && !(*out)->is_object()) return Bad(path, absl::StrCat(key, " is not an object"));
  return absl::OkStatus();
}

absl::Status Arr(const json& obj, const char* key, const json** out, absl::string_view path) {
  *out = Member(obj, key);
  if (*out != nullptr && !(*out)->is_array()) return Bad(path, absl::StrCat(key, " is not an array"));
  return absl::OkStatus();
}

#define PNC_RETURN_IF_ERROR(expr) \
  do {                            \
    absl::Status _st = (expr);    \
    if (!_st.ok()) return _st;    \
  } while (0)

absl::Status DecodeSecurityContext(const json& parent, std::optional<int64_t>* uid,
                                   std::optional<int64_t>* gid, absl::string_view path) {
  const json* sc = nullptr;
  PNC_RETURN_IF_ERROR(Obj(parent, "securityContext", &sc, path));
  if (sc == nullptr) return absl::OkStatus();
  PNC_RETURN_IF_ERROR(Int(*sc, "runAsUser", uid, path));
  PNC_RETURN_IF_ERROR(Int(*sc, "runAsGroup", gid, path));
  return absl::OkStatus();
}

// env[] of the istio-proxy container: ISTIO_* names with a literal value, at most kMaxEnv of them.
absl::Status DecodeIstioEnv(const json& c, const char* key, std::map<std::string, std::string>* out) {
  constexpr size_t kMaxEnv = 64;
  const json* env = nullptr;
  PNC_RETURN_IF_ERROR(Arr(c, "env", &env, key));
  if (env == nullptr) return absl::OkStatus();
  for (const json& e : *env) {
    if (!e.is_object()) return Bad(key, "env element is not an object");
    std::string name, value;
    PNC_RETURN_IF_ERROR(Str(e, "name", &name, "env"));
    if (name.rfind("ISTIO_", 0) != 0 || !e.contains("value")) continue;  // valueFrom: not a literal
    PNC_RETURN_IF_ERROR(Str(e, "value", &value, "env"));
    if (out->size() < kMaxEnv) (*out)[name] = std::move(value);
  }
  return absl::OkStatus();
}

absl::Status DecodeContainers(const json& spec, const char* key, std::vector<Container>* out) {
  const json* arr = nullptr;
  PNC_RETURN_IF_ERROR(Arr(spec, key, &arr, "spec"));
  if (arr == nullptr) return absl::OkStatus();
  for (const json& c : *arr) {
    if (!c.is_object()) return Bad(key, "element is not an object");
    Container out_c;
    PNC_RETURN_IF_ERROR(Str(c, "name", &out_c.name, key));
    PNC_RETURN_IF_ERROR(Str(c, "restartPolicy", &out_c.restart_policy, key));
    PNC_RETURN_IF_ERROR(DecodeSecurityContext(c, &out_c.run_as_user, &out_c.run_as_group, key));
    const json* ports = nullptr;
    PNC_RETURN_IF_ERROR(Arr(c, "ports", &ports, key));
    if (ports != nullptr) {
      for (const json& p : *ports) {
        if (!p.is_object()) return Bad(key, "ports element is not an object");
        ContainerPort cp;
        std::optional<int64_t> port;
        PNC_RETURN_IF_ERROR(Int(p, "containerPort", &port, "ports"));
        cp.container_port = port.value_or(0);
        PNC_RETURN_IF_ERROR(Str(p, "protocol", &cp.protocol, "ports"));
        out_c.ports.push_back(std::move(cp));
      }
    }
    if (out_c.name == rules::kProxyContainerName) PNC_RETURN_IF_ERROR(DecodeIstioEnv(c, key, &out_c.env));
    out->push_back(std::move(out_c));
  }
  return absl::OkStatus();
}

absl::Status DecodeMeta(const json& obj, std::string* uid, std::string* name, std::string* ns,
                        std::string* rv, std::map<std::string, std::string>* annotations,
                        std::map<std::string, std::string>* labels, bool* deleting) {
  if (!obj.is_object()) return Bad("object", "not a JSON object");
  const json* meta = nullptr;
  PNC_RETURN_IF_ERROR(Obj(obj, "metadata", &meta, "object"));
  if (meta == nullptr) return absl::OkStatus();
  PNC_RETURN_IF_ERROR(Str(*meta, "uid", uid, "metadata"));
  PNC_RETURN_IF_ERROR(Str(*meta, "name", name, "metadata"));
  if (ns != nullptr) PNC_RETURN_IF_ERROR(Str(*meta, "namespace", ns, "metadata"));
  PNC_RETURN_IF_ERROR(Str(*meta, "resourceVersion", rv, "metadata"));
  PNC_RETURN_IF_ERROR(StrMap(*meta, "annotations", annotations, "metadata"));
  PNC_RETURN_IF_ERROR(StrMap(*meta, "labels", labels, "metadata"));
  if (deleting != nullptr) *deleting = Member(*meta, "deletionTimestamp") != nullptr;
  return absl::OkStatus();
}

absl::StatusOr<Pod> PodFromJson(const json& obj) {
  Pod pod;
  PNC_RETURN_IF_ERROR(DecodeMeta(obj, &pod.uid, &pod.name, &pod.namespace_name, &pod.resource_version,
                                 &pod.annotations, &pod.labels, &pod.deleting));
  const json* spec = nullptr;
  PNC_RETURN_IF_ERROR(Obj(obj, "spec", &spec, "pod"));
  if (spec != nullptr) {
    PNC_RETURN_IF_ERROR(Str(*spec, "nodeName", &pod.node_name, "spec"));
    PNC_RETURN_IF_ERROR(Bool(*spec, "hostNetwork", &pod.host_network, "spec"));
    PNC_RETURN_IF_ERROR(DecodeSecurityContext(*spec, &pod.run_as_user, &pod.run_as_group, "spec"));
    PNC_RETURN_IF_ERROR(DecodeContainers(*spec, "containers", &pod.containers));
    PNC_RETURN_IF_ERROR(DecodeContainers(*spec, "initContainers", &pod.init_containers));
  }
  const json* status = nullptr;
  PNC_RETURN_IF_ERROR(Obj(obj, "status", &status, "pod"));
  if (status != nullptr) {
    PNC_RETURN_IF_ERROR(Str(*status, "phase", &pod.phase, "status"));
    const json* ips = nullptr;
    PNC_RETURN_IF_ERROR(Arr(*status, "podIPs", &ips, "status"));
    if (ips != nullptr) {
      for (const json& ip : *ips) {
        if (!ip.is_object()) return Bad("status.podIPs", "element is not an object");
        std::string s;
        PNC_RETURN_IF_ERROR(Str(ip, "ip", &s, "status.podIPs"));
        if (!s.empty()) pod.pod_ips.push_back(std::move(s));
      }
    }
    if (pod.pod_ips.empty()) {  // old servers only set podIP
      std::string s;
      PNC_RETURN_IF_ERROR(Str(*status, "podIP", &s, "status"));
      if (!s.empty()) pod.pod_ips.push_back(std::move(s));
    }
  }
  return pod;
}

absl::StatusOr<Namespace> NamespaceFromJson(const json& obj) {
  Namespace ns;
  PNC_RETURN_IF_ERROR(DecodeMeta(obj, &ns.uid, &ns.name, nullptr, &ns.resource_version, &ns.annotations,
                                 &ns.labels, nullptr));
  return ns;
}

absl::StatusOr<ApiStatus> StatusFromJson(const json& obj) {
  if (!obj.is_object()) return Bad("status", "not a JSON object");
  std::string kind;
  PNC_RETURN_IF_ERROR(Str(obj, "kind", &kind, "status"));
  if (kind != "Status") return absl::NotFoundError(absl::StrCat("json: not a Status (kind \"", kind, "\")"));
  ApiStatus st;
  std::optional<int64_t> code;
  PNC_RETURN_IF_ERROR(Int(obj, "code", &code, "status"));
  st.code = static_cast<int>(code.value_or(0));
  PNC_RETURN_IF_ERROR(Str(obj, "reason", &st.reason, "status"));
  PNC_RETURN_IF_ERROR(Str(obj, "message", &st.message, "status"));
  return st;
}

json Parse(std::string_view text) {
  // allow_exceptions=false: a parse error yields a "discarded" value instead of throwing.
  return json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
}

template <typename T, typename F>
absl::StatusOr<T> Guard(std::string_view text, F f) {
  try {
    json j = Parse(text);
    if (j.is_discarded()) return absl::InvalidArgumentError("json: malformed document");
    return f(j);
  } catch (
      const std::exception& e) {  // defensive: nlohmann accessors throw on type errors we did not foresee
    return absl::InvalidArgumentError(absl::StrCat("json: ", e.what()));
  }
}

template <typename T, typename FromJson>
absl::StatusOr<ObjectList<T>> ListFromJson(const json& j, FromJson from) {
  if (!j.is_object()) return Bad("list", "not a JSON object");
  ObjectList<T> list;
  const json* meta = nullptr;
  PNC_RETURN_IF_ERROR(Obj(j, "metadata", &meta, "list"));
  if (meta != nullptr) {
    PNC_RETURN_IF_ERROR(Str(*meta, "resourceVersion", &list.resource_version, "list.metadata"));
    PNC_RETURN_IF_ERROR(Str(*meta, "continue", &list.continue_token, "list.metadata"));
  }
  const json* items = nullptr;
  PNC_RETURN_IF_ERROR(Arr(j, "items", &items, "list"));
  if (items != nullptr) {
    list.items.reserve(items->size());
    for (const json& item : *items) {
      absl::StatusOr<T> t = from(item);
      if (!t.ok()) return t.status();
      list.items.push_back(*std::move(t));
    }
  }
  return list;
}

template <typename T, typename FromJson>
absl::StatusOr<WatchEvent<T>> EventFromJson(const json& j, FromJson from) {
  if (!j.is_object()) return Bad("watch event", "not a JSON object");
  std::string type;
  PNC_RETURN_IF_ERROR(Str(j, "type", &type, "watch event"));
  const json* obj = nullptr;
  PNC_RETURN_IF_ERROR(Obj(j, "object", &obj, "watch event"));
  if (obj == nullptr) return Bad("watch event", "no object");
  WatchEvent<T> ev;
  if (type == "ADDED") {
    ev.type = EventType::kAdded;
  } else if (type == "MODIFIED") {
    ev.type = EventType::kModified;
  } else if (type == "DELETED") {
    ev.type = EventType::kDeleted;
  } else if (type == "BOOKMARK") {
    ev.type = EventType::kBookmark;
  } else if (type == "ERROR") {
    ev.type = EventType::kError;
    absl::StatusOr<ApiStatus> st = StatusFromJson(*obj);
    if (!st.ok()) return st.status();
    ev.status = *std::move(st);
    return ev;
  } else {
    return Bad("watch event", absl::StrCat("unknown type \"", type.substr(0, 32), "\""));
  }
  absl::StatusOr<T> t = from(*obj);
  if (!t.ok()) return t.status();
  ev.object = *std::move(t);
  return ev;
}

rules::ContainerFacts ToContainerFacts(const Container& c) {
  rules::ContainerFacts f;
  f.name = c.name;
  f.run_as_user = c.run_as_user;
  f.run_as_group = c.run_as_group;
  for (const ContainerPort& p : c.ports) f.ports.push_back({p.container_port, p.protocol});
  f.restart_policy_always = c.restart_policy == "Always";
  f.env = c.env;
  return f;
}

}  // namespace

const char* EventTypeName(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "?";
}

absl::StatusOr<Pod> DecodePod(std::string_view text) {
  return Guard<Pod>(text, [](const json& j) { return PodFromJson(j); });
}
absl::StatusOr<Namespace> DecodeNamespace(std::string_view text) {
  return Guard<Namespace>(text, [](const json& j) { return NamespaceFromJson(j); });
}
absl::StatusOr<ObjectList<Pod>> DecodePodList(std::string_view text) {
  return Guard<ObjectList<Pod>>(text, [](const json& j) { return ListFromJson<Pod>(j, PodFromJson); });
}
absl::StatusOr<ObjectList<Namespace>> DecodeNamespaceList(std::string_view text) {
  return Guard<ObjectList<Namespace>>(
      text, [](const json& j) { return ListFromJson<Namespace>(j, NamespaceFromJson); });
}
absl::StatusOr<WatchEvent<Pod>> DecodePodWatchEvent(std::string_view line) {
  return Guard<WatchEvent<Pod>>(line, [](const json& j) { return EventFromJson<Pod>(j, PodFromJson); });
}
absl::StatusOr<WatchEvent<Namespace>> DecodeNamespaceWatchEvent(std::string_view line) {
  return Guard<WatchEvent<Namespace>>(
      line, [](const json& j) { return EventFromJson<Namespace>(j, NamespaceFromJson); });
}
absl::StatusOr<ApiStatus> DecodeStatus(std::string_view text) {
  return Guard<ApiStatus>(text, [](const json& j) { return StatusFromJson(j); });
}

rules::PodFacts ToPodFacts(const Pod& pod, const Namespace* ns) {
  rules::PodFacts f;
  f.uid = pod.uid;
  f.name = pod.name;
  f.namespace_name = pod.namespace_name;
  f.annotations = pod.annotations;
  f.labels = pod.labels;
  if (ns != nullptr) {
    f.namespace_annotations = ns->annotations;
    f.namespace_labels = ns->labels;
  }
  f.host_network = pod.host_network;
  f.pod_run_as_user = pod.run_as_user;
  f.pod_run_as_group = pod.run_as_group;
  for (const Container& c : pod.containers) f.containers.push_back(ToContainerFacts(c));
  for (const Container& c : pod.init_containers) f.init_containers.push_back(ToContainerFacts(c));
  f.pod_ips = pod.pod_ips;
  return f;
}

}  // namespace pnc::kube
