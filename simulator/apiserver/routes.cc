#include "simulator/apiserver/routes.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "simulator/apiserver/api_error.h"
#include "simulator/apiserver/protobuf_body.h"
#include "simulator/apiserver/schema.h"
#include "simulator/apiserver/table.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

Reply ObjectReply(const absl::StatusOr<ObjectPtr>& o, int ok = 200) {
  if (!o.ok()) return StatusReply(o.status());
  return Reply{ok, (*o)->dump()};
}

absl::Status MethodNotAllowed() {
  return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
}

std::string MediaType(const std::string& content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
}

// 406 unless the client accepts JSON in some form.
absl::Status CheckAccept(const std::string& accept) {
  if (accept.empty()) return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(accept, ',')) {
    std::string mt = MediaType(std::string(part));
    if (mt == "application/json" || mt == "*/*" || mt == "application/*" || mt.empty())
      return absl::OkStatus();
  }
  return ApiError(
      406, "NotAcceptable",
      "only the following media types are accepted: application/json, application/json;stream=watch");
}

// Create/update bodies must be JSON, or protobuf for the kinds protobuf_body.h decodes (415 otherwise, like a
// server without that serializer).
absl::Status CheckBodyType(const std::string& content_type) {
  std::string mt = MediaType(content_type);
  if (mt.empty() || mt == "application/json" || mt == kProtobufMediaType) return absl::OkStatus();
  return ApiError(
      415, "UnsupportedMediaType",
      absl::StrCat("the body of the request was in an unknown format - accepted media types include: "
                   "application/json (got \"",
                   mt, "\")"));
}

absl::StatusOr<json> ParseBody(const ApiRequest& req) {
  if (MediaType(req.content_type) == kProtobufMediaType) {
    auto decoded = DecodeKubeProtobuf(*req.body);
    if (absl::IsUnimplemented(decoded.status())) {
      return ApiError(415, "UnsupportedMediaType",
                      absl::StrCat("the body of the request was in an unknown format - accepted media types "
                                   "include: application/json (",
                                   decoded.status().message(), ")"));
    }
    if (!decoded.ok()) return BadRequestError(std::string(decoded.status().message()));
    return decoded;
  }
  json out = json::parse(*req.body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    return BadRequestError(
        "the body of the request could not be decoded as JSON (only JSON bodies are supported)");
  }
  return out;
}

// The query parameters every write shares; `unknown` are the fields of the body the schema does not know.
absl::StatusOr<WriteOptions> WriteOptionsOf(const ApiRequest& req) {
  WriteOptions w;
  if (req.query.Has("dryRun")) {
    if (req.query.Get("dryRun") != "All") {
      return InvalidError("CreateOptions", "meta.k8s.io", "",
                          {NotSupportedCause("dryRun", req.query.Get("dryRun"), {"All"})});
    }
    w.dry_run = true;
  }
  w.field_manager = req.query.Get("fieldManager");
  if (w.field_manager.empty()) {
    // The real server names an unnamed manager after the client's User-Agent product.
    w.field_manager = req.user_agent.substr(0, req.user_agent.find('/'));
  }
  w.force = req.query.Bool("force");
  return w;
}

// fieldValidation: Strict -> 400, Warn (default) -> warnings, Ignore -> nothing.
absl::Status CheckUnknownFields(const ApiRequest& req, Resource r, const json& body, Reply* reply) {
  std::string mode = req.query.Get("fieldValidation");
  if (mode == "Ignore") return absl::OkStatus();
  if (!mode.empty() && mode != "Strict" && mode != "Warn") {
    return BadRequestError(
        absl::StrCat("fieldValidation must be one of Ignore, Warn or Strict (got \"", mode, "\")"));
  }
  std::vector<std::string> unknown = UnknownFields(r, body);
  if (unknown.empty()) return absl::OkStatus();
  std::vector<std::string> msgs;
  for (const auto& f : unknown) msgs.push_back(absl::StrCat("unknown field \"", f, "\""));
  if (mode == "Strict") {
    const ResourceInfo& info = Info(r);
    return BadRequestError(absl::StrCat(info.kind, " in version \"", info.version,
                                        "\" cannot be handled as a ", info.kind,
                                        ": strict decoding error: ", absl::StrJoin(msgs, ", ")));
  }
  reply->warnings = msgs;
  return absl::OkStatus();
}

