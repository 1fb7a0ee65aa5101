#include "netns/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace pnc::netns {

absl::Status StatusFromErrno(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case ENOENT:
    case ESRCH:
    case ENODEV:
      return absl::NotFoundError(msg);
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(msg);
    case EINVAL:
    case EOPNOTSUPP:
      return absl::InvalidArgumentError(msg);
    case EBUSY:
      return absl::FailedPreconditionError(msg);
    case ECONNREFUSED:
    case ENETUNREACH:
    case EHOSTUNREACH:
      return absl::UnavailableError(msg);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace pnc::netns
