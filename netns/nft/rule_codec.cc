#include "netns/nft/rule_codec.h"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pnc::netns {
namespace {

using rules::AcceptTarget;
using rules::Cidr;
using rules::ConnmarkTarget;
using rules::CtZoneTarget;
using rules::Family;
using rules::JumpTarget;
using rules::MarkTarget;
using rules::Negatable;
using rules::Protocol;
using rules::RedirectTarget;
using rules::ReturnTarget;
using rules::Rule;
using rules::Table;
using rules::TproxyTarget;

// Every expression loads into / stores from this register, as nft itself does for these matches.
constexpr uint32_t kReg = NFT_REG_1;
// NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED): 1 << (ctinfo + 1), host order.
constexpr uint32_t kCtStateEstablishedRelated = (1u << 1) | (1u << 2);

struct ExprIterFree {
  void operator()(nftnl_expr_iter* i) const { nftnl_expr_iter_destroy(i); }
};

uint8_t NfProto(Family f) { return f == Family::kIPv4 ? NFPROTO_IPV4 : NFPROTO_IPV6; }

std::string Where(Family f, Table t) {
  return absl::StrCat(f == Family::kIPv4 ? "ip " : "ip6 ", "istio_pnc (iptables table ", rules::TableName(t),
                      ")");
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

absl::Status EncodeRuleImpl(nftnl_rule* r, Family family, Table table, const Rule& rule,
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
    w.Cmp(rule.mark->negate, &rule.mark->value, 4);
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
  if (rule.ct_related_established) {
    // `ct state established,related`: ct load state, bitwise & mask, cmp != 0 (what nft itself emits).
    const uint32_t mask = kCtStateEstablishedRelated, zero = 0;
    w.Ct(NFT_CT_STATE);
    w.Bitwise(&mask, &zero, 4);
    w.Cmp(true, &zero, 4);
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

absl::StatusOr<Rule> DecodeRuleImpl(nftnl_rule* r, Family family, Table table, const std::string& where) {
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
      if (cmp->second.size() != 4) return unknown();
      rule.mark = Negatable<uint32_t>{LoadU32(cmp->second), cmp->first};
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
    } else if (rd.IsCtLoad(0, NFT_CT_STATE) && advance(12)) {
      std::optional<std::pair<std::string, std::string>> mx = rd.BitwiseAt(1, 4);
      auto cmp = rd.CmpAt(2);
      if (!mx || mx->first.size() != 4 || mx->second.size() != 4 ||
          LoadU32(mx->first) != kCtStateEstablishedRelated || LoadU32(mx->second) != 0 || !cmp ||
          !cmp->first || cmp->second != std::string(4, '\0')) {
        return unknown();
      }
      rule.ct_related_established = true;
      used = 3;
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

}  // namespace

std::string NftChainName(Table table, const std::string& chain) {
  return absl::StrCat(rules::TableName(table), "_", chain);
}

absl::Status EncodeRule(nftnl_rule* r, Family family, Table table, const Rule& rule,
                        const std::set<std::string>& table_chains) {
  return EncodeRuleImpl(r, family, table, rule, table_chains);
}

absl::StatusOr<Rule> DecodeRule(nftnl_rule* r, Family family, Table table, const std::string& where) {
  return DecodeRuleImpl(r, family, table, where);
}

}  // namespace pnc::netns
