#include "netns/nft/nft_backend.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "netns/executor.h"
#include "netns/nft/decode_memo.h"
#include "netns/nft/rule_codec.h"
#include "netns/routing/netlink.h"
#include "netns/routing/routing_state.h"

namespace pnc::netns {
namespace {

using rules::Chain;
using rules::Family;
using rules::FamilyRules;
using rules::Rule;
using rules::Ruleset;
using rules::Table;
using rules::TableRules;

// A batch is sized for its messages (a rule message stays well under 2 KiB) and capped below the socket's
// default send buffer (212992 bytes) so one sendto() always carries it; the buffer is twice the limit because
// libmnl lets the last message overflow the limit. A default pod's 23 rules need ~8 KiB.
constexpr size_t kMaxBatchBytes = 192 * 1024;
constexpr size_t kBytesPerMessage = 2048;
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
  // Appends a complete message built beforehand (EncodedRuleset), with the next sequence number.
  void Put(const std::string& msg) {
    if (mnl_nlmsg_batch_size(batch_) + msg.size() > 2 * limit_) {
      overflow_ = true;
      return;
    }
    auto* at = static_cast<char*>(mnl_nlmsg_batch_current(batch_));
    std::memcpy(at, msg.data(), msg.size());
    last_ = reinterpret_cast<nlmsghdr*>(at);
    last_seq_ = nl_.NextSeq();
    last_->nlmsg_seq = last_seq_;
    Next();
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
    uint32_t failed_seq = 0;
    absl::Status s = nl_.SendAndWait(
        mnl_nlmsg_batch_head(batch_), mnl_nlmsg_batch_size(batch_), last_seq_, what,
        [](const nlmsghdr*) { return absl::OkStatus(); }, &failed_seq);
    if (s.ok() || failed_seq == 0) return s;
    return absl::Status(s.code(), absl::StrCat(s.message(), " at: ", Describe(failed_seq)));
  }

 private:
  // The batch message with this sequence number, in nft syntax where we can (only on errors: no cost
  // otherwise).
  std::string Describe(uint32_t seq) const {
    const auto* nlh = static_cast<const nlmsghdr*>(mnl_nlmsg_batch_head(batch_));
    int remaining = static_cast<int>(mnl_nlmsg_batch_size(batch_));
    while (mnl_nlmsg_ok(nlh, remaining)) {
      if (nlh->nlmsg_seq == seq) {
        const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
        const std::string family =
            absl::StrCat(nfg->nfgen_family == NFPROTO_IPV6 ? "ip6 " : "ip ", kNftTableName);
        switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
          case NFT_MSG_NEWTABLE:
            return absl::StrCat("add table ", family);
          case NFT_MSG_DELTABLE:
            return absl::StrCat("delete table ", family);
          case NFT_MSG_DELRULE:
            return absl::StrCat("flush table ", family);
          case NFT_MSG_NEWCHAIN:
          case NFT_MSG_DELCHAIN: {
            ChainPtr c(nftnl_chain_alloc());
            if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) break;
            return absl::StrCat(NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWCHAIN ? "add" : "delete",
                                " chain ", family, " ", nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME));
          }
          case NFT_MSG_NEWRULE: {
            RulePtr r(nftnl_rule_alloc());
            if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) break;
            char text[2048];
            nftnl_rule_snprintf(text, sizeof text, r.get(), NFTNL_OUTPUT_DEFAULT, 0);
            return absl::StrCat("add rule ", family, " ", nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN), ": ",
                                text);
          }
          default:
            break;
        }
        return absl::StrCat("netlink message type ", nlh->nlmsg_type);
      }
      nlh = mnl_nlmsg_next(nlh, &remaining);
    }
    return absl::StrCat("message seq ", seq);
  }

 public:
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
// that is 10-18 ms, and it hits the next read-back's socket too. So every socket of this backend (the
// rtnetlink one too, whose close() is only microseconds, but on the pod's path) is closed by the background
// closer (started by NewNftBackend).
class BackgroundClosedSocket {
 public:
  static absl::StatusOr<BackgroundClosedSocket> Open(int bus = NETLINK_NETFILTER) {
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(bus);
    if (!nl.ok()) return nl.status();
    return BackgroundClosedSocket(std::move(*nl));
  }
  BackgroundClosedSocket(BackgroundClosedSocket&&) = default;
  ~BackgroundClosedSocket() {
    if (nl_) MnlSocket::CloseInBackground(std::move(*nl_));
  }
  MnlSocket& operator*() { return *nl_; }

