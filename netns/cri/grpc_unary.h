// Unary gRPC calls to a server on a unix socket (the container runtime's CRI endpoint).
//
// Why not the gRPC C++ library: the controller makes two kinds of unary calls to one local socket, and
// libgrpc++ brought a dozen shared libraries and the largest share of the controller's resident memory.
// gRPC's unary wire format is one HTTP/2 POST: libcurl + nghttp2 (already linked for the Kubernetes client)
// do the HTTP/2, protobuf-lite the messages; what remains here is the 5-byte message framing and the status
// from the trailers. Tests and fake runtimes keep using the gRPC library (netns/cri:cri_api_grpc).
#ifndef PNC_NETNS_CRI_GRPC_UNARY_H_
#define PNC_NETNS_CRI_GRPC_UNARY_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace pnc::netns {

class GrpcUnaryClient {
 public:
  virtual ~GrpcUnaryClient() = default;

  // Calls `method` ("/package.Service/Method") with `request` and parses the answer into `response`.
  // Returns the call's gRPC status as an absl::Status of the same code, with grpc-message (percent-decoded)
  // as the message. Failures of the transport: Unavailable (nothing listens on the socket, the connection
  // broke, an HTTP/2 error, no connection within the connect bound: the server is down or restarting),
  // DeadlineExceeded (connected, but no complete answer within `timeout`; the server is told the deadline in
  // grpc-timeout), ResourceExhausted (the response exceeds
  // max_response_bytes), an HTTP status other than 200 mapped as gRPC clients map it (404 Unimplemented,
  // 429/502/503/504 Unavailable, 401 Unauthenticated, 403 PermissionDenied, 400 Internal, others Unknown),
  // Internal (not a gRPC answer: no grpc-status, a compressed or malformed message frame, a message that
  // does not parse). Thread-safe; every call has a connection of its own, closed when it ends, so a
  // restarted server is reached by the next call, with no reconnect backoff and nothing stale in between.
  virtual absl::Status Call(absl::string_view method, const google::protobuf::MessageLite& request,
                            google::protobuf::MessageLite& response, absl::Duration timeout) = 0;
};

struct GrpcUnaryOptions {
  size_t max_response_bytes = 16 << 20;
  // Connecting is bounded by min(the call's timeout, connect_timeout); a refused or missing socket fails at
  // once.
  absl::Duration connect_timeout = absl::Milliseconds(500);
};

// endpoint: "/path.sock", "unix:///path.sock", "unix:/path.sock" (absolute, <= 107 bytes) or
// "unix-abstract:name". InvalidArgument for anything else. Creating the client does no I/O.
absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> NewCurlGrpcUnaryClient(const std::string& endpoint,
                                                                        GrpcUnaryOptions options = {});

// What the answer to one call carried, for DecodeGrpcUnaryResponse.
struct GrpcAnswer {
  long http_status = 0;
  std::string content_type;
  std::optional<int> grpc_status;  // from the trailers, or the headers of a trailers-only answer
  std::string grpc_message;        // as sent (percent-encoded)
  std::string body;                // the framed message(s)
};

// The status of a call from its answer (see GrpcUnaryClient::Call), and on OK the message's serialized
// bytes (a view into answer.body).
absl::StatusOr<absl::string_view> DecodeGrpcUnaryResponse(const GrpcAnswer& answer);

// gRPC's message framing: a zero "compressed" byte, the big-endian 32-bit length, the message.
std::string GrpcFrame(absl::string_view message);

}  // namespace pnc::netns

#endif  // PNC_NETNS_CRI_GRPC_UNARY_H_
