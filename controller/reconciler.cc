#include "controller/reconciler.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controller/log.h"
#include "netns/addresses.h"
#include "rules/annotations.h"
#include "rules/membership.h"
#include "rules/plan.h"

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

}  // namespace

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
}

void Reconciler::Forget(const std::string& uid) {
  absl::MutexLock lock(&mu_);
  state_.erase(uid);
}

size_t Reconciler::NumTracked() const {
  absl::MutexLock lock(&mu_);
  return state_.size();
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

ReconcileResult Reconciler::Finish(ReconcileResult r, const std::string& uid, NetnsId netns,
                                   uint8_t ip_families) {
  if (deps_.metrics != nullptr) deps_.metrics->reconciles.Inc(OutcomeName(r.outcome));
  absl::MutexLock lock(&mu_);
  switch (r.outcome) {
    case Outcome::kInitialized:
    case Outcome::kVerified:
    case Outcome::kReapplied:
      state_[uid] = State{.done = true, .netns = netns, .ip_families = ip_families};
      break;
    case Outcome::kGone:
      state_.erase(uid);
      break;
    default:
      break;
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

ReconcileResult Reconciler::Reconcile(const std::string& uid) {
  std::optional<CachedPod> cached = deps_.store->GetPod(uid);
  if (!cached) return Finish({Outcome::kGone, absl::OkStatus(), "not in cache"}, uid);
  const kube::Pod& pod = cached->pod;
  if (pod.host_network) return Finish({Outcome::kSkipped, absl::OkStatus(), "hostNetwork"}, uid);
  // The watch is node-scoped by a field selector; do not rely on the server (or a proxy) alone for that.
  if (pod.node_name != node_name_) return Finish({Outcome::kSkipped, absl::OkStatus(), "other node"}, uid);
  if (pod.deleting || pod.phase == "Succeeded" || pod.phase == "Failed") {
    return Finish({Outcome::kSkipped, absl::OkStatus(), "terminating"}, uid);
  }
  std::optional<NetnsId> done_in;
  uint8_t done_families = 0;
  {
    // Done already, and no resync asked for a read-back. A pending reverify falls through; whether it only
    // reads back or also re-marks depends on what the cache says (`marked` below).
    absl::MutexLock lock(&mu_);
    auto it = state_.find(uid);
    if (it != state_.end() && it->second.done && !it->second.reverify) {
      done_in = it->second.netns;
      done_families = it->second.ip_families;
    }
  }
  if (done_in && !pod.pod_ips.empty() && IpFamilies(pod.pod_ips) != done_families) {
    // Planned from the netns's addresses before status.podIPs was published, and the published IPs have
    // another family set (e.g. CNI had not added the IPv6 address yet): plan again now, not at the resync.
    Log(LogLevel::kInfo, "published pod IPs differ in address family from those the rules were planned for",
        {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
    done_in.reset();
  }
  if (done_in) {
    // A sandbox recreated under the same pod UID (pause container died, node reboot) has a new, empty netns
    // while the pod still says `initialized` (bound to the old netns, so its re-run waiter waits): every
    // event of a done pod re-locates its netns, and a different one is verified, re-applied and re-marked
    // right away instead of at the next resync. A failed locate keeps the pod done: the new sandbox's
    // container starts bring further events.
    absl::StatusOr<netns::NetnsHandle> now =
        deps_.locator->Locate(netns::PodRef{pod.uid, pod.namespace_name, pod.name, pod.pod_ips});
    if (!now.ok() || NetnsId{now->device(), now->inode()} == *done_in) {
      return {Outcome::kSkipped, absl::OkStatus(), "done"};
    }
    Log(LogLevel::kInfo, "pod network namespace changed since it was initialized; verifying again",
        {{"pod_uid", uid}, {"namespace", pod.namespace_name}, {"pod", pod.name}});
  }

  // select
  std::optional<kube::Namespace> ns = deps_.store->GetNamespace(pod.namespace_name);
  if (!ns && !deps_.store->NamespacesSynced()) {
    return Finish({Outcome::kRetry, absl::UnavailableError("namespace cache not synced"), "namespace"}, uid);
  }
  rules::PodFacts facts = kube::ToPodFacts(pod, ns ? &*ns : nullptr);
  rules::MembershipDecision m = rules::DecideMembership(facts);
  if (!m.member) return Finish({Outcome::kSkipped, absl::OkStatus(), m.reason}, uid);

  auto status_it = pod.annotations.find(rules::kStatusAnnotation);
  bool marked = status_it != pod.annotations.end() && status_it->second == rules::kStatusInitialized;
  // The netns the `initialized` was written for (kNetnsAnnotation); empty: none (forged at creation, or
  // written by a controller that predates the binding). `marked` alone never means done: the mark counts
  // only when bound to the netns located below.
  auto bound_it = pod.annotations.find(rules::kNetnsAnnotation);
  std::string bound_to = bound_it != pod.annotations.end() ? bound_it->second : "";

  // plan (before locating: a bad annotation is reported even while the sandbox does not exist)
  absl::StatusOr<rules::RedirectPlan> plan = rules::BuildPlan(facts, config_);
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kInvalidArgument) {
      if (marked && !bound_to.empty()) {
        // Annotations edited after initialization: the running pod keeps the rules it started with; flipping
        // its status to an error would only break its next init-container restart. Unless its sandbox was
        // recreated since: the new netns has no rules and none can be planned, so its waiter must fail with
        // the reason rather than time out. A forged `initialized` (no binding) is simply not ours.
        absl::StatusOr<netns::NetnsHandle> now =
            deps_.locator->Locate(netns::PodRef{pod.uid, pod.namespace_name, pod.name, pod.pod_ips});
        if (!now.ok() || std::to_string(now->inode()) == bound_to) {
          return Finish(
              {Outcome::kPermanentError, plan.status(), "annotation became invalid after initialization"},
              uid);
        }
      }
      return Finish(Permanent(pod, plan.status()), uid);
    }
    Error("plan_failed");
    return Finish({Outcome::kRetry, plan.status(), "plan"}, uid);
  }

  // locate
  absl::StatusOr<netns::NetnsHandle> handle =
      deps_.locator->Locate(netns::PodRef{pod.uid, pod.namespace_name, pod.name, pod.pod_ips});
  if (!handle.ok()) {
    Error(handle.status().code() == absl::StatusCode::kNotFound ? "locate_not_found" : "locate_failed");
    return Finish({Outcome::kRetry, handle.status(), "locate"}, uid);
  }

  if (facts.pod_ips.empty()) {
    // status.podIPs not published yet: the families come from the sandbox itself, or an IPv6 pod would be
    // marked with IPv4 rules only.
    absl::StatusOr<std::vector<std::string>> addrs = deps_.read_addresses(*handle);
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
  }
  rules::Ruleset ruleset = rules::BuildRuleset(*plan);

  const std::string inode = std::to_string(handle->inode());
  const bool bound = marked && bound_to == inode;
  bool present = false;  // rules read back equal to the plan: apply can be skipped
  if (marked) {
    // Startup, resync, recreated sandbox, or a status we did not write: trust nothing, read back.
    absl::StatusOr<rules::Ruleset> current = deps_.backend->ReadBack(*handle);
    present = current.ok() && *current == ruleset;
    if (present && bound)
      return Finish({Outcome::kVerified, absl::OkStatus(), "verified"}, uid,
                    NetnsId{handle->device(), handle->inode()}, IpFamilies(facts.pod_ips));
    if (!present) {
      Log(LogLevel::kWarning,
          bound ? "rules missing or different on an initialized pod; re-applying"
                : "pod says initialized but not for its current network namespace; applying",
          {{"pod_uid", uid},
           {"namespace", pod.namespace_name},
           {"pod", pod.name},
           {"netns", inode},
           {"bound_to", bound_to},
           {"readback", current.ok() ? "differs" : std::string(current.status().message())}});
    }
  }

  // apply + verify
  absl::Time t1 = absl::Now();
  if (!present) {
    absl::Time t0 = absl::Now();
    absl::Status applied = netns::ApplyAndVerify(*deps_.backend, *handle, ruleset);
    t1 = absl::Now();
    if (deps_.metrics != nullptr)
      deps_.metrics->apply_duration.Observe(Seconds(t1 - t0), deps_.backend->Name());
    if (!applied.ok()) {
      Error(absl::StrContains(applied.message(), "verification failed") ? "verify_failed" : "apply_failed");
      return Finish({Outcome::kRetry, applied, "apply"}, uid);
    }
  }
  if (bound)
    return Finish({Outcome::kReapplied, absl::OkStatus(), "re-applied"}, uid,
                  NetnsId{handle->device(), handle->inode()}, IpFamilies(facts.pod_ips));
  if (deps_.metrics != nullptr && !marked)
    deps_.metrics->event_to_applied.Observe(Seconds(t1 - cached->first_seen));

  // mark: the status and the netns it holds for, in one patch (the waiter needs both).
  absl::Status patched = deps_.client->PatchPodStatusAnnotations(
      pod.namespace_name, pod.name, pod.uid,
      {{rules::kStatusAnnotation, rules::kStatusInitialized}, {rules::kNetnsAnnotation, inode}});
  if (patched.code() == absl::StatusCode::kNotFound || patched.code() == absl::StatusCode::kAborted) {
    return Finish({Outcome::kGone, patched, "pod deleted or replaced before marking"}, uid);
  }
  if (!patched.ok()) {
    Error("patch_failed");
    return Finish({Outcome::kRetry, patched, "mark"}, uid);
  }
  if (deps_.metrics != nullptr) deps_.metrics->applied_to_marked.Observe(Seconds(absl::Now() - t1));
  return Finish({Outcome::kInitialized, absl::OkStatus(), "initialized"}, uid,
                NetnsId{handle->device(), handle->inode()}, IpFamilies(facts.pod_ips));
}

}  // namespace pnc::controller
