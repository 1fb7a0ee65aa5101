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
#include "simulator/apiserver/discovery.h"
#include "simulator/apiserver/request.h"
#include "simulator/apiserver/routes.h"
#include "simulator/apiserver/table.h"
#include "simulator/apiserver/tls.h"

namespace pnc::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using nlohmann::json;

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
  std::optional<Reply> InjectedFailure();

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
      json o = type == "BOOKMARK" ? *obj : TableOf(resource, {obj}, rv, "");
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
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(reply.status),
                                                                   req.version());
    for (const auto& w : reply.warnings) {
      res->insert(http::field::warning, absl::StrCat("299 - ", nlohmann::json(w).dump()));
    }
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
  if (path == "/healthz" || path == "/readyz" || path == "/livez") return Reply{200, "ok", "text/plain"};
  if (!options_.token.empty()) {
    std::string auth(req[http::field::authorization]);
    if (auth != absl::StrCat("Bearer ", options_.token)) {
      return StatusReply(ApiError(401, "Unauthorized", "Unauthorized"));
    }
  }
  if (auto injected = InjectedFailure()) return *injected;
  if (auto doc = DiscoveryDocument(path, absl::StrCat(host_, ":", port_))) {
    return Reply{200, std::move(doc->body), doc->content_type};
  }
  auto t = ParseResourcePath(path);
  if (!t.ok()) return StatusReply(t.status());
  ApiRequest api{std::string(req.method_string()),
                 ParseQuery(target),
                 std::string(req[http::field::content_type]),
                 std::string(req[http::field::accept]),
                 std::string(req[http::field::user_agent]),
                 &req.body()};
  return ServeResource(store_, api, *t, watch);
}

// Injected failures (fault hook) hit every API request after authentication.
std::optional<Reply> ApiServer::Impl::InjectedFailure() {
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
  return std::nullopt;
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
