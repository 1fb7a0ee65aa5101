#include "netns/dir_watcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace pnc::netns {
namespace {

TEST(DirWatcher, ReportsNewFilesUntilDestroyed) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/watchXXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::atomic<int> seen{0};
  absl::Notification got;
  std::string name;
  {
    absl::StatusOr<std::unique_ptr<DirWatcher>> w = DirWatcher::Start(dir, [&](const std::string& n) {
      if (seen.fetch_add(1) == 0) {
        name = n;
        got.Notify();
      }
    });
    ASSERT_TRUE(w.ok()) << w.status();
    int fd = ::open((dir + "/cni-1234").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
    ASSERT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(20)));  // bound only against a hang
    EXPECT_EQ(name, "cni-1234");
  }  // destroyed: the thread is joined
  int after = seen.load();
  int fd = ::open((dir + "/cni-5678").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ::close(fd);
  EXPECT_EQ(seen.load(), after);
  unlink((dir + "/cni-1234").c_str());
  unlink((dir + "/cni-5678").c_str());
  rmdir(dir.c_str());
}

TEST(DirWatcher, MissingDirectoryIsNotFound) {
  EXPECT_EQ(DirWatcher::Start("/nonexistent-pnc-dir", [](const std::string&) {}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pnc::netns
