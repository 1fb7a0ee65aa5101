#include "netns/cri/grpc_unary.h"

#include <curl/curl.h>
#include <google/protobuf/message_lite.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace pnc::netns {
namespace {

constexpr size_t kMaxUnixPath = 107;
constexpr size_t kFrameHeader = 5;
constexpr size_t kMaxIdleHandles = 8;
constexpr size_t kMaxHeaderBytes = 64 << 10;

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;

class Headers {
 public:
  Headers() = default;
  Headers(const Headers&) = delete;
  Headers& operator=(const Headers&) = delete;
  ~Headers() { curl_slist_free_all(list_); }
  bool Add(const std::string& line) {
    curl_slist* next = curl_slist_append(list_, line.c_str());
    if (next == nullptr) return false;
    list_ = next;
    return true;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Endpoint {
  std::string path;  // socket path, or the abstract name
  bool abstract = false;
};

absl::StatusOr<Endpoint> ParseEndpoint(const std::string& endpoint) {
  constexpr absl::string_view kAbstract = "unix-abstract:";
  if (absl::StartsWith(endpoint, kAbstract)) {
    Endpoint e{endpoint.substr(kAbstract.size()), true};
    if (e.path.empty() || e.path.size() > kMaxUnixPath - 1)
      return absl::InvalidArgumentError(absl::StrCat("bad abstract unix socket name: ", endpoint));
    return e;
  }
  std::string path = endpoint;
  if (absl::StartsWith(path, "unix://")) {
    path = path.substr(7);
  } else if (absl::StartsWith(path, "unix:")) {
    path = path.substr(5);
  }
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint must be an absolute unix socket path or unix-abstract:NAME, got ", endpoint));
  }
  if (path.size() > kMaxUnixPath)
    return absl::InvalidArgumentError(absl::StrCat("unix socket path longer than 107 bytes: ", path));
  return Endpoint{std::move(path), false};
}

// gRPC's mapping of HTTP statuses for answers that are not gRPC (doc/http-grpc-status-mapping.md).
absl::StatusCode FromHttpStatus(long http) {
  switch (http) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

std::string PercentDecode(const std::string& s) {
  if (s.find('%') == std::string::npos) return s;
  int len = 0;
  std::unique_ptr<char, CurlFree> out(
      curl_easy_unescape(nullptr, s.data(), static_cast<int>(s.size()), &len));
  if (out == nullptr) return s;
  return std::string(out.get(), static_cast<size_t>(len));
}

// One call's answer as libcurl hands it over.
struct Exchange {
  GrpcAnswer answer;
  size_t max_body = 0;
  size_t header_bytes = 0;
  bool too_large = false;
  bool connected = false;  // the connection to the server was established
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* userp) {
  auto* x = static_cast<Exchange*>(userp);
  size_t n = size * nmemb;
  if (x->answer.body.size() + n > x->max_body) {
    x->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  x->answer.body.append(data, n);
  return n;
}

// Header lines of the response and, after the body, its trailers (libcurl passes HTTP/2 trailers here too).
size_t OnHeader(char* data, size_t size, size_t nmemb, void* userp) {
  auto* x = static_cast<Exchange*>(userp);
  size_t n = size * nmemb;
  x->header_bytes += n;
  if (x->header_bytes > kMaxHeaderBytes) {
    x->too_large = true;
    return 0;
  }
  absl::string_view line(data, n);
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;  // status line, blank line
  absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (absl::EqualsIgnoreCase(name, "grpc-status")) {
    int code = 0;
    x->answer.grpc_status = absl::SimpleAtoi(value, &code) && code >= 0 ? code : -1;
  } else if (absl::EqualsIgnoreCase(name, "grpc-message")) {
    x->answer.grpc_message = std::string(value);
  } else if (absl::EqualsIgnoreCase(name, "content-type")) {
    x->answer.content_type = std::string(value);
  }
  return n;
}

absl::Status TransportError(CURLcode rc, const char* errbuf, const Exchange& x, absl::string_view method) {
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  std::string msg = absl::StrCat("gRPC ", method, ": ", detail);
  if (x.too_large) {
    return absl::ResourceExhaustedError(
        absl::StrCat("gRPC ", method, ": response larger than ", x.max_body - kFrameHeader, " bytes"));
  }
  // A connect that did not complete in time is the server's unavailability (down, restarting, its listen
  // backlog full), not a slow answer to this call.
  if (rc == CURLE_OPERATION_TIMEDOUT && !x.connected) return absl::UnavailableError(msg);
  if (rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(msg);
  if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_NOT_BUILT_IN || rc == CURLE_OUT_OF_MEMORY)
    return absl::InternalError(msg);
  return absl::UnavailableError(msg);  // could not connect, connection broke, HTTP/2 error
}

// A pooled easy handle (its allocations are reused; its connections are not, see Perform).
struct Handle {
  Easy easy;
};

class CurlGrpcUnaryClient : public GrpcUnaryClient {
 public:
  CurlGrpcUnaryClient(Endpoint endpoint, GrpcUnaryOptions options)
      : endpoint_(std::move(endpoint)), options_(options) {}

  absl::Status Call(absl::string_view method, const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite& response, absl::Duration timeout) override {
    if (timeout <= absl::ZeroDuration()) return absl::DeadlineExceededError("gRPC call without time left");
    std::string body;
    if (!request.SerializeToString(&body))
      return absl::InternalError(absl::StrCat("gRPC ", method, ": request does not serialize"));
    body = GrpcFrame(body);
    const std::string url = absl::StrCat("http://localhost", method);
    const absl::Time deadline = absl::Now() + timeout;

    Handle h = Acquire();
    if (h.easy == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
    Exchange x;
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURLcode rc = Perform(h, url, body, deadline, x, errbuf);
    Release(std::move(h));
    if (rc != CURLE_OK) return TransportError(rc, errbuf, x, method);

    absl::StatusOr<absl::string_view> payload = DecodeGrpcUnaryResponse(x.answer);
    if (!payload.ok()) {
      if (x.answer.http_status == 200 && x.answer.grpc_status.value_or(0) > 0) return payload.status();
      return absl::Status(payload.status().code(),
                          absl::StrCat("gRPC ", method, ": ", payload.status().message()));
    }
    if (!response.ParseFromArray(payload->data(), static_cast<int>(payload->size())))
      return absl::InternalError(absl::StrCat("gRPC ", method, ": response does not parse"));
    return absl::OkStatus();
  }

 private:
  // One HTTP/2 POST on a connection of its own.
  CURLcode Perform(Handle& h, const std::string& url, const std::string& body, absl::Time deadline,
                   Exchange& x, char* errbuf) const {
    CURL* e = h.easy.get();
    // Options are set anew for every call; the connection cache survives the reset.
    curl_easy_reset(e);
    const absl::Duration left = deadline - absl::Now();
    const int64_t timeout_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(left));
    const int64_t connect_ms =
        std::max<int64_t>(1, absl::ToInt64Milliseconds(std::min(left, options_.connect_timeout)));
    Headers headers;
    for (const std::string& line :
         {std::string("Content-Type: application/grpc"), std::string("TE: trailers"),
          absl::StrCat("grpc-timeout: ", std::min<int64_t>(timeout_ms, 99999999), "m"),
          std::string("Expect:"), std::string("Accept:")}) {
      if (!headers.Add(line)) return CURLE_OUT_OF_MEMORY;
    }
    x.max_body = options_.max_response_bytes + kFrameHeader;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, endpoint_.abstract ? CURLOPT_ABSTRACT_UNIX_SOCKET : CURLOPT_UNIX_SOCKET_PATH,
                     endpoint_.path.c_str());
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    // HTTP/2 without TLS, by prior knowledge, on a new connection that is closed after the call. Reusing
    // an h2c prior-knowledge connection fails in libcurl before 8.0 ("Error in the HTTP2 framing layer",
    // curl#10634; Debian 12 ships 7.88.1), and working around it (asking for plain HTTP/2 on the cached
    // connection) left a burst with every call failing that way for 45 s once. A unix socket connect and
    // the HTTP/2 preface cost little next to the runtime's answer, and a restarted runtime is reached by
    // the next call with nothing stale in between.
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pnc-cri-client");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_ms));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x.answer.http_status);
    curl_off_t connected_us = 0;
    x.connected =
        curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected_us) == CURLE_OK && connected_us > 0;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);
    return rc;
  }

