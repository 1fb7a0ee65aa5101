#include "kube/curl_client.h"

#include <curl/curl.h>

#include <exception>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kube/line_splitter.h"
#include "nlohmann/json.hpp"

namespace pnc::kube {
namespace {

constexpr size_t kMaxBody = 256u << 20;  // a 5000-pod list is ~50 MiB; refuse pathological answers
constexpr size_t kMaxErrorBody = 64u << 10;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlSlist {
  curl_slist* list = nullptr;
  ~CurlSlist() { curl_slist_free_all(list); }
  void Add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};

size_t AppendBody(char* data, size_t size, size_t nmemb, void* userp) {
  auto* out = static_cast<std::string*>(userp);
  size_t n = size * nmemb;
  if (out->size() + n > kMaxBody) return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  out->append(data, n);
  return n;
}

std::string ServerMessage(const std::string& body) {
  absl::StatusOr<ApiStatus> st = DecodeStatus(body);
  if (st.ok()) return st->message;
  return body.substr(0, 200);
}

absl::Status CurlError(CURLcode rc, const char* errbuf, absl::string_view what) {
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  std::string msg = absl::StrCat(what, ": ", detail);
  if (rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(msg);
  return absl::UnavailableError(msg);
}

// State shared with libcurl's callbacks during one watch.
struct StreamCtx {
  CURL* easy = nullptr;
  LineSplitter splitter;
  const std::function<absl::Status(std::string_view)>* on_line = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  long code = 0;
  std::string error_body;
  absl::Status stop;  // set when a line callback ended the stream
};

size_t StreamWrite(char* data, size_t size, size_t nmemb, void* userp) {
  auto* ctx = static_cast<StreamCtx*>(userp);
  size_t n = size * nmemb;
  if (ctx->code == 0) curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &ctx->code);
  if (ctx->code != 200) {
    if (ctx->error_body.size() < kMaxErrorBody) ctx->error_body.append(data, std::min(n, kMaxErrorBody));
    return n;
  }
  absl::Status st = ctx->splitter.Feed(std::string_view(data, n), *ctx->on_line);
  if (!st.ok()) {
    ctx->stop = std::move(st);
    return 0;
  }
  return n;
}

int StreamProgress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ctx = static_cast<StreamCtx*>(userp);
  return ctx->cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

// Internal marker status: the handler asked to stop.
const absl::Status& HandlerStop() {
  static const absl::Status* st = new absl::Status(absl::CancelledError("pnc-handler-stop"));
  return *st;
}

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

}  // namespace

std::string UrlEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

CurlClient::CurlClient(ClientConfig config, Options options)
    : config_(std::move(config)),
      options_(std::move(options)),
      tokens_(config_.token, config_.token_file, config_.token_reread_interval) {}

absl::StatusOr<std::unique_ptr<CurlClient>> CurlClient::Create(ClientConfig config, Options options) {
  GlobalInit();
  if (config.server.empty()) return absl::InvalidArgumentError("kube: no server URL");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError("kube: server must be an http(s) URL");
  }
  return std::unique_ptr<CurlClient>(new CurlClient(std::move(config), std::move(options)));
}

CurlClient::~CurlClient() {
  absl::MutexLock lock(&mu_);
  for (void* e : pool_) curl_easy_cleanup(static_cast<CURL*>(e));
}

void* CurlClient::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!pool_.empty()) {
      void* e = pool_.back();
      pool_.pop_back();
      return e;
    }
  }
  return curl_easy_init();
}

void CurlClient::Release(void* easy) {
  absl::MutexLock lock(&mu_);
  if (pool_.size() < 8) {
    pool_.push_back(easy);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(easy));
}

