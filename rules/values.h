// Token-level parsers shared by plan.cc (annotations) and iptables_save.cc (read back). Internal to rules/.
#ifndef PNC_RULES_VALUES_H_
#define PNC_RULES_VALUES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "rules/ruleset.h"

namespace pnc::rules::internal {

// C-escaped, truncated to `max` bytes (plus "..." when cut), wrapped in double quotes.
std::string QuoteToken(absl::string_view token, size_t max = 64);

// Decimal 1..65535 (no sign, no leading/trailing junk, at most 5 digits).
std::optional<uint16_t> ParsePort(absl::string_view s);

// Decimal unsigned integer that fits uint32 (at most 10 digits).
std::optional<uint32_t> ParseUint32(absl::string_view s);

// "0x539" or decimal -> uint32.
std::optional<uint32_t> ParseHexOrDecimalUint32(absl::string_view s);

// "addr/prefix" (prefix required). Host bits are cleared; the address is re-printed canonically (inet_ntop).
// `host_bits_set` (optional) reports whether normalisation changed the address.
struct CidrParse {
  Cidr cidr;
  bool host_bits_set = false;
};
std::optional<CidrParse> ParseCidr(absl::string_view s);

// Parses a bare address (no prefix) of either family.
std::optional<Family> ParseIpAddressFamily(absl::string_view s);

// 1..15 bytes of [A-Za-z0-9_.-], not "." or "..".
bool IsValidInterfaceName(absl::string_view s);

// "10.0.0.0/8"
std::string FormatCidr(const Cidr& c);

}  // namespace pnc::rules::internal

#endif  // PNC_RULES_VALUES_H_
