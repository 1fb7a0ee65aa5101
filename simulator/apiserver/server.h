// ApiServer: the HTTP(S) front of the fake Kubernetes API server (Boost.Beast on one or a few Asio threads).
//
// Serves the REST subset that kubectl, client-go style reflectors and this project's kube/ client use:
//   GET  /version /api /apis /api/v1 /healthz /readyz /livez
//   GET  /api/v1/{namespaces,nodes,pods,events}               list (or watch with ?watch=true / the /watch/
//   prefix) GET|POST /api/v1/namespaces/{ns}/{pods,events}            list, watch, create
//   GET|PUT|PATCH|DELETE .../{name} and .../{name}/status     get, replace, patch, delete, status subresource
// Query parameters: resourceVersion, limit, continue, labelSelector, fieldSelector, watch,
// allowWatchBookmarks, timeoutSeconds. Errors are metav1.Status objects with the real server's reasons and
// codes. Watches are chunked streams of `{"type":...,"object":...}` lines; each event is encoded once (see
// Store). A watch from a resourceVersion outside the history window answers 200 with one ERROR event (410
// Expired) like the real watch cache. Periodic BOOKMARK events go to watches that asked for them. kubectl
// table output (Accept: ...;as=Table) is served for pods, namespaces, nodes and events.
#ifndef PNC_SIMULATOR_APISERVER_SERVER_H_
#define PNC_SIMULATOR_APISERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "simulator/apiserver/store.h"

namespace pnc::sim {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  bool tls = false;                    // serve HTTPS with a generated self-signed certificate
  std::string token;                   // if set, every request needs "Authorization: Bearer <token>"
  int threads = 1;                     // Asio threads
  absl::Duration bookmark_interval = absl::Seconds(5);
  size_t max_queued_events = 200000;  // per watch; a watcher that falls further behind is disconnected
};

class ApiServer {
 public:
  // Binds, starts the threads and returns; `store` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(Store* store, ServerOptions options);
  ~ApiServer();  // Stop()

  int port() const;
  std::string url() const;     // http(s)://127.0.0.1:<port>
  std::string ca_pem() const;  // empty without TLS
  // A kubeconfig for this server (context "simulator", namespace default, CA data and token when set).
  std::string Kubeconfig() const;

  // Fault hooks.
  void FailNextRequests(int count,
                        int http_code);      // 429 (with Retry-After: 1) or 500 for the next `count` requests
  void SetEventDelay(absl::Duration delay);  // every watch event reaches clients this much later
  void DropAllWatches();                     // = store->DropAllWatches()

  uint64_t requests() const;
  void Stop();

  class Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_SERVER_H_
