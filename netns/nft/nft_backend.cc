#include "netns/nft/nft_backend.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "netns/executor.h"
#include "netns/routing/netlink.h"
#include "netns/routing/routing.h"

namespace pnc::netns {
namespace {

using rules::AcceptTarget;
using rules::Chain;
using rules::Cidr;
using rules::ConnmarkTarget;
using rules::CtZoneTarget;
using rules::Family;
using rules::FamilyRules;
using rules::JumpTarget;
using rules::MarkTarget;
using rules::Negatable;
using rules::Protocol;
using rules::RedirectTarget;
using rules::ReturnTarget;
using rules::Rule;
using rules::Ruleset;
using rules::Table;
using rules::TableRules;
using rules::TproxyTarget;

// A batch is sized for its messages (a rule message stays well under 2 KiB) and capped below the socket's
// default send buffer (212992 bytes) so one sendto() always carries it; the buffer is twice the limit because
// libmnl lets the last message overflow the limit. A default pod's 23 rules need ~8 KiB.
constexpr size_t kMaxBatchBytes = 192 * 1024;
constexpr size_t kBytesPerMessage = 2048;
constexpr uint32_t kReg = NFT_REG_1;
constexpr std::array<const char*, 5> kBuiltinOrder = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT",
                                                      "POSTROUTING"};
constexpr std::array<Table, 4> kTableOrder = {Table::kRaw, Table::kMangle, Table::kNat, Table::kFilter};

struct TableFree {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainFree {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleFree {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprIterFree {
  void operator()(nftnl_expr_iter* i) const { nftnl_expr_iter_destroy(i); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableFree>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainFree>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleFree>;

uint8_t NfProto(Family f) { return f == Family::kIPv4 ? NFPROTO_IPV4 : NFPROTO_IPV6; }
const char* NftFamilyName(uint32_t nfproto) {
  switch (nfproto) {
    case NFPROTO_IPV4:
      return "ip";
    case NFPROTO_IPV6:
      return "ip6";
    case NFPROTO_INET:
      return "inet";
    case NFPROTO_ARP:
      return "arp";
    case NFPROTO_BRIDGE:
      return "bridge";
    case NFPROTO_NETDEV:
      return "netdev";
    default:
      return "unknown";
  }
}
std::string Where(Family f, Table t) {
  return absl::StrCat(f == Family::kIPv4 ? "ip " : "ip6 ", kNftTableName, " (iptables table ",
                      rules::TableName(t), ")");
}

// How a built-in chain is hooked, mirroring iptables-nft's built-in tables.
struct BaseChainSpec {
  uint32_t hook;
  int32_t priority;
  const char* type;
};

absl::StatusOr<BaseChainSpec> BaseChainFor(Table table, const std::string& chain) {
  std::optional<uint32_t> hook;
  if (chain == "PREROUTING") hook = NF_INET_PRE_ROUTING;
  if (chain == "INPUT") hook = NF_INET_LOCAL_IN;
  if (chain == "FORWARD") hook = NF_INET_FORWARD;
  if (chain == "OUTPUT") hook = NF_INET_LOCAL_OUT;
  if (chain == "POSTROUTING") hook = NF_INET_POST_ROUTING;
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("chain ", chain, " is not a built-in chain of the ", rules::TableName(table), " table"));
  };
  if (!hook) return bad();
  switch (table) {
    case Table::kRaw:
      if (*hook != NF_INET_PRE_ROUTING && *hook != NF_INET_LOCAL_OUT) return bad();
      return BaseChainSpec{*hook, -300, "filter"};
    case Table::kMangle:
      return BaseChainSpec{*hook, -150, *hook == NF_INET_LOCAL_OUT ? "route" : "filter"};
    case Table::kNat:
      if (*hook == NF_INET_FORWARD) return bad();
      return BaseChainSpec{*hook, (*hook == NF_INET_PRE_ROUTING || *hook == NF_INET_LOCAL_OUT) ? -100 : 100,
                           "nat"};
    case Table::kFilter:
      if (*hook == NF_INET_PRE_ROUTING || *hook == NF_INET_POST_ROUTING) return bad();
      return BaseChainSpec{*hook, 0, "filter"};
  }
  return bad();
}

// ---------------------------------------------------------------------------------------------------------------
// Ruleset -> expressions

// Network-header offset and length of the source / destination address.
struct AddrField {
  uint32_t offset;
  uint32_t len;
};
AddrField SourceField(Family f) { return f == Family::kIPv4 ? AddrField{12, 4} : AddrField{8, 16}; }
AddrField DestField(Family f) { return f == Family::kIPv4 ? AddrField{16, 4} : AddrField{24, 16}; }

std::vector<uint8_t> PrefixMask(uint32_t len, int prefix) {
  std::vector<uint8_t> mask(len, 0);
  for (int i = 0; i < prefix && i < static_cast<int>(len * 8); ++i) mask[i / 8] |= 0x80 >> (i % 8);
  return mask;
}

class ExprWriter {
 public:
  explicit ExprWriter(nftnl_rule* r) : r_(r) {}

