#include "netns/routing/netlink.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "netns/errno_status.h"

namespace pnc::netns {
namespace {

// Large enough for any dump message the kernel sends (it caps dump skbs well below this).
constexpr size_t kBufferSize = 64 * 1024;

struct CallbackData {
  absl::FunctionRef<absl::Status(const nlmsghdr*)>* cb;
  absl::Status status;
};

// A receive buffer for the duration of one call. Each thread keeps one buffer and lends it out (the netns
// workers are long-lived, so a pod's sockets reuse the same warm pages); a call made while the thread's
// buffer is lent (a callback that uses another socket) gets its own. Allocating, zeroing and freeing 64 KiB
// per socket instead cost more than some of the dumps themselves (the free also made malloc consolidate and
// trim).
class RecvBuffer {
 public:
  RecvBuffer() {
    thread_local std::unique_ptr<char[]> cached;
    thread_local bool lent = false;
    if (!lent) {
      if (!cached) cached.reset(new char[kBufferSize]);  // not zeroed: recv writes what we read
      lent_ = &lent;
      lent = true;
      data_ = cached.get();
    } else {
      own_.reset(new char[kBufferSize]);
      data_ = own_.get();
    }
  }
  ~RecvBuffer() {
    if (lent_ != nullptr) *lent_ = false;
  }
  RecvBuffer(const RecvBuffer&) = delete;
  RecvBuffer& operator=(const RecvBuffer&) = delete;
  char* data() { return data_; }
  static constexpr size_t size() { return kBufferSize; }

 private:
  bool* lent_ = nullptr;
  std::unique_ptr<char[]> own_;
  char* data_ = nullptr;
};

int DataCallback(const nlmsghdr* nlh, void* data) {
  auto* d = static_cast<CallbackData*>(data);
  d->status = (*d->cb)(nlh);
  return d->status.ok() ? MNL_CB_OK : MNL_CB_ERROR;
}

// One thread that closes sockets handed to it. Leaked on purpose (like absl::NoDestructor): it must outlive
// every caller, and at process exit an idle thread blocked on its queue needs no cleanup.
//
// Waking the closer costs the handing-over thread (a netns worker, on the pod's critical path) a futex wake
// per socket. So after each round the closer sleeps kCoalesce without waiting on the queue: sockets handed
// over meanwhile wake nobody and are closed together in the next round. Only a hand-over to an idle closer
// (queue found empty after the pause) wakes it. A socket, and the netns it pins, lives at most ~kCoalesce
// longer.
class BackgroundCloser {
 public:
  static BackgroundCloser* Started() { return started_.load(std::memory_order_acquire); }
  static void Start() {
    static BackgroundCloser* closer = [] {
      auto* c = new BackgroundCloser();
      started_.store(c, std::memory_order_release);
      return c;
    }();
    (void)closer;
  }
  void Close(mnl_socket* nl) {
    absl::MutexLock l(&mu_);
    queue_.push_back(nl);
  }

 private:
  BackgroundCloser() {
    std::thread([this] {
      for (;;) {
        std::deque<mnl_socket*> round;
        {
          absl::MutexLock l(&mu_);
          mu_.Await(absl::Condition(
              +[](std::deque<mnl_socket*>* q) { return !q->empty(); }, &queue_));
          round.swap(queue_);
        }
        for (mnl_socket* nl : round) mnl_socket_close(nl);
        absl::SleepFor(kCoalesce);
      }
    }).detach();
  }
  static constexpr absl::Duration kCoalesce = absl::Milliseconds(1);
  static std::atomic<BackgroundCloser*> started_;
  absl::Mutex mu_;
  std::deque<mnl_socket*> queue_ ABSL_GUARDED_BY(mu_);
};
std::atomic<BackgroundCloser*> BackgroundCloser::started_{nullptr};

}  // namespace

void MnlSocket::StartBackgroundCloser() { BackgroundCloser::Start(); }

void MnlSocket::CloseInBackground(MnlSocket socket) {
  BackgroundCloser* closer = BackgroundCloser::Started();
  if (socket.nl_ == nullptr || closer == nullptr) return;  // ~MnlSocket closes inline
  closer->Close(std::exchange(socket.nl_, nullptr));
}

void ForEachAttr(const nlmsghdr* nlh, size_t header_len, absl::FunctionRef<void(const nlattr*)> fn) {
  const auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, header_len));
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)))) {
    fn(attr);
    attr = mnl_attr_next(attr);
  }
}

MnlSocket::MnlSocket(mnl_socket* nl, uint32_t portid)
    : nl_(nl), portid_(portid), seq_(static_cast<uint32_t>(time(nullptr))) {}

MnlSocket::MnlSocket(MnlSocket&& o) noexcept
    : nl_(std::exchange(o.nl_, nullptr)), portid_(o.portid_), seq_(o.seq_), dump_filters_(o.dump_filters_) {}

MnlSocket& MnlSocket::operator=(MnlSocket&& o) noexcept {
  if (this != &o) {
    if (nl_ != nullptr) mnl_socket_close(nl_);
    nl_ = std::exchange(o.nl_, nullptr);
    portid_ = o.portid_;
    seq_ = o.seq_;
    dump_filters_ = o.dump_filters_;
  }
  return *this;
}

MnlSocket::~MnlSocket() {
  if (nl_ != nullptr) mnl_socket_close(nl_);
}

