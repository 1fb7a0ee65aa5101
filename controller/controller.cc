#include "controller/controller.h"

#include "absl/strings/str_cat.h"
#include "controller/log.h"
#include "netns/dir_watcher.h"

namespace pnc::controller {

namespace {
std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToDoubleMilliseconds(d)); }
}  // namespace

WorkQueue::Priority EventPriority(bool set_up, bool pod_ips_published) {
  return !set_up && pod_ips_published ? WorkQueue::Priority::kFirst : WorkQueue::Priority::kRecheck;
}

Controller::Controller(ControllerOptions options, kube::Client* client, netns::Locator* locator,
                       netns::Backend* backend, rules::PlanConfig plan_config, Metrics* metrics)
    : options_(std::move(options)),
      client_(client),
      locator_(locator),
      metrics_(metrics),
      queue_(options_.queue),
      informer_(Informer::Callbacks{
          [this](const std::string& uid) {
            const WorkQueue::Priority p = EventPriority(reconciler_.IsDone(uid), informer_.PodHasIps(uid));
            if (!queue_.Add(uid, p) && !queue_.shutting_down()) {
              if (metrics_ != nullptr) metrics_->errors.Inc("queue_full");
              Log(LogLevel::kWarning, "work queue full; pod dropped until resync", {{"pod_uid", uid}});
            }
          },
          [this](const std::string& uid) {
            reconciler_.Forget(uid);
            queue_.Forget(uid);
            // A worker may be reconciling this UID right now and record state after the Forget above; one
            // more pass (ordered after it by the queue) finds the pod gone and drops that state.
            queue_.Add(uid);
          }}),
      reconciler_(
          Reconciler::Deps{&informer_, client, locator, backend, metrics, options_.read_addresses,
                           options_.inspector, options_.boot_id, &options_.mesh_defaults, options_.marker},
          plan_config, options_.node_name) {
  if (metrics_ != nullptr) {
    metrics_->queue_depth = [this] { return static_cast<double>(queue_.Len() + queue_.Delayed()); };
    metrics_->cached_pods = [this] { return static_cast<double>(informer_.NumPods()); };
    metrics_->parked_pods = [this] { return static_cast<double>(queue_.Parked()); };
  }
  auto on_error = [this](const char* what) {
    return [this, what](const absl::Status& st, const char* phase) {
      std::string reason = absl::StrCat(what, "_", phase, "_", absl::StatusCodeToString(st.code()));
      if (metrics_ != nullptr) metrics_->watch_restarts.Inc(reason);
      Log(st.code() == absl::StatusCode::kOutOfRange ? LogLevel::kInfo : LogLevel::kWarning,
          absl::StrCat(what, " ", phase, " failed"), {{"error", std::string(st.message())}});
    };
  };
  kube::Reflector<kube::Pod>::Options po;
  po.field_selector = absl::StrCat("spec.nodeName=", options_.node_name);
  po.watch_timeout_seconds = options_.watch_timeout_seconds;
  po.backoff_base = options_.watch_backoff_base;
  pod_reflector_ = std::make_unique<kube::Reflector<kube::Pod>>(
      [client](const kube::ListOptions& o) { return client->ListPods(o); },
      [client](const kube::WatchOptions& o, const kube::WatchHandler<kube::Pod>& h,
               const std::atomic<bool>& c) { return client->WatchPods(o, h, c); },
      kube::Reflector<kube::Pod>::Hooks{
          [this](std::vector<kube::Pod>&& pods, const std::string& rv) {
            Log(LogLevel::kInfo, "pods listed",
                {{"count", std::to_string(pods.size())}, {"resource_version", rv}});
            informer_.ReplacePods(std::move(pods));
          },
          [this](kube::EventType t, kube::Pod&& p) { informer_.ApplyPodEvent(t, std::move(p)); },
          on_error("pods")},
      po);
  kube::Reflector<kube::Namespace>::Options no;
  no.watch_timeout_seconds = options_.watch_timeout_seconds;
  no.backoff_base = options_.watch_backoff_base;
  ns_reflector_ = std::make_unique<kube::Reflector<kube::Namespace>>(
      [client](const kube::ListOptions& o) { return client->ListNamespaces(o); },
      [client](const kube::WatchOptions& o, const kube::WatchHandler<kube::Namespace>& h,
               const std::atomic<bool>& c) { return client->WatchNamespaces(o, h, c); },
      kube::Reflector<kube::Namespace>::Hooks{
          [this](std::vector<kube::Namespace>&& nss, const std::string&) {
            informer_.ReplaceNamespaces(std::move(nss));
          },
          [this](kube::EventType t, kube::Namespace&& n) { informer_.ApplyNamespaceEvent(t, std::move(n)); },
          on_error("namespaces")},
      no);
  // Created before any thread starts (workers and the netns-directory watcher read the pointer unlocked).
  if (options_.sandbox_poll.interval > absl::ZeroDuration())
    sandbox_poller_ = std::make_unique<SandboxPoller>(options_.sandbox_poll, locator_, &queue_, metrics_);
}