  void Meta(uint32_t key) {
    nftnl_expr* e = New("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, kReg);
  }
  void MetaSet(uint32_t key) {
    nftnl_expr* e = New("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, kReg);
  }
  void Ct(uint32_t key) {
    nftnl_expr* e = New("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, kReg);
  }
  void CtSet(uint32_t key) {
    nftnl_expr* e = New("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, kReg);
  }
  void Payload(uint32_t base, uint32_t offset, uint32_t len) {
    nftnl_expr* e = New("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, kReg);
  }
  void Bitwise(const void* mask, const void* x, uint32_t len) {
    nftnl_expr* e = New("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, kReg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, kReg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_XOR, x, len);
  }
  void Cmp(bool negate, const void* data, uint32_t len) {
    nftnl_expr* e = New("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, kReg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, negate ? NFT_CMP_NEQ : NFT_CMP_EQ);
    nftnl_expr_set_data(e, NFTNL_EXPR_CMP_DATA, data, len);
  }
  void Immediate(const void* data, uint32_t len) {
    nftnl_expr* e = New("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, kReg);
    nftnl_expr_set_data(e, NFTNL_EXPR_IMM_DATA, data, len);
  }
  void Verdict(int verdict, const std::string& chain = "") {
    nftnl_expr* e = New("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  }
  void Redirect() {
    nftnl_expr* e = New("redir");
    nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, kReg);
  }
  void Tproxy(Family f) {
    nftnl_expr* e = New("tproxy");
    nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_FAMILY, NfProto(f));
    nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_PORT, kReg);
  }
  void Socket(uint32_t key) {
    nftnl_expr* e = New("socket");
    nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, kReg);
  }

 private:
  nftnl_expr* New(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(r_, e);  // the rule owns it
    return e;
  }
  nftnl_rule* r_;
};

absl::Status WriteCidr(ExprWriter& w, Family table_family, AddrField field, const Negatable<Cidr>& m,
                       const char* what) {
  const Cidr& c = m.value;
  if (c.family != table_family) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", c.address, " is not an ", rules::FamilyName(table_family), " address"));
  }
  std::array<uint8_t, 16> addr{};
  if (inet_pton(table_family == Family::kIPv4 ? AF_INET : AF_INET6, c.address.c_str(), addr.data()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad address ", c.address));
  }
  if (c.prefix_len < 0 || c.prefix_len > static_cast<int>(field.len * 8)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad prefix length ", c.prefix_len));
  }
  std::vector<uint8_t> mask = PrefixMask(field.len, c.prefix_len);
  for (uint32_t i = 0; i < field.len; ++i) {
    if ((addr[i] & ~mask[i]) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": ", c.address, "/", c.prefix_len, " has host bits set"));
    }
  }
  w.Payload(NFT_PAYLOAD_NETWORK_HEADER, field.offset, field.len);
  if (c.prefix_len != static_cast<int>(field.len * 8)) {
    std::array<uint8_t, 16> zero{};
    w.Bitwise(mask.data(), zero.data(), field.len);
  }
  w.Cmp(m.negate, addr.data(), field.len);
  return absl::OkStatus();
}

absl::Status WriteIfname(ExprWriter& w, uint32_t key, const Negatable<std::string>& m) {
  const std::string& name = m.value;
  bool wildcard = !name.empty() && name.back() == '+';
  std::string base = wildcard ? name.substr(0, name.size() - 1) : name;
  if (base.empty() && !wildcard) return absl::InvalidArgumentError("empty interface name");
  if (base.size() >= IFNAMSIZ || base.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad interface name '", name, "'"));
  }
  w.Meta(key);
  if (wildcard) {
    if (base.empty()) return absl::InvalidArgumentError("interface wildcard '+' alone matches everything");
    w.Cmp(m.negate, base.data(), base.size());  // prefix match, like iptables' "eth+"
  } else {
    std::array<char, IFNAMSIZ> buf{};
    std::memcpy(buf.data(), base.data(), base.size());
    w.Cmp(m.negate, buf.data(), buf.size());
  }
  return absl::OkStatus();
}

// (meta mark & ~mask) ^ mark, written the way nft writes `meta mark set ...`.
void WriteMarkSet(ExprWriter& w, uint32_t mark, uint32_t mask) {
  if (mask == 0xffffffff) {
    w.Immediate(&mark, sizeof mark);
  } else {
    uint32_t keep = ~mask;
    w.Meta(NFT_META_MARK);
    w.Bitwise(&keep, &mark, sizeof mark);
  }
  w.MetaSet(NFT_META_MARK);
}

absl::Status WriteRule(nftnl_rule* r, Family family, Table table, const Rule& rule,
                       const std::set<std::string>& table_chains) {
  ExprWriter w(r);
  // Order as rules/render.cc's RenderNftables spells a rule, so `nft list` shows identical text for both.
  if (rule.source) {
    if (absl::Status s = WriteCidr(w, family, SourceField(family), *rule.source, "source"); !s.ok()) return s;
  }
  if (rule.destination) {
    if (absl::Status s = WriteCidr(w, family, DestField(family), *rule.destination, "destination"); !s.ok()) {
      return s;
    }
  }
  if (rule.in_interface) {
    if (absl::Status s = WriteIfname(w, NFT_META_IIFNAME, *rule.in_interface); !s.ok()) return s;
  }
  if (rule.out_interface) {
    if (absl::Status s = WriteIfname(w, NFT_META_OIFNAME, *rule.out_interface); !s.ok()) return s;
  }
  if (rule.protocol) {
    uint8_t proto = *rule.protocol == Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
    w.Meta(NFT_META_L4PROTO);
    w.Cmp(false, &proto, 1);
  }
  if ((rule.source_port || rule.destination_port) && !rule.protocol) {
    return absl::InvalidArgumentError("a port match needs a protocol");
  }
  if (rule.source_port) {
    uint16_t port = htons(rule.source_port->value);
    w.Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2);
    w.Cmp(rule.source_port->negate, &port, 2);
  }
  if (rule.destination_port) {
    uint16_t port = htons(rule.destination_port->value);
    w.Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
    w.Cmp(rule.destination_port->negate, &port, 2);
  }
  if (rule.uid_owner) {
    w.Meta(NFT_META_SKUID);
    w.Cmp(rule.uid_owner->negate, &rule.uid_owner->value, 4);
  }
  if (rule.gid_owner) {
    w.Meta(NFT_META_SKGID);
    w.Cmp(rule.gid_owner->negate, &rule.gid_owner->value, 4);
  }
  if (rule.mark) {
    w.Meta(NFT_META_MARK);
    w.Cmp(false, &*rule.mark, 4);
  }
  if (rule.connmark) {
    w.Ct(NFT_CT_MARK);
    w.Cmp(false, &*rule.connmark, 4);
  }
  if (rule.socket_transparent) {
    uint8_t one = 1;
    w.Socket(NFT_SOCKET_TRANSPARENT);
    w.Cmp(false, &one, 1);
  }
  return std::visit(
      [&](const auto& t) -> absl::Status {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, JumpTarget>) {
          if (!table_chains.count(t.chain) || !absl::StartsWith(t.chain, "ISTIO_")) {
            return absl::InvalidArgumentError(absl::StrCat(
                "jump to ", t.chain, ", which is not one of our chains in ", Where(family, table)));
          }
          w.Verdict(NFT_JUMP, NftChainName(table, t.chain));
        } else if constexpr (std::is_same_v<T, ReturnTarget>) {
          w.Verdict(NFT_RETURN);
        } else if constexpr (std::is_same_v<T, AcceptTarget>) {
          w.Verdict(NF_ACCEPT);
        } else if constexpr (std::is_same_v<T, RedirectTarget>) {
          if (table != Table::kNat) return absl::InvalidArgumentError("REDIRECT outside the nat table");
          uint16_t port = htons(t.to_port);
          w.Immediate(&port, 2);
          w.Redirect();
        } else if constexpr (std::is_same_v<T, TproxyTarget>) {
          if (table != Table::kMangle) return absl::InvalidArgumentError("TPROXY outside the mangle table");
          uint16_t port = htons(t.on_port);
          w.Immediate(&port, 2);
          w.Tproxy(family);
          WriteMarkSet(w, t.mark, t.mask);
          w.Verdict(NF_ACCEPT);
        } else if constexpr (std::is_same_v<T, MarkTarget>) {
          WriteMarkSet(w, t.mark, t.mask);
        } else if constexpr (std::is_same_v<T, ConnmarkTarget>) {
          if (t.op == ConnmarkTarget::Op::kSave) {
            w.Meta(NFT_META_MARK);
            w.CtSet(NFT_CT_MARK);
          } else {
            w.Ct(NFT_CT_MARK);
            w.MetaSet(NFT_META_MARK);
          }
        } else if constexpr (std::is_same_v<T, CtZoneTarget>) {
          if (table != Table::kRaw) return absl::InvalidArgumentError("CT --zone outside the raw table");
          uint16_t zone = t.zone;
          w.Immediate(&zone, 2);
          w.CtSet(NFT_CT_ZONE);
        }
        return absl::OkStatus();
      },
      rule.target);
}

// ---------------------------------------------------------------------------------------------------------------
// Expressions -> Ruleset

class ExprReader {
 public:
  explicit ExprReader(std::vector<const nftnl_expr*> exprs) : e_(std::move(exprs)) {}

  bool Done() const { return i_ >= e_.size(); }
  // The expression's type name ("meta", "cmp", ...); empty past the end. Points into the expression.
  absl::string_view NameAt(size_t k) const {
    return i_ + k < e_.size() ? absl::string_view(nftnl_expr_get_str(e_[i_ + k], NFTNL_EXPR_NAME)) : "";
  }
  const nftnl_expr* At(size_t k) const { return e_[i_ + k]; }
  void Skip(size_t n) { i_ += n; }
  size_t index() const { return i_; }

  // Field readers with "absent" = nullopt.
  static std::optional<uint32_t> U32(const nftnl_expr* e, uint16_t attr) {
    if (!nftnl_expr_is_set(e, attr)) return std::nullopt;
    return nftnl_expr_get_u32(e, attr);
  }
  static std::string Data(const nftnl_expr* e, uint16_t attr) {
    if (!nftnl_expr_is_set(e, attr)) return "";
    uint32_t len = 0;
    const char* p = static_cast<const char*>(nftnl_expr_get_data(e, attr, &len));
    return std::string(p, len);
  }
  static std::string Str(const nftnl_expr* e, uint16_t attr) {
    if (!nftnl_expr_is_set(e, attr)) return "";
    return nftnl_expr_get_str(e, attr);
  }

  // Accessors for the expression k positions ahead; false when it is not the expected shape.
  bool IsMetaLoad(size_t k, uint32_t key) const {
    return NameAt(k) == "meta" && U32(At(k), NFTNL_EXPR_META_KEY) == key &&
           U32(At(k), NFTNL_EXPR_META_DREG) == kReg;
  }
  bool IsMetaSet(size_t k, uint32_t key) const {
    return NameAt(k) == "meta" && U32(At(k), NFTNL_EXPR_META_KEY) == key &&
           U32(At(k), NFTNL_EXPR_META_SREG) == kReg;
  }
  bool IsCtLoad(size_t k, uint32_t key) const {
    return NameAt(k) == "ct" && U32(At(k), NFTNL_EXPR_CT_KEY) == key &&
           U32(At(k), NFTNL_EXPR_CT_DREG) == kReg && !nftnl_expr_is_set(At(k), NFTNL_EXPR_CT_DIR);
  }
  bool IsCtSet(size_t k, uint32_t key) const {
    return NameAt(k) == "ct" && U32(At(k), NFTNL_EXPR_CT_KEY) == key &&
           U32(At(k), NFTNL_EXPR_CT_SREG) == kReg && !nftnl_expr_is_set(At(k), NFTNL_EXPR_CT_DIR);
  }
  // cmp on kReg: returns (negate, data).
  std::optional<std::pair<bool, std::string>> CmpAt(size_t k) const {
    if (NameAt(k) != "cmp" || U32(At(k), NFTNL_EXPR_CMP_SREG) != kReg) return std::nullopt;
    std::optional<uint32_t> op = U32(At(k), NFTNL_EXPR_CMP_OP);
    if (op != NFT_CMP_EQ && op != NFT_CMP_NEQ) return std::nullopt;
    return std::make_pair(*op == NFT_CMP_NEQ, Data(At(k), NFTNL_EXPR_CMP_DATA));
  }
  std::optional<std::string> ImmediateDataAt(size_t k) const {
    if (NameAt(k) != "immediate" || U32(At(k), NFTNL_EXPR_IMM_DREG) != kReg) return std::nullopt;
    return Data(At(k), NFTNL_EXPR_IMM_DATA);
  }
  // bitwise on kReg of `len` bytes: returns (mask, xor).
  std::optional<std::pair<std::string, std::string>> BitwiseAt(size_t k, uint32_t len) const {
    if (NameAt(k) != "bitwise" || U32(At(k), NFTNL_EXPR_BITWISE_SREG) != kReg ||
        U32(At(k), NFTNL_EXPR_BITWISE_DREG) != kReg || U32(At(k), NFTNL_EXPR_BITWISE_LEN) != len) {
      return std::nullopt;
    }
    std::optional<uint32_t> op = U32(At(k), NFTNL_EXPR_BITWISE_OP);
    if (op && *op != NFT_BITWISE_BOOL) return std::nullopt;
    return std::make_pair(Data(At(k), NFTNL_EXPR_BITWISE_MASK), Data(At(k), NFTNL_EXPR_BITWISE_XOR));
  }

 private:
  std::vector<const nftnl_expr*> e_;
  size_t i_ = 0;
};

uint32_t LoadU32(const std::string& s) {
  uint32_t v = 0;
  std::memcpy(&v, s.data(), std::min<size_t>(4, s.size()));
  return v;
}
uint16_t LoadU16(const std::string& s) {
  uint16_t v = 0;
  std::memcpy(&v, s.data(), std::min<size_t>(2, s.size()));
  return v;
}

// Address payload + optional bitwise + cmp -> Cidr. Returns number of expressions consumed or 0.
// Address payload (+ bitwise) + cmp -> Cidr. Reads our form (full-length load, bitwise unless a host address)
// and nft's (a byte-aligned prefix loads only its bytes, e.g. 1 byte for 10.0.0.0/8). `len` is the load
// length. Returns the number of expressions consumed, 0 if not this shape.
size_t ReadCidr(const ExprReader& rd, Family family, AddrField field, uint32_t len,
                std::optional<Negatable<Cidr>>* out) {
  std::optional<std::pair<std::string, std::string>> mask_xor = rd.BitwiseAt(1, len);
  size_t cmp_at = mask_xor ? 2 : 1;
  std::optional<std::pair<bool, std::string>> cmp = rd.CmpAt(cmp_at);
  if (!cmp || cmp->second.size() != len) return 0;
  int prefix = static_cast<int>(len * 8);
  std::vector<uint8_t> mask = PrefixMask(len, prefix);
  if (mask_xor) {
    if (mask_xor->first.size() != len || mask_xor->second != std::string(len, '\0')) return 0;
    prefix = 0;
    for (unsigned char b : mask_xor->first) prefix += std::popcount(b);
    mask = PrefixMask(len, prefix);
    if (std::vector<uint8_t>(mask_xor->first.begin(), mask_xor->first.end()) != mask)
      return 0;  // not a prefix
  }
  std::array<uint8_t, 16> addr{};
  for (uint32_t i = 0; i < len; ++i) {
    addr[i] = static_cast<uint8_t>(cmp->second[i]);
    if ((addr[i] & ~mask[i]) != 0) return 0;  // could never match: not something we or nft write
  }
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family == Family::kIPv4 ? AF_INET : AF_INET6, addr.data(), text, sizeof text) == nullptr)
    return 0;
  *out = Negatable<Cidr>{Cidr{family, text, prefix}, cmp->first};
  return cmp_at + 1;
}

std::optional<Negatable<std::string>> ParseIfname(const std::pair<bool, std::string>& cmp) {
  const std::string& d = cmp.second;
  if (d.size() == IFNAMSIZ) {
    size_t nul = d.find('\0');
    if (nul == std::string::npos || nul == 0) return std::nullopt;
    if (d.find_first_not_of('\0', nul) != std::string::npos) return std::nullopt;
    return Negatable<std::string>{d.substr(0, nul), cmp.first};
  }
  if (d.empty() || d.size() >= IFNAMSIZ || d.find('\0') != std::string::npos) return std::nullopt;
  return Negatable<std::string>{d + "+", cmp.first};
}

// Reads a `meta mark set` sequence at the reader's position: immediate + meta set, or meta load + bitwise +
// meta set.
size_t ReadMarkSet(const ExprReader& rd, size_t k, uint32_t* mark, uint32_t* mask) {
  if (std::optional<std::string> imm = rd.ImmediateDataAt(k);
      imm && imm->size() == 4 && rd.IsMetaSet(k + 1, NFT_META_MARK)) {
    *mark = LoadU32(*imm);
    *mask = 0xffffffff;
    return 2;
  }
  if (rd.IsMetaLoad(k, NFT_META_MARK)) {
    std::optional<std::pair<std::string, std::string>> mx = rd.BitwiseAt(k + 1, 4);
    if (mx && mx->first.size() == 4 && mx->second.size() == 4 && rd.IsMetaSet(k + 2, NFT_META_MARK)) {
      uint32_t keep = LoadU32(mx->first);
      if (keep == 0) return 0;  // that would be the immediate form
      *mask = ~keep;
      *mark = LoadU32(mx->second);
      return 3;
    }
  }
  return 0;
}

bool IsVerdict(const ExprReader& rd, size_t k, int verdict) {
  return rd.NameAt(k) == "immediate" && ExprReader::U32(rd.At(k), NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT &&
         static_cast<int>(ExprReader::U32(rd.At(k), NFTNL_EXPR_IMM_VERDICT).value_or(~0u)) == verdict;
}

absl::StatusOr<Rule> ReadRule(nftnl_rule* r, Family family, Table table, const std::string& where) {
  std::vector<const nftnl_expr*> exprs;
  {
    std::unique_ptr<nftnl_expr_iter, ExprIterFree> it(nftnl_expr_iter_create(r));
    if (!it) return absl::ResourceExhaustedError("nftnl_expr_iter_create");
    for (nftnl_expr* e = nftnl_expr_iter_next(it.get()); e != nullptr; e = nftnl_expr_iter_next(it.get())) {
      exprs.push_back(e);
    }
  }
  ExprReader rd(std::move(exprs));
  Rule rule;
  auto unknown = [&]() {
    char text[2048];
    nftnl_rule_snprintf(text, sizeof text, r, NFTNL_OUTPUT_DEFAULT, 0);
    return absl::InternalError(absl::StrCat(where, ": rule has an expression we do not write (\"",
                                            rd.NameAt(0), "\" at position ", rd.index() + 1,
                                            "); not ours or tampered with: ", text));
  };
  // Matches, in the model's order; each at most once.
  int stage = 0;  // index of the next match kind allowed
  auto advance = [&](int kind) {
    if (kind < stage) return false;
    stage = kind + 1;
    return true;
  };
  while (!rd.Done()) {
    size_t used = 0;
    if (rd.IsMetaLoad(0, NFT_META_L4PROTO) && advance(4)) {
      auto cmp = rd.CmpAt(1);
      if (!cmp || cmp->first || cmp->second.size() != 1) return unknown();
      uint8_t p = cmp->second[0];
      if (p == IPPROTO_TCP)
        rule.protocol = Protocol::kTcp;
      else if (p == IPPROTO_UDP)
        rule.protocol = Protocol::kUdp;
      else
        return unknown();
      used = 2;
    } else if (rd.NameAt(0) == "payload" && ExprReader::U32(rd.At(0), NFTNL_EXPR_PAYLOAD_DREG) == kReg) {
      uint32_t base = ExprReader::U32(rd.At(0), NFTNL_EXPR_PAYLOAD_BASE).value_or(~0u);
      uint32_t off = ExprReader::U32(rd.At(0), NFTNL_EXPR_PAYLOAD_OFFSET).value_or(~0u);
      uint32_t len = ExprReader::U32(rd.At(0), NFTNL_EXPR_PAYLOAD_LEN).value_or(0);
      AddrField src = SourceField(family), dst = DestField(family);
      if (base == NFT_PAYLOAD_NETWORK_HEADER && off == src.offset && len >= 1 && len <= src.len &&
          advance(0)) {
        used = ReadCidr(rd, family, src, len, &rule.source);
      } else if (base == NFT_PAYLOAD_NETWORK_HEADER && off == dst.offset && len >= 1 && len <= dst.len &&
                 advance(1)) {
        used = ReadCidr(rd, family, dst, len, &rule.destination);
      } else if (base == NFT_PAYLOAD_TRANSPORT_HEADER && (off == 0 || off == 2) && len == 2 &&
                 rule.protocol && advance(off == 0 ? 5 : 6)) {
        auto cmp = rd.CmpAt(1);
        if (!cmp || cmp->second.size() != 2) return unknown();
        (off == 0 ? rule.source_port : rule.destination_port) =
            Negatable<uint16_t>{ntohs(LoadU16(cmp->second)), cmp->first};
        used = 2;
      }
    } else if ((rd.IsMetaLoad(0, NFT_META_IIFNAME) && advance(2)) ||
               (rd.IsMetaLoad(0, NFT_META_OIFNAME) && advance(3))) {
      bool in = rd.IsMetaLoad(0, NFT_META_IIFNAME);
      auto cmp = rd.CmpAt(1);
      if (!cmp) return unknown();
      std::optional<Negatable<std::string>> name = ParseIfname(*cmp);
      if (!name) return unknown();
      (in ? rule.in_interface : rule.out_interface) = *name;
      used = 2;
    } else if ((rd.IsMetaLoad(0, NFT_META_SKUID) && advance(7)) ||
               (rd.IsMetaLoad(0, NFT_META_SKGID) && advance(8))) {
      bool uid = rd.IsMetaLoad(0, NFT_META_SKUID);
      auto cmp = rd.CmpAt(1);
      if (!cmp || cmp->second.size() != 4) return unknown();
      (uid ? rule.uid_owner : rule.gid_owner) = Negatable<uint32_t>{LoadU32(cmp->second), cmp->first};
      used = 2;
    } else if (rd.IsMetaLoad(0, NFT_META_MARK) && rd.CmpAt(1) && advance(9)) {
      auto cmp = rd.CmpAt(1);
      if (cmp->first || cmp->second.size() != 4) return unknown();
      rule.mark = LoadU32(cmp->second);
      used = 2;
    } else if (rd.IsCtLoad(0, NFT_CT_MARK) && rd.CmpAt(1) && advance(10)) {
      auto cmp = rd.CmpAt(1);
      if (cmp->first || cmp->second.size() != 4) return unknown();
      rule.connmark = LoadU32(cmp->second);
      used = 2;
    } else if (rd.NameAt(0) == "socket" && advance(11)) {
      auto cmp = rd.CmpAt(1);
      if (ExprReader::U32(rd.At(0), NFTNL_EXPR_SOCKET_KEY) != NFT_SOCKET_TRANSPARENT ||
          ExprReader::U32(rd.At(0), NFTNL_EXPR_SOCKET_DREG) != kReg || !cmp || cmp->first ||
          cmp->second != std::string(1, '\1')) {
        return unknown();
      }
      rule.socket_transparent = true;
      used = 2;
    }
    if (used == 0) break;  // not a match: must be the target
    rd.Skip(used);
  }

  // Exactly one target, ending the rule.
  size_t n = 0;
  std::optional<rules::Target> target;
  if (rd.NameAt(0) == "immediate" && ExprReader::U32(rd.At(0), NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT) {
    int v = static_cast<int>(ExprReader::U32(rd.At(0), NFTNL_EXPR_IMM_VERDICT).value_or(~0u));
    if (v == NFT_JUMP) {
      // Jumps stay within one iptables table: "nat_ISTIO_X" from a nat_* chain.
      std::string chain = ExprReader::Str(rd.At(0), NFTNL_EXPR_IMM_CHAIN);
      std::string prefix = absl::StrCat(rules::TableName(table), "_ISTIO_");
      if (!absl::StartsWith(chain, prefix)) return unknown();
      target = JumpTarget{chain.substr(prefix.size() - 6)};
    } else if (v == NFT_RETURN) {
      target = ReturnTarget{};
    } else if (v == NF_ACCEPT) {
      target = AcceptTarget{};
    }
    n = target ? 1 : 0;
  } else if (std::optional<std::string> imm = rd.ImmediateDataAt(0)) {
    if (imm->size() == 2 && rd.NameAt(1) == "redir" &&
        ExprReader::U32(rd.At(1), NFTNL_EXPR_REDIR_REG_PROTO_MIN) == kReg &&
        // The kernel reports max = min and the PROTO_SPECIFIED flag it derives from them.
        ExprReader::U32(rd.At(1), NFTNL_EXPR_REDIR_REG_PROTO_MAX).value_or(kReg) == kReg &&
        (ExprReader::U32(rd.At(1), NFTNL_EXPR_REDIR_FLAGS).value_or(0) & ~NF_NAT_RANGE_PROTO_SPECIFIED) ==
            0) {
      target = RedirectTarget{ntohs(LoadU16(*imm))};
      n = 2;
    } else if (imm->size() == 2 && rd.NameAt(1) == "tproxy" &&
               ExprReader::U32(rd.At(1), NFTNL_EXPR_TPROXY_REG_PORT) == kReg &&
               !nftnl_expr_is_set(rd.At(1), NFTNL_EXPR_TPROXY_REG_ADDR) &&
               ExprReader::U32(rd.At(1), NFTNL_EXPR_TPROXY_FAMILY) == NfProto(family)) {
      TproxyTarget t{.on_port = ntohs(LoadU16(*imm))};
      size_t m = ReadMarkSet(rd, 2, &t.mark, &t.mask);
      if (m != 0 && IsVerdict(rd, 2 + m, NF_ACCEPT)) {
        target = t;
        n = 3 + m;
      }
    } else if (imm->size() == 2 && rd.IsCtSet(1, NFT_CT_ZONE)) {
      target = CtZoneTarget{LoadU16(*imm)};
      n = 2;
    }
    if (!target) {
      MarkTarget t;
      if (size_t m = ReadMarkSet(rd, 0, &t.mark, &t.mask); m != 0) {
        target = t;
        n = m;
      }
    }
  } else if (rd.IsMetaLoad(0, NFT_META_MARK) && rd.IsCtSet(1, NFT_CT_MARK)) {
    target = ConnmarkTarget{ConnmarkTarget::Op::kSave};
    n = 2;
  } else if (rd.IsCtLoad(0, NFT_CT_MARK) && rd.IsMetaSet(1, NFT_META_MARK)) {
    target = ConnmarkTarget{ConnmarkTarget::Op::kRestore};
    n = 2;
  } else {
    MarkTarget t;
    if (size_t m = ReadMarkSet(rd, 0, &t.mark, &t.mask); m != 0) {
      target = t;
      n = m;
    }
  }
  if (!target) return unknown();
  rd.Skip(n);
  if (!rd.Done()) return unknown();
  rule.target = *target;
  return rule;
}

// ---------------------------------------------------------------------------------------------------------------
// Netlink plumbing

class Batch {
 public:
  // `messages`: how many messages will be added (sizes the buffer; more only risk ResourceExhausted at Send).
  Batch(MnlSocket& nl, size_t messages)
      : nl_(nl),
        limit_(std::min(kMaxBatchBytes, (messages + 2) * kBytesPerMessage)),
        buf_(new char[2 * limit_]) {
    batch_ = mnl_nlmsg_batch_start(buf_.get(), limit_);
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), nl_.NextSeq());
    Next();
  }
  ~Batch() { mnl_nlmsg_batch_stop(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Header for the next message; fill its payload, then call Next().
  nlmsghdr* Header(uint16_t type, uint16_t family, uint16_t flags) {
    last_seq_ = nl_.NextSeq();
    last_ = nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type, family, flags,
                                  last_seq_);
    return last_;
  }
  void Next() {
    if (!mnl_nlmsg_batch_next(batch_)) overflow_ = true;
  }

  // Closes the batch; ResourceExhausted if it does not fit one send. Nothing has been sent yet either way.
  absl::Status Finish() {
    if (last_ == nullptr || finished_) return absl::OkStatus();
    finished_ = true;
    // Only the last message asks for an ack (one ack per message could overrun the receive buffer on big
    // sets); the kernel reports an error for every failing message regardless, before that ack.
    last_->nlmsg_flags |= NLM_F_ACK;
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), nl_.NextSeq());
    Next();
    if (overflow_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("rule set exceeds one netlink batch (", limit_, " bytes)"));
    }
    return absl::OkStatus();
  }

