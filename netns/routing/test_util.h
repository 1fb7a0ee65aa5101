// Test helpers for netns/routing, netns/nft and netns/cri tests (testonly): throwaway network namespaces and
// running a command (argv, never a shell) in the calling thread's netns to cross-check with iproute2/nft.
#ifndef PNC_NETNS_ROUTING_TEST_UTIL_H_
#define PNC_NETNS_ROUTING_TEST_UTIL_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "netns/netns.h"

namespace pnc::netns::testing {

// Runs `fn` on a new thread that first unshare(CLONE_NEWNET)s and brings `lo` up; the namespace dies with the
// thread. Returns the unshare/setup error (e.g. PermissionDenied when not root) without running fn.
absl::Status RunInFreshNetns(absl::FunctionRef<void()> fn);

// Creates a new netns (lo up) owned only by the returned handle: it disappears when the handle closes.
absl::StatusOr<NetnsHandle> NewThrowawayNetns();

// A thread parked in its own new netns (lo up) until destruction, so /proc/<tid>/ns/net names a live,
// non-host namespace without any bind mount.
class NetnsThread {
 public:
  NetnsThread();
  ~NetnsThread();
  NetnsThread(const NetnsThread&) = delete;
  NetnsThread& operator=(const NetnsThread&) = delete;

  int tid() const { return tid_; }  // 0 when the namespace could not be set up (not root)
  std::string path() const;         // /proc/<tid>/ns/net

 private:
  int tid_ = 0;
  absl::Notification started_, done_;
  std::thread thread_;
};

// Brings `lo` up in the calling thread's netns.
absl::Status BringUpLoopback();

// posix_spawn()s argv[0] (absolute path) with argv in the calling thread's netns, returns its stdout.
// Non-zero exit
// -> Internal error with stderr.
absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv);

// RunCapture inside `ns` (on an executor worker).
absl::StatusOr<std::string> RunCaptureIn(const NetnsHandle& ns, const std::vector<std::string>& argv);

// Message for GTEST_SKIP when namespaces cannot be created here (not root, no CAP_SYS_ADMIN).
std::string SkipReason(const absl::Status& s);

// True when this process is root in the initial user namespace (CI): namespace tests must run there, so a
// setup failure is a test failure, never a skip.
bool NamespacesRequired();

}  // namespace pnc::netns::testing

// In a gtest body: if `status_expr` (the netns setup) failed, FAIL when namespaces are required (root, CI),
// else GTEST_SKIP with the reason, so an unprivileged run reports a visible skip, never a silent pass.
#define PNC_NETNS_OR_SKIP(status_expr)                                                            \
  do {                                                                                            \
    const ::absl::Status pnc_netns_status_ = (status_expr);                                       \
    if (!pnc_netns_status_.ok()) {                                                                \
      if (::pnc::netns::testing::NamespacesRequired()) {                                          \
        FAIL() << "running as root but cannot create a network namespace: " << pnc_netns_status_; \
      }                                                                                           \
      GTEST_SKIP() << ::pnc::netns::testing::SkipReason(pnc_netns_status_);                       \
    }                                                                                             \
  } while (0)

namespace pnc::netns::testing {}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_ROUTING_TEST_UTIL_H_
