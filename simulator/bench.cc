// Fan-out benchmark of the fake API server: N simulated nodes, each with one pod watch selected by
// fieldSelector=spec.nodeName=<node> (like the controller's), and N x P pods created at a fixed rate.
// Measures create -> watch event received latency (p50/p99/max), and the server's CPU time and peak RSS.
//
//   bazel run -c opt //simulator:bench -- --nodes=1000 --pods_per_node=110 --rate=5000
//
// The watch clients live in a forked child (a raw epoll HTTP/1.1 client, so the server process is measured
// alone); create and receive times are CLOCK_MONOTONIC values in shared memory. Pods are created in-process
// through the Store (what a POST does minus HTTP parsing) so that the measured server work is the commit +
// encode-once + fan-out path.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simulator/apiserver/server.h"
#include "simulator/apiserver/store.h"
#include "tools/cli/help.h"

ABSL_FLAG(int, nodes, 1000, "simulated nodes (one pod watch each)");
ABSL_FLAG(int, pods_per_node, 110, "pods per node");
ABSL_FLAG(double, rate, 5000, "pod creations per second (0: as fast as possible)");
ABSL_FLAG(int, threads, 1, "API server Asio threads");
ABSL_FLAG(int, timeout_s, 300, "give up after this long");

namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double CpuSeconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

