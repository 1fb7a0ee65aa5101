// The waiter's probe against real redirection: a sandbox pod netns (netns/testing) gets the production plan
// through the iptc and nft backends; the probe must pass as an application uid, and fail as the proxy uid
// (whose traffic bypasses capture), in a pod netns without rules, and for forged targets. Packets never leave
// the sandbox.
#include "controller/waiter/probe.h"

#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "controller/waiter/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/backend.h"
#include "netns/backends.h"
#include "netns/proof_marker.h"
#include "netns/testing/gtest_sandbox.h"
#include "netns/testing/run_as.h"
#include "rules/mark.h"
#include "rules/plan.h"

namespace pnc::waiter {
namespace {

using ::testing::HasSubstr;

ProbeResult ProbeAs(uid_t uid, const netns::NetnsHandle& ns, const std::string& spec_text) {
  ProbeResult out;
  std::optional<rules::ProbeSpec> spec = rules::ParseProbeSpec(spec_text);
  if (!spec) {
    out.message = "bad spec " + spec_text;
    return out;
  }
  absl::Status st = netns::testing::RunAs(uid, uid, &ns, [&] {
    out = RunProbe(*spec, 300);
    return absl::OkStatus();
  });
  if (!st.ok()) out.message = "RunAs failed: " + std::string(st.message());
  return out;
}

void ApplyDefaultPlan(const std::string& backend_name, const netns::testing::PodNetns& pod,
                      std::vector<std::string> ips) {
  rules::PodFacts facts;
  facts.uid = "u";
  facts.name = "p";
  facts.namespace_name = "ns";
  facts.containers.push_back({"istio-proxy", 1337, 1337, {}, false});
  facts.pod_ips = std::move(ips);
  rules::PlanConfig config;
  config.dual_stack = true;  // IPv6 rules for a dual-stack pod (Istio's ISTIO_DUAL_STACK)
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::unique_ptr<netns::Backend>> backend = netns::NewBackendByName(backend_name);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::Status st = netns::ApplyAndVerify(**backend, pod.handle(), rules::BuildRuleset(*plan));
  ASSERT_TRUE(st.ok()) << st;
}

// What a process in the pod would send to forge the marker: RTM_NEWRULE on a raw rtnetlink socket. Returns
// the kernel's errno (0: accepted).
int AddMarkerRuleHere(uint32_t value) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  struct {
    nlmsghdr nh;
    fib_rule_hdr frh;
    char attrs[64];
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(fib_rule_hdr));
  req.nh.nlmsg_type = RTM_NEWRULE;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  req.frh.family = AF_INET;
  req.frh.action = FR_ACT_NOP;
  auto put = [&](uint16_t type, const void* data, size_t len) {
    auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.nh.nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    std::memcpy(RTA_DATA(a), data, len);
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
  };
  uint32_t prio = rules::kProofMarkerPriority;
  uint8_t proto = rules::kProofMarkerProtocol;
  put(FRA_PRIORITY, &prio, 4);
  put(FRA_FWMARK, &value, 4);
  put(FRA_PROTOCOL, &proto, 1);
  int err = 0;
  if (::send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
    err = errno;
  } else {
    alignas(nlmsghdr) char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    const auto* m = reinterpret_cast<const nlmsghdr*>(buf);
    if (n < 0) {
      err = errno;
    } else if (m->nlmsg_type == NLMSG_ERROR) {
      err = -static_cast<const nlmsgerr*>(NLMSG_DATA(m))->error;
    }
  }
  ::close(fd);
  return err;
}

constexpr char kV4[] = "target=192.0.2.1:15002,capture=15001";
constexpr char kV6[] = "target=[2001:db8::1]:15002,capture=15001";

TEST(Probe, PassesOnlyWhenOutboundIsRedirected) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  for (const char* backend : {"iptc", "nft"}) {
    SCOPED_TRACE(backend);
    absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns(std::string("probe-pod-") + backend);
    ASSERT_TRUE(pod.ok()) << pod.status();
    ApplyDefaultPlan(backend, *pod, {pod->pod_ipv4, pod->pod_ipv6});

    for (const char* spec : {kV4, kV6}) {
      ProbeResult app = ProbeAs(1000, pod->handle(), spec);
      EXPECT_TRUE(app.ok) << spec << ": " << app.message;
      EXPECT_THAT(app.message, HasSubstr("was redirected to port 15001"));
      ProbeResult proxy = ProbeAs(1337, pod->handle(), spec);  // the proxy's own traffic is not captured
      EXPECT_FALSE(proxy.ok) << proxy.message;
    }
    // Forged targets: the pod's own address on another port is not redirected for an app uid (loopback
    // RETURN), and a target equal to the capture port is refused by the parser already.
    ProbeResult own = ProbeAs(1000, pod->handle(), "target=" + pod->pod_ipv4 + ":15002,capture=15001");
    EXPECT_FALSE(own.ok) << own.message;
    EXPECT_FALSE(rules::ParseProbeSpec("target=" + pod->pod_ipv4 + ":15001,capture=15001").has_value());
  }
  absl::StatusOr<netns::testing::PodNetns> bare = sb->CreatePodNetns("probe-bare");
  ASSERT_TRUE(bare.ok()) << bare.status();
  for (const char* spec : {kV4, kV6}) {
    ProbeResult none = ProbeAs(1000, bare->handle(), spec);
    EXPECT_FALSE(none.ok) << none.message;
    EXPECT_THAT(none.message, HasSubstr("not redirected"));
  }
}

