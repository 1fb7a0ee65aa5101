#include "rules/iptables_save.h"

#include <map>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rules/values.h"

namespace pnc::rules {
namespace {

using internal::ParseHexOrDecimalUint32;
using internal::ParsePort;
using internal::ParseUint32;
using internal::QuoteToken;

constexpr size_t kMaxLineBytes = 4096;

bool IsOurs(absl::string_view chain) { return chain.size() > 6 && chain.substr(0, 6) == "ISTIO_"; }

// iptables chain names are at most 28 bytes; ours only ever use [A-Z0-9_], accept the usual [A-Za-z0-9_-].
bool IsValidOwnChainName(absl::string_view chain) {
  if (!IsOurs(chain) || chain.size() > 28) return false;
  for (char c : chain)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

int BuiltinRank(absl::string_view name) {
  static constexpr absl::string_view kOrder[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  for (int i = 0; i < 5; ++i)
    if (name == kOrder[i]) return i;
  return -1;
}

// Splits on spaces; "double quoted" tokens (iptables-save quotes e.g. comments) may contain spaces and \" \\.
absl::StatusOr<std::vector<std::string>> Tokenize(absl::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    std::string tok;
    if (line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
          tok.push_back(line[i++]);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          tok.push_back(c);
        }
      }
      if (!closed) return absl::InvalidArgumentError("unterminated quote");
    } else {
      while (i < line.size() && line[i] != ' ') tok.push_back(line[i++]);
    }
    out.push_back(std::move(tok));
  }
  return out;
}

struct Parser {
  Family family;

  absl::Status Err(absl::string_view what, absl::string_view token) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", QuoteToken(token)));
  }

  absl::StatusOr<Cidr> ParseCidrExact(absl::string_view v) {
    auto c = internal::ParseCidr(v);
    if (!c) return Err("not a CIDR:", v);
    if (c->cidr.family != family) return Err("CIDR of the wrong family:", v);
    if (c->host_bits_set || internal::FormatCidr(c->cidr) != v) return Err("non-canonical CIDR:", v);
    return c->cidr;
  }

  static absl::StatusOr<uint32_t> FullMaskMark(absl::string_view v, bool require_mask) {
    std::pair<absl::string_view, absl::string_view> mm = absl::StrSplit(v, absl::MaxSplits('/', 1));
    auto mark = ParseHexOrDecimalUint32(mm.first);
    if (!mark) return absl::InvalidArgumentError(absl::StrCat("bad mark ", QuoteToken(v)));
    if (v.find('/') != absl::string_view::npos) {
      auto mask = ParseHexOrDecimalUint32(mm.second);
      if (!mask || *mask != 0xffffffff)
        return absl::InvalidArgumentError(absl::StrCat("mark mask other than 0xffffffff: ", QuoteToken(v)));
    } else if (require_mask) {
      return absl::InvalidArgumentError(absl::StrCat("mark without mask: ", QuoteToken(v)));
    }
    return *mark;
  }

