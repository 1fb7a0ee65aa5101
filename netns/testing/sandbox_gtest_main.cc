// gtest main for sandbox tests: enters the Sandbox before anything can start a thread (unshare of the user
// and mount namespaces needs a single-threaded process), then runs the tests. Tests still call
// PNC_SANDBOX_OR_SKIP, which reports the outcome of this first attempt (skip or, as root, failure).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/testing/sandbox.h"

int main(int argc, char** argv) {
  (void)pnc::netns::testing::Sandbox::Get();
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
