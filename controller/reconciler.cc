#include "controller/reconciler.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controller/log.h"
#include "netns/addresses.h"
#include "rules/annotations.h"
#include "rules/digest.h"
#include "rules/membership.h"
#include "rules/plan.h"
#include "rules/probe_target.h"

namespace pnc::controller {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Bit 1: an IPv4 address, bit 2: an IPv6 address.
uint8_t IpFamilies(const std::vector<std::string>& ips) {
  uint8_t f = 0;
  for (const std::string& ip : ips) f |= ip.find(':') != std::string::npos ? 2 : 1;
  return f;
}

// The plan only needs the pod's address families: keep the first address of each (the netns may hold more
// global addresses than status.podIPs is allowed to).
std::vector<std::string> OnePerFamily(const std::vector<std::string>& addrs) {
  std::vector<std::string> out;
  bool v4 = false, v6 = false;
  for (const std::string& a : addrs) {
    bool is6 = a.find(':') != std::string::npos;
    if (is6 ? v6 : v4) continue;
    (is6 ? v6 : v4) = true;
    out.push_back(a);
  }
  return out;
}

// A locate that failed because the runtime did not answer (Unavailable: connection refused, restarting) is
// the runtime's outage, not the pod's.
Cause OutageCause(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:  // the runtime did not answer in time: busy or stalled, not the
                                               // pod
      return Cause::kRuntimeOutage;
    case absl::StatusCode::kNotFound:
      return Cause::kSandboxMissing;
    default:
      return Cause::kUnspecified;
  }
}

netns::PodRef RefOf(const kube::Pod& pod) {
  return netns::PodRef{pod.uid, pod.namespace_name, pod.name, pod.pod_ips};
}

std::string Get(const std::map<std::string, std::string>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}

bool SameFamilies(const rules::Ruleset& a, const rules::Ruleset& b) {
  if (a.families.size() != b.families.size()) return false;
  for (size_t i = 0; i < a.families.size(); ++i)
    if (a.families[i].family != b.families[i].family) return false;
  return true;
}

bool HasRules(const rules::Ruleset& r) {
  for (const rules::FamilyRules& f : r.families)
    for (const rules::TableRules& t : f.tables)
      if (!t.chains.empty()) return true;
  return false;
}

}  // namespace

MarkView ReadMark(const std::map<std::string, std::string>& annotations,
                  const rules::NetnsIdentity& current) {
  MarkView v;
  if (Get(annotations, rules::kStatusAnnotation) != rules::kStatusInitialized) return v;
  v.probe = Get(annotations, rules::kProbeAnnotation);
  std::string digest = Get(annotations, rules::kPlanAnnotation);
  if (rules::IsPlanDigest(digest)) v.plan_digest = digest;
  v.bound = rules::ParseNetnsIdentity(Get(annotations, rules::kNetnsAnnotation));
  if (!v.bound) {
    v.state = MarkState::kUnbound;
  } else {
    v.state = *v.bound == current ? MarkState::kThisNetns : MarkState::kOtherNetns;
  }
  return v;
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kSkipped:
      return "skipped";
    case Outcome::kInitialized:
      return "initialized";
    case Outcome::kVerified:
      return "verified";
    case Outcome::kReapplied:
      return "reapplied";
    case Outcome::kPermanentError:
      return "permanent_error";
    case Outcome::kRetry:
      return "retry";
    case Outcome::kGone:
      return "gone";
  }
  return "?";
}

Reconciler::Reconciler(Deps deps, rules::PlanConfig config, std::string node_name)
    : deps_(std::move(deps)), config_(config), node_name_(std::move(node_name)) {
  if (!deps_.read_addresses) deps_.read_addresses = netns::ReadGlobalAddresses;
  if (deps_.boot_id.empty()) {
    // main() reads it at startup and refuses to run without it; this covers embedders that did not.
    absl::StatusOr<std::string> id = netns::ReadBootId();
    if (id.ok()) deps_.boot_id = *id;
  }
  if (deps_.marker == nullptr) {
    own_marker_ = std::make_unique<netns::KernelProofMarker>();
    deps_.marker = own_marker_.get();
  }
  if (deps_.inspector == nullptr) {
    own_inspector_ = std::make_unique<netns::KernelInspector>();
    deps_.inspector = own_inspector_.get();
  }
}

