// libiptc rule codec: one rule of the Ruleset model <-> one legacy x_tables entry (ipt_entry / ip6t_entry),
// for the iptc backend (iptc_backend.h, which owns the table sync: handles, chains, commits).
//
// Family traits V4/V6 are the only place where libiptc and libip6tc differ. BuildEntry writes the exact
// extension revisions iptables 1.8.9 itself would pick, so iptables-legacy-save prints our rules;
// TranslateEntry reads back every match and target the model has (older revisions too) and returns
// InvalidArgument for anything else (which the backend reports as tampering). Explicitly instantiated for V4
// and V6.
#ifndef PNC_NETNS_IPTC_RULE_CODEC_H_
#define PNC_NETNS_IPTC_RULE_CODEC_H_

#include <libiptc/libiptc.h>
#include <netinet/in.h>
extern "C" {  // libip6tc.h (iptables 1.8.9) has no extern "C" guard of its own
#include <libiptc/libip6tc.h>
}

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/ruleset.h"

namespace pnc::netns::iptc {

// Our chains are the ISTIO_* ones; a rule of a built-in chain is ours when it jumps to one.
inline bool IsOurs(const char* chain) { return std::strncmp(chain, "ISTIO_", 6) == 0; }

// ---- Family traits: the only place where libiptc and libip6tc differ. ----

struct V4 {
  using Entry = ipt_entry;
  static constexpr rules::Family kFamily = rules::Family::kIPv4;
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
  static constexpr rules::Family kFamily = rules::Family::kIPv6;
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
  if constexpr (F::kFamily == rules::Family::kIPv4) {
    return e->ip;
  } else {
    return e->ipv6;
  }
}
template <typename F>
const auto& Ip(const typename F::Entry* e) {
  if constexpr (F::kFamily == rules::Family::kIPv4) {
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

// Encodes `rule` into `b`. InvalidArgument for a rule the model allows but this family cannot express
// (e.g. a bad CIDR).
template <typename F>
absl::Status BuildEntry(const rules::Rule& rule, EntryBuilder<F>& b);

// Decodes one entry of table handle `h`. InvalidArgument naming what is outside the model.
template <typename F>
absl::StatusOr<rules::Rule> TranslateEntry(const typename F::Entry* e, xtc_handle* h);

}  // namespace pnc::netns::iptc

#endif  // PNC_NETNS_IPTC_RULE_CODEC_H_
