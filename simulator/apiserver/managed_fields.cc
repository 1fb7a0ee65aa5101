#include "simulator/apiserver/managed_fields.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "simulator/apiserver/api_error.h"
#include "simulator/apiserver/patch.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
using Path = std::vector<std::string>;
using PathSet = std::set<Path>;

json FieldsOf(const json& v, const std::string& field) {
  json tree = json::object();
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) tree["f:" + it.key()] = FieldsOf(it.value(), it.key());
  } else if (v.is_array()) {
    auto key = ListMergeKey(field);
    if (!key) return tree;  // atomic list: a leaf
    for (const auto& e : v) {
      if (key->empty()) {
        tree["v:" + e.dump()] = json::object();
      } else if (e.is_object() && e.contains(*key)) {
        json item = FieldsOf(e, "");
        item["."] = json::object();
        tree["k:" + json{{*key, e.at(*key)}}.dump()] = std::move(item);
      }
    }
  }
  return tree;
}

void Leaves(const json& tree, Path& prefix, PathSet* out) {
  for (auto it = tree.begin(); it != tree.end(); ++it) {
    prefix.push_back(it.key());
    if (it.value().empty()) {
      out->insert(prefix);
    } else {
      Leaves(it.value(), prefix, out);
    }
    prefix.pop_back();
  }
}

PathSet LeavesOf(const json& tree) {
  PathSet out;
  Path prefix;
  if (tree.is_object()) Leaves(tree, prefix, &out);
  return out;
}

json TreeOf(const PathSet& paths) {
  json tree = json::object();
  for (const Path& p : paths) {
    json* at = &tree;
    for (const auto& k : p) at = &(*at)[k];
    if (at->is_null()) *at = json::object();
  }
  return tree;
}

// The element of `list` addressed by a "k:" or "v:" key, or list.end().
json::const_iterator FindItem(const json& list, const std::string& k) {
  if (!list.is_array()) return list.end();
  json want = json::parse(k.substr(2), nullptr, false);
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (k[0] == 'v') {
      if (*it == want) return it;
      continue;
    }
    bool match = it->is_object() && want.is_object();
    for (auto w = want.begin(); match && w != want.end(); ++w) {
      match = it->contains(w.key()) && it->at(w.key()) == w.value();
    }
    if (match) return it;
  }
  return list.end();
}

const json* Lookup(const json& obj, const Path& path) {
  const json* at = &obj;
  for (const auto& k : path) {
    if (k == ".") continue;
    if (absl::StartsWith(k, "f:")) {
      if (!at->is_object()) return nullptr;
      auto it = at->find(k.substr(2));
      if (it == at->end()) return nullptr;
      at = &*it;
    } else {
      auto it = FindItem(*at, k);
      if (it == at->end()) return nullptr;
      at = &*it;
    }
  }
  return at;
}

void Remove(json& obj, Path path) {
  if (!path.empty() && path.back() == ".") path.pop_back();
  if (path.empty()) return;
  Path parent(path.begin(), path.end() - 1);
  json* at = const_cast<json*>(Lookup(obj, parent));
  if (!at) return;
  const std::string& k = path.back();
  if (absl::StartsWith(k, "f:")) {
    if (at->is_object()) at->erase(k.substr(2));
  } else if (at->is_array()) {
    auto it = FindItem(*at, k);
    if (it != at->end()) at->erase(it);
  }
}

bool SameValue(const json& a, const json& b, const Path& p) {
  const json* x = Lookup(a, p);
  const json* y = Lookup(b, p);
  if (!x || !y) return !x && !y;
  return *x == *y;
}

std::string PathString(const Path& p) {
  std::string out;
  for (const auto& k : p) {
    if (k == ".") continue;
    if (absl::StartsWith(k, "f:")) {
      absl::StrAppend(&out, ".", k.substr(2));
    } else if (absl::StartsWith(k, "v:")) {
      absl::StrAppend(&out, "[=", k.substr(2), "]");
    } else {
      json key = json::parse(k.substr(2), nullptr, false);
      std::string inner;
      if (key.is_object()) {
        for (auto it = key.begin(); it != key.end(); ++it) {
          absl::StrAppend(&inner, inner.empty() ? "" : ",", it.key(), "=", it.value().dump());
        }
      }
      absl::StrAppend(&out, "[", inner, "]");
    }
  }
  return out;
}

struct Entry {
  json meta;  // manager, operation, apiVersion, time, subresource
  PathSet fields;
  bool status() const { return meta.value("subresource", "") == "status"; }
};

std::vector<Entry> EntriesOf(const json& obj) {
  std::vector<Entry> out;
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].contains("managedFields")) return out;
  for (const auto& e : obj["metadata"]["managedFields"]) {
    if (!e.is_object()) continue;
    Entry entry{e, LeavesOf(e.value("fieldsV1", json::object()))};
    entry.meta.erase("fieldsV1");
    out.push_back(std::move(entry));
  }
  return out;
}

void Store(json& obj, std::vector<Entry>& entries) {
  json list = json::array();
  for (auto& e : entries) {
    if (e.fields.empty()) continue;
    json m = e.meta;
    m["fieldsType"] = "FieldsV1";
    m["fieldsV1"] = TreeOf(e.fields);
    list.push_back(std::move(m));
  }
  if (list.empty()) {
    obj["metadata"].erase("managedFields");
  } else {
    obj["metadata"]["managedFields"] = std::move(list);
  }
}