void Reconciler::Forget(const std::string& uid) {
  absl::MutexLock lock(&mu_);
  state_.erase(uid);
}

size_t Reconciler::NumTracked() const {
  absl::MutexLock lock(&mu_);
  return state_.size();
}

bool Reconciler::IsDone(const std::string& uid) const {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(uid);
  return it != state_.end() && it->second.done && !it->second.reverify;
}

void Reconciler::RequestReverify(const std::string& uid) {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(uid);
  if (it != state_.end() && it->second.done) it->second.reverify = true;
}

void Reconciler::ReportStuck(const std::string& uid, const absl::Status& last_error, int attempts) {
  // Pod first: no state entry is created for a pod that is already gone.
  std::optional<CachedPod> cached = deps_.store->GetPod(uid);
  if (!cached) return;
  {
    absl::MutexLock lock(&mu_);
    State& st = state_[uid];
    if (st.stuck_reported) return;
    st.stuck_reported = true;
  }
  kube::EventRecord ev;
  ev.namespace_name = cached->pod.namespace_name;
  ev.pod_name = cached->pod.name;
  ev.pod_uid = uid;
  ev.reason = "RedirectionDelayed";
  ev.message = absl::StrCat("traffic redirection not installed yet after ", attempts,
                            " attempts (still retrying): ", last_error.message());
  ev.host = node_name_;
  if (!deps_.client->CreateEvent(ev).ok()) Error("event_failed");
}

void Reconciler::Error(const char* reason) {
  if (deps_.metrics != nullptr) deps_.metrics->errors.Inc(reason);
}

std::optional<Reconciler::State> Reconciler::StateOf(const std::string& uid) const {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(uid);
  if (it == state_.end()) return std::nullopt;
  return it->second;
}

ReconcileResult Reconciler::Finish(ReconcileResult r, const std::string& uid, std::optional<State> done) {
  if (deps_.metrics != nullptr) deps_.metrics->reconciles.Inc(OutcomeName(r.outcome));
  absl::MutexLock lock(&mu_);
  if (done) {
    State& st = state_[uid];
    done->done = true;
    done->reverify = false;
    done->stuck_reported = st.stuck_reported;
    done->foreign_reported = st.foreign_reported;
    done->event_sent_for = st.event_sent_for;
    if (done->ignored_edit.empty()) done->ignored_edit = st.ignored_edit;
    st = *std::move(done);
  } else if (r.outcome == Outcome::kGone) {
    state_.erase(uid);
  }
  return r;
}

ReconcileResult Reconciler::Permanent(const kube::Pod& pod, const absl::Status& st) {
  std::string reason(st.message());
  std::string value = absl::StrCat(rules::kStatusErrorPrefix, reason);
  auto it = pod.annotations.find(rules::kStatusAnnotation);
  if (it != pod.annotations.end() && it->second == value) {
    // Reported already (by us, possibly before a restart): no second Event.
    return {Outcome::kPermanentError, st, "already reported"};
  }
  Error("plan_invalid");
  bool event_sent;
  {
    absl::MutexLock lock(&mu_);
    State& state = state_[pod.uid];
    event_sent = state.event_sent_for == reason;
    state.event_sent_for = reason;  // a retried patch must not repeat the Event
  }
  kube::EventRecord ev;
  ev.namespace_name = pod.namespace_name;
  ev.pod_name = pod.name;
  ev.pod_uid = pod.uid;
  ev.reason = "InvalidRedirectAnnotation";
  ev.message = reason;
  ev.host = node_name_;
  if (absl::Status est = event_sent ? absl::OkStatus() : deps_.client->CreateEvent(ev); !est.ok()) {
    Error("event_failed");  // best effort: the annotation is what the waiter reads
    Log(LogLevel::kWarning, "event create failed",
        {{"pod_uid", pod.uid}, {"error", std::string(est.message())}});
  }
  absl::Status pst = deps_.client->PatchPodStatusAnnotations(pod.namespace_name, pod.name, pod.uid,
                                                             {{rules::kStatusAnnotation, value}});
  if (pst.code() == absl::StatusCode::kNotFound || pst.code() == absl::StatusCode::kAborted) {
    return {Outcome::kGone, pst, "pod gone while reporting the error"};
  }
  if (!pst.ok()) {
    Error("patch_failed");
    return {Outcome::kRetry, pst, "could not write the error annotation"};
  }
  return {Outcome::kPermanentError, st, "invalid annotation"};
}