Reply ServeList(Store* store, const ApiRequest& req, const Target& t, bool table) {
  ListOptions lo;
  lo.label_selector = req.query.Get("labelSelector");
  lo.field_selector = req.query.Get("fieldSelector");
  lo.continue_token = req.query.Get("continue");
  if (req.query.Has("limit") && !absl::SimpleAtoi(req.query.Get("limit"), &lo.limit)) {
    return StatusReply(BadRequestError("limit must be an integer"));
  }
  auto list = store->List(t.resource, t.ns, lo);
  if (!list.ok()) return StatusReply(list.status());
  if (table)
    return Reply{200, TableOf(t.resource, list->items, list->resource_version, list->continue_token).dump()};
  const ResourceInfo& info = Info(t.resource);
  // Assemble the list text directly: the items are already immutable JSON snapshots.
  json md = {{"resourceVersion", std::to_string(list->resource_version)}};
  if (!list->continue_token.empty()) md["continue"] = list->continue_token;
  if (list->remaining) md["remainingItemCount"] = *list->remaining;
  std::string body = absl::StrCat("{\"kind\":\"", info.kind, "List\",\"apiVersion\":\"", info.ApiVersion(),
                                  "\",\"metadata\":", md.dump(), ",\"items\":[");
  for (size_t i = 0; i < list->items.size(); ++i) {
    if (i > 0) body += ',';
    body += list->items[i]->dump();
  }
  body += "]}";
  return Reply{200, std::move(body)};
}

