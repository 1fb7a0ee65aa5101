// Waiter tests: parsing units, and the real binary as a subprocess against a temp directory updated the way
// the kubelet does it (new timestamped dir, `..data_tmp` symlink renamed over `..data`).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "controller/waiter/downward_api.h"
#include "controller/waiter/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/mark.h"

extern char** environ;

namespace pnc::waiter {
namespace {

using ::testing::HasSubstr;

TEST(GoUnquote, Escapes) {
  EXPECT_EQ(GoUnquote(R"("initialized")"), "initialized");
  EXPECT_EQ(GoUnquote(R"("a\"b\\c\n\t")"), "a\"b\\c\n\t");
  EXPECT_EQ(GoUnquote(R"("\x41\u00e9\U0001F600\101")"),
            "A\xc3\xa9\xf0\x9f\x98\x80"
            "A");
  EXPECT_EQ(GoUnquote(R"("")"), "");
  for (const char* bad : {"", "\"", "noquotes", R"("abc\")", R"("\q")", R"("\x4")", R"("\u12")", R"("a"b")",
                          R"("\uD800")", R"("\400")"}) {
    EXPECT_FALSE(GoUnquote(bad).has_value()) << bad;
  }
}

TEST(ParseAnnotations, KubeletFormat) {
  int bad = -1;
  auto m = ParseAnnotations(
      "kubernetes.io/config.seen=\"2024-01-01T00:00:00Z\"\n"
      "pod-network-controller.istio.io/status=\"error: bad \\\"x\\\"\"\n"
      "sidecar.istio.io/status=\"{\\\"a\\\":1}\"\n"
      "garbage line\n"
      "k=unquoted\n",
      &bad);
  EXPECT_EQ(bad, 2);
  EXPECT_EQ(m.at("pod-network-controller.istio.io/status"), "error: bad \"x\"");
  EXPECT_EQ(m.at("sidecar.istio.io/status"), "{\"a\":1}");
  EXPECT_EQ(m.size(), 3u);
}

// ---- subprocess tests ----

std::string GoQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Mimics the kubelet's AtomicWriter for a downwardAPI volume with one item, pod_annotations.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string dir) : dir_(std::move(dir)) {}
  void Write(const std::map<std::string, std::string>& ann) {
    std::string ts = "..2024_01_01_00_00_00." + std::to_string(++gen_);
    std::string tsdir = dir_ + "/" + ts;
    ASSERT_EQ(mkdir(tsdir.c_str(), 0755), 0);
    {
      std::ofstream f(tsdir + "/pod_annotations");
      for (const auto& [k, v] : ann) f << k << "=" << GoQuote(v) << "\n";
    }
    std::string tmp = dir_ + "/..data_tmp";
    ASSERT_EQ(symlink(ts.c_str(), tmp.c_str()), 0);
    ASSERT_EQ(rename(tmp.c_str(), (dir_ + "/..data").c_str()), 0);
    if (gen_ == 1) {
      ASSERT_EQ(symlink("..data/pod_annotations", (dir_ + "/pod_annotations").c_str()), 0);
    }
    if (!old_.empty()) {
      unlink((old_ + "/pod_annotations").c_str());
      rmdir(old_.c_str());
    }
    old_ = tsdir;
  }
  std::string file() const { return dir_ + "/pod_annotations"; }

 private:
  std::string dir_;
  std::string old_;
  int gen_ = 0;
};

std::string MakeTempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/podinfoXXXXXX";
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

struct Child {
  pid_t pid = -1;
  int err_fd = -1;
};

const char kWaiter[] = "controller/waiter/waiter";

Child Spawn(const std::vector<std::string>& args, bool new_netns = false) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kWaiter));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child c;
  if (!new_netns) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    EXPECT_EQ(posix_spawn(&c.pid, kWaiter, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
  } else {
    c.pid = fork();
    if (c.pid == 0) {
      dup2(p[1], 2);
      // A fresh, empty network namespace: packets cannot leave it.
      if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0 && unshare(CLONE_NEWNET) != 0) {
        dprintf(2, "UNSHARE_FAILED: %s\n", strerror(errno));
        _exit(99);
      }
      execv(kWaiter, argv.data());
      _exit(98);
    }
  }
  close(p[1]);
  c.err_fd = p[0];
  return c;
}

