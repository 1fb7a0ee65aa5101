#include "simulator/apiserver/server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "simulator/apiserver/api_error.h"
#include "simulator/apiserver/tls.h"

namespace pnc::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

constexpr char kVersionJson[] =
    R"({"major":"1","minor":"32","gitVersion":"v1.32.0-pnc-simulator","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.23.0","compiler":"gc","platform":"linux/amd64"})";

std::string UrlDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size()) {
      int v = 0;
      if (absl::SimpleHexAtoi(in.substr(i + 1, 2), &v)) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += in[i];
      }
    } else {
      out += in[i];
    }
  }
  return out;
}

struct Query {
  std::map<std::string, std::string> values;
  std::string Get(const std::string& k) const {
    auto it = values.find(k);
    return it == values.end() ? "" : it->second;
  }
  bool Has(const std::string& k) const { return values.count(k) > 0; }
  bool Bool(const std::string& k) const {
    std::string v = Get(k);
    return v == "true" || v == "1";
  }
};

// What a request path addresses.
struct Target {
  Resource resource = Resource::kPods;
  std::string ns;
  std::string name;
  Subresource sub = Subresource::kNone;
  bool watch_prefix = false;
};

// Parses the part after /api/v1/. Returns NotFound for anything unknown.
absl::StatusOr<Target> ParseTarget(std::vector<std::string> seg) {
  Target t;
  if (!seg.empty() && seg[0] == "watch") {
    t.watch_prefix = true;
    seg.erase(seg.begin());
  }
  if (seg.empty()) return absl::NotFoundError("the server could not find the requested resource");
  auto parse_sub = [&](const std::string& s) -> absl::Status {
    if (s == "status") {
      t.sub = Subresource::kStatus;
      return absl::OkStatus();
    }
    return ApiError(404, "NotFound", "the server could not find the requested resource");
  };
  if (seg[0] == "namespaces" && seg.size() >= 3) {
    auto r = ResourceFromPlural(seg[2]);
    if (r && Info(*r).namespaced) {
      t.resource = *r;
      t.ns = seg[1];
      if (seg.size() >= 4) t.name = seg[3];
      if (seg.size() == 5) {
        if (auto s = parse_sub(seg[4]); !s.ok()) return s;
      }
      if (seg.size() > 5)
        return ApiError(404, "NotFound", "the server could not find the requested resource");
      return t;
    }
  }
  auto r = ResourceFromPlural(seg[0]);
  if (!r) return ApiError(404, "NotFound", "the server could not find the requested resource");
  t.resource = *r;
  if (seg.size() >= 2) {
    if (Info(*r).namespaced)
      return ApiError(404, "NotFound", "the server could not find the requested resource");
    t.name = seg[1];
  }
  if (seg.size() == 3) {
    if (auto s = parse_sub(seg[2]); !s.ok()) return s;
  }
  if (seg.size() > 3) return ApiError(404, "NotFound", "the server could not find the requested resource");
  return t;
}

// OpenAPI v3, only as much as kubectl reads: the PATCH operations with their GVK and the fieldValidation
// parameter, which makes kubectl use server-side field validation instead of downloading schemas. No
// component schemas: kubectl apply then builds strategic merge patches from its compiled-in types, as it does
// for any built-in kind.
json OpenApiV3Root() {
  return {{"paths", {{"api/v1", {{"serverRelativeURL", "/openapi/v3/api/v1?hash=pnc-simulator-1"}}}}}};
}

json OpenApiV3CoreV1() {
  json paths = json::object();
  auto op = [](const char* kind) {
    return json{{"patch",
                 {{"x-kubernetes-group-version-kind", {{"group", ""}, {"version", "v1"}, {"kind", kind}}},
                  {"x-kubernetes-action", "patch"},
                  {"parameters",
                   {{{"name", "fieldValidation"}, {"in", "query"}, {"schema", {{"type", "string"}}}},
                    {{"name", "fieldManager"}, {"in", "query"}, {"schema", {{"type", "string"}}}}}},
                  {"responses", {{"200", {{"description", "OK"}}}}}}}};
  };
  paths["/api/v1/namespaces/{namespace}/pods/{name}"] = op("Pod");
  paths["/api/v1/namespaces/{namespace}/events/{name}"] = op("Event");
  paths["/api/v1/namespaces/{name}"] = op("Namespace");
  paths["/api/v1/nodes/{name}"] = op("Node");
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes (pnc simulator)"}, {"version", "v1.32.0"}}},
          {"paths", paths},
          {"components", {{"schemas", json::object()}}}};
}