 private:
  explicit BackgroundClosedSocket(MnlSocket nl) : nl_(std::move(nl)) {}
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

// The parts of an NFT_MSG_NEWRULE dump message the read-back uses, located without libnftnl.
struct RuleMessage {
  std::optional<Family> family;
  std::optional<absl::string_view> table, chain;
  std::optional<absl::string_view> expressions;  // NFTA_RULE_EXPRESSIONS' payload
};

std::optional<absl::string_view> AttrString(const nlattr* a) {
  const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
  const size_t len = mnl_attr_get_payload_len(a);
  const size_t n = strnlen(p, len);
  if (n == len) return std::nullopt;  // not NUL-terminated
  return absl::string_view(p, n);
}

RuleMessage SplitRuleMessage(const nlmsghdr* m) {
  RuleMessage out;
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(m));
  out.family = FamilyOf(nfg->nfgen_family);
  ForEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case NFTA_RULE_TABLE:
        out.table = AttrString(a);
        break;
      case NFTA_RULE_CHAIN:
        out.chain = AttrString(a);
        break;
      case NFTA_RULE_EXPRESSIONS:
        out.expressions =
            absl::string_view(static_cast<const char*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a));
        break;
      default:
        break;
    }
  });
  return out;
}

// Our tables' content in the Ruleset model (no routes), given the families holding our table and their
// chains. A rule whose expression bytes `memo` has seen decode successfully before is not parsed again.
absl::StatusOr<std::vector<FamilyRules>> ReadFamilies(MnlSocket& nl, const std::set<Family>& families,
                                                      std::map<Family, std::vector<ChainInfo>>& chains,
                                                      DecodeMemo& memo) {
  std::vector<FamilyRules> out;
  if (families.empty()) return out;

  // Rules per (family, nft chain name), in chain order.
  std::map<std::pair<Family, std::string>, std::vector<Rule>> rules_by_chain;
  // No NFTA_RULE_TABLE filter in the request: with NFPROTO_UNSPEC the kernel's filtered dump stops after the
  // first table of that name, which would hide our ip6 table.
  absl::Status s =
      DumpObjects(nl, NFT_MSG_GETRULE, NFPROTO_UNSPEC, "list nftables rules", [&](const nlmsghdr* m) {
        const RuleMessage msg = SplitRuleMessage(m);
        if (msg.family && msg.table == absl::string_view(kNftTableName) && msg.chain && msg.expressions) {
          std::optional<std::pair<Table, std::string>> split = SplitChainName(std::string(*msg.chain));
          if (split) {
            if (std::optional<Rule> known = memo.Find(*msg.family, split->first, *msg.expressions)) {
              rules_by_chain[{*msg.family, std::string(*msg.chain)}].push_back(*std::move(known));
              return absl::OkStatus();
            }
          }
        }
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
        absl::StatusOr<Rule> rule = DecodeRule(r.get(), *f, split->first, where);
        if (!rule.ok()) return rule.status();
        if (msg.family == f && msg.expressions) memo.Remember(*f, split->first, *msg.expressions, *rule);
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

// The two netlink sockets one namespace entry uses, opened in that namespace on first use and shared by its
// steps (Apply, then the read-back).
class Sockets {
 public:
  absl::StatusOr<MnlSocket*> Nf() {
    if (!nf_) {
      absl::StatusOr<BackgroundClosedSocket> nl = BackgroundClosedSocket::Open();
      if (!nl.ok()) return nl.status();
      nf_.emplace(std::move(*nl));
    }
    return &**nf_;
  }
  absl::StatusOr<MnlSocket*> Route() {
    if (!route_) {
      absl::StatusOr<BackgroundClosedSocket> nl = BackgroundClosedSocket::Open(NETLINK_ROUTE);
      if (!nl.ok()) return nl.status();
      route_.emplace(std::move(*nl));
    }
    return &**route_;
  }

 private:
  std::optional<BackgroundClosedSocket> nf_;
  std::optional<BackgroundClosedSocket> route_;
};

// `routing`: the routing state Apply's sync read in this same namespace entry and did not change since
// (SyncRoutingState's read_if_unchanged), or null/nullopt: read it here.
absl::StatusOr<Ruleset> ReadBackHere(Sockets& sockets, DecodeMemo& memo,
                                     const std::optional<Ruleset>* routing = nullptr) {
  Ruleset rs;
  if (routing != nullptr && routing->has_value()) {
    rs.routes = (*routing)->routes;
    rs.loopback_addresses = (*routing)->loopback_addresses;
  } else {
    absl::StatusOr<MnlSocket*> rtnl = sockets.Route();
    if (!rtnl.ok()) return rtnl.status();
    if (absl::Status s = ReadRoutingState(**rtnl, &rs); !s.ok()) return s;
  }
  absl::StatusOr<MnlSocket*> nl = sockets.Nf();
  if (!nl.ok()) return nl.status();
  // The chain dump alone tells which families hold our table (an empty table of ours, which Apply never
  // leaves, would simply not be reported): one round trip less than listing tables first.
  absl::StatusOr<std::map<Family, std::vector<ChainInfo>>> c = DumpOurChains(**nl);
  if (!c.ok()) return c.status();
  std::map<Family, std::vector<ChainInfo>> chains = std::move(*c);
  absl::StatusOr<std::set<Family>> families = std::set<Family>();
  for (const auto& [f, list] : chains) families->insert(f);
  absl::StatusOr<std::vector<FamilyRules>> fams = ReadFamilies(**nl, *families, chains, memo);
  if (!fams.ok()) return fams.status();
  rs.families = std::move(*fams);
  return rs;
}

// Apply's namespace-independent work on one Ruleset: validation, the chains to create, and every rule's
// NFT_MSG_NEWRULE message serialized once (a batch copies them in with fresh sequence numbers). A pure
// function of the Ruleset, so the backend caches it for the pods that share one.
struct EncodedRuleset {
  Ruleset rs;
  std::set<Family> want_families;
  std::map<Family, std::vector<WantChain>> want_chains;
  std::vector<std::string> rule_msgs;
};

absl::StatusOr<std::shared_ptr<const EncodedRuleset>> EncodeRuleset(const Ruleset& rs) {
  auto enc = std::make_shared<EncodedRuleset>();
  enc->rs = rs;
  for (const FamilyRules& fr : rs.families) {
    if (!enc->want_families.insert(fr.family).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("family ", rules::FamilyName(fr.family), " listed twice"));
    }
    if (absl::Status s = PlanFamily(fr, &enc->want_chains[fr.family]); !s.ok()) return s;
  }
  // A rule message is a few hundred bytes; libnftnl does not bound-check, so leave ample room.
  std::unique_ptr<char[]> scratch(new char[8 * kBytesPerMessage]);
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
          if (absl::Status s = EncodeRule(r.get(), fr.family, tr.table, rule, names); !s.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat(Where(fr.family, tr.table), " chain ", c.name, ": ", s.message()));
          }
          nlmsghdr* nlh = nftnl_nlmsg_build_hdr(scratch.get(), NFT_MSG_NEWRULE, NfProto(fr.family),
                                                NLM_F_CREATE | NLM_F_APPEND, 0);
          nftnl_rule_nlmsg_build_payload(nlh, r.get());
          enc->rule_msgs.emplace_back(scratch.get(), nlh->nlmsg_len);
        }
      }
    }
  }
  return enc;
}

