#include "simulator/apiserver/selector.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pnc::sim {
namespace {

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
}

// A small hand-written lexer: the grammar is tiny and inputs are untrusted, so no regex.
class Lexer {
 public:
  explicit Lexer(const std::string& s) : s_(s) {}
  void SkipSpace() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ >= s_.size();
  }
  bool Consume(std::string_view tok) {
    SkipSpace();
    if (s_.compare(pos_, tok.size(), tok) == 0) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }
  std::string Word() {
    SkipSpace();
    size_t start = pos_;
    while (pos_ < s_.size() && IsKeyChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  // Consumes a keyword ("in"/"notin") only when followed by a space or '('.
  bool Keyword(std::string_view kw) {
    SkipSpace();
    if (s_.compare(pos_, kw.size(), kw) != 0) return false;
    size_t after = pos_ + kw.size();
    if (after < s_.size() && (s_[after] == ' ' || s_[after] == '(')) {
      pos_ = after;
      return true;
    }
    return false;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

absl::Status Bad(const std::string& text, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("unable to parse requirement: ", why, " in \"", text, "\""));
}

bool ValidLabelValue(const std::string& v) {
  if (v.size() > 63) return false;
  for (char c : v) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

const nlohmann::json* Labels(const nlohmann::json& object) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return nullptr;
  auto labels = md->find("labels");
  if (labels == md->end() || !labels->is_object()) return nullptr;
  return &*labels;
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  Lexer lx(text);
  if (lx.AtEnd()) return sel;
  while (true) {
    Requirement req;
    if (lx.Consume("!")) {
      req.key = lx.Word();
      if (req.key.empty()) return Bad(text, "missing key after '!'");
      req.op = Op::kNotExists;
    } else {
      req.key = lx.Word();
      if (req.key.empty()) return Bad(text, "missing key");
      if (lx.Consume("==") || lx.Consume("=")) {
        req.op = Op::kEquals;
        req.values.push_back(lx.Word());
      } else if (lx.Consume("!=")) {
        req.op = Op::kNotEquals;
        req.values.push_back(lx.Word());
      } else if (bool notin = lx.Keyword("notin"); notin || lx.Keyword("in")) {
        req.op = notin ? Op::kNotIn : Op::kIn;
        if (!lx.Consume("(")) return Bad(text, "expected '('");
        while (true) {
          std::string v = lx.Word();
          if (!v.empty()) req.values.push_back(v);
          if (lx.Consume(")")) break;
          if (!lx.Consume(",")) return Bad(text, "expected ',' or ')'");
        }
        if (req.values.empty()) return Bad(text, "for 'in', 'notin' operators, values set can't be empty");
      } else {
        req.op = Op::kExists;
      }
    }
    for (const auto& v : req.values) {
      if (!ValidLabelValue(v)) return Bad(text, absl::StrCat("invalid label value \"", v, "\""));
    }
    sel.requirements_.push_back(std::move(req));
    if (lx.AtEnd()) break;
    if (!lx.Consume(",")) return Bad(text, "expected ','");
  }
  return sel;
}

bool LabelSelector::Matches(const nlohmann::json& object) const {
  const nlohmann::json* labels = Labels(object);
  for (const auto& r : requirements_) {
    const nlohmann::json* v = nullptr;
    if (labels != nullptr) {
      auto it = labels->find(r.key);
      if (it != labels->end() && it->is_string()) v = &*it;
    }
    const std::string* value = v ? v->get_ptr<const std::string*>() : nullptr;
    auto in_values = [&] {
      return value != nullptr && std::find(r.values.begin(), r.values.end(), *value) != r.values.end();
    };
    switch (r.op) {
      case Op::kExists:
        if (value == nullptr) return false;
        break;
      case Op::kNotExists:
        if (value != nullptr) return false;
        break;
      case Op::kEquals:
      case Op::kIn:
        if (!in_values()) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (in_values()) return false;
        break;
    }
  }
  return true;
}

bool SupportedField(const std::string& resource, const std::string& path) {
  if (path == "metadata.name" || path == "metadata.namespace") return true;
  if (resource == "pods") {
    return path == "spec.nodeName" || path == "status.phase" || path == "spec.restartPolicy" ||
           path == "spec.schedulerName" || path == "spec.serviceAccountName" || path == "status.podIP" ||
           path == "status.nominatedNodeName" || path == "spec.hostNetwork";
  }
  if (resource == "events") {
    return absl::StartsWith(path, "involvedObject.") || path == "reason" || path == "type" ||
           path == "source" || path == "reportingComponent";
  }
  if (resource == "nodes") return path == "spec.unschedulable";
  if (resource == "namespaces") return path == "status.phase";
  return false;
}

std::string FieldValue(const nlohmann::json& object, const std::string& path) {
  const nlohmann::json* cur = &object;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!cur->is_object()) return "";
    auto it = cur->find(std::string(part));
    if (it == cur->end()) return "";
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return "";
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(const std::string& resource, const std::string& text) {
  FieldSelector sel;
  if (absl::StripAsciiWhitespace(text).empty()) return sel;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::string p(absl::StripAsciiWhitespace(part));
    Requirement req;
    size_t pos;
    if ((pos = p.find("!=")) != std::string::npos) {
      req.equals = false;
      req.path = p.substr(0, pos);
      req.value = p.substr(pos + 2);
    } else if ((pos = p.find("==")) != std::string::npos) {
      req.equals = true;
      req.path = p.substr(0, pos);
      req.value = p.substr(pos + 2);
    } else if ((pos = p.find('=')) != std::string::npos) {
      req.equals = true;
      req.path = p.substr(0, pos);
      req.value = p.substr(pos + 1);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", p, "'; can't understand '", p, "'"));
    }
    req.path = std::string(absl::StripAsciiWhitespace(req.path));
    req.value = std::string(absl::StripAsciiWhitespace(req.value));
    if (!SupportedField(resource, req.path)) {
      return absl::InvalidArgumentError(absl::StrCat("field label not supported: ", req.path));
    }
    sel.requirements_.push_back(std::move(req));
  }
  return sel;
}

bool FieldSelector::Matches(const nlohmann::json& object) const {
  for (const auto& r : requirements_) {
    if ((FieldValue(object, r.path) == r.value) != r.equals) return false;
  }
  return true;
}

std::optional<std::string> FieldSelector::ExactValue(const std::string& path) const {
  for (const auto& r : requirements_) {
    if (r.equals && r.path == path) return r.value;
  }
  return std::nullopt;
}

}  // namespace pnc::sim
