#include "netns/cri/grpc_unary.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "netns/cri/cri_api.grpc.pb.h"
#include "netns/cri/fake_cri_server.h"

namespace pnc::netns {
namespace {

constexpr char kVersion[] = "/runtime.v1.RuntimeService/Version";

// A gRPC C++ server whose Version answers as the test says: the reference implementation of what the
// client must understand.
class ScriptedRuntime : public runtime::v1::RuntimeService::Service {
 public:
  grpc::Status Version(grpc::ServerContext* ctx, const runtime::v1::VersionRequest* req,
                       runtime::v1::VersionResponse* resp) override {
    ++calls;
    if (req->version() == "sleep") {
      while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    if (req->version() == "fail") return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, message);
    if (req->version() == "big") {
      resp->set_runtime_name(std::string(big_bytes, 'x'));
      return grpc::Status::OK;
    }
    resp->set_version(req->version());
    resp->set_runtime_name("scripted");
    return grpc::Status::OK;
  }

  std::atomic<int> calls{0};
  std::string message;
  size_t big_bytes = 0;
};

class GrpcUnaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = FakeCriServer::RandomAbstractEndpoint("pnc-grpc-unary");
    server_ = Serve(service_);
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> c = NewCurlGrpcUnaryClient(endpoint_);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  std::unique_ptr<grpc::Server> Serve(ScriptedRuntime& service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(endpoint_, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    builder.SetMaxSendMessageSize(64 << 20);
    return builder.BuildAndStart();
  }
  void Stop() {
    server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  absl::StatusOr<runtime::v1::VersionResponse> Version(const std::string& v, GrpcUnaryClient& client,
                                                       absl::Duration timeout = absl::Seconds(5)) {
    runtime::v1::VersionRequest req;
    req.set_version(v);
    runtime::v1::VersionResponse resp;
    absl::Status s = client.Call(kVersion, req, resp, timeout);
    if (!s.ok()) return s;
    return resp;
  }

  std::string endpoint_;
  ScriptedRuntime service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcUnaryClient> client_;
};

TEST_F(GrpcUnaryTest, UnaryCallRoundTrip) {
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<runtime::v1::VersionResponse> r = Version(absl::StrCat("v", i), *client_);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->version(), absl::StrCat("v", i));
    EXPECT_EQ(r->runtime_name(), "scripted");
  }
  EXPECT_EQ(service_.calls, 3);
}

TEST_F(GrpcUnaryTest, ErrorStatusAndPercentEncodedMessage) {
  // gRPC sends an error without a message as a trailers-only answer; grpc-message is percent-encoded.
  service_.message = "sandbox 100% gone: caf\xc3\xa9\n\"quoted\"";
  absl::Status s = Version("fail", *client_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(s.message(), service_.message);
}

TEST_F(GrpcUnaryTest, UnknownMethodIsUnimplemented) {
  runtime::v1::VersionRequest req;
  runtime::v1::VersionResponse resp;
  absl::Status s = client_->Call("/runtime.v1.RuntimeService/NoSuchMethod", req, resp, absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
}

TEST_F(GrpcUnaryTest, ResponseSizeBound) {
  absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> small =
      NewCurlGrpcUnaryClient(endpoint_, GrpcUnaryOptions{.max_response_bytes = 1 << 20});
  ASSERT_TRUE(small.ok());
  service_.big_bytes = (1 << 20) - 16;
  absl::StatusOr<runtime::v1::VersionResponse> r = Version("big", **small);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->runtime_name().size(), service_.big_bytes);
  service_.big_bytes = 3 << 20;
  EXPECT_EQ(Version("big", **small).status().code(), absl::StatusCode::kResourceExhausted);
  // The default bound (16 MiB) takes it, and the handle that aborted a transfer still works.
  r = Version("big", *client_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->runtime_name().size(), service_.big_bytes);
  EXPECT_TRUE(Version("after", **small).ok());
}

TEST_F(GrpcUnaryTest, Deadline) {
  absl::Time t0 = absl::Now();
  absl::Status s = Version("sleep", *client_, absl::Milliseconds(200)).status();
  absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GE(took, absl::Milliseconds(150));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_TRUE(Version("after", *client_).ok());
}

TEST_F(GrpcUnaryTest, ConcurrentCalls) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<runtime::v1::VersionResponse> r = Version(absl::StrCat(t, "-", i), *client_);
        if (!r.ok() || r->version() != absl::StrCat(t, "-", i)) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(service_.calls, 400);
}

TEST_F(GrpcUnaryTest, ServerGoneIsUnavailableAtOnceAndBackIsReachedAtOnce) {
  ASSERT_TRUE(Version("before", *client_).ok());
  Stop();
  for (int i = 0; i < 5; ++i) {
    absl::Time t0 = absl::Now();
    absl::Status s = Version("down", *client_).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_LT(absl::Now() - t0, absl::Milliseconds(200));
  }
  ScriptedRuntime again;
  server_ = Serve(again);
  ASSERT_NE(server_, nullptr);
  absl::StatusOr<runtime::v1::VersionResponse> r = Version("back", *client_);
  EXPECT_TRUE(r.ok()) << "first call after the restart: " << r.status();
  Stop();
}

// The server restarts between two calls: no connection outlives a call, so the first call
// after the restart succeeds.
TEST_F(GrpcUnaryTest, ServerRestartBetweenCallsIsTransparent) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Version("before", *client_).ok());
    Stop();
    ScriptedRuntime again;
    server_ = Serve(again);
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<runtime::v1::VersionResponse> r = Version("after", *client_);
    EXPECT_TRUE(r.ok()) << "first call after restart " << i << ": " << r.status();
    EXPECT_EQ(again.calls, 1);
    Stop();
    server_ = Serve(service_);
    ASSERT_NE(server_, nullptr);
  }
}

