// The waiter exactly as the injection template runs it (uid/gid 65532, `--file=<Downward API
// dir>/annotations`,
// `--timeout=...`, nothing else), in a pod network namespace WITHOUT redirection rules, must never exit 0,
// whatever the annotations say: every forged mark a tenant can write at pod creation (a predicted nsfs inode,
// a predicted netns cookie, with an invalid or a valid traffic annotation, probe "none"), valid-looking marks
// carrying the RIGHT identity of that very namespace, probes aimed at the waiter itself, and random garbage.
// Holding the pod means exiting 2 (timeout) or 1 (an `error: ...` status); 3 (usage/I/O) or a hang would mean
// the case proved nothing and fails too. A positive control (same harness, rules installed, the controller's
// real mark) must exit 0, so the harness can see a release.
//
// WAITER: the waiter binary (Bazel: $(location //controller/waiter)); another binary may be passed to
// compare.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "netns/testing/sandbox.h"
#include "rules/annotations.h"
#include "simulator/downward.h"
#include "simulator/netns_identity.h"
#include "simulator/process.h"
#include "simulator/waiter_test_env.h"

namespace pnc::sim {
namespace {

namespace nt = pnc::netns::testing;

constexpr char kIstioStatus[] = "sidecar.istio.io/status";
constexpr uid_t kInjectionUid = 65532;           // the chart's waiter.runAsUser / runAsGroup
constexpr int kTimeoutMs = 2000;                 // --timeout
const absl::Duration kGrace = absl::Seconds(8);  // beyond --timeout before a run counts as hung

using Annotations = std::map<std::string, std::string>;

// What a case's file holds, given the facts of the namespace the waiter will run in.
struct Facts {
  std::string boot_id;
  uint64_t inode = 0, cookie = 0;                      // of the waiter's own netns
  std::string pod_ip, peer_ip;                         // empty for a loopback-only netns
  uint64_t throwaway_inode = 0, throwaway_cookie = 0;  // a netns created and freed just before
};

struct Case {
  std::string name;
  bool bare = false;  // loopback-only netns (no route anywhere) instead of a veth-linked pod netns
  std::function<std::string(const Facts&)> file;  // raw Downward API file content
};

std::string Mark(const Annotations& a) { return FormatDownwardMap(a); }

std::string Identity(const Facts& f) { return IdentityText(f.boot_id, f.cookie); }

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, std::function<std::string(const Facts&)> fn, bool bare = false) {
    cases.push_back({std::move(name), bare, std::move(fn)});
  };
  const std::string invalid = "10.0.0.0/33";
  // What a forging tenant writes at creation (docs: shared/notes/identity-and-proof.md).
  add("status-only", [](const Facts&) { return Mark({{rules::kStatusAnnotation, "initialized"}}); });
  add("a-predicted-inode", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, absl::StrCat(f.throwaway_inode)}});
  });
  add("a-predicted-inode-invalid-annotation", [&](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, absl::StrCat(f.throwaway_inode)},
                 {"traffic.sidecar.istio.io/includeOutboundIPRanges", invalid},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("a-own-inode", [](const Facts& f) {  // the old format with this netns's real inode
    return Mark(
        {{rules::kStatusAnnotation, "initialized"}, {rules::kNetnsAnnotation, absl::StrCat(f.inode)}});
  });
  for (int off : {1, 2, 3}) {
    add(absl::StrCat("b-predicted-cookie+", off), [off](const Facts& f) {
      return Mark({{rules::kStatusAnnotation, "initialized"},
                   {rules::kNetnsAnnotation, IdentityText(f.boot_id, f.throwaway_cookie + off)}});
    });
    add(absl::StrCat("b-predicted-cookie+", off, "-probe-none"), [off](const Facts& f) {
      return Mark({{rules::kStatusAnnotation, "initialized"},
                   {rules::kNetnsAnnotation, IdentityText(f.boot_id, f.throwaway_cookie + off)},
                   {rules::kProbeAnnotation, "none"}});
    });
  }
  add("c-predicted-cookie-invalid-annotation-probe-none", [&](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, IdentityText(f.boot_id, f.throwaway_cookie + 1)},
                 {"traffic.sidecar.istio.io/includeOutboundIPRanges", invalid},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("d-predicted-cookie-valid-annotation-probe-none", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, IdentityText(f.boot_id, f.throwaway_cookie + 1)},
                 {"traffic.sidecar.istio.io/excludeOutboundPorts", "9999"},
                 {rules::kProbeAnnotation, "none"}});
  });
  // The RIGHT identity of the waiter's own netns (a tenant can read its own cookie, or guess it).
  add("own-identity-no-probe-key", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"}, {rules::kNetnsAnnotation, Identity(f)}});
  });
  add("own-identity-probe-test-net", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "target=192.0.2.1:15002,capture=15001"}});
  });
  add("own-identity-probe-ipv6", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "target=[2001:db8::1]:15002,capture=15001"}});
  });
  add("own-identity-probe-own-ip", [](const Facts& f) {  // aimed at the waiter's own listener, no NAT
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, absl::StrCat("target=", f.pod_ip, ":15001,capture=15002")}});
  });
  add("own-identity-probe-own-ip-capture-port", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, absl::StrCat("target=", f.pod_ip, ":15002,capture=15001")}});
  });
  add("own-identity-probe-peer", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, absl::StrCat("target=", f.peer_ip, ":80,capture=15001")}});
  });
  add("own-identity-probe-loopback", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "target=127.0.0.1:15001,capture=15002"}});
  });
  add("own-identity-probe-none", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("own-identity-probe-none-istio-injected", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "none"},
                 {kIstioStatus, R"({"initContainers":["istio-validation"],"containers":["istio-proxy"]})"}});
  });
  add(
      "own-identity-probe-test-net-loopback-only-netns",
      [](const Facts& f) {
        return Mark({{rules::kStatusAnnotation, "initialized"},
                     {rules::kNetnsAnnotation, Identity(f)},
                     {rules::kProbeAnnotation, "target=192.0.2.1:15002,capture=15001"}});
      },
      /*bare=*/true);
  add(
      "own-identity-probe-none-loopback-only-netns",
      [](const Facts& f) {
        return Mark({{rules::kStatusAnnotation, "initialized"},
                     {rules::kNetnsAnnotation, Identity(f)},
                     {rules::kProbeAnnotation, "none"}});
      },
      /*bare=*/true);
  // Near misses of the right identity.
  add("own-cookie-other-boot-id", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, IdentityText("00000000-0000-4000-8000-000000000000", f.cookie)},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("own-identity-uppercase-boot-id", [](const Facts& f) {
    std::string up = f.boot_id;
    for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, IdentityText(up, f.cookie)},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("own-identity-leading-zero-cookie", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, absl::StrCat(f.boot_id, "/0", f.cookie)},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("own-identity-trailing-space", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized"},
                 {rules::kNetnsAnnotation, Identity(f) + " "},
                 {rules::kProbeAnnotation, "none"}});
  });
  add("status-initialized-with-newline", [](const Facts& f) {
    return Mark({{rules::kStatusAnnotation, "initialized\n"},
                 {rules::kNetnsAnnotation, Identity(f)},
                 {rules::kProbeAnnotation, "none"}});
  });
  // Raw lines a kubelet would never write but a file could hold: duplicated keys, unquoted values, no
  // newline.
  add("duplicate-keys", [](const Facts& f) {
    return absl::StrCat(rules::kStatusAnnotation, "=\"error: x\"\n", rules::kStatusAnnotation,
                        "=\"initialized\"\n", rules::kNetnsAnnotation, "=\"", Identity(f), "\"\n",
                        rules::kNetnsAnnotation, "=\"", f.inode, "\"\n", rules::kProbeAnnotation,
                        "=\"none\"\n", rules::kProbeAnnotation, "=\"none\"\n");
  });
  add("unquoted-values", [](const Facts& f) {
    return absl::StrCat(rules::kStatusAnnotation, "=initialized\n", rules::kNetnsAnnotation, "=", Identity(f),
                        "\n", rules::kProbeAnnotation, "=none");
  });
  add("empty-file", [](const Facts&) { return std::string(); });
  add("old-2018-key", [](const Facts&) {
    return Mark({{"istio-pod-network-controller/initialize", "true"},
                 {"istio-pod-network-controller/status", "initialized"}});
  });
  // Random garbage, and random mutations of the right mark (fixed seeds: reproducible).
  for (int seed = 1; seed <= 6; ++seed) {
    add(absl::StrCat("garbage-bytes-", seed), [seed](const Facts&) {
      std::mt19937 rng(seed);
      std::string s(64 + rng() % 512, '\0');
      for (char& c : s) c = static_cast<char>(rng() & 0xff);
      return s;
    });
    add(absl::StrCat("mutated-own-mark-", seed), [seed](const Facts& f) {
      std::mt19937 rng(100 + seed);
      std::string s = Mark({{rules::kStatusAnnotation, "initialized"},
                            {rules::kNetnsAnnotation, Identity(f)},
                            {rules::kProbeAnnotation, "none"}});
      for (int i = 0; i < 3; ++i) s[rng() % s.size()] = "=\"\\/\n 0aZ"[rng() % 10];
      return s;
    });
  }
  return cases;
}

