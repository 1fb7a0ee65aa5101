// A tiny libcurl client for the fake API server's tests (testonly): one-shot requests and a watch stream
// reader.
#ifndef PNC_SIMULATOR_APISERVER_TEST_CLIENT_H_
#define PNC_SIMULATOR_APISERVER_TEST_CLIENT_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace pnc::sim::testing {

struct HttpResult {
  long code = 0;
  std::string body;
  std::string headers;  // raw header lines
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

struct ClientConfig {
  std::string base_url;  // http://127.0.0.1:port
  std::string token;
  std::string ca_pem;
};

HttpResult Request(const ClientConfig& cfg, const std::string& method, const std::string& path,
                   const std::string& body = "", const std::string& content_type = "application/json");

// Reads a watch stream on a thread; lines are JSON events.
class WatchReader {
 public:
  WatchReader(const ClientConfig& cfg, const std::string& path);
  ~WatchReader();
  // Next event, or nullopt on timeout / end of stream.
  std::optional<nlohmann::json> Next(absl::Duration timeout);
  bool Ended(absl::Duration timeout);  // true once the server ended the stream (within timeout)
  long code();

 private:
  static size_t OnData(char* p, size_t size, size_t n, void* self);
  absl::Mutex mu_;
  std::string partial_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  long code_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace pnc::sim::testing

#endif  // PNC_SIMULATOR_APISERVER_TEST_CLIENT_H_
