// RunAs: run a function as another uid/gid, optionally inside a network namespace, without changing the
// credentials or namespace of any other thread. For socket tests: "connect from uid 1000" vs "connect from
// uid 1337 (the proxy)".
//
// How: fn runs on a fresh thread that (1) setns() into `ns` if given, (2) drops supplementary groups, gid and
// uid (real, effective and saved, so it also loses every capability) with RAW syscalls, (3) runs fn, (4)
// exits. Raw syscalls matter: glibc's setresuid()/setgroups() wrappers broadcast the change to every thread
// of the process (POSIX semantics), whereas the kernel keeps credentials per thread. A forked child was the
// alternative; a thread was chosen because fn can then share memory and fds with the test (e.g. return a
// connected socket, or a result) and it costs ~50 us instead of a fork.
//
// Sockets created by fn carry fn's credentials for their whole life (xt_owner matches the socket file's
// creds), so a socket may be created in fn and used afterwards from any thread. uid/gid must be mapped in the
// current user namespace (the Sandbox maps 0..65535).
#ifndef PNC_NETNS_TESTING_RUN_AS_H_
#define PNC_NETNS_TESTING_RUN_AS_H_

#include <sys/types.h>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "netns/netns.h"

namespace pnc::netns::testing {

// Returns fn's status, or the error of entering `ns` / changing credentials (then fn did not run).
absl::Status RunAs(uid_t uid, gid_t gid, const NetnsHandle* ns, absl::FunctionRef<absl::Status()> fn);

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_RUN_AS_H_
