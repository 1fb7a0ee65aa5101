#include "netns/iptc_backend.h"

#include <arpa/inet.h>
#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_CONNMARK.h>
#include <linux/netfilter/xt_CT.h>
#include <linux/netfilter/xt_MARK.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_socket.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <netinet/in.h>
extern "C" {  // libip6tc.h (iptables 1.8.9) has no extern "C" guard of its own
#include <libiptc/libip6tc.h>
}

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
#include "netns/routing/routing_state.h"
#include "netns/xtables_names.h"

namespace pnc::netns {
namespace {

using rules::Family;
using rules::Rule;
using rules::Table;

constexpr Table kAllTables[] = {Table::kRaw, Table::kMangle, Table::kNat, Table::kFilter};
constexpr const char* kBuiltinOrder[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};

absl::Mutex g_iptc_mu;  // see the header: libiptc's error state is global

bool IsOurs(const char* chain) { return std::strncmp(chain, "ISTIO_", 6) == 0; }

int BuiltinRank(const std::string& chain) {
  for (int i = 0; i < 5; ++i) {
    if (chain == kBuiltinOrder[i]) return i;
  }
  return 5;
}

// ---- Family traits: the only place where libiptc and libip6tc differ. ----

struct V4 {
  using Entry = ipt_entry;
  static constexpr Family kFamily = Family::kIPv4;
  static constexpr int kAf = AF_INET;
  static constexpr size_t kAddrLen = sizeof(in_addr);
  static xtc_handle* Init(const char* t) { return iptc_init(t); }
  static void Free(xtc_handle* h) { iptc_free(h); }
  static const char* FirstChain(xtc_handle* h) { return iptc_first_chain(h); }
  static const char* NextChain(xtc_handle* h) { return iptc_next_chain(h); }
  static bool Builtin(const char* c, xtc_handle* h) { return iptc_builtin(c, h) != 0; }
  static const Entry* FirstRule(const char* c, xtc_handle* h) { return iptc_first_rule(c, h); }
  static const Entry* NextRule(const Entry* e, xtc_handle* h) { return iptc_next_rule(e, h); }
  static const char* Target(const Entry* e, xtc_handle* h) { return iptc_get_target(e, h); }
  static int Insert(const char* c, const Entry* e, unsigned n, xtc_handle* h) {
    return iptc_insert_entry(c, e, n, h);
  }
  static int Append(const char* c, const Entry* e, xtc_handle* h) { return iptc_append_entry(c, e, h); }
  static int DeleteNum(const char* c, unsigned n, xtc_handle* h) { return iptc_delete_num_entry(c, n, h); }
  static int Flush(const char* c, xtc_handle* h) { return iptc_flush_entries(c, h); }
  static int Create(const char* c, xtc_handle* h) { return iptc_create_chain(c, h); }
  static int Delete(const char* c, xtc_handle* h) { return iptc_delete_chain(c, h); }
  static int Commit(xtc_handle* h) { return iptc_commit(h); }
  static const char* StrError(int err) { return iptc_strerror(err); }

