#include "simulator/apiserver/store.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "simulator/apiserver/api_error.h"
#include "simulator/apiserver/events.h"
#include "simulator/apiserver/managed_fields.h"
#include "simulator/apiserver/validation.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

constexpr char kRbac[] = "rbac.authorization.k8s.io";
constexpr char kAdmission[] = "admissionregistration.k8s.io";
// In the order of enum Resource.
constexpr ResourceInfo kInfos[] = {
    {"namespaces", "Namespace", false, "ns", "", "v1", true},
    {"pods", "Pod", true, "po", "", "v1", true},
    {"events", "Event", true, "ev", "", "v1", false},
    {"nodes", "Node", false, "no", "", "v1", true},
    {"serviceaccounts", "ServiceAccount", true, "sa", "", "v1", false},
    {"secrets", "Secret", true, "", "", "v1", false},
    {"configmaps", "ConfigMap", true, "cm", "", "v1", false},
    {"clusterroles", "ClusterRole", false, "", kRbac, "v1", false},
    {"clusterrolebindings", "ClusterRoleBinding", false, "", kRbac, "v1", false},
    {"roles", "Role", true, "", kRbac, "v1", false},
    {"rolebindings", "RoleBinding", true, "", kRbac, "v1", false},
    {"daemonsets", "DaemonSet", true, "ds", "apps", "v1", true},
    {"validatingadmissionpolicies", "ValidatingAdmissionPolicy", false, "", kAdmission, "v1", true},
    {"validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", false, "", kAdmission, "v1",
     false},
    {"events", "Event", true, "ev", "events.k8s.io", "v1", false},
};
static_assert(sizeof(kInfos) / sizeof(kInfos[0]) == kResourceCount);

int Index(Resource r) { return static_cast<int>(r); }

// RFC 1123 subdomain, as metadata.name of these resources must be.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

std::string MetaString(const json& obj, const char* field) {
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return "";
  auto it = md->find(field);
  if (it == md->end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string KeyOf(Resource r, const std::string& ns, const std::string& name) {
  return Info(r).namespaced ? absl::StrCat(ns, "/", name) : name;
}

json WithRv(const json& obj, uint64_t rv) {
  json out = obj;
  out["metadata"]["resourceVersion"] = std::to_string(rv);
  return out;
}

// A stored object as resource `r` serves it (events.k8s.io/v1 field names for kEventsV1).
ObjectPtr Served(Resource r, ObjectPtr stored) {
  if (r != Resource::kEventsV1 || stored == nullptr) return stored;
  return std::make_shared<const json>(CoreEventToV1(*stored));
}

absl::StatusOr<ObjectPtr> Served(Resource r, absl::StatusOr<ObjectPtr> stored) {
  if (!stored.ok()) return stored;
  return Served(r, *std::move(stored));
}

}  // namespace

const ResourceInfo& Info(Resource r) { return kInfos[Index(r)]; }

Resource StorageOf(Resource r) { return r == Resource::kEventsV1 ? Resource::kEvents : r; }

std::string ResourceInfo::ApiVersion() const {
  return *group ? absl::StrCat(group, "/", version) : std::string(version);
}

std::optional<Resource> ResourceFromPlural(std::string_view group, std::string_view plural) {
  for (Resource r : kAllResources) {
    if (plural == Info(r).plural && group == Info(r).group) return r;
  }
  return std::nullopt;
}

std::string EncodeWatchLine(const std::string& type, const json& object) {
  std::string out = absl::StrCat("{\"type\":\"", type, "\",\"object\":");
  out += object.dump();
  out += "}\n";
  return out;
}

Store::Store(Options options) : options_(std::move(options)), rng_(options_.seed) {
  absl::MutexLock lock(&mu_);
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    json obj = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}};
    obj["metadata"]["uid"] = NewUidLocked();
    obj["metadata"]["creationTimestamp"] = NowLocked();
    obj["metadata"]["labels"] = {{"kubernetes.io/metadata.name", ns}};
    obj["spec"] = {{"finalizers", {"kubernetes"}}};
    obj["status"] = {{"phase", "Active"}};
    CommitLocked(Resource::kNamespaces, "ADDED", std::move(obj), nullptr);
  }
}

