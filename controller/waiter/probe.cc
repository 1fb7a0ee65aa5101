#include "controller/waiter/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

}  // namespace

ProbeResult RunProbe(const rules::ProbeSpec& spec, int timeout_ms) {
  ProbeResult r;
  const std::string target = rules::FormatProbeSpec(spec);
  if (spec.none) {
    r.message = "probe: no target";
    return r;
  }
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
  if (::bind(lis.fd, reinterpret_cast<sockaddr*>(&any.ss), any.len) != 0 || ::listen(lis.fd, 8) != 0) {
    r.message = Err("probe: cannot listen on the capture port " + std::to_string(spec.capture_port) +
                    " (is the proxy already running? the waiter must be the first init container)");
    return r;
  }
  Fd cli;
  cli.fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (cli.fd < 0) {
    r.message = Err("probe: socket");
    return r;
  }
  Endpoint dst = Make(spec, false, spec.port);
  if (::connect(cli.fd, reinterpret_cast<sockaddr*>(&dst.ss), dst.len) != 0 && errno != EINPROGRESS) {
    r.message = Err("probe: connect to " + rules::ProbeAddressString(spec) + " failed (" + target +
                    "), so this connection cannot be redirected");
    return r;
  }
  Endpoint client;
  client.len = sizeof client.ss;
  if (getsockname(cli.fd, reinterpret_cast<sockaddr*>(&client.ss), &client.len) != 0) {
    r.message = Err("probe: getsockname");
    return r;
  }
  const int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      r.message = "probe: the connection to " + rules::ProbeAddressString(spec) + ":" +
                  std::to_string(spec.port) + " did not arrive on the capture port " +
                  std::to_string(spec.capture_port) + " within " + std::to_string(timeout_ms) +
                  " ms: outbound traffic is not redirected (yet)";
      return r;
    }
    pollfd p{lis.fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    Fd acc;
    Endpoint peer;
    peer.len = sizeof peer.ss;
    acc.fd = ::accept4(lis.fd, reinterpret_cast<sockaddr*>(&peer.ss), &peer.len, SOCK_CLOEXEC);
    if (acc.fd < 0) continue;
    if (!(peer == client)) continue;  // not our connection
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
      r.message = "probe: our connection arrived on the capture port but was not redirected from " +
                  rules::ProbeAddressString(spec) + ":" + std::to_string(spec.port);
      return r;
    }
    r.ok = true;
    r.message = "probe: connection to " + rules::ProbeAddressString(spec) + ":" + std::to_string(spec.port) +
                " was redirected to port " + std::to_string(spec.capture_port);
    return r;
  }
}

}  // namespace pnc::waiter
