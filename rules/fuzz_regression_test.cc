// gcc-built regression run of the fuzz entry point (the real libFuzzer run is fuzz_libfuzzer_test.sh): every
// seed in rules/testdata/fuzz_corpus, deterministic mutations of each seed, and deterministic random inputs.
// Any invariant violation aborts the test (see fuzz_entry.h).
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rules/fuzz_entry.h"
#include "rules/test_util.h"

namespace pnc::rules {
namespace {

std::vector<std::string> Corpus() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("rules/testdata/fuzz_corpus")) {
    auto text = testing::ReadFile(e.path().string());
    if (text) out.push_back(*text);
  }
  return out;
}

void RunOne(const std::string& s) { FuzzOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(FuzzRegressionTest, SeedCorpus) {
  auto corpus = Corpus();
  ASSERT_GE(corpus.size(), 15u);
  for (const auto& s : corpus) RunOne(s);
}

TEST(FuzzRegressionTest, MutatedSeeds) {
  auto corpus = Corpus();
  std::mt19937 rng(20260101);
  const std::string alphabet =
      "0123456789,/:.*-! \n\x00\xff"
      "abcdefxTPROXYREDIRECT";
  int runs = 0;
  for (const auto& seed : corpus) {
    for (int i = 0; i < 150; ++i) {
      std::string s = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        size_t pos = 1 + rng() % s.size();
        if (pos >= s.size()) pos = s.size() - 1;
        switch (rng() % 4) {
          case 0:
            s[pos] = alphabet[rng() % alphabet.size()];
            break;
          case 1:
            s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
            break;
          case 2:
            s.erase(pos, 1 + rng() % 8);
            break;
          default:
            s.insert(pos, s.substr(pos, rng() % 32));
            break;
        }
      }
      RunOne(s);
      ++runs;
    }
  }
  EXPECT_GE(runs, 2000);
}

TEST(FuzzRegressionTest, RandomInputs) {
  std::mt19937 rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 200, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? "0123456789,/*\n"[rng() % 14] : rng() % 256);
    RunOne(s);
  }
}

TEST(FuzzRegressionTest, HugeAnnotationIsRejectedNotSplit) {
  std::string s = std::string("\x00\x00", 2) + "\x04";  // plan path, excludeInboundPorts
  s += std::string(1 << 20, '1') + ",";
  RunOne(s);
}

}  // namespace
}  // namespace pnc::rules