absl::Status CurlClient::Configure(void* e, const std::string& url, void* headers_out,
                                   const char* content_type) {
  CURL* easy = static_cast<CURL*>(e);
  auto* headers = static_cast<CurlSlist*>(headers_out);
  // Reset options (keeps the connection cache, so TLS sessions are reused).
  curl_easy_reset(easy);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!config_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.ca_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.ca_data.data()), config_.ca_data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!config_.client_cert_file.empty())
    curl_easy_setopt(easy, CURLOPT_SSLCERT, config_.client_cert_file.c_str());
  if (!config_.client_cert_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.client_cert_data.data()), config_.client_cert_data.size(),
                   CURL_BLOB_COPY};
    curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &blob);
  }
  if (!config_.client_key_file.empty())
    curl_easy_setopt(easy, CURLOPT_SSLKEY, config_.client_key_file.c_str());
  if (!config_.client_key_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.client_key_data.data()), config_.client_key_data.size(),
                   CURL_BLOB_COPY};
    curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &blob);
  }
  absl::StatusOr<std::string> token = tokens_.Token();
  if (!token.ok())
    return absl::UnauthenticatedError(absl::StrCat("kube: bearer token: ", token.status().message()));
  if (!token->empty()) headers->Add(absl::StrCat("Authorization: Bearer ", *token));
  headers->Add("Accept: application/json");
  if (content_type != nullptr) headers->Add(absl::StrCat("Content-Type: ", content_type));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers->list);
  return absl::OkStatus();
}

absl::StatusOr<CurlClient::Response> CurlClient::Do(const char* method, const std::string& path,
                                                    const std::string& body, const char* content_type) {
  CURL* easy = static_cast<CURL*>(Acquire());
  if (easy == nullptr) return absl::ResourceExhaustedError("kube: curl_easy_init failed");
  CurlSlist headers;
  absl::Status st = Configure(easy, config_.server + path, &headers, content_type);
  if (!st.ok()) {
    Release(easy);
    return st;
  }
  Response resp;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  if (std::string_view(method) != "GET") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &resp.body);
  CURLcode rc = curl_easy_perform(easy);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.code);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
  Release(easy);
  if (rc == CURLE_WRITE_ERROR)
    return absl::ResourceExhaustedError(absl::StrCat(method, " ", path, ": response too large"));
  if (rc != CURLE_OK) return CurlError(rc, errbuf, absl::StrCat(method, " ", path));
  return resp;
}

