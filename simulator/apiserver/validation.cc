#include "simulator/apiserver/validation.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "simulator/apiserver/api_error.h"

namespace pnc::sim {
namespace {

using nlohmann::json;

bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '-'))
      return false;
  }
  return s.front() != '-' && s.back() != '-';
}

void CheckEnum(const json& obj, const char* key, const std::string& path,
               const std::vector<std::string>& allowed, std::vector<FieldCause>* causes) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  if (!it->is_string() ||
      std::find(allowed.begin(), allowed.end(), it->get<std::string>()) == allowed.end()) {
    causes->push_back(NotSupportedCause(path, *it, allowed));
  }
}

void CheckContainers(const json& list, const std::string& path, std::set<std::string>* names,
                     std::vector<FieldCause>* causes) {
  for (size_t i = 0; i < list.size(); ++i) {
    std::string at = absl::StrCat(path, "[", i, "]");
    const json& c = list[i];
    if (!c.is_object()) {
      causes->push_back(InvalidCause(at, c, "must be an object"));
      continue;
    }
    auto name = c.find("name");
    if (name == c.end() || !name->is_string() || name->get<std::string>().empty()) {
      causes->push_back(RequiredCause(at + ".name"));
    } else if (!IsDnsLabel(*name)) {
      causes->push_back(
          InvalidCause(at + ".name", *name,
                       "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                       "characters or '-', and must start and end with an alphanumeric character"));
    } else if (!names->insert(*name).second) {
      causes->push_back(
          {"FieldValueDuplicate", at + ".name", absl::StrCat("Duplicate value: ", name->dump())});
    }
    auto image = c.find("image");
    if (image == c.end() || !image->is_string() || image->get<std::string>().empty()) {
      causes->push_back(RequiredCause(at + ".image"));
    }
    CheckEnum(c, "imagePullPolicy", at + ".imagePullPolicy", {"Always", "IfNotPresent", "Never"}, causes);
    if (auto ports = c.find("ports"); ports != c.end() && ports->is_array()) {
      for (size_t j = 0; j < ports->size(); ++j) {
        const json& p = (*ports)[j];
        std::string pat = absl::StrCat(at, ".ports[", j, "]");
        if (!p.is_object()) continue;
        auto cp = p.find("containerPort");
        if (cp == p.end()) {
          causes->push_back(RequiredCause(pat + ".containerPort"));
        } else if (!cp->is_number_integer() || cp->get<int64_t>() < 1 || cp->get<int64_t>() > 65535) {
          causes->push_back(
              InvalidCause(pat + ".containerPort", *cp, "must be between 1 and 65535, inclusive"));
        }
        CheckEnum(p, "protocol", pat + ".protocol", {"SCTP", "TCP", "UDP"}, causes);
      }
    }
  }
}

}  // namespace

absl::Status ValidatePod(const json& pod, const std::string& name) {
  std::vector<FieldCause> causes;
  auto spec_it = pod.find("spec");
  if (spec_it == pod.end() || !spec_it->is_object()) {
    causes.push_back(RequiredCause("spec.containers"));
    return InvalidError("Pod", "", name, causes);
  }
  const json& spec = *spec_it;
  std::set<std::string> names;
  auto containers = spec.find("containers");
  if (containers == spec.end() || !containers->is_array() || containers->empty()) {
    causes.push_back(RequiredCause("spec.containers"));
  } else {
    CheckContainers(*containers, "spec.containers", &names, &causes);
  }
  if (auto init = spec.find("initContainers"); init != spec.end() && init->is_array()) {
    CheckContainers(*init, "spec.initContainers", &names, &causes);
  }
  CheckEnum(spec, "restartPolicy", "spec.restartPolicy", {"Always", "Never", "OnFailure"}, &causes);
  CheckEnum(spec, "dnsPolicy", "spec.dnsPolicy",
            {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}, &causes);
  if (auto g = spec.find("terminationGracePeriodSeconds");
      g != spec.end() && (!g->is_number_integer() || g->get<int64_t>() < 0)) {
    causes.push_back(
        InvalidCause("spec.terminationGracePeriodSeconds", *g, "must be greater than or equal to 0"));
  }
  if (auto a = spec.find("activeDeadlineSeconds");
      a != spec.end() && !a->is_null() && (!a->is_number_integer() || a->get<int64_t>() < 1)) {
    causes.push_back(
        InvalidCause("spec.activeDeadlineSeconds", *a, "must be between 1 and 2147483647, inclusive"));
  }
  if (causes.empty()) return absl::OkStatus();
  return InvalidError("Pod", "", name, causes);
}

}  // namespace pnc::sim
