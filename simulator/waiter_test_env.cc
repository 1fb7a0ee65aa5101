#include "simulator/waiter_test_env.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "simulator/process.h"

namespace pnc::sim {

netns::testing::Sandbox* WaiterSandboxTest::sandbox_ = nullptr;
std::string WaiterSandboxTest::sandbox_error_;
std::string WaiterSandboxTest::work_;

void WaiterSandboxTest::SetUpTestSuite() {
  PreloadNetfilterModules();  // iptables-legacy REDIRECT/owner inside the sandbox's user namespace
  auto sb = netns::testing::Sandbox::Get();  // before any thread exists
  if (!sb.ok()) {
    sandbox_error_ = sb.status().ToString();
    return;
  }
  std::string tmpl = "/tmp/pnc-waiter-test-XXXXXX";
  const char* waiter = std::getenv("WAITER");
  std::error_code ec;
  if (::mkdtemp(tmpl.data()) == nullptr || waiter == nullptr ||
      !std::filesystem::copy_file(waiter, tmpl + "/waiter", ec)) {
    sandbox_error_ = "cannot copy $WAITER into " + tmpl;
    return;
  }
  ::chmod(tmpl.c_str(), 0755);
  ::chmod((tmpl + "/waiter").c_str(), 0755);
  work_ = tmpl;
  sandbox_ = *sb;
}

void WaiterSandboxTest::TearDownTestSuite() {
  std::error_code ec;
  if (!work_.empty()) std::filesystem::remove_all(work_, ec);
}

void WaiterSandboxTest::SetUp() {
  if (sandbox_ != nullptr) return;
  if (netns::testing::Sandbox::Required()) FAIL() << "sandbox required but unavailable: " << sandbox_error_;
  GTEST_SKIP() << "sandbox unavailable, test not run: " << sandbox_error_;
}

}  // namespace pnc::sim