TEST(GrpcUnaryStandaloneTest, AgainstTheFakeRuntime) {
  absl::StatusOr<std::unique_ptr<FakeCriServer>> server =
      FakeCriServer::Start(FakeCriServer::RandomAbstractEndpoint("pnc-grpc-unary-fake"));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> client = NewCurlGrpcUnaryClient((*server)->endpoint());
  ASSERT_TRUE(client.ok());
  runtime::v1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id("nope");
  runtime::v1::PodSandboxStatusResponse resp;
  EXPECT_EQ(
      (*client)->Call("/runtime.v1.RuntimeService/PodSandboxStatus", req, resp, absl::Seconds(5)).code(),
      absl::StatusCode::kNotFound);
  (*server)->FailNext(1);
  absl::Status s =
      (*client)->Call("/runtime.v1.RuntimeService/PodSandboxStatus", req, resp, absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(s.message(), "injected failure");
}

TEST(GrpcUnaryStandaloneTest, RejectsBadEndpoints) {
  EXPECT_EQ(NewCurlGrpcUnaryClient("relative.sock").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCurlGrpcUnaryClient("tcp://1.2.3.4:5").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCurlGrpcUnaryClient("/" + std::string(120, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewCurlGrpcUnaryClient("unix-abstract:").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(NewCurlGrpcUnaryClient("unix:///run/x.sock").ok());
}

TEST(GrpcUnaryStandaloneTest, NothingListeningIsUnavailable) {
  absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> client =
      NewCurlGrpcUnaryClient("/tmp/pnc-no-such-grpc.sock");
  ASSERT_TRUE(client.ok());
  runtime::v1::VersionRequest req;
  runtime::v1::VersionResponse resp;
  EXPECT_EQ((*client)->Call(kVersion, req, resp, absl::Seconds(1)).code(), absl::StatusCode::kUnavailable);
}

GrpcAnswer Ok(std::string body) {
  GrpcAnswer a;
  a.http_status = 200;
  a.content_type = "application/grpc";
  a.grpc_status = 0;
  a.body = std::move(body);
  return a;
}

TEST(DecodeGrpcUnaryResponseTest, OneFramedMessage) {
  absl::StatusOr<absl::string_view> p = DecodeGrpcUnaryResponse(Ok(GrpcFrame("hello")));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "hello");
  EXPECT_EQ(GrpcFrame("ab"), std::string("\0\0\0\0\2ab", 7));
  p = DecodeGrpcUnaryResponse(Ok(GrpcFrame("")));  // an empty message is a valid message
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "");
}

TEST(DecodeGrpcUnaryResponseTest, NotGrpc) {
  GrpcAnswer a = Ok(GrpcFrame("x"));
  a.http_status = 503;
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kUnavailable);
  a.http_status = 404;
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kUnimplemented);
  a.http_status = 500;
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kUnknown);
  a = Ok(GrpcFrame("x"));
  a.grpc_status.reset();
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kInternal);
  a = Ok(GrpcFrame("x"));
  a.grpc_status = -1;  // unparsable
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kInternal);
  a = Ok(GrpcFrame("x"));
  a.content_type = "text/html";
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kInternal);
}

TEST(DecodeGrpcUnaryResponseTest, StatusFromTrailers) {
  GrpcAnswer a = Ok("");
  a.grpc_status = 14;
  a.grpc_message = "runtime%20restarting%3A 50%";  // a stray % stays as it is
  absl::Status s = DecodeGrpcUnaryResponse(a).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "runtime restarting: 50%");
  a.grpc_status = 42;
  EXPECT_EQ(DecodeGrpcUnaryResponse(a).status().code(), absl::StatusCode::kUnknown);
}

TEST(DecodeGrpcUnaryResponseTest, MalformedFrames) {
  EXPECT_EQ(DecodeGrpcUnaryResponse(Ok("")).status().code(), absl::StatusCode::kInternal);  // no message
  EXPECT_EQ(DecodeGrpcUnaryResponse(Ok(std::string("\0\0\0", 3))).status().code(),
            absl::StatusCode::kInternal);
  std::string compressed = GrpcFrame("x");
  compressed[0] = 1;
  EXPECT_EQ(DecodeGrpcUnaryResponse(Ok(compressed)).status().code(), absl::StatusCode::kInternal);
  std::string truncated = GrpcFrame("hello").substr(0, 7);
  EXPECT_EQ(DecodeGrpcUnaryResponse(Ok(truncated)).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(DecodeGrpcUnaryResponse(Ok(GrpcFrame("a") + GrpcFrame("b"))).status().code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace pnc::netns
