// Test helpers for netns/routing, netns/nft and netns/cri tests (testonly): throwaway network namespaces and
// running a command (argv, never a shell) in the calling thread's netns to cross-check with iproute2/nft.
#ifndef PNC_NETNS_ROUTING_TEST_UTIL_H_
#define PNC_NETNS_ROUTING_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "netns/netns.h"

namespace pnc::netns::testing {

// Runs `fn` on a new thread that first unshare(CLONE_NEWNET)s and brings `lo` up; the namespace dies with the
// thread. Returns the unshare/setup error (e.g. PermissionDenied when not root) without running fn.
absl::Status RunInFreshNetns(absl::FunctionRef<void()> fn);

// Creates a new netns (lo up) owned only by the returned handle: it disappears when the handle closes.
absl::StatusOr<NetnsHandle> NewThrowawayNetns();

// Brings `lo` up in the calling thread's netns.
absl::Status BringUpLoopback();

// posix_spawn()s argv[0] (absolute path) with argv in the calling thread's netns, returns its stdout.
// Non-zero exit
// -> Internal error with stderr.
absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv);

// Message for GTEST_SKIP when namespaces cannot be created here (not root, no CAP_SYS_ADMIN).
std::string SkipReason(const absl::Status& s);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_ROUTING_TEST_UTIL_H_
