#include "netns/iptc_rule_codec.h"

#include <arpa/inet.h>
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
#include <net/if.h>

#include <algorithm>
#include <optional>
#include <variant>

#include "absl/strings/str_cat.h"

namespace pnc::netns::iptc {

using rules::Family;
using rules::Rule;

namespace {

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

}  // namespace

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
      const uint16_t want = XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED) | XT_CONNTRACK_STATE_BIT(IP_CT_RELATED);
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

template absl::Status BuildEntry<V4>(const Rule&, EntryBuilder<V4>&);
template absl::Status BuildEntry<V6>(const Rule&, EntryBuilder<V6>&);
template absl::StatusOr<Rule> TranslateEntry<V4>(const V4::Entry*, xtc_handle*);
template absl::StatusOr<Rule> TranslateEntry<V6>(const V6::Entry*, xtc_handle*);

}  // namespace pnc::netns::iptc
