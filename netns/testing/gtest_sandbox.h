// PNC_SANDBOX_OR_SKIP(var): in a gtest test body or SetUp, sets `var` (Sandbox*) to the process sandbox, or
// ends the test: FAIL when the sandbox is Required() (root in the initial user namespace, i.e. CI), else
// GTEST_SKIP with the reason, so an environment without user namespaces reports a visible skip and never a
// silent pass.
#ifndef PNC_NETNS_TESTING_GTEST_SANDBOX_H_
#define PNC_NETNS_TESTING_GTEST_SANDBOX_H_

#include "gtest/gtest.h"
#include "netns/testing/sandbox.h"

#define PNC_SANDBOX_OR_SKIP(var)                                                                          \
  do {                                                                                                    \
    absl::StatusOr<::pnc::netns::testing::Sandbox*> pnc_sandbox_ = ::pnc::netns::testing::Sandbox::Get(); \
    if (!pnc_sandbox_.ok()) {                                                                             \
      if (::pnc::netns::testing::Sandbox::Required()) {                                                   \
        FAIL() << "sandbox required (root in the initial user namespace) but unavailable: "               \
               << pnc_sandbox_.status();                                                                  \
      }                                                                                                   \
      GTEST_SKIP() << "sandbox unavailable, test not run: " << pnc_sandbox_.status();                     \
    }                                                                                                     \
    var = *pnc_sandbox_;                                                                                  \
  } while (0)

#endif  // PNC_NETNS_TESTING_GTEST_SANDBOX_H_
