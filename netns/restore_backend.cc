#include "netns/restore_backend.h"

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "netns/exec.h"
#include "netns/executor.h"
#include "netns/routing/routing.h"
#include "netns/xtables_names.h"
#include "rules/iptables_save.h"
#include "rules/render.h"

namespace pnc::netns {
namespace {

using rules::Family;

class RestoreBackend : public Backend {
 public:
  explicit RestoreBackend(RestoreOptions options) : o_(std::move(options)) {
    if (o_.lock_file.empty()) {
      const char* env = std::getenv("XTABLES_LOCKFILE");
      o_.lock_file = env != nullptr && *env != '\0' ? env : kDefaultLockFile;
    }
    env_ = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", absl::StrCat("XTABLES_LOCKFILE=", o_.lock_file)};
  }

  std::string Name() const override { return "restore"; }

  absl::Status Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) override {
    return RunInNetns(ns, [&]() -> absl::Status {
      for (Family f : {Family::kIPv4, Family::kIPv6}) {
        absl::StatusOr<rules::FamilyRules> current = ReadFamily(f);
        if (!current.ok()) return current.status();
        const rules::FamilyRules* want = ruleset.Find(f);
        std::string text;
        if (want != nullptr) {
          text = rules::RenderIptablesRestoreReplacing(*want, *current);
        } else if (!current->tables.empty()) {
          text = rules::RenderIptablesRestoreCleanup(*current);
        } else {
          continue;  // nothing wanted, nothing there: do not even create a table
        }
        const std::string& tool = f == Family::kIPv4 ? o_.restore_v4 : o_.restore_v6;
        absl::StatusOr<ExecResult> r = Exec({tool, "--noflush", "--wait", "5"}, env_, text, o_.timeout);
        if (!r.ok()) return r.status();
        if (r->exit_code != 0) {
          return absl::InternalError(absl::StrCat(tool, " exited ", r->exit_code, ": ", r->err));
        }
      }
      return SyncPolicyRoutes(ruleset.routes);
    });
  }

  absl::StatusOr<rules::Ruleset> ReadBack(const NetnsHandle& ns) override {
    rules::Ruleset out;
    absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
      for (Family f : {Family::kIPv4, Family::kIPv6}) {
        absl::StatusOr<rules::FamilyRules> fr = ReadFamily(f);
        if (!fr.ok()) return fr.status();
        if (!fr->tables.empty()) out.families.push_back(*std::move(fr));
      }
      absl::StatusOr<std::vector<rules::PolicyRoute>> routes = ReadPolicyRoutes();
      if (!routes.ok()) return routes.status();
      out.routes = *std::move(routes);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  absl::Status Remove(const NetnsHandle& ns) override { return Apply(ns, rules::Ruleset{}); }

 private:
  // Our part of one family in the calling thread's netns; empty without running anything when no table
  // exists.
  absl::StatusOr<rules::FamilyRules> ReadFamily(Family f) {
    absl::StatusOr<std::vector<std::string>> tables = LegacyTablesInCurrentNetns(f);
    if (!tables.ok()) return tables.status();
    if (tables->empty()) return rules::FamilyRules{f, {}};
    const std::string& tool = f == Family::kIPv4 ? o_.save_v4 : o_.save_v6;
    absl::StatusOr<ExecResult> r = Exec({tool}, env_, "", o_.timeout);  // no -t: never creates a table
    if (!r.ok()) return r.status();
    if (r->exit_code != 0)
      return absl::InternalError(absl::StrCat(tool, " exited ", r->exit_code, ": ", r->err));
    absl::StatusOr<rules::FamilyRules> parsed = rules::ParseIptablesSave(f, r->out);
    if (!parsed.ok()) {
      return absl::InternalError(
          absl::StrCat("reading back ", rules::FamilyName(f), " rules: ", parsed.status().message()));
    }
    return parsed;
  }

  RestoreOptions o_;
  std::vector<std::string> env_;
};

}  // namespace

std::unique_ptr<Backend> NewRestoreBackend() { return NewRestoreBackend(RestoreOptions{}); }
std::unique_ptr<Backend> NewRestoreBackend(RestoreOptions options) {
  return std::make_unique<RestoreBackend>(std::move(options));
}

}  // namespace pnc::netns
