// Runs the real //controller:controller binary against an in-test API server through a kubeconfig: it must
// list and watch (node-scoped), become ready, expose metrics, retry a pod whose sandbox cannot be found (the
// cgroup locator scans an empty fake /proc, so no network namespace is ever touched), and exit 0 on SIGTERM.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/test_http_server.h"

extern char** environ;

namespace pnc::controller {
namespace {

using kube::testing::HttpConn;
using kube::testing::HttpRequest;
using kube::testing::TestHttpServer;
using ::testing::HasSubstr;
using ::testing::Not;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  close(fd);
  return out;
}

constexpr char kPods[] =
    R"({"kind":"PodList","metadata":{"resourceVersion":"100"},"items":[)"
    R"({"metadata":{"name":"member","namespace":"shop","uid":"11111111-2222-3333-4444-555555555555",)"
    R"("resourceVersion":"99","annotations":{"sidecar.istio.io/status":"{}"}},)"
    R"("spec":{"nodeName":"node-a","containers":[{"name":"app"},{"name":"istio-proxy"}]},)"
    R"("status":{"phase":"Pending","podIPs":[{"ip":"10.1.2.3"}]}},)"
    R"({"metadata":{"name":"plain","namespace":"shop","uid":"u-plain","resourceVersion":"98"},)"
    R"("spec":{"nodeName":"node-a","containers":[{"name":"app"}]}}]})";
constexpr char kNamespaces[] =
    R"({"kind":"NamespaceList","metadata":{"resourceVersion":"100"},"items":[{"metadata":{"name":"shop"}}]})";

// Runs the binary to completion; returns (exit code, stderr).
std::pair<int, std::string> RunToExit(std::vector<std::string> args) {
  args.insert(args.begin(), "controller/controller");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(errp[1]);
  if (rc != 0) {
    close(errp[0]);
    return {-1, "posix_spawn failed"};
  }
  std::string err;
  char buf[4096];
  ssize_t n;
  while ((n = read(errp[0], buf, sizeof buf)) > 0) err.append(buf, n);  // EOF when it exits
  close(errp[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

// Runs the binary to completion with stdout and stderr on separate pipes; returns (exit code, stdout,
// stderr).
struct Outputs {
  int code = -1;
  std::string out, err;
};
Outputs RunCapturingBoth(std::vector<std::string> args) {
  args.insert(args.begin(), "controller/controller");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int outp[2], errp[2];
  if (pipe2(outp, O_CLOEXEC) != 0) return {};
  if (pipe2(errp, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
  posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(outp[1]);
  close(errp[1]);
  Outputs o;
  if (rc == 0) {
    pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    std::string* sink[2] = {&o.out, &o.err};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0 && poll(fds, 2, 10000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
          sink[i]->append(buf, n);
        } else {
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  close(outp[0]);
  close(errp[0]);
  return o;
}

// What the controller maps into every node's memory: the CRI calls go over libcurl (netns/cri/grpc_unary.h),
// not the gRPC runtime; CRI messages are protobuf-lite; Abseil is linked into the binary. The dynamic
// loader lists what the binary loads (LD_TRACE_LOADED_OBJECTS, what ldd uses) without running it.
TEST(ControllerBinary, LoadsNeitherTheGrpcRuntimeNorFullProtobufNorSharedAbseil) {
  ASSERT_EQ(setenv("LD_TRACE_LOADED_OBJECTS", "1", 1), 0);
  Outputs o = RunCapturingBoth({});
  unsetenv("LD_TRACE_LOADED_OBJECTS");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("libcurl.so"));  // the list is the real one
  EXPECT_THAT(o.out, HasSubstr("libprotobuf-lite.so"));
  EXPECT_THAT(o.out, Not(HasSubstr("libgrpc")));
  EXPECT_THAT(o.out, Not(HasSubstr("libgpr")));
  EXPECT_THAT(o.out, Not(HasSubstr("libprotobuf.so")));
  EXPECT_THAT(o.out, Not(HasSubstr("libabsl_")));
}

// --help must succeed (exit 0, usage on stdout) without a node name or an API server; absl's own --help
// handling exits 1. --help lists this binary's flags, --helpfull the libraries' too; after "--" it is no
// flag.
TEST(ControllerBinary, HelpExitsZeroWithUsageOnStdout) {
  for (const char* flag : {"--help", "-h", "-help", "--helpshort"}) {
    Outputs o = RunCapturingBoth({flag});
    EXPECT_EQ(o.code, 0) << flag << ": " << o.err;
    EXPECT_THAT(o.out, HasSubstr("Usage: controller --node_name=NODE")) << flag;
    EXPECT_THAT(o.out, HasSubstr("--node_name")) << flag;
    EXPECT_THAT(o.out, HasSubstr("--log_level (default \"info\")")) << flag;
    EXPECT_THAT(o.out, HasSubstr("--cri_endpoint")) << flag;
    EXPECT_THAT(o.out, Not(HasSubstr("--flagfile"))) << flag << ": only this binary's flags";
    EXPECT_EQ(o.err, "") << flag;
  }
  Outputs full = RunCapturingBoth({"--node_name=n", "--helpfull"});
  EXPECT_EQ(full.code, 0) << full.err;
  EXPECT_THAT(full.out, HasSubstr("--workers"));
  EXPECT_THAT(full.out, HasSubstr("--flagfile"));  // absl's own flags, linked in
  // Not a help request: "--help" after "--" is a positional argument; the missing node name fails as usual.
  Outputs positional = RunCapturingBoth({"--kubeconfig=/nonexistent", "--", "--help"});
  EXPECT_EQ(positional.code, 2) << positional.out;
  EXPECT_THAT(positional.err, HasSubstr("no node name"));
}

TEST(ControllerBinary, RejectsOutOfRangeFlagsBeforeConnecting) {
  for (const auto& [flag, says] : std::vector<std::pair<std::string, std::string>>{
           {"--proxy_uid=-1", "bad --proxy_uid"},
           {"--proxy_gid=-5", "bad --proxy_gid"},
           {"--workers=0", "bad --workers"},
           {"--workers=100000", "bad --workers"},
           {"--sandbox_poll_interval=-1s", "bad --sandbox_poll"},
           {"--sandbox_poll_fast_interval=0", "bad --sandbox_poll"}}) {
    auto [code, err] = RunToExit({"--node_name=node-a", "--kubeconfig=/nonexistent", flag});
    EXPECT_EQ(code, 2) << flag << ": " << err;
    EXPECT_THAT(err, HasSubstr(says)) << flag;
  }
}

TEST(ControllerBinary, ListsWatchesBecomesReadyRetriesAndStopsOnSigterm) {
  TestHttpServer api([&](const HttpRequest& req, HttpConn& conn) {
    bool watch = absl::StrContains(req.target, "watch=true");
    if (watch) {
      conn.StartChunked();
      conn.Chunk(R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"101"}}})"
                 "\n");
      while (!api.stopping() && !conn.WaitPeerClosed(50)) {
      }
      return;
    }
    if (absl::StartsWith(req.target, "/api/v1/pods")) {
      conn.Respond(200, kPods);
    } else if (absl::StartsWith(req.target, "/api/v1/namespaces?")) {
      conn.Respond(200, kNamespaces);
    } else {
      conn.Respond(404, R"({"kind":"Status","code":404})");
    }
  });

  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/ctrlbin";
  mkdir(dir.c_str(), 0755);
  mkdir((dir + "/proc").c_str(), 0755);  // an empty fake /proc: the cgroup locator finds nothing
  std::string kubeconfig = dir + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\ncurrent-context: sim\n"
                            << "clusters:\n- name: sim\n  cluster:\n    server: " << api.url() << "\n"
                            << "contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: u\n"
                            << "users:\n- name: u\n  user:\n    token: test-token\n";
  int mport = FreePort();
  std::vector<std::string> args = {"controller/controller",
                                   "--kubeconfig=" + kubeconfig,
                                   "--node_name=node-a",
                                   "--locator=cgroup",
                                   "--proc_root=" + dir + "/proc",
                                   "--backend=auto",
                                   "--metrics_address=127.0.0.1:" + std::to_string(mport),
                                   "--workers=2",
                                   "--shutdown_grace=5s"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int errp[2];
  ASSERT_EQ(pipe2(errp, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(errp[1]);
  fcntl(errp[0], F_SETFL, O_NONBLOCK);
  std::string logs;
  auto drain = [&] {
    char buf[8192];
    ssize_t n;
    while ((n = read(errp[0], buf, sizeof buf)) > 0) logs.append(buf, n);
  };

  // Wait for readiness and for the member pod to have been retried (its sandbox cannot be found).
  std::string metrics;
  bool ready = false, retried = false;
  for (absl::Time end = absl::Now() + absl::Seconds(30); absl::Now() < end && !(ready && retried);) {
    absl::SleepFor(absl::Milliseconds(50));
    drain();
    ready = absl::StrContains(Get(mport, "/readyz"), "200 OK");
    metrics = Get(mport, "/metrics");
    retried = absl::StrContains(metrics, "pnc_errors_total{reason=\"locate_not_found\"}");
  }
  EXPECT_TRUE(ready) << logs;
  EXPECT_TRUE(retried) << metrics << logs;
  EXPECT_THAT(Get(mport, "/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(metrics, HasSubstr("pnc_reconciles_total{outcome=\"skipped\"}"));  // the non-member

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = -1;
  for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (status == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "controller did not exit after SIGTERM";
  }
  drain();
  close(errp[0]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << logs;
  EXPECT_THAT(logs, HasSubstr("\"msg\":\"shutting down\""));
  EXPECT_THAT(logs, ::testing::Not(HasSubstr("test-token")));  // never log secrets

  bool node_scoped = false;
  for (const HttpRequest& r : api.requests()) {
    if (absl::StartsWith(r.target, "/api/v1/pods")) {
      EXPECT_THAT(r.target, HasSubstr("fieldSelector=spec.nodeName%3Dnode-a"));
      node_scoped = true;
    }
    EXPECT_EQ(r.headers.count("authorization") ? r.headers.at("authorization") : "", "Bearer test-token");
    EXPECT_NE(r.method, "PATCH");  // nothing may be marked: no rules were applied
  }
  EXPECT_TRUE(node_scoped);
}

}  // namespace
}  // namespace pnc::controller
