#include "controller/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace pnc::controller {
namespace {

const char* Reason(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, Handler handler) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("http: address must be host:port");
  std::string host = address.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError("http: bad port");
  }
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = family = AF_INET;
    a->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("http: host must be an IP address: ", host));
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("http: bind/listen ", address, ": ", strerror(e)));
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(fd);
    return absl::InternalError("eventfd failed");
  }
  return std::unique_ptr<HttpServer>(new HttpServer(fd, wake, bound, std::move(handler)));
}

HttpServer::HttpServer(int listen_fd, int wake_fd, int port, Handler handler)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port), handler_(std::move(handler)) {
  thread_ = std::thread([this] { Loop(); });
}

HttpServer::~HttpServer() {
  uint64_t one = 1;
  ssize_t unused = ::write(wake_fd_, &one, sizeof one);
  (void)unused;
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

namespace {

constexpr size_t kMaxConnections = 64;  // beyond this, new connections are closed at once
constexpr size_t kMaxRequestHead = 8192;
constexpr absl::Duration kReadTimeout = absl::Seconds(2);   // to send the request head
constexpr absl::Duration kWriteTimeout = absl::Seconds(3);  // to take the response

}  // namespace

struct HttpServer::Conn {
  int fd;
  absl::Time deadline;
  std::string in;
  std::string out;  // non-empty once the response is ready
  size_t sent = 0;
};

// One thread, every connection multiplexed in one poll(): a client that dribbles its request (or never reads
// the answer) holds only its own slot until its deadline, so the kubelet's probes are never queued behind it.
void HttpServer::Loop() {
  std::vector<Conn> conns;
  std::vector<pollfd> fds;
  while (true) {
    absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    fds.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    for (const Conn& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
      next = std::min(next, c.deadline);
    }
    int timeout = next == absl::InfiniteFuture()
                      ? -1
                      : static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(next - now) + 1));
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    now = absl::Now();
    // Connections first (fds[i + 2] belongs to conns[i]); new ones are appended after.
    std::vector<Conn> keep;
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      if (fds[i + 2].revents != 0 && Step(c) && now < c.deadline) {
        keep.push_back(std::move(c));
      } else if (fds[i + 2].revents == 0 && now < c.deadline) {
        keep.push_back(std::move(c));
      } else {
        ::close(c.fd);
      }
    }
    conns = std::move(keep);
    if (fds[0].revents & POLLIN) {
      while (true) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        if (conns.size() >= kMaxConnections) {
          ::close(c);
          continue;
        }
        conns.push_back(Conn{c, now + kReadTimeout});
      }
    }
  }
  for (Conn& c : conns) ::close(c.fd);
}

// Advances one ready connection; false when it is finished (answered, failed or malformed).
bool HttpServer::Step(Conn& c) {
  if (c.out.empty()) {
    char buf[2048];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) return false;
    c.in.append(buf, static_cast<size_t>(n));
    if (c.in.find("\r\n\r\n") == std::string::npos && c.in.find("\n\n") == std::string::npos) {
      return c.in.size() <= kMaxRequestHead;
    }
    c.out = Respond(c.in);
    c.deadline = absl::Now() + kWriteTimeout;
  }
  ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) return false;
  c.sent += static_cast<size_t>(n);
  return c.sent < c.out.size();
}

std::string HttpServer::Respond(const std::string& req) {
  HttpResponse resp;
  size_t sp1 = req.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : req.find(' ', sp1 + 1);
  std::string method;
  if (sp2 == std::string::npos) {
    resp = {400, "text/plain", "bad request\n"};
  } else {
    method = req.substr(0, sp1);
    std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
    if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
    if (method != "GET" && method != "HEAD") {
      resp = {405, "text/plain", "method not allowed\n"};
    } else {
      resp = handler_(method, path);
    }
  }
  std::string out =
      absl::StrCat("HTTP/1.1 ", resp.code, " ", Reason(resp.code), "\r\nContent-Type: ", resp.content_type,
                   "\r\nContent-Length: ", resp.body.size(), "\r\nConnection: close\r\n\r\n");
  if (method != "HEAD") out += resp.body;
  return out;
}

}  // namespace pnc::controller
