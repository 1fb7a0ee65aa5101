// Functional tests of every Backend against real network namespaces and real sockets (netns/testing sandbox).
//
// For each backend: Apply + ReadBack equality for several rulesets, idempotency (apply twice, apply changed,
// foreign rules untouched), Remove, and traffic: outbound redirect to 15001 with the right original
// destination, proxy uid bypass, inbound redirect to 15006, excluded ports, IPv6, TPROXY inbound, DNS
// capture. Packets only travel between the sandbox's own namespaces.
#include <sys/stat.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/exec.h"
#include "netns/executor.h"
#include "netns/functional_backends.h"
#include "netns/iptc_backend.h"
#include "netns/restore_backend.h"
#include "netns/testing/fixtures.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sandbox.h"
#include "netns/testing/sockets.h"
#include "rules/golden_cases.h"
#include "rules/plan.h"
#include "rules/test_util.h"

namespace pnc::netns {
namespace {

using testing::Endpoint;
using testing::FixtureOptions;
using testing::IstioLikeRuleset;
using testing::PodNetns;
using testing::UniqueFd;

constexpr absl::Duration kTimeout = absl::Seconds(3);
constexpr uint32_t kAppUid = 1000;
constexpr uint32_t kProxyUid = 1337;

#define ASSERT_OK(expr)                                         \
  do {                                                          \
    const absl::Status pnc_status_ = (expr);                    \
    ASSERT_TRUE(pnc_status_.ok()) << #expr ": " << pnc_status_; \
  } while (0)

// Runs argv inside `ns` (no shell); returns stdout or the failure with stderr.
absl::StatusOr<std::string> RunIn(const NetnsHandle& ns, const std::vector<std::string>& argv) {
  std::string out;
  absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
    std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    if (const char* lock = getenv("XTABLES_LOCKFILE")) env.push_back(absl::StrCat("XTABLES_LOCKFILE=", lock));
    absl::StatusOr<ExecResult> r = Exec(argv, env, "", absl::Seconds(10));
    if (!r.ok()) return r.status();
    if (r->exit_code != 0)
      return absl::InternalError(absl::StrCat(argv[0], " exited ", r->exit_code, ": ", r->err));
    out = r->out;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

class BackendTest : public ::testing::TestWithParam<FunctionalBackend> {
 protected:
  void SetUp() override {
    PNC_SANDBOX_OR_SKIP(sandbox_);
    backend_ = GetParam().make();
  }

  // A fresh pod namespace per test, named after the test so failures are easy to place.
  PodNetns NewPod(const std::string& suffix = "") {
    static int counter = 0;
    absl::StatusOr<PodNetns> pod = sandbox_->CreatePodNetns(absl::StrCat("ft-", ++counter, suffix));
    if (!pod.ok()) {
      std::fprintf(stderr, "CreatePodNetns: %s\n", pod.status().ToString().c_str());
      std::abort();  // the harness itself is broken; nothing below would mean anything
    }
    return *std::move(pod);
  }

  void ApplyAndExpectReadBack(const PodNetns& pod, const rules::Ruleset& rs) {
    ASSERT_OK(ApplyAndVerify(*backend_, pod.handle(), rs));
  }

  // A connection from `uid` inside the pod to ip:port; returns the connected fd.
  absl::StatusOr<UniqueFd> ConnectAs(uint32_t uid, const PodNetns& pod, const std::string& ip,
                                     uint16_t port) {
    absl::StatusOr<UniqueFd> fd;
    absl::Status s = testing::RunAs(uid, uid, &pod.handle(), [&] {
      fd = testing::TcpConnect(ip, port, kTimeout);
      return fd.status();
    });
    if (!s.ok()) return s;
    return fd;
  }

  // A connection from the peer netns (outside the pod) to ip:port; returns the connected fd.
  absl::StatusOr<UniqueFd> ConnectFromPeer(const std::string& ip, uint16_t port) {
    absl::StatusOr<UniqueFd> fd;
    absl::Status s = RunInNetns(sandbox_->peer(), [&] {
      fd = testing::TcpConnect(ip, port, kTimeout);
      return fd.status();
    });
    if (!s.ok()) return s;
    return fd;
  }

  absl::StatusOr<UniqueFd> ListenIn(const NetnsHandle& ns, const std::string& ip, uint16_t port,
                                    bool transparent = false) {
    absl::StatusOr<UniqueFd> fd;
    absl::Status s = RunInNetns(ns, [&] {
      fd = testing::TcpListen(ip, port, transparent);
      return fd.status();
    });
    if (!s.ok()) return s;
    return fd;
  }

  // Outbound from uid 1000 to peer_ip:80 lands on the pod's 15001 with SO_ORIGINAL_DST = peer_ip:80.
  void ExpectOutboundRedirect(const PodNetns& pod, const std::string& any, const std::string& dst_ip) {
    SCOPED_TRACE(dst_ip);
    absl::StatusOr<UniqueFd> proxy = ListenIn(pod.handle(), any, 15001);
    ASSERT_OK(proxy.status());
    absl::StatusOr<UniqueFd> client = ConnectAs(kAppUid, pod, dst_ip, 80);
    ASSERT_OK(client.status());
    absl::StatusOr<UniqueFd> accepted = testing::Accept(proxy->get(), kTimeout);
    ASSERT_OK(accepted.status());
    absl::StatusOr<Endpoint> orig = testing::OriginalDst(accepted->get());
    ASSERT_OK(orig.status());
    EXPECT_EQ(*orig, (Endpoint{dst_ip, 80}));
  }

  // uid 1337 (the proxy) reaches the real destination in the peer netns, not 15001.
  void ExpectProxyBypass(const PodNetns& pod, const std::string& any, const std::string& peer_ip) {
    SCOPED_TRACE(peer_ip);
    absl::StatusOr<UniqueFd> proxy = ListenIn(pod.handle(), any, 15001);
    ASSERT_OK(proxy.status());
    absl::StatusOr<UniqueFd> server = ListenIn(sandbox_->peer(), peer_ip, 80);
    ASSERT_OK(server.status());
    absl::StatusOr<UniqueFd> client = ConnectAs(kProxyUid, pod, peer_ip, 80);
    ASSERT_OK(client.status());
    absl::StatusOr<UniqueFd> accepted = testing::Accept(server->get(), kTimeout);
    ASSERT_OK(accepted.status());
    EXPECT_FALSE(testing::HasPendingConnection(proxy->get()));
  }

  // From the peer netns to pod_ip:8080 lands on the pod's 15006 and the original destination is kept: by
  // REDIRECT's conntrack NAT (SO_ORIGINAL_DST) or, with `tproxy`, by TPROXY not NATing at all (the accepted
  // socket's own address, on a transparent listener).
  void ExpectInboundRedirect(const PodNetns& pod, const std::string& any, const std::string& pod_ip,
                             bool tproxy = false) {
    SCOPED_TRACE(pod_ip);
    absl::StatusOr<UniqueFd> inbound = ListenIn(pod.handle(), any, 15006, /*transparent=*/tproxy);
    ASSERT_OK(inbound.status());
    absl::StatusOr<UniqueFd> app = ListenIn(pod.handle(), any, 8080);
    ASSERT_OK(app.status());
    absl::StatusOr<UniqueFd> client = ConnectFromPeer(pod_ip, 8080);
    ASSERT_OK(client.status());
    absl::StatusOr<UniqueFd> accepted = testing::Accept(inbound->get(), kTimeout);
    ASSERT_OK(accepted.status());
    absl::StatusOr<Endpoint> orig =
        tproxy ? testing::LocalEndpoint(accepted->get()) : testing::OriginalDst(accepted->get());
    ASSERT_OK(orig.status());
    EXPECT_EQ(*orig, (Endpoint{pod_ip, 8080}));
    EXPECT_FALSE(testing::HasPendingConnection(app->get()));
  }

  testing::Sandbox* sandbox_ = nullptr;
  std::unique_ptr<Backend> backend_;
};

TEST_P(BackendTest, ApplyThenReadBackEqualsForEveryFixture) {
  std::vector<FixtureOptions> fixtures(6);
  fixtures[1].ipv6 = false;
  fixtures[2].tproxy = true;
  fixtures[3].dns = true;
  fixtures[4].exclude_inbound_ports = {8081, 9000};
  fixtures[4].exclude_outbound_ports = {9090};
  fixtures[5] = {
      .ipv4 = false, .ipv6 = true, .tproxy = true, .dns = true, .proxy_uid = 2000, .proxy_gid = 2001};
  for (size_t i = 0; i < fixtures.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("fixture ", i));
    PodNetns pod = NewPod();
    ApplyAndExpectReadBack(pod, IstioLikeRuleset(fixtures[i]));
  }
}

TEST_P(BackendTest, LargeRulesetAppliesAndVerifies) {
  // Dual-stack TPROXY + DNS with 120 extra exclusions: ~450 rules. (Not bigger: the nft backend refuses
  // batches over 192 KB, which ~1000 such rules exceed; see the netns report.)
  FixtureOptions big{.tproxy = true, .dns = true};
  for (uint16_t p = 1000; p < 1060; ++p) big.exclude_inbound_ports.push_back(p);
  for (uint16_t p = 2000; p < 2060; ++p) big.exclude_outbound_ports.push_back(p);
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset(big));
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));  // and shrink back
}

