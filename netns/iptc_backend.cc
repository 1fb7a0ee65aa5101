#include "netns/iptc_backend.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "netns/executor.h"
#include "netns/iptc_rule_codec.h"
#include "netns/routing/routing_state.h"
#include "netns/xtables_names.h"

namespace pnc::netns {
namespace {

using iptc::BuildEntry;
using iptc::EntryBuilder;
using iptc::IsOurs;
using iptc::TranslateEntry;
using iptc::V4;
using iptc::V6;
using rules::Family;
using rules::Rule;
using rules::Table;

constexpr Table kAllTables[] = {Table::kRaw, Table::kMangle, Table::kNat, Table::kFilter};
constexpr const char* kBuiltinOrder[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};

absl::Mutex g_iptc_mu;  // see the header: libiptc's error state is global

int BuiltinRank(const std::string& chain) {
  for (int i = 0; i < 5; ++i) {
    if (chain == kBuiltinOrder[i]) return i;
  }
  return 5;
}

// ---- One table ----

template <typename F>
class Handle {
 public:
  explicit Handle(xtc_handle* h) : h_(h) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (h_ != nullptr) F::Free(h_);
  }
  xtc_handle* get() const { return h_; }

 private:
  xtc_handle* h_;
};

template <typename F>
absl::Status IptcError(const std::string& what, Table table) {
  const int err = errno;
  return absl::InternalError(absl::StrCat(rules::FamilyName(F::kFamily), "/", rules::TableName(table), ": ",
                                          what, ": ", F::StrError(err)));
}

struct ChainNames {
  std::vector<std::string> builtin;  // all built-in chains of the table
  std::vector<std::string> ours;     // existing ISTIO_* chains
};

template <typename F>
ChainNames ListChains(xtc_handle* h) {
  ChainNames names;
  for (const char* c = F::FirstChain(h); c != nullptr; c = F::NextChain(h)) {
    if (F::Builtin(c, h)) {
      names.builtin.push_back(c);
    } else if (IsOurs(c)) {
      names.ours.push_back(c);
    }
  }
  return names;
}

// Our part of one table, chains ordered like BuildRuleset orders them.
template <typename F>
absl::StatusOr<rules::TableRules> ReadTable(xtc_handle* h, Table table) {
  rules::TableRules out{table, {}};
  ChainNames names = ListChains<F>(h);
  std::sort(names.builtin.begin(), names.builtin.end(),
            [](const std::string& a, const std::string& b) { return BuiltinRank(a) < BuiltinRank(b); });
  std::sort(names.ours.begin(), names.ours.end());
  int index;
  auto fail = [&](const std::string& chain, const absl::Status& s) {
    return absl::InternalError(absl::StrCat(rules::FamilyName(F::kFamily), "/", rules::TableName(table), "/",
                                            chain, " rule ", index, ": ", s.message()));
  };
  for (const auto& chain : names.builtin) {
    rules::Chain c{chain, {}};
    index = 0;
    for (const auto* e = F::FirstRule(chain.c_str(), h); e != nullptr; e = F::NextRule(e, h)) {
      ++index;
      const char* target = F::Target(e, h);
      if (target == nullptr || !IsOurs(target)) continue;  // not ours
      absl::StatusOr<Rule> r = TranslateEntry<F>(e, h);
      if (!r.ok()) return fail(chain, r.status());
      c.rules.push_back(*std::move(r));
    }
    if (!c.rules.empty()) out.chains.push_back(std::move(c));
  }
  for (const auto& chain : names.ours) {
    rules::Chain c{chain, {}};
    index = 0;
    for (const auto* e = F::FirstRule(chain.c_str(), h); e != nullptr; e = F::NextRule(e, h)) {
      ++index;
      absl::StatusOr<Rule> r = TranslateEntry<F>(e, h);
      if (!r.ok()) return fail(chain, r.status());
      c.rules.push_back(*std::move(r));
    }
    out.chains.push_back(std::move(c));
  }
  return out;
}

// Makes our part of `table` equal to `want` (nullptr: nothing of ours), in one commit. When `want` is null
// and the table holds nothing of ours, nothing is committed.
template <typename F>
absl::Status SyncTable(Table table, const rules::TableRules* want) {
  Handle<F> h(F::Init(rules::TableName(table)));
  if (h.get() == nullptr) return IptcError<F>("init", table);
  ChainNames names = ListChains<F>(h.get());

  bool changed = false;
  // 1. Our jumps out of built-in chains (highest index first so earlier indices stay valid).
  for (const auto& chain : names.builtin) {
    std::vector<unsigned> mine;
    unsigned i = 0;
    for (const auto* e = F::FirstRule(chain.c_str(), h.get()); e != nullptr;
         e = F::NextRule(e, h.get()), ++i) {
      const char* target = F::Target(e, h.get());
      if (target != nullptr && IsOurs(target)) mine.push_back(i);
    }
    for (auto it = mine.rbegin(); it != mine.rend(); ++it) {
      if (!F::DeleteNum(chain.c_str(), *it, h.get()))
        return IptcError<F>(absl::StrCat("delete from ", chain), table);
      changed = true;
    }
  }
  // 2. Flush ours; delete the ones no longer wanted (references from our jumps and chains are gone by now).
  std::set<std::string> wanted;
  if (want != nullptr) {
    for (const auto& c : want->chains) {
      if (!c.builtin()) wanted.insert(c.name);
    }
  }
  for (const auto& chain : names.ours) {
    if (!F::Flush(chain.c_str(), h.get())) return IptcError<F>(absl::StrCat("flush ", chain), table);
    changed = true;
  }
  for (const auto& chain : names.ours) {
    if (wanted.count(chain) == 0 && !F::Delete(chain.c_str(), h.get())) {
      return IptcError<F>(absl::StrCat("delete chain ", chain, " (still referenced by a foreign rule?)"),
                          table);
    }
  }
  if (want != nullptr) {
    const std::set<std::string> existing(names.ours.begin(), names.ours.end());
    for (const auto& chain : wanted) {
      if (existing.count(chain) == 0 && !F::Create(chain.c_str(), h.get())) {
        return IptcError<F>(absl::StrCat("create chain ", chain), table);
      }
    }
    // 3. Our rules, then our jumps APPENDED to the built-in chains (istio-iptables appends its jumps with
    //    `iptables-restore --noflush`: a rule someone else put in the chain before us runs first).
    for (const auto& chain : want->chains) {
      for (const auto& rule : chain.rules) {
        EntryBuilder<F> b;
        if (absl::Status s = BuildEntry<F>(rule, b); !s.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(rules::TableName(table), "/", chain.name, ": ", s.message()));
        }
        const int ok = F::Append(chain.name.c_str(), b.entry(), h.get());
        if (!ok) return IptcError<F>(absl::StrCat("add rule to ", chain.name), table);
      }
    }
    changed = true;
  }
  if (changed && !F::Commit(h.get())) return IptcError<F>("commit", table);
  return absl::OkStatus();
}