// The last few EncodedRulesets (pods of one workload share a Ruleset). Thread-safe.
class EncodeCache {
 public:
  absl::StatusOr<std::shared_ptr<const EncodedRuleset>> Get(const Ruleset& rs) {
    {
      absl::MutexLock l(&mu_);
      for (const auto& e : entries_)
        if (e->rs == rs) return e;
    }
    absl::StatusOr<std::shared_ptr<const EncodedRuleset>> enc = EncodeRuleset(rs);
    if (!enc.ok()) return enc.status();  // invalid input is not cached
    absl::MutexLock l(&mu_);
    entries_.push_front(*enc);
    if (entries_.size() > kEntries) entries_.pop_back();
    return enc;
  }

 private:
  static constexpr size_t kEntries = 8;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<const EncodedRuleset>> entries_ ABSL_GUARDED_BY(mu_);
};

absl::Status SendApplyBatch(MnlSocket& nl, MnlSocket& rtnl, const EncodedRuleset& enc,
                            const std::set<Family>& have_families,
                            std::map<Family, std::vector<ChainInfo>>& have_chains,
                            std::optional<Ruleset>* routing_read);

// `routing_read`: SyncRoutingState's read_if_unchanged of the last sync (see ReadBackHere).
absl::Status ApplyHere(const EncodedRuleset& enc, Sockets& sockets, DecodeMemo& memo,
                       std::optional<Ruleset>* routing_read) {
  const Ruleset& rs = enc.rs;

  absl::StatusOr<MnlSocket*> nl = sockets.Nf();
  if (!nl.ok()) return nl.status();
  absl::StatusOr<MnlSocket*> rtnl = sockets.Route();
  if (!rtnl.ok()) return rtnl.status();
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
      absl::StatusOr<std::vector<FamilyRules>> current =
          ReadFamilies(**nl, *have_families, have_chains, memo);
      if (current.ok() && *current == rs.families) return SyncRoutingState(**rtnl, rs, routing_read);
    }
    last = SendApplyBatch(**nl, **rtnl, enc, *have_families, have_chains, routing_read);
    if (!absl::IsAlreadyExists(last)) return last;
  }
  return last;
}

