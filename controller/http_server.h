// A deliberately small HTTP/1.x server for /metrics, /healthz and /readyz.
//
// Why not Boost.Beast: three GET endpoints scraped every few seconds by Prometheus and the kubelet do not
// need an async framework; a ~150-line poll() loop on one thread is easy to audit, compiles in a second and
// adds no dependency to the controller. Limits: one request per connection (Connection: close), 8 KiB request
// head, 2 s to send it, 3 s to take the answer, at most 64 open connections. Connections are multiplexed, so
// a slow or malicious client never delays the kubelet's probes.
#ifndef PNC_CONTROLLER_HTTP_SERVER_H_
#define PNC_CONTROLLER_HTTP_SERVER_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace pnc::controller {

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& method, const std::string& path)>;
  // address: "host:port" or ":port" (all IPv4 interfaces); port 0 picks a free one.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, Handler handler);
  ~HttpServer();
  int port() const { return port_; }

 private:
  HttpServer(int listen_fd, int wake_fd, int port, Handler handler);
  struct Conn;
  void Loop();
  bool Step(Conn& c);
  std::string Respond(const std::string& request);
  int listen_fd_, wake_fd_, port_;
  Handler handler_;
  std::thread thread_;
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_HTTP_SERVER_H_