class WaiterNoRulesTest : public WaiterSandboxTest {
 protected:
  // A netns created and freed now: what a tenant's throwaway pod teaches it.
  static NetnsFingerprint Throwaway(const std::string& name) {
    NetnsFingerprint fp;
    {
      auto ns = sandbox_->CreateBareNetns(name);
      EXPECT_TRUE(ns.ok()) << ns.status();
      if (!ns.ok()) return fp;
      auto f = Fingerprint(ns->handle());
      EXPECT_TRUE(f.ok()) << f.status();
      if (f.ok()) fp = *f;
    }
    absl::SleepFor(absl::Milliseconds(30));  // netns teardown is asynchronous in the kernel
    return fp;
  }
};

// One prepared run: its own netns and Downward API volume, the waiter started as the template starts it.
struct WaiterRun {
  std::string name;
  std::optional<nt::PodNetns> pod;
  std::optional<nt::OwnedNetns> bare;
  std::unique_ptr<DownwardVolume> volume;
  std::optional<ChildProcess> child;
  std::string log;
  const netns::NetnsHandle& handle() const { return pod ? pod->handle() : bare->handle(); }
};

absl::Status StartWaiter(const std::string& waiter, WaiterRun& run) {
  SpawnOptions so;
  so.argv = {waiter, absl::StrCat("--file=", run.volume->dir(), "/annotations"),
             absl::StrCat("--timeout=", kTimeoutMs, "ms")};
  so.netns_fd = run.handle().fd();
  so.uid = kInjectionUid;
  so.gid = kInjectionUid;
  so.log_path = run.log;
  auto child = ChildProcess::Spawn(so);
  if (!child.ok()) return child.status();
  run.child.emplace(*std::move(child));
  return absl::OkStatus();
}

