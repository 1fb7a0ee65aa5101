// The waiter's owned file descriptor (the waiter links no absl): closed when it goes out of scope; -1 = none.
#ifndef PNC_CONTROLLER_WAITER_FD_H_
#define PNC_CONTROLLER_WAITER_FD_H_

#include <unistd.h>

namespace pnc::waiter {

struct Fd {
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int fd = -1;
};

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_FD_H_