struct Reconciler::Located {
  netns::NetnsHandle handle;
  rules::NetnsIdentity identity;
  std::map<std::string, std::string> route_device;
  absl::Duration locate_took;   // inside Locator::Locate
  absl::Duration inspect_took;  // inside Inspector::Inspect
};

absl::StatusOr<Reconciler::Located> Reconciler::LocateAndInspect(const kube::Pod& pod,
                                                                 const std::vector<std::string>& routes) {
  const absl::Time start = absl::Now();
  absl::StatusOr<netns::NetnsHandle> handle = deps_.locator->Locate(RefOf(pod));
  const absl::Duration took = absl::Now() - start;
  if (deps_.metrics != nullptr)
    deps_.metrics->locate_duration.Observe(Seconds(took), handle.ok() ? "found" : "not_found_or_error");
  if (!handle.ok()) {
    Error(handle.status().code() == absl::StatusCode::kNotFound ? "locate_not_found" : "locate_failed");
    return handle.status();
  }
  const absl::Time inspect_start = absl::Now();
  absl::StatusOr<netns::NetnsView> view = deps_.inspector->Inspect(*handle, routes);
  const absl::Duration inspect_took = absl::Now() - inspect_start;
  if (!view.ok()) {
    Error("inspect_failed");
    return view.status();
  }
  return Located{*std::move(handle), rules::NetnsIdentity{deps_.boot_id, view->cookie},
                 std::move(view->route_device), took, inspect_took};
}