// OpenAPI v2 for older kubectl (e.g. Debian's 1.20), which fetches /openapi/v2 as protobuf (gnostic's
// openapi_v2.Document) before create/apply and gives up on 404. A document with no definitions makes it skip
// client-side schema validation for every kind, which is what the v3 document above achieves for newer
// kubectl. Hand-encoded: Document{swagger(1): "2.0", info(2): Info{title(1), version(2)}}.
std::string OpenApiV2Protobuf() {
  auto field = [](int number, const std::string& bytes) {
    std::string out(1, static_cast<char>((number << 3) | 2));  // length-delimited
    out.push_back(static_cast<char>(bytes.size()));            // < 128 bytes: one-byte varint
    return out + bytes;
  };
  return field(1, "2.0") + field(2, field(1, "Kubernetes (pnc simulator)") + field(2, "v1.32.0"));
}

json ApiResources() {
  auto res = [](const char* name, const char* singular, bool namespaced, const char* kind,
                std::vector<std::string> verbs, std::vector<std::string> shorts, bool all) {
    json r = {{"name", name},
              {"singularName", singular},
              {"namespaced", namespaced},
              {"kind", kind},
              {"verbs", verbs}};
    if (!shorts.empty()) r["shortNames"] = shorts;
    if (all) r["categories"] = {"all"};
    return r;
  };
  std::vector<std::string> rw = {"create", "delete", "get", "list", "patch", "update", "watch"};
  return {{"kind", "APIResourceList"},
          {"groupVersion", "v1"},
          {"resources",
           {res("events", "event", true, "Event", rw, {"ev"}, false),
            res("namespaces", "namespace", false, "Namespace", rw, {"ns"}, false),
            res("namespaces/status", "", false, "Namespace", {"get", "patch", "update"}, {}, false),
            res("nodes", "node", false, "Node", rw, {"no"}, false),
            res("nodes/status", "", false, "Node", {"get", "patch", "update"}, {}, false),
            res("pods", "pod", true, "Pod", rw, {"po"}, true),
            res("pods/status", "", true, "Pod", {"get", "patch", "update"}, {}, false)}}};
}

std::string HumanAge(const json& obj) {
  std::string ts;
  if (obj.contains("metadata") && obj["metadata"].contains("creationTimestamp") &&
      obj["metadata"]["creationTimestamp"].is_string()) {
    ts = obj["metadata"]["creationTimestamp"].get<std::string>();
  }
  absl::Time t;
  std::string err;
  if (ts.empty() || !absl::ParseTime(absl::RFC3339_full, ts, &t, &err)) return "<unknown>";
  int64_t s = absl::ToInt64Seconds(absl::Now() - t);
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 3600 * 2) return absl::StrCat(s / 60, "m");
  if (s < 86400 * 2) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

json Column(const char* name, const char* type, const char* format, int priority) {
  return {{"name", name}, {"type", type}, {"format", format}, {"description", ""}, {"priority", priority}};
}

// kubectl's default table columns (a subset of the real printers).
json TableColumns(Resource r) {
  switch (r) {
    case Resource::kPods:
      return {Column("Name", "string", "name", 0), Column("Ready", "string", "", 0),
              Column("Status", "string", "", 0),   Column("Restarts", "string", "", 0),
              Column("Age", "string", "", 0),      Column("IP", "string", "", 1),
              Column("Node", "string", "", 1)};
    case Resource::kNamespaces:
      return {Column("Name", "string", "name", 0), Column("Status", "string", "", 0),
              Column("Age", "string", "", 0)};
    case Resource::kNodes:
      return {Column("Name", "string", "name", 0), Column("Status", "string", "", 0),
              Column("Age", "string", "", 0)};
    case Resource::kEvents:
      return {Column("Last Seen", "string", "", 0), Column("Type", "string", "", 0),
              Column("Reason", "string", "", 0), Column("Object", "string", "", 0),
              Column("Message", "string", "", 0)};
  }
  return json::array();
}