  absl::Status Send(absl::string_view what) {
    if (absl::Status s = Finish(); !s.ok()) return s;
    if (last_ == nullptr) return absl::OkStatus();
    return nl_.SendAndWait(mnl_nlmsg_batch_head(batch_), mnl_nlmsg_batch_size(batch_), last_seq_, what,
                           [](const nlmsghdr*) { return absl::OkStatus(); });
  }

 private:
  MnlSocket& nl_;
  size_t limit_;
  std::unique_ptr<char[]> buf_;  // not zero-filled: libmnl writes every byte it sends
  mnl_nlmsg_batch* batch_ = nullptr;
  uint32_t last_seq_ = 0;
  nlmsghdr* last_ = nullptr;
  bool overflow_ = false;
  bool finished_ = false;
};

std::optional<Family> FamilyOf(uint32_t nfproto) {
  if (nfproto == NFPROTO_IPV4) return Family::kIPv4;
  if (nfproto == NFPROTO_IPV6) return Family::kIPv6;
  return std::nullopt;
}

// Closing ANY nf_tables netlink socket blocks while the kernel's global list of objects awaiting RCU-deferred
// destruction is non-empty (nft_rcv_nl_event flushes it on NETLINK_URELEASE): after a re-apply or a remove,
// that is 10-18 ms, and it hits the next read-back's socket too. So every socket of this backend is closed by
// the background closer (started by NewNftBackend).
class NfSocket {
 public:
  static absl::StatusOr<NfSocket> Open() {
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_NETFILTER);
    if (!nl.ok()) return nl.status();
    return NfSocket(std::move(*nl));
  }
  NfSocket(NfSocket&&) = default;
  ~NfSocket() {
    if (nl_) MnlSocket::CloseInBackground(std::move(*nl_));
  }
  MnlSocket& operator*() { return *nl_; }