absl::Status CurlClient::StreamLines(const std::string& path,
                                     const std::function<absl::Status(std::string_view)>& on_line,
                                     const std::atomic<bool>& cancel, long idle_seconds) {
  CURL* easy = static_cast<CURL*>(Acquire());
  if (easy == nullptr) return absl::ResourceExhaustedError("kube: curl_easy_init failed");
  CurlSlist headers;
  absl::Status st = Configure(easy, config_.server + path, &headers, nullptr);
  if (!st.ok()) {
    Release(easy);
    return st;
  }
  StreamCtx ctx;
  ctx.easy = easy;
  ctx.on_line = &on_line;
  ctx.cancel = &cancel;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, StreamWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, StreamProgress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &ctx);
  // A watch may be idle for minutes (bookmarks are not guaranteed); the server closes it after
  // timeoutSeconds, so silence well beyond that means a dead peer or a black-holed connection (TCP keepalive
  // catches the rest).
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, idle_seconds);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 10L);
  CURLcode rc = curl_easy_perform(easy);
  if (ctx.code == 0) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &ctx.code);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
  // A connection we abandoned mid-stream cannot be reused: drop the handle.
  if (rc == CURLE_OK) {
    Release(easy);
  } else {
    curl_easy_cleanup(easy);
  }
  if (!ctx.stop.ok()) {
    if (ctx.stop.message() == HandlerStop().message() && ctx.stop.code() == HandlerStop().code()) {
      return absl::OkStatus();
    }
    return ctx.stop;
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) return absl::CancelledError("watch cancelled");
  if (rc != CURLE_OK) {
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return absl::UnavailableError(absl::StrCat("watch ", path, ": idle timeout"));
    return CurlError(rc, errbuf, absl::StrCat("watch ", path));
  }
  if (ctx.code != 200)
    return HttpError(ctx.code, absl::StrCat("watch ", path), ServerMessage(ctx.error_body));
  if (ctx.splitter.pending() > 0)
    return absl::UnavailableError("watch stream ended in the middle of an event");
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<ObjectList<T>> CurlClient::ListAll(const std::string& base_path, const ListOptions& opts,
                                                  absl::StatusOr<ObjectList<T>> (*decode)(std::string_view)) {
  ObjectList<T> all;
  std::string cont;
  for (int page = 0; page < 100000; ++page) {
    std::string path = absl::StrCat(base_path, "?limit=", opts.page_size);
    if (!opts.field_selector.empty())
      absl::StrAppend(&path, "&fieldSelector=", UrlEscape(opts.field_selector));
    if (!cont.empty()) {
      absl::StrAppend(&path, "&continue=", UrlEscape(cont));
    } else if (!opts.resource_version.empty()) {  // with a continue token the server forbids resourceVersion
      absl::StrAppend(&path, "&resourceVersion=", UrlEscape(opts.resource_version));
    }
    absl::StatusOr<Response> resp = Do("GET", path, "", nullptr);
    if (!resp.ok()) return resp.status();
    if (resp->code != 200)
      return HttpError(resp->code, absl::StrCat("list ", base_path), ServerMessage(resp->body));
    absl::StatusOr<ObjectList<T>> list = decode(resp->body);
    if (!list.ok())
      return absl::DataLossError(absl::StrCat("list ", base_path, ": ", list.status().message()));
    for (T& item : list->items) all.items.push_back(std::move(item));
    all.resource_version = list->resource_version;
    cont = list->continue_token;
    if (cont.empty()) return all;
  }
  return absl::ResourceExhaustedError("list: too many pages");
}

template <typename T>
absl::Status CurlClient::WatchAny(const std::string& base_path, const WatchOptions& opts,
                                  const WatchHandler<T>& handler, const std::atomic<bool>& cancel,
                                  absl::StatusOr<WatchEvent<T>> (*decode)(std::string_view)) {
  std::string path = absl::StrCat(base_path, "?watch=true&timeoutSeconds=", opts.timeout_seconds);
  if (opts.allow_bookmarks) absl::StrAppend(&path, "&allowWatchBookmarks=true");
  if (!opts.field_selector.empty()) absl::StrAppend(&path, "&fieldSelector=", UrlEscape(opts.field_selector));
  if (!opts.resource_version.empty())
    absl::StrAppend(&path, "&resourceVersion=", UrlEscape(opts.resource_version));
  std::function<absl::Status(std::string_view)> on_line = [&](std::string_view line) -> absl::Status {
    absl::StatusOr<WatchEvent<T>> ev = decode(line);
    if (!ev.ok()) return absl::DataLossError(absl::StrCat("watch: ", ev.status().message()));
    if (ev->type == EventType::kError && ev->status.code == 410) {
      return absl::OutOfRangeError(absl::StrCat("watch: resourceVersion expired: ", ev->status.message));
    }
    if (!handler(*std::move(ev))) return HandlerStop();
    return absl::OkStatus();
  };
  return StreamLines(path, on_line, cancel, static_cast<long>(opts.timeout_seconds) + 60);
}

absl::StatusOr<ObjectList<Pod>> CurlClient::ListPods(const ListOptions& opts) {
  return ListAll<Pod>("/api/v1/pods", opts, &DecodePodList);
}
absl::Status CurlClient::WatchPods(const WatchOptions& opts, const WatchHandler<Pod>& handler,
                                   const std::atomic<bool>& cancel) {
  return WatchAny<Pod>("/api/v1/pods", opts, handler, cancel, &DecodePodWatchEvent);
}
absl::StatusOr<ObjectList<Namespace>> CurlClient::ListNamespaces(const ListOptions& opts) {
  return ListAll<Namespace>("/api/v1/namespaces", opts, &DecodeNamespaceList);
}
absl::Status CurlClient::WatchNamespaces(const WatchOptions& opts, const WatchHandler<Namespace>& handler,
                                         const std::atomic<bool>& cancel) {
  return WatchAny<Namespace>("/api/v1/namespaces", opts, handler, cancel, &DecodeNamespaceWatchEvent);
}

