// Reconciler: one pod UID -> rules in its network namespace, verified, and the pod marked. Reconcile reads as
// the steps of DESIGN.md: gate -> fast path -> select -> plan -> locate -> inspect -> verify/apply -> mark.
//
// Contract:
//  - Never writes `initialized` without rules that were read back from the pod's netns equal to what it
//    applied. The mark (docs/mark.md) binds it to the netns's never-reused identity (boot id + netns cookie),
//    names the datapath probe the waiter must pass (chosen by evaluating the applied rules, over a route the
//    pod has), and carries the applied plan's digest; all in one status patch with a UID precondition.
//  - Never keeps a mark it did not verify for the current identity. `initialized` is "ours" only when this
//    process recorded it for this identity, or (after a restart) the rules read back are non-empty and their
//    digest equals the mark's. Anything else (another identity, no identity, a guessed cookie without our
//    rules) is re-planned: applied, verified and re-marked, or `error: <reason>` when the pod's annotations
//    are invalid. Such a mark that is neither a previous sandbox of ours nor from a previous boot counts in
//    pnc_foreign_marks_total and gets one Warning Event (UnverifiedRedirectMark).
//  - A mark whose probe is `none` (no capturable outbound connection with a route) is written only after the
//    proof marker for its plan (netns/proof_marker.h) is in the netns: that marker is what the waiter trusts
//    then.
//  - Idempotent by UID. A done pod is re-located and re-inspected on every event: another identity (a
//    sandbox recreated under the same UID, which usually reuses the old inode) is verified, re-applied and
//    re-marked at once; a failed re-locate is retried with backoff, never dropped.
//  - Istio reads its annotations at pod start only: an annotation edited on a running pod does not rewrite
//    its live rules (logged once per value). Drift (rules missing or changed) is repaired with the plan that
//    was applied, when this process knows it; after a restart, with the plan of the current annotations.
//  - A bad annotation (BuildPlan InvalidArgument) is permanent: one Warning Event and `error: <reason>`, no
//    retry; unless the pod runs with rules of ours verified for its current netns (annotation edited later).
//  - status.podIPs decides which families get rules; before it is published, the netns's own global
//    addresses do (none yet: retry, never a guess). Another family set published later re-plans at once.
//  - Transient failures return kRetry (the caller requeues with backoff); a pod that vanished (404) or was
//    replaced (409, or 422 with cause metadata.uid) returns kGone.
#ifndef PNC_CONTROLLER_RECONCILER_H_
#define PNC_CONTROLLER_RECONCILER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/informer.h"
#include "controller/mesh_defaults.h"
#include "controller/metrics.h"
#include "kube/client.h"
#include "netns/backend.h"
#include "netns/inspector.h"
#include "netns/locator.h"
#include "netns/proof_marker.h"
#include "rules/inputs.h"
#include "rules/mark.h"
#include "rules/plan.h"
#include "rules/ruleset.h"

namespace pnc::controller {

// The global-scope addresses of a pod's netns (netns::ReadGlobalAddresses); injectable because test handles
// (NetnsHandle::ForTesting) have no fd.
using AddressReader = std::function<absl::StatusOr<std::vector<std::string>>(const netns::NetnsHandle&)>;

enum class Outcome {
  kSkipped,         // not ours (non-member, hostNetwork, terminating, done already)
  kInitialized,     // applied (or found present), verified, marked for the current netns
  kVerified,        // marked by us for this netns; rules verified present
  kReapplied,       // marked by us for this netns; rules were missing/different and were re-applied
  kPermanentError,  // bad annotation: Event + error annotation, no retry
  kRetry,           // transient failure: requeue with backoff
  kGone,            // pod deleted or replaced: drop
};
const char* OutcomeName(Outcome o);

// Why, where the outcome alone does not say enough for the caller.
enum class Cause {
  kUnspecified,
  kDone,            // kSkipped: done already (the echo of our own patch, a resync without reverify)
  kRuntimeOutage,   // kRetry: the container runtime did not answer (not the pod's fault: no backoff growth)
  kSandboxMissing,  // kRetry: the pod's sandbox does not exist yet (a new one on the node is worth a retry)
  kLocated,         // the pod's sandbox was located (the runtime answers): parked pods may go again
};

struct ReconcileResult {
  Outcome outcome = Outcome::kSkipped;
  absl::Status status;  // the error for kRetry / kPermanentError
  std::string detail;   // short reason for logs
  Cause cause = Cause::kUnspecified;
  // Where the reconcile that marked the pod (kInitialized / kReapplied; zero otherwise) spent its time:
  // waiting for the locator (the container runtime's answers: the runtime's share of its latency), inspecting
  // the netns (identity, routes; its addresses when status.podIPs is not published yet), applying + reading
  // back the rules, writing the mark (status patch).
  absl::Duration locate_took, inspect_took, apply_took, mark_took;
};

// What a pod's status annotations say, compared with the identity of the netns located for it now.
enum class MarkState {
  kNone,        // no `initialized` (absent, an error, anything else)
  kThisNetns,   // `initialized` bound to the current identity: still to be verified (cookies are guessable)
  kOtherNetns,  // `initialized` bound to another identity: a recreated sandbox, a reboot, or forged
  kUnbound,     // `initialized` without a valid identity: forged, or an old controller's inode binding
};
struct MarkView {
  MarkState state = MarkState::kNone;
  std::optional<rules::NetnsIdentity> bound;  // kThisNetns / kOtherNetns
  std::string probe;                          // the probe annotation as written ("" if absent)
  std::string plan_digest;                    // "" if absent or not a digest
};
MarkView ReadMark(const std::map<std::string, std::string>& annotations, const rules::NetnsIdentity& current);

class Reconciler {
 public:
  struct Deps {
    const Store* store = nullptr;
    kube::Client* client = nullptr;
    netns::Locator* locator = nullptr;
    netns::Backend* backend = nullptr;
    Metrics* metrics = nullptr;                   // may be null
    AddressReader read_addresses;                 // empty: netns::ReadGlobalAddresses
    netns::Inspector* inspector = nullptr;        // null: a netns::KernelInspector
    std::string boot_id;                          // this node's boot id (netns::ReadBootId); required
    const MeshDefaults* mesh_defaults = nullptr;  // null: none
    netns::ProofMarker* marker = nullptr;         // null: a netns::KernelProofMarker
  };
  Reconciler(Deps deps, rules::PlanConfig config, std::string node_name);