 private:
  explicit NfSocket(MnlSocket nl) : nl_(std::move(nl)) {}
  std::optional<MnlSocket> nl_;
};

absl::Status DumpObjects(MnlSocket& nl, uint16_t msg, uint16_t family, absl::string_view what,
                         absl::FunctionRef<absl::Status(const nlmsghdr*)> cb) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, msg, family, NLM_F_DUMP, nl.NextSeq());
  return nl.Dump(nlh, what, cb);
}

// Every table in the netns as (nfproto, name).
absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> DumpTables(MnlSocket& nl) {
  std::vector<std::pair<uint32_t, std::string>> out;
  absl::Status s =
      DumpObjects(nl, NFT_MSG_GETTABLE, NFPROTO_UNSPEC, "list nftables tables", [&](const nlmsghdr* m) {
        TablePtr t(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(m, t.get()) < 0)
          return absl::InternalError("cannot parse an nftables table");
        out.emplace_back(nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY),
                         nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

// Families in which our table exists.
absl::StatusOr<std::set<Family>> OurTables(MnlSocket& nl) {
  absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> all = DumpTables(nl);
  if (!all.ok()) return all.status();
  std::set<Family> ours;
  for (const auto& [nfproto, name] : *all) {
    std::optional<Family> f = FamilyOf(nfproto);
    if (f && name == kNftTableName) ours.insert(*f);
  }
  return ours;
}

struct ChainInfo {
  std::string nft_name;  // "nat_ISTIO_OUTPUT"
  bool base = false;
  uint32_t hook = 0;
  int32_t priority = 0;
  std::string type;
  std::optional<uint32_t> policy;
};

// Our chains per family, in kernel (creation) order.
absl::StatusOr<std::map<Family, std::vector<ChainInfo>>> DumpOurChains(MnlSocket& nl) {
  std::map<Family, std::vector<ChainInfo>> out;
  absl::Status s =
      DumpObjects(nl, NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, "list nftables chains", [&](const nlmsghdr* m) {
        ChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(m, c.get()) < 0)
          return absl::InternalError("cannot parse an nftables chain");
        std::optional<Family> f = FamilyOf(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY));
        if (!f || std::string(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) != kNftTableName)
          return absl::OkStatus();
        ChainInfo info{.nft_name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)};
        if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
          info.base = true;
          info.hook = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM);
          info.priority = nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO);
          if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_TYPE))
            info.type = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE);
          if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)) {
            info.policy = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY);
          }
        }
        out[*f].push_back(std::move(info));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

