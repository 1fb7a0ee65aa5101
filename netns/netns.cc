#include "netns/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "netns/errno_status.h"

namespace pnc::netns {
namespace {

// Namespaces a handle must never refer to: the host's (PID 1 as seen here) and our own initial one. Read once
// per Open() on purpose: both are cheap (~2 us) and a cached value would go stale in tests that unshare().
bool IsHostNamespace(const struct stat& st, std::string* which) {
  struct stat host;
  if (stat("/proc/1/ns/net", &host) == 0 && host.st_dev == st.st_dev && host.st_ino == st.st_ino) {
    *which = "/proc/1/ns/net";
    return true;
  }
  struct stat self;
  if (stat("/proc/self/ns/net", &self) == 0 && self.st_dev == st.st_dev && self.st_ino == st.st_ino) {
    *which = "/proc/self/ns/net";
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<NetnsHandle> NetnsHandle::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StatusFromErrno(errno, absl::StrCat("open netns ", path));
  NetnsHandle handle(fd, 0, 0, path);  // owns fd from here on
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return StatusFromErrno(errno, absl::StrCat("statfs ", path));
  if (fs.f_type != NSFS_MAGIC) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a namespace file (not on nsfs)"));
  }
  // nsfs also holds mount, uts, pid, ... namespaces: insist on a network namespace.
  if (int type = ioctl(fd, NS_GET_NSTYPE); type != CLONE_NEWNET) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a network namespace"));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return StatusFromErrno(errno, absl::StrCat("stat ", path));
  std::string which;
  if (IsHostNamespace(st, &which)) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing ", path, ": it is the host network namespace (same inode as ", which, ")"));
  }
  handle.device_ = st.st_dev;
  handle.inode_ = st.st_ino;
  return handle;
}

NetnsHandle NetnsHandle::ForTesting(const std::string& description, uint64_t fake_inode,
                                    uint64_t fake_cookie) {
  NetnsHandle h(-1, 0, fake_inode, description);
  h.testing_cookie_ = fake_cookie;
  return h;
}

NetnsHandle::NetnsHandle(NetnsHandle&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      device_(other.device_),
      inode_(other.inode_),
      testing_cookie_(other.testing_cookie_),
      path_(std::move(other.path_)) {}

NetnsHandle& NetnsHandle::operator=(NetnsHandle&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    device_ = other.device_;
    inode_ = other.inode_;
    testing_cookie_ = other.testing_cookie_;
    path_ = std::move(other.path_);
  }
  return *this;
}

NetnsHandle::~NetnsHandle() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace pnc::netns
