// The gtest fixture base of the tests that run the real waiter in sandbox namespaces (testonly): the
// process's netns sandbox, entered before any thread exists, and a world-readable directory (work_) holding a
// copy of the waiter binary ($WAITER) as work_ + "/waiter", since the waiter runs as a non-root uid that
// cannot traverse Bazel's root-only output tree. A test without the sandbox FAILS as root in the initial user
// namespace (CI) and is skipped with the reason elsewhere.
#ifndef PNC_SIMULATOR_WAITER_TEST_ENV_H_
#define PNC_SIMULATOR_WAITER_TEST_ENV_H_

#include <string>

#include "gtest/gtest.h"
#include "netns/testing/sandbox.h"

namespace pnc::sim {

class WaiterSandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  static netns::testing::Sandbox* sandbox_;
  static std::string sandbox_error_;
  static std::string work_;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_WAITER_TEST_ENV_H_