  // tokens[start..] is a rule spec (after "-A CHAIN").
  absl::StatusOr<Rule> ParseRule(const std::vector<std::string>& t, size_t start) {
    Rule r;
    bool neg = false;
    std::string module;
    bool have_target = false;
    auto need = [&](size_t i) -> absl::StatusOr<absl::string_view> {
      if (i + 1 >= t.size()) return Err("missing value after", t[i]);
      return absl::string_view(t[i + 1]);
    };
    auto no_neg = [&](absl::string_view opt) -> absl::Status {
      if (neg) return Err("unsupported negation of", opt);
      return absl::OkStatus();
    };
    for (size_t i = start; i < t.size(); ++i) {
      const std::string& tok = t[i];
      if (have_target) return Err("unexpected token after target:", tok);
      if (tok == "!") {
        if (neg) return Err("double negation", tok);
        neg = true;
        continue;
      }
      if (tok == "-s" || tok == "-d") {
        auto v = need(i);
        if (!v.ok()) return v.status();
        auto c = ParseCidrExact(*v);
        if (!c.ok()) return c.status();
        auto& field = tok == "-s" ? r.source : r.destination;
        if (field) return Err("duplicate", tok);
        field = Negatable<Cidr>{*c, neg};
        ++i;
      } else if (tok == "-i" || tok == "-o") {
        auto v = need(i);
        if (!v.ok()) return v.status();
        if (!internal::IsValidInterfaceName(*v)) return Err("unsupported interface name:", *v);
        auto& field = tok == "-i" ? r.in_interface : r.out_interface;
        if (field) return Err("duplicate", tok);
        field = Negatable<std::string>{std::string(*v), neg};
        ++i;
      } else if (tok == "-p") {
        if (auto s = no_neg(tok); !s.ok()) return s;
        auto v = need(i);
        if (!v.ok()) return v.status();
        if (r.protocol) return Err("duplicate", tok);
        if (*v == "tcp" || *v == "6") {
          r.protocol = Protocol::kTcp;
        } else if (*v == "udp" || *v == "17") {
          r.protocol = Protocol::kUdp;
        } else {
          return Err("unsupported protocol", *v);
        }
        ++i;
      } else if (tok == "-m") {
        if (auto s = no_neg(tok); !s.ok()) return s;
        auto v = need(i);
        if (!v.ok()) return v.status();
        module = std::string(*v);
        if (module == "tcp" || module == "udp") {
          if (!r.protocol || module != (*r.protocol == Protocol::kTcp ? "tcp" : "udp"))
            return Err("match module without matching -p:", module);
        } else if (module != "owner" && module != "mark" && module != "connmark" && module != "socket" &&
                   module != "conntrack") {
          return Err("unsupported match module", module);
        }
        ++i;
      } else if (tok == "--sport" || tok == "--dport") {
        if (module != "tcp" && module != "udp") return Err("option outside -m tcp/udp:", tok);
        auto v = need(i);
        if (!v.ok()) return v.status();
        auto p = ParsePort(*v);
        if (!p) return Err("unsupported port (single port 1..65535 only):", *v);
        auto& field = tok == "--sport" ? r.source_port : r.destination_port;
        if (field) return Err("duplicate", tok);
        field = Negatable<uint16_t>{*p, neg};
        ++i;
      } else if (tok == "--uid-owner" || tok == "--gid-owner") {
        if (module != "owner") return Err("option outside -m owner:", tok);
        auto v = need(i);
        if (!v.ok()) return v.status();
        auto id = ParseUint32(*v);
        if (!id) return Err("unsupported owner id (single numeric id only):", *v);
        auto& field = tok == "--uid-owner" ? r.uid_owner : r.gid_owner;
        if (field) return Err("duplicate", tok);
        field = Negatable<uint32_t>{*id, neg};
        ++i;
      } else if (tok == "--mark") {
        if (module != "mark" && module != "connmark") return Err("option outside -m mark/connmark:", tok);
        if (module == "connmark")
          if (auto s = no_neg(tok); !s.ok()) return s;
        auto v = need(i);
        if (!v.ok()) return v.status();
        auto m = FullMaskMark(*v, false);
        if (!m.ok()) return m.status();
        if (module == "mark") {
          if (r.mark) return Err("duplicate", tok);
          r.mark = Negatable<uint32_t>{*m, neg};
        } else {
          if (r.connmark) return Err("duplicate", tok);
          r.connmark = *m;
        }
        ++i;
      } else if (tok == "--ctstate") {
        if (auto s = no_neg(tok); !s.ok()) return s;
        if (module != "conntrack") return Err("option outside -m conntrack:", tok);
        auto v = need(i);
        if (!v.ok()) return v.status();
        if (*v != "RELATED,ESTABLISHED") return Err("unsupported --ctstate (only RELATED,ESTABLISHED):", *v);
        if (r.ct_related_established) return Err("duplicate", tok);
        r.ct_related_established = true;
        ++i;
      } else if (tok == "--transparent") {
        if (auto s = no_neg(tok); !s.ok()) return s;
        if (module != "socket") return Err("option outside -m socket:", tok);
        r.socket_transparent = true;
      } else if (tok == "-j") {
        if (auto s = no_neg(tok); !s.ok()) return s;
        auto v = need(i);
        if (!v.ok()) return v.status();
        auto target = ParseTarget(*v, t, i + 2);
        if (!target.ok()) return target.status();
        r.target = *target;
        have_target = true;
        break;
      } else {
        return Err("unsupported option", tok);
      }
      neg = false;
    }
    if (neg) return Err("dangling", "!");
    if (!have_target) return absl::InvalidArgumentError("rule without -j target");
    return r;
  }