// Exit code and stderr; -1 if it did not exit within 20 s (then it is killed).
std::pair<int, std::string> Finish(Child& c) {
  std::string err;
  char buf[4096];
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() < end) {
    pollfd p{c.err_fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      ssize_t n = read(c.err_fd, buf, sizeof buf);
      if (n > 0) {
        err.append(buf, n);
        continue;
      }
      eof = true;  // the child exited (stderr closed)
    }
  }
  int status = 0;
  if (!eof) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    close(c.err_fd);
    return {-1, err};
  }
  waitpid(c.pid, &status, 0);
  close(c.err_fd);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), err};
}

bool StillRunning(const Child& c) {
  int status;
  return waitpid(c.pid, &status, WNOHANG) == 0;
}

constexpr char kKey[] = "pod-network-controller.istio.io/status";
constexpr char kNetnsKey[] = "pod-network-controller.istio.io/netns";
constexpr char kProbeKey[] = "pod-network-controller.istio.io/probe";

// The children share this process's network namespace (except the new_netns ones).
rules::NetnsIdentity OwnIdentity() {
  rules::NetnsIdentity id;
  std::string err;
  EXPECT_TRUE(ReadOwnIdentity(&id, &err)) << err;
  return id;
}
std::string OwnNetns() { return rules::FormatNetnsIdentity(OwnIdentity()); }
// The same boot, another (e.g. the previous sandbox's) cookie.
std::string OtherNetns() {
  rules::NetnsIdentity id = OwnIdentity();
  id.cookie += 1;
  return rules::FormatNetnsIdentity(id);
}
constexpr char kPlanKey[] = "pod-network-controller.istio.io/plan";
// A mark as the controller writes it for a pod with no capturable outbound connection. These tests exercise
// the wake-up and the identity in the test's own network namespace, where nothing may add the controller's
// proof marker; those that expect a release pass --probe=false (debugging switch, identity still required).
// The probe and the marker are exercised in namespaces of their own in probe_test and in the simulator.
std::map<std::string, std::string> Marked(const std::string& netns) {
  return {{kKey, "initialized"}, {kNetnsKey, netns}, {kProbeKey, "none"}, {kPlanKey, "0123456789abcdef"}};
}
constexpr char kNoProof[] = "--probe=false";

TEST(Waiter, WaitsThroughSwapsThenExitsZeroOnInitialized) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write({{"other", "x"}});
  Child c = Spawn({"--file=" + w.file(), "--timeout=30s", kNoProof});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(StillRunning(c));
  w.Write({{"other", "y"}, {kKey, "pending"}});  // not conclusive
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(StillRunning(c));
  std::map<std::string, std::string> ann = Marked(OwnNetns());
  ann["other"] = "y";
  w.Write(ann);
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 0) << err;
  EXPECT_THAT(err, HasSubstr("NOT proven"));
}

TEST(Waiter, StatusForAnotherNetnsKeepsWaitingUntilRebound) {
  // A recreated sandbox: the pod still says initialized, bound to the previous (now gone) netns.
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write(Marked(OtherNetns()));
  Child c = Spawn({"--file=" + w.file(), "--timeout=30s", kNoProof});
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(StillRunning(c));
  w.Write(Marked(OwnNetns()));  // the controller re-applied and rebound
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 0) << err;
}

TEST(Waiter, StatusForAnotherNetnsTimesOutSayingSo) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write(Marked(OtherNetns()));
  Child c = Spawn({"--file=" + w.file(), "--timeout=300ms"});
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 2) << err;
  EXPECT_THAT(err, HasSubstr("but for netns " + OtherNetns() + ", this pod's is " + OwnNetns()));
  EXPECT_THAT(err, HasSubstr("sandbox was recreated, or the mark is forged"));
}

