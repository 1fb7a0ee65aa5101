#include "rules/digest.h"

#include <cstdint>
#include <cstdio>

#include "rules/render.h"

namespace pnc::rules {
namespace {

void Fnv1a(uint64_t& h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
}

}  // namespace

std::string RulesetDigest(const Ruleset& ruleset) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const FamilyRules& fr : ruleset.families) {
    Fnv1a(h, fr.family == Family::kIPv4 ? "#ipv4\n" : "#ipv6\n");
    Fnv1a(h, RenderIptablesSave(fr));
  }
  Fnv1a(h, "#routes\n");
  Fnv1a(h, RenderPolicyRoutes(ruleset));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace pnc::rules
