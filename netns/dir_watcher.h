// DirWatcher: calls back when a file appears in a directory (inotify IN_CREATE / IN_MOVED_TO), on a thread
// of its own, until destroyed. The controller watches the container runtime's network-namespace directory
// (/var/run/netns: containerd and CRI-O bind-mount every new sandbox netns there) so that a pod waiting for
// its sandbox is reconciled as soon as one appears, instead of at its next backoff timer. The callback gets
// the file name; it is only a hint (which pod it belongs to is decided by the locator), so bursts may be
// coalesced and the watcher never blocks on the callback's work for long.
#ifndef PNC_NETNS_DIR_WATCHER_H_
#define PNC_NETNS_DIR_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace pnc::netns {

class DirWatcher {
 public:
  using Callback = std::function<void(const std::string& name)>;
  // NotFound when `dir` does not exist; other errors from inotify. The thread starts at once.
  static absl::StatusOr<std::unique_ptr<DirWatcher>> Start(const std::string& dir, Callback cb);
  ~DirWatcher();  // stops and joins the thread
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

 private:
  DirWatcher(int inotify_fd, int stop_fd, Callback cb);
  void Run();
  int inotify_fd_;
  int stop_fd_;  // eventfd: written by the destructor
  Callback cb_;
  std::thread thread_;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_DIR_WATCHER_H_
