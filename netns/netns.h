// NetnsHandle: an owned reference to one network namespace (an open fd on an nsfs file) plus its identity.
//
// Contract: a handle never refers to the host network namespace. Open() compares (st_dev, st_ino) of the
// target with the namespace of the host's PID 1 as this process sees it (/proc/1/ns/net) and with this
// process's own initial namespace, and refuses both with FailedPrecondition("... is the host network
// namespace ..."). Handles are move-only; the fd closes when the handle dies.
#ifndef PNC_NETNS_NETNS_H_
#define PNC_NETNS_NETNS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace pnc::netns {

class NetnsHandle {
 public:
  // Opens /var/run/netns/<name>, /proc/<pid>/ns/net or any nsfs path. Errors: NotFound (path gone: the
  // sandbox is not there yet or already torn down), FailedPrecondition (not a netns, or the host netns),
  // others from the OS.
  static absl::StatusOr<NetnsHandle> Open(const std::string& path);

  // A handle that owns no fd, for fakes in tests: (0, fake_inode), and the netns cookie a fake Inspector
  // reports for it (netns/inspector.h). Fakes reuse inodes like the kernel does; cookies are never reused.
  static NetnsHandle ForTesting(const std::string& description, uint64_t fake_inode,
                                uint64_t fake_cookie = 0);

  NetnsHandle(NetnsHandle&& other) noexcept;
  NetnsHandle& operator=(NetnsHandle&& other) noexcept;
  NetnsHandle(const NetnsHandle&) = delete;
  NetnsHandle& operator=(const NetnsHandle&) = delete;
  ~NetnsHandle();

  int fd() const { return fd_; }  // -1 for ForTesting handles
  // nsfs inode: identifies a LIVE namespace only (the kernel hands the number out again as soon as the netns
  // is freed); for "the same netns as before" use the netns cookie (netns/inspector.h).
  uint64_t inode() const { return inode_; }
  uint64_t device() const { return device_; }
  uint64_t testing_cookie() const { return testing_cookie_; }  // 0 unless ForTesting set one
  const std::string& path() const { return path_; }            // what it was opened from, for messages

 private:
  NetnsHandle(int fd, uint64_t device, uint64_t inode, std::string path)
      : fd_(fd), device_(device), inode_(inode), path_(std::move(path)) {}
  int fd_ = -1;
  uint64_t device_ = 0;
  uint64_t inode_ = 0;
  uint64_t testing_cookie_ = 0;
  std::string path_;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_NETNS_H_