json TableRow(Resource r, const json& obj) {
  json cells;
  std::string name = FieldValue(obj, "metadata.name");
  switch (r) {
    case Resource::kPods: {
      size_t total =
          obj.contains("spec") && obj["spec"].contains("containers") ? obj["spec"]["containers"].size() : 0;
      size_t ready = 0;
      if (obj.contains("status") && obj["status"].contains("containerStatuses")) {
        for (const auto& cs : obj["status"]["containerStatuses"]) {
          if (cs.value("ready", false)) ++ready;
        }
      }
      std::string phase = FieldValue(obj, "status.phase");
      std::string reason = FieldValue(obj, "status.reason");
      cells = {name,
               absl::StrCat(ready, "/", total),
               reason.empty() ? phase : reason,
               "0",
               HumanAge(obj),
               FieldValue(obj, "status.podIP").empty() ? "<none>" : FieldValue(obj, "status.podIP"),
               FieldValue(obj, "spec.nodeName").empty() ? "<none>" : FieldValue(obj, "spec.nodeName")};
      break;
    }
    case Resource::kNamespaces:
      cells = {name, FieldValue(obj, "status.phase"), HumanAge(obj)};
      break;
    case Resource::kNodes:
      cells = {name, "Ready", HumanAge(obj)};
      break;
    case Resource::kEvents:
      cells = {HumanAge(obj), FieldValue(obj, "type"), FieldValue(obj, "reason"),
               absl::StrCat(absl::AsciiStrToLower(FieldValue(obj, "involvedObject.kind")), "/",
                            FieldValue(obj, "involvedObject.name")),
               FieldValue(obj, "message")};
      break;
  }
  json meta = obj.value("metadata", json::object());
  return {
      {"cells", cells},
      {"object", {{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}}}};
}

json Table(Resource r, const std::vector<ObjectPtr>& items, uint64_t rv, const std::string& cont) {
  json rows = json::array();
  for (const auto& o : items) rows.push_back(TableRow(r, *o));
  json md = {{"resourceVersion", std::to_string(rv)}};
  if (!cont.empty()) md["continue"] = cont;
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", md},
          {"columnDefinitions", TableColumns(r)},
          {"rows", rows}};
}

bool WantsTable(const std::string& accept) { return absl::StrContains(accept, "as=Table"); }

}  // namespace

// One response for an ordinary request.
struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string content_type = "application/json";
  int retry_after = 0;
};

Reply StatusReply(const absl::Status& s) {
  Reply r;
  r.status = static_cast<http::status>(HttpCode(s));
  r.body = StatusObject(s).dump();
  return r;
}

// A request that turns its connection into a watch stream.
struct WatchPlan {
  Resource resource;
  std::string ns;
  WatchOptions options;
  int timeout_seconds = 0;
  bool table = false;
};

class ApiServer::Impl {
 public:
  Impl(Store* store, ServerOptions options) : store_(store), options_(std::move(options)) {}

