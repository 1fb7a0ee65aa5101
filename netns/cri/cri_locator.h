// Locator backed by the container runtime (CRI RuntimeService over gRPC).
#ifndef PNC_NETNS_CRI_CRI_LOCATOR_H_
#define PNC_NETNS_CRI_CRI_LOCATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/locator.h"

namespace pnc::netns {

// CRI (containerd, CRI-O) over gRPC on a unix socket: ListPodSandbox(label io.kubernetes.pod.uid=<uid>, state
// READY) -> newest ready sandbox -> PodSandboxStatus(verbose) -> netns path from info["info"] JSON
// runtimeSpec.linux.namespaces[type=network].path, or /proc/<info.pid>/ns/net when that path is absent or not
// visible here (no /var/run/netns mount) -> NetnsHandle::Open (refuses the host netns). Cross-checks:
// metadata uid (and name/namespace when PodRef has them) must match; when both the runtime and PodRef know
// IPs, status.network.ip must be one of PodRef.ips, else FailedPrecondition. A pod located before goes
// straight to PodSandboxStatus of the sandbox it was found in while the runtime reports that sandbox READY
// for the same uid (the kubelet stops a pod's sandbox before it creates another); anything else takes the
// full lookup.
//
// ReadyPodUids: one ListPodSandbox(state READY) without a label filter; its answer replaces the known
// sandboxes (the newest ready one per pod), so a listed pod's next Locate is one PodSandboxStatus with the
// checks above.
//
// Errors: NotFound (no ready sandbox yet, or it vanished: the pod's state, retry), Unavailable (the runtime
// is down or restarting: the runtime's state, not the pod's; also containerd's "server is not initialized
// yet" while it restores its state), DeadlineExceeded (a call took longer than `call_timeout`),
// FailedPrecondition (must not be touched); other codes of the runtime's answer as they came. endpoint:
// "/run/containerd/containerd.sock", "unix:///run/...", "unix:/run/..." or "unix-abstract:name". Creating the
// locator does no I/O. Thread-safe.
//
// Runtime restarts: the calls go through GrpcUnaryClient (netns/cri/grpc_unary.h), which keeps no state about
// the runtime (every call opens its own connection): while nothing listens a locate is Unavailable at once (a
// refused unix connect), and the first locate after the runtime accepts connections again reaches it (no
// reconnect backoff).
absl::StatusOr<std::unique_ptr<Locator>> NewCriLocator(const std::string& endpoint,
                                                       absl::Duration call_timeout = absl::Seconds(2));

// Startup diagnostics: "containerd 1.6.20 (CRI v1)" from RuntimeService.Version, same endpoint syntax.
absl::StatusOr<std::string> CriRuntimeVersion(const std::string& endpoint,
                                              absl::Duration call_timeout = absl::Seconds(2));

}  // namespace pnc::netns

#endif  // PNC_NETNS_CRI_CRI_LOCATOR_H_