// What a tenant can write without the admission policy: none of it releases the pod.
TEST(Waiter, ForgedOrMalformedMarksNeverRelease) {
  rules::NetnsIdentity own = OwnIdentity();
  rules::NetnsIdentity old_boot = own;
  old_boot.boot_id[0] = old_boot.boot_id[0] == 'a' ? 'b' : 'a';
  struct Case {
    std::map<std::string, std::string> ann;
    std::string says;
  };
  std::vector<Case> cases = {
      {{{kKey, "initialized"}, {kNetnsKey, "4026532281"}, {kProbeKey, "none"}}, "is not a netns identity"},
      {{{kKey, "initialized"}, {kNetnsKey, rules::FormatNetnsIdentity(old_boot)}, {kProbeKey, "none"}},
       "marked before a reboot"},
      {{{kKey, "initialized"}, {kNetnsKey, OwnNetns() + " "}, {kProbeKey, "none"}},
       "is not a netns identity"},
      {{{kKey, "initialized"}, {kNetnsKey, OwnNetns()}}, "probe is missing"},
      // The exact identity (a tenant can predict cookies) and `none`: still no proof in this netns.
      {Marked(OwnNetns()), "the controller's marker is not in this network namespace"},
      {{{kKey, "initialized"}, {kNetnsKey, OwnNetns()}, {kProbeKey, "none"}}, "no valid"},
      {{{kKey, "initialized"}, {kNetnsKey, OwnNetns()}, {kProbeKey, "target=127.0.0.1:15002,capture=15001"}},
       "is not a valid probe"},
      {{{kKey, "initialized"}, {kNetnsKey, OwnNetns()}, {kProbeKey, "NONE"}}, "is not a valid probe"},
      {{{kKey, "Initialized"}, {kNetnsKey, OwnNetns()}, {kProbeKey, "none"}}, "\"Initialized\""},
  };
  for (const Case& tc : cases) {
    std::string dir = MakeTempDir();
    AtomicWriter w(dir);
    w.Write(tc.ann);
    Child c = Spawn({"--file=" + w.file(), "--timeout=200ms"});
    auto [code, err] = Finish(c);
    EXPECT_EQ(code, 2) << err;
    EXPECT_THAT(err, HasSubstr(tc.says));
  }
}

TEST(Waiter, UnboundStatusIsNotAcceptedByDefault) {
  // Forged at pod creation (or written by a controller that predates the binding).
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write({{kKey, "initialized"}, {kProbeKey, "none"}});
  {
    Child c = Spawn({"--file=" + w.file(), "--timeout=300ms"});
    auto [code, err] = Finish(c);
    EXPECT_EQ(code, 2) << err;
    EXPECT_THAT(err, HasSubstr("without pod-network-controller.istio.io/netns"));
  }
  // Debugging switches only: both must be turned off for a bare `initialized` to pass, and it says so.
  for (const char* flag : {"--require_netns_match=false", "--require-netns-match=false"}) {
    Child c = Spawn({"--file=" + w.file(), flag, "--probe=false", "--timeout=30s"});
    auto [code, err] = Finish(c);
    EXPECT_EQ(code, 0) << flag << ": " << err;
    EXPECT_THAT(err, HasSubstr("NOT proven"));
  }
  {
    Child c = Spawn({"--file=" + w.file(), "--require_netns_match=maybe"});
    EXPECT_EQ(Finish(c).first, 3);
  }
}

TEST(Waiter, BindingIsComparedWithTheWaitersOwnNetns) {
  // The waiter runs in a fresh netns; a binding to the test's netns (the "old sandbox") must not pass.
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write(Marked(OwnNetns()));
  Child c = Spawn({"--file=" + w.file(), "--timeout=300ms"}, /*new_netns=*/true);
  auto [code, err] = Finish(c);
  if (code == 99) FAIL() << "cannot create a network namespace (needs root or user namespaces): " << err;
  EXPECT_EQ(code, 2) << err;
  EXPECT_THAT(err, HasSubstr("but for netns " + OwnNetns() + ", this pod's is "));
}

TEST(Waiter, ErrorAnnotationExitsNonZeroWithTheReason) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write({});
  Child c = Spawn({"--file", w.file()});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  w.Write(
      {{kKey, "error: traffic.sidecar.istio.io/excludeInboundPorts: \"70000\" is not a port (1..65535)"}});
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 1) << err;
  EXPECT_THAT(err, HasSubstr("excludeInboundPorts: \"70000\" is not a port"));
}

