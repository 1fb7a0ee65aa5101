// Locator: finds the network namespace of a pod's sandbox on this node.
//
// Implementations: CRI (RuntimeService.PodSandboxStatus verbose info), /proc cgroup scan by pod UID, and a
// chain that tries them in order. A fake for tests lives in fake_locator.h.
#ifndef PNC_NETNS_LOCATOR_H_
#define PNC_NETNS_LOCATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netns/netns.h"

namespace pnc::netns {

// What the controller knows about a pod. uid is the key; the rest are cross-checks.
struct PodRef {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::vector<std::string> ips;  // status.podIPs, may be empty early in the pod's life
};

class Locator {
 public:
  virtual ~Locator() = default;
  // NotFound / Unavailable: the sandbox does not exist yet (or the runtime is briefly unreachable); retry
  // later. FailedPrecondition: found something that must not be touched (host netns, IP mismatch); do not
  // retry blindly.
  virtual absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) = 0;
  virtual std::string Name() const = 0;  // "cri", "cgroup", "chain(cri,cgroup)", "fake"

  // The UIDs of the pods whose sandbox the runtime reports ready now, in one runtime call: a hint for which
  // waiting pods to Locate now, never a substitute for Locate's cross-checks (a UID listed here may still
  // fail to locate; a pod not listed may have been created since). The locator may remember what it saw so
  // that the next Locate of a listed pod takes fewer calls. Unimplemented: this locator cannot tell without
  // a lookup per pod (the default); Unavailable / DeadlineExceeded: as for Locate.
  virtual absl::StatusOr<std::vector<std::string>> ReadyPodUids() {
    return absl::UnimplementedError(Name() + " cannot list ready sandboxes");
  }
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_LOCATOR_H_
