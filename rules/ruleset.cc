#include "rules/ruleset.h"

namespace pnc::rules {

const char* FamilyName(Family f) { return f == Family::kIPv4 ? "ipv4" : "ipv6"; }

const char* TableName(Table t) {
  switch (t) {
    case Table::kRaw:
      return "raw";
    case Table::kMangle:
      return "mangle";
    case Table::kNat:
      return "nat";
    case Table::kFilter:
      return "filter";
  }
  return "?";
}

}  // namespace pnc::rules
