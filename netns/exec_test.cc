#include "netns/exec.h"

#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

TEST(ExecTest, PipesStdinToStdoutAndReportsExitCode) {
  absl::StatusOr<ExecResult> r = Exec({"/bin/cat"}, {}, "hello\n", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "hello\n");
  EXPECT_EQ(r->err, "");
}

TEST(ExecTest, LargeInputAndOutputDoNotDeadlock) {
  const std::string big(4 << 20, 'x');  // far beyond a pipe buffer in both directions
  absl::StatusOr<ExecResult> r = Exec({"/bin/cat"}, {}, big, absl::Seconds(20));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out.size(), big.size());
}

TEST(ExecTest, NonZeroExitAndStderr) {
  absl::StatusOr<ExecResult> r = Exec({"/bin/ls", "/pnc-definitely-missing"}, {}, "", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->exit_code, 0);
  EXPECT_THAT(r->err, ::testing::HasSubstr("pnc-definitely-missing"));
}

TEST(ExecTest, ArgvIsNotInterpretedByAShell) {
  absl::StatusOr<ExecResult> r = Exec({"/bin/echo", "$(id)", ";", "|", "`x`"}, {}, "", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "$(id) ; | `x`\n");
}

TEST(ExecTest, EnvironmentIsExactlyWhatWasGiven) {
  absl::StatusOr<ExecResult> r = Exec({"/usr/bin/env"}, {"A=1", "XTABLES_LOCKFILE=/x"}, "", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "A=1\nXTABLES_LOCKFILE=/x\n");
}

TEST(ExecTest, ChildThatIgnoresStdinDoesNotKillUs) {
  // `true` exits without reading: writing the rest of stdin hits EPIPE, which must not raise SIGPIPE here.
  absl::StatusOr<ExecResult> r = Exec({"/bin/true"}, {}, std::string(1 << 20, 'y'), absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
}

TEST(ExecTest, TimeoutKillsTheChild) {
  const absl::Time start = absl::Now();
  absl::StatusOr<ExecResult> r = Exec({"/bin/sleep", "30"}, {}, "", absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ExecTest, RunawayOutputIsCut) {
  absl::StatusOr<ExecResult> r = Exec({"/usr/bin/yes"}, {}, "", absl::Seconds(30));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
}

TEST(ExecTest, RejectsRelativeProgramAndReportsSpawnFailure) {
  EXPECT_EQ(Exec({"cat"}, {}, "", absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exec({}, {}, "", absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ExecResult> r = Exec({"/pnc/definitely/missing"}, {}, "", absl::Seconds(1));
  // glibc's posix_spawn reports a failed exec as an error (or, in old versions, exit code 127).
  EXPECT_TRUE(!r.ok() || r->exit_code == 127) << r.status();
}

}  // namespace
}  // namespace pnc::netns
