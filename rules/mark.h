// The values the controller writes into a pod's mark and the waiter reads back (docs/mark.md). Standard C++
// only (no absl): the waiter links this statically. Every parser is strict: it accepts exactly what the
// formatter produces, because these annotations can be written by a tenant (without the admission policy)
// and a lenient parser would widen what a forgery can express.
#ifndef PNC_RULES_MARK_H_
#define PNC_RULES_MARK_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pnc::rules {

// A network namespace identity the kernel never hands out twice: the netns cookie (SO_NETNS_COOKIE, unique
// for the life of a boot) plus the boot id (/proc/sys/kernel/random/boot_id), so a cookie from an earlier
// boot never matches. Text form: "<boot_id>/<cookie>", e.g. "0b5f1a9e-...-6c2d/8193".
struct NetnsIdentity {
  std::string boot_id;  // lowercase UUID, 36 characters
  uint64_t cookie = 0;  // never 0 for a real netns
  friend bool operator==(const NetnsIdentity&, const NetnsIdentity&) = default;
};
std::string FormatNetnsIdentity(const NetnsIdentity& id);
// nullopt unless `text` is exactly a lowercase UUID, '/', and a decimal cookie without leading zeros (> 0).
std::optional<NetnsIdentity> ParseNetnsIdentity(std::string_view text);
// A boot id as the kernel prints it (with or without the trailing newline) -> the canonical form, or
// nullopt if it is not a UUID.
std::optional<std::string> CanonicalBootId(std::string_view text);

// The datapath proof the waiter must obtain: as a uid/gid the rules capture, connect to `target`; the
// listener it opened on `capture_port` in its own netns must accept that very connection with
// SO_ORIGINAL_DST == target. `none`: the plan captures no outbound TCP the controller could find a
// routable target for; the waiter then relies on the netns identity and says so.
struct ProbeSpec {
  bool none = false;
  bool ipv6 = false;
  std::array<uint8_t, 16> address{};  // network byte order; first 4 bytes for IPv4
  uint16_t port = 0;
  uint16_t capture_port = 0;
  friend bool operator==(const ProbeSpec&, const ProbeSpec&) = default;
};
// "target=192.0.2.1:15002,capture=15001", "target=[2001:db8::1]:15002,capture=15001", or "none".
std::string FormatProbeSpec(const ProbeSpec& spec);
// Strict: the formatter's output only; ports 1..65535, target port != capture port, a target that is not
// loopback, unspecified or multicast (a connection to one of those is never a proof of redirection).
std::optional<ProbeSpec> ParseProbeSpec(std::string_view text);
// The target's address in inet_ntop form.
std::string ProbeAddressString(const ProbeSpec& spec);

// The digest of an applied plan: 16 lowercase hex digits.
bool IsPlanDigest(std::string_view text);

// The proof marker (netns/proof_marker.h): a NOP policy-routing rule the controller adds to the pod's netns
// after verifying the rules there; IPv4 rule list, this priority and protocol, fwmark = ProofMarkerValue of
// the plan digest. The waiter relies on it when the mark says `probe: none`.
inline constexpr uint32_t kProofMarkerPriority = 32764;
inline constexpr uint8_t kProofMarkerProtocol = 154;
// The first 8 hex digits of a plan digest as a number (never 0: 0 becomes 1); nullopt unless IsPlanDigest.
std::optional<uint32_t> ProofMarkerValue(std::string_view plan_digest);

}  // namespace pnc::rules

#endif  // PNC_RULES_MARK_H_