Store::~Store() { CloseWatches(/*only_droppable=*/false); }

std::string Store::NewUidLocked() {
  uint64_t a = rng_(), b = rng_();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                         b & 0xffffffffffffULL);
}

std::string Store::NowLocked() const {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", options_.clock(), absl::UTCTimeZone());
}

uint64_t Store::ResourceVersion() const {
  absl::MutexLock lock(&mu_);
  return rv_;
}

size_t Store::WatchCount() const {
  absl::MutexLock lock(&mu_);
  return watchers_.size();
}

uint64_t Store::OldestResumableVersion() const {
  absl::MutexLock lock(&mu_);
  return compacted_rv_;
}

bool Store::WatcherMatches(const Watcher& w, const json& object) const {
  if (!w.ns.empty() && MetaString(object, "namespace") != w.ns) return false;
  return w.labels.Matches(object) && w.fields.Matches(object);
}

ObjectPtr Store::CommitLocked(Resource r, const std::string& type, json object, ObjectPtr prev) {
  uint64_t rv = ++rv_;
  object["metadata"]["resourceVersion"] = std::to_string(rv);
  auto ptr = std::make_shared<const json>(std::move(object));
  std::string key = KeyOf(r, MetaString(*ptr, "namespace"), MetaString(*ptr, "name"));
  if (type == "DELETED") {
    objects_[Index(r)].erase(key);
  } else {
    objects_[Index(r)][key] = ptr;
  }
  history_.push_back(Event{rv, r, type, ptr, std::move(prev), {}});
  FanOutLocked(history_.back());
  while (history_.size() > options_.history_size) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  return ptr;
}

void Store::FanOutLocked(const Event& e) {
  auto deliver = [&](uint64_t id) {
    auto it = watchers_.find(id);
    if (it != watchers_.end()) DeliverLocked(it->second, e);
  };
  for (uint64_t id : general_[Index(e.resource)]) deliver(id);
  if (e.resource == Resource::kPods) {
    std::string node = FieldValue(*e.object, "spec.nodeName");
    std::string prev_node = e.prev ? FieldValue(*e.prev, "spec.nodeName") : node;
    auto bucket = [&](const std::string& n) {
      auto it = by_node_.find(n);
      if (it == by_node_.end()) return;
      for (uint64_t id : it->second) deliver(id);
    };
    bucket(node);
    if (prev_node != node) bucket(prev_node);
  }
}

void Store::DeliverLocked(Watcher& w, const Event& e) {
  bool now = WatcherMatches(w, *e.object);
  bool before = e.prev ? WatcherMatches(w, *e.prev) : false;
  int slot;
  std::string type;
  ObjectPtr obj = e.object;
  if (e.type == "MODIFIED" && e.prev) {
    if (now && before) {
      slot = 0;
      type = "MODIFIED";
    } else if (now) {
      slot = 1;
      type = "ADDED";
    } else if (before) {
      slot = 2;
      type = "DELETED";
      obj = std::make_shared<const json>(WithRv(*e.prev, e.rv));
    } else {
      return;
    }
  } else {
    if (!now) return;
    slot = 0;
    type = e.type;
  }
  EventLine line;
  if (w.resource != e.resource) {
    // Another group's view of the stored object (events.k8s.io/v1 of a core Event): its own line.
    obj = Served(w.resource, obj);
    if (w.sink->WantsLine()) line = std::make_shared<const std::string>(EncodeWatchLine(type, *obj));
  } else if (w.sink->WantsLine()) {
    if (!e.lines[slot]) e.lines[slot] = std::make_shared<const std::string>(EncodeWatchLine(type, *obj));
    line = e.lines[slot];
  }
  w.sink->OnEvent(type, obj, e.rv, line);
}

void Store::ScheduleLocked(const ObjectPtr& pod) {
  const auto& nodes = objects_[Index(Resource::kNodes)];
  if (nodes.empty()) return;
  auto it = nodes.begin();
  std::advance(it, next_node_++ % nodes.size());
  json next = *pod;
  next["spec"]["nodeName"] = MetaString(*it->second, "name");
  next["status"]["conditions"] = json::array({{{"type", "PodScheduled"},
                                               {"status", "True"},
                                               {"lastProbeTime", nullptr},
                                               {"lastTransitionTime", NowLocked()}}});
  CommitLocked(Resource::kPods, "MODIFIED", std::move(next), pod);
}

