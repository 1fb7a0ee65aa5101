#include "controller/waiter/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "controller/waiter/fd.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80  // linux/netfilter_ipv4.h
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // linux/netfilter_ipv6/ip6_tables.h
#endif

namespace pnc::waiter {
namespace {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string Err(const std::string& what) { return what + ": " + std::strerror(errno); }

// An address + port of either family, compared by value.
struct Endpoint {
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool operator==(const Endpoint& o) const {
    if (ss.ss_family != o.ss.ss_family) return false;
    if (ss.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      const auto* b = reinterpret_cast<const sockaddr_in*>(&o.ss);
      return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&o.ss);
    return a->sin6_port == b->sin6_port && std::memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
  }
};

// The address alone (NAT may move the port, never the address of a redirected connection's source).
bool SameAddress(const Endpoint& a, const Endpoint& b) {
  if (a.ss.ss_family != b.ss.ss_family) return false;
  if (a.ss.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.ss)->sin_addr.s_addr;
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr,
                     &reinterpret_cast<const sockaddr_in6*>(&b.ss)->sin6_addr, 16) == 0;
}

uint16_t Port(const Endpoint& e) {
  return ntohs(e.ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&e.ss)->sin_port
                                         : reinterpret_cast<const sockaddr_in6*>(&e.ss)->sin6_port);
}

Endpoint Make(const rules::ProbeSpec& s, bool any, uint16_t port) {
  Endpoint e;
  if (s.ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&e.ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (!any) std::memcpy(&a->sin6_addr, s.address.data(), 16);
    e.len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&e.ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (!any) std::memcpy(&a->sin_addr, s.address.data(), 4);
    e.len = sizeof(sockaddr_in);
  }
  return e;
}

// How long an accepted connection may take to show the nonce: ours sends it right after connecting.
constexpr int64_t kNonceWaitMs = 100;

// Whether the connection `fd` (non-blocking) delivers exactly `nonce` first, waiting until `deadline` at
// most.
bool ReadNonce(int fd, const unsigned char (&nonce)[16], int64_t deadline) {
  unsigned char got[16];
  size_t have = 0;
  while (have < sizeof got) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(fd, got + have, sizeof got - have, 0);
    if (n == 0) return false;  // closed before sending it
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    have += static_cast<size_t>(n);
  }
  return std::memcmp(got, nonce, sizeof got) == 0;
}

}  // namespace

ProbeResult RunProbe(const rules::ProbeSpec& spec, const ProbeOptions& options) {
  ProbeResult r;
  const std::string target = rules::FormatProbeSpec(spec);
  if (spec.none) {
    r.message = "probe: no target";
    return r;
  }
  const std::string where = rules::ProbeAddressString(spec) + ":" + std::to_string(spec.port);
  const int family = spec.ipv6 ? AF_INET6 : AF_INET;
  Fd lis;
  lis.fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lis.fd < 0) {
    r.message = Err("probe: socket");
    return r;
  }
  int one = 1;
  setsockopt(lis.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (spec.ipv6) setsockopt(lis.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  Endpoint any = Make(spec, true, spec.capture_port);
  if (::bind(lis.fd, reinterpret_cast<sockaddr*>(&any.ss), any.len) != 0 || ::listen(lis.fd, 64) != 0) {
    r.message = Err("probe: cannot listen on the capture port " + std::to_string(spec.capture_port) +
                    " (is the proxy already running? the waiter must be the first init container)");
    return r;
  }
  // What only this attempt's client knows: it sends these bytes first, and the accepted connection that
  // carries them is ours whatever source port NAT gave it.
  unsigned char nonce[16];
  if (::getrandom(nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce)) {
    r.message = Err("probe: getrandom");
    return r;
  }
  Fd cli;
  cli.fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (cli.fd < 0) {
    r.message = Err("probe: socket");
    return r;
  }
  if (options.client_port != 0) {
    setsockopt(cli.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    Endpoint local = Make(spec, true, options.client_port);
    if (::bind(cli.fd, reinterpret_cast<sockaddr*>(&local.ss), local.len) != 0) {
      r.message = Err("probe: bind the client to port " + std::to_string(options.client_port));
      return r;
    }
  }
  Endpoint dst = Make(spec, false, spec.port);
  if (::connect(cli.fd, reinterpret_cast<sockaddr*>(&dst.ss), dst.len) != 0 && errno != EINPROGRESS) {
    r.message = Err("probe: connect to " + rules::ProbeAddressString(spec) + " failed (" + target +
                    "), so this connection cannot be redirected");
    return r;
  }
  const int64_t deadline = NowMs() + options.timeout_ms;
  bool sent = false;
  Endpoint client;  // the client's own address once connected
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      r.message = "probe: the connection to " + where + " did not arrive on the capture port " +
                  std::to_string(spec.capture_port) + " within " + std::to_string(options.timeout_ms) +
                  " ms: outbound traffic is not redirected (yet)";
      return r;
    }
    if (!sent) {  // first our client's connect: to the capture port when redirected, else nowhere
      pollfd p{cli.fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(cli.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        errno = err;
        r.message = Err("probe: the connection to " + where + " failed, so it was not redirected");
        return r;
      }
      if (::send(cli.fd, nonce, sizeof nonce, MSG_NOSIGNAL | MSG_DONTWAIT) !=
          static_cast<ssize_t>(sizeof nonce)) {
        r.message = Err("probe: send on the connection to " + where);
        return r;
      }
      client.len = sizeof client.ss;
      if (getsockname(cli.fd, reinterpret_cast<sockaddr*>(&client.ss), &client.len) != 0) {
        r.message = Err("probe: getsockname");
        return r;
      }
      sent = true;
      continue;
    }
    // Then the connection that shows our nonce; any other gets a short while to show it and is dropped.
    pollfd p{lis.fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    Fd acc;
    Endpoint peer;
    peer.len = sizeof peer.ss;
    acc.fd =
        ::accept4(lis.fd, reinterpret_cast<sockaddr*>(&peer.ss), &peer.len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (acc.fd < 0) continue;
    if (!SameAddress(peer, client)) continue;  // from elsewhere: not ours, and no wait for it
    if (!ReadNonce(acc.fd, nonce, std::min(deadline, NowMs() + kNonceWaitMs))) continue;  // not ours
    r.arrived_from_port = Port(peer);
    Endpoint orig, local;
    orig.len = sizeof orig.ss;
    local.len = sizeof local.ss;
    bool have = spec.ipv6 ? getsockopt(acc.fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig.ss, &orig.len) == 0
                          : getsockopt(acc.fd, SOL_IP, SO_ORIGINAL_DST, &orig.ss, &orig.len) == 0;
    if (!have || getsockname(acc.fd, reinterpret_cast<sockaddr*>(&local.ss), &local.len) != 0) {
      r.message = Err("probe: our connection arrived on the capture port without an original destination");
      return r;
    }
    if (orig == local || !(orig == dst)) {
      r.message = "probe: our connection arrived on the capture port but was not redirected from " + where;
      return r;
    }
    r.ok = true;
    r.message =
        "probe: connection to " + where + " was redirected to port " + std::to_string(spec.capture_port);
    return r;
  }
}

}  // namespace pnc::waiter