  static void* Src(Entry* e) { return &e->ip.src; }
  static void* Dst(Entry* e) { return &e->ip.dst; }
  static void* Smsk(Entry* e) { return &e->ip.smsk; }
  static void* Dmsk(Entry* e) { return &e->ip.dmsk; }
  static const void* Src(const Entry* e) { return &e->ip.src; }
  static const void* Dst(const Entry* e) { return &e->ip.dst; }
  static const void* Smsk(const Entry* e) { return &e->ip.smsk; }
  static const void* Dmsk(const Entry* e) { return &e->ip.dmsk; }
  static void SetProto(Entry* e, uint16_t p) { e->ip.proto = p; }
  static constexpr uint8_t kInvSrc = IPT_INV_SRCIP, kInvDst = IPT_INV_DSTIP, kInvIn = IPT_INV_VIA_IN,
                           kInvOut = IPT_INV_VIA_OUT, kInvProto = IPT_INV_PROTO;
  static bool HasUnsupportedFlags(const Entry* e) { return e->ip.flags != 0; }  // IPT_F_FRAG, IPT_F_GOTO
};

struct V6 {
  using Entry = ip6t_entry;
  static constexpr Family kFamily = Family::kIPv6;
  static constexpr int kAf = AF_INET6;
  static constexpr size_t kAddrLen = sizeof(in6_addr);
  static xtc_handle* Init(const char* t) { return ip6tc_init(t); }
  static void Free(xtc_handle* h) { ip6tc_free(h); }
  static const char* FirstChain(xtc_handle* h) { return ip6tc_first_chain(h); }
  static const char* NextChain(xtc_handle* h) { return ip6tc_next_chain(h); }
  static bool Builtin(const char* c, xtc_handle* h) { return ip6tc_builtin(c, h) != 0; }
  static const Entry* FirstRule(const char* c, xtc_handle* h) { return ip6tc_first_rule(c, h); }
  static const Entry* NextRule(const Entry* e, xtc_handle* h) { return ip6tc_next_rule(e, h); }
  static const char* Target(const Entry* e, xtc_handle* h) { return ip6tc_get_target(e, h); }
  static int Insert(const char* c, const Entry* e, unsigned n, xtc_handle* h) {
    return ip6tc_insert_entry(c, e, n, h);
  }
  static int Append(const char* c, const Entry* e, xtc_handle* h) { return ip6tc_append_entry(c, e, h); }
  static int DeleteNum(const char* c, unsigned n, xtc_handle* h) { return ip6tc_delete_num_entry(c, n, h); }
  static int Flush(const char* c, xtc_handle* h) { return ip6tc_flush_entries(c, h); }
  static int Create(const char* c, xtc_handle* h) { return ip6tc_create_chain(c, h); }
  static int Delete(const char* c, xtc_handle* h) { return ip6tc_delete_chain(c, h); }
  static int Commit(xtc_handle* h) { return ip6tc_commit(h); }
  static const char* StrError(int err) { return ip6tc_strerror(err); }

  static void* Src(Entry* e) { return &e->ipv6.src; }
  static void* Dst(Entry* e) { return &e->ipv6.dst; }
  static void* Smsk(Entry* e) { return &e->ipv6.smsk; }
  static void* Dmsk(Entry* e) { return &e->ipv6.dmsk; }
  static const void* Src(const Entry* e) { return &e->ipv6.src; }
  static const void* Dst(const Entry* e) { return &e->ipv6.dst; }
  static const void* Smsk(const Entry* e) { return &e->ipv6.smsk; }
  static const void* Dmsk(const Entry* e) { return &e->ipv6.dmsk; }
  static void SetProto(Entry* e, uint16_t p) {
    e->ipv6.proto = p;
    e->ipv6.flags |= IP6T_F_PROTO;  // ip6tables matches the protocol only with this flag
  }
  static constexpr uint8_t kInvSrc = IP6T_INV_SRCIP, kInvDst = IP6T_INV_DSTIP, kInvIn = IP6T_INV_VIA_IN,
                           kInvOut = IP6T_INV_VIA_OUT, kInvProto = IP6T_INV_PROTO;
  static bool HasUnsupportedFlags(const Entry* e) { return (e->ipv6.flags & ~IP6T_F_PROTO) != 0; }
};

// Accessors for the parts of ipt_ip / ip6t_ip6 with identical layout.
template <typename F>
auto& Ip(typename F::Entry* e) {
  if constexpr (F::kFamily == Family::kIPv4) {
    return e->ip;
  } else {
    return e->ipv6;
  }
}
template <typename F>
const auto& Ip(const typename F::Entry* e) {
  if constexpr (F::kFamily == Family::kIPv4) {
    return e->ip;
  } else {
    return e->ipv6;
  }
}

// ---- Model -> entry ----
//
// Revisions: iptables' tools print a rule only if it uses the revision of the extension they would pick
// themselves (the highest both they and the kernel support), else "[unsupported revision]". So we write
// exactly those revisions (iptables 1.8.9 on Linux >= 4.x): tcp/udp 0, owner 1, mark 1, connmark 1, socket 3,
// REDIRECT 0, TPROXY 1, MARK 2, CONNMARK 2, CT 2. ReadBack accepts the older revisions too.

// An entry under construction: the fixed header, then matches, then the target, each XT_ALIGNed.
template <typename F>
class EntryBuilder {
 public:
  EntryBuilder() : buf_(sizeof(typename F::Entry)) {}