// "nat_ISTIO_OUTPUT" -> (nat, "ISTIO_OUTPUT"); nullopt for names we never create.
std::optional<std::pair<Table, std::string>> SplitChainName(const std::string& nft_name) {
  size_t us = nft_name.find('_');
  if (us == std::string::npos) return std::nullopt;
  std::string prefix = nft_name.substr(0, us), chain = nft_name.substr(us + 1);
  for (Table t : kTableOrder) {
    if (prefix == rules::TableName(t)) {
      bool builtin = std::find(kBuiltinOrder.begin(), kBuiltinOrder.end(), chain) != kBuiltinOrder.end();
      if (!builtin && !absl::StartsWith(chain, "ISTIO_")) return std::nullopt;
      return std::make_pair(t, chain);
    }
  }
  return std::nullopt;
}

const char* NftFamily(Family f) { return f == Family::kIPv4 ? "ip" : "ip6"; }

void PutTable(Batch& b, Family f, uint16_t type, uint16_t flags) {
  TablePtr table(nftnl_table_alloc());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, NfProto(f));
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, kNftTableName);
  nlmsghdr* nlh = b.Header(type, NfProto(f), flags);
  nftnl_table_nlmsg_build_payload(nlh, table.get());
  b.Next();
}

void PutChain(Batch& b, Family f, const std::string& nft_name, uint16_t type, uint16_t flags,
              const std::optional<BaseChainSpec>& spec) {
  ChainPtr c(nftnl_chain_alloc());
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NfProto(f));
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, kNftTableName);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, nft_name.c_str());
  if (spec) {
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, spec->hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, spec->priority);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, spec->type);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  }
  nlmsghdr* nlh = b.Header(type, NfProto(f), flags);
  nftnl_chain_nlmsg_build_payload(nlh, c.get());
  b.Next();
}

