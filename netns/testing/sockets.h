// Small blocking-with-timeout socket helpers for redirection tests and the simulator's stand-in proxy. Every
// socket is created in the network namespace of the CALLING THREAD (use inside RunInNetns / RunAs) with the
// calling thread's credentials; the returned fds can then be used from any thread. Addresses are numeric text
// ("10.250.0.6", "fd00::2").
#ifndef PNC_NETNS_TESTING_SOCKETS_H_
#define PNC_NETNS_TESTING_SOCKETS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pnc::netns::testing {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct Endpoint {
  std::string ip;
  uint16_t port = 0;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  std::string ToString() const;  // "10.0.0.1:80" / "[fd00::1]:80"
};

// Listening TCP socket on ip:port (ip "0.0.0.0" or "::" for any; "::" is IPv6-only). `transparent` sets
// IP_TRANSPARENT / IPV6_TRANSPARENT (what a TPROXY listener needs; requires CAP_NET_ADMIN in the netns).
absl::StatusOr<UniqueFd> TcpListen(const std::string& ip, uint16_t port, bool transparent = false);

// Connects within `timeout`. DeadlineExceeded on timeout, Unavailable on refusal/unreachable.
absl::StatusOr<UniqueFd> TcpConnect(const std::string& ip, uint16_t port, absl::Duration timeout);

// Accepts one connection within `timeout`; DeadlineExceeded if none arrives.
absl::StatusOr<UniqueFd> Accept(int listener, absl::Duration timeout);

// Whether a connection is waiting on `listener` right now (poll with zero timeout).
bool HasPendingConnection(int listener);

absl::StatusOr<Endpoint> LocalEndpoint(int fd);
absl::StatusOr<Endpoint> PeerEndpoint(int fd);
// The pre-NAT destination of a REDIRECTed connection: SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6).
absl::StatusOr<Endpoint> OriginalDst(int fd);

// UDP socket bound to ip:port.
absl::StatusOr<UniqueFd> UdpBind(const std::string& ip, uint16_t port);
// Sends one datagram from a fresh unbound socket.
absl::Status UdpSendTo(const std::string& ip, uint16_t port, const std::string& payload);
// Receives one datagram within `timeout`; DeadlineExceeded if none.
absl::StatusOr<std::string> UdpReceive(int fd, absl::Duration timeout, Endpoint* from = nullptr);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_SOCKETS_H_
