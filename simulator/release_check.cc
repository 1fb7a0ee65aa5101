#include "simulator/release_check.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "netns/executor.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sockets.h"

namespace pnc::sim {
namespace {

namespace nt = pnc::netns::testing;

CheckResult Pass(std::string detail) { return {CheckVerdict::kPassed, std::move(detail)}; }
CheckResult Fail(std::string detail) { return {CheckVerdict::kFailed, std::move(detail)}; }

// A connection made by the check, and the bytes it sent first: how the check recognizes it when accepted.
// Not by its source address: when a redirect's reply tuple clashes with a connection conntrack still holds
// (e.g. the waiter's probe from the same source port, now in TIME_WAIT), NAT moves the source port, so the
// listener sees another port than the client's getsockname.
struct OwnConnection {
  nt::UniqueFd fd;
  std::string nonce;
};

// Connects from `ns` as uid/gid (nullopt: the calling credentials, used for the client namespace) and sends
// a fresh nonce.
absl::StatusOr<OwnConnection> ConnectFrom(const netns::NetnsHandle& ns,
                                          std::optional<std::pair<uid_t, gid_t>> as, const std::string& ip,
                                          uint16_t port, absl::Duration timeout) {
  OwnConnection out;
  absl::BitGen gen;
  out.nonce = absl::StrCat("pnc-release-check-", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16),
                           absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16), "\n");
  auto fn = [&]() -> absl::Status {
    auto c = nt::TcpConnect(ip, port, timeout);
    if (!c.ok()) return c.status();
    out.fd = std::move(*c);
    return absl::OkStatus();
  };
  absl::Status s = as ? nt::RunAs(as->first, as->second, &ns, fn) : netns::RunInNetns(ns, fn);
  if (!s.ok()) return s;
  if (::send(out.fd.get(), out.nonce.data(), out.nonce.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(out.nonce.size()))
    return absl::InternalError("could not send the check's nonce");
  return out;
}

// Whether the accepted connection carries `nonce` first (what the client sent right after connecting).
bool CarriesNonce(int accepted, const std::string& nonce, absl::Duration wait) {
  std::string got;
  const absl::Time deadline = absl::Now() + wait;
  char buf[64];
  while (got.size() < nonce.size()) {
    pollfd p{accepted, POLLIN, 0};
    const int ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (::poll(&p, 1, ms) <= 0) return false;
    const ssize_t n = ::recv(accepted, buf, std::min(sizeof buf, nonce.size() - got.size()), 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
  return got == nonce;
}

// Notes, in `foreign`, an accepted connection that is not the check's own (anything else in the pod that
// connected to a captured destination: its traffic was redirected too, so it says nothing against the check).
void NoteForeign(int accepted, std::string& foreign) {
  auto peer = nt::PeerEndpoint(accepted);
  auto dst = nt::OriginalDst(accepted);
  absl::StrAppend(&foreign, foreign.empty() ? "" : ", ", "a connection from ",
                  peer.ok() ? peer->ToString() : absl::StrCat("? (", peer.status().message(), ")"),
                  " (not ours; original destination ",
                  dst.ok() ? dst->ToString() : std::string(dst.status().message()), ")");
}

// Accepts the connection `own` made on `listener` and returns its SO_ORIGINAL_DST. Other connections queued
// on the listener first are accepted, closed and noted in `foreign`; only ours decides.
absl::StatusOr<nt::Endpoint> AcceptOriginalDst(int listener, const OwnConnection& own, absl::Duration timeout,
                                               std::string& foreign) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    auto accepted = nt::Accept(listener, std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (!accepted.ok()) return accepted.status();
    if (CarriesNonce(accepted->get(), own.nonce, absl::Milliseconds(200)))
      return nt::OriginalDst(accepted->get());
    NoteForeign(accepted->get(), foreign);  // another socket's, or one reset before we got to it
  }
}

// Accepts every connection queued on `listener` now. True when one of them is `own` (nullptr: none is);
// the others are noted in `foreign`.
bool TakeQueued(int listener, const OwnConnection* own, std::string& foreign) {
  bool found = false;
  while (nt::HasPendingConnection(listener)) {
    auto accepted = nt::Accept(listener, absl::ZeroDuration());
    if (!accepted.ok()) break;
    if (own != nullptr && CarriesNonce(accepted->get(), own->nonce, absl::Milliseconds(200))) {
      found = true;
    } else {
      NoteForeign(accepted->get(), foreign);
    }
  }
  return found;
}

std::string WithForeign(std::string detail, const std::string& foreign) {
  if (foreign.empty()) return detail;
  return absl::StrCat(detail, "; ", foreign);
}

std::string NotRedirected(const absl::Status& s) {
  if (absl::IsDeadlineExceeded(s)) return "connect timed out: not redirected";
  return absl::StrCat("connect failed: ", s.message());
}

CheckResult Outbound(const ReleaseCheckOptions& o, int capture15001) {
  const nt::Endpoint want{o.test_net_ip, o.test_net_port};
  auto conn = ConnectFrom(*o.pod, std::make_pair(o.app_uid, static_cast<gid_t>(o.app_uid)), want.ip,
                          want.port, o.timeout);
  if (!conn.ok())
    return Fail(absl::StrCat("uid ", o.app_uid, " -> ", want.ToString(), ": ", NotRedirected(conn.status())));
  std::string foreign;
  auto dst = AcceptOriginalDst(capture15001, *conn, o.timeout, foreign);
  if (!dst.ok())
    return Fail(WithForeign(
        absl::StrCat("connected to ", want.ToString(), " but not via 15001: ", dst.status().message()),
        foreign));
  if (!(*dst == want))
    return Fail(
        WithForeign(absl::StrCat("landed on 15001 with original destination ", dst->ToString()), foreign));
  return Pass(WithForeign(absl::StrCat("uid ", o.app_uid, " -> ", want.ToString(),
                                       " landed on 15001, SO_ORIGINAL_DST ", dst->ToString()),
                          foreign));
}

CheckResult Inbound(const ReleaseCheckOptions& o, int capture15006) {
  const nt::Endpoint want{o.pod_ip, o.app_port};
  auto conn = ConnectFrom(*o.client, std::nullopt, want.ip, want.port, o.timeout);
  if (!conn.ok())
    return Fail(absl::StrCat("client -> ", want.ToString(), ": ", NotRedirected(conn.status())));
  std::string foreign;
  auto dst = AcceptOriginalDst(capture15006, *conn, o.timeout, foreign);
  if (!dst.ok())
    return Fail(WithForeign(
        absl::StrCat("client connected to ", want.ToString(), " but not via 15006: ", dst.status().message()),
        foreign));
  if (!(*dst == want))
    return Fail(
        WithForeign(absl::StrCat("landed on 15006 with original destination ", dst->ToString()), foreign));
  return Pass(WithForeign(
      absl::StrCat("client -> ", want.ToString(), " landed on 15006, SO_ORIGINAL_DST ", dst->ToString()),
      foreign));
}

CheckResult Bypass(const ReleaseCheckOptions& o, int capture15001) {
  nt::UniqueFd target;
  absl::Status s = netns::RunInNetns(*o.client, [&]() -> absl::Status {
    auto l = nt::TcpListen(o.client_ip, o.bypass_port);
    if (!l.ok()) return l.status();
    target = std::move(*l);
    return absl::OkStatus();
  });
  if (!s.ok()) return Fail(absl::StrCat("bypass target listener: ", s.ToString()));
  const nt::Endpoint dest{o.client_ip, o.bypass_port};
  std::string ok, foreign;
  for (auto [uid, gid] : {std::pair<uid_t, gid_t>{o.proxy_uid, o.proxy_gid}, {o.app_uid, o.proxy_gid}}) {
    std::string who = absl::StrCat("uid ", uid, " gid ", gid);
    TakeQueued(capture15001, nullptr, foreign);  // whatever else is queued there, before ours
    auto conn = ConnectFrom(*o.pod, std::make_pair(uid, gid), dest.ip, dest.port, o.timeout);
    if (!conn.ok())
      return Fail(
          WithForeign(absl::StrCat(who, " -> ", dest.ToString(), ": ", conn.status().message()), foreign));
    if (TakeQueued(capture15001, &*conn, foreign)) {
      return Fail(WithForeign(absl::StrCat(who, " -> ", dest.ToString(), " was captured (landed on 15001)"),
                              foreign));
    }
    auto accepted = nt::Accept(target.get(), o.timeout);
    if (!accepted.ok())
      return Fail(WithForeign(
          absl::StrCat(who, " -> ", dest.ToString(), " never arrived: ", accepted.status().message()),
          foreign));
    absl::StrAppend(&ok, ok.empty() ? "" : ", ", who);
  }
  return Pass(WithForeign(absl::StrCat(ok, " reached ", dest.ToString(), " directly"), foreign));
}

}  // namespace

const char* CheckVerdictName(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::kPassed:
      return "passed";
    case CheckVerdict::kFailed:
      return "FAILED";
    case CheckVerdict::kNotRun:
      break;
  }
  return "not run";
}