// `flush table`: deletes every rule of our table, keeps the chains (no chain/table destruction).
void FlushTable(Batch& b, Family f) {
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NfProto(f));
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, kNftTableName);
  nlmsghdr* nlh = b.Header(NFT_MSG_DELRULE, NfProto(f), 0);
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  b.Next();
}

// One chain to create: its nft name and, for built-ins, the hook.
struct WantChain {
  std::string nft_name;
  std::optional<BaseChainSpec> spec;
};

absl::Status PlanFamily(const FamilyRules& fr, std::vector<WantChain>* chains) {
  std::set<Table> seen_tables;
  for (const TableRules& tr : fr.tables) {
    if (!seen_tables.insert(tr.table).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(NftFamily(fr.family), " table ", rules::TableName(tr.table), " listed twice"));
    }
    std::set<std::string> names;
    for (const Chain& c : tr.chains) {
      if (!names.insert(c.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(fr.family, tr.table), ": chain ", c.name, " listed twice"));
      }
      WantChain w{.nft_name = NftChainName(tr.table, c.name)};
      if (c.builtin()) {
        absl::StatusOr<BaseChainSpec> spec = BaseChainFor(tr.table, c.name);
        if (!spec.ok()) return spec.status();
        w.spec = *spec;
      } else if (w.nft_name.size() >= NFT_CHAIN_MAXNAMELEN) {
        return absl::InvalidArgumentError(absl::StrCat("chain name too long: ", c.name));
      }
      chains->push_back(std::move(w));
    }
  }
  return absl::OkStatus();
}

