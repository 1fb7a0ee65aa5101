// TestHttpServer: a tiny HTTP/1.1 server on 127.0.0.1 for tests of the libcurl client. One request per
// connection (responses say "Connection: close"); each connection runs the test's handler on its own thread,
// which writes the response by hand: plain bodies, chunked streams split anywhere, abrupt disconnects.
#ifndef PNC_KUBE_TEST_HTTP_SERVER_H_
#define PNC_KUBE_TEST_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace pnc::kube::testing {

struct HttpRequest {
  std::string method;
  std::string target;                          // path + query, as sent
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class HttpConn {
 public:
  explicit HttpConn(int fd) : fd_(fd) {}
  bool Send(const std::string& bytes);
  bool Respond(int code, const std::string& body, const std::string& content_type = "application/json");
  bool StartChunked(int code = 200);
  bool Chunk(const std::string& data);  // one HTTP chunk (skipped if empty)
  bool EndChunked();
  // Waits until the client closes its side (or timeout); true if it did.
  bool WaitPeerClosed(int timeout_ms);

 private:
  int fd_;
};

class TestHttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpConn&)>;
  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<HttpRequest> requests() const;
  bool stopping() const { return stopping_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  std::vector<std::thread> conns_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::kube::testing

#endif  // PNC_KUBE_TEST_HTTP_SERVER_H_
