#include "netns/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

TEST(StatusFromErrnoTest, CodesCallersRelyOn) {
  EXPECT_EQ(StatusFromErrno(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromErrno(ENOENT, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromErrno(ESRCH, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromErrno(ENODEV, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromErrno(EPERM, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromErrno(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromErrno(EINVAL, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromErrno(EOPNOTSUPP, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromErrno(EBUSY, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusFromErrno(ECONNREFUSED, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromErrno(ETIMEDOUT, "x").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusFromErrno(ENOMEM, "x").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(StatusFromErrno(0, "x").code(), absl::StatusCode::kInternal);  // never OK: callers saw a failure
}

TEST(StatusFromErrnoTest, MessageNamesOperationAndError) {
  EXPECT_EQ(StatusFromErrno(ENOENT, "open /x").message(), "open /x: No such file or directory");
}

}  // namespace
}  // namespace pnc::netns
