#include "simulator/apiserver/request.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "simulator/apiserver/api_error.h"

namespace pnc::sim {
namespace {

std::string UrlDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    int v = 0;
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && absl::SimpleHexAtoi(in.substr(i + 1, 2), &v)) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

absl::Status NotServed() {
  return ApiError(404, "NotFound", "the server could not find the requested resource");
}

}  // namespace

std::string Query::Get(const std::string& k) const {
  auto it = values.find(k);
  return it == values.end() ? "" : it->second;
}

bool Query::Bool(const std::string& k) const {
  std::string v = Get(k);
  return v == "true" || v == "1";
}

Query ParseQuery(absl::string_view target) {
  Query q;
  size_t qpos = target.find('?');
  if (qpos == absl::string_view::npos) return q;
  for (absl::string_view kv : absl::StrSplit(target.substr(qpos + 1), '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    q.values[UrlDecode(p.first)] = UrlDecode(p.second);
  }
  return q;
}

absl::StatusOr<Target> ParseResourcePath(absl::string_view path) {
  std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
  // Group and version: /api/v1 (core) or /apis/<group>/<version>.
  std::string group;
  size_t first;
  if (seg.size() >= 2 && seg[0] == "api" && seg[1] == "v1") {
    first = 2;
  } else if (seg.size() >= 3 && seg[0] == "apis") {
    group = seg[1];
    first = 3;
  } else {
    return NotServed();
  }
  std::string version = seg[first - 1];
  seg.erase(seg.begin(), seg.begin() + first);
  Target t;
  if (!seg.empty() && seg[0] == "watch") {
    t.watch_prefix = true;
    seg.erase(seg.begin());
  }
  if (seg.empty()) return NotServed();
  auto resolve = [&](const std::string& plural) -> std::optional<Resource> {
    auto r = ResourceFromPlural(group, plural);
    if (!r || Info(*r).version != version) return std::nullopt;
    return r;
  };
  auto parse_sub = [&](const std::string& s) -> absl::Status {
    if (s == "status" && Info(t.resource).has_status) {
      t.sub = Subresource::kStatus;
      return absl::OkStatus();
    }
    return NotServed();
  };
  size_t rest;  // index of the name segment
  if (seg[0] == "namespaces" && seg.size() >= 3) {
    auto r = resolve(seg[2]);
    if (!r || !Info(*r).namespaced) return NotServed();
    t.resource = *r;
    t.ns = seg[1];
    rest = 3;
  } else {
    auto r = resolve(seg[0]);
    if (!r) return NotServed();
    // A namespaced resource across all namespaces: collection only.
    if (Info(*r).namespaced && seg.size() > 1) return NotServed();
    t.resource = *r;
    rest = 1;
  }
  if (seg.size() > rest) t.name = seg[rest];
  if (seg.size() == rest + 2) {
    if (auto s = parse_sub(seg[rest + 1]); !s.ok()) return s;
  }
  if (seg.size() > rest + 2) return NotServed();
  return t;
}

}  // namespace pnc::sim