  typename F::Entry* entry() { return reinterpret_cast<typename F::Entry*>(buf_.data()); }

  template <typename T>
  T* AddMatch(const char* name, uint8_t revision) {
    const size_t size = XT_ALIGN(sizeof(xt_entry_match) + sizeof(T));
    auto* m = reinterpret_cast<xt_entry_match*>(Grow(size));
    m->u.user.match_size = size;
    std::strncpy(m->u.user.name, name, sizeof(m->u.user.name) - 1);
    m->u.user.revision = revision;
    return reinterpret_cast<T*>(m->data);
  }

  template <typename T>
  T* SetTarget(const char* name, uint8_t revision) {
    entry()->target_offset = buf_.size();
    const size_t size = XT_ALIGN(sizeof(xt_entry_target) + sizeof(T));
    auto* t = reinterpret_cast<xt_entry_target*>(Grow(size));
    t->u.user.target_size = size;
    std::strncpy(t->u.user.name, name, sizeof(t->u.user.name) - 1);
    t->u.user.revision = revision;
    entry()->next_offset = buf_.size();
    return reinterpret_cast<T*>(t->data);
  }

  // A standard target: libiptc maps "ACCEPT"/"RETURN"/<chain> names to verdicts and jump offsets.
  void SetStandardTarget(const std::string& name) {
    entry()->target_offset = buf_.size();
    const size_t size = XT_ALIGN(sizeof(xt_standard_target));
    auto* t = reinterpret_cast<xt_standard_target*>(Grow(size));
    t->target.u.user.target_size = size;
    std::strncpy(t->target.u.user.name, name.c_str(), sizeof(t->target.u.user.name) - 1);
    entry()->next_offset = buf_.size();
  }

 private:
  void* Grow(size_t n) {
    const size_t at = buf_.size();
    buf_.resize(at + n);
    return buf_.data() + at;
  }
  // Zero-initialised, 8-byte aligned storage (XT_ALIGN is 8 on every Linux target we build for).
  struct alignas(8) Byte8 {
    uint8_t b[8];
  };
  class Buffer {
   public:
    explicit Buffer(size_t n) { resize(n); }
    uint8_t* data() { return reinterpret_cast<uint8_t*>(words_.data()); }
    size_t size() const { return size_; }
    void resize(size_t n) {
      words_.resize((n + 7) / 8, Byte8{});
      size_ = n;
    }

