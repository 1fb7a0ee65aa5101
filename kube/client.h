// Client: the subset of the Kubernetes API the controller uses. CurlClient (curl_client.h) talks HTTP;
// FakeClient (fake_client.h) is an in-memory stand-in for controller tests.
//
// Error mapping (HTTP -> absl), shared by every implementation:
//   404 NotFound, 409 Aborted (conflict / UID precondition failed), 410 OutOfRange (resourceVersion too old:
//   relist), 401 Unauthenticated, 403 PermissionDenied, 400/422 InvalidArgument, 429/5xx and network errors
//   Unavailable, timeouts DeadlineExceeded, malformed responses DataLoss. Messages never contain the bearer
//   token.
#ifndef PNC_KUBE_CLIENT_H_
#define PNC_KUBE_CLIENT_H_

#include <atomic>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kube/types.h"

namespace pnc::kube {

struct ListOptions {
  std::string field_selector;  // e.g. "spec.nodeName=node-1"
  int64_t page_size = 500;     // the client follows `continue` tokens and returns the whole list
  // "" = most recent (quorum read from etcd). "0" = any version, served from the API server's watch cache:
  // much cheaper for a field-selected list (etcd cannot filter by spec.nodeName), but may be slightly stale,
  // which the following watch corrects. The server ignores `limit` for "0" and answers in one page.
  std::string resource_version;
};

struct WatchOptions {
  std::string field_selector;
  std::string resource_version;  // from the list or the last event/bookmark
  int timeout_seconds = 300;     // server closes the watch after this (with jitter applied by the caller)
  bool allow_bookmarks = true;
};

// A Warning Event about a pod (events.k8s.io semantics through the core/v1 API).
struct EventRecord {
  std::string namespace_name;
  std::string pod_name;
  std::string pod_uid;
  std::string reason;   // CamelCase, e.g. "InvalidAnnotation"
  std::string message;  // human-readable, truncated by the client to 1 KiB
  std::string type = "Warning";
  std::string component = "istio-pod-network-controller";
  std::string host;  // node name
};

// Handler for watch events; return false to end the watch (Watch then returns OK).
template <typename T>
using WatchHandler = std::function<bool(WatchEvent<T>&&)>;

class Client {
 public:
  virtual ~Client() = default;

  virtual absl::StatusOr<ObjectList<Pod>> ListPods(const ListOptions& opts) = 0;
  // Blocks until the server ends the stream (OK), `cancel` becomes true (Cancelled), the handler returns
  // false (OK) or an error. A watch ERROR event with code 410 ends the watch with OutOfRange; other ERROR
  // events are delivered to the handler.
  virtual absl::Status WatchPods(const WatchOptions& opts, const WatchHandler<Pod>& handler,
                                 const std::atomic<bool>& cancel) = 0;
  virtual absl::StatusOr<ObjectList<Namespace>> ListNamespaces(const ListOptions& opts) = 0;
  virtual absl::Status WatchNamespaces(const WatchOptions& opts, const WatchHandler<Namespace>& handler,
                                       const std::atomic<bool>& cancel) = 0;

  // JSON merge patch of metadata.annotations on pods/<name>/status, with metadata.uid as a precondition:
  // NotFound if the pod is gone, Aborted if a pod of that name now has another UID (see PatchStatusError).
  // On success, `resource_version` (when given) receives the pod's metadata.resourceVersion after the patch
  // as the server answered it (empty when the answer does not say).
  virtual absl::Status PatchPodStatusAnnotations(const std::string& namespace_name, const std::string& name,
                                                 const std::string& uid,
                                                 const std::map<std::string, std::string>& annotations,
                                                 std::string* resource_version = nullptr) = 0;
  virtual absl::Status CreateEvent(const EventRecord& event) = 0;
};

// DNS-1123 subdomain (pod names, <= 253) and label (namespaces, <= 63). Anything going into a URL path is
// checked.
bool IsDns1123Subdomain(std::string_view s);
bool IsDns1123Label(std::string_view s);

// Maps an HTTP status code (and the server's Status message, if any) to an absl status per the table above.
absl::Status HttpError(long http_code, absl::string_view what, absl::string_view server_message);

// The error of a patch that carries a metadata.uid precondition, from the HTTP code and the response body (a
// Status object). A real kube-apiserver answers a stored object whose UID differs with 422 Invalid whose
// details.causes name the field "metadata.uid" ("field is immutable"); some servers answer 409. Both mean the
// object was replaced: Aborted. Every other answer maps as HttpError (a 422 about another field stays
// InvalidArgument).
absl::Status PatchStatusError(long http_code, absl::string_view what, absl::string_view body);

}  // namespace pnc::kube

#endif  // PNC_KUBE_CLIENT_H_