absl::StatusOr<MnlSocket> MnlSocket::Open(int bus) {
  mnl_socket* nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (nl == nullptr) return StatusFromErrno(errno, absl::StrCat("netlink socket (bus ", bus, ")"));
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl);
    return StatusFromErrno(err, "netlink bind");
  }
  return MnlSocket(nl, mnl_socket_get_portid(nl));
}

absl::Status MnlSocket::Receive(uint32_t seq, absl::string_view what,
                                absl::FunctionRef<absl::Status(const nlmsghdr*)> cb, bool* interrupted) {
  CallbackData data{&cb, absl::OkStatus()};
  RecvBuffer buf;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return StatusFromErrno(errno, absl::StrCat(what, " (recv)"));
    }
    int ret = mnl_cb_run(buf.data(), n, seq, portid_, DataCallback, &data);
    if (ret == MNL_CB_ERROR) {
      if (!data.status.ok()) return data.status;
      if (errno == EINTR && interrupted != nullptr) {  // libmnl's word for NLM_F_DUMP_INTR
        Drain(buf.data(), buf.size());  // reading on lets the kernel finish the dump; all of it is discarded
        *interrupted = true;
        return absl::OkStatus();
      }
      return StatusFromErrno(errno, what);
    }
    if (ret == MNL_CB_STOP) return absl::OkStatus();
  }
}

absl::Status MnlSocket::Request(const nlmsghdr* nlh, absl::string_view what) {
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0)
    return StatusFromErrno(errno, absl::StrCat(what, " (send)"));
  return Receive(nlh->nlmsg_seq, what, [](const nlmsghdr*) { return absl::OkStatus(); });
}

absl::Status MnlSocket::SendAndWait(const void* buf, size_t len, uint32_t last_seq, absl::string_view what,
                                    absl::FunctionRef<absl::Status(const nlmsghdr*)> cb,
                                    uint32_t* failed_seq) {
  if (mnl_socket_sendto(nl_, buf, len) < 0) return StatusFromErrno(errno, absl::StrCat(what, " (send)"));
  // Replies for earlier messages of a batch carry other sequence numbers; accept any (seq 0 disables libmnl's
  // check) and stop at the ack of the last one.
  RecvBuffer rbuf;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, rbuf.data(), rbuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return StatusFromErrno(errno, absl::StrCat(what, " (recv)"));
    }
    // Walk messages ourselves: an ack for an intermediate message must not end the wait.
    const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(rbuf.data());
    int remaining = static_cast<int>(n);
    while (mnl_nlmsg_ok(nlh, remaining)) {
      if (nlh->nlmsg_pid != portid_)
        return absl::InternalError(absl::StrCat(what, ": reply for another port"));
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0) {
          const int code = -err->error;  // read before Drain() overwrites the buffer
          if (failed_seq != nullptr) *failed_seq = err->msg.nlmsg_seq;
          // The kernel queued every reply of the batch before sendto() returned: drop the rest (later errors,
          // the final ack) so the next request on this socket does not read them as its own.
          Drain(rbuf.data(), rbuf.size());
          return StatusFromErrno(code, what);
        }
        if (nlh->nlmsg_seq == last_seq) return absl::OkStatus();
      } else if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) {
        if (absl::Status s = cb(nlh); !s.ok()) return s;
      }
      nlh = mnl_nlmsg_next(nlh, &remaining);
    }
  }
}

void MnlSocket::EnableDumpFilters() {
  if (dump_filters_) return;
  dump_filters_ = true;  // tried once: a kernel without it (ENOPROTOOPT) will not gain it later
  const int one = 1;
  (void)setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
}

void MnlSocket::Drain(char* scratch, size_t size) {
  while (recv(mnl_socket_get_fd(nl_), scratch, size, MSG_DONTWAIT) > 0) {
  }
}

absl::Status MnlSocket::Dump(const nlmsghdr* nlh, absl::string_view what,
                             absl::FunctionRef<absl::Status(const nlmsghdr*)> cb) {
  constexpr int kAttempts = 8;
  std::string request(reinterpret_cast<const char*>(nlh), nlh->nlmsg_len);
  std::vector<std::string> messages;  // of the current attempt; handed to `cb` once the dump is complete
  for (int attempt = 1;; ++attempt) {
    auto* req = reinterpret_cast<nlmsghdr*>(request.data());
    if (attempt > 1) req->nlmsg_seq = NextSeq();  // late replies of the interrupted dump cannot match
    if (mnl_socket_sendto(nl_, req, req->nlmsg_len) < 0)
      return StatusFromErrno(errno, absl::StrCat(what, " (send)"));
    messages.clear();
    bool interrupted = false;
    absl::Status s = Receive(
        req->nlmsg_seq, what,
        [&](const nlmsghdr* m) {
          messages.emplace_back(reinterpret_cast<const char*>(m), m->nlmsg_len);
          return absl::OkStatus();
        },
        &interrupted);
    if (!s.ok()) return s;
    if (!interrupted) break;
    if (attempt == kAttempts)
      return absl::AbortedError(
          absl::StrCat(what, ": the dump was interrupted ", kAttempts, " times (the objects kept changing)"));
  }
  for (const std::string& m : messages) {
    if (absl::Status s = cb(reinterpret_cast<const nlmsghdr*>(m.data())); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace pnc::netns
