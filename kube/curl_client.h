// CurlClient: Client over libcurl (HTTP/1.1 and HTTP/2 over TLS, streaming watches) and nlohmann/json.
//
// Thread-safe: each call borrows an easy handle from a small pool (keeping its TLS connection warm); a watch
// holds one handle for its whole life. Cancellation of a watch is noticed within ~1 s (libcurl's progress
// callback).
#ifndef PNC_KUBE_CURL_CLIENT_H_
#define PNC_KUBE_CURL_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "kube/client.h"
#include "kube/config.h"

namespace pnc::kube {

class CurlClient : public Client {
 public:
  struct Options {
    absl::Duration connect_timeout = absl::Seconds(10);
    absl::Duration request_timeout =
        absl::Seconds(30);  // list/patch/create; watches use timeoutSeconds instead
    std::string user_agent = "istio-pod-network-controller/0.1";
  };

  // Validates the config (a server URL, readable CA/cert files) without contacting the server.
  static absl::StatusOr<std::unique_ptr<CurlClient>> Create(ClientConfig config, Options options);
  static absl::StatusOr<std::unique_ptr<CurlClient>> Create(ClientConfig config) {
    return Create(std::move(config), Options());
  }
  ~CurlClient() override;

  absl::StatusOr<ObjectList<Pod>> ListPods(const ListOptions& opts) override;
  absl::Status WatchPods(const WatchOptions& opts, const WatchHandler<Pod>& handler,
                         const std::atomic<bool>& cancel) override;
  absl::StatusOr<ObjectList<Namespace>> ListNamespaces(const ListOptions& opts) override;
  absl::Status WatchNamespaces(const WatchOptions& opts, const WatchHandler<Namespace>& handler,
                               const std::atomic<bool>& cancel) override;
  absl::Status PatchPodStatusAnnotations(const std::string& namespace_name, const std::string& name,
                                         const std::string& uid,
                                         const std::map<std::string, std::string>& annotations,
                                         std::string* resource_version = nullptr) override;
  absl::Status CreateEvent(const EventRecord& event) override;

  struct Response {
    long code = 0;
    std::string body;
  };
  // Escape hatch for tests and diagnostics: one request, path relative to the server ("/api/v1/...").
  absl::StatusOr<Response> Do(const char* method, const std::string& path, const std::string& body,
                              const char* content_type);

 private:
  CurlClient(ClientConfig config, Options options);
  void* Acquire();           // CURL*
  void Release(void* easy);  // back to the pool
  absl::Status Configure(void* easy, const std::string& url, void* headers_out /* curl_slist** */,
                         const char* content_type);
  // idle_seconds: abort when no byte arrived for this long (the server should have closed the watch by then).
  absl::Status StreamLines(const std::string& path,
                           const std::function<absl::Status(std::string_view)>& on_line,
                           const std::atomic<bool>& cancel, long idle_seconds);
  template <typename T>
  absl::StatusOr<ObjectList<T>> ListAll(const std::string& base_path, const ListOptions& opts,
                                        absl::StatusOr<ObjectList<T>> (*decode)(std::string_view));
  template <typename T>
  absl::Status WatchAny(const std::string& base_path, const WatchOptions& opts,
                        const WatchHandler<T>& handler, const std::atomic<bool>& cancel,
                        absl::StatusOr<WatchEvent<T>> (*decode)(std::string_view));

  const ClientConfig config_;
  const Options options_;
  TokenSource tokens_;
  absl::Mutex mu_;
  std::vector<void*> pool_ ABSL_GUARDED_BY(mu_);
};

// Percent-encodes everything outside RFC 3986 "unreserved" (for query values and path segments).
std::string UrlEscape(std::string_view s);

}  // namespace pnc::kube

#endif  // PNC_KUBE_CURL_CLIENT_H_