TEST_P(BackendTest, FreshNamespaceReadsBackEmpty) {
  PodNetns pod = NewPod();
  absl::StatusOr<rules::Ruleset> got = backend_->ReadBack(pod.handle());
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, rules::Ruleset{});
}

TEST_P(BackendTest, ApplyTwiceLeavesOneCopy) {
  PodNetns pod = NewPod();
  const rules::Ruleset rs = IstioLikeRuleset({.dns = true});
  ASSERT_OK(backend_->Apply(pod.handle(), rs));
  ASSERT_OK(backend_->Apply(pod.handle(), rs));
  absl::StatusOr<rules::Ruleset> got = backend_->ReadBack(pod.handle());
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, rs);  // ReadBack lists every jump of ours: a duplicate would show here
  // Independent oracle: the kernel's own view through the tool of the backend's family.
  absl::StatusOr<std::string> dump = RunIn(pod.handle(), GetParam().dump_argv);
  ASSERT_OK(dump.status());
  EXPECT_EQ(CountJumpsToIstioOutput(GetParam(), *dump), 1) << *dump;
}

TEST_P(BackendTest, ApplyChangedReplacesOurs) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.dns = true, .exclude_outbound_ports = {9090}}));
  ApplyAndExpectReadBack(pod,
                         IstioLikeRuleset({.tproxy = true}));  // adds mangle + routes, drops nat PREROUTING
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.ipv6 = false}));  // drops mangle, routes, all of v6
}

