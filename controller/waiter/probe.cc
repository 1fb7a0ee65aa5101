#include "controller/waiter/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80  // linux/netfilter_ipv4.h
#endif

namespace pnc::waiter {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string Err(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

ProbeResult RunProbe(const ProbeOptions& o) {
  ProbeResult r;
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(o.target_port);
  if (inet_pton(AF_INET, o.target_ip.c_str(), &target.sin_addr) != 1) {
    r.message = "probe: bad target address " + o.target_ip;
    return r;
  }
  Fd lis;
  lis.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lis.fd < 0) {
    r.message = Err("probe: socket");
    return r;
  }
  int one = 1;
  setsockopt(lis.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(o.capture_port);
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(lis.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(lis.fd, 4) != 0) {
    r.message = Err("probe: cannot listen on the capture port (is the proxy already running?)");
    return r;
  }
  Fd cli;
  cli.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (cli.fd < 0) {
    r.message = Err("probe: socket");
    return r;
  }
  if (::connect(cli.fd, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0 && errno != EINPROGRESS) {
    r.message = Err("probe: connect to the TEST-NET address failed, so traffic is not redirected");
    return r;
  }
  const int64_t deadline = NowMs() + o.timeout_ms;
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      r.message = "probe: no redirected connection arrived on port " + std::to_string(o.capture_port) +
                  " within " + std::to_string(o.timeout_ms) + " ms: outbound redirection is not active";
      return r;
    }
    pollfd p{lis.fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    Fd acc;
    acc.fd = ::accept4(lis.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (acc.fd < 0) continue;
    sockaddr_in orig{};
    socklen_t len = sizeof orig;
    if (getsockopt(acc.fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) != 0) {
      continue;  // not a redirected connection (someone connected to 15001 directly): keep waiting
    }
    if (orig.sin_addr.s_addr == target.sin_addr.s_addr && orig.sin_port == target.sin_port) {
      r.ok = true;
      r.message = "probe: connection to " + o.target_ip + ":" + std::to_string(o.target_port) +
                  " was redirected to port " + std::to_string(o.capture_port);
      return r;
    }
  }
}

}  // namespace pnc::waiter