   private:
    std::vector<Byte8> words_;
    size_t size_ = 0;
  };
  Buffer buf_;
};

absl::Status ParseCidr(int af, const rules::Cidr& cidr, void* addr, void* mask) {
  if (inet_pton(af, cidr.address.c_str(), addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad address in ruleset: ", cidr.address));
  }
  const int bits = af == AF_INET ? 32 : 128;
  if (cidr.prefix_len < 0 || cidr.prefix_len > bits) {
    return absl::InvalidArgumentError(absl::StrCat("bad prefix length in ruleset: ", cidr.prefix_len));
  }
  auto* m = static_cast<uint8_t*>(mask);
  for (int i = 0; i < bits / 8; ++i) {
    const int left = cidr.prefix_len - 8 * i;
    m[i] = left >= 8 ? 0xff : left <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - left));
  }
  return absl::OkStatus();
}

void SetInterface(const std::string& name, char* iface, unsigned char* mask) {
  // Exact match: the name plus its terminating NUL is compared (iptables' "eth0"; "eth+" would omit the NUL).
  std::strncpy(iface, name.c_str(), IFNAMSIZ - 1);
  std::memset(mask, 0xff, std::min<size_t>(name.size() + 1, IFNAMSIZ));
}

std::string TargetChainName(const rules::Target& t) {
  if (const auto* j = std::get_if<rules::JumpTarget>(&t)) return j->chain;
  if (std::holds_alternative<rules::ReturnTarget>(t)) return "RETURN";
  if (std::holds_alternative<rules::AcceptTarget>(t)) return "ACCEPT";
  return "";
}

template <typename F>
absl::Status BuildEntry(const Rule& rule, EntryBuilder<F>& b) {
  auto* e = b.entry();
  auto& ip = Ip<F>(e);
  if (rule.protocol) F::SetProto(e, *rule.protocol == rules::Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP);
  if (rule.source) {
    if (absl::Status s = ParseCidr(F::kAf, rule.source->value, F::Src(e), F::Smsk(e)); !s.ok()) return s;
    if (rule.source->negate) ip.invflags |= F::kInvSrc;
  }
  if (rule.destination) {
    if (absl::Status s = ParseCidr(F::kAf, rule.destination->value, F::Dst(e), F::Dmsk(e)); !s.ok()) return s;
    if (rule.destination->negate) ip.invflags |= F::kInvDst;
  }
  if (rule.in_interface) {
    SetInterface(rule.in_interface->value, ip.iniface, ip.iniface_mask);
    if (rule.in_interface->negate) ip.invflags |= F::kInvIn;
  }
  if (rule.out_interface) {
    SetInterface(rule.out_interface->value, ip.outiface, ip.outiface_mask);
    if (rule.out_interface->negate) ip.invflags |= F::kInvOut;
  }
  if (rule.source_port || rule.destination_port) {
    if (!rule.protocol) return absl::InvalidArgumentError("port match without protocol in ruleset");
    // One tcp/udp match carries both ports, as iptables builds it ("-m tcp --sport A --dport B").
    uint16_t spts[2] = {0, 0xffff}, dpts[2] = {0, 0xffff};
    bool inv_s = false, inv_d = false;
    if (rule.source_port) spts[0] = spts[1] = rule.source_port->value, inv_s = rule.source_port->negate;
    if (rule.destination_port)
      dpts[0] = dpts[1] = rule.destination_port->value, inv_d = rule.destination_port->negate;
    if (*rule.protocol == rules::Protocol::kTcp) {
      auto* tcp = b.template AddMatch<xt_tcp>("tcp", 0);
      std::memcpy(tcp->spts, spts, sizeof(spts));
      std::memcpy(tcp->dpts, dpts, sizeof(dpts));
      tcp->invflags = (inv_s ? XT_TCP_INV_SRCPT : 0) | (inv_d ? XT_TCP_INV_DSTPT : 0);
    } else {
      auto* udp = b.template AddMatch<xt_udp>("udp", 0);
      std::memcpy(udp->spts, spts, sizeof(spts));
      std::memcpy(udp->dpts, dpts, sizeof(dpts));
      udp->invflags = (inv_s ? XT_UDP_INV_SRCPT : 0) | (inv_d ? XT_UDP_INV_DSTPT : 0);
    }
  }
  if (rule.uid_owner || rule.gid_owner) {
    auto* o = b.template AddMatch<xt_owner_match_info>("owner", 1);
    if (rule.uid_owner) {
      o->uid_min = o->uid_max = rule.uid_owner->value;
      o->match |= XT_OWNER_UID;
      if (rule.uid_owner->negate) o->invert |= XT_OWNER_UID;
    }
    if (rule.gid_owner) {
      o->gid_min = o->gid_max = rule.gid_owner->value;
      o->match |= XT_OWNER_GID;
      if (rule.gid_owner->negate) o->invert |= XT_OWNER_GID;
    }
  }
  if (rule.mark) {
    auto* m = b.template AddMatch<xt_mark_mtinfo1>("mark", 1);
    m->mark = rule.mark->value;
    m->mask = 0xffffffff;
    m->invert = rule.mark->negate ? 1 : 0;
  }
  if (rule.connmark) {
    auto* m = b.template AddMatch<xt_connmark_mtinfo1>("connmark", 1);
    m->mark = *rule.connmark;
    m->mask = 0xffffffff;
  }
  if (rule.socket_transparent) {
    auto* m = b.template AddMatch<xt_socket_mtinfo3>("socket", 3);
    m->flags = XT_SOCKET_TRANSPARENT;
  }
  if (rule.ct_related_established) {
    // What `iptables -m conntrack --ctstate RELATED,ESTABLISHED` builds (revision 3).
    auto* m = b.template AddMatch<xt_conntrack_mtinfo3>("conntrack", 3);
    m->match_flags = XT_CONNTRACK_STATE;
    m->state_mask = XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED) | XT_CONNTRACK_STATE_BIT(IP_CT_RELATED);
  }