absl::StatusOr<ObjectPtr> Store::Create(Resource r, const std::string& ns, json object,
                                        const WriteOptions& write) {
  absl::MutexLock lock(&mu_);
  if (r == Resource::kEventsV1) {
    if (!object.is_object()) return BadRequestError("the request body must be a JSON object");
    if (auto v = ValidateEventV1Create(object, ns); !v.ok()) return v;
    return Served(r, CreateLocked(Resource::kEvents, ns, V1EventToCore(object), write));
  }
  return CreateLocked(r, ns, std::move(object), write);
}

absl::StatusOr<ObjectPtr> Store::CreateLocked(Resource r, const std::string& ns, json object,
                                              const WriteOptions& write) {
  const ResourceInfo& info = Info(r);
  if (!object.is_object()) return BadRequestError("the request body must be a JSON object");
  if (object.contains("kind") && object["kind"] != info.kind) {
    return BadRequestError(absl::StrCat("the kind of the provided object (", object["kind"].dump(),
                                        ") does not match the resource ", info.plural));
  }
  object["kind"] = info.kind;
  object["apiVersion"] = info.ApiVersion();
  json& md = object["metadata"];
  if (!md.is_object()) return BadRequestError("metadata must be an object");
  std::string name = MetaString(object, "name");
  if (name.empty()) {
    std::string prefix = MetaString(object, "generateName");
    if (prefix.empty()) {
      return InvalidError(info.kind, "", "",
                          {RequiredCause("metadata.name", "name or generateName is required")});
    }
    static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    name = prefix;
    for (int i = 0; i < 5; ++i) name += kAlphabet[rng_() % (sizeof(kAlphabet) - 1)];
    md["name"] = name;
  }
  if (!ValidName(name)) {
    return InvalidError(
        info.kind, "", name,
        {InvalidCause("metadata.name", name,
                      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                      "characters, '-' or '.', and must start and end with an alphanumeric "
                      "character")});
  }
  if (info.namespaced) {
    std::string body_ns = MetaString(object, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return BadRequestError(
          "the namespace of the provided object does not match the namespace sent on the request");
    }
    md["namespace"] = ns;
    if (objects_[Index(Resource::kNamespaces)].count(ns) == 0) return NotFoundError("namespaces", ns);
  } else {
    md.erase("namespace");
  }
  std::string key = KeyOf(r, ns, name);
  if (objects_[Index(r)].count(key) > 0) return AlreadyExistsError(info.plural, name);
  md["uid"] = NewUidLocked();
  md["creationTimestamp"] = NowLocked();
  md.erase("resourceVersion");
  md.erase("deletionTimestamp");
  switch (r) {
    case Resource::kPods: {
      md["generation"] = 1;
      if (auto v = ValidatePod(object, name); !v.ok()) return v;
      json& spec = object["spec"];
      if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
      if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
      if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
      if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
      object["status"] = {{"phase", "Pending"}, {"qosClass", "BestEffort"}};
      break;
    }
    case Resource::kNamespaces:
      md["labels"]["kubernetes.io/metadata.name"] = name;
      object["spec"] = {{"finalizers", {"kubernetes"}}};
      object["status"] = {{"phase", "Active"}};
      break;
    case Resource::kDaemonSets:
      md["generation"] = 1;
      object["status"] = {{"currentNumberScheduled", 0},
                          {"desiredNumberScheduled", 0},
                          {"numberMisscheduled", 0},
                          {"numberReady", 0}};
      break;
    default:
      break;
  }
  if (!write.field_manager.empty()) {
    object =
        RecordUpdate(json(), std::move(object), {write.field_manager, info.ApiVersion(), NowLocked(), false});
  }
  if (write.dry_run) return std::make_shared<const json>(std::move(object));
  ObjectPtr created = CommitLocked(r, "ADDED", std::move(object), nullptr);
  if (r == Resource::kPods && options_.scheduler && FieldValue(*created, "spec.nodeName").empty()) {
    // The client sees the create response (unbound), watchers then see the binding, like with a real
    // scheduler.
    ScheduleLocked(created);
  }
  return created;
}