Controller::~Controller() {
  if (!stopped_) Stop(absl::Seconds(5));
}

void Controller::Start() {
  // Namespaces first so the first pods find their namespace (pods still wait for it if not).
  threads_.emplace_back([this] { ns_reflector_->Run(); });
  threads_.emplace_back([this] { pod_reflector_->Run(); });
  if (options_.resync > absl::ZeroDuration()) threads_.emplace_back([this] { ResyncLoop(); });
  {
    absl::MutexLock lock(&mu_);
    live_workers_ = options_.workers;
  }
  if (sandbox_poller_ != nullptr) sandbox_poller_->Start();
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { Worker(); });
  if (!options_.netns_dir.empty()) {
    // A new file there is a new sandbox on this node, created before the sandbox is ready (CNI and the pause
    // container follow). With a poller that can list, it polls fast until that sandbox is ready. Without:
    // the pod that has waited longest goes now, not at its timer. One per file: releasing every waiting pod
    // on every file made ~30 futile locates per pod in a 110-pod burst. The others keep their capped timers
    // and go at once on their own pod events (status.podIP follows readiness).
    absl::StatusOr<std::unique_ptr<netns::DirWatcher>> w =
        netns::DirWatcher::Start(options_.netns_dir, [this](const std::string&) {
          if (sandbox_poller_ != nullptr && !sandbox_poller_->gave_up()) {
            sandbox_poller_->Hint();
          } else {
            queue_.ReleaseWaiting(1);
          }
        });
    if (w.ok()) {
      sandbox_watcher_ = *std::move(w);
    } else {
      Log(LogLevel::kWarning,
          "not watching the runtime's netns directory; pods waiting for a sandbox are found by the "
          "sandbox poller's regular polls, their own events and timers",
          {{"dir", options_.netns_dir}, {"error", std::string(w.status().message())}});
    }
  }
}

bool Controller::Ready() const { return informer_.PodsSynced() && informer_.NamespacesSynced(); }

void Controller::Worker() {
  // Like client-go's WaitForCacheSync: a pod reconciled before the namespace cache is filled (namespace
  // opt-in annotation, OpenShift uid range) only bounces off "namespace cache not synced" into a 50 ms
  // backoff, which at startup was every pod of the node.
  while (!informer_.WaitNamespacesSynced(absl::Milliseconds(100)) && !queue_.shutting_down()) {
  }
  std::string uid;
  while (queue_.Get(&uid)) {
    {
      absl::MutexLock lock(&mu_);
      ++busy_workers_;
    }
    const absl::Time start = absl::Now();
    ReconcileResult r = reconciler_.Reconcile(uid);
    const bool backstop = Requeue(uid, r, absl::Now() - start);
    if ((r.cause == Cause::kLocated || r.cause == Cause::kDone) && queue_.Parked() > 0) {
      size_t n = queue_.ReleaseParked();
      Log(LogLevel::kInfo, "container runtime answers again; parked pods released",
          {{"pod_uid", uid}, {"pods", std::to_string(n)}});
    }
    queue_.Done(uid);
    // The poller may have stopped working since the backstop was chosen; if it released its waiting pods for
    // that before this Done, it skipped this one (being processed): release it here. Checked after Done, one
    // of the two sees the other.
    if (backstop && !sandbox_poller_->healthy()) queue_.ReleaseWaitingKey(uid);
    absl::MutexLock lock(&mu_);
    --busy_workers_;
  }
  absl::MutexLock lock(&mu_);
  --live_workers_;
}