  return std::visit(
      [&](const auto& t) -> absl::Status {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, rules::JumpTarget> || std::is_same_v<T, rules::ReturnTarget> ||
                      std::is_same_v<T, rules::AcceptTarget>) {
          b.SetStandardTarget(TargetChainName(rule.target));
        } else if constexpr (std::is_same_v<T, rules::RedirectTarget>) {
          if constexpr (F::kFamily == Family::kIPv4) {
            auto* r = b.template SetTarget<nf_nat_ipv4_multi_range_compat>("REDIRECT", 0);
            r->rangesize = 1;
            r->range[0].flags = NF_NAT_RANGE_PROTO_SPECIFIED;
            r->range[0].min.all = r->range[0].max.all = htons(t.to_port);
          } else {
            auto* r = b.template SetTarget<nf_nat_range>("REDIRECT", 0);
            r->flags = NF_NAT_RANGE_PROTO_SPECIFIED;
            r->min_proto.all = r->max_proto.all = htons(t.to_port);
          }
        } else if constexpr (std::is_same_v<T, rules::TproxyTarget>) {
          auto* r = b.template SetTarget<xt_tproxy_target_info_v1>("TPROXY", 1);
          r->mark_mask = t.mask;
          r->mark_value = t.mark;
          r->lport = htons(t.on_port);
        } else if constexpr (std::is_same_v<T, rules::MarkTarget>) {
          auto* r = b.template SetTarget<xt_mark_tginfo2>("MARK", 2);
          r->mark = t.mark;
          r->mask = t.mask;
        } else if constexpr (std::is_same_v<T, rules::ConnmarkTarget>) {
          auto* r = b.template SetTarget<xt_connmark_tginfo2>("CONNMARK", 2);
          r->ctmask = r->nfmask = 0xffffffff;
          r->mode = t.op == rules::ConnmarkTarget::Op::kSave ? XT_CONNMARK_SAVE : XT_CONNMARK_RESTORE;
        } else if constexpr (std::is_same_v<T, rules::CtZoneTarget>) {
          auto* r = b.template SetTarget<xt_ct_target_info_v1>("CT", 2);
          r->zone = t.zone;
        }
        return absl::OkStatus();
      },
      rule.target);
}

// ---- Entry -> model ----

int PrefixLen(const uint8_t* mask, size_t len) {
  int bits = 0;
  size_t i = 0;
  for (; i < len && mask[i] == 0xff; ++i) bits += 8;
  if (i < len) {
    uint8_t m = mask[i];
    while (m & 0x80) {
      ++bits;
      m <<= 1;
    }
    if (m != 0) return -1;  // not contiguous
    for (++i; i < len; ++i) {
      if (mask[i] != 0) return -1;
    }
  }
  return bits;
}

