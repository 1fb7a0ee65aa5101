#include "netns/cri/testing/gtest_containerd.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace pnc::netns::cri_testing {

std::string PauseBinaryFromRunfiles() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr)
    return absl::StrCat(srcdir, "/", workspace, "/netns/cri/testing/pause");
  return "netns/cri/testing/pause";
}

}  // namespace pnc::netns::cri_testing
