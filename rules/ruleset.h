// Ruleset: the netfilter rules of one pod as plain data.
//
// This is the contract between rules/ (which builds and renders a Ruleset, no syscalls) and netns/ (whose
// backends apply a Ruleset inside a pod's network namespace and read it back into a Ruleset). Verification is
// `ReadBack(netns) == planned`, so every field here must survive a round trip through each backend: keep the
// model to the matches and targets Istio's redirection needs, with one canonical spelling for each (e.g. a
// CIDR is stored normalised, a single port is never a range of one).
//
// Layout: a Ruleset holds, per address family, the tables we touch. Each table holds our own chains (all
// named ISTIO_*) plus the jump rules we append to built-in chains (PREROUTING, OUTPUT, ...).
// Chains that are not ours are never represented and never touched.
#ifndef PNC_RULES_RULESET_H_
#define PNC_RULES_RULESET_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace pnc::rules {

enum class Family { kIPv4, kIPv6 };
enum class Table { kRaw, kMangle, kNat, kFilter };
enum class Protocol { kTcp, kUdp };

// "10.0.0.0/8", "::1/128". Canonical: host bits cleared, lower-case v6 in RFC 5952 form.
struct Cidr {
  Family family = Family::kIPv4;
  std::string address;  // textual, canonical
  int prefix_len = 32;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// A match on a value that can be negated ("! -d 127.0.0.1/32").
template <typename T>
struct Negatable {
  T value{};
  bool negate = false;
  friend bool operator==(const Negatable&, const Negatable&) = default;
};

// Targets (verdicts / actions) Istio's rules use.
struct JumpTarget {  // -j <chain> for one of our chains
  std::string chain;
  friend bool operator==(const JumpTarget&, const JumpTarget&) = default;
};
struct ReturnTarget {
  friend bool operator==(const ReturnTarget&, const ReturnTarget&) = default;
};
struct AcceptTarget {
  friend bool operator==(const AcceptTarget&, const AcceptTarget&) = default;
};
struct RedirectTarget {  // nat: -j REDIRECT --to-ports N
  uint16_t to_port = 0;
  friend bool operator==(const RedirectTarget&, const RedirectTarget&) = default;
};
struct TproxyTarget {  // mangle: -j TPROXY --on-port N --tproxy-mark M/MASK
  uint16_t on_port = 0;
  uint32_t mark = 0;
  uint32_t mask = 0xffffffff;
  friend bool operator==(const TproxyTarget&, const TproxyTarget&) = default;
};
struct MarkTarget {  // mangle: -j MARK --set-xmark M/MASK
  uint32_t mark = 0;
  uint32_t mask = 0xffffffff;
  friend bool operator==(const MarkTarget&, const MarkTarget&) = default;
};
struct ConnmarkTarget {  // mangle: -j CONNMARK --save-mark / --restore-mark (nfmask = ctmask = 0xffffffff)
  enum class Op { kSave, kRestore };
  Op op = Op::kSave;
  friend bool operator==(const ConnmarkTarget&, const ConnmarkTarget&) = default;
};
struct CtZoneTarget {  // raw: -j CT --zone N
  uint16_t zone = 0;
  friend bool operator==(const CtZoneTarget&, const CtZoneTarget&) = default;
};

using Target = std::variant<JumpTarget, ReturnTarget, AcceptTarget, RedirectTarget, TproxyTarget, MarkTarget,
                            ConnmarkTarget, CtZoneTarget>;

// One rule. Unset optionals mean "no such match". Matches are ANDed; the order of the fields below has no
// meaning for the kernel. The iptables renderer emits them in the canonical order iptables-save prints (-s -d
// -i -o -p, then -m tcp/udp, owner, mark, connmark, socket, conntrack), so rendered text and saved text are
// identical per rule.
struct Rule {
  std::optional<Protocol> protocol;
  std::optional<Negatable<Cidr>> source;
  std::optional<Negatable<Cidr>> destination;
  std::optional<Negatable<std::string>> in_interface;
  std::optional<Negatable<std::string>> out_interface;
  std::optional<Negatable<uint16_t>> source_port;  // needs protocol (-m tcp/udp --sport); DNS conntrack zones
  std::optional<Negatable<uint16_t>> destination_port;  // needs protocol
  std::optional<Negatable<uint32_t>> uid_owner;         // -m owner --uid-owner (OUTPUT/POSTROUTING only)
  std::optional<Negatable<uint32_t>> gid_owner;         // -m owner --gid-owner
  std::optional<Negatable<uint32_t>> mark;              // -m mark [!] --mark M (mask 0xffffffff)
  std::optional<uint32_t> connmark;                     // -m connmark --mark M (mask 0xffffffff)
  bool socket_transparent = false;                      // -m socket --transparent
  bool ct_related_established = false;  // -m conntrack --ctstate RELATED,ESTABLISHED (Istio's TPROXY divert)
  Target target;
  friend bool operator==(const Rule&, const Rule&) = default;
};

// One of our chains (name starts with "ISTIO_"), or one built-in chain ("PREROUTING", "OUTPUT", ...) of which
// `rules` lists only the rules we own, which backends append to that chain (after any foreign rule already
// there, as istio-iptables does), in this order.
struct Chain {
  std::string name;
  std::vector<Rule> rules;
  bool builtin() const { return name.rfind("ISTIO_", 0) != 0; }
  friend bool operator==(const Chain&, const Chain&) = default;
};

struct TableRules {
  Table table = Table::kNat;
  std::vector<Chain> chains;  // built-in chains first (fixed order PREROUTING, INPUT, FORWARD, OUTPUT,
                              // POSTROUTING), then ours
  friend bool operator==(const TableRules&, const TableRules&) = default;
};

struct FamilyRules {
  Family family = Family::kIPv4;
  std::vector<TableRules> tables;  // order: raw, mangle, nat, filter; only tables we use
  friend bool operator==(const FamilyRules&, const FamilyRules&) = default;
};

// Policy routing TPROXY needs: `ip rule add fwmark <mark> lookup <table>` and
// `ip route add local default dev lo table <table>`, per family.
struct PolicyRoute {
  Family family = Family::kIPv4;
  uint32_t fwmark = 0;
  uint32_t table = 0;
  friend bool operator==(const PolicyRoute&, const PolicyRoute&) = default;
};

struct Ruleset {
  std::vector<FamilyRules> families;  // IPv4 first, then IPv6; only families the pod has
  std::vector<PolicyRoute> routes;    // empty unless TPROXY
  // Addresses we add to the loopback device (`ip addr add <cidr> dev lo`). Istio adds ::6/128 whenever it
  // programs IPv6, in either mode: the source of the inbound passthrough leg (Envoy binds ::6 like 127.0.0.6,
  // but IPv6 lo only holds ::1/128, unlike IPv4's 127.0.0.0/8). istio/istio
  // tools/istio-iptables/pkg/capture configureIPv6Addresses (called from ConfigureRoutes).
  std::vector<Cidr> loopback_addresses;
  friend bool operator==(const Ruleset&, const Ruleset&) = default;

  const FamilyRules* Find(Family f) const {
    for (const auto& fr : families)
      if (fr.family == f) return &fr;
    return nullptr;
  }
};

// Helpers every module uses to name things consistently (error messages, logs, renderers).
const char* FamilyName(Family f);  // "ipv4" / "ipv6"
const char* TableName(Table t);    // "nat", "mangle", ...

}  // namespace pnc::rules

#endif  // PNC_RULES_RULESET_H_