template <typename F>
absl::StatusOr<std::optional<rules::Negatable<rules::Cidr>>> ReadCidr(const void* addr, const void* mask,
                                                                      bool negate) {
  const auto* m = static_cast<const uint8_t*>(mask);
  const int prefix = PrefixLen(m, F::kAddrLen);
  if (prefix < 0) return absl::InternalError("non-contiguous address mask");
  if (prefix == 0 && !negate) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(F::kAf, addr, text, sizeof(text)) == nullptr) return absl::InternalError("bad address");
  rules::Cidr cidr{F::kFamily, text, prefix};
  return rules::Negatable<rules::Cidr>{cidr, negate};
}

absl::StatusOr<std::optional<rules::Negatable<std::string>>> ReadInterface(const char* iface,
                                                                           const unsigned char* mask,
                                                                           bool negate) {
  size_t masked = 0;
  while (masked < IFNAMSIZ && mask[masked] != 0) ++masked;
  if (masked == 0) {
    if (negate) return absl::InternalError("negated empty interface");
    return std::nullopt;
  }
  std::string name(iface, strnlen(iface, IFNAMSIZ));
  if (masked == name.size())
    name += "+";  // prefix match (terminating NUL not compared)
  else if (masked != name.size() + 1)
    return absl::InternalError("unexpected interface mask");
  return rules::Negatable<std::string>{name, negate};
}

