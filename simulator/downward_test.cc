#include "simulator/downward.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace pnc::sim {
namespace {

std::string Read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(GoQuoteTest, MatchesStrconvQuote) {
  EXPECT_EQ(GoQuote("initialized"), "\"initialized\"");
  EXPECT_EQ(GoQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(GoQuote("l1\nl2\t\r"), "\"l1\\nl2\\t\\r\"");
  EXPECT_EQ(GoQuote(std::string("\x01\x7f", 2)), "\"\\x01\\x7f\"");
  EXPECT_EQ(GoQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // printable UTF-8 stays
  EXPECT_EQ(GoQuote("\xff"), "\"\\xff\"");               // invalid UTF-8 byte
  EXPECT_EQ(GoQuote("\xc2\x85"), "\"\\u0085\"");         // C1 control
  EXPECT_EQ(GoQuote("{\"a\":1}"), "\"{\\\"a\\\":1}\"");
}

TEST(DownwardVolumeTest, AtomicSwapLayoutLikeKubelet) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/podinfo";
  DownwardVolume v(dir);
  ASSERT_TRUE(v.Update({{"pod_annotations", FormatDownwardMap({{"b", "2"}, {"a", "x\"y"}})}}).ok());
  EXPECT_EQ(Read(dir + "/pod_annotations"), "a=\"x\\\"y\"\nb=\"2\"\n");
  char target[256] = {};
  ASSERT_GT(::readlink((dir + "/pod_annotations").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target), "..data/pod_annotations");
  ASSERT_GT(::readlink((dir + "/..data").c_str(), target, sizeof(target) - 1), 0);
  std::string first(target);
  EXPECT_EQ(first.rfind("..", 0), 0u);

  ASSERT_TRUE(v.Update({{"pod_annotations", FormatDownwardMap({{"s", "initialized"}})}}).ok());
  EXPECT_EQ(Read(dir + "/pod_annotations"), "s=\"initialized\"\n");
  char second[256] = {};
  ASSERT_GT(::readlink((dir + "/..data").c_str(), second, sizeof(second) - 1), 0);
  EXPECT_NE(first, std::string(second));
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + first));  // the old version is gone
  EXPECT_FALSE(std::filesystem::exists(dir + "/..data_tmp"));
  struct stat st;
  ASSERT_EQ(::stat((dir + "/pod_annotations").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  v.Remove();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace pnc::sim