bool Controller::Requeue(const std::string& uid, const ReconcileResult& r, absl::Duration took) {
  switch (r.outcome) {
    case Outcome::kRetry:
      return RetryLater(uid, r, took);
    case Outcome::kSkipped:
      queue_.Forget(uid);
      if (r.cause != Cause::kDone)
        Log(LogLevel::kDebug, "pod skipped", {{"pod_uid", uid}, {"reason", r.detail}});
      return false;
    case Outcome::kPermanentError:
      queue_.Forget(uid);
      Log(LogLevel::kWarning, "pod has an invalid redirection annotation; not retrying",
          {{"pod_uid", uid}, {"error", std::string(r.status.message())}, {"detail", r.detail}});
      return false;
    default:
      queue_.Forget(uid);
      Log(LogLevel::kInfo, absl::StrCat("pod ", OutcomeName(r.outcome)),
          {{"pod_uid", uid},
           {"detail", r.detail},
           {"took_ms", Ms(took)},
           {"locate_ms", Ms(r.locate_took)},
           {"inspect_ms", Ms(r.inspect_took)},
           {"apply_ms", Ms(r.apply_took)},
           {"mark_ms", Ms(r.mark_took)}});
      return false;
  }
}

bool Controller::RetryLater(const std::string& uid, const ReconcileResult& r, absl::Duration took) {
  if (r.cause == Cause::kRuntimeOutage) {
    // The runtime is down or restarting: retry soon without growing this pod's backoff; every parked pod goes
    // again as soon as any locate succeeds.
    queue_.ParkForOutage(uid);
    Log(LogLevel::kWarning, "container runtime unavailable; pod parked until it answers",
        {{"pod_uid", uid}, {"error", std::string(r.status.message())}});
    return false;
  }
  // The poller lists ready sandboxes for every waiting pod; while it works, a waiting pod's own timer is only
  // a backstop. Not for a pod the poller released already and that still was not found: the list cannot help
  // it (e.g. its netns cannot be opened here), its own timer must.
  const bool missing = r.cause == Cause::kSandboxMissing;
  const bool backstop =
      missing && sandbox_poller_ != nullptr && sandbox_poller_->healthy() && !queue_.ReleasedByList(uid);
  const absl::Duration d =
      !missing ? queue_.AddRateLimited(uid)
               : queue_.AddWaiting(uid, options_.sandbox_wait_cap,
                                   backstop ? options_.sandbox_poll.backstop : absl::ZeroDuration());
  if (options_.stuck_event_after > 0 && queue_.NumRequeues(uid) == options_.stuck_event_after) {
    reconciler_.ReportStuck(uid, r.status, queue_.NumRequeues(uid));
  }
  Log(LogLevel::kWarning, "reconcile failed; will retry",
      {{"pod_uid", uid},
       {"step", r.detail},
       {"error", std::string(r.status.message())},
       {"attempt", std::to_string(queue_.NumRequeues(uid))},
       {"took_ms", Ms(took)},
       {"retry_in", absl::FormatDuration(d)}});
  return backstop;
}

void Controller::ResyncLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.resync)) return;
    }
    for (const std::string& uid : informer_.PodUids()) {
      // As for its events: a pod not set up yet whose sandbox the kubelet reported goes first (its init
      // container waits for it). Decided before RequestReverify, which makes a done pod look not done.
      const WorkQueue::Priority p = EventPriority(reconciler_.IsDone(uid), informer_.PodHasIps(uid));
      reconciler_.RequestReverify(uid);
      queue_.Add(uid, p);
    }
  }
}

bool Controller::Stop(absl::Duration deadline) {
  if (stopped_) return true;
  stopped_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  pod_reflector_->Stop();
  ns_reflector_->Stop();
  sandbox_watcher_.reset();  // joins its thread
  // Joins its thread; the object stays for workers still finishing (healthy() is false from now on).
  if (sandbox_poller_ != nullptr) sandbox_poller_->Stop();
  queue_.ShutDown();
  bool drained;
  {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_workers_ == 0; };
    drained = mu_.AwaitWithTimeout(absl::Condition(&done), deadline);
  }
  for (std::thread& t : workers_) {
    if (drained) {
      t.join();
    } else {
      t.detach();  // stuck in a syscall; the process is about to exit
    }
  }
  workers_.clear();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  return drained;
}

}  // namespace pnc::controller
