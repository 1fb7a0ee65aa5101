#include "rules/mark.h"

#include "gtest/gtest.h"

namespace pnc::rules {
namespace {

constexpr char kBoot[] = "0b5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b";

TEST(NetnsIdentity, RoundTrips) {
  NetnsIdentity id{kBoot, 8193};
  std::string text = FormatNetnsIdentity(id);
  EXPECT_EQ(text, std::string(kBoot) + "/8193");
  EXPECT_EQ(ParseNetnsIdentity(text), id);
}

TEST(NetnsIdentity, RejectsEverythingElse) {
  for (const std::string& bad : {
           std::string(""),
           std::string("4026532281"),  // the old inode format
           std::string(kBoot),
           std::string(kBoot) + "/",
           std::string(kBoot) + "/0",
           std::string(kBoot) + "/08193",
           std::string(kBoot) + "/-1",
           std::string(kBoot) + "/+5",
           std::string(kBoot) + "/8193 ",
           std::string(kBoot) + "/18446744073709551616",  // 2^64
           std::string(kBoot) + "\n/8193",
           std::string("0B5F1A9E-3C4D-4E5F-8A9B-1C2D3E4F5A6B/8193"),  // upper case
           std::string("0b5f1a9e3c4d-4e5f-8a9b-1c2d3e4f5a6b-/8193"),
           std::string("zb5f1a9e-3c4d-4e5f-8a9b-1c2d3e4f5a6b/8193"),
       }) {
    EXPECT_FALSE(ParseNetnsIdentity(bad).has_value()) << bad;
  }
  EXPECT_TRUE(ParseNetnsIdentity(std::string(kBoot) + "/18446744073709551615").has_value());
}

TEST(BootId, AcceptsTheKernelsFormOnly) {
  EXPECT_EQ(CanonicalBootId(std::string(kBoot) + "\n"), kBoot);
  EXPECT_EQ(CanonicalBootId(kBoot), kBoot);
  EXPECT_FALSE(CanonicalBootId("").has_value());
  EXPECT_FALSE(CanonicalBootId(std::string(kBoot) + "\n\n").has_value());
}

TEST(ProbeSpec, RoundTripsBothFamiliesAndNone) {
  for (const std::string text :
       {"target=192.0.2.1:15002,capture=15001", "target=[2001:db8::1]:15002,capture=15001",
        "target=10.96.0.1:80,capture=15001", "none"}) {
    std::optional<ProbeSpec> p = ParseProbeSpec(text);
    ASSERT_TRUE(p.has_value()) << text;
    EXPECT_EQ(FormatProbeSpec(*p), text);
  }
  std::optional<ProbeSpec> p = ParseProbeSpec("target=[2001:db8::1]:15002,capture=15001");
  EXPECT_TRUE(p->ipv6);
  EXPECT_EQ(p->port, 15002);
  EXPECT_EQ(p->capture_port, 15001);
  EXPECT_EQ(ProbeAddressString(*p), "2001:db8::1");
}

// A forged probe must not be able to name a connection that succeeds without redirection.
TEST(ProbeSpec, RejectsTargetsThatProveNothingAndNonCanonicalText) {
  for (const char* bad : {
           "",
           "None",
           "none ",
           "target=192.0.2.1:15001,capture=15001",  // the capture port itself
           "target=127.0.0.1:15002,capture=15001",
           "target=127.1.2.3:15002,capture=15001",
           "target=0.0.0.0:15002,capture=15001",
           "target=224.0.0.1:15002,capture=15001",
           "target=[::1]:15002,capture=15001",
           "target=[::]:15002,capture=15001",
           "target=[::ffff:192.0.2.1]:15002,capture=15001",
           "target=[ff02::1]:15002,capture=15001",
           "target=192.0.2.1:0,capture=15001",
           "target=192.0.2.1:65536,capture=15001",
           "target=192.0.2.1:15002,capture=0",
           "target=192.0.2.1:015002,capture=15001",
           "target=192.0.2.1:15002,capture=15001,",
           "target=192.0.2.1:15002",
           "target=2001:db8::1:15002,capture=15001",
           "target=[2001:db8:0::1]:15002,capture=15001",  // not the canonical spelling
           "target=192.0.2.01:15002,capture=15001",
           "target=[192.0.2.1]:15002,capture=15001",
           "capture=15001,target=192.0.2.1:15002",
           "target=example.com:80,capture=15001",
       }) {
    EXPECT_FALSE(ParseProbeSpec(bad).has_value()) << bad;
  }
}

TEST(ProofMarker, ValueFromTheDigest) {
  EXPECT_EQ(ProofMarkerValue("89abcdef01234567"), 0x89abcdefu);
  EXPECT_EQ(ProofMarkerValue("0000000001234567"), 1u);  // never 0
  EXPECT_FALSE(ProofMarkerValue("89ABCDEF01234567").has_value());
  EXPECT_FALSE(ProofMarkerValue("").has_value());
}

TEST(PlanDigest, Shape) {
  EXPECT_TRUE(IsPlanDigest("0123456789abcdef"));
  EXPECT_FALSE(IsPlanDigest("0123456789ABCDEF"));
  EXPECT_FALSE(IsPlanDigest("0123456789abcde"));
  EXPECT_FALSE(IsPlanDigest(""));
}

}  // namespace
}  // namespace pnc::rules
