// PNC_CONTAINERD_OR_SKIP(var): in a gtest body, starts the containerd fixture into `var`
// (std::unique_ptr<Containerd>), or ends the test: FAIL when the fixture must run (root in the initial user
// namespace, i.e. CI: a runtime that does not start is a failure, never a skip), else GTEST_SKIP with the
// reason. The pause binary comes from the test's runfiles (data = ["//netns/cri/testing:pause"]).
#ifndef PNC_NETNS_CRI_TESTING_GTEST_CONTAINERD_H_
#define PNC_NETNS_CRI_TESTING_GTEST_CONTAINERD_H_

#include <string>

#include "gtest/gtest.h"
#include "netns/cri/testing/containerd.h"
#include "netns/routing/test_util.h"

namespace pnc::netns::cri_testing {
// $TEST_SRCDIR/$TEST_WORKSPACE/netns/cri/testing/pause, else the path relative to the runfiles cwd.
std::string PauseBinaryFromRunfiles();
}  // namespace pnc::netns::cri_testing

#define PNC_CONTAINERD_OR_SKIP(var)                                                                        \
  do {                                                                                                     \
    ::pnc::netns::cri_testing::ContainerdOptions pnc_opts_;                                                \
    pnc_opts_.pause_binary = ::pnc::netns::cri_testing::PauseBinaryFromRunfiles();                         \
    auto pnc_ctrd_ = ::pnc::netns::cri_testing::Containerd::Start(pnc_opts_);                              \
    if (!pnc_ctrd_.ok()) {                                                                                 \
      if (::pnc::netns::testing::NamespacesRequired()) {                                                   \
        FAIL() << "running as root (CI) but the containerd fixture did not start: " << pnc_ctrd_.status(); \
      }                                                                                                    \
      GTEST_SKIP() << "containerd fixture unavailable, test not run: " << pnc_ctrd_.status();              \
    }                                                                                                      \
    var = std::move(*pnc_ctrd_);                                                                           \
  } while (0)

#endif  // PNC_NETNS_CRI_TESTING_GTEST_CONTAINERD_H_