absl::Status CurlClient::PatchPodStatusAnnotations(const std::string& ns, const std::string& name,
                                                   const std::string& uid,
                                                   const std::map<std::string, std::string>& annotations,
                                                   std::string* resource_version) {
  if (!IsDns1123Label(ns)) return absl::InvalidArgumentError("patch: invalid namespace name");
  if (!IsDns1123Subdomain(name)) return absl::InvalidArgumentError("patch: invalid pod name");
  if (uid.empty()) return absl::InvalidArgumentError("patch: empty uid precondition");
  std::string body;
  try {
    nlohmann::json patch;
    patch["metadata"]["uid"] =
        uid;  // a pod now under another UID: 422 (kube-apiserver) or 409, see PatchStatusError
    for (const auto& [k, v] : annotations) patch["metadata"]["annotations"][k] = v;
    body = patch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("patch: ", e.what()));
  }
  std::string path = absl::StrCat("/api/v1/namespaces/", UrlEscape(ns), "/pods/", UrlEscape(name), "/status");
  absl::StatusOr<Response> resp = Do("PATCH", path, body, "application/merge-patch+json");
  if (!resp.ok()) return resp.status();
  if (resp->code / 100 != 2)
    return PatchStatusError(resp->code, absl::StrCat("patch ", ns, "/", name), resp->body);
  if (resource_version != nullptr) {
    resource_version->clear();
    nlohmann::json pod = nlohmann::json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
    if (pod.is_object()) {
      auto meta = pod.find("metadata");
      if (meta != pod.end() && meta->is_object()) {
        auto rv = meta->find("resourceVersion");
        if (rv != meta->end() && rv->is_string()) *resource_version = rv->get<std::string>();
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CurlClient::CreateEvent(const EventRecord& ev) {
  if (!IsDns1123Label(ev.namespace_name)) return absl::InvalidArgumentError("event: invalid namespace name");
  if (!IsDns1123Subdomain(ev.pod_name)) return absl::InvalidArgumentError("event: invalid pod name");
  std::string body;
  try {
    std::string now = Rfc3339(absl::Now());
    nlohmann::json j;
    j["apiVersion"] = "v1";
    j["kind"] = "Event";
    // generateName keeps names unique without a client-side counter; 253-char limit leaves room for the
    // suffix.
    j["metadata"]["generateName"] = absl::StrCat(ev.pod_name.substr(0, 200), ".");
    j["metadata"]["namespace"] = ev.namespace_name;
    j["involvedObject"] = {{"apiVersion", "v1"},
                           {"kind", "Pod"},
                           {"namespace", ev.namespace_name},
                           {"name", ev.pod_name},
                           {"uid", ev.pod_uid}};
    j["reason"] = ev.reason;
    j["message"] = ev.message.substr(0, 1024);
    j["type"] = ev.type;
    j["source"] = {{"component", ev.component}, {"host", ev.host}};
    j["reportingComponent"] = ev.component;
    j["reportingInstance"] = ev.host;
    j["count"] = 1;
    j["firstTimestamp"] = now;
    j["lastTimestamp"] = now;
    body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("event: ", e.what()));
  }
  std::string path = absl::StrCat("/api/v1/namespaces/", UrlEscape(ev.namespace_name), "/events");
  absl::StatusOr<Response> resp = Do("POST", path, body, "application/json");
  if (!resp.ok()) return resp.status();
  if (resp->code / 100 != 2) return HttpError(resp->code, "create event", ServerMessage(resp->body));
  return absl::OkStatus();
}

}  // namespace pnc::kube
