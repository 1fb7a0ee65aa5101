// Waiter wake-up latency: time from the completed `..data` rename (the kubelet's atomic swap) to
// WaitForAnnotation returning kReady in another thread that was blocked in poll() on the directory's inotify
// fd. Real files in $TEST_TMPDIR or /tmp. Reports p50/p99/max over all swaps of the run (>= 500).
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "controller/waiter/wait.h"

extern char** environ;

namespace pnc::waiter {
namespace {

using Clock = std::chrono::steady_clock;

std::string OwnNetns() {
  rules::NetnsIdentity id;
  std::string err;
  if (!ReadOwnIdentity(&id, &err)) std::abort();
  return rules::FormatNetnsIdentity(id);
}

class Writer {
 public:
  explicit Writer(std::string dir) : dir_(std::move(dir)) {}
  // Returns the time right after the rename that publishes the new content.
  Clock::time_point Write(const std::string& status, const std::string& filler) {
    std::string ts = "..ts_" + std::to_string(++gen_);
    std::string tsdir = dir_ + "/" + ts;
    mkdir(tsdir.c_str(), 0755);
    {
      std::ofstream f(tsdir + "/pod_annotations");
      // The controller binds the status to the pod's netns; the waiter (and this process) share ours. The
      // datapath probe is measured apart (probe_bench): `none` here isolates the wake-up.
      f << filler << "pod-network-controller.istio.io/status=\"" << status << "\"\n"
        << "pod-network-controller.istio.io/netns=\"" << OwnNetns() << "\"\n"
        << "pod-network-controller.istio.io/probe=\"none\"\n";
    }
    std::string tmp = dir_ + "/..data_tmp";
    if (symlink(ts.c_str(), tmp.c_str()) != 0) std::abort();
    if (rename(tmp.c_str(), (dir_ + "/..data").c_str()) != 0) std::abort();
    Clock::time_point t = Clock::now();
    if (gen_ == 1) {
      if (symlink("..data/pod_annotations", (dir_ + "/pod_annotations").c_str()) != 0) std::abort();
    }
    if (!old_.empty()) {
      unlink((old_ + "/pod_annotations").c_str());
      rmdir(old_.c_str());
    }
    old_ = tsdir;
    return t;
  }
  std::string file() const { return dir_ + "/pod_annotations"; }

 private:
  std::string dir_, old_;
  int gen_ = 0;
};

void BM_WaiterWakeupAfterSwap(benchmark::State& state) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/waiterbenchXXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  // ~40 other annotations, as on an Istio pod (the file is re-read and parsed on every wake-up).
  std::string filler;
  for (int i = 0; i < 40; ++i)
    filler += "example.com/annotation-" + std::to_string(i) + "=\"" + std::string(60, 'v') + "\"\n";
  Writer w(tmpl);
  w.Write("pending", filler);
  WaitOptions o;
  o.file = w.file();
  o.timeout_ms = 10000;
  std::vector<double> us;
  double reads = 0, late_start = 0;
  for (auto _ : state) {
    w.Write("pending", filler);
    std::atomic<bool> done{false};
    Clock::time_point woke, started;
    std::thread waiter([&] {
      started = Clock::now();
      AnnotationWatcher watcher(o);
      WaitResult r = watcher.Wait();
      woke = Clock::now();  // before ~AnnotationWatcher (inotify teardown waits for an SRCU grace period)
      reads += r.reads;
      if (r.outcome != WaitOutcome::kReady) std::abort();
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let it block in poll()
    Clock::time_point swapped = w.Write("initialized", filler);
    waiter.join();
    if (started > swapped) ++late_start;
    double d = std::chrono::duration<double, std::micro>(woke - swapped).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = us.back();
  state.counters["swaps"] = static_cast<double>(us.size());
  state.counters["reads_per_wait"] = reads / us.size();
  state.counters["late_start"] = late_start;
}
BENCHMARK(BM_WaiterWakeupAfterSwap)->Iterations(1000)->UseManualTime()->Unit(benchmark::kMicrosecond);

// End to end as the kubelet sees it: the static waiter binary blocked on the directory, swap, until the
// process has exited (waitpid). Includes process teardown, where closing the inotify fd waits for a kernel
// SRCU grace period.
void BM_WaiterProcessExitAfterSwap(benchmark::State& state) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/waiterbenchXXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const char* bin = "controller/waiter/waiter";
  if (access(bin, X_OK) != 0) {
    state.SkipWithError("waiter binary not found (run with bazel run from the workspace)");
    return;
  }
  Writer w(tmpl);
  w.Write("pending", "");
  std::string file_arg = "--file=" + w.file();
  std::vector<double> us;
  for (auto _ : state) {
    w.Write("pending", "");
    char* argv[] = {const_cast<char*>(bin), file_arg.data(), nullptr};
    pid_t pid;
    if (posix_spawn(&pid, bin, nullptr, nullptr, argv, environ) != 0) std::abort();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let it start and block
    Clock::time_point swapped = w.Write("initialized", "");
    int status;
    waitpid(pid, &status, 0);
    Clock::time_point exited = Clock::now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::abort();
    double d = std::chrono::duration<double, std::micro>(exited - swapped).count();
    us.push_back(d);
    state.SetIterationTime(d / 1e6);
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))]; };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = us.back();
}
BENCHMARK(BM_WaiterProcessExitAfterSwap)->Iterations(500)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Baseline for the same machine and load: a thread blocked in poll() on a pipe, woken by a one-byte write.
// The difference to BM_WaiterWakeupAfterSwap is the waiter's own cost (inotify delivery, re-read, parse).
void BM_PipeWakeupBaseline(benchmark::State& state) {
  std::vector<double> us;
  for (auto _ : state) {
    int p[2];
    if (pipe(p) != 0) std::abort();
    Clock::time_point woke;
    std::thread waiter([&] {
      pollfd pf{p[0], POLLIN, 0};
      if (poll(&pf, 1, 10000) != 1) std::abort();
      woke = Clock::now();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    char c = 1;
    if (write(p[1], &c, 1) != 1) std::abort();
    Clock::time_point sent = Clock::now();
    waiter.join();
    close(p[0]);
    close(p[1]);
    double d = std::chrono::duration<double, std::micro>(woke - sent).count();
    us.push_back(d);
    state.SetIterationTime(std::max(d, 0.0) / 1e6);
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))]; };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = us.back();
}
BENCHMARK(BM_PipeWakeupBaseline)->Iterations(1000)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pnc::waiter

BENCHMARK_MAIN();
