#include "netns/nft/decode_memo.h"

#include <string>

#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

using rules::Family;
using rules::Table;

rules::Rule Redirect(uint16_t port) {
  rules::Rule r;
  r.protocol = rules::Protocol::kTcp;
  r.target = rules::RedirectTarget{port};
  return r;
}

TEST(DecodeMemoTest, FindsOnlyTheExactBytesFamilyAndTable) {
  DecodeMemo memo;
  const std::string bytes("\x0c\x00\x01\x80payload\x00", 12);
  EXPECT_FALSE(memo.Find(Family::kIPv4, Table::kNat, bytes));
  memo.Remember(Family::kIPv4, Table::kNat, bytes, Redirect(15001));
  EXPECT_EQ(memo.Find(Family::kIPv4, Table::kNat, bytes), Redirect(15001));

  std::string flipped = bytes;
  flipped[5] ^= 1;
  EXPECT_FALSE(memo.Find(Family::kIPv4, Table::kNat, flipped));
  EXPECT_FALSE(memo.Find(Family::kIPv4, Table::kNat, bytes.substr(0, 11)));
  EXPECT_FALSE(memo.Find(Family::kIPv4, Table::kNat, bytes + std::string(1, '\0')));
  EXPECT_FALSE(memo.Find(Family::kIPv6, Table::kNat, bytes));
  EXPECT_FALSE(memo.Find(Family::kIPv4, Table::kMangle, bytes));
}

TEST(DecodeMemoTest, StaysWithinItsCapacity) {
  DecodeMemo memo(/*capacity=*/2);
  memo.Remember(Family::kIPv4, Table::kNat, "a", Redirect(1));
  memo.Remember(Family::kIPv4, Table::kNat, "b", Redirect(2));
  EXPECT_EQ(memo.size(), 2u);
  memo.Remember(Family::kIPv4, Table::kNat, "c", Redirect(3));
  EXPECT_LE(memo.size(), 2u);
  EXPECT_EQ(memo.Find(Family::kIPv4, Table::kNat, "c"), Redirect(3));
}

}  // namespace
}  // namespace pnc::netns