TEST(Waiter, ErrorReasonIsEscapedAndBounded) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  // Anyone who may edit the pod can write this annotation: a forged log line and terminal escapes must not
  // reach the log verbatim, and a 200 KB value is cut.
  w.Write({{kKey, "error: bad\n{\"level\":\"info\"}\x1b[2J" + std::string(200000, 'z')}});
  Child c = Spawn({"--file=" + w.file(), "--timeout=30s"});
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 1) << err;
  EXPECT_THAT(err, HasSubstr("bad\\x0a{\"level\":\"info\"}\\x1b[2J"));
  EXPECT_EQ(err.find('\x1b'), std::string::npos);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err.substr(0, 300);  // one line
  EXPECT_LT(err.size(), 2000u);
  EXPECT_THAT(err, HasSubstr("zzz..."));
}

TEST(Waiter, TimeoutIsNonZeroWithAClearMessage) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write({{kKey, "something-else"}});
  Child c = Spawn({"--file=" + w.file(), "--timeout=300ms"});
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 2) << err;
  EXPECT_THAT(err, HasSubstr("timed out"));
  EXPECT_THAT(err, HasSubstr("something-else"));
}

TEST(Waiter, AlreadyInitializedAndLateFileAndLegacyFlagSpellings) {
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write(Marked(OwnNetns()));
  auto [code, err] = [&] {
    Child c = Spawn({"--file=" + w.file(), kNoProof});
    return Finish(c);
  }();
  EXPECT_EQ(code, 0) << err;

  // The 2018 tool's dashed names, Go-style single dash, custom key/value; the file does not exist yet.
  std::string dir2 = MakeTempDir();
  AtomicWriter w2(dir2);
  Child c = Spawn({"-file", w2.file(), "--annotation-key=example.com/ready", "--annotation-value", "yes",
                   "--timeout=30", "--require-netns-match=false", "--probe=false"});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(StillRunning(c));
  w2.Write({{"example.com/ready", "yes"}});
  auto [code2, err2] = Finish(c);
  EXPECT_EQ(code2, 0) << err2;
}

TEST(Waiter, UsageErrors) {
  {
    Child c = Spawn({"--help"});
    EXPECT_EQ(Finish(c).first, 0);
  }
  {
    Child c = Spawn({"--bogus=1"});
    auto [code, err] = Finish(c);
    EXPECT_EQ(code, 3);
    EXPECT_THAT(err, HasSubstr("unknown flag"));
  }
  {
    Child c = Spawn({"--timeout=abc"});
    EXPECT_EQ(Finish(c).first, 3);
  }
  {
    Child c = Spawn({"--file=/nonexistent-dir/pod_annotations"});
    auto [code, err] = Finish(c);
    EXPECT_EQ(code, 3);
    EXPECT_THAT(err, HasSubstr("cannot watch directory"));
  }
}

TEST(Waiter, ProbeFailureKeepsWaitingAndSaysWhy) {
  // An empty network namespace: no route, no rules. Even with the identity check off, the probe the mark
  // names must pass, and it cannot.
  std::string dir = MakeTempDir();
  AtomicWriter w(dir);
  w.Write({{kKey, "initialized"}, {kProbeKey, "target=192.0.2.1:15002,capture=15001"}});
  Child c =
      Spawn({"--file=" + w.file(), "--probe_timeout=100ms", "--timeout=700ms", "--require_netns_match=false"},
            /*new_netns=*/true);
  auto [code, err] = Finish(c);
  if (code == 99) {
    FAIL() << "cannot create a network namespace for the probe test (needs root or unprivileged user "
              "namespaces): "
           << err;
  }
  EXPECT_EQ(code, 2) << err;
  EXPECT_THAT(err, HasSubstr("the datapath probe fails"));
}

TEST(Waiter, RemovedProbeFlagsSaySo) {
  Child c = Spawn({"--probe_target=192.0.2.1:80"});
  auto [code, err] = Finish(c);
  EXPECT_EQ(code, 3);
  EXPECT_THAT(err, HasSubstr("was removed"));
}

}  // namespace
}  // namespace pnc::waiter
