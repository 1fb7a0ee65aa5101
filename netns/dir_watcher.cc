#include "netns/dir_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "netns/errno_status.h"

namespace pnc::netns {

absl::StatusOr<std::unique_ptr<DirWatcher>> DirWatcher::Start(const std::string& dir, Callback cb) {
  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in < 0) return StatusFromErrno(errno, "inotify_init1");
  if (inotify_add_watch(in, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
    int err = errno;
    ::close(in);
    return StatusFromErrno(err, "watch " + dir);
  }
  int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    int err = errno;
    ::close(in);
    return StatusFromErrno(err, "eventfd");
  }
  return std::unique_ptr<DirWatcher>(new DirWatcher(in, stop, std::move(cb)));
}

DirWatcher::DirWatcher(int inotify_fd, int stop_fd, Callback cb)
    : inotify_fd_(inotify_fd), stop_fd_(stop_fd), cb_(std::move(cb)) {
  thread_ = std::thread([this] { Run(); });
}

DirWatcher::~DirWatcher() {
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(inotify_fd_);
  ::close(stop_fd_);
}

void DirWatcher::Run() {
  alignas(inotify_event) char buf[8192];
  while (true) {
    pollfd p[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    ssize_t n;
    while ((n = ::read(inotify_fd_, buf, sizeof buf)) > 0) {
      for (char* ptr = buf; ptr < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(ptr);
        if (ev->len > 0 && (ev->mask & (IN_CREATE | IN_MOVED_TO))) cb_(ev->name);
        if (ev->mask & IN_IGNORED) return;  // the directory is gone
        ptr += sizeof(inotify_event) + ev->len;
      }
    }
  }
}

}  // namespace pnc::netns
