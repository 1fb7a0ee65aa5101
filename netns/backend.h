// Backend: programs a Ruleset inside a network namespace, reads it back, removes it.
//
// Implementations: libiptc (legacy x_tables, in process), nftables over netlink (libnftnl/libmnl, one batch),
// and exec of iptables-restore/ip6tables-restore (argv + stdin, never a shell). Each enters the target
// namespace on a dedicated thread; the caller's thread never changes namespace. A fake for tests lives in
// fake_backend.h.
//
// Contract for every implementation:
//  - Apply is idempotent: applying the same Ruleset twice leaves exactly one copy; applying a different one
//  replaces
//    ours atomically per table. Chains and rules that are not ours (not ISTIO_* and not our jumps) are never
//    touched.
//  - ReadBack returns exactly our part of the namespace in the Ruleset model, so `ReadBack() == planned`
//  verifies.
//  - Remove deletes our chains, our jumps, our policy routes and our loopback addresses (routing_state.h),
//    and nothing else.
#ifndef PNC_NETNS_BACKEND_H_
#define PNC_NETNS_BACKEND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "netns/netns.h"
#include "rules/ruleset.h"

namespace pnc::netns {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;  // "iptc", "nft", "restore", "auto", "fake"
  virtual absl::Status Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) = 0;
  virtual absl::StatusOr<rules::Ruleset> ReadBack(const NetnsHandle& ns) = 0;
  virtual absl::Status Remove(const NetnsHandle& ns) = 0;

  // Apply, then a fresh ReadBack of the kernel's state (never an echo of what was sent). The default calls
  // the two; a backend may do both in one namespace entry, which saves a hand-off to the netns worker and
  // back (~20 us each way on a loaded 2-vCPU VM). Errors as Apply's, then ReadBack's.
  virtual absl::StatusOr<rules::Ruleset> ApplyAndReadBack(const NetnsHandle& ns,
                                                          const rules::Ruleset& ruleset);
};

// ApplyAndReadBack and compare. Returns Internal("verification failed: ...") naming the first difference.
absl::Status ApplyAndVerify(Backend& backend, const NetnsHandle& ns, const rules::Ruleset& ruleset);

}  // namespace pnc::netns

#endif  // PNC_NETNS_BACKEND_H_