  Handle Acquire() {
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        Handle h = std::move(idle_.back());  // the most recently used: its connection is the warmest
        idle_.pop_back();
        return h;
      }
    }
    return Handle{Easy(curl_easy_init())};
  }

  void Release(Handle h) {
    absl::MutexLock lock(&mu_);
    if (idle_.size() < kMaxIdleHandles) idle_.push_back(std::move(h));
  }

  const Endpoint endpoint_;
  const GrpcUnaryOptions options_;
  absl::Mutex mu_;
  std::vector<Handle> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string GrpcFrame(absl::string_view message) {
  std::string out;
  out.reserve(kFrameHeader + message.size());
  const uint32_t n = static_cast<uint32_t>(message.size());
  out.push_back('\0');
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(message.data(), message.size());
  return out;
}

absl::StatusOr<absl::string_view> DecodeGrpcUnaryResponse(const GrpcAnswer& a) {
  if (a.http_status != 200) {
    return absl::Status(FromHttpStatus(a.http_status),
                        absl::StrCat("HTTP status ", a.http_status, " (not a gRPC answer)"));
  }
  if (!a.grpc_status.has_value()) return absl::InternalError("answer without grpc-status");
  if (*a.grpc_status < 0) return absl::InternalError("malformed grpc-status");
  if (*a.grpc_status != 0) {
    // gRPC and absl number their codes alike; codes beyond the known ones are UNKNOWN (as gRPC reads them).
    absl::StatusCode code = *a.grpc_status <= static_cast<int>(absl::StatusCode::kUnauthenticated)
                                ? static_cast<absl::StatusCode>(*a.grpc_status)
                                : absl::StatusCode::kUnknown;
    return absl::Status(code, PercentDecode(a.grpc_message));
  }
  if (!absl::StartsWithIgnoreCase(a.content_type, "application/grpc"))
    return absl::InternalError(absl::StrCat("content-type \"", a.content_type, "\" is not application/grpc"));
  const std::string& b = a.body;
  if (b.size() < kFrameHeader) return absl::InternalError("OK answer without a message");
  if (b[0] != '\0') return absl::InternalError("compressed message, but no compression was negotiated");
  uint32_t n = 0;
  for (size_t i = 1; i < kFrameHeader; ++i) n = (n << 8) | static_cast<uint8_t>(b[i]);
  if (b.size() - kFrameHeader != n) {
    return absl::InternalError(absl::StrCat("message frame of ", n, " bytes, but ", b.size() - kFrameHeader,
                                            " bytes follow (one message expected)"));
  }
  return absl::string_view(b).substr(kFrameHeader);
}

absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> NewCurlGrpcUnaryClient(const std::string& endpoint,
                                                                        GrpcUnaryOptions options) {
  absl::StatusOr<Endpoint> e = ParseEndpoint(endpoint);
  if (!e.ok()) return e.status();
  if (options.max_response_bytes == 0 || options.max_response_bytes > (1u << 31))
    return absl::InvalidArgumentError("max_response_bytes must be in (0, 2 GiB]");
  GlobalInit();
  return std::unique_ptr<GrpcUnaryClient>(new CurlGrpcUnaryClient(*std::move(e), options));
}

}  // namespace pnc::netns