std::string Tail(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return last.substr(0, 300);
}

TEST_F(WaiterNoRulesTest, NeverExitsZeroWithoutRulesWhateverTheAnnotations) {
  auto boot = BootId();
  ASSERT_TRUE(boot.ok()) << boot.status();
  std::vector<Case> cases = Cases();
  std::vector<WaiterRun> runs(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    WaiterRun& run = runs[i];
    run.name = cases[i].name;
    Facts facts;
    facts.boot_id = *boot;
    NetnsFingerprint t = Throwaway(absl::StrCat("throwaway-", i));
    facts.throwaway_inode = t.inode;
    facts.throwaway_cookie = t.cookie;
    if (cases[i].bare) {
      auto ns = sandbox_->CreateBareNetns(absl::StrCat("bare-", i));
      ASSERT_TRUE(ns.ok()) << ns.status();
      run.bare.emplace(*std::move(ns));
    } else {
      auto ns = sandbox_->CreatePodNetns(absl::StrCat("pod-", i));
      ASSERT_TRUE(ns.ok()) << ns.status();
      facts.pod_ip = ns->pod_ipv4;
      facts.peer_ip = ns->peer_ipv4;
      run.pod.emplace(*std::move(ns));
    }
    auto fp = Fingerprint(run.handle());
    ASSERT_TRUE(fp.ok()) << fp.status();
    facts.inode = fp->inode;
    facts.cookie = fp->cookie;
    run.volume = std::make_unique<DownwardVolume>(absl::StrCat(work_, "/", run.name, "/podinfo"));
    ::mkdir(absl::StrCat(work_, "/", run.name).c_str(), 0755);
    ASSERT_TRUE(run.volume->Update({{"annotations", cases[i].file(facts)}}).ok());
    run.log = absl::StrCat(work_, "/", run.name, "/waiter.log");
    ASSERT_TRUE(StartWaiter(work_ + "/waiter", run).ok());
  }
  absl::Time deadline = absl::Now() + absl::Milliseconds(kTimeoutMs) + kGrace;
  std::vector<std::string> released, summary;
  for (WaiterRun& run : runs) {
    std::optional<int> code = run.child->WaitFor(std::max(absl::ZeroDuration(), deadline - absl::Now()));
    std::string last = Tail(run.log);
    summary.push_back(
        absl::StrCat(run.name, ": ", code ? absl::StrCat("exit ", *code) : "HUNG", " | ", last));
    if (!code) {
      ADD_FAILURE() << run.name << ": still running " << absl::FormatDuration(kGrace)
                    << " after its --timeout: " << last;
      continue;
    }
    if (*code == 0) released.push_back(run.name);
    EXPECT_TRUE(*code == 1 || *code == 2)
        << run.name << ": exit " << *code << " (0 releases the pod without rules; anything but 1/2 proves "
        << "nothing): " << last;
  }
  std::printf("waiter %s, %zu cases:\n  %s\n", std::getenv("WAITER"), runs.size(),
              absl::StrJoin(summary, "\n  ").c_str());
  EXPECT_TRUE(released.empty()) << "released without rules: " << absl::StrJoin(released, ", ");
}