bool ReleaseCheck::passed() const {
  return outbound.verdict == CheckVerdict::kPassed && inbound.verdict == CheckVerdict::kPassed &&
         bypass.verdict == CheckVerdict::kPassed;
}

std::string ReleaseCheck::Summary() const {
  auto one = [](const char* name, const CheckResult& r) {
    return absl::StrCat(name, " ", CheckVerdictName(r.verdict), r.detail.empty() ? "" : " (", r.detail,
                        r.detail.empty() ? "" : ")");
  };
  return absl::StrCat(one("outbound", outbound), "; ", one("inbound", inbound), "; ", one("bypass", bypass));
}

absl::StatusOr<CaptureListeners> OpenCaptureListeners(const netns::NetnsHandle& pod, uid_t proxy_uid,
                                                      gid_t proxy_gid) {
  CaptureListeners out;
  absl::Status s = nt::RunAs(proxy_uid, proxy_gid, &pod, [&]() -> absl::Status {
    auto l1 = nt::TcpListen("0.0.0.0", 15001);
    if (!l1.ok()) return l1.status();
    auto l2 = nt::TcpListen("0.0.0.0", 15006);
    if (!l2.ok()) return l2.status();
    out.outbound = std::move(*l1);
    out.inbound = std::move(*l2);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

ReleaseCheck CheckInterceptionAtRelease(const ReleaseCheckOptions& o, const CaptureListeners& listeners) {
  ReleaseCheck out;
  if (!listeners.outbound.valid() || !listeners.inbound.valid()) {
    out.outbound = out.inbound = out.bypass = Fail("no capture listeners");
    return out;
  }
  out.outbound = Outbound(o, listeners.outbound.get());
  out.inbound = Inbound(o, listeners.inbound.get());
  out.bypass = Bypass(o, listeners.outbound.get());
  // Leave the sidecar nothing of ours (e.g. a captured bypass connection).
  for (int fd : {listeners.outbound.get(), listeners.inbound.get()}) {
    while (nt::HasPendingConnection(fd)) (void)nt::Accept(fd, absl::ZeroDuration());
  }
  return out;
}

}  // namespace pnc::sim
