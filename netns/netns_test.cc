// NetnsHandle::Open on the real host view (no sandbox): the process's own namespace and PID 1's must be
// refused.
#include "netns/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

using ::testing::HasSubstr;

TEST(NetnsHandleTest, RefusesOwnNamespace) {
  absl::StatusOr<NetnsHandle> h = NetnsHandle::Open("/proc/self/ns/net");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(h.status().message(), HasSubstr("host network namespace"));
}

TEST(NetnsHandleTest, RefusesPid1Namespace) {
  absl::StatusOr<NetnsHandle> h = NetnsHandle::Open("/proc/1/ns/net");
  ASSERT_FALSE(h.ok()) << "PID 1's network namespace must never be accepted";
  if (geteuid() == 0) {
    EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition) << h.status();
    EXPECT_THAT(h.status().message(), HasSubstr("host network namespace"));
  } else {  // a normal user may not even open it
    EXPECT_THAT(h.status().code(),
                ::testing::AnyOf(absl::StatusCode::kFailedPrecondition, absl::StatusCode::kPermissionDenied));
  }
}

TEST(NetnsHandleTest, RefusesOtherNamespaceTypesAndPlainFiles) {
  absl::StatusOr<NetnsHandle> mnt = NetnsHandle::Open("/proc/self/ns/uts");
  ASSERT_FALSE(mnt.ok());
  EXPECT_EQ(mnt.status().code(), absl::StatusCode::kFailedPrecondition) << mnt.status();
  absl::StatusOr<NetnsHandle> file = NetnsHandle::Open("/proc/self/status");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kFailedPrecondition) << file.status();
  absl::StatusOr<NetnsHandle> gone = NetnsHandle::Open("/var/run/netns/pnc-definitely-not-there");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
}

TEST(NetnsHandleTest, ForTestingHandleHasNoFd) {
  NetnsHandle h = NetnsHandle::ForTesting("pod", 7);
  EXPECT_EQ(h.fd(), -1);
  EXPECT_EQ(h.inode(), 7u);
  NetnsHandle moved = std::move(h);
  EXPECT_EQ(moved.inode(), 7u);
}

}  // namespace
}  // namespace pnc::netns
