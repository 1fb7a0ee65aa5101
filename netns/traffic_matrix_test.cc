// Traffic matrix: the PRODUCTION planner's rules (BuildPlan -> BuildRuleset) applied by EVERY backend (iptc,
// nft, restore) in sandbox namespaces, exercised with real sockets against an Envoy-like stand-in
// (netns/testing/envoy_standin.h): client netns (the sandbox peer) <-> pod netns over a veth.
//
// Every row's expectation is what Istio's own rules do for the same pod, written down as a fact derived
// from istio/istio tools/istio-iptables/pkg/capture/run.go and cni/pkg/plugin (see the comment at each pod
// case). Outcomes: "15001 <ip:port>" (outbound capture, SO_ORIGINAL_DST), "15006 <ip:port>" (inbound
// capture, original destination), "15053" (DNS capture), or the name of the real listener reached directly
// ("app:8080", "peer:80", ...).
#include <poll.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/executor.h"
#include "netns/functional_backends.h"
#include "netns/routing/test_util.h"
#include "netns/testing/envoy_standin.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sandbox.h"
#include "netns/testing/sockets.h"
#include "netns/xtables_names.h"
#include "rules/annotations.h"
#include "rules/plan.h"
#include "rules/test_util.h"

namespace pnc::netns {
namespace {

using testing::Endpoint;
using testing::PodNetns;
using testing::UniqueFd;

constexpr absl::Duration kTimeout = absl::Milliseconds(1500);
constexpr uint32_t kApp = 1000;
constexpr uint32_t kProxy = 1337;

enum class Kind {
  kAppTcp,    // from the pod as (uid, gid) to dst
  kPeerTcp,   // from the client netns to dst
  kAppUdp,    // one datagram from the pod as (uid, gid) to dst
  kUpstream,  // client -> pod dst; then the stand-in's upstream leg to the app; app answers back
};

struct Row {
  std::string name;
  Kind kind;
  uint32_t uid = kApp, gid = kApp;
  std::string dst;  // symbolic: POD4 POD6 PEER4 PEER6 LO4 LO6 OTHER4
  uint16_t port = 0;
  std::string expect;  // as above, with symbolic addresses
};

struct PodCase {
  std::string name;
  std::map<std::string, std::string> annotations;
  bool dns = false;
  bool dual_stack_setting = false;
  bool dual_stack_ips = false;
  std::vector<Row> rows;
};

Row App(std::string n, std::string dst, uint16_t port, std::string expect, uint32_t uid = kApp,
        uint32_t gid = kApp) {
  return {std::move(n), Kind::kAppTcp, uid, gid, std::move(dst), port, std::move(expect)};
}
Row Peer(std::string n, std::string dst, uint16_t port, std::string expect) {
  return {std::move(n), Kind::kPeerTcp, 0, 0, std::move(dst), port, std::move(expect)};
}
Row Udp(std::string n, std::string dst, uint16_t port, std::string expect, uint32_t uid = kApp) {
  return {std::move(n), Kind::kAppUdp, uid, uid, std::move(dst), port, std::move(expect)};
}
// The proxy's upstream leg, opened with the proxy identity Istio's injector gives the mode.
Row Upstream(std::string n, std::string dst, std::string expect,
             testing::ProxyIdentity id = testing::kRedirectModeProxy) {
  return {std::move(n), Kind::kUpstream, id.uid, id.gid, std::move(dst), 8080, std::move(expect)};
}

// Rows every REDIRECT-mode pod with default annotations shares (Istio CNI basic golden).
std::vector<Row> DefaultRows() {
  return {
      App("app outbound captured", "PEER4", 80, "15001 PEER4:80"),
      App("proxy uid bypasses", "PEER4", 80, "peer:80", kProxy, kApp),
      App("proxy gid bypasses", "PEER4", 80, "peer:80", kApp, kProxy),
      Peer("inbound captured with original dst", "POD4", 8080, "15006 POD4:8080"),
      Upstream("proxy upstream leg from 127.0.0.6 reaches the app", "POD4", "app:8080 from 127.0.0.6"),
      App("app -> own pod IP is not captured (lo, not the proxy)", "POD4", 8080, "app:8080"),
      App("app -> localhost is not captured", "LO4", 8080, "app:8080"),
      App("proxy -> own pod IP goes to the inbound listener", "POD4", 8080, "15006 POD4:8080", kProxy,
          kProxy),
      Peer("inbound 15021 excluded", "POD4", 15021, "app:15021"),
      App("outbound 15020 excluded by default (CNI)", "PEER4", 15020, "peer:15020"),
      Peer("inbound 15008 (HBONE) not captured", "POD4", 15008, "app:15008"),
  };
}

std::vector<PodCase> Cases() {
  std::vector<PodCase> cs;
  cs.push_back({"default", {}, false, false, false, DefaultRows()});
  cs.push_back(
      {"tproxy",
       {{rules::kInterceptionModeAnnotation, "TPROXY"}},
       false,
       false,
       false,
       {
           App("app outbound captured", "PEER4", 80, "15001 PEER4:80"),
           App("proxy uid bypasses", "PEER4", 80, "peer:80", kProxy, kApp),
           App("proxy gid bypasses", "PEER4", 80, "peer:80", kApp, kProxy),
           Peer("inbound TPROXYed with original dst", "POD4", 8080, "15006 POD4:8080"),
           // Envoy's original_src listener filter (mark 1337) on the inbound listener, the proxy
           // running as uid 0 / gid 1337 (injection template, TPROXY).
           Upstream("transparent upstream leg (orig src, mark 1337) reaches the app and back", "POD4",
                    "app:8080 from PEER4", testing::kTproxyModeProxy),
           App("injected proxy (uid 0, gid 1337) outbound bypasses", "PEER4", 80, "peer:80",
               testing::kTproxyModeProxy.uid, testing::kTproxyModeProxy.gid),
           App("injected proxy -> own pod IP is TPROXYed to the inbound listener (1338)", "POD4", 8080,
               "15006 POD4:8080", testing::kTproxyModeProxy.uid, testing::kTproxyModeProxy.gid),
           App("app -> own pod IP is not captured (lo, unmarked)", "POD4", 8080, "app:8080"),
           App("app -> localhost is not captured", "LO4", 8080, "app:8080"),
           Peer("inbound 15021 excluded", "POD4", 15021, "app:15021"),
       }});
  cs.push_back({"exclude_outbound_cidr",
                {{rules::kExcludeOutboundIPRangesAnnotation, "PEER4/32"}},
                false,
                false,
                false,
                {App("excluded CIDR bypasses", "PEER4", 80, "peer:80"),
                 App("other destinations captured", "OTHER4", 80, "15001 OTHER4:80")}});
  cs.push_back({"include_outbound_cidr",
                {{rules::kIncludeOutboundIPRangesAnnotation, "10.9.0.0/16"}},
                false,
                false,
                false,
                {App("outside the included CIDR goes direct", "PEER4", 80, "peer:80"),
                 App("inside the included CIDR captured", "OTHER4", 80, "15001 OTHER4:80")}});
  cs.push_back(
      {"include_outbound_ports",
       {{rules::kIncludeOutboundPortsAnnotation, "5432"}, {rules::kIncludeOutboundIPRangesAnnotation, ""}},
       false,
       false,
       false,
       {App("included port captured", "PEER4", 5432, "15001 PEER4:5432"),
        App("other ports direct", "PEER4", 80, "peer:80")}});
  cs.push_back(
      {"exclude_outbound_port",
       {{rules::kExcludeOutboundPortsAnnotation, "80"}},
       false,
       false,
       false,
       {App("excluded port direct", "PEER4", 80, "peer:80"),
        App("15020 no longer excluded once the annotation is set", "PEER4", 15020, "15001 PEER4:15020")}});
  cs.push_back({"inbound_ports",
                {{rules::kIncludeInboundPortsAnnotation, "8080"}},
                false,
                false,
                false,
                {Peer("included inbound port captured", "POD4", 8080, "15006 POD4:8080"),
                 Peer("other inbound port direct", "POD4", 9090, "app:9090")}});
  cs.push_back({"exclude_inbound_port",
                {{rules::kExcludeInboundPortsAnnotation, "9090"}},
                false,
                false,
                false,
                {Peer("excluded inbound port direct", "POD4", 9090, "app:9090"),
                 Peer("other inbound port captured", "POD4", 8080, "15006 POD4:8080")}});
  cs.push_back({"exclude_interface",
                {{rules::kExcludeInterfacesAnnotation, "eth0"}},
                false,
                false,
                false,
                {Peer("inbound on the excluded interface direct", "POD4", 8080, "app:8080"),
                 App("outbound via the excluded interface direct", "PEER4", 80, "peer:80")}});
  // DNS (ISTIO_META_DNS_CAPTURE, capture-all form of the CNI plugin): port 53 to anywhere -> 15053, except
  // the proxy's own queries.
  cs.push_back({"dns",
                {},
                true,
                false,
                false,
                {Udp("app udp/53 captured", "PEER4", 53, "15053"),
                 Udp("proxy udp/53 goes upstream", "PEER4", 53, "peer:53", kProxy),
                 App("app tcp/53 captured", "PEER4", 53, "15053"),
                 App("app tcp/53 to localhost captured (lo carve-out)", "LO4", 53, "15053"),
                 App("proxy tcp/53 goes upstream", "PEER4", 53, "peer:53", kProxy, kProxy),
                 App("app outbound still captured", "PEER4", 80, "15001 PEER4:80")}});
  // Dual-stack: ISTIO_DUAL_STACK decides whether IPv6 is programmed at all.
  {
    std::vector<Row> rows = {
        App("v6 outbound captured", "PEER6", 80, "15001 PEER6:80"),
        App("v6 proxy bypasses", "PEER6", 80, "peer:80", kProxy, kProxy),
        Peer("v6 inbound captured", "POD6", 8080, "15006 POD6:8080"),
        App("v6 localhost not captured", "LO6", 8080, "app:8080"),
        App("v4 outbound captured", "PEER4", 80, "15001 PEER4:80"),
        // Envoy's InboundPassthroughCluster binds ::6, which exists only because the controller adds
        // ::6/128 to lo like Istio's configureIPv6Addresses.
        Upstream("v6 proxy upstream leg from ::6 reaches the app", "POD6", "app:8080 from ::6"),
        Upstream("v4 proxy upstream leg from 127.0.0.6 reaches the app", "POD4", "app:8080 from 127.0.0.6"),
    };
    cs.push_back({"dual_stack", {}, false, true, true, rows});
  }
  cs.push_back({"tproxy_dual_stack",
                {{rules::kInterceptionModeAnnotation, "TPROXY"}},
                false,
                true,
                true,
                {
                    Peer("v6 inbound TPROXYed with original dst", "POD6", 8080, "15006 POD6:8080"),
                    Upstream("v6 transparent upstream leg (orig src, mark 1337) reaches the app and back",
                             "POD6", "app:8080 from PEER6", testing::kTproxyModeProxy),
                    Upstream("v4 transparent upstream leg (orig src, mark 1337) reaches the app and back",
                             "POD4", "app:8080 from PEER4", testing::kTproxyModeProxy),
                    App("v6 app -> own pod IP is not captured", "POD6", 8080, "app:8080"),
                    App("v6 injected proxy outbound bypasses", "PEER6", 80, "peer:80",
                        testing::kTproxyModeProxy.uid, testing::kTproxyModeProxy.gid),
                    App("v6 app outbound captured", "PEER6", 80, "15001 PEER6:80"),
                }});
  cs.push_back({"dual_stack_ips_without_setting",
                {},
                false,
                false,
                true,
                {App("v6 not programmed: outbound direct", "PEER6", 80, "peer:80"),
                 Peer("v6 not programmed: inbound direct", "POD6", 8080, "app:8080"),
                 App("v4 outbound captured", "PEER4", 80, "15001 PEER4:80")}});
  return cs;
}

struct Param {
  FunctionalBackend backend;
  PodCase pod;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& p) {
  std::string n = absl::StrCat(p.param.backend.name, "_", p.param.pod.name);
  for (char& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

std::vector<Param> AllParams() {
  std::vector<Param> out;
  for (const FunctionalBackend& b : FunctionalBackends())
    for (const PodCase& c : Cases()) out.push_back({b, c});
  return out;
}

class TrafficMatrix : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override { PNC_SANDBOX_OR_SKIP(sandbox_); }

  std::string Resolve(const std::string& sym) const {
    if (sym == "POD4") return pod_->pod_ipv4;
    if (sym == "POD6") return pod_->pod_ipv6;
    if (sym == "PEER4") return pod_->peer_ipv4;
    if (sym == "PEER6") return pod_->peer_ipv6;
    if (sym == "LO4") return "127.0.0.1";
    if (sym == "LO6") return "::1";
    if (sym == "OTHER4") return "10.9.1.1";
    return sym;
  }
  std::string Concrete(std::string s) const {
    for (const char* k : {"POD6", "PEER6", "LO6"})  // ip:port spelling of an IPv6 endpoint
      s = absl::StrReplaceAll(s, {{absl::StrCat(k, ":"), absl::StrCat("[", Resolve(k), "]:")}});
    for (const char* k : {"POD4", "POD6", "PEER4", "PEER6", "LO4", "LO6", "OTHER4"})
      s = absl::StrReplaceAll(s, {{k, Resolve(k)}});
    return s;
  }

  void Listen(const NetnsHandle& ns, const std::string& name, const std::string& ip, uint16_t port,
              bool transparent = false) {
    absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
      absl::StatusOr<UniqueFd> fd = testing::TcpListen(ip, port, transparent);
      if (!fd.ok()) return fd.status();
      tcp_.push_back({name, *std::move(fd)});
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << name << ": " << s;
  }
  void ListenUdp(const NetnsHandle& ns, const std::string& name, const std::string& ip, uint16_t port) {
    absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
      absl::StatusOr<UniqueFd> fd = testing::UdpBind(ip, port);
      if (!fd.ok()) return fd.status();
      udp_.push_back({name, *std::move(fd)});
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << name << ": " << s;
  }

  // Which TCP listener got the connection, and (for capture listeners) its original destination.
  std::string Landed(UniqueFd* accepted_out = nullptr) {
    std::vector<pollfd> p;
    for (auto& [n, fd] : tcp_) p.push_back({fd.get(), POLLIN, 0});
    if (poll(p.data(), p.size(), static_cast<int>(absl::ToInt64Milliseconds(kTimeout))) <= 0)
      return "nowhere";
    for (size_t i = 0; i < p.size(); ++i) {
      if (!(p[i].revents & POLLIN)) continue;
      absl::StatusOr<UniqueFd> a = testing::Accept(tcp_[i].second.get(), kTimeout);
      if (!a.ok()) return absl::StrCat("accept failed on ", tcp_[i].first);
      std::string out = tcp_[i].first;
      if (out == "15001" || out == "15006") {
        absl::StatusOr<Endpoint> orig = testing::CapturedOriginalDst(a->get());
        out = absl::StrCat(out, " ", orig.ok() ? orig->ToString() : "?");
      }
      if (accepted_out) *accepted_out = *std::move(a);
      return out;
    }
    return "nowhere";
  }

  std::string RunRow(const Row& r, bool tproxy) {
    const std::string ip = Resolve(r.dst);
    switch (r.kind) {
      case Kind::kAppTcp: {
        absl::StatusOr<UniqueFd> c;
        absl::Status s = testing::RunAs(r.uid, r.gid, &pod_->handle(), [&] {
          c = testing::TcpConnect(ip, r.port, kTimeout);
          return absl::OkStatus();
        });
        if (!s.ok()) return s.ToString();
        if (!c.ok()) return absl::StrCat("connect: ", c.status().ToString());
        return Landed();
      }
      case Kind::kPeerTcp: {
        absl::StatusOr<UniqueFd> c;
        (void)RunInNetns(sandbox_->peer(), [&] {
          c = testing::TcpConnect(ip, r.port, kTimeout);
          return absl::OkStatus();
        });
        if (!c.ok()) return absl::StrCat("connect: ", c.status().ToString());
        return Landed();
      }
      case Kind::kAppUdp: {
        absl::Status s = testing::RunAs(r.uid, r.gid, &pod_->handle(),
                                        [&] { return testing::UdpSendTo(ip, r.port, "q"); });
        if (!s.ok()) return s.ToString();
        std::vector<pollfd> p;
        for (auto& [n, fd] : udp_) p.push_back({fd.get(), POLLIN, 0});
        if (poll(p.data(), p.size(), static_cast<int>(absl::ToInt64Milliseconds(kTimeout))) <= 0)
          return "nowhere";
        for (size_t i = 0; i < p.size(); ++i)
          if (p[i].revents & POLLIN) {
            (void)testing::UdpReceive(udp_[i].second.get(), kTimeout);
            return udp_[i].first;
          }
        return "nowhere";
      }
      case Kind::kUpstream: {
        // 1. The client's connection must reach the inbound listener.
        absl::StatusOr<UniqueFd> client;
        (void)RunInNetns(sandbox_->peer(), [&] {
          client = testing::TcpConnect(ip, r.port, kTimeout);
          return absl::OkStatus();
        });
        if (!client.ok()) return absl::StrCat("client connect: ", client.status().ToString());
        UniqueFd downstream;
        std::string first = Landed(&downstream);
        if (first.rfind("15006 ", 0) != 0) return absl::StrCat("client landed on ", first);
        absl::StatusOr<Endpoint> client_addr = testing::PeerEndpoint(downstream.get());
        if (!client_addr.ok()) return client_addr.status().ToString();
        // 2. The stand-in's upstream leg to the app, as Envoy opens it.
        testing::UpstreamOptions o;
        o.transparent = tproxy;
        o.uid = r.uid;
        o.gid = r.gid;
        if (tproxy) o.source_ip = client_addr->ip;
        absl::StatusOr<UniqueFd> up = testing::ProxyUpstreamConnect(pod_->handle(), o, ip, r.port, kTimeout);
        if (!up.ok()) return absl::StrCat("upstream: ", up.status().ToString());
        UniqueFd app_side;
        std::string landed = Landed(&app_side);
        if (landed != "app:8080") return absl::StrCat("upstream landed on ", landed);
        absl::StatusOr<Endpoint> src = testing::PeerEndpoint(app_side.get());
        if (!src.ok()) return src.status().ToString();
        // 3. The app's answer must come back to the proxy's socket (TPROXY: connmark + policy routing).
        if (write(app_side.get(), "a", 1) != 1) return "app write failed";
        pollfd pf{up->get(), POLLIN, 0};
        char b = 0;
        if (poll(&pf, 1, static_cast<int>(absl::ToInt64Milliseconds(kTimeout))) <= 0 ||
            read(up->get(), &b, 1) != 1 || b != 'a')
          return absl::StrCat("app:8080 from ", src->ip, " but its reply never reached the proxy");
        return absl::StrCat("app:8080 from ", src->ip);
      }
    }
    return "bad row";
  }

  void RunRows();

  testing::Sandbox* sandbox_ = nullptr;
  std::unique_ptr<PodNetns> pod_;
  std::vector<std::pair<std::string, UniqueFd>> tcp_, udp_;
};

TEST_P(TrafficMatrix, EveryRowMatchesIstio) { RunRows(); }

void TrafficMatrix::RunRows() {
  const Param& p = GetParam();
  static int counter = 0;
  absl::StatusOr<PodNetns> pod = sandbox_->CreatePodNetns(absl::StrCat("tm-", ++counter));
  ASSERT_TRUE(pod.ok()) << pod.status();
  pod_ = std::make_unique<PodNetns>(*std::move(pod));

  // The production planner's input: an injected pod with this case's annotations and settings.
  rules::PodFacts facts = rules::testing::InjectedPod();
  for (const auto& [k, v] : p.pod.annotations) facts.annotations[k] = Concrete(v);
  facts.pod_ips = {pod_->pod_ipv4};
  if (p.pod.dual_stack_ips) facts.pod_ips.push_back(pod_->pod_ipv6);
  rules::PlanConfig config;
  config.capture_dns = p.pod.dns;
  config.dual_stack = p.pod.dual_stack_setting;
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const bool tproxy = plan->mode == rules::InterceptionMode::kTproxy;
  std::unique_ptr<Backend> backend = p.backend.make();
  absl::Status applied = ApplyAndVerify(*backend, pod_->handle(), rules::BuildRuleset(*plan));
  ASSERT_TRUE(applied.ok()) << applied;

  // The stand-in's listeners and the app's, in the pod; the servers the pod talks to, in the client netns.
  const NetnsHandle& ns = pod_->handle();
  for (const char* any : {"0.0.0.0", "::"}) {
    Listen(ns, "15001", any, testing::kStandInOutboundPort);
    Listen(ns, "15006", any, testing::kStandInInboundPort, tproxy);
    for (uint16_t port : {8080, 9090, 15021, 15008}) Listen(ns, absl::StrCat("app:", port), any, port);
    for (uint16_t port : {80, 5432, 15020, 53})
      Listen(sandbox_->peer(), absl::StrCat("peer:", port), any, port);
  }
  Listen(ns, "15053", "0.0.0.0", testing::kStandInDnsPort);
  Listen(ns, "app:53", "127.0.0.1", 53);
  ListenUdp(ns, "15053", "0.0.0.0", testing::kStandInDnsPort);
  ListenUdp(sandbox_->peer(), "peer:53", "0.0.0.0", 53);

  int passed = 0, run = 0;
  for (const Row& r : p.pod.rows) {
    ++run;
    const std::string want = Concrete(r.expect);
    const std::string got = RunRow(r, tproxy);
    EXPECT_EQ(got, want) << p.backend.name << " / " << p.pod.name << " / " << r.name;
    if (got == want) ++passed;
  }
  RecordProperty("rows", run);
  RecordProperty("rows_passed", passed);
  // nft-only kernels (no x_tables at all, e.g. RHEL 10): with the native backend every row above ran without
  // one legacy table in the pod's namespace and without an xt compat expression, so nothing here needs
  // ip_tables/ip6_tables or nft_compat.
  if (p.backend.name == "nft") {
    ASSERT_TRUE(RunInNetns(ns, [&]() -> absl::Status {
                  for (rules::Family f : {rules::Family::kIPv4, rules::Family::kIPv6}) {
                    absl::StatusOr<std::vector<std::string>> legacy = LegacyTablesInCurrentNetns(f);
                    if (!legacy.ok()) return legacy.status();
                    EXPECT_TRUE(legacy->empty()) << rules::FamilyName(f) << " legacy table instantiated";
                  }
                  return absl::OkStatus();
                }).ok());
    absl::StatusOr<std::string> listing = testing::RunCaptureIn(ns, {"/usr/sbin/nft", "list", "ruleset"});
    ASSERT_TRUE(listing.ok()) << listing.status();
    EXPECT_THAT(*listing, ::testing::Not(::testing::HasSubstr(" xt "))) << *listing;
    EXPECT_THAT(*listing, ::testing::HasSubstr("istio_pnc"));
  }
  // Free the peer's listeners before the next case binds the same ports there.
  tcp_.clear();
  udp_.clear();
}

INSTANTIATE_TEST_SUITE_P(Backends, TrafficMatrix, ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace pnc::netns
