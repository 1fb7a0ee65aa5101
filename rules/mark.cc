#include "rules/mark.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace pnc::rules {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// Decimal without sign or leading zeros, within [lo, hi].
std::optional<uint64_t> ParseDecimal(std::string_view s, uint64_t lo, uint64_t hi) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

bool NeverAProof(const ProbeSpec& p) {
  const uint8_t* a = p.address.data();
  if (!p.ipv6) {
    return a[0] == 127 || a[0] == 0 || (a[0] >= 224);  // loopback, "this network", multicast/reserved
  }
  static const uint8_t kZero[16] = {};
  if (std::memcmp(a, kZero, 15) == 0 && (a[15] == 0 || a[15] == 1)) return true;  // :: and ::1
  if (a[0] == 0xff) return true;                                                  // multicast
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kMapped, 12) == 0;  // v4-mapped: use the IPv4 form
}

}  // namespace

std::string FormatNetnsIdentity(const NetnsIdentity& id) {
  return id.boot_id + "/" + std::to_string(id.cookie);
}

std::optional<std::string> CanonicalBootId(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.size() != 36) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !IsLowerHex(text[i])) return std::nullopt;
  }
  return std::string(text);
}

std::optional<NetnsIdentity> ParseNetnsIdentity(std::string_view text) {
  size_t slash = text.find('/');
  if (slash != 36) return std::nullopt;
  if (text.size() > 0 && text.back() == '\n') return std::nullopt;  // CanonicalBootId would accept it
  std::optional<std::string> boot = CanonicalBootId(text.substr(0, slash));
  std::optional<uint64_t> cookie = ParseDecimal(text.substr(slash + 1), 1, UINT64_MAX);
  if (!boot || !cookie) return std::nullopt;
  return NetnsIdentity{*boot, *cookie};
}

std::string ProbeAddressString(const ProbeSpec& spec) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(spec.ipv6 ? AF_INET6 : AF_INET, spec.address.data(), buf, sizeof buf);
  return buf;
}

std::string FormatProbeSpec(const ProbeSpec& spec) {
  if (spec.none) return "none";
  std::string addr = ProbeAddressString(spec);
  if (spec.ipv6) addr = "[" + addr + "]";
  return "target=" + addr + ":" + std::to_string(spec.port) + ",capture=" + std::to_string(spec.capture_port);
}

std::optional<ProbeSpec> ParseProbeSpec(std::string_view text) {
  ProbeSpec p;
  if (text == "none") {
    p.none = true;
    return p;
  }
  constexpr std::string_view kTarget = "target=", kCapture = ",capture=";
  if (text.substr(0, kTarget.size()) != kTarget) return std::nullopt;
  text.remove_prefix(kTarget.size());
  size_t comma = text.find(kCapture);
  if (comma == std::string_view::npos) return std::nullopt;
  std::string_view target = text.substr(0, comma);
  std::optional<uint64_t> capture = ParseDecimal(text.substr(comma + kCapture.size()), 1, 65535);
  size_t colon = target.rfind(':');
  if (!capture || colon == std::string_view::npos) return std::nullopt;
  std::optional<uint64_t> port = ParseDecimal(target.substr(colon + 1), 1, 65535);
  std::string_view host = target.substr(0, colon);
  if (!port || host.empty()) return std::nullopt;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
    p.ipv6 = true;
  }
  if (host.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::string h(host);
  if (inet_pton(p.ipv6 ? AF_INET6 : AF_INET, h.c_str(), p.address.data()) != 1) return std::nullopt;
  p.port = static_cast<uint16_t>(*port);
  p.capture_port = static_cast<uint16_t>(*capture);
  if (p.port == p.capture_port || NeverAProof(p)) return std::nullopt;
  // Canonical text only (e.g. no "::0:1" spellings of an address).
  if (FormatProbeSpec(p) !=
      std::string("target=") + std::string(target) + std::string(kCapture) + std::to_string(p.capture_port))
    return std::nullopt;
  return p;
}

bool IsPlanDigest(std::string_view text) {
  if (text.size() != 16) return false;
  for (char c : text)
    if (!IsLowerHex(c)) return false;
  return true;
}

std::optional<uint32_t> ProofMarkerValue(std::string_view plan_digest) {
  if (!IsPlanDigest(plan_digest)) return std::nullopt;
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(plan_digest.data(), plan_digest.data() + 8, v, 16);
  if (ec != std::errc() || ptr != plan_digest.data() + 8) return std::nullopt;
  return v == 0 ? 1 : v;  // the kernel does not report a zero fwmark in a rule dump
}

}  // namespace pnc::rules