bool SameHook(const ChainInfo& have, const std::optional<BaseChainSpec>& want) {
  if (have.base != want.has_value()) return false;
  if (!want) return true;
  return have.hook == want->hook && have.priority == want->priority && have.type == want->type &&
         have.policy.value_or(NF_ACCEPT) == NF_ACCEPT;
}

int BuiltinRank(const std::string& name) {
  for (size_t i = 0; i < kBuiltinOrder.size(); ++i)
    if (name == kBuiltinOrder[i]) return static_cast<int>(i);
  return -1;
}

// Our tables' content in the Ruleset model (no routes), given the families holding our table and their
// chains.
absl::StatusOr<std::vector<FamilyRules>> ReadFamilies(MnlSocket& nl, const std::set<Family>& families,
                                                      std::map<Family, std::vector<ChainInfo>>& chains) {
  std::vector<FamilyRules> out;
  if (families.empty()) return out;

  // Rules per (family, nft chain name), in chain order.
  std::map<std::pair<Family, std::string>, std::vector<Rule>> rules_by_chain;
  absl::Status s =
      DumpObjects(nl, NFT_MSG_GETRULE, NFPROTO_UNSPEC, "list nftables rules", [&](const nlmsghdr* m) {
        RulePtr r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(m, r.get()) < 0)
          return absl::InternalError("cannot parse an nftables rule");
        std::optional<Family> f = FamilyOf(nftnl_rule_get_u32(r.get(), NFTNL_RULE_FAMILY));
        if (!f || std::string(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) != kNftTableName)
          return absl::OkStatus();
        std::string chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
        std::string where = absl::StrCat(NftFamily(*f), " ", kNftTableName, " chain ", chain);
        std::optional<std::pair<Table, std::string>> split = SplitChainName(chain);
        if (!split) return absl::InternalError(absl::StrCat(where, " is not a chain we create"));
        absl::StatusOr<Rule> rule = ReadRule(r.get(), *f, split->first, where);
        if (!rule.ok()) return rule.status();
        rules_by_chain[{*f, chain}].push_back(std::move(*rule));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;

  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    if (!families.count(f)) continue;
    std::map<Table, std::vector<Chain>> by_table;
    for (const ChainInfo& c : chains[f]) {
      std::optional<std::pair<Table, std::string>> split = SplitChainName(c.nft_name);
      if (!split) {
        return absl::InternalError(
            absl::StrCat(NftFamily(f), " ", kNftTableName, ": chain ", c.nft_name, " is not one we create"));
      }
      const auto& [table, name] = *split;
      std::optional<BaseChainSpec> spec;
      if (BuiltinRank(name) >= 0) {
        absl::StatusOr<BaseChainSpec> want = BaseChainFor(table, name);
        if (want.ok()) spec = *want;
        if (!want.ok() || !SameHook(c, spec)) {
          return absl::InternalError(absl::StrCat(NftFamily(f), " ", kNftTableName, ": chain ", c.nft_name,
                                                  " is hooked differently than we hook it"));
        }
      } else if (c.base) {
        return absl::InternalError(absl::StrCat(NftFamily(f), " ", kNftTableName, ": chain ", c.nft_name,
                                                " should not be a base chain"));
      }
      by_table[table].push_back(Chain{name, std::move(rules_by_chain[{f, c.nft_name}])});
    }
    FamilyRules fr{.family = f};
    for (Table t : kTableOrder) {
      auto it = by_table.find(t);
      if (it == by_table.end()) continue;
      std::vector<Chain>& cs = it->second;
      std::sort(cs.begin(), cs.end(), [](const Chain& a, const Chain& b) {
        int ra = BuiltinRank(a.name), rb = BuiltinRank(b.name);
        if ((ra >= 0) != (rb >= 0)) return ra >= 0;
        if (ra >= 0) return ra < rb;
        return a.name < b.name;
      });
      fr.tables.push_back(TableRules{t, std::move(cs)});
    }
    out.push_back(std::move(fr));
  }
  return out;
}

absl::StatusOr<Ruleset> ReadBackHere() {
  Ruleset rs;
  absl::StatusOr<std::vector<rules::PolicyRoute>> routes = ReadPolicyRoutes();
  if (!routes.ok()) return routes.status();
  rs.routes = std::move(*routes);
  absl::StatusOr<NfSocket> nl = NfSocket::Open();
  if (!nl.ok()) return nl.status();
  // The chain dump alone tells which families hold our table (an empty table of ours, which Apply never
  // leaves, would simply not be reported): one round trip less than listing tables first.
  absl::StatusOr<std::map<Family, std::vector<ChainInfo>>> c = DumpOurChains(**nl);
  if (!c.ok()) return c.status();
  std::map<Family, std::vector<ChainInfo>> chains = std::move(*c);
  absl::StatusOr<std::set<Family>> families = std::set<Family>();
  for (const auto& [f, list] : chains) families->insert(f);
  absl::StatusOr<std::vector<FamilyRules>> fams = ReadFamilies(**nl, *families, chains);
  if (!fams.ok()) return fams.status();
  rs.families = std::move(*fams);
  return rs;
}

absl::Status SendApplyBatch(MnlSocket& nl, const Ruleset& rs, const std::set<Family>& want_families,
                            std::map<Family, std::vector<WantChain>>& want_chains,
                            const std::set<Family>& have_families,
                            std::map<Family, std::vector<ChainInfo>>& have_chains,
                            const std::vector<std::pair<Family, RulePtr>>& new_rules);

