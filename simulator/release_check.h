// The check a fake node runs AT THE MOMENT a pod's waiter exits 0, before the sidecar and the app start: is
// the pod's traffic already redirected? (The product's promise is that the app never starts before; an
// after-the-fact check could be fooled by a retransmitted SYN that gets redirected once rules arrive late.)
//
// From real sockets, in the pod's network namespace:
//   outbound  as the app's uid/gid, connect to a TEST-NET address: a listener on 15001 must accept it with
//             SO_ORIGINAL_DST == that address;
//   inbound   from a client namespace (the node's side of the pod's veth), connect to <pod IP>:<app port>: a
//             listener on 15006 must accept it with SO_ORIGINAL_DST == <pod IP>:<app port>;
//   bypass    as the proxy's uid+gid, and as the app's uid with the proxy's gid, connect to a listener in the
//             client namespace: it must arrive there, not on 15001.
// The capture listeners are the sidecar stand-in's, opened by the caller right after the waiter exited and
// kept afterwards (closing and re-binding them would race with fork()s elsewhere in the process that briefly
// hold a copy of the fd): the check accepts its own connections and drains anything else it left queued.
// The check recognizes its own connections by a nonce it sends first, not by source port (NAT moves a source
// port when a redirect's reply tuple clashes with one conntrack still holds). A connection that is not the
// check's own (something else in the pod reached a captured destination) is accepted, closed and named in
// the detail; only the check's own connections decide the verdict.
#ifndef PNC_SIMULATOR_RELEASE_CHECK_H_
#define PNC_SIMULATOR_RELEASE_CHECK_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/netns.h"
#include "netns/testing/sockets.h"

namespace pnc::sim {

struct ReleaseCheckOptions {
  const netns::NetnsHandle* pod = nullptr;     // the pod's network namespace
  const netns::NetnsHandle* client = nullptr;  // where inbound connections come from (the veth peer side)
  std::string pod_ip;                          // reachable from `client`
  std::string client_ip;                       // an address of `client` reachable from the pod
  uint16_t app_port = 8080;                    // the app's containerPort (inbound target)
  uint16_t bypass_port = 15999;                // listener in `client` for the bypass check
  uid_t app_uid = 1000;
  uid_t proxy_uid = 1337;
  gid_t proxy_gid = 1337;
  std::string test_net_ip = "192.0.2.10";
  uint16_t test_net_port = 80;
  absl::Duration timeout = absl::Seconds(1);  // per connection
};

// Listening sockets on 0.0.0.0:15001 and 0.0.0.0:15006 in a pod's namespace, owned by the proxy's uid/gid.
struct CaptureListeners {
  netns::testing::UniqueFd outbound;  // 15001
  netns::testing::UniqueFd inbound;   // 15006
};
absl::StatusOr<CaptureListeners> OpenCaptureListeners(const netns::NetnsHandle& pod, uid_t proxy_uid,
                                                      gid_t proxy_gid);

enum class CheckVerdict { kPassed, kFailed, kNotRun };
const char* CheckVerdictName(CheckVerdict v);  // "passed" / "FAILED" / "not run"

struct CheckResult {
  CheckVerdict verdict = CheckVerdict::kNotRun;
  std::string detail;
};

struct ReleaseCheck {
  CheckResult outbound, inbound, bypass;
  bool passed() const;          // all three passed
  std::string Summary() const;  // "outbound passed (...); inbound FAILED (...); bypass passed (...)"
};

ReleaseCheck CheckInterceptionAtRelease(const ReleaseCheckOptions& options,
                                        const CaptureListeners& listeners);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_RELEASE_CHECK_H_