template <typename F>
absl::StatusOr<Rule> TranslateEntry(const typename F::Entry* e, xtc_handle* h) {
  Rule rule;
  const auto& ip = Ip<F>(e);
  if (F::HasUnsupportedFlags(e)) return absl::InternalError("unsupported rule flags (goto, fragment or tos)");
  if (ip.invflags & F::kInvProto) return absl::InternalError("negated protocol");
  const uint8_t known_inv = F::kInvSrc | F::kInvDst | F::kInvIn | F::kInvOut;
  if (ip.invflags & ~known_inv) return absl::InternalError("unsupported inverted match");
  if (ip.proto == IPPROTO_TCP) {
    rule.protocol = rules::Protocol::kTcp;
  } else if (ip.proto == IPPROTO_UDP) {
    rule.protocol = rules::Protocol::kUdp;
  } else if (ip.proto != 0) {
    return absl::InternalError(absl::StrCat("unsupported protocol ", ip.proto));
  }
  {
    auto src = ReadCidr<F>(F::Src(e), F::Smsk(e), ip.invflags & F::kInvSrc);
    if (!src.ok()) return src.status();
    rule.source = *src;
    auto dst = ReadCidr<F>(F::Dst(e), F::Dmsk(e), ip.invflags & F::kInvDst);
    if (!dst.ok()) return dst.status();
    rule.destination = *dst;
    auto in = ReadInterface(ip.iniface, ip.iniface_mask, ip.invflags & F::kInvIn);
    if (!in.ok()) return in.status();
    rule.in_interface = *in;
    auto out = ReadInterface(ip.outiface, ip.outiface_mask, ip.invflags & F::kInvOut);
    if (!out.ok()) return out.status();
    rule.out_interface = *out;
  }

  // Matches.
  const auto* base = reinterpret_cast<const uint8_t*>(e);
  for (size_t off = sizeof(typename F::Entry); off < e->target_offset;) {
    const auto* m = reinterpret_cast<const xt_entry_match*>(base + off);
    if (m->u.match_size < sizeof(xt_entry_match)) return absl::InternalError("corrupt match");
    const std::string name = m->u.user.name;
    const uint8_t rev = m->u.user.revision;
    const void* data = m->data;
    if (name == "tcp" || name == "udp") {
      const bool tcp = name == "tcp";
      if (!rule.protocol || (*rule.protocol == rules::Protocol::kTcp) != tcp) {
        return absl::InternalError("port match without matching protocol");
      }
      const uint16_t* spts;
      const uint16_t* dpts;
      bool inv_s, inv_d;
      if (tcp) {
        const auto* t = static_cast<const xt_tcp*>(data);
        if (t->option != 0 || t->flg_mask != 0) return absl::InternalError("tcp option/flag match");
        if (t->invflags & ~(XT_TCP_INV_SRCPT | XT_TCP_INV_DSTPT)) return absl::InternalError("tcp inversion");
        spts = t->spts, dpts = t->dpts;
        inv_s = t->invflags & XT_TCP_INV_SRCPT, inv_d = t->invflags & XT_TCP_INV_DSTPT;
      } else {
        const auto* u = static_cast<const xt_udp*>(data);
        if (u->invflags & ~(XT_UDP_INV_SRCPT | XT_UDP_INV_DSTPT)) return absl::InternalError("udp inversion");
        spts = u->spts, dpts = u->dpts;
        inv_s = u->invflags & XT_UDP_INV_SRCPT, inv_d = u->invflags & XT_UDP_INV_DSTPT;
      }
      // A full range 0:65535 (not inverted) is "no port match"; a single port is the model's port; anything
      // else (a real range) is not ours.
      auto port = [](const uint16_t* pts, bool inv,
                     std::optional<rules::Negatable<uint16_t>>* out) -> absl::Status {
        if (pts[0] == 0 && pts[1] == 0xffff && !inv) return absl::OkStatus();
        if (pts[0] != pts[1]) return absl::InternalError("port range");
        *out = rules::Negatable<uint16_t>{pts[0], inv};
        return absl::OkStatus();
      };
      if (absl::Status s = port(spts, inv_s, &rule.source_port); !s.ok()) return s;
      if (absl::Status s = port(dpts, inv_d, &rule.destination_port); !s.ok()) return s;
    } else if (name == "owner" && rev == 1) {
      const auto* o = static_cast<const xt_owner_match_info*>(data);
      if (o->match & ~(XT_OWNER_UID | XT_OWNER_GID)) return absl::InternalError("unsupported owner match");
      if (o->match & XT_OWNER_UID) {
        if (o->uid_min != o->uid_max) return absl::InternalError("owner uid range");
        rule.uid_owner = rules::Negatable<uint32_t>{o->uid_min, (o->invert & XT_OWNER_UID) != 0};
      }
      if (o->match & XT_OWNER_GID) {
        if (o->gid_min != o->gid_max) return absl::InternalError("owner gid range");
        rule.gid_owner = rules::Negatable<uint32_t>{o->gid_min, (o->invert & XT_OWNER_GID) != 0};
      }
    } else if (name == "mark" && rev == 1) {
      const auto* mk = static_cast<const xt_mark_mtinfo1*>(data);
      if (mk->mask != 0xffffffff || mk->invert > 1) return absl::InternalError("mark match with a mask");
      rule.mark = rules::Negatable<uint32_t>{mk->mark, mk->invert == 1};
    } else if (name == "connmark" && rev == 1) {
      const auto* mk = static_cast<const xt_connmark_mtinfo1*>(data);
      if (mk->mask != 0xffffffff || mk->invert)
        return absl::InternalError("connmark match with mask or negation");
      rule.connmark = mk->mark;
    } else if (name == "socket" && rev >= 1 && rev <= 3) {
      // Revisions 1..3 all start with a u8 flags field.
      const uint8_t flags = *static_cast<const uint8_t*>(data);
      if (flags != XT_SOCKET_TRANSPARENT) return absl::InternalError("socket match other than --transparent");
      rule.socket_transparent = true;
    } else if (name == "conntrack" && rev == 3) {
      const auto* ct = static_cast<const xt_conntrack_mtinfo3*>(data);
      const uint16_t want =
          XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED) | XT_CONNTRACK_STATE_BIT(IP_CT_RELATED);
      if (ct->match_flags != XT_CONNTRACK_STATE || ct->invert_flags != 0 || ct->state_mask != want)
        return absl::InternalError("conntrack match other than --ctstate RELATED,ESTABLISHED");
      rule.ct_related_established = true;
    } else {
      return absl::InternalError(absl::StrCat("unsupported match ", name, " revision ", rev));
    }
    off += m->u.match_size;
  }

  // Target.
  const char* tname = F::Target(e, h);
  if (tname == nullptr) return absl::InternalError("rule without target");
  const auto* t = reinterpret_cast<const xt_entry_target*>(base + e->target_offset);
  const std::string name = tname;
  const uint8_t rev = t->u.user.revision;
  const void* data = t->data;
  if (name == "ACCEPT") {
    rule.target = rules::AcceptTarget{};
  } else if (name == "RETURN") {
    rule.target = rules::ReturnTarget{};
  } else if (IsOurs(tname)) {
    rule.target = rules::JumpTarget{name};
  } else if (name == "REDIRECT" && rev == 0) {
    uint16_t port;
    if constexpr (F::kFamily == Family::kIPv4) {
      const auto* r = static_cast<const nf_nat_ipv4_multi_range_compat*>(data);
      if (r->rangesize != 1 || r->range[0].flags != NF_NAT_RANGE_PROTO_SPECIFIED ||
          r->range[0].min.all != r->range[0].max.all) {
        return absl::InternalError("REDIRECT with options other than one --to-ports");
      }
      port = ntohs(r->range[0].min.all);
    } else {
      const auto* r = static_cast<const nf_nat_range*>(data);
      if (r->flags != NF_NAT_RANGE_PROTO_SPECIFIED || r->min_proto.all != r->max_proto.all) {
        return absl::InternalError("REDIRECT with options other than one --to-ports");
      }
      port = ntohs(r->min_proto.all);
    }
    rule.target = rules::RedirectTarget{port};
  } else if (name == "TPROXY" && rev == 1) {
    const auto* r = static_cast<const xt_tproxy_target_info_v1*>(data);
    static const nf_inet_addr kZero{};
    if (std::memcmp(&r->laddr, &kZero, sizeof(kZero)) != 0) return absl::InternalError("TPROXY --on-ip");
    rule.target = rules::TproxyTarget{ntohs(r->lport), r->mark_value, r->mark_mask};
  } else if (name == "MARK" && rev == 2) {
    const auto* r = static_cast<const xt_mark_tginfo2*>(data);
    rule.target = rules::MarkTarget{r->mark, r->mask};
  } else if (name == "CONNMARK" && (rev == 1 || rev == 2)) {
    uint32_t ctmask, nfmask;
    uint8_t mode, shift = 0;
    if (rev == 1) {
      const auto* r = static_cast<const xt_connmark_tginfo1*>(data);
      ctmask = r->ctmask, nfmask = r->nfmask, mode = r->mode;
    } else {
      const auto* r = static_cast<const xt_connmark_tginfo2*>(data);
      ctmask = r->ctmask, nfmask = r->nfmask, mode = r->mode, shift = r->shift_bits;
    }
    if (ctmask != 0xffffffff || nfmask != 0xffffffff || shift != 0 ||
        (mode != XT_CONNMARK_SAVE && mode != XT_CONNMARK_RESTORE)) {
      return absl::InternalError("CONNMARK other than plain --save-mark/--restore-mark");
    }
    rule.target = rules::ConnmarkTarget{mode == XT_CONNMARK_SAVE ? rules::ConnmarkTarget::Op::kSave
                                                                 : rules::ConnmarkTarget::Op::kRestore};
  } else if (name == "CT" && rev <= 2) {
    // Revision 0 is xt_ct_target_info; 1 and 2 are xt_ct_target_info_v1 (same prefix plus a timeout name).
    const auto* r = static_cast<const xt_ct_target_info*>(data);
    const bool timeout = rev >= 1 && static_cast<const xt_ct_target_info_v1*>(data)->timeout[0] != '\0';
    if (r->flags != 0 || r->ct_events != 0 || r->exp_events != 0 || r->helper[0] != '\0' || timeout) {
      return absl::InternalError("CT with options other than --zone");
    }
    rule.target = rules::CtZoneTarget{r->zone};
  } else {
    return absl::InternalError(absl::StrCat("unsupported target ", name, " revision ", rev));
  }
  return rule;
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
