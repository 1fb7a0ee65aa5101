// RunInNetns: run a function inside a network namespace on a dedicated worker thread.
//
// Why a worker thread: setns(CLONE_NEWNET) changes the namespace of the calling *thread* only. Doing it on
// the caller's thread would leave that thread (a controller worker, a gRPC poller, ...) in a pod's namespace
// if anything went wrong, and every socket it opened afterwards would live there. So the switch happens only
// on threads of a small process-wide pool that do nothing else:
//   worker: setns(target) -> fn() -> setns(home)
// and if the return to `home` fails, the worker thread exits and is never reused (a fresh one is started).
// `home` is the network namespace of the thread that made the first RunInNetns call in this process; every
// worker enters it when it starts, so a worker started while another call is inside a pod namespace is still
// clean.
//
// Cost: the workers are persistent, so a call is one hand-off to an idle worker plus two setns() calls (a few
// microseconds), not a thread creation. Concurrent callers are served by up to kMaxWorkers workers in
// parallel; more callers queue. fn may itself call RunInNetns (it is served by another worker).
//
// fn runs on another thread: it must not rely on thread-locals of the caller, must not change other
// per-thread namespaces (mount, user) or credentials of the worker, and must not block forever. Its return
// value is returned.
#ifndef PNC_NETNS_EXECUTOR_H_
#define PNC_NETNS_EXECUTOR_H_

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "netns/netns.h"

namespace pnc::netns {

// Errors: FailedPrecondition for a handle without an fd (NetnsHandle::ForTesting) or an fd that is not a
// network namespace; PermissionDenied when setns() is refused (no CAP_SYS_ADMIN over the namespace);
// ResourceExhausted when no worker thread can be started; otherwise whatever fn returns. If the worker cannot
// return to its home namespace after fn ran, fn's status is still returned (the work happened) and the worker
// is discarded.
absl::Status RunInNetns(const NetnsHandle& ns, absl::FunctionRef<absl::Status()> fn);

// Upper bound on concurrently running workers (extra callers wait for a free worker).
inline constexpr int kMaxNetnsWorkers = 16;

}  // namespace pnc::netns

#endif  // PNC_NETNS_EXECUTOR_H_