// Done in this process, nothing changed: the same netns identity (re-inspected: a recreated sandbox usually
// gets the old inode back, never the old cookie), the same address families, and the mark as we wrote it.
std::optional<ReconcileResult> Reconciler::FastPath(const std::string& uid, const kube::Pod& pod) {
  std::optional<State> st = StateOf(uid);
  if (!st || !st->done || st->reverify) return std::nullopt;
  if (!pod.pod_ips.empty() && IpFamilies(pod.pod_ips) != st->ip_families) {
    // Planned from the netns's addresses before status.podIPs was published, and the published IPs have
    // another family set (e.g. CNI had not added the IPv6 address yet): plan again now, not at the resync.
    Log(LogLevel::kInfo, "published pod IPs differ in address family from those the rules were planned for",
        {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
    return std::nullopt;
  }
  // The watch's echo of our own mark (the object our patch produced, moments after we verified this pod's
  // netns) says nothing about the sandbox: it is not re-located. The other checks still run on it; a sandbox
  // recreated meanwhile shows in the kubelet's next status update (and the waiter proves from inside anyway).
  const bool echo = !st->marked_rv.empty() && pod.resource_version == st->marked_rv;
  if (echo && st->before_mark) EchoSeen(uid, pod.resource_version);
  if (!echo) {
    absl::StatusOr<Located> now = LocateAndInspect(pod, {});
    if (!now.ok())
      return Finish({Outcome::kRetry, now.status(), "re-locate a done pod", OutageCause(now.status())}, uid);
    if (!(now->identity == st->netns)) {
      Log(LogLevel::kInfo, "pod network namespace changed since it was initialized; verifying again",
          {{"pod_uid", uid},
           {"namespace", pod.namespace_name},
           {"pod", pod.name},
           {"was", rules::FormatNetnsIdentity(st->netns)},
           {"now", rules::FormatNetnsIdentity(now->identity)}});
      return std::nullopt;
    }
  }
  // An event older than our own write (delivered before its echo) still shows the mark as it was before:
  // the cache is behind, nobody changed our mark.
  const bool behind = st->before_mark && !echo &&
                      std::all_of(st->before_mark->begin(), st->before_mark->end(), [&](const auto& kv) {
                        return Get(pod.annotations, kv.first.c_str()) == kv.second;
                      });
  for (const auto& [k, v] : st->mark) {
    if (behind) break;
    if (Get(pod.annotations, k.c_str()) != v) {
      Log(LogLevel::kWarning, "the mark was changed by someone else; verifying and marking again",
          {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}, {"annotation", k}});
      return std::nullopt;
    }
  }
  return ReconcileResult{Outcome::kSkipped, absl::OkStatus(), echo ? "done (echo of our mark)" : "done",
                         Cause::kDone};
}

void Reconciler::EchoSeen(const std::string& uid, const std::string& resource_version) {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(uid);
  if (it != state_.end() && it->second.marked_rv == resource_version) it->second.before_mark.reset();
}

// The pod's annotations do not plan. A running pod whose rules we verified for its current netns keeps them
// (the annotation was edited after start); everything else gets `error: <reason>`.
ReconcileResult Reconciler::InvalidPlan(const kube::Pod& pod, const absl::Status& invalid) {
  if (Get(pod.annotations, rules::kStatusAnnotation) == rules::kStatusInitialized) {
    absl::StatusOr<Located> at = LocateAndInspect(pod, {});
    if (!at.ok())
      return Finish({Outcome::kRetry, at.status(), "locate (invalid annotation, marked pod)"}, pod.uid);
    MarkView mark = ReadMark(pod.annotations, at->identity);
    std::optional<State> st = StateOf(pod.uid);
    bool verified = false;
    if (mark.state == MarkState::kThisNetns) {
      absl::StatusOr<rules::Ruleset> current = deps_.backend->ReadBack(at->handle);
      if (current.ok() && HasRules(*current)) {
        verified = (st && st->done && st->netns == at->identity && st->applied && *st->applied == *current) ||
                   (!mark.plan_digest.empty() && rules::RulesetDigest(*current) == mark.plan_digest);
      }
    }
    if (verified)
      return Finish({Outcome::kPermanentError, invalid, "annotation became invalid after initialization"},
                    pod.uid);
    if (mark.state != MarkState::kNone) ReportForeignMark(pod, mark, at->identity);
  }
  return Finish(Permanent(pod, invalid), pod.uid);
}

void Reconciler::ReportForeignMark(const kube::Pod& pod, const MarkView& mark,
                                   const rules::NetnsIdentity& now) {
  std::optional<State> st = StateOf(pod.uid);
  if (mark.state == MarkState::kOtherNetns &&
      ((st && st->netns == *mark.bound) || mark.bound->boot_id != deps_.boot_id)) {
    return;  // ours for a previous sandbox of this pod, or from before a reboot: expected, not foreign
  }
  const char* kind = mark.state == MarkState::kOtherNetns ? "other_netns" : "unverified";
  if (deps_.metrics != nullptr) deps_.metrics->foreign_marks.Inc(kind);
  Log(LogLevel::kWarning,
      "pod carries an initialized mark this controller did not write for its network namespace",
      {{"pod_uid", pod.uid},
       {"namespace", pod.namespace_name},
       {"pod", pod.name},
       {"kind", kind},
       {"netns", rules::FormatNetnsIdentity(now)}});
  {
    absl::MutexLock lock(&mu_);
    State& s = state_[pod.uid];
    if (s.foreign_reported) return;
    s.foreign_reported = true;
  }
  kube::EventRecord ev;
  ev.namespace_name = pod.namespace_name;
  ev.pod_name = pod.name;
  ev.pod_uid = pod.uid;
  ev.type = "Warning";
  ev.reason = "UnverifiedRedirectMark";
  ev.message = absl::StrCat(
      rules::kStatusAnnotation, "=", rules::kStatusInitialized,
      " was not written by istio-pod-network-controller for this pod's current network namespace (forged, or "
      "left from another sandbox); the controller verifies the rules and writes its own mark");
  ev.host = node_name_;
  if (!deps_.client->CreateEvent(ev).ok()) Error("event_failed");
}

// verify: what the netns should hold, what it holds, and whether the pod's mark is one of ours.
Reconciler::Verified Reconciler::Verify(const kube::Pod& pod, const rules::PodFacts& facts,
                                        const rules::RedirectPlan& plan, const Located& at) {
  const std::string& uid = pod.uid;
  Verified v{.desired = rules::BuildRuleset(plan), .mark = ReadMark(pod.annotations, at.identity)};
  std::optional<State> st = StateOf(uid);
  // What this process applied and verified in this very netns, for the same address families (a new family
  // set, published after the netns's addresses were used, is planned again, not "an edit").
  const bool known = st && st->done && st->netns == at.identity && st->applied.has_value() &&
                     st->ip_families == IpFamilies(facts.pod_ips);
  if (known && !(*st->applied == v.desired)) {
    // Istio reads the annotations at pod start only: keep what this netns was set up with.
    std::string edit = rules::RulesetDigest(v.desired);
    if (st->ignored_edit != edit) {
      Log(LogLevel::kInfo, "annotations changed on a running pod; its live rules are kept (applied at start)",
          {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
      absl::MutexLock lock(&mu_);
      state_[uid].ignored_edit = edit;
    }
    v.desired = *st->applied;
  }
  // Read back whenever something may be there already (a mark, or our own earlier work).
  if (v.mark.state != MarkState::kNone || st) {
    absl::StatusOr<rules::Ruleset> rb = deps_.backend->ReadBack(at.handle);
    if (rb.ok()) v.current = *std::move(rb);
  }
  if (v.mark.state == MarkState::kThisNetns && v.current && HasRules(*v.current)) {
    if (known && *v.current == v.desired) {
      v.ours = true;
    } else if (!known && !v.mark.plan_digest.empty() &&
               rules::RulesetDigest(*v.current) == v.mark.plan_digest) {
      v.ours = true;  // e.g. after a restart: the rules are the ones the mark's plan names
      if (SameFamilies(*v.current, v.desired)) {
        if (!(*v.current == v.desired))
          Log(LogLevel::kInfo,
              "annotations changed on a running pod; its live rules are kept (applied at start)",
              {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
        v.desired = *v.current;
      }
    }
  }
  v.present = v.current && *v.current == v.desired;
  return v;
}

// apply: install what is missing and read it back (never an echo of what was sent).
absl::Status Reconciler::ApplyMissing(const kube::Pod& pod, const Located& at, const Verified& v) {
  if (v.present) return absl::OkStatus();
  if (v.current && HasRules(*v.current))
    Log(LogLevel::kWarning, "rules in the pod network namespace differ from the plan; re-applying",
        {{"pod_uid", pod.uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
  absl::Time t0 = absl::Now();
  absl::StatusOr<rules::Ruleset> after = deps_.backend->ApplyAndReadBack(at.handle, v.desired);
  if (deps_.metrics != nullptr)
    deps_.metrics->apply_duration.Observe(Seconds(absl::Now() - t0), deps_.backend->Name());
  if (!after.ok()) {
    Error("apply_failed");
    return after.status();
  }
  if (!(*after == v.desired)) {
    Error("verify_failed");
    return absl::InternalError("verification failed: the rules read back differ from the rules applied");
  }
  return absl::OkStatus();
}

// mark: choose the proof, place the marker if the proof is `none`, and write status, identity, probe and
// plan in one patch (the waiter needs them together) unless the pod already says exactly that.
ReconcileResult Reconciler::Mark(const CachedPod& cached, const rules::PodFacts& facts,
                                 const rules::RedirectPlan& plan, const Located& at, const Verified& v,
                                 absl::Time verified_at) {
  const kube::Pod& pod = cached.pod;
  const std::string& uid = pod.uid;
  rules::ProbeSpec probe = rules::ChooseProbe(v.desired, plan, facts.pod_ips, at.route_device);
  const std::string digest = rules::RulesetDigest(v.desired);
  if (probe.none) {
    // No datapath proof is possible: the waiter trusts only the marker, placed now that the rules are
    // verified.
    absl::Status placed = deps_.marker->Place(at.handle, *rules::ProofMarkerValue(digest));
    if (!placed.ok()) {
      Error("marker_failed");
      return Finish({Outcome::kRetry, placed, "proof marker"}, uid);
    }
  }
  std::map<std::string, std::string> want = {
      {rules::kStatusAnnotation, rules::kStatusInitialized},
      {rules::kNetnsAnnotation, rules::FormatNetnsIdentity(at.identity)},
      {rules::kProbeAnnotation, rules::FormatProbeSpec(probe)},
      {rules::kPlanAnnotation, digest},
  };
  State done{
      .netns = at.identity, .ip_families = IpFamilies(facts.pod_ips), .applied = v.desired, .mark = want};
  // The mark already says exactly what was verified now (ours, or ours after a restart whose rules had
  // drifted, or a perfect forgery that our rules have just made true): no patch; the waiter proves it anyway.
  bool up_to_date = true;
  for (const auto& [k, val] : want) up_to_date = up_to_date && Get(pod.annotations, k.c_str()) == val;
  if (v.mark.state != MarkState::kNone && !v.ours && !up_to_date) ReportForeignMark(pod, v.mark, at.identity);
  if (up_to_date) {
    return Finish(v.present ? ReconcileResult{Outcome::kVerified, absl::OkStatus(), "verified"}
                            : ReconcileResult{Outcome::kReapplied, absl::OkStatus(), "re-applied"},
                  uid, std::move(done));
  }
  if (deps_.metrics != nullptr && v.mark.state == MarkState::kNone)
    deps_.metrics->event_to_applied.Observe(Seconds(verified_at - cached.first_seen));
  absl::Status patched =
      deps_.client->PatchPodStatusAnnotations(pod.namespace_name, pod.name, uid, want, &done.marked_rv);
  if (patched.ok() && !done.marked_rv.empty()) {  // without the echo's version there is no "before" to end
    done.before_mark.emplace();
    for (const auto& [k, val] : want) (*done.before_mark)[k] = Get(pod.annotations, k.c_str());
  }
  if (patched.code() == absl::StatusCode::kNotFound || patched.code() == absl::StatusCode::kAborted)
    return Finish({Outcome::kGone, patched, "pod deleted or replaced before marking"}, uid);
  if (!patched.ok()) {
    Error("patch_failed");
    return Finish({Outcome::kRetry, patched, "mark"}, uid);
  }
  if (deps_.metrics != nullptr) deps_.metrics->applied_to_marked.Observe(Seconds(absl::Now() - verified_at));
  return Finish({Outcome::kInitialized, absl::OkStatus(), "initialized"}, uid, std::move(done));
}

ReconcileResult Reconciler::Reconcile(const std::string& uid) {
  // gate
  std::optional<CachedPod> cached = deps_.store->GetPod(uid);
  if (!cached) return Finish({Outcome::kGone, absl::OkStatus(), "not in cache"}, uid);
  const kube::Pod& pod = cached->pod;
  if (pod.host_network) return Finish({Outcome::kSkipped, absl::OkStatus(), "hostNetwork"}, uid);
  // The watch is node-scoped by a field selector; do not rely on the server (or a proxy) alone for that.
  if (pod.node_name != node_name_) return Finish({Outcome::kSkipped, absl::OkStatus(), "other node"}, uid);
  if (pod.deleting || pod.phase == "Succeeded" || pod.phase == "Failed")
    return Finish({Outcome::kSkipped, absl::OkStatus(), "terminating"}, uid);
  if (std::optional<ReconcileResult> done = FastPath(uid, pod)) return *done;

  // select
  std::optional<kube::Namespace> ns = deps_.store->GetNamespace(pod.namespace_name);
  if (!ns && !deps_.store->NamespacesSynced())
    return Finish({Outcome::kRetry, absl::UnavailableError("namespace cache not synced"), "namespace"}, uid);
  rules::PodFacts facts = kube::ToPodFacts(pod, ns ? &*ns : nullptr);
  if (deps_.mesh_defaults != nullptr) ApplyMeshDefaults(*deps_.mesh_defaults, &facts);
  rules::MembershipDecision m = rules::DecideMembership(facts);
  if (!m.member) return Finish({Outcome::kSkipped, absl::OkStatus(), m.reason}, uid);

  // plan (before locating: a bad annotation is reported even while the sandbox does not exist)
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config_);
  if (!plan.ok() && plan.status().code() == absl::StatusCode::kInvalidArgument)
    return InvalidPlan(pod, plan.status());
  if (!plan.ok()) {
    Error("plan_failed");
    return Finish({Outcome::kRetry, plan.status(), "plan"}, uid);
  }

  // locate + inspect (identity, and routes for the probe target)
  absl::StatusOr<Located> at = LocateAndInspect(pod, rules::ProbeCandidateAddresses(*plan));
  if (!at.ok()) return Finish({Outcome::kRetry, at.status(), "locate", OutageCause(at.status())}, uid);
  if (facts.pod_ips.empty()) {
    // status.podIPs not published yet: the families come from the sandbox itself, or an IPv6 pod would be
    // marked with IPv4 rules only.
    const absl::Time addresses_start = absl::Now();
    absl::StatusOr<std::vector<std::string>> addrs = deps_.read_addresses(at->handle);
    if (!addrs.ok()) {
      Error("addresses_failed");
      return Finish({Outcome::kRetry, addrs.status(), "read pod addresses"}, uid);
    }
    if (addrs->empty()) {
      Error("addresses_none");
      return Finish({Outcome::kRetry,
                     absl::UnavailableError("the pod network namespace has no global address yet (CNI "
                                            "not done) and status.podIPs is empty"),
                     "no pod address"},
                    uid);
    }
    facts.pod_ips = OnePerFamily(*addrs);
    plan = rules::BuildPlan(facts, config_);
    if (!plan.ok()) {  // only the families changed: not the pod's fault
      Error("plan_failed");
      return Finish({Outcome::kRetry, plan.status(), "plan with the netns addresses"}, uid);
    }
    absl::StatusOr<netns::NetnsView> view =
        deps_.inspector->Inspect(at->handle, rules::ProbeCandidateAddresses(*plan));
    if (!view.ok()) return Finish({Outcome::kRetry, view.status(), "inspect"}, uid);
    at->route_device = std::move(view->route_device);
    at->inspect_took += absl::Now() - addresses_start;  // part of inspecting the netns
  }

  // verify -> apply -> mark
  const absl::Time apply_start = absl::Now();
  Verified v = Verify(pod, facts, *plan, *at);
  if (absl::Status applied = ApplyMissing(pod, *at, v); !applied.ok())
    return Finish({Outcome::kRetry, applied, "apply", Cause::kLocated}, uid);
  const absl::Time verified_at = absl::Now();
  ReconcileResult r = Mark(*cached, facts, *plan, *at, v, verified_at);
  if (r.cause == Cause::kUnspecified) r.cause = Cause::kLocated;
  if (r.outcome == Outcome::kInitialized || r.outcome == Outcome::kReapplied) {
    r.locate_took = at->locate_took;
    r.inspect_took = at->inspect_took;
    r.apply_took = verified_at - apply_start;
    r.mark_took = absl::Now() - verified_at;
  }
  return r;
}

}  // namespace pnc::controller