  // Consumes ALL remaining tokens (target options are last in iptables-save output).
  absl::StatusOr<Target> ParseTarget(absl::string_view name, const std::vector<std::string>& t, size_t i) {
    std::map<std::string, std::string> opts;  // option -> value ("" for flags)
    static const std::map<std::string_view, bool> kHasValue = {
        {"--to-ports", true},  {"--on-port", true},    {"--on-ip", true},         {"--tproxy-mark", true},
        {"--set-xmark", true}, {"--save-mark", false}, {"--restore-mark", false}, {"--nfmask", true},
        {"--ctmask", true},    {"--zone", true}};
    for (; i < t.size(); ++i) {
      auto it = kHasValue.find(t[i]);
      if (it == kHasValue.end()) return Err("unsupported target option", t[i]);
      if (opts.count(t[i])) return Err("duplicate", t[i]);
      if (it->second) {
        if (i + 1 >= t.size()) return Err("missing value after", t[i]);
        opts[t[i]] = t[i + 1];
        ++i;
      } else {
        opts[t[i]] = "";
      }
    }
    auto only = [&](std::initializer_list<const char*> allowed) -> absl::Status {
      for (const auto& [k, v] : opts) {
        bool ok = false;
        for (const char* a : allowed) ok |= k == a;
        if (!ok) return Err(absl::StrCat("option not valid for ", name, ":"), k);
      }
      return absl::OkStatus();
    };
    if (IsOurs(name)) {
      if (!IsValidOwnChainName(name)) return Err("invalid chain name", name);
      if (auto s = only({}); !s.ok()) return s;
      return Target(JumpTarget{std::string(name)});
    }
    if (name == "RETURN" || name == "ACCEPT") {
      if (auto s = only({}); !s.ok()) return s;
      return name == "RETURN" ? Target(ReturnTarget{}) : Target(AcceptTarget{});
    }
    if (name == "REDIRECT") {
      if (auto s = only({"--to-ports"}); !s.ok()) return s;
      auto p = ParsePort(opts["--to-ports"]);
      if (!p) return Err("unsupported --to-ports", opts["--to-ports"]);
      return Target(RedirectTarget{*p});
    }
    if (name == "TPROXY") {
      if (auto s = only({"--on-port", "--on-ip", "--tproxy-mark"}); !s.ok()) return s;
      auto p = ParsePort(opts["--on-port"]);
      if (!p) return Err("unsupported --on-port", opts["--on-port"]);
      const char* any = family == Family::kIPv4 ? "0.0.0.0" : "::";
      if (opts.count("--on-ip") && opts["--on-ip"] != any) return Err("unsupported --on-ip", opts["--on-ip"]);
      auto m = FullMaskMark(opts["--tproxy-mark"], true);
      if (!m.ok()) return m.status();
      return Target(TproxyTarget{*p, *m, 0xffffffff});
    }
    if (name == "MARK") {
      if (auto s = only({"--set-xmark"}); !s.ok()) return s;
      auto m = FullMaskMark(opts["--set-xmark"], true);
      if (!m.ok()) return m.status();
      return Target(MarkTarget{*m, 0xffffffff});
    }
    if (name == "CONNMARK") {
      if (auto s = only({"--save-mark", "--restore-mark", "--nfmask", "--ctmask"}); !s.ok()) return s;
      bool save = opts.count("--save-mark"), restore = opts.count("--restore-mark");
      if (save == restore) return Err("CONNMARK needs exactly one of --save-mark/--restore-mark", name);
      for (const char* k : {"--nfmask", "--ctmask"}) {
        if (!opts.count(k)) continue;
        auto v = ParseHexOrDecimalUint32(opts[k]);
        if (!v || *v != 0xffffffff) return Err(absl::StrCat("unsupported ", k), opts[k]);
      }
      return Target(ConnmarkTarget{save ? ConnmarkTarget::Op::kSave : ConnmarkTarget::Op::kRestore});
    }
    if (name == "CT") {
      if (auto s = only({"--zone"}); !s.ok()) return s;
      auto z = ParseUint32(opts["--zone"]);
      if (!z || *z > 65535) return Err("unsupported --zone", opts["--zone"]);
      return Target(CtZoneTarget{static_cast<uint16_t>(*z)});
    }
    return Err("unsupported target", name);
  }
};

