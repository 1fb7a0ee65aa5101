// StatusFromErrno: the one errno -> absl::Status mapping for netns/ (namespace files, netlink replies,
// sockets, credentials). The codes matter to callers: NotFound means "gone" (a route/rule already deleted, a
// pod's namespace already torn down), AlreadyExists means "present" (an nft table another writer created
// first).
#ifndef PNC_NETNS_ERRNO_STATUS_H_
#define PNC_NETNS_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pnc::netns {

// Returns a non-OK status "<what>: <strerror(err)>" with a code chosen by errno:
//   EEXIST -> AlreadyExists; ENOENT, ESRCH, ENODEV -> NotFound; EPERM, EACCES -> PermissionDenied;
//   EINVAL, EOPNOTSUPP -> InvalidArgument; EBUSY -> FailedPrecondition;
//   ECONNREFUSED, ENETUNREACH, EHOSTUNREACH -> Unavailable; ETIMEDOUT -> DeadlineExceeded;
//   anything else (including 0) -> Internal.
// (Not named ErrnoToStatus: absl has one with a different table, and ADL on absl::string_view arguments would
// make unqualified calls ambiguous.)
absl::Status StatusFromErrno(int err, absl::string_view what);

}  // namespace pnc::netns

#endif  // PNC_NETNS_ERRNO_STATUS_H_