  absl::Status Init() {
    std::string host = "127.0.0.1";
    int port = 0;
    std::vector<std::string> hp = absl::StrSplit(options_.listen, absl::MaxSplits(':', 1));
    if (hp.size() == 2) {
      host = hp[0].empty() ? "0.0.0.0" : hp[0];
      if (!absl::SimpleAtoi(hp[1], &port)) return absl::InvalidArgumentError("bad --listen port");
    } else {
      return absl::InvalidArgumentError("--listen must be host:port");
    }
    if (options_.tls) {
      auto cert = GenerateServingCert();
      if (!cert.ok()) return cert.status();
      cert_ = *cert;
      ssl_ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      boost::system::error_code ec;
      ssl_ctx_.use_certificate_chain(net::buffer(cert_.cert_pem), ec);
      if (!ec) ssl_ctx_.use_private_key(net::buffer(cert_.key_pem), ssl::context::pem, ec);
      if (ec) return absl::InternalError(absl::StrCat("TLS setup: ", ec.message()));
    }
    boost::system::error_code ec;
    auto addr = net::ip::make_address(host, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("bad --listen address: ", host));
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("listen on ", options_.listen, ": ", ec.message()));
    port_ = acceptor_.local_endpoint().port();
    host_ = host == "0.0.0.0" ? "127.0.0.1" : host;
    Accept();
    int n = std::max(1, options_.threads);
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { ioc_.run(); });
    return absl::OkStatus();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    net::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    store_->DropAllWatches();
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::string url() const { return absl::StrCat(options_.tls ? "https" : "http", "://", host_, ":", port_); }

  std::string Kubeconfig() const {
    std::string out = absl::StrCat(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: simulator\n  cluster:\n    server: ", url(), "\n");
    if (options_.tls) {
      absl::StrAppend(&out, "    certificate-authority-data: ", absl::Base64Escape(cert_.cert_pem), "\n");
    }
    absl::StrAppend(
        &out,
        "contexts:\n- name: simulator\n  context:\n    cluster: simulator\n    user: simulator\n"
        "    namespace: default\ncurrent-context: simulator\nusers:\n- name: simulator\n  user:\n");
    if (!options_.token.empty()) {
      absl::StrAppend(&out, "    token: ", options_.token, "\n");
    } else {
      absl::StrAppend(&out, "    {}\n");
    }
    return out;
  }

  // Returns a reply, or sets *watch for a watch request.
  Reply Handle(const http::request<http::string_body>& req, std::optional<WatchPlan>* watch);

  Store* store_;
  ServerOptions options_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{ioc_.get_executor()};
  tcp::acceptor acceptor_{ioc_};
  ssl::context ssl_ctx_{ssl::context::tls_server};
  ServingCert cert_;
  std::vector<std::thread> threads_;
  std::string host_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int> fail_count_{0};
  std::atomic<int> fail_code_{500};
  std::atomic<int64_t> event_delay_ns_{0};
  std::atomic<uint64_t> requests_{0};

 private:
  void Accept();
};

