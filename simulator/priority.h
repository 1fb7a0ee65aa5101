// Scheduling priorities inside the simulator. The simulator stands for more than one node: the API server
// and the fake CRI runtime's answers stand for other machines (a control plane, a runtime daemon with its own
// share of the node), the fake kubelet's pod work for the node's own load. On one machine they all compete
// with the controller for the same CPUs, and a round trip of the controller to a busy API server then times
// the simulator, not the controller. So:
//  - everything the simulator serves runs at kServingNice: the process's threads start there (API server
//    I/O, store fan-out, fake CRI server), and the fake kubelet's writes to the store and to the fake
//    runtime's state (kubelet's status PATCH, served by the API server) run on a serving thread, so a niced
//    kubelet thread never holds the store's lock while the API server waits for it (priority inversion);
//  - node-local work (pod workers, the waiters they start, sandbox creation and the release checks, which
//    run on the netns executor's threads) runs at kNodeWorkNice or the scenario's kubelet_nice;
//  - the processes the simulator starts as the system under test (the controller, helm, containerd) run at
//    nice 0, like any process on a node.
// Inside the netns sandbox's user namespace a thread can only raise its nice value (CAP_SYS_NICE is gone and
// RLIMIT_NICE is 0), so the order of the calls below matters.
#ifndef PNC_SIMULATOR_PRIORITY_H_
#define PNC_SIMULATOR_PRIORITY_H_

#include <functional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "netns/netns.h"

namespace pnc::sim {

inline constexpr int kServingNice = -10;
inline constexpr int kNodeWorkNice = 10;

// Call in main() before any thread is started and before the netns sandbox: puts the calling thread, and so
// every thread it starts from now on, at kServingNice. Fails without CAP_SYS_NICE (the nice value stays).
absl::Status ServeAheadOfNodeWork();

// Starts the serving thread (RunServed) at the calling thread's nice value. Call once, from main(), after
// ServeAheadOfNodeWork and after the netns sandbox exists (the sandbox needs a single-threaded process).
void StartServingThread();

// Starts the process's netns executor (netns/executor.h) from a thread at kNodeWorkNice: its workers inherit
// the nice value of the thread that starts them, and they run node-local work only. Call once the netns
// sandbox exists, before anything else uses RunInNetns; `any` is a namespace other than this thread's.
absl::Status StartNetnsExecutorAsNodeWork(const netns::NetnsHandle& any);

// Runs `fn` on the serving thread (kServingNice) and returns when it is done; inline when
// ServeAheadOfNodeWork was not called. Calls from all threads are served one at a time, in order.
void RunServed(absl::FunctionRef<void()> fn);

// Runs `fn` on a new thread at `nice` (which must not be below the caller's) and waits for it: for starting
// processes that must not inherit kServingNice.
void RunAtNice(int nice, const std::function<void()>& fn);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_PRIORITY_H_
