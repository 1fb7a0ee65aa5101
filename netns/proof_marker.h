// ProofMarker: evidence, inside a pod's network namespace, that the controller verified its rules THERE,
// readable by the pod's unprivileged waiter and impossible for anything in the pod to forge.
//
// The marker is one policy-routing rule, `ip rule add priority kMarkerPriority fwmark <value> nop proto 154`:
// a NOP rule never changes routing, any process can list rules (an RTM_GETRULE dump needs no privilege), and
// creating one needs CAP_NET_ADMIN in the netns, which meshed pods do not have. The value is the first 32
// bits of the applied plan's digest (docs/mark.md), so a marker from one plan does not vouch for another; a
// recreated sandbox is a new netns and has none. The waiter relies on it only when the mark names no datapath
// probe
// (`probe: none`): otherwise the probe is the proof.
#ifndef PNC_NETNS_PROOF_MARKER_H_
#define PNC_NETNS_PROOF_MARKER_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "netns/netns.h"
#include "rules/mark.h"

namespace pnc::netns {

inline constexpr uint32_t kMarkerPriority = rules::kProofMarkerPriority;
inline constexpr uint8_t kMarkerProtocol = rules::kProofMarkerProtocol;  // our tag on everything we install
static_assert(kMarkerProtocol == 154, "the marker is one of our rules (netns/routing: kRouteProtocol)");

class ProofMarker {
 public:
  virtual ~ProofMarker() = default;
  // Idempotent: afterwards exactly one marker with `value` exists (others of ours are replaced).
  virtual absl::Status Place(const NetnsHandle& ns, uint32_t value) = 0;
};

// The real one: one RunInNetns with an rtnetlink dump + delete/add.
class KernelProofMarker : public ProofMarker {
 public:
  absl::Status Place(const NetnsHandle& ns, uint32_t value) override;
};

// For tests: remembers the value per (inode, fake cookie); fails on demand.
class FakeProofMarker : public ProofMarker {
 public:
  absl::Status Place(const NetnsHandle& ns, uint32_t value) override;
  // The value placed in this namespace, or 0.
  uint32_t At(uint64_t inode, uint64_t cookie) const;
  void FailNext(absl::Status st);

 private:
  mutable absl::Mutex mu_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> placed_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_PROOF_MARKER_H_