struct TableState {
  std::map<int, std::vector<Rule>> builtin;       // rank -> our rules
  std::map<std::string, std::vector<Rule>> ours;  // sorted by name
  std::map<std::string, bool> declared_ours;
};

}  // namespace

absl::StatusOr<FamilyRules> ParseIptablesSave(Family family, absl::string_view text) {
  Parser parser{family};
  std::map<Table, TableState> tables;
  std::optional<Table> current;  // our table being read
  bool in_table = false;         // inside any *table block (ours or foreign)
  bool foreign = false;
  int lineno = 0;
  auto err = [&](absl::string_view what, absl::string_view line) {
    return absl::InvalidArgumentError(absl::StrCat(FamilyName(family), " iptables-save line ", lineno, ": ",
                                                   what, " in ", QuoteToken(line, 120)));
  };
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    if (line.size() > kMaxLineBytes) return err("line too long", line);
    if (line[0] == '*') {
      if (in_table) return err("table without COMMIT before", line);
      in_table = true;
      absl::string_view name = line.substr(1);
      foreign = false;
      current.reset();
      if (name == "raw")
        current = Table::kRaw;
      else if (name == "mangle")
        current = Table::kMangle;
      else if (name == "nat")
        current = Table::kNat;
      else if (name == "filter")
        current = Table::kFilter;
      else
        foreign = true;
      if (current && tables.count(*current)) return err("table appears twice", line);
      if (current) tables[*current];
      continue;
    }
    if (line == "COMMIT") {
      if (!in_table) return err("COMMIT outside a table", line);
      in_table = false;
      current.reset();
      continue;
    }
    if (!in_table) return err("content outside a table", line);
    if (foreign) continue;
    TableState& ts = tables[*current];
    if (line[0] == ':') {
      size_t sp = line.find(' ');
      absl::string_view chain =
          line.substr(1, sp == absl::string_view::npos ? absl::string_view::npos : sp - 1);
      if (IsOurs(chain)) {
        if (!IsValidOwnChainName(chain)) return err("invalid chain name", line);
        ts.declared_ours[std::string(chain)] = true;
        ts.ours[std::string(chain)];
      }
      continue;
    }
    if (line[0] == '[') {  // "[pkts:bytes] -A ..." from iptables-save -c
      size_t close = line.find("] ");
      if (close == absl::string_view::npos) return err("malformed counters", line);
      line.remove_prefix(close + 2);
    }
    auto tokens = Tokenize(line);
    if (!tokens.ok()) return err(tokens.status().message(), line);
    const auto& t = *tokens;
    if (t.size() < 2 || t[0] != "-A") return err("expected -A <chain>", line);
    const std::string& chain = t[1];
    if (IsOurs(chain)) {
      if (!ts.declared_ours.count(chain)) return err("rule in undeclared chain", line);
      auto r = parser.ParseRule(t, 2);
      if (!r.ok()) return err(r.status().message(), line);
      ts.ours[chain].push_back(*std::move(r));
      continue;
    }
    int rank = BuiltinRank(chain);
    if (rank < 0) continue;  // a foreign user chain
    // Ours iff it jumps (or goes) to an ISTIO_* chain; foreign rules are skipped unparsed.
    bool mine = false;
    for (size_t i = 2; i + 1 < t.size(); ++i)
      if ((t[i] == "-j" || t[i] == "-g") && IsOurs(t[i + 1])) mine = true;
    if (!mine) continue;
    auto r = parser.ParseRule(t, 2);
    if (!r.ok()) return err(r.status().message(), line);
    ts.builtin[rank].push_back(*std::move(r));
  }
  if (in_table)
    return absl::InvalidArgumentError(absl::StrCat(FamilyName(family), " iptables-save: missing COMMIT"));

  static constexpr const char* kBuiltinNames[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  FamilyRules out;
  out.family = family;
  for (Table t : {Table::kRaw, Table::kMangle, Table::kNat, Table::kFilter}) {
    auto it = tables.find(t);
    if (it == tables.end()) continue;
    TableRules tr;
    tr.table = t;
    for (auto& [rank, rules] : it->second.builtin)
      tr.chains.push_back(Chain{kBuiltinNames[rank], std::move(rules)});
    for (auto& [name, rules] : it->second.ours) tr.chains.push_back(Chain{name, std::move(rules)});
    if (!tr.chains.empty()) out.tables.push_back(std::move(tr));
  }
  return out;
}

}  // namespace pnc::rules
