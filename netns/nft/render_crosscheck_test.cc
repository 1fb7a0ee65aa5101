// Cross-check: what the netlink backend installs is what rules/render.h's nft script installs. For several
// planner outputs, apply the Ruleset with NewNftBackend() in one throwaway netns and `nft -f` the rendered
// script in another, then compare `nft list ruleset` of both (the nft tool is the neutral judge of
// semantics).
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/executor.h"
#include "netns/nft/nft_backend.h"
#include "netns/routing/test_util.h"
#include "rules/plan.h"
#include "rules/render.h"

namespace pnc::netns {
namespace {

using namespace pnc::rules;  // NOLINT: test brevity

constexpr char kNft[] = "/usr/sbin/nft";

struct Case {
  std::string name;
  RedirectPlan plan;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"default_v4", RedirectPlan{}});
  RedirectPlan dual;
  dual.ipv6 = true;
  dual.exclude_outbound_cidrs_v4 = {Cidr{Family::kIPv4, "10.96.0.0", 12}};
  dual.exclude_outbound_cidrs_v6 = {Cidr{Family::kIPv6, "fd00::", 8}};
  dual.exclude_outbound_ports = {15020, 9090};
  dual.include_outbound_ports = {8443};
  dual.exclude_interfaces = {"eth1"};
  dual.reroute_interfaces = {"tap0"};
  cases.push_back({"dual_stack_exclusions", dual});
  RedirectPlan partial;
  partial.capture_all_inbound = false;
  partial.include_inbound_ports = {8080, 9000};
  partial.capture_all_outbound = false;
  partial.include_outbound_cidrs_v4 = {Cidr{Family::kIPv4, "10.0.0.0", 8},
                                       Cidr{Family::kIPv4, "192.168.1.0", 24}};
  cases.push_back({"partial_capture", partial});
  RedirectPlan tproxy;
  tproxy.mode = InterceptionMode::kTproxy;
  tproxy.ipv6 = true;
  tproxy.capture_dns = true;
  cases.push_back({"tproxy_dns_dual", tproxy});
  RedirectPlan dns;
  dns.capture_dns = true;
  dns.proxy_uid = 1000650000;
  dns.proxy_gid = 1000650000;
  cases.push_back({"dns_openshift_uid", dns});
  return cases;
}

TEST(NftRenderCrossCheck, BackendMatchesRenderedScript) {
  ASSERT_EQ(std::string(kNftTableName), std::string(rules::kNftTableName));
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  std::unique_ptr<Backend> backend = NewNftBackend();
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<NetnsHandle> a = testing::NewThrowawayNetns();
    PNC_NETNS_OR_SKIP(a.status());
    absl::StatusOr<NetnsHandle> b = testing::NewThrowawayNetns();
    ASSERT_TRUE(b.ok()) << b.status();
    Ruleset rs = BuildRuleset(c.plan);
    ASSERT_FALSE(rs.families.empty());

    absl::Status applied = ApplyAndVerify(*backend, *a, rs);
    ASSERT_TRUE(applied.ok()) << applied;

    std::string script_path = absl::StrCat(dir, "/", c.name, ".nft");
    {
      std::ofstream f(script_path);
      f << RenderNftables(rs);
    }
    absl::StatusOr<std::string> loaded = testing::RunCaptureIn(*b, {kNft, "-f", script_path});
    ASSERT_TRUE(loaded.ok()) << loaded.status() << "\nscript:\n" << RenderNftables(rs);

    absl::StatusOr<std::string> mine = testing::RunCaptureIn(*a, {kNft, "list", "ruleset"});
    absl::StatusOr<std::string> theirs = testing::RunCaptureIn(*b, {kNft, "list", "ruleset"});
    ASSERT_TRUE(mine.ok() && theirs.ok());
    EXPECT_EQ(*mine, *theirs);
    // And the rendered script, loaded by nft, reads back through our backend as the same Ruleset.
    absl::StatusOr<Ruleset> back = backend->ReadBack(*b);
    ASSERT_TRUE(back.ok()) << back.status();
    Ruleset without_routes = rs;
    without_routes.routes.clear();  // the script installs neither policy routes nor loopback addresses
    without_routes.loopback_addresses.clear();
    EXPECT_EQ(*back, without_routes);
  }
}

}  // namespace
}  // namespace pnc::netns