absl::Status ApplyHere(const Ruleset& rs) {
  // Validate and translate everything before touching the namespace.
  std::set<Family> want_families;
  std::map<Family, std::vector<WantChain>> want_chains;
  for (const FamilyRules& fr : rs.families) {
    if (!want_families.insert(fr.family).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("family ", rules::FamilyName(fr.family), " listed twice"));
    }
    if (absl::Status s = PlanFamily(fr, &want_chains[fr.family]); !s.ok()) return s;
  }
  std::vector<std::pair<Family, RulePtr>> new_rules;
  for (const FamilyRules& fr : rs.families) {
    for (const TableRules& tr : fr.tables) {
      std::set<std::string> names;
      for (const Chain& c : tr.chains) names.insert(c.name);
      for (const Chain& c : tr.chains) {
        for (const Rule& rule : c.rules) {
          RulePtr r(nftnl_rule_alloc());
          nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NfProto(fr.family));
          nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, kNftTableName);
          nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, NftChainName(tr.table, c.name).c_str());
          if (absl::Status s = WriteRule(r.get(), fr.family, tr.table, rule, names); !s.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat(Where(fr.family, tr.table), " chain ", c.name, ": ", s.message()));
          }
          new_rules.emplace_back(fr.family, std::move(r));
        }
      }
    }
  }

  absl::StatusOr<NfSocket> nl = NfSocket::Open();
  if (!nl.ok()) return nl.status();
  // A table we saw absent is created with NLM_F_EXCL, so a concurrent Apply into the same netns cannot make
  // us append a second copy: our batch then fails atomically with EEXIST and the second attempt takes the
  // re-apply path.
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::set<Family>> have_families = OurTables(**nl);
    if (!have_families.ok()) return have_families.status();
    std::map<Family, std::vector<ChainInfo>> have_chains;
    if (!have_families->empty()) {  // fresh netns: skip this dump
      absl::StatusOr<std::map<Family, std::vector<ChainInfo>>> chains = DumpOurChains(**nl);
      if (!chains.ok()) return chains.status();
      have_chains = std::move(*chains);
      // Re-apply of what is already there (a restarted controller, a retry): change nothing, destroy nothing.
      // Unreadable content (tampered) falls through to the rewrite below.
      absl::StatusOr<std::vector<FamilyRules>> current = ReadFamilies(**nl, *have_families, have_chains);
      if (current.ok() && *current == rs.families) return SyncPolicyRoutes(rs.routes);
    }
    last = SendApplyBatch(**nl, rs, want_families, want_chains, *have_families, have_chains, new_rules);
    if (!absl::IsAlreadyExists(last)) return last;
  }
  return last;
}

absl::Status SendApplyBatch(MnlSocket& nl, const Ruleset& rs, const std::set<Family>& want_families,
                            std::map<Family, std::vector<WantChain>>& want_chains,
                            const std::set<Family>& have_families,
                            std::map<Family, std::vector<ChainInfo>>& have_chains,
                            const std::vector<std::pair<Family, RulePtr>>& new_rules) {
  size_t messages = have_families.size() + new_rules.size();
  for (const auto& [f, chains] : want_chains) messages += 2 + chains.size();
  for (const auto& [f, chains] : have_chains) messages += chains.size();
  Batch b(nl, messages);
  for (Family f : have_families) {
    if (!want_families.count(f)) PutTable(b, f, NFT_MSG_DELTABLE, 0);  // family dropped: cold path
  }
  for (const FamilyRules& fr : rs.families) {
    const Family f = fr.family;
    const std::vector<WantChain>& want = want_chains[f];
    PutTable(b, f, NFT_MSG_NEWTABLE, have_families.count(f) ? NLM_F_CREATE : NLM_F_CREATE | NLM_F_EXCL);
    if (have_families.count(f)) {
      FlushTable(b, f);  // also drops jumps into chains deleted below
      for (const ChainInfo& c : have_chains[f]) {
        auto it = std::find_if(want.begin(), want.end(),
                               [&](const WantChain& w) { return w.nft_name == c.nft_name; });
        if (it == want.end() || !SameHook(c, it->spec))
          PutChain(b, f, c.nft_name, NFT_MSG_DELCHAIN, 0, std::nullopt);
      }
    }
    // Regular chains before base chains, so jump targets exist before any hook sees traffic in this batch.
    for (const WantChain& w : want)
      if (!w.spec) PutChain(b, f, w.nft_name, NFT_MSG_NEWCHAIN, NLM_F_CREATE, std::nullopt);
    for (const WantChain& w : want)
      if (w.spec) PutChain(b, f, w.nft_name, NFT_MSG_NEWCHAIN, NLM_F_CREATE, w.spec);
  }
  for (const auto& [f, r] : new_rules) {
    nlmsghdr* nlh = b.Header(NFT_MSG_NEWRULE, NfProto(f), NLM_F_CREATE | NLM_F_APPEND);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    b.Next();
  }
  // A batch that cannot be sent fails before anything changes, routes included.
  if (absl::Status s = b.Finish(); !s.ok()) return s;
  // Routes before rules: TPROXY'd packets must find their local route as soon as the rules exist.
  if (absl::Status s = SyncPolicyRoutes(rs.routes); !s.ok()) return s;
  return b.Send("nftables batch");
}

absl::Status RemoveHere() {
  absl::StatusOr<NfSocket> nl = NfSocket::Open();
  if (!nl.ok()) return nl.status();
  absl::StatusOr<std::set<Family>> families = OurTables(**nl);
  if (!families.ok()) return families.status();
  if (!families->empty()) {
    absl::Status sent;
    {
      Batch b(**nl, families->size());
      for (Family f : *families) PutTable(b, f, NFT_MSG_DELTABLE, 0);
      sent = b.Send("delete our nftables tables");
    }
    if (!sent.ok()) return sent;
  }
  return SyncPolicyRoutes({});
}

class NftBackend : public Backend {
 public:
  std::string Name() const override { return "nft"; }
  absl::Status Apply(const NetnsHandle& ns, const Ruleset& ruleset) override {
    return Annotate(ns, RunInNetns(ns, [&] { return ApplyHere(ruleset); }));
  }
  absl::StatusOr<Ruleset> ReadBack(const NetnsHandle& ns) override {
    absl::StatusOr<Ruleset> out;
    absl::Status s = RunInNetns(ns, [&] {
      out = ReadBackHere();
      return out.status();
    });
    if (!s.ok()) return Annotate(ns, s);
    return out;
  }
  absl::Status Remove(const NetnsHandle& ns) override {
    return Annotate(ns, RunInNetns(ns, [&] { return RemoveHere(); }));
  }

 private:
  static absl::Status Annotate(const NetnsHandle& ns, const absl::Status& s) {
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat("nft backend in ", ns.path(), ": ", s.message()));
  }
};

}  // namespace

std::string NftChainName(Table table, const std::string& chain) {
  return absl::StrCat(rules::TableName(table), "_", chain);
}

std::unique_ptr<Backend> NewNftBackend() {
  MnlSocket::StartBackgroundCloser();  // here, on the caller's thread, never inside a pod's netns
  return std::make_unique<NftBackend>();
}

absl::StatusOr<std::vector<std::string>> ListNftTablesInCurrentNetns() {
  absl::StatusOr<NfSocket> nl = NfSocket::Open();
  if (!nl.ok()) return nl.status();
  absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> tables = DumpTables(**nl);
  if (!tables.ok()) return tables.status();
  std::vector<std::string> out;
  for (const auto& [nfproto, name] : *tables) out.push_back(absl::StrCat(NftFamilyName(nfproto), " ", name));
  return out;
}

}  // namespace pnc::netns