  ReconcileResult Reconcile(const std::string& uid);
  // The pod is gone from the cache: forget its state. A Reconcile of the same UID that is in flight may
  // record state again when it finishes; the caller then reconciles the UID once more (it returns kGone and
  // drops the entry), which the work queue orders after the in-flight one.
  void Forget(const std::string& uid);
  // Pods with per-UID state (for tests and leak checks).
  size_t NumTracked() const;
  // Whether this UID was set up and marked by this process (and no re-verification is pending).
  bool IsDone(const std::string& uid) const;
  // Periodic resync: the next Reconcile of this UID re-verifies the rules of an initialized pod.
  void RequestReverify(const std::string& uid);
  // A pod that keeps failing transiently: one Warning Event (`RedirectionDelayed`) so that `kubectl describe
  // pod` explains the wait.
  void ReportStuck(const std::string& uid, const absl::Status& last_error, int attempts);

 private:
  struct State {
    bool done = false;      // marked (or verified) by us in this process, for `netns`
    bool reverify = false;  // resync asked for a read-back
    bool stuck_reported = false;
    bool foreign_reported = false;
    std::string event_sent_for;  // the error an InvalidRedirectAnnotation Event was already sent for
    std::string ignored_edit;    // the plan digest of an annotation edit already logged as ignored
    rules::NetnsIdentity netns;  // the namespace `done` refers to
    uint8_t ip_families = 0;     // of the pod IPs the rules were planned for (bit 1 IPv4, bit 2 IPv6)
    std::optional<rules::Ruleset> applied;    // what is verified in `netns` (re-applied on drift)
    std::map<std::string, std::string> mark;  // the annotations we wrote (a changed mark is re-checked)
    std::string marked_rv;  // the pod's resourceVersion our mark's patch produced (its watch echo), or ""
    // The mark's keys as the pod had them before our patch, while the watch has not delivered our write yet:
    // events older than it still show these (the cache is behind, nobody changed our mark).
    std::optional<std::map<std::string, std::string>> before_mark;
  };
  // One located pod netns and what it holds, for the verify/apply/mark steps.
  struct Located;

  std::optional<ReconcileResult> FastPath(const std::string& uid, const kube::Pod& pod);
  // Our mark's write (`resource_version`) came back over the watch: later events are newer than it.
  void EchoSeen(const std::string& uid, const std::string& resource_version);
  ReconcileResult InvalidPlan(const kube::Pod& pod, const absl::Status& invalid);
  absl::StatusOr<Located> LocateAndInspect(const kube::Pod& pod, const std::vector<std::string>& routes);
  // What the netns should hold (`desired`: the plan, or what was applied at start), what it holds, and
  // whether the pod's mark is verified ours.
  struct Verified {
    rules::Ruleset desired;
    MarkView mark;
    std::optional<rules::Ruleset> current;  // read back (absent for a pod with no mark and no state)
    bool ours = false;
    bool present = false;  // current == desired: nothing to apply
  };
  Verified Verify(const kube::Pod& pod, const rules::PodFacts& facts, const rules::RedirectPlan& plan,
                  const Located& at);
  absl::Status ApplyMissing(const kube::Pod& pod, const Located& at, const Verified& v);
  ReconcileResult Mark(const CachedPod& cached, const rules::PodFacts& facts, const rules::RedirectPlan& plan,
                       const Located& at, const Verified& v, absl::Time verified_at);
  void ReportForeignMark(const kube::Pod& pod, const MarkView& mark, const rules::NetnsIdentity& now);
  ReconcileResult Finish(ReconcileResult r, const std::string& uid, std::optional<State> done = std::nullopt);
  ReconcileResult Permanent(const kube::Pod& pod, const absl::Status& st);
  std::optional<State> StateOf(const std::string& uid) const;
  void Error(const char* reason);

  Deps deps_;
  std::unique_ptr<netns::Inspector> own_inspector_;
  std::unique_ptr<netns::ProofMarker> own_marker_;
  rules::PlanConfig config_;
  std::string node_name_;
  mutable absl::Mutex mu_;
  std::map<std::string, State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_RECONCILER_H_