// The watch clients: one non-blocking socket per node, all on one epoll. Returns the child's exit code.
int RunClients(int port, int nodes, int total, int64_t* recv_ns, std::atomic<int>* established,
               int timeout_s) {
  int ep = epoll_create1(0);
  struct Conn {
    int fd;
    std::string tail;
  };
  std::vector<Conn> conns(nodes);
  for (int i = 0; i < nodes; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::fprintf(stderr, "client connect %d: %s\n", i, std::strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string req = absl::StrCat(
        "GET /api/v1/pods?watch=true&allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dnode-", i,
        " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
    if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return 1;
    conns[i].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  established->store(nodes);
  int received = 0;
  std::vector<char> buf(1 << 16);
  std::vector<epoll_event> events(256);
  const std::string needle = "\"name\":\"p-";
  int64_t deadline = MonoNs() + int64_t{timeout_s} * 1000000000LL;
  while (received < total && MonoNs() < deadline) {
    int n = epoll_wait(ep, events.data(), events.size(), 200);
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[events[e].data.u32];
      ssize_t got = read(c.fd, buf.data(), buf.size());
      if (got <= 0) continue;
      int64_t now = MonoNs();
      std::string data = c.tail + std::string(buf.data(), got);
      size_t pos = 0, last_end = 0;
      while ((pos = data.find(needle, pos)) != std::string::npos) {
        size_t d = pos + needle.size();
        size_t end = d;
        while (end < data.size() && data[end] >= '0' && data[end] <= '9') ++end;
        if (end == data.size()) break;  // number may continue in the next read
        int idx = std::atoi(data.substr(d, end - d).c_str());
        if (idx >= 0 && idx < total && recv_ns[idx] == 0) {
          recv_ns[idx] = now;
          ++received;
        }
        pos = end;
        last_end = end;
      }
      size_t keep = std::max(last_end, data.size() > 64 ? data.size() - 64 : 0);
      c.tail = data.substr(keep);
    }
  }
  for (auto& c : conns) close(c.fd);
  return received == total ? 0 : 3;
}

double Pct(std::vector<double>& v, double p) {
  if (v.empty()) return -1;
  size_t idx = static_cast<size_t>(p / 100.0 * (v.size() - 1));
  return v[idx];
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists this binary's own flags (absl matches the main file by name otherwise).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "simulator/bench");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage("Watch fan-out benchmark of the fake API server (see file comment).");
  if (int rc = pnc::cli::AnswerHelp(argc, argv, "simulator/bench.cc"); rc >= 0) return rc;
  absl::ParseCommandLine(argc, argv);
  const int nodes = absl::GetFlag(FLAGS_nodes);
  const int per_node = absl::GetFlag(FLAGS_pods_per_node);
  const int total = nodes * per_node;
  // Shared with the client child: [0, total) create times, [total, 2 total) receive times, then a counter.
  size_t bytes = sizeof(int64_t) * 2 * total + sizeof(std::atomic<int>);
  void* shm = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shm == MAP_FAILED) return 1;
  auto* create_ns = static_cast<int64_t*>(shm);
  int64_t* recv_ns = create_ns + total;
  auto* established = new (recv_ns + total) std::atomic<int>(0);
  int port_pipe[2];
  if (pipe(port_pipe) != 0) return 1;

  pid_t child = fork();  // before any thread exists
  if (child == 0) {
    close(port_pipe[1]);
    int port = 0;
    if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port)) _exit(1);
    struct rlimit rl {
      65536, 65536
    };
    setrlimit(RLIMIT_NOFILE, &rl);
    _exit(RunClients(port, nodes, total, recv_ns, established, absl::GetFlag(FLAGS_timeout_s)));
  }
  close(port_pipe[0]);
  struct rlimit rl {
    65536, 65536
  };
  setrlimit(RLIMIT_NOFILE, &rl);

  pnc::sim::Store::Options so;
  so.scheduler = false;
  so.history_size = 10000;
  pnc::sim::Store store(so);
  for (int i = 0; i < nodes; ++i) {
    (void)store.Create(pnc::sim::Resource::kNodes, "", {{"metadata", {{"name", absl::StrCat("node-", i)}}}});
  }
  pnc::sim::ServerOptions opts;
  opts.threads = absl::GetFlag(FLAGS_threads);
  opts.bookmark_interval = absl::Seconds(10);
  auto server = pnc::sim::ApiServer::Start(&store, opts);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  int port = (*server)->port();
  if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port)) return 1;
  int64_t t_watch0 = MonoNs();
  while (store.WatchCount() < static_cast<size_t>(nodes)) absl::SleepFor(absl::Milliseconds(5));
  double watch_setup_ms = (MonoNs() - t_watch0) / 1e6;

  rusage before;
  getrusage(RUSAGE_SELF, &before);
  const double rate = absl::GetFlag(FLAGS_rate);
  int64_t t0 = MonoNs();
  nlohmann::json pod = {
      {"metadata", {{"name", ""}, {"labels", {{"app", "bench"}}}}},
      {"spec", {{"nodeName", ""}, {"containers", {{{"name", "app"}, {"image", "busybox"}}}}}}};
  int failed = 0;
  for (int i = 0; i < total; ++i) {
    if (rate > 0) {
      int64_t due = t0 + static_cast<int64_t>(i / rate * 1e9);
      // Sleep (never spin: the creator's CPU counts as server CPU); pods due meanwhile go out back to back.
      int64_t wait = due - MonoNs();
      if (wait > 0) absl::SleepFor(absl::Nanoseconds(wait));
    }
    pod["metadata"]["name"] = absl::StrCat("p-", i);
    pod["spec"]["nodeName"] = absl::StrCat("node-", i % nodes);
    create_ns[i] = MonoNs();
    if (!store.Create(pnc::sim::Resource::kPods, "default", pod).ok()) ++failed;
  }
  double create_s = (MonoNs() - t0) / 1e9;
  int status = 0;
  waitpid(child, &status, 0);
  double all_s = (MonoNs() - t0) / 1e9;
  rusage after;
  getrusage(RUSAGE_SELF, &after);
  (*server)->Stop();

  std::vector<double> lat;
  int missing = 0;
  for (int i = 0; i < total; ++i) {
    if (recv_ns[i] == 0) {
      ++missing;
      continue;
    }
    lat.push_back((recv_ns[i] - create_ns[i]) / 1e6);
  }
  std::sort(lat.begin(), lat.end());
  std::printf("nodes (concurrent watches)   %d\n", nodes);
  std::printf("pods created                 %d (failed %d) in %.2f s (target rate %.0f/s, achieved %.0f/s)\n",
              total, failed, create_s, rate, total / create_s);
  std::printf("watch setup                  %.0f ms for %d watches\n", watch_setup_ms, nodes);
  std::printf("events received              %zu (missing %d), all delivered %.2f s after the first create\n",
              lat.size(), missing, all_s);
  std::printf("create -> event latency      p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n",
              Pct(lat, 50), Pct(lat, 90), Pct(lat, 99), lat.empty() ? -1.0 : lat.back());
  std::printf(
      "server CPU (user+sys)        %.2f s during the create phase (%.1f us per pod, %.0f%% of one core)\n",
      CpuSeconds(after) - CpuSeconds(before), (CpuSeconds(after) - CpuSeconds(before)) / total * 1e6,
      100.0 * (CpuSeconds(after) - CpuSeconds(before)) / all_s);
  std::printf("server peak RSS              %.0f MiB (store of %d pods + %d watch connections)\n",
              after.ru_maxrss / 1024.0, total, nodes);
  std::printf("client child exit            %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return missing == 0 && failed == 0 ? 0 : 1;
}