TEST_P(BackendTest, ForeignRulesAreNeverTouched) {
  PodNetns pod = NewPod();
  for (const auto& argv : GetParam().add_foreign_argvs) {
    absl::StatusOr<std::string> r = RunIn(pod.handle(), argv);
    ASSERT_OK(r.status());
  }
  auto expect_foreign = [&](const char* when) {
    SCOPED_TRACE(when);
    absl::StatusOr<std::string> dump = RunIn(pod.handle(), GetParam().dump_argv);
    ASSERT_OK(dump.status());
    for (const auto& needle : GetParam().foreign_needles) EXPECT_THAT(*dump, ::testing::HasSubstr(needle));
  };
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));
  expect_foreign("after apply");
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.tproxy = true, .dns = true}));
  expect_foreign("after changed apply");
  ASSERT_OK(backend_->Remove(pod.handle()));
  expect_foreign("after remove");
}

TEST_P(BackendTest, RemoveLeavesNothingOfOurs) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.tproxy = true, .dns = true}));
  ASSERT_OK(backend_->Remove(pod.handle()));
  absl::StatusOr<rules::Ruleset> got = backend_->ReadBack(pod.handle());
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, rules::Ruleset{});
  ASSERT_OK(backend_->Remove(pod.handle()));  // idempotent
  // And traffic is no longer captured: uid 1000 reaches the peer directly.
  absl::StatusOr<UniqueFd> server = ListenIn(sandbox_->peer(), pod.peer_ipv4, 80);
  ASSERT_OK(server.status());
  ASSERT_OK(ConnectAs(kAppUid, pod, pod.peer_ipv4, 80).status());
  ASSERT_OK(testing::Accept(server->get(), kTimeout).status());
}

