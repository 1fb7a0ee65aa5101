#include "netns/restore_backend.h"

#include <cstdlib>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "netns/exec.h"
#include "netns/executor.h"
#include "netns/routing/routing_state.h"
#include "netns/xtables_names.h"
#include "rules/iptables_save.h"
#include "rules/render.h"

namespace pnc::netns {
namespace {

using rules::Family;

bool IsOurChain(absl::string_view name) { return absl::StartsWith(name, "ISTIO_"); }

// Restore text that, per table, first removes everything of ours found in the raw `save` dump (jumps from
// built-in chains to ISTIO_* by their exact save spelling, then our chains: flushed and deleted) and then
// adds the blocks of `fresh` (RenderIptablesRestore output), all inside one COMMIT per table.
std::string RepairText(absl::string_view save, absl::string_view fresh) {
  std::map<std::string, std::string> cleanup;  // table -> lines
  std::map<std::string, std::vector<std::string>> ours;
  std::string table;
  for (absl::string_view line : absl::StrSplit(save, '\n')) {
    if (absl::StartsWith(line, "*")) {
      table = std::string(line.substr(1));
    } else if (absl::StartsWith(line, ":")) {
      absl::string_view name = line.substr(1, line.find(' ') - 1);
      if (IsOurChain(name)) ours[table].emplace_back(name);
    } else if (absl::StartsWith(line, "-A ")) {
      std::vector<absl::string_view> tok = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (tok.size() < 2 || IsOurChain(tok[1])) continue;
      for (size_t i = 2; i + 1 < tok.size(); ++i) {
        if ((tok[i] == "-j" || tok[i] == "-g") && IsOurChain(tok[i + 1])) {
          absl::StrAppend(&cleanup[table], "-D", line.substr(2), "\n");
          break;
        }
      }
    }
  }
  for (const auto& [t, chains] : ours) {
    for (const auto& c : chains) absl::StrAppend(&cleanup[t], ":", c, " - [0:0]\n");
    for (const auto& c : chains) absl::StrAppend(&cleanup[t], "-X ", c, "\n");
  }
  // Splice: the cleanup of a table goes right after its "*table" line in `fresh`; tables only in the cleanup
  // get their own block.
  std::string out;
  for (absl::string_view line : absl::StrSplit(fresh, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, line, "\n");
    if (absl::StartsWith(line, "*")) {
      auto it = cleanup.find(std::string(line.substr(1)));
      if (it != cleanup.end()) {
        out += it->second;
        cleanup.erase(it);
      }
    }
  }
  for (const auto& [t, lines] : cleanup) absl::StrAppend(&out, "*", t, "\n", lines, "COMMIT\n");
  return out;
}

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
        std::string save_text;
        absl::StatusOr<rules::FamilyRules> current = ReadFamily(f, &save_text);
        const rules::FamilyRules* want = ruleset.Find(f);
        const rules::FamilyRules empty{f, {}};
        std::string text;
        if (!current.ok()) {
          // Our chains hold something we do not model (tampering, another tool): we cannot name our old jumps
          // through the model, so clear our part by its raw save text and install afresh, still one COMMIT
          // per table.
          if (current.status().code() != absl::StatusCode::kInvalidArgument) return current.status();
          text = RepairText(save_text, rules::RenderIptablesRestore(want != nullptr ? *want : empty));
        } else if (want != nullptr) {
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
      return SyncRoutingState(ruleset);
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
      return ReadRoutingState(&out);
    });
    if (!s.ok()) return s;
    return out;
  }

  absl::Status Remove(const NetnsHandle& ns) override { return Apply(ns, rules::Ruleset{}); }

 private:
  // Our part of one family in the calling thread's netns; empty without running anything when no table
  // exists.
  // InvalidArgument when our chains hold rules outside the model; `save_text` (optional) gets the raw dump.
  absl::StatusOr<rules::FamilyRules> ReadFamily(Family f, std::string* save_text = nullptr) {
    absl::StatusOr<std::vector<std::string>> tables = LegacyTablesInCurrentNetns(f);
    if (!tables.ok()) return tables.status();
    if (tables->empty()) return rules::FamilyRules{f, {}};
    const std::string& tool = f == Family::kIPv4 ? o_.save_v4 : o_.save_v6;
    absl::StatusOr<ExecResult> r = Exec({tool}, env_, "", o_.timeout);  // no -t: never creates a table
    if (!r.ok()) return r.status();
    if (r->exit_code != 0)
      return absl::InternalError(absl::StrCat(tool, " exited ", r->exit_code, ": ", r->err));
    absl::StatusOr<rules::FamilyRules> parsed = rules::ParseIptablesSave(f, r->out);
    if (save_text != nullptr) *save_text = std::move(r->out);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
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
