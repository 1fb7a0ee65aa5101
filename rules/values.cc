#include "rules/values.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pnc::rules::internal {

std::string QuoteToken(absl::string_view token, size_t max) {
  const bool cut = token.size() > max;
  std::string escaped = absl::CHexEscape(cut ? token.substr(0, max) : token);
  return absl::StrCat("\"", escaped, cut ? "...\"" : "\"");
}

std::optional<uint32_t> ParseUint32(absl::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffULL) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::optional<uint16_t> ParsePort(absl::string_view s) {
  if (s.size() > 5) return std::nullopt;
  auto v = ParseUint32(s);
  if (!v || *v == 0 || *v > 65535) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

std::optional<uint32_t> ParseHexOrDecimalUint32(absl::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    if (s.empty() || s.size() > 8) return std::nullopt;
    uint32_t v = 0;
    for (char c : s) {
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    return v;
  }
  return ParseUint32(s);
}

std::optional<Family> ParseIpAddressFamily(absl::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::string z(s);
  unsigned char buf[16];
  if (inet_pton(AF_INET, z.c_str(), buf) == 1) return Family::kIPv4;
  if (inet_pton(AF_INET6, z.c_str(), buf) == 1) return Family::kIPv6;
  return std::nullopt;
}

std::optional<CidrParse> ParseCidr(absl::string_view s) {
  size_t slash = s.find('/');
  if (slash == absl::string_view::npos) return std::nullopt;
  absl::string_view addr = s.substr(0, slash);
  absl::string_view prefix = s.substr(slash + 1);
  if (addr.empty() || addr.size() >= INET6_ADDRSTRLEN || prefix.empty() || prefix.size() > 3)
    return std::nullopt;
  auto plen = ParseUint32(prefix);
  if (!plen) return std::nullopt;
  std::string z(addr);
  unsigned char buf[16] = {};
  int af;
  size_t bytes;
  Family fam;
  if (inet_pton(AF_INET, z.c_str(), buf) == 1) {
    af = AF_INET;
    bytes = 4;
    fam = Family::kIPv4;
  } else if (inet_pton(AF_INET6, z.c_str(), buf) == 1) {
    af = AF_INET6;
    bytes = 16;
    fam = Family::kIPv6;
  } else {
    return std::nullopt;
  }
  if (*plen > bytes * 8) return std::nullopt;
  bool changed = false;
  for (size_t i = 0; i < bytes; ++i) {
    int keep = static_cast<int>(*plen) - static_cast<int>(i * 8);
    unsigned char mask = keep >= 8 ? 0xff : keep <= 0 ? 0x00 : static_cast<unsigned char>(0xff << (8 - keep));
    if ((buf[i] & ~mask) != 0) changed = true;
    buf[i] &= mask;
  }
  char out[INET6_ADDRSTRLEN];
  if (inet_ntop(af, buf, out, sizeof(out)) == nullptr) return std::nullopt;
  CidrParse r;
  r.cidr.family = fam;
  r.cidr.address = out;
  r.cidr.prefix_len = static_cast<int>(*plen);
  r.host_bits_set = changed;
  return r;
}

bool IsValidInterfaceName(absl::string_view s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::string FormatCidr(const Cidr& c) { return absl::StrCat(c.address, "/", c.prefix_len); }

}  // namespace pnc::rules::internal
