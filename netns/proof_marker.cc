#include "netns/proof_marker.h"

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "netns/executor.h"
#include "netns/routing/netlink.h"

namespace pnc::netns {
namespace {

nlmsghdr* PutMarker(char* buf, uint16_t type, uint16_t flags, uint32_t seq, uint32_t value) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  nlh->nlmsg_seq = seq;
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  frh->family = AF_INET;
  frh->action = FR_ACT_NOP;
  mnl_attr_put_u32(nlh, FRA_PRIORITY, kMarkerPriority);
  mnl_attr_put_u32(nlh, FRA_FWMARK, value);
  mnl_attr_put_u32(nlh, FRA_FWMASK, 0xffffffff);
  mnl_attr_put_u8(nlh, FRA_PROTOCOL, kMarkerProtocol);
  return nlh;
}

// The fwmark values of our NOP rules at kMarkerPriority in the calling thread's netns.
absl::StatusOr<std::vector<uint32_t>> ListMarkers(MnlSocket& nl) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETRULE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = nl.NextSeq();
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  frh->family = AF_INET;
  std::vector<uint32_t> out;
  absl::Status st = nl.Dump(nlh, "ip rule list", [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWRULE) return absl::OkStatus();
    const auto* h = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(m));
    if (h->action != FR_ACT_NOP) return absl::OkStatus();
    std::optional<uint32_t> prio, mark;
    uint8_t proto = 0;
    ForEachAttr(m, sizeof(fib_rule_hdr), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case FRA_PRIORITY:
          prio = mnl_attr_get_u32(a);
          break;
        case FRA_FWMARK:
          mark = mnl_attr_get_u32(a);
          break;
        case FRA_PROTOCOL:
          proto = mnl_attr_get_u8(a);
          break;
        default:
          break;
      }
    });
    if (prio == kMarkerPriority && proto == kMarkerProtocol && mark) out.push_back(*mark);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace

absl::Status KernelProofMarker::Place(const NetnsHandle& ns, uint32_t value) {
  return RunInNetns(ns, [&]() -> absl::Status {
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    if (!nl.ok()) return nl.status();
    absl::StatusOr<std::vector<uint32_t>> have = ListMarkers(*nl);
    if (!have.ok()) return have.status();
    bool present = false;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    for (uint32_t v : *have) {
      if (v == value && !present) {
        present = true;
        continue;
      }
      absl::Status del =
          nl->Request(PutMarker(buf, RTM_DELRULE, 0, nl->NextSeq(), v), "ip rule del (marker)");
      if (!del.ok() && !absl::IsNotFound(del)) return del;
    }
    if (present) return absl::OkStatus();
    return nl->Request(PutMarker(buf, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, nl->NextSeq(), value),
                       absl::StrCat("ip rule add priority ", kMarkerPriority, " fwmark ", value, " nop"));
  });
}

absl::Status FakeProofMarker::Place(const NetnsHandle& ns, uint32_t value) {
  absl::MutexLock lock(&mu_);
  if (!fail_.ok()) return std::exchange(fail_, absl::OkStatus());
  placed_[{ns.inode(), ns.testing_cookie()}] = value;
  return absl::OkStatus();
}

uint32_t FakeProofMarker::At(uint64_t inode, uint64_t cookie) const {
  absl::MutexLock lock(&mu_);
  auto it = placed_.find({inode, cookie});
  return it == placed_.end() ? 0 : it->second;
}

void FakeProofMarker::FailNext(absl::Status st) {
  absl::MutexLock lock(&mu_);
  fail_ = std::move(st);
}

}  // namespace pnc::netns