absl::StatusOr<ObjectPtr> Store::Get(Resource r, const std::string& ns, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  const auto& objs = objects_[Index(StorageOf(r))];
  auto it = objs.find(KeyOf(r, ns, name));
  if (it == objs.end()) return NotFoundError(Info(r).plural, name);
  return Served(r, it->second);
}

absl::StatusOr<ListResult> Store::List(Resource r, const std::string& ns, const ListOptions& options) const {
  auto labels = LabelSelector::Parse(options.label_selector);
  if (!labels.ok()) return BadRequestError(std::string(labels.status().message()));
  auto fields = FieldSelector::Parse(Info(r).plural, options.field_selector);
  if (!fields.ok()) return BadRequestError(std::string(fields.status().message()));
  if (options.limit < 0) return BadRequestError("limit must be non-negative");
  absl::MutexLock lock(&mu_);
  ListResult result;
  result.resource_version = rv_;
  std::string start;
  if (!options.continue_token.empty()) {
    // Token: base64(JSON {"rv": <list RV>, "start": <last key returned>}). Pages after the first are served
    // from the current state (not a snapshot); a token older than the history window is Expired, as on the
    // real server.
    std::string raw;
    json token;
    if (!absl::WebSafeBase64Unescape(options.continue_token, &raw) ||
        !(token = json::parse(raw, nullptr, false)).is_object() || !token.contains("rv") ||
        !token["rv"].is_number_unsigned() || !token.contains("start") || !token["start"].is_string()) {
      return BadRequestError(
          "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    }
    uint64_t token_rv = token["rv"].get<uint64_t>();
    if (token_rv < compacted_rv_) {
      return ExpiredError(
          "The provided continue parameter is too old to display a consistent list result. You can start a "
          "new list "
          "without the continue parameter, or use the continue token in this response to retrieve the "
          "remainder of "
          "the results. Continuing with the provided token results in an inconsistent list - objects that "
          "were "
          "created, modified, or deleted between the time the first chunk was returned and now may show up "
          "in the "
          "list.");
    }
    result.resource_version = token_rv;
    start = token["start"].get<std::string>();
  }
  const auto& objs = objects_[Index(StorageOf(r))];
  auto it = start.empty() ? objs.begin() : objs.upper_bound(start);
  if (start.empty() && Info(r).namespaced && !ns.empty()) it = objs.lower_bound(ns + "/");
  int64_t remaining = 0;
  std::string last_key;
  for (; it != objs.end(); ++it) {
    const json& obj = *it->second;
    if (Info(r).namespaced && !ns.empty()) {
      if (it->first.compare(0, ns.size() + 1, ns + "/") != 0) break;
    }
    if (!labels->Matches(obj) || !fields->Matches(obj)) continue;
    if (options.limit > 0 && static_cast<int64_t>(result.items.size()) >= options.limit) {
      ++remaining;
      continue;
    }
    result.items.push_back(Served(r, it->second));
    last_key = it->first;
  }
  if (remaining > 0) {
    json token = {{"rv", result.resource_version}, {"start", last_key}};
    result.continue_token = absl::WebSafeBase64Escape(token.dump());
    // Like the real server, remainingItemCount is only reported without selectors (exact count is cheap here
    // anyway).
    if (labels->empty() && fields->empty()) result.remaining = remaining;
  }
  return result;
}

absl::StatusOr<ObjectPtr> Store::CommitUpdateLocked(Resource r, const ObjectPtr& old, json next,
                                                    Subresource sub, const WriteOptions& write,
                                                    bool from_apply) {
  const ResourceInfo& info = Info(r);
  const std::string name = MetaString(*old, "name");
  if (!next.is_object()) return BadRequestError("the request body must be a JSON object");
  if (!next["metadata"].is_object()) return BadRequestError("metadata must be an object");
  if (MetaString(next, "name") != name) {
    return BadRequestError(absl::StrCat("the name of the object (", MetaString(next, "name"),
                                        ") does not match the name on the URL (", name, ")"));
  }
  if (info.namespaced && MetaString(next, "namespace") != MetaString(*old, "namespace")) {
    return BadRequestError(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  std::string uid = MetaString(next, "uid");
  if (!uid.empty() && uid != MetaString(*old, "uid")) {
    // Like the real server: metadata.uid of an update/patch is validated as an immutable field (422), not a
    // storage precondition (that is DeleteOptions.preconditions, 409).
    return InvalidError(info.kind, "", name, {InvalidCause("metadata.uid", uid, "field is immutable")});
  }
  std::string rv = MetaString(next, "resourceVersion");
  if (!rv.empty() && rv != MetaString(*old, "resourceVersion")) {
    return ConflictError(
        info.plural, name,
        "the object has been modified; please apply your changes to the latest version and try again");
  }
  next["kind"] = info.kind;
  next["apiVersion"] = info.ApiVersion();
  json& md = next["metadata"];
  // Clients never write managedFields directly; server-side apply has computed them already.
  if (!from_apply) {
    if (old->at("metadata").contains("managedFields")) {
      md["managedFields"] = old->at("metadata").at("managedFields");
    } else {
      md.erase("managedFields");
    }
  }
  for (const char* keep : {"uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp",
                           "deletionGracePeriodSeconds"}) {
    auto o = old->at("metadata").find(keep);
    if (o != old->at("metadata").end()) {
      md[keep] = *o;
    } else {
      md.erase(keep);
    }
  }
  if (r != Resource::kEvents) {
    if (sub == Subresource::kStatus) {
      // pods/status: spec and ownerReferences come from the stored object; metadata changes are kept.
      if (old->contains("spec")) {
        next["spec"] = old->at("spec");
      } else {
        next.erase("spec");
      }
      if (old->at("metadata").contains("ownerReferences")) {
        md["ownerReferences"] = old->at("metadata").at("ownerReferences");
      } else {
        md.erase("ownerReferences");
      }
    } else {
      if (old->contains("status")) {
        next["status"] = old->at("status");
      } else {
        next.erase("status");
      }
      if (r == Resource::kPods && old->contains("spec") && next.contains("spec")) {
        const json& os = old->at("spec");
        json& ns_ = next["spec"];
        if (os.contains("nodeName") && ns_.value("nodeName", "") != os.value("nodeName", "")) {
          return InvalidError(info.kind, "", name,
                              {ForbiddenCause("spec",
                                              "pod updates may not change fields other than "
                                              "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                                              "`spec.activeDeadlineSeconds`, `spec.tolerations`")});
        }
      }
      if (next.value("spec", json()) != old->value("spec", json()) && md.contains("generation")) {
        md["generation"] = md["generation"].get<int64_t>() + 1;
      }
    }
  }
  if (r == Resource::kPods && sub == Subresource::kNone) {
    if (auto v = ValidatePod(next, name); !v.ok()) return v;
  }
  if (!write.field_manager.empty()) {
    next = RecordUpdate(*old, std::move(next),
                        {write.field_manager, info.ApiVersion(), NowLocked(), sub == Subresource::kStatus});
  }
  // A no-op update keeps the resourceVersion and emits nothing.
  json cmp = next;
  cmp["metadata"]["resourceVersion"] = MetaString(*old, "resourceVersion");
  if (cmp == *old) return old;
  if (write.dry_run) return std::make_shared<const json>(std::move(next));
  return CommitLocked(r, "MODIFIED", std::move(next), old);
}

absl::StatusOr<ObjectPtr> Store::Update(Resource r, const std::string& ns, const std::string& name,
                                        json object, Subresource sub, const WriteOptions& write) {
  absl::MutexLock lock(&mu_);
  const auto& objs = objects_[Index(StorageOf(r))];
  auto it = objs.find(KeyOf(r, ns, name));
  if (it == objs.end()) return NotFoundError(Info(r).plural, name);
  if (object.is_object() && object["metadata"].is_object() && Info(r).namespaced &&
      MetaString(object, "namespace").empty()) {
    object["metadata"]["namespace"] = ns;
  }
  if (r == Resource::kEventsV1) object = V1EventToCore(object);
  return Served(r, CommitUpdateLocked(StorageOf(r), it->second, std::move(object), sub, write));
}

absl::StatusOr<ObjectPtr> Store::Patch(Resource r, const std::string& ns, const std::string& name,
                                       PatchType type, const json& patch, Subresource sub,
                                       const WriteOptions& write) {
  absl::MutexLock lock(&mu_);
  const auto& objs = objects_[Index(StorageOf(r))];
  auto it = objs.find(KeyOf(r, ns, name));
  if (it == objs.end()) return NotFoundError(Info(r).plural, name);
  ObjectPtr old = it->second;
  // The patch applies to the object as this resource serves it.
  auto next = ApplyPatch(*Served(r, old), type, patch);
  if (!next.ok()) return BadRequestError(std::string(next.status().message()));
  if (type == PatchType::kJson && next->is_object() && next->contains("metadata") &&
      (*next)["metadata"].is_object()) {
    // JSON patch expresses preconditions with "test" ops; a copied stale resourceVersion is not one.
    (*next)["metadata"]["resourceVersion"] = MetaString(*old, "resourceVersion");
  }
  // Merge/strategic patches carry their preconditions in metadata.uid / metadata.resourceVersion; an absent
  // resourceVersion means "unconditional", so take the stored one.
  if (next->is_object() && (*next)["metadata"].is_object() && !patch.is_array()) {
    bool has_rv = patch.contains("metadata") && patch["metadata"].is_object() &&
                  patch["metadata"].contains("resourceVersion");
    if (!has_rv) (*next)["metadata"]["resourceVersion"] = MetaString(*old, "resourceVersion");
  }
  if (r == Resource::kEventsV1) *next = V1EventToCore(*next);
  return Served(r, CommitUpdateLocked(StorageOf(r), old, *std::move(next), sub, write));
}

absl::StatusOr<ObjectPtr> Store::Apply(Resource r, const std::string& ns, const std::string& name,
                                       const json& applied, Subresource sub, const WriteOptions& write) {
  const ResourceInfo& info = Info(r);
  if (write.field_manager.empty()) {
    return InvalidError("PatchOptions", "meta.k8s.io", "",
                        {RequiredCause("fieldManager", "is required for apply patch")});
  }
  if (!applied.is_object()) return BadRequestError("the applied configuration must be an object");
  if (applied.value("apiVersion", "") != info.ApiVersion() || applied.value("kind", "") != info.kind) {
    return BadRequestError(absl::StrCat("the applied configuration must set apiVersion \"", info.ApiVersion(),
                                        "\" and kind \"", info.kind, "\""));
  }
  if (applied.contains("metadata") && applied["metadata"].is_object() &&
      applied["metadata"].contains("name") && applied["metadata"]["name"] != name) {
    return BadRequestError(absl::StrCat("the name of the object (", applied["metadata"]["name"].dump(),
                                        ") does not match the name on the URL (", name, ")"));
  }
  absl::MutexLock lock(&mu_);
  ManagerInfo who{write.field_manager, info.ApiVersion(), NowLocked(), sub == Subresource::kStatus};
  const auto& objs = objects_[Index(StorageOf(r))];
  auto it = objs.find(KeyOf(r, ns, name));
  if (it == objs.end()) {
    if (sub != Subresource::kNone) return NotFoundError(info.plural, name);
    auto created = ApplyConfiguration(json(), applied, who, write.force, info.plural, name);
    if (!created.ok()) return created.status();
    (*created)["metadata"]["name"] = name;
    WriteOptions w = write;
    w.field_manager.clear();  // ApplyConfiguration recorded the Apply entry
    if (r == Resource::kEventsV1) {
      if (auto v = ValidateEventV1Create(*created, ns); !v.ok()) return v;
      *created = V1EventToCore(*created);
    }
    return Served(r, CreateLocked(StorageOf(r), ns, *std::move(created), w));
  }
  ObjectPtr old = it->second;
  auto next = ApplyConfiguration(*Served(r, old), applied, who, write.force, info.plural, name);
  if (!next.ok()) return next.status();
  (*next)["metadata"]["resourceVersion"] = MetaString(*old, "resourceVersion");
  if (r == Resource::kEventsV1) *next = V1EventToCore(*next);
  WriteOptions w = write;
  w.field_manager.clear();
  return Served(r, CommitUpdateLocked(StorageOf(r), old, *std::move(next), sub, w, /*from_apply=*/true));
}

absl::StatusOr<ObjectPtr> Store::DeleteLocked(Resource r, const Key& key) {
  auto it = objects_[Index(r)].find(key);
  ObjectPtr old = it->second;
  json gone = *old;
  return CommitLocked(r, "DELETED", std::move(gone), nullptr);
}

absl::StatusOr<ObjectPtr> Store::Delete(Resource r, const std::string& ns, const std::string& name,
                                        const DeleteOptions& options) {
  if (r == Resource::kEventsV1) return Served(r, Delete(Resource::kEvents, ns, name, options));
  const Preconditions& pre = options.preconditions;
  absl::MutexLock lock(&mu_);
  Key key = KeyOf(r, ns, name);
  auto it = objects_[Index(r)].find(key);
  if (it == objects_[Index(r)].end()) return NotFoundError(Info(r).plural, name);
  const ObjectPtr& old = it->second;
  if (pre.uid && *pre.uid != MetaString(*old, "uid")) {
    return ConflictError(Info(r).plural, name,
                         absl::StrCat("Precondition failed: UID in precondition: ", *pre.uid,
                                      ", UID in object meta: ", MetaString(*old, "uid")));
  }
  if (pre.resource_version && *pre.resource_version != MetaString(*old, "resourceVersion")) {
    return ConflictError(
        Info(r).plural, name,
        absl::StrCat("Precondition failed: ResourceVersion in precondition: ", *pre.resource_version,
                     ", ResourceVersion in object meta: ", MetaString(*old, "resourceVersion")));
  }
  if (options.dry_run) return old;
  if (r == Resource::kPods && options_.graceful_pod_deletion && !FieldValue(*old, "spec.nodeName").empty()) {
    int64_t grace = 30;
    if (old->contains("spec") && (*old)["spec"].contains("terminationGracePeriodSeconds") &&
        (*old)["spec"]["terminationGracePeriodSeconds"].is_number_integer()) {
      grace = (*old)["spec"]["terminationGracePeriodSeconds"].get<int64_t>();
    }
    if (options.grace_period_seconds) grace = std::max<int64_t>(0, *options.grace_period_seconds);
    if (grace > 0) {
      if (old->at("metadata").contains("deletionTimestamp")) return old;  // already terminating
      json next = *old;
      next["metadata"]["deletionTimestamp"] = absl::FormatTime(
          "%Y-%m-%dT%H:%M:%SZ", options_.clock() + absl::Seconds(grace), absl::UTCTimeZone());
      next["metadata"]["deletionGracePeriodSeconds"] = grace;
      return CommitLocked(r, "MODIFIED", std::move(next), old);
    }
  }
  if (r == Resource::kNamespaces) {
    // No namespace lifecycle controller: the namespace's objects go with it, each with its own DELETED event.
    for (Resource inner : kAllResources) {
      if (!Info(inner).namespaced) continue;
      auto& objs = objects_[Index(inner)];
      std::vector<Key> keys;
      for (auto o = objs.lower_bound(name + "/"); o != objs.end() && o->first.rfind(name + "/", 0) == 0;
           ++o) {
        keys.push_back(o->first);
      }
      for (const Key& k : keys) (void)DeleteLocked(inner, k);
    }
  }
  return DeleteLocked(r, key);
}

absl::StatusOr<uint64_t> Store::Watch(Resource r, const std::string& ns, const WatchOptions& options,
                                      std::shared_ptr<WatchSink> sink) {
  auto labels = LabelSelector::Parse(options.label_selector);
  if (!labels.ok()) return BadRequestError(std::string(labels.status().message()));
  auto fields = FieldSelector::Parse(Info(r).plural, options.field_selector);
  if (!fields.ok()) return BadRequestError(std::string(fields.status().message()));
  uint64_t from = 0;
  bool initial =
      options.send_initial_events || options.resource_version.empty() || options.resource_version == "0";
  if (!options.resource_version.empty() && !absl::SimpleAtoi(options.resource_version, &from)) {
    return BadRequestError(absl::StrCat("invalid resource version: ", options.resource_version));
  }
  absl::MutexLock lock(&mu_);
  if (!initial && from < compacted_rv_) {
    return ExpiredError(absl::StrCat("too old resource version: ", from, " (", compacted_rv_ + 1, ")"));
  }
  Watcher w{r,
            Info(r).namespaced ? ns : "",
            *std::move(labels),
            *std::move(fields),
            std::nullopt,
            options.bookmarks,
            std::move(sink)};
  if (r == Resource::kPods) w.node = w.fields.ExactValue("spec.nodeName");
  if (initial) {
    const auto& objs = objects_[Index(StorageOf(r))];
    for (const auto& [key, stored] : objs) {
      if (!WatcherMatches(w, *stored)) continue;
      ObjectPtr obj = Served(r, stored);
      EventLine line;
      if (w.sink->WantsLine()) line = std::make_shared<const std::string>(EncodeWatchLine("ADDED", *obj));
      w.sink->OnEvent("ADDED", obj, rv_, line);
    }
    if (options.send_initial_events) {
      auto end =
          std::make_shared<const json>(json{{"kind", Info(r).kind},
                                            {"apiVersion", Info(r).ApiVersion()},
                                            {"metadata",
                                             {{"resourceVersion", std::to_string(rv_)},
                                              {"creationTimestamp", nullptr},
                                              {"annotations", {{"k8s.io/initial-events-end", "true"}}}}}});
      EventLine line;
      if (w.sink->WantsLine()) line = std::make_shared<const std::string>(EncodeWatchLine("BOOKMARK", *end));
      w.sink->OnEvent("BOOKMARK", end, rv_, line);
    }
  } else {
    for (const Event& e : history_) {
      if (e.rv <= from || e.resource != StorageOf(r)) continue;
      DeliverLocked(w, e);
    }
  }
  uint64_t id = next_watch_id_++;
  if (w.node) {
    by_node_[*w.node].insert(id);
  } else {
    general_[Index(StorageOf(r))].insert(id);
  }
  watchers_.emplace(id, std::move(w));
  return id;
}

void Store::Unwatch(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  UnindexLocked(id, it->second);
  watchers_.erase(it);
}

// Removes a watcher from the fan-out indexes (per node for node-scoped pod watches, per resource otherwise).
void Store::UnindexLocked(uint64_t id, const Watcher& w) {
  if (w.node) {
    auto n = by_node_.find(*w.node);
    if (n != by_node_.end()) {
      n->second.erase(id);
      if (n->second.empty()) by_node_.erase(n);
    }
  } else {
    general_[Index(StorageOf(w.resource))].erase(id);
  }
}

void Store::Bookmark(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end() || !it->second.bookmarks) return;
  const ResourceInfo& info = Info(it->second.resource);
  json obj = {{"kind", info.kind},
              {"apiVersion", info.ApiVersion()},
              {"metadata", {{"resourceVersion", std::to_string(rv_)}, {"creationTimestamp", nullptr}}}};
  auto ptr = std::make_shared<const json>(std::move(obj));
  EventLine line;
  if (it->second.sink->WantsLine())
    line = std::make_shared<const std::string>(EncodeWatchLine("BOOKMARK", *ptr));
  it->second.sink->OnEvent("BOOKMARK", ptr, rv_, line);
}

void Store::Compact() {
  absl::MutexLock lock(&mu_);
  history_.clear();
  compacted_rv_ = rv_;
}

void Store::DropAllWatches() { CloseWatches(/*only_droppable=*/true); }

void Store::CloseWatches(bool only_droppable) {
  std::vector<std::shared_ptr<WatchSink>> dropped;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      if (only_droppable && !it->second.sink->Droppable()) {
        ++it;
        continue;
      }
      UnindexLocked(it->first, it->second);
      dropped.push_back(it->second.sink);
      watchers_.erase(it++);
    }
  }
  for (auto& sink : dropped) sink->OnClosed();
}

}  // namespace pnc::sim