TEST_P(BackendTest, TamperedChainFailsVerificationAndReapplyRepairs) {
  PodNetns pod = NewPod();
  const rules::Ruleset rs = IstioLikeRuleset({.ipv6 = false});
  ApplyAndExpectReadBack(pod, rs);
  ASSERT_OK(RunIn(pod.handle(), GetParam().tamper_argv).status());
  absl::StatusOr<rules::Ruleset> got = backend_->ReadBack(pod.handle());
  // Either the read-back refuses what it does not understand, or it differs: never equal.
  EXPECT_FALSE(got.ok() && *got == rs) << "tampering went unnoticed";
  ApplyAndExpectReadBack(pod, rs);  // our chains are flushed and refilled: the foreign rule is gone
}

TEST_P(BackendTest, ConcurrentAppliesIntoManyPods) {
  constexpr int kThreads = 4, kPodsPerThread = 4;
  std::vector<PodNetns> pods;
  for (int i = 0; i < kThreads * kPodsPerThread; ++i) pods.push_back(NewPod());
  const rules::Ruleset rs = IstioLikeRuleset({.dns = true});
  std::vector<absl::Status> results(pods.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPodsPerThread; ++k) {
        const size_t i = t * kPodsPerThread + k;
        results[i] = ApplyAndVerify(*backend_, pods[i].handle(), rs);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < results.size(); ++i)
    EXPECT_TRUE(results[i].ok()) << "pod " << i << ": " << results[i];
  ExpectOutboundRedirect(pods.back(), "0.0.0.0", pods.back().peer_ipv4);
}

TEST_P(BackendTest, RefusesFakeHandle) {
  NetnsHandle fake = NetnsHandle::ForTesting("fake", 1);
  EXPECT_EQ(backend_->Apply(fake, IstioLikeRuleset({})).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(BackendTest, OutboundFromAppLandsOn15001WithOriginalDst) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));
  ExpectOutboundRedirect(pod, "0.0.0.0", pod.peer_ipv4);
  ExpectOutboundRedirect(pod, "0.0.0.0", "10.1.2.3");  // any address, routed via the default route
  ExpectOutboundRedirect(pod, "::", pod.peer_ipv6);
}

TEST_P(BackendTest, ProxyUidBypassesCapture) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));
  ExpectProxyBypass(pod, "0.0.0.0", pod.peer_ipv4);
  ExpectProxyBypass(pod, "::", pod.peer_ipv6);
}

TEST_P(BackendTest, InboundLandsOn15006) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({}));
  ExpectInboundRedirect(pod, "0.0.0.0", pod.pod_ipv4);
  ExpectInboundRedirect(pod, "::", pod.pod_ipv6);
}

