// Reconciler: one pod UID -> rules in its network namespace, verified, and the pod marked. Implements the
// data flow of DESIGN.md: select -> plan -> locate -> apply -> verify -> mark.
//
// Guarantees:
//  - Never annotates `initialized` without rules that were read back equal to the plan.
//  - Idempotent by UID: calling Reconcile again after success only re-locates the netns (until
//    RequestReverify); if the pod's sandbox was recreated (new netns, same UID) it verifies and re-applies
//    at once instead of waiting for the resync.
//  - A crash between apply and mark is harmless: apply is idempotent and the next run re-applies, verifies,
//    then marks.
//  - The mark is `initialized` plus kNetnsAnnotation = the nsfs inode of the netns the rules were verified
//  in,
//    in one patch; the waiter accepts only a mark bound to its own netns.
//  - A pod already annotated `initialized` and bound to its current netns (e.g. at controller startup) is
//    verified (ReadBack == plan) and left alone; if its rules are gone it is re-applied and verified, but
//    not re-marked. `initialized` without a binding, or bound to another netns (a recreated sandbox, a
//    status forged at creation, a pre-binding controller), is never taken as done: the rules are read back,
//    applied if needed, verified, and the mark is rewritten with the current inode.
//  - A bad annotation (BuildPlan InvalidArgument) is permanent: one Warning Event and `error: <reason>` in
//    the status annotation, no retry. If the pod's annotations are fixed later, the next event reconciles it
//    normally.
//  - status.podIPs decides which families get rules (IPv6 only for a pod with an IPv6 address). A pod
//    reconciled before its IPs are published is planned with the global addresses read from inside its
//    netns; a netns without one yet (CNI still running) is a transient failure, never a guess. If the IPs
//    published later have another family set, the next event plans, verifies and re-applies again.
//  - Transient failures (sandbox not there yet, runtime or API hiccups, failed verification) return kRetry;
//    the caller requeues with backoff.
//  - A pod that vanished (404) or was recreated under the same name with a new UID (409 on the UID
//    precondition) is dropped.
#ifndef PNC_CONTROLLER_RECONCILER_H_
#define PNC_CONTROLLER_RECONCILER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "controller/informer.h"
#include "controller/metrics.h"
#include "kube/client.h"
#include "netns/backend.h"
#include "netns/locator.h"
#include "rules/inputs.h"

namespace pnc::controller {

// The global-scope addresses of a pod's netns (netns::ReadGlobalAddresses); injectable because test handles
// (NetnsHandle::ForTesting) have no fd.
using AddressReader = std::function<absl::StatusOr<std::vector<std::string>>(const netns::NetnsHandle&)>;

enum class Outcome {
  kSkipped,         // not ours (non-member, hostNetwork, terminating, done already)
  kInitialized,     // applied (or found present), verified, marked with the current netns
  kVerified,        // already marked; rules verified present
  kReapplied,       // already marked; rules were missing/different and were re-applied
  kPermanentError,  // bad annotation: Event + error annotation, no retry
  kRetry,           // transient failure: requeue with backoff
  kGone,            // pod deleted or replaced: drop
};
const char* OutcomeName(Outcome o);

struct ReconcileResult {
  Outcome outcome = Outcome::kSkipped;
  absl::Status status;  // the error for kRetry / kPermanentError
  std::string detail;   // short reason for logs
};

class Reconciler {
 public:
  struct Deps {
    const Store* store = nullptr;
    kube::Client* client = nullptr;
    netns::Locator* locator = nullptr;
    netns::Backend* backend = nullptr;
    Metrics* metrics = nullptr;    // may be null
    AddressReader read_addresses;  // empty: netns::ReadGlobalAddresses
  };
  Reconciler(Deps deps, rules::PlanConfig config, std::string node_name);

  ReconcileResult Reconcile(const std::string& uid);
  // The pod is gone from the cache: forget its state. A Reconcile of the same UID that is in flight may
  // record state again when it finishes; the caller then reconciles the UID once more (it returns kGone and
  // drops the entry), which the work queue orders after the in-flight one.
  void Forget(const std::string& uid);
  // Pods with per-UID state (for tests and leak checks).
  size_t NumTracked() const;
  // Periodic resync: the next Reconcile of this UID re-verifies the rules of an initialized pod.
  void RequestReverify(const std::string& uid);
  // A pod that keeps failing transiently (e.g. its sandbox never shows up, or the runtime reports a netns
  // that must not be touched): one Warning Event (`RedirectionDelayed`) so that `kubectl describe pod`
  // explains the wait.
  void ReportStuck(const std::string& uid, const absl::Status& last_error, int attempts);

 private:
  struct NetnsId {  // no member initializers: usable in the default argument below; {} zeroes it
    uint64_t device;
    uint64_t inode;
    bool operator==(const NetnsId&) const = default;
  };
  struct State {
    bool done = false;      // initialized (or verified) by us in this process
    bool reverify = false;  // resync asked for a read-back
    bool stuck_reported = false;
    std::string event_sent_for;  // the error message an InvalidRedirectAnnotation Event was already sent for
    NetnsId netns{};             // the namespace `done` refers to (a recreated sandbox has another one)
    uint8_t ip_families = 0;     // of the pod IPs the rules were planned for (bit 1 IPv4, bit 2 IPv6)
  };
  ReconcileResult Finish(ReconcileResult r, const std::string& uid, NetnsId netns = {},
                         uint8_t ip_families = 0);
  ReconcileResult Permanent(const kube::Pod& pod, const absl::Status& st);
  void Error(const char* reason);

  Deps deps_;
  rules::PlanConfig config_;
  std::string node_name_;
  mutable absl::Mutex mu_;
  std::map<std::string, State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_RECONCILER_H_