// The harness can see a release: rules in place + the controller's real mark -> exit 0.
TEST_F(WaiterNoRulesTest, PositiveControlReleasesWithRulesAndTheRealMark) {
  auto boot = BootId();
  ASSERT_TRUE(boot.ok()) << boot.status();
  WaiterRun run;
  run.name = "control";
  auto ns = sandbox_->CreatePodNetns("control");
  ASSERT_TRUE(ns.ok()) << ns.status();
  run.pod.emplace(*std::move(ns));
  SpawnOptions rule;
  rule.argv = {"/usr/sbin/iptables-legacy",
               "-w",
               "-t",
               "nat",
               "-A",
               "OUTPUT",
               "-p",
               "tcp",
               "-d",
               "192.0.2.0/24",
               "-j",
               "REDIRECT",
               "--to-ports",
               "15001"};
  rule.netns_fd = run.handle().fd();
  auto child = ChildProcess::Spawn(rule);
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_EQ(child->Wait(), 0) << "iptables-legacy in the sandbox";
  auto fp = Fingerprint(run.handle());
  ASSERT_TRUE(fp.ok()) << fp.status();
  ::mkdir((work_ + "/control").c_str(), 0755);
  run.volume = std::make_unique<DownwardVolume>(work_ + "/control/podinfo");
  ASSERT_TRUE(run.volume
                  ->Update({{"annotations",
                             Mark({{rules::kStatusAnnotation, "initialized"},
                                   {rules::kNetnsAnnotation, IdentityText(*boot, fp->cookie)},
                                   {rules::kProbeAnnotation, "target=192.0.2.1:15002,capture=15001"}})}})
                  .ok());
  run.log = work_ + "/control/waiter.log";
  ASSERT_TRUE(StartWaiter(work_ + "/waiter", run).ok());
  std::optional<int> code = run.child->WaitFor(absl::Milliseconds(kTimeoutMs) + kGrace);
  ASSERT_TRUE(code.has_value()) << "hung";
  EXPECT_EQ(*code, 0) << Tail(run.log);
}

}  // namespace
}  // namespace pnc::sim