TEST_P(BackendTest, ExcludedPortsBypass) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(
      pod, IstioLikeRuleset({.exclude_inbound_ports = {8081}, .exclude_outbound_ports = {9090}}));
  for (const auto& [any, pod_ip, peer_ip] :
       {std::tuple{"0.0.0.0", pod.pod_ipv4, pod.peer_ipv4}, std::tuple{"::", pod.pod_ipv6, pod.peer_ipv6}}) {
    SCOPED_TRACE(pod_ip);
    // Inbound to 8081 reaches the app's own listener.
    absl::StatusOr<UniqueFd> inbound = ListenIn(pod.handle(), any, 15006);
    ASSERT_OK(inbound.status());
    absl::StatusOr<UniqueFd> app = ListenIn(pod.handle(), any, 8081);
    ASSERT_OK(app.status());
    absl::StatusOr<UniqueFd> client = ConnectFromPeer(pod_ip, 8081);
    ASSERT_OK(client.status());
    ASSERT_OK(testing::Accept(app->get(), kTimeout).status());
    EXPECT_FALSE(testing::HasPendingConnection(inbound->get()));
    // Outbound to 9090 from the app reaches the peer.
    absl::StatusOr<UniqueFd> proxy = ListenIn(pod.handle(), any, 15001);
    ASSERT_OK(proxy.status());
    absl::StatusOr<UniqueFd> server = ListenIn(sandbox_->peer(), peer_ip, 9090);
    ASSERT_OK(server.status());
    ASSERT_OK(ConnectAs(kAppUid, pod, peer_ip, 9090).status());
    ASSERT_OK(testing::Accept(server->get(), kTimeout).status());
    EXPECT_FALSE(testing::HasPendingConnection(proxy->get()));
  }
}

TEST_P(BackendTest, TproxyInboundKeepsOriginalDestination) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.tproxy = true}));
  for (const auto& [any, pod_ip] : {std::pair{"0.0.0.0", pod.pod_ipv4}, std::pair{"::", pod.pod_ipv6}}) {
    ExpectInboundRedirect(pod, any, pod_ip, /*tproxy=*/true);
  }
}

TEST_P(BackendTest, DnsFromAppIsCapturedTo15053AndProxyDnsIsNot) {
  PodNetns pod = NewPod();
  ApplyAndExpectReadBack(pod, IstioLikeRuleset({.ipv6 = false, .dns = true}));
  UniqueFd dns_proxy, upstream;
  ASSERT_OK(RunInNetns(pod.handle(), [&]() -> absl::Status {
    absl::StatusOr<UniqueFd> u = testing::UdpBind("0.0.0.0", 15053);
    if (!u.ok()) return u.status();
    dns_proxy = *std::move(u);
    return absl::OkStatus();
  }));
  ASSERT_OK(RunInNetns(sandbox_->peer(), [&]() -> absl::Status {
    absl::StatusOr<UniqueFd> u = testing::UdpBind(pod.peer_ipv4, 53);
    if (!u.ok()) return u.status();
    upstream = *std::move(u);
    return absl::OkStatus();
  }));
  ASSERT_OK(testing::RunAs(kAppUid, kAppUid, &pod.handle(),
                           [&] { return testing::UdpSendTo(pod.peer_ipv4, 53, "app-query"); }));
  absl::StatusOr<std::string> got = testing::UdpReceive(dns_proxy.get(), kTimeout);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "app-query");
  ASSERT_OK(testing::RunAs(kProxyUid, kProxyUid, &pod.handle(),
                           [&] { return testing::UdpSendTo(pod.peer_ipv4, 53, "proxy-query"); }));
  got = testing::UdpReceive(upstream.get(), kTimeout);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "proxy-query");
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::ValuesIn(FunctionalBackends()),
                         [](const ::testing::TestParamInfo<FunctionalBackend>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace pnc::netns

namespace pnc::netns {
namespace {

// libiptc writes binary entries, the restore backend writes text and reads `iptables-legacy-save` through
// rules/iptables_save: each backend reading back what the other wrote checks both encodings independently.
TEST(CrossBackendTest, IptcAndRestoreReadEachOthersRules) {
  testing::Sandbox* sandbox = nullptr;
  PNC_SANDBOX_OR_SKIP(sandbox);
  std::unique_ptr<Backend> iptc = NewIptcBackend();
  std::unique_ptr<Backend> restore = NewRestoreBackend();
  const testing::FixtureOptions fixtures[] = {
      {}, {.tproxy = true}, {.dns = true, .exclude_inbound_ports = {8081}, .exclude_outbound_ports = {9090}}};
  int i = 0;
  for (const auto& fx : fixtures) {
    SCOPED_TRACE(absl::StrCat("fixture ", i));
    const rules::Ruleset rs = testing::IstioLikeRuleset(fx);
    for (auto [writer, reader] :
         {std::pair{iptc.get(), restore.get()}, std::pair{restore.get(), iptc.get()}}) {
      SCOPED_TRACE(absl::StrCat(writer->Name(), " -> ", reader->Name()));
      absl::StatusOr<testing::PodNetns> pod = sandbox->CreatePodNetns(absl::StrCat("cross-", i++));
      ASSERT_TRUE(pod.ok()) << pod.status();
      ASSERT_TRUE(writer->Apply(pod->handle(), rs).ok());
      absl::StatusOr<rules::Ruleset> got = reader->ReadBack(pod->handle());
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, rs);
      // The reader can take over: replace with another set, then remove everything.
      ASSERT_TRUE(ApplyAndVerify(*reader, pod->handle(), testing::IstioLikeRuleset({.ipv6 = false})).ok());
      ASSERT_TRUE(reader->Remove(pod->handle()).ok());
      got = writer->ReadBack(pod->handle());
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, rules::Ruleset{});
    }
  }
}

}  // namespace
}  // namespace pnc::netns