absl::Status SendApplyBatch(MnlSocket& nl, MnlSocket& rtnl, const EncodedRuleset& enc,
                            const std::set<Family>& have_families,
                            std::map<Family, std::vector<ChainInfo>>& have_chains,
                            std::optional<Ruleset>* routing_read) {
  const Ruleset& rs = enc.rs;
  const std::set<Family>& want_families = enc.want_families;
  const std::map<Family, std::vector<WantChain>>& want_chains = enc.want_chains;
  size_t messages = have_families.size() + enc.rule_msgs.size();
  for (const auto& [f, chains] : want_chains) messages += 2 + chains.size();
  for (const auto& [f, chains] : have_chains) messages += chains.size();
  Batch b(nl, messages);
  for (Family f : have_families) {
    if (!want_families.count(f)) PutTable(b, f, NFT_MSG_DELTABLE, 0);  // family dropped: cold path
  }
  for (const FamilyRules& fr : rs.families) {
    const Family f = fr.family;
    const std::vector<WantChain>& want = want_chains.at(f);
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
  for (const std::string& msg : enc.rule_msgs) b.Put(msg);
  // A batch that cannot be sent fails before anything changes, routes included.
  if (absl::Status s = b.Finish(); !s.ok()) return s;
  // Routes before rules: TPROXY'd packets must find their local route as soon as the rules exist.
  if (absl::Status s = SyncRoutingState(rtnl, rs, routing_read); !s.ok()) return s;
  return b.Send("nftables batch");
}

absl::Status RemoveHere() {
  absl::StatusOr<BackgroundClosedSocket> nl = BackgroundClosedSocket::Open();
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
  return SyncRoutingState(Ruleset{});
}

class NftBackend : public Backend {
 public:
  std::string Name() const override { return "nft"; }
  absl::Status Apply(const NetnsHandle& ns, const Ruleset& ruleset) override {
    // Validated and translated before entering the namespace.
    absl::StatusOr<std::shared_ptr<const EncodedRuleset>> enc = cache_.Get(ruleset);
    if (!enc.ok()) return Annotate(ns, enc.status());
    return Annotate(ns, RunInNetns(ns, [&] {
                      Sockets sockets;
                      std::optional<Ruleset> routing_read;
                      return ApplyHere(**enc, sockets, memo_, &routing_read);
                    }));
  }
  absl::StatusOr<Ruleset> ReadBack(const NetnsHandle& ns) override {
    absl::StatusOr<Ruleset> out;
    absl::Status s = RunInNetns(ns, [&] {
      Sockets sockets;
      out = ReadBackHere(sockets, memo_);
      return out.status();
    });
    if (!s.ok()) return Annotate(ns, s);
    return out;
  }
  // One namespace entry and one pair of sockets for both steps; the read-back is new dumps after the batch's
  // ack, the same as ReadBack's.
  absl::StatusOr<Ruleset> ApplyAndReadBack(const NetnsHandle& ns, const Ruleset& ruleset) override {
    absl::StatusOr<std::shared_ptr<const EncodedRuleset>> enc = cache_.Get(ruleset);
    if (!enc.ok()) return Annotate(ns, enc.status());
    absl::StatusOr<Ruleset> out;
    absl::Status s = RunInNetns(ns, [&] {
      Sockets sockets;
      std::optional<Ruleset> routing_read;
      if (absl::Status applied = ApplyHere(**enc, sockets, memo_, &routing_read); !applied.ok())
        return applied;
      out = ReadBackHere(sockets, memo_, &routing_read);
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
  EncodeCache cache_;
  DecodeMemo memo_;
};

}  // namespace

std::unique_ptr<Backend> NewNftBackend() {
  MnlSocket::StartBackgroundCloser();  // here, on the caller's thread, never inside a pod's netns
  return std::make_unique<NftBackend>();
}

absl::StatusOr<std::vector<std::string>> ListNftTablesInCurrentNetns() {
  absl::StatusOr<BackgroundClosedSocket> nl = BackgroundClosedSocket::Open();
  if (!nl.ok()) return nl.status();
  absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> tables = DumpTables(**nl);
  if (!tables.ok()) return tables.status();
  std::vector<std::string> out;
  for (const auto& [nfproto, name] : *tables) out.push_back(absl::StrCat(NftFamilyName(nfproto), " ", name));
  return out;
}

}  // namespace pnc::netns