Entry& EntryFor(std::vector<Entry>& entries, const ManagerInfo& who, const char* operation) {
  for (auto& e : entries) {
    if (e.meta.value("manager", "") == who.manager && e.meta.value("operation", "") == operation &&
        e.status() == who.status) {
      e.meta["time"] = who.time;
      e.meta["apiVersion"] = who.api_version;
      return e;
    }
  }
  json meta = {{"manager", who.manager},
               {"operation", operation},
               {"apiVersion", who.api_version},
               {"time", who.time}};
  if (who.status) meta["subresource"] = "status";
  entries.push_back(Entry{meta, {}});
  return entries.back();
}

}  // namespace

json FieldSetOf(const json& object, bool status) {
  if (!object.is_object()) return json::object();
  json o = object;
  o.erase("apiVersion");
  o.erase("kind");
  if (o.contains("metadata") && o["metadata"].is_object()) {
    for (const char* k : {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                          "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}) {
      o["metadata"].erase(k);
    }
    if (o["metadata"].empty()) o.erase("metadata");
  }
  if (status) {
    for (auto it = o.begin(); it != o.end();) {
      it = (it.key() == "metadata" || it.key() == "status") ? std::next(it) : o.erase(it);
    }
  } else {
    o.erase("status");
  }
  return FieldsOf(o, "");
}

json RecordUpdate(const json& old, json next, const ManagerInfo& who) {
  if (who.manager.empty() || !next.is_object()) return next;
  std::vector<Entry> entries = EntriesOf(old);
  PathSet now = LeavesOf(FieldSetOf(next, who.status));
  PathSet before = old.is_object() ? LeavesOf(FieldSetOf(old, who.status)) : PathSet();
  PathSet changed, gone;
  for (const Path& p : now) {
    if (!old.is_object() || !SameValue(old, next, p)) changed.insert(p);
  }
  for (const Path& p : before) {
    if (!now.count(p)) gone.insert(p);
  }
  if (!changed.empty() || !gone.empty()) {
    for (auto& e : entries) {
      if (e.status() != who.status) continue;
      for (const Path& p : changed) e.fields.erase(p);
      for (const Path& p : gone) e.fields.erase(p);
    }
    Entry& mine = EntryFor(entries, who, "Update");
    mine.fields.insert(changed.begin(), changed.end());
  }
  Store(next, entries);
  return next;
}

absl::StatusOr<json> ApplyConfiguration(const json& live, const json& applied, const ManagerInfo& who,
                                        bool force, const std::string& plural, const std::string& name) {
  if (!applied.is_object()) return BadRequestError("the applied configuration must be an object");
  json config = applied;
  if (config.contains("metadata") && config["metadata"].is_object()) {
    config["metadata"].erase("managedFields");
    config["metadata"].erase("resourceVersion");
  }
  PathSet mine_now = LeavesOf(FieldSetOf(config, who.status));
  if (!live.is_object()) {
    json out = config;
    std::vector<Entry> entries;
    EntryFor(entries, who, "Apply").fields = mine_now;
    Store(out, entries);
    return out;
  }
  auto merged = ApplyPatch(live, PatchType::kStrategicMerge, config);
  if (!merged.ok()) return BadRequestError(std::string(merged.status().message()));
  json next = *std::move(merged);
  std::vector<Entry> entries = EntriesOf(live);
  Entry* prev = nullptr;
  for (auto& e : entries) {
    if (e.meta.value("manager", "") == who.manager && e.meta.value("operation", "") == "Apply" &&
        e.status() == who.status) {
      prev = &e;
    }
  }
  // Conflicts: a field another manager owns whose value this apply changes.
  std::map<std::string, std::vector<Path>> conflicts;  // "conflict with "m" using v" -> fields
  PathSet changed;
  for (const Path& p : mine_now) {
    if (SameValue(live, next, p)) continue;
    changed.insert(p);
    if (p.back() == ".") continue;  // list membership alone never conflicts
    for (const auto& e : entries) {
      if (&e == prev || e.status() != who.status || !e.fields.count(p)) continue;
      conflicts[absl::StrCat("conflict with \"", e.meta.value("manager", ""), "\" using ",
                             e.meta.value("apiVersion", ""))]
          .push_back(p);
    }
  }
  if (!conflicts.empty() && !force) {
    std::vector<FieldCause> causes;
    std::vector<std::string> lines;
    size_t n = 0;
    for (const auto& [who_msg, paths] : conflicts) {
      for (const Path& p : paths) {
        causes.push_back({"FieldManagerConflict", PathString(p), who_msg});
        lines.push_back(absl::StrCat(who_msg, ": ", PathString(p)));
        ++n;
      }
    }
    std::string message =
        n == 1 ? absl::StrCat("Apply failed with 1 conflict: ", lines[0])
               : absl::StrCat("Apply failed with ", n, " conflicts: ", absl::StrJoin(lines, "\n"));
    return ApiErrorWithCauses(409, "Conflict", message, plural, name, causes);
  }
  for (auto& e : entries) {
    if (&e == prev || e.status() != who.status) continue;
    for (const Path& p : changed) e.fields.erase(p);
  }
  // Fields this manager applied before and omits now are removed, unless someone else still owns them.
  if (prev) {
    for (const Path& p : prev->fields) {
      if (mine_now.count(p)) continue;
      bool owned = false;
      for (const auto& e : entries)
        owned = owned || (&e != prev && e.status() == who.status && e.fields.count(p));
      if (!owned) Remove(next, p);
    }
  }
  EntryFor(entries, who, "Apply").fields = mine_now;
  Store(next, entries);
  return next;
}

}  // namespace pnc::sim