namespace {

// The stream-type-independent parts of a connection.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(ApiServer::Impl* server, Stream stream) : server_(server), stream_(std::move(stream)) {}

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      Read();
    }
  }

  // WatchSink side: called with the store lock held.
  void Enqueue(EventLine line) {
    net::post(stream_.get_executor(), [self = this->shared_from_this(), line = std::move(line)]() mutable {
      self->OnLine(std::move(line));
    });
  }
  void CloseFromStore() {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->watch_id_ = 0;  // already removed from the store
      self->Finish();
    });
  }

 private:
  struct Sink : WatchSink {
    std::weak_ptr<Session> session;
    void OnEvent(const std::string&, const ObjectPtr&, uint64_t, const EventLine& line) override {
      if (auto s = session.lock()) s->Enqueue(line);
    }
    void OnClosed() override {
      if (auto s = session.lock()) s->CloseFromStore();
    }
  };
  struct Table : WatchSink {  // watch with as=Table: lines re-encoded per watcher (kubectl only)
    std::weak_ptr<Session> session;
    Resource resource;
    void OnEvent(const std::string& type, const ObjectPtr& obj, uint64_t rv, const EventLine&) override {
      auto s = session.lock();
      if (!s) return;
      json o = type == "BOOKMARK" ? *obj : pnc::sim::Table(resource, {obj}, rv, "");
      s->Enqueue(std::make_shared<const std::string>(EncodeWatchLine(type, o)));
    }
    void OnClosed() override {
      if (auto s = session.lock()) s->CloseFromStore();
    }
    bool WantsLine() const override { return false; }
  };

  auto& Lowest() { return beast::get_lowest_layer(stream_); }

  void Read() {
    parser_.emplace();
    parser_->body_limit(16 * 1024 * 1024);
    Lowest().expires_after(std::chrono::seconds(300));
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Close();
    auto req = parser_->release();
    std::optional<WatchPlan> watch;
    Reply reply = server_->Handle(req, &watch);
    if (watch) return StartWatch(req, *watch);
    auto res = std::make_shared<http::response<http::string_body>>(reply.status, req.version());
    res->set(http::field::server, "pnc-simulator");
    res->set(http::field::content_type, reply.content_type);
    res->set("Cache-Control", "no-cache, private");
    if (reply.retry_after > 0) res->set(http::field::retry_after, std::to_string(reply.retry_after));
    res->body() = std::move(reply.body);
    res->keep_alive(req.keep_alive());
    res->prepare_payload();
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->Close();
      self->Read();
    });
  }

  void StartWatch(const http::request<http::string_body>& req, const WatchPlan& plan) {
    Lowest().expires_never();
    std::shared_ptr<WatchSink> sink;
    if (plan.table) {
      auto t = std::make_shared<Table>();
      t->session = this->shared_from_this();
      t->resource = plan.resource;
      sink = t;
    } else {
      auto s = std::make_shared<Sink>();
      s->session = this->shared_from_this();
      sink = s;
    }
    // Send the headers before registering, so events queue behind them.
    header_ = std::make_shared<http::response<http::empty_body>>(http::status::ok, req.version());
    header_->set(http::field::server, "pnc-simulator");
    header_->set(http::field::content_type, "application/json");
    header_->set("Cache-Control", "no-cache, private");
    header_->chunked(true);
    serializer_ = std::make_shared<http::response_serializer<http::empty_body>>(*header_);
    writing_ = true;
    http::async_write_header(stream_, *serializer_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               self->writing_ = false;
                               if (ec) return self->Finish();
                               self->Pump();
                             });
    auto id = server_->store_->Watch(plan.resource, plan.ns, plan.options, sink);
    if (!id.ok()) {
      // Like the real watch cache: 200, then a single ERROR event with the Status, then the end of the
      // stream.
      Enqueue(std::make_shared<const std::string>(EncodeWatchLine("ERROR", StatusObject(id.status()))));
      net::post(stream_.get_executor(), [self = this->shared_from_this()] {
        self->finishing_ = true;  // drain the ERROR event, then end the stream
        self->Pump();
      });
      return;
    }
    watch_id_ = *id;
    if (plan.options.bookmarks) ArmBookmark();
    if (plan.timeout_seconds > 0) {
      timeout_.expires_after(std::chrono::seconds(plan.timeout_seconds));
      timeout_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
        if (!ec) self->Finish();
      });
    }
    // Notice clients that go away (a read completes with EOF/error; clients never send on a watch
    // connection).
    probe_buf_.resize(256);
    stream_.async_read_some(net::buffer(probe_buf_),
                            [self = this->shared_from_this()](beast::error_code, size_t) {
                              self->peer_gone_ = true;
                              self->Finish();
                            });
  }

  void ArmBookmark() {
    bookmark_.expires_after(absl::ToChronoNanoseconds(server_->options_.bookmark_interval));
    bookmark_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->finishing_) return;
      self->server_->store_->Bookmark(self->watch_id_);
      self->ArmBookmark();
    });
  }

  void OnLine(EventLine line) {
    if (finishing_) return;
    if (queue_.size() >= server_->options_.max_queued_events) return Finish();  // too slow: drop it
    auto delay = std::chrono::nanoseconds(server_->event_delay_ns_.load());
    queue_.push_back({std::chrono::steady_clock::now() + delay, std::move(line)});
    Pump();
  }

  void Pump() {
    if (writing_) return;
    auto now = std::chrono::steady_clock::now();
    batch_.clear();
    while (!queue_.empty() && queue_.front().ready <= now && batch_.size() < 512) {
      batch_.push_back(std::move(queue_.front().line));
      queue_.pop_front();
    }
    if (batch_.empty()) {
      if (!queue_.empty()) {
        delay_.expires_at(queue_.front().ready);
        delay_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
          if (!ec) self->Pump();
        });
      } else if (finishing_ && !ended_) {
        End();
      }
      return;
    }
    buffers_.clear();
    for (const auto& l : batch_) buffers_.push_back(net::buffer(*l));
    writing_ = true;
    net::async_write(stream_, http::make_chunk(buffers_),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) {
                         self->peer_gone_ = true;
                         self->queue_.clear();
                         return self->Finish();
                       }
                       self->Pump();
                     });
  }

  void Finish() {
    if (!finishing_) {
      finishing_ = true;
      if (watch_id_ != 0) server_->store_->Unwatch(watch_id_);
      watch_id_ = 0;
      timeout_.cancel();
      bookmark_.cancel();
      delay_.cancel();
      queue_.clear();  // events not yet due are dropped: the stream ends here
    }
    if (writing_) return;  // Pump() calls back when the write completes
    if (peer_gone_) return Close();
    if (!ended_) End();
  }

  void End() {
    ended_ = true;
    writing_ = true;
    net::async_write(stream_, http::make_chunk_last(),
                     [self = this->shared_from_this()](beast::error_code, size_t) {
                       self->writing_ = false;
                       self->Close();
                     });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().socket().close(ec);
  }

  struct Item {
    std::chrono::steady_clock::time_point ready;
    EventLine line;
  };

  ApiServer::Impl* server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::empty_body>> header_;
  std::shared_ptr<http::response_serializer<http::empty_body>> serializer_;
  std::deque<Item> queue_;
  std::vector<EventLine> batch_;
  std::vector<net::const_buffer> buffers_;
  std::string probe_buf_;
  net::steady_timer timeout_{stream_.get_executor()};
  net::steady_timer bookmark_{stream_.get_executor()};
  net::steady_timer delay_{stream_.get_executor()};
  uint64_t watch_id_ = 0;
  bool writing_ = false;
  bool finishing_ = false;
  bool ended_ = false;
  bool peer_gone_ = false;
  bool closed_ = false;
};

}  // namespace

void ApiServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!stopped_) Accept();
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (options_.tls) {
      std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          this, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), ssl_ctx_))
          ->Start();
    } else {
      std::make_shared<Session<beast::tcp_stream>>(this, beast::tcp_stream(std::move(socket)))->Start();
    }
    Accept();
  });
}

Reply ApiServer::Impl::Handle(const http::request<http::string_body>& req, std::optional<WatchPlan>* watch) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  std::string target(req.target());
  std::string path = target.substr(0, target.find('?'));
  Query q;
  if (size_t qpos = target.find('?'); qpos != std::string::npos) {
    for (absl::string_view kv :
         absl::StrSplit(absl::string_view(target).substr(qpos + 1), '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      q.values[UrlDecode(p.first)] = UrlDecode(p.second);
    }
  }
  if (path == "/healthz" || path == "/readyz" || path == "/livez")
    return Reply{http::status::ok, "ok", "text/plain"};
  if (!options_.token.empty()) {
    std::string auth(req[http::field::authorization]);
    if (auth != absl::StrCat("Bearer ", options_.token)) {
      return StatusReply(ApiError(401, "Unauthorized", "Unauthorized"));
    }
  }
  // Injected failures (fault hook) hit every API request after authentication.
  for (int n = fail_count_.load(); n > 0;) {
    if (fail_count_.compare_exchange_weak(n, n - 1)) {
      if (fail_code_ == 429) {
        Reply r = StatusReply(ApiError(429, "TooManyRequests", "Too many requests, please try again later."));
        json body = json::parse(r.body);
        body["details"] = {{"retryAfterSeconds", 1}};
        r.body = body.dump();
        r.retry_after = 1;
        return r;
      }
      return StatusReply(
          ApiError(fail_code_, "InternalError", "Internal error occurred: injected fault (pnc simulator)"));
    }
  }
  if (path == "/version" || path == "/version/") return Reply{http::status::ok, kVersionJson};
  if (path == "/api" || path == "/api/") {
    return Reply{http::status::ok,
                 json{{"kind", "APIVersions"},
                      {"versions", {"v1"}},
                      {"serverAddressByClientCIDRs",
                       {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", absl::StrCat(host_, ":", port_)}}}}}
                     .dump()};
  }
  if (path == "/apis" || path == "/apis/") {
    return Reply{http::status::ok,
                 json{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array()}}.dump()};
  }
  if (path == "/api/v1" || path == "/api/v1/") return Reply{http::status::ok, ApiResources().dump()};
  if (path == "/openapi/v2") {
    return Reply{http::status::ok, OpenApiV2Protobuf(), "application/octet-stream"};
  }
  if (path == "/openapi/v3") return Reply{http::status::ok, OpenApiV3Root().dump()};
  if (path == "/openapi/v3/api/v1") return Reply{http::status::ok, OpenApiV3CoreV1().dump()};
  if (!absl::StartsWith(path, "/api/v1/")) {
    return StatusReply(ApiError(404, "NotFound", "the server could not find the requested resource"));
  }
  std::vector<std::string> seg = absl::StrSplit(path.substr(8), '/', absl::SkipEmpty());
  auto t = ParseTarget(seg);
  if (!t.ok()) return StatusReply(t.status());
  const ResourceInfo& info = Info(t->resource);
  bool table = WantsTable(std::string(req[http::field::accept]));
  auto object_reply = [&](const absl::StatusOr<ObjectPtr>& o, http::status ok = http::status::ok) {
    if (!o.ok()) return StatusReply(o.status());
    return Reply{ok, (*o)->dump()};
  };
  auto parse_body = [&](json* out) -> absl::Status {
    *out = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (out->is_discarded()) {
      return BadRequestError(
          "the body of the request could not be decoded as JSON (only JSON bodies are supported)");
    }
    return absl::OkStatus();
  };
  bool collection = t->name.empty();
  bool is_watch = t->watch_prefix || q.Bool("watch");
  try {
    switch (req.method()) {
      case http::verb::get: {
        if (is_watch) {
          WatchPlan plan{t->resource, t->ns, {}, 0, table};
          plan.options.label_selector = q.Get("labelSelector");
          plan.options.field_selector = q.Get("fieldSelector");
          if (!collection) {
            // Watching one object = a field selector on its name.
            plan.options.field_selector =
                absl::StrCat("metadata.name=", t->name, plan.options.field_selector.empty() ? "" : ",",
                             plan.options.field_selector);
          }
          plan.options.resource_version = q.Get("resourceVersion");
          plan.options.bookmarks = q.Bool("allowWatchBookmarks");
          if (q.Has("timeoutSeconds") && !absl::SimpleAtoi(q.Get("timeoutSeconds"), &plan.timeout_seconds)) {
            return StatusReply(BadRequestError("timeoutSeconds must be an integer"));
          }
          // Selector errors must be a 400, not an ERROR event: check them before switching to streaming.
          if (auto l = LabelSelector::Parse(plan.options.label_selector); !l.ok()) {
            return StatusReply(BadRequestError(std::string(l.status().message())));
          }
          if (auto f = FieldSelector::Parse(info.plural, plan.options.field_selector); !f.ok()) {
            return StatusReply(BadRequestError(std::string(f.status().message())));
          }
          *watch = plan;
          return Reply{};
        }
        if (!collection) {
          auto o = store_->Get(t->resource, t->ns, t->name);
          if (o.ok() && table) return Reply{http::status::ok, Table(t->resource, {*o}, 0, "").dump()};
          return object_reply(o);
        }
        ListOptions lo;
        lo.label_selector = q.Get("labelSelector");
        lo.field_selector = q.Get("fieldSelector");
        lo.continue_token = q.Get("continue");
        if (q.Has("limit") && !absl::SimpleAtoi(q.Get("limit"), &lo.limit)) {
          return StatusReply(BadRequestError("limit must be an integer"));
        }
        auto list = store_->List(t->resource, t->ns, lo);
        if (!list.ok()) return StatusReply(list.status());
        if (table) {
          return Reply{http::status::ok,
                       Table(t->resource, list->items, list->resource_version, list->continue_token).dump()};
        }
        // Assemble the list text directly: the items are already immutable JSON snapshots.
        json md = {{"resourceVersion", std::to_string(list->resource_version)}};
        if (!list->continue_token.empty()) md["continue"] = list->continue_token;
        if (list->remaining) md["remainingItemCount"] = *list->remaining;
        std::string body =
            absl::StrCat("{\"kind\":\"", info.kind, "List\",\"apiVersion\":\"v1\",\"metadata\":", md.dump(),
                         ",\"items\":[");
        for (size_t i = 0; i < list->items.size(); ++i) {
          if (i > 0) body += ',';
          body += list->items[i]->dump();
        }
        body += "]}";
        return Reply{http::status::ok, std::move(body)};
      }
      case http::verb::post: {
        if (!collection || t->sub != Subresource::kNone) {
          return StatusReply(ApiError(405, "MethodNotAllowed",
                                      "the server does not allow this method on the requested resource"));
        }
        json body;
        if (auto s = parse_body(&body); !s.ok()) return StatusReply(s);
        return object_reply(store_->Create(t->resource, t->ns, std::move(body)), http::status::created);
      }
      case http::verb::put: {
        if (collection) {
          return StatusReply(ApiError(405, "MethodNotAllowed",
                                      "the server does not allow this method on the requested resource"));
        }
        json body;
        if (auto s = parse_body(&body); !s.ok()) return StatusReply(s);
        return object_reply(store_->Update(t->resource, t->ns, t->name, std::move(body), t->sub));
      }
      case http::verb::patch: {
        if (collection) {
          return StatusReply(ApiError(405, "MethodNotAllowed",
                                      "the server does not allow this method on the requested resource"));
        }
        auto type = PatchTypeFromContentType(std::string(req[http::field::content_type]));
        if (!type.ok())
          return StatusReply(ApiError(415, "UnsupportedMediaType", std::string(type.status().message())));
        json body;
        if (auto s = parse_body(&body); !s.ok()) return StatusReply(s);
        return object_reply(store_->Patch(t->resource, t->ns, t->name, *type, body, t->sub));
      }
      case http::verb::delete_: {
        if (collection || t->sub != Subresource::kNone) {
          return StatusReply(ApiError(405, "MethodNotAllowed",
                                      "the server does not allow this method on the requested resource"));
        }
        DeleteOptions del;
        Preconditions& pre = del.preconditions;
        if (q.Has("gracePeriodSeconds")) {
          int64_t g;
          if (!absl::SimpleAtoi(q.Get("gracePeriodSeconds"), &g)) {
            return StatusReply(BadRequestError("gracePeriodSeconds must be an integer"));
          }
          del.grace_period_seconds = g;
        }
        if (!req.body().empty()) {
          json body;
          if (auto s = parse_body(&body); !s.ok()) return StatusReply(s);
          if (body.is_object() && body.contains("preconditions") && body["preconditions"].is_object()) {
            const json& p = body["preconditions"];
            if (p.contains("uid") && p["uid"].is_string()) pre.uid = p["uid"].get<std::string>();
            if (p.contains("resourceVersion") && p["resourceVersion"].is_string()) {
              pre.resource_version = p["resourceVersion"].get<std::string>();
            }
          }
          if (body.is_object() && body.contains("gracePeriodSeconds") &&
              body["gracePeriodSeconds"].is_number_integer()) {
            del.grace_period_seconds = body["gracePeriodSeconds"].get<int64_t>();
          }
        }
        return object_reply(store_->Delete(t->resource, t->ns, t->name, del));
      }
      default:
        return StatusReply(ApiError(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested resource"));
    }
  } catch (const json::exception& e) {
    // Malformed but parseable bodies (wrong types in known fields) end here instead of crashing the server.
    return StatusReply(BadRequestError(absl::StrCat("the request could not be processed: ", e.what())));
  }
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiServer::~ApiServer() { Stop(); }

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(Store* store, ServerOptions options) {
  auto impl = std::make_unique<Impl>(store, std::move(options));
  if (auto s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

int ApiServer::port() const { return impl_->port_; }
std::string ApiServer::url() const { return impl_->url(); }
std::string ApiServer::ca_pem() const { return impl_->cert_.cert_pem; }
std::string ApiServer::Kubeconfig() const { return impl_->Kubeconfig(); }
void ApiServer::FailNextRequests(int count, int http_code) {
  impl_->fail_code_ = http_code;
  impl_->fail_count_ = count;
}
void ApiServer::SetEventDelay(absl::Duration delay) {
  impl_->event_delay_ns_ = absl::ToInt64Nanoseconds(delay);
}
void ApiServer::DropAllWatches() { impl_->store_->DropAllWatches(); }
uint64_t ApiServer::requests() const { return impl_->requests_.load(); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace pnc::sim
