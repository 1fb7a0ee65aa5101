// Linking //netns/testing:sandbox_at_startup enters the Sandbox during static initialisation, i.e. before
// main() and before anything can have started a thread. For test binaries that keep their usual main
// (gtest_main) but have other code that starts threads before the first sandbox test runs. The outcome is
// reported later by Sandbox::Get() / PNC_SANDBOX_OR_SKIP as usual.
#include "netns/testing/sandbox.h"

namespace {

[[maybe_unused]] const bool kEntered = [] {
  (void)pnc::netns::testing::Sandbox::Get();
  return true;
}();

}  // namespace
