// MnlSocket: a small RAII wrapper over a libmnl netlink socket, shared by netns/routing, netns/nft and
// netns/cri.
//
// A netlink socket is bound to the network namespace of the thread that creates it, so callers create one
// INSIDE the target namespace (e.g. within RunInNetns) and drop it before leaving. Not thread-safe; cheap to
// create (~5 us).
#ifndef PNC_NETNS_ROUTING_NETLINK_H_
#define PNC_NETNS_ROUTING_NETLINK_H_

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mnl_socket;

namespace pnc::netns {

// Starts a request in `buf` (MNL_SOCKET_BUFFER_SIZE bytes): a header of `type` with NLM_F_REQUEST | `flags`
// and sequence number `seq`, followed by the zeroed family header T (ifaddrmsg, rtmsg, fib_rule_hdr, ...),
// which *extra then points to.
template <typename T>
nlmsghdr* PutRequest(char* buf, uint16_t type, uint16_t flags, uint32_t seq, T** extra) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  *extra = static_cast<T*>(mnl_nlmsg_put_extra_header(nlh, sizeof(T)));
  return nlh;
}

class MnlSocket {
 public:
  // Opens and binds a netlink socket of `bus` (NETLINK_ROUTE, NETLINK_NETFILTER) in the calling thread's
  // netns.
  static absl::StatusOr<MnlSocket> Open(int bus);

  MnlSocket(MnlSocket&&) noexcept;
  MnlSocket& operator=(MnlSocket&&) noexcept;
  ~MnlSocket();

  mnl_socket* get() const { return nl_; }
  uint32_t portid() const { return portid_; }
  uint32_t NextSeq() { return ++seq_; }

  // Sends one request (the caller sets NLM_F_ACK) and waits for its acknowledgement. `what` names the
  // operation in errors. Kernel errors map to absl codes by StatusFromErrno
  // (netns/errno_status.h: EEXIST -> AlreadyExists, ENOENT/ESRCH/ENODEV -> NotFound, ...).
  absl::Status Request(const nlmsghdr* nlh, absl::string_view what);

  // Sends `len` bytes (possibly several messages, e.g. an nfnetlink batch) and processes replies until the
  // message with sequence number `last_seq` is acknowledged or an error arrives. Messages other than
  // errors/acks go to `cb`. On a kernel error, `*failed_seq` (when given) receives the failing message's
  // sequence number.
  absl::Status SendAndWait(const void* buf, size_t len, uint32_t last_seq, absl::string_view what,
                           absl::FunctionRef<absl::Status(const nlmsghdr*)> cb,
                           uint32_t* failed_seq = nullptr);

  // Closes `socket` on a process-wide background thread instead of the caller's. Closing a NETLINK_NETFILTER
  // socket after a batch that destroyed nf_tables objects (flushed rules, deleted chains) blocks in close()
  // until the kernel's deferred destruction has passed an RCU grace period (measured 10-18 ms); nothing the
  // caller does next depends on that. The socket keeps its netns referenced until it is closed (a few ms
  // later). Hand-overs are coalesced (the thread pauses between rounds), so most of them wake nobody.
  // The closer thread must be started beforehand by StartBackgroundCloser() (from a thread in the process's
  // own netns: a thread inherits its creator's netns and would otherwise pin a pod's netns forever); until
  // then this closes inline.
  static void CloseInBackground(MnlSocket socket);
  static void StartBackgroundCloser();  // idempotent, thread-safe

  // Asks the kernel to honour the filters in this socket's dump requests (NETLINK_GET_STRICT_CHK: e.g.
  // rtm_protocol of RTM_GETROUTE, ifa_index of RTM_GETADDR), which also makes it reject dump requests with
  // stray header fields or attributes. Best effort and sticky: where the kernel lacks it, dumps stay
  // unfiltered, so callers still check every message they receive.
  void EnableDumpFilters();

  // Sends a dump request (NLM_F_DUMP set by the caller) and calls `cb` for every reply message of one
  // complete dump. A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the objects changed while they were
  // dumped, e.g. another nf_tables commit landed) is read to its end and requested again; `cb` never sees a
  // message of an interrupted dump. Aborted when the dump is interrupted every time it is tried.
  absl::Status Dump(const nlmsghdr* nlh, absl::string_view what,
                    absl::FunctionRef<absl::Status(const nlmsghdr*)> cb);

 private:
  MnlSocket(mnl_socket* nl, uint32_t portid);
  void Drain(char* scratch, size_t size);  // discards every queued reply
  // `interrupted` (dumps only): set when the kernel marked the dump interrupted; the rest of it is discarded.
  absl::Status Receive(uint32_t seq, absl::string_view what,
                       absl::FunctionRef<absl::Status(const nlmsghdr*)> cb, bool* interrupted = nullptr);

  mnl_socket* nl_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
  bool dump_filters_ = false;
};

// Calls fn for each top-level attribute of `nlh` after a family header of `header_len` bytes (libmnl's
// mnl_attr_for_each macro does not compile as C++).
void ForEachAttr(const nlmsghdr* nlh, size_t header_len, absl::FunctionRef<void(const nlattr*)> fn);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ROUTING_NETLINK_H_
