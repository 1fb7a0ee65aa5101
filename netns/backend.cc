#include "netns/backend.h"

#include "absl/strings/str_cat.h"

namespace pnc::netns {
namespace {

// Names the first difference between two rulesets so a verification failure is actionable.
std::string FirstDifference(const rules::Ruleset& want, const rules::Ruleset& got) {
  if (want.routes != got.routes) return "policy routes differ";
  if (want.loopback_addresses != got.loopback_addresses) return "loopback addresses differ";
  if (want.families.size() != got.families.size()) {
    return absl::StrCat("want ", want.families.size(), " address families, found ", got.families.size());
  }
  for (size_t f = 0; f < want.families.size(); ++f) {
    const auto& wf = want.families[f];
    const auto& gf = got.families[f];
    const char* fam = rules::FamilyName(wf.family);
    if (wf.family != gf.family || wf.tables.size() != gf.tables.size()) {
      return absl::StrCat(fam, ": tables differ");
    }
    for (size_t t = 0; t < wf.tables.size(); ++t) {
      const auto& wt = wf.tables[t];
      const auto& gt = gf.tables[t];
      const char* table = rules::TableName(wt.table);
      if (wt.table != gt.table || wt.chains.size() != gt.chains.size()) {
        return absl::StrCat(fam, "/", table, ": want ", wt.chains.size(), " chains, found ",
                            gt.chains.size());
      }
      for (size_t c = 0; c < wt.chains.size(); ++c) {
        const auto& wc = wt.chains[c];
        const auto& gc = gt.chains[c];
        if (wc.name != gc.name)
          return absl::StrCat(fam, "/", table, ": chain ", wc.name, " missing (found ", gc.name, ")");
        if (wc.rules.size() != gc.rules.size()) {
          return absl::StrCat(fam, "/", table, "/", wc.name, ": want ", wc.rules.size(), " rules, found ",
                              gc.rules.size());
        }
        for (size_t r = 0; r < wc.rules.size(); ++r) {
          if (!(wc.rules[r] == gc.rules[r]))
            return absl::StrCat(fam, "/", table, "/", wc.name, ": rule ", r + 1, " differs");
        }
      }
    }
  }
  return "rulesets differ";
}

}  // namespace

absl::StatusOr<rules::Ruleset> Backend::ApplyAndReadBack(const NetnsHandle& ns,
                                                         const rules::Ruleset& ruleset) {
  if (absl::Status s = Apply(ns, ruleset); !s.ok()) return s;
  return ReadBack(ns);
}

absl::Status ApplyAndVerify(Backend& backend, const NetnsHandle& ns, const rules::Ruleset& ruleset) {
  absl::StatusOr<rules::Ruleset> got = backend.ApplyAndReadBack(ns, ruleset);
  if (!got.ok()) return got.status();
  if (*got == ruleset) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("verification failed in ", ns.path(), " (", backend.Name(),
                                          "): ", FirstDifference(ruleset, *got)));
}

}  // namespace pnc::netns