// NAT moves the probe's source port when the redirected reply tuple clashes with a conntrack entry of an
// earlier connection from the same port (here: one to another captured destination, left in TIME_WAIT). The
// probe recognizes its connection by the nonce it sends, not by its source port, so it still passes.
TEST(Probe, PassesWhenNatMovesTheSourcePort) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns("probe-nat-clash");
  ASSERT_TRUE(pod.ok()) << pod.status();
  ApplyDefaultPlan("iptc", *pod, {pod->pod_ipv4, pod->pod_ipv6});
  constexpr uint16_t kPort = 40123;
  ProbeResult probe;
  absl::Status st = netns::testing::RunAs(1000, 1000, &pod->handle(), [&]() -> absl::Status {
    // The earlier connection: kPort -> 192.0.2.10:80, redirected to a listener on 15001, closed by the
    // client.
    int lis = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cli = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lis, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(cli, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(15001);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_port = htons(kPort);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(80);
    ::inet_pton(AF_INET, "192.0.2.10", &to.sin_addr);
    absl::Status s = absl::OkStatus();
    if (::bind(lis, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(lis, 4) != 0 ||
        ::bind(cli, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
        ::connect(cli, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      s = absl::InternalError(std::string("earlier connection: ") + std::strerror(errno));
    } else {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int acc = ::accept4(lis, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (acc >= 0) ::close(acc);
      ::close(cli);  // active close first: the client's TIME_WAIT keeps the conntrack entry
      cli = -1;
    }
    if (cli >= 0) ::close(cli);
    ::close(lis);
    if (!s.ok()) return s;
    // Now the probe from the same port, to the target the mark names.
    std::optional<rules::ProbeSpec> spec = rules::ParseProbeSpec(kV4);
    if (!spec) return absl::InternalError("bad spec");
    probe = RunProbe(*spec, ProbeOptions{1000, kPort});
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(probe.ok) << probe.message;
  EXPECT_NE(probe.arrived_from_port, kPort);  // the kernel did move it: the clash this test is about
  EXPECT_NE(probe.arrived_from_port, 0);
}

// `probe: none`: only the controller's marker in the pod's own netns releases the pod, and nothing running in
// the pod (no CAP_NET_ADMIN) can create one.
TEST(ProofMarker, OnlyTheControllersMarkerReleasesAMarkWithoutProbe) {
  netns::testing::Sandbox* sb = nullptr;
  PNC_SANDBOX_OR_SKIP(sb);
  absl::StatusOr<netns::testing::PodNetns> pod = sb->CreatePodNetns("marker-pod");
  ASSERT_TRUE(pod.ok()) << pod.status();
  // Under /tmp: the test's own temporary directories sit below /root, which uid 1000 cannot traverse.
  std::string dir = "/tmp/pnc-marker-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      unlink((dir + "/annotations").c_str());
      rmdir(dir.c_str());
    }
  } cleanup{dir};
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);  // the mark is written by the test as uid 1000
  const std::string digest = "89abcdef01234567";

  // The mark a tenant can forge exactly: status, the pod's own identity (read inside, as the waiter does),
  // none.
  auto wait_as_app = [&](const std::string& plan_digest) {
    WaitResult r;
    EXPECT_TRUE(netns::testing::RunAs(1000, 1000, &pod->handle(), [&] {
                  rules::NetnsIdentity id;
                  std::string err;
                  if (!ReadOwnIdentity(&id, &err)) return absl::InternalError(err);
                  std::ofstream(dir + "/annotations")
                      << "pod-network-controller.istio.io/status=\"initialized\"\n"
                      << "pod-network-controller.istio.io/netns=\"" << rules::FormatNetnsIdentity(id)
                      << "\"\n"
                      << "pod-network-controller.istio.io/probe=\"none\"\n"
                      << "pod-network-controller.istio.io/plan=\"" << plan_digest << "\"\n";
                  WaitOptions o;
                  o.file = dir + "/annotations";
                  o.timeout_ms = 300;
                  r = WaitForAnnotation(o);
                  return absl::OkStatus();
                }).ok());
    return r;
  };
  WaitResult before = wait_as_app(digest);
  EXPECT_EQ(before.outcome, WaitOutcome::kTimeout);
  EXPECT_THAT(before.message, HasSubstr("marker is not in this network namespace"));

  // The pod's own processes cannot add it: the kernel refuses RTM_NEWRULE without CAP_NET_ADMIN.
  int forged_errno = 0;
  ASSERT_TRUE(netns::testing::RunAs(1000, 1000, &pod->handle(), [&] {
                forged_errno = AddMarkerRuleHere(*rules::ProofMarkerValue(digest));
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(forged_errno, EPERM);
  EXPECT_EQ(wait_as_app(digest).outcome, WaitOutcome::kTimeout);
  netns::KernelProofMarker marker;

  // The controller's, for this plan: released, and the note says how it was proven.
  ASSERT_TRUE(marker.Place(pod->handle(), *rules::ProofMarkerValue(digest)).ok());
  ASSERT_TRUE(marker.Place(pod->handle(), *rules::ProofMarkerValue(digest)).ok());  // idempotent
  WaitResult after = wait_as_app(digest);
  EXPECT_EQ(after.outcome, WaitOutcome::kReady) << after.message;
  EXPECT_THAT(after.note, HasSubstr("proven by the controller's marker"));
  // A marker of another plan does not vouch for this one; a newer one replaces the old.
  EXPECT_EQ(wait_as_app("1111111100000000").outcome, WaitOutcome::kTimeout);
  ASSERT_TRUE(marker.Place(pod->handle(), *rules::ProofMarkerValue("1111111100000000")).ok());
  EXPECT_EQ(wait_as_app(digest).outcome, WaitOutcome::kTimeout);
  EXPECT_EQ(wait_as_app("1111111100000000").outcome, WaitOutcome::kReady);
}

}  // namespace
}  // namespace pnc::waiter