template <typename F>
absl::Status SyncFamily(const rules::FamilyRules* want) {
  absl::StatusOr<std::vector<Table>> existing = LegacyModelTablesInCurrentNetns(F::kFamily);
  if (!existing.ok()) return existing.status();
  for (Table table : kAllTables) {
    const rules::TableRules* t = nullptr;
    if (want != nullptr) {
      for (const auto& tr : want->tables) {
        if (tr.table == table) t = &tr;
      }
    }
    const bool exists = std::find(existing->begin(), existing->end(), table) != existing->end();
    if (t == nullptr && !exists) continue;  // never create a table just to clean it
    absl::MutexLock lock(&g_iptc_mu);
    if (absl::Status s = SyncTable<F>(table, t); !s.ok()) return s;
  }
  return absl::OkStatus();
}

template <typename F>
absl::StatusOr<std::optional<rules::FamilyRules>> ReadFamily() {
  absl::StatusOr<std::vector<Table>> existing = LegacyModelTablesInCurrentNetns(F::kFamily);
  if (!existing.ok()) return existing.status();
  rules::FamilyRules fr{F::kFamily, {}};
  for (Table table : *existing) {
    absl::MutexLock lock(&g_iptc_mu);
    Handle<F> h(F::Init(rules::TableName(table)));
    if (h.get() == nullptr) return IptcError<F>("init", table);
    absl::StatusOr<rules::TableRules> tr = ReadTable<F>(h.get(), table);
    if (!tr.ok()) return tr.status();
    if (!tr->chains.empty()) fr.tables.push_back(*std::move(tr));
  }
  if (fr.tables.empty()) return std::nullopt;
  return fr;
}

class IptcBackend : public Backend {
 public:
  std::string Name() const override { return "iptc"; }

  absl::Status Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) override {
    return RunInNetns(ns, [&] { return ApplyHere(ruleset); });
  }

  absl::StatusOr<rules::Ruleset> ReadBack(const NetnsHandle& ns) override {
    rules::Ruleset out;
    if (absl::Status s = RunInNetns(ns, [&] { return ReadBackHere(&out); }); !s.ok()) return s;
    return out;
  }

  // One namespace entry for both steps; the read-back still reads the kernel's tables afresh.
  absl::StatusOr<rules::Ruleset> ApplyAndReadBack(const NetnsHandle& ns,
                                                  const rules::Ruleset& ruleset) override {
    rules::Ruleset out;
    absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
      if (absl::Status a = ApplyHere(ruleset); !a.ok()) return a;
      return ReadBackHere(&out);
    });
    if (!s.ok()) return s;
    return out;
  }

  absl::Status Remove(const NetnsHandle& ns) override { return Apply(ns, rules::Ruleset{}); }

 private:
  // Both run on the netns worker, inside the target namespace.
  static absl::Status ApplyHere(const rules::Ruleset& ruleset) {
    if (absl::Status s = SyncFamily<V4>(ruleset.Find(Family::kIPv4)); !s.ok()) return s;
    if (absl::Status s = SyncFamily<V6>(ruleset.Find(Family::kIPv6)); !s.ok()) return s;
    return SyncRoutingState(ruleset);
  }

  static absl::Status ReadBackHere(rules::Ruleset* out) {
    absl::StatusOr<std::optional<rules::FamilyRules>> v4 = ReadFamily<V4>();
    if (!v4.ok()) return v4.status();
    if (*v4) out->families.push_back(**std::move(v4));
    absl::StatusOr<std::optional<rules::FamilyRules>> v6 = ReadFamily<V6>();
    if (!v6.ok()) return v6.status();
    if (*v6) out->families.push_back(**std::move(v6));
    return ReadRoutingState(out);
  }
};

}  // namespace

std::unique_ptr<Backend> NewIptcBackend() { return std::make_unique<IptcBackend>(); }

}  // namespace pnc::netns