Reply PrepareWatch(const ApiRequest& req, const Target& t, bool table, std::optional<WatchPlan>* watch) {
  const Query& q = req.query;
  WatchPlan plan{t.resource, t.ns, {}, 0, table};
  plan.options.label_selector = q.Get("labelSelector");
  plan.options.field_selector = q.Get("fieldSelector");
  if (!t.name.empty()) {
    // Watching one object = a field selector on its name.
    plan.options.field_selector =
        absl::StrCat("metadata.name=", t.name, plan.options.field_selector.empty() ? "" : ",",
                     plan.options.field_selector);
  }
  plan.options.resource_version = q.Get("resourceVersion");
  plan.options.bookmarks = q.Bool("allowWatchBookmarks");
  if (q.Bool("sendInitialEvents")) {
    std::vector<FieldCause> causes;
    if (q.Get("resourceVersionMatch") != "NotOlderThan") {
      causes.push_back(ForbiddenCause(
          "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
    }
    if (!plan.options.bookmarks) {
      causes.push_back(
          ForbiddenCause("allowWatchBookmarks", "sendInitialEvents requires allowWatchBookmarks"));
    }
    if (!causes.empty()) return StatusReply(InvalidError("ListOptions", "meta.k8s.io", "", causes));
    plan.options.send_initial_events = true;
  }
  if (q.Has("timeoutSeconds") && !absl::SimpleAtoi(q.Get("timeoutSeconds"), &plan.timeout_seconds)) {
    return StatusReply(BadRequestError("timeoutSeconds must be an integer"));
  }
  // Selector errors must be a 400, not an ERROR event: check them before switching to streaming.
  if (auto l = LabelSelector::Parse(plan.options.label_selector); !l.ok()) {
    return StatusReply(BadRequestError(std::string(l.status().message())));
  }
  if (auto f = FieldSelector::Parse(Info(t.resource).plural, plan.options.field_selector); !f.ok()) {
    return StatusReply(BadRequestError(std::string(f.status().message())));
  }
  *watch = plan;
  return Reply{};
}

// A create's or update's object and options, after the checks both make: body type, JSON, write options and
// unknown fields (whose warnings go into the reply).
struct WriteRequest {
  json body;
  WriteOptions options;
  std::vector<std::string> warnings;
};

absl::StatusOr<WriteRequest> ParseWrite(const ApiRequest& req, const Target& t) {
  if (auto s = CheckBodyType(req.content_type); !s.ok()) return s;
  auto body = ParseBody(req);
  if (!body.ok()) return body.status();
  auto w = WriteOptionsOf(req);
  if (!w.ok()) return w.status();
  Reply checked;
  if (auto s = CheckUnknownFields(req, t.resource, *body, &checked); !s.ok()) return s;
  return WriteRequest{*std::move(body), *w, std::move(checked.warnings)};
}

Reply ServeCreate(Store* store, const ApiRequest& req, const Target& t) {
  if (!t.name.empty() || t.sub != Subresource::kNone) return StatusReply(MethodNotAllowed());
  absl::StatusOr<WriteRequest> w = ParseWrite(req, t);
  if (!w.ok()) return StatusReply(w.status());
  Reply r = ObjectReply(store->Create(t.resource, t.ns, std::move(w->body), w->options), 201);
  r.warnings = std::move(w->warnings);
  return r;
}

Reply ServeUpdate(Store* store, const ApiRequest& req, const Target& t) {
  if (t.name.empty()) return StatusReply(MethodNotAllowed());
  absl::StatusOr<WriteRequest> w = ParseWrite(req, t);
  if (!w.ok()) return StatusReply(w.status());
  Reply r = ObjectReply(store->Update(t.resource, t.ns, t.name, std::move(w->body), t.sub, w->options));
  r.warnings = std::move(w->warnings);
  return r;
}

Reply ServePatch(Store* store, const ApiRequest& req, const Target& t) {
  if (t.name.empty()) return StatusReply(MethodNotAllowed());
  auto w = WriteOptionsOf(req);
  if (!w.ok()) return StatusReply(w.status());
  std::string mt = MediaType(req.content_type);
  if (mt == "application/apply-patch+yaml") {
    w->field_manager = req.query.Get("fieldManager");  // required for apply: no User-Agent default
    // JSON is YAML; kubectl and Helm send apply configurations as JSON.
    auto body = ParseBody(req);
    if (!body.ok()) return StatusReply(BadRequestError("only JSON apply configurations are supported"));
    Reply checked;
    if (auto s = CheckUnknownFields(req, t.resource, *body, &checked); !s.ok()) return StatusReply(s);
    bool exists = store->Get(t.resource, t.ns, t.name).ok();
    Reply r = ObjectReply(store->Apply(t.resource, t.ns, t.name, *body, t.sub, *w), exists ? 200 : 201);
    r.warnings = checked.warnings;
    return r;
  }
  if (w->force) {
    return StatusReply(InvalidError("PatchOptions", "meta.k8s.io", "",
                                    {ForbiddenCause("force", "may not be specified for non-apply patch")}));
  }
  auto type = PatchTypeFromContentType(req.content_type);
  if (!type.ok())
    return StatusReply(ApiError(415, "UnsupportedMediaType", std::string(type.status().message())));
  auto body = ParseBody(req);
  if (!body.ok()) return StatusReply(body.status());
  Reply checked;
  if (*type != PatchType::kJson) {
    if (auto s = CheckUnknownFields(req, t.resource, *body, &checked); !s.ok()) return StatusReply(s);
  }
  Reply r = ObjectReply(store->Patch(t.resource, t.ns, t.name, *type, *body, t.sub, *w));
  r.warnings = checked.warnings;
  return r;
}

Reply ServeDelete(Store* store, const ApiRequest& req, const Target& t) {
  if (t.name.empty() || t.sub != Subresource::kNone) return StatusReply(MethodNotAllowed());
  const Query& q = req.query;
  DeleteOptions del;
  Preconditions& pre = del.preconditions;
  if (q.Has("gracePeriodSeconds")) {
    int64_t g;
    if (!absl::SimpleAtoi(q.Get("gracePeriodSeconds"), &g)) {
      return StatusReply(BadRequestError("gracePeriodSeconds must be an integer"));
    }
    del.grace_period_seconds = g;
  }
  std::vector<std::string> dry_run;
  if (q.Has("dryRun")) dry_run.push_back(q.Get("dryRun"));
  if (!req.body->empty()) {
    auto body = ParseBody(req);
    if (!body.ok()) return StatusReply(body.status());
    if (body->is_object() && body->contains("preconditions") && (*body)["preconditions"].is_object()) {
      const json& p = (*body)["preconditions"];
      if (p.contains("uid") && p["uid"].is_string()) pre.uid = p["uid"].get<std::string>();
      if (p.contains("resourceVersion") && p["resourceVersion"].is_string()) {
        pre.resource_version = p["resourceVersion"].get<std::string>();
      }
    }
    if (body->is_object() && body->contains("gracePeriodSeconds") &&
        (*body)["gracePeriodSeconds"].is_number_integer()) {
      del.grace_period_seconds = (*body)["gracePeriodSeconds"].get<int64_t>();
    }
    if (body->is_object() && body->contains("dryRun") && (*body)["dryRun"].is_array()) {
      for (const auto& d : (*body)["dryRun"]) {
        if (d.is_string()) dry_run.push_back(d);
      }
    }
  }
  for (const auto& d : dry_run) {
    if (d != "All") {
      return StatusReply(
          InvalidError("DeleteOptions", "meta.k8s.io", "", {NotSupportedCause("dryRun", d, {"All"})}));
    }
    del.dry_run = true;
  }
  return ObjectReply(store->Delete(t.resource, t.ns, t.name, del));
}

}  // namespace

Reply StatusReply(const absl::Status& s) {
  Reply r;
  r.status = HttpCode(s);
  r.body = StatusObject(s).dump();
  return r;
}

Reply ServeResource(Store* store, const ApiRequest& req, const Target& t, std::optional<WatchPlan>* watch) {
  bool table = WantsTable(req.accept);
  if (!table) {
    if (auto s = CheckAccept(req.accept); !s.ok()) return StatusReply(s);
  }
  try {
    if (req.method == "GET") {
      if (t.watch_prefix || req.query.Bool("watch")) return PrepareWatch(req, t, table, watch);
      if (t.name.empty()) return ServeList(store, req, t, table);
      auto o = store->Get(t.resource, t.ns, t.name);
      if (o.ok() && table) return Reply{200, TableOf(t.resource, {*o}, 0, "").dump()};
      return ObjectReply(o);
    }
    if (req.method == "POST") return ServeCreate(store, req, t);
    if (req.method == "PUT") return ServeUpdate(store, req, t);
    if (req.method == "PATCH") return ServePatch(store, req, t);
    if (req.method == "DELETE") return ServeDelete(store, req, t);
    return StatusReply(MethodNotAllowed());
  } catch (const json::exception& e) {
    // Malformed but parseable bodies (wrong types in known fields) end here instead of crashing the server.
    return StatusReply(BadRequestError(absl::StrCat("the request could not be processed: ", e.what())));
  }
}

}  // namespace pnc::sim