namespace pnc::netns {
namespace {

// Every golden case of the planner (rules/golden_cases) goes through every backend and reads back equal.
TEST_P(BackendTest, EveryPlannedGoldenCaseAppliesAndVerifies) {
  std::vector<std::string> not_run;
  for (const auto& c : rules::testing::GoldenCases()) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(c.pod, c.config);
    ASSERT_TRUE(plan.ok()) << plan.status();
    // Legacy xt_owner refuses unmapped ids; as a normal user the sandbox maps only 0..65535 (OpenShift uids
    // like 1000650000 need root). nft does not check at load time.
    if (GetParam().name != "nft" &&
        (!testing::Sandbox::MapsUid(plan->proxy_uid) || !testing::Sandbox::MapsUid(plan->proxy_gid))) {
      not_run.push_back(
          absl::StrCat(c.name, " (proxy uid ", plan->proxy_uid, " not mapped in this sandbox)"));
      continue;
    }
    PodNetns pod = NewPod();
    ApplyAndExpectReadBack(pod, rules::BuildRuleset(*plan));
  }
  if (!not_run.empty()) {
    ASSERT_FALSE(testing::Sandbox::Required()) << "as root every id is mapped; nothing may be left out";
    GTEST_SKIP() << "cases not run: " << absl::StrJoin(not_run, "; ");
  }
}

// The planner's default injected dual-stack pod (mesh-wide ISTIO_DUAL_STACK), end to end with sockets.
TEST_P(BackendTest, PlannedDefaultPodRedirectsBothWays) {
  rules::PodFacts facts = rules::testing::InjectedPod();
  PodNetns pod = NewPod();
  facts.pod_ips = {pod.pod_ipv4, pod.pod_ipv6};
  rules::PlanConfig dual;
  dual.dual_stack = true;
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, dual);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->ipv4 && plan->ipv6);
  ApplyAndExpectReadBack(pod, rules::BuildRuleset(*plan));
  ExpectOutboundRedirect(pod, "0.0.0.0", "10.1.2.3");
  ExpectOutboundRedirect(pod, "::", pod.peer_ipv6);
  ExpectProxyBypass(pod, "0.0.0.0", pod.peer_ipv4);
  ExpectProxyBypass(pod, "::", pod.peer_ipv6);
  ExpectInboundRedirect(pod, "0.0.0.0", pod.pod_ipv4);
  ExpectInboundRedirect(pod, "::", pod.pod_ipv6);
}

}  // namespace
}  // namespace pnc::netns
