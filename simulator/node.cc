#include "simulator/node.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "netns/cri/testing/container_client.h"
#include "netns/cri/testing/containerd.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/testing/run_as.h"
#include "netns/testing/sandbox.h"
#include "netns/testing/sockets.h"
#include "simulator/downward.h"
#include "simulator/netfilter_probe.h"
#include "simulator/netns_identity.h"
#include "simulator/priority.h"
#include "simulator/process.h"
#include "simulator/release_check.h"

namespace pnc::sim {

using nlohmann::json;
namespace nt = pnc::netns::testing;
namespace ct = pnc::netns::cri_testing;

namespace {

constexpr char kStatusAnnotation[] = "pod-network-controller.istio.io/status";
constexpr char kNetnsAnnotation[] = "pod-network-controller.istio.io/netns";
constexpr char kProbeAnnotation[] = "pod-network-controller.istio.io/probe";
constexpr char kNodeIp[] = "10.249.0.1";

std::atomic<int> g_netns_counter{
    0};  // netns names must be unique per process (several nodes share the sandbox)

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

std::map<std::string, std::string> Annotations(const json& pod) {
  std::map<std::string, std::string> out;
  auto md = pod.find("metadata");
  if (md == pod.end() || !md->contains("annotations") || !(*md)["annotations"].is_object()) return out;
  for (auto it = (*md)["annotations"].begin(); it != (*md)["annotations"].end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::map<std::string, std::string> Labels(const json& pod) {
  std::map<std::string, std::string> out;
  auto md = pod.find("metadata");
  if (md == pod.end() || !md->contains("labels") || !(*md)["labels"].is_object()) return out;
  for (auto it = (*md)["labels"].begin(); it != (*md)["labels"].end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::string LastLine(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line)) {
    if (!absl::StripAsciiWhitespace(line).empty()) last = line;
  }
  if (last.size() > 400) last = last.substr(0, 400);
  return last;
}

json Condition(const char* type, bool ok, absl::Time t, const std::string& reason = "") {
  json c = {{"type", type},
            {"status", ok ? "True" : "False"},
            {"lastProbeTime", nullptr},
            {"lastTransitionTime", Rfc3339(t)}};
  if (!reason.empty()) c["reason"] = reason;
  return c;
}

// `sidecar_state`: for native sidecars (init containers with restartPolicy Always) once the pod runs; null:
// like the others.
json ContainerStatuses(const json& pod, const char* list, const json& state, bool ready, int restarts,
                       const json& sidecar_state = nullptr) {
  json out = json::array();
  if (!pod.contains("spec") || !pod["spec"].contains(list)) return out;
  for (const auto& c : pod["spec"][list]) {
    const bool sidecar = !sidecar_state.is_null() && IsNativeSidecar(c);
    out.push_back({{"name", c.value("name", "")},
                   {"image", c.value("image", "")},
                   {"imageID", ""},
                   {"ready", sidecar || ready},
                   {"restartCount", restarts},
                   {"started", sidecar || ready},
                   {"state", sidecar ? sidecar_state : state}});
  }
  return out;
}

}  // namespace

struct FakeNode::Pod {
  std::string uid, namespace_name, name;
  absl::Mutex mu;
  ObjectPtr latest ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> annotations ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> labels ABSL_GUARDED_BY(mu);
  // The pod spec's Downward API volumes (pod_shape.h), created with the first sandbox.
  std::vector<std::pair<DownwardVolumeSpec, std::unique_ptr<DownwardVolume>>> volumes ABSL_GUARDED_BY(mu);
  pid_t waiter_pid ABSL_GUARDED_BY(mu) = -1;
  bool deleted ABSL_GUARDED_BY(mu) = false;
  bool terminating ABSL_GUARDED_BY(mu) = false;  // graceful deletion: we owe the API server the final DELETE
  bool refresh_pending ABSL_GUARDED_BY(mu) = false;  // a delayed Downward API refresh is queued
  bool recreate ABSL_GUARDED_BY(mu) = false;         // RecreateSandbox: kill this sandbox, make a new one
  int netns_fd ABSL_GUARDED_BY(mu) = -1;             // the current sandbox's netns (owned by RunSandbox)
  std::string dir ABSL_GUARDED_BY(mu);               // state dir (Downward API volume, logs)
  absl::Duration recreate_down ABSL_GUARDED_BY(mu);
  std::thread worker;
  std::atomic<bool> done{false};
};

class FakeNode::Sink : public WatchSink {
 public:
  explicit Sink(FakeNode* node) : node_(node) {}
  void OnEvent(const std::string& type, const ObjectPtr& obj, uint64_t, const EventLine&) override {
    if (type == "BOOKMARK") return;
    absl::Time at = absl::Now();  // on the committing thread
    absl::MutexLock l(&node_->mu_);
    node_->events_.push_back({type, obj, at});
  }
  void OnClosed() override {}
  bool WantsLine() const override { return false; }
  bool Droppable() const override { return false; }

 private:
  FakeNode* node_;
};

FakeNode::FakeNode(Store* store, Recorder* recorder, NodeOptions options, nt::Sandbox* sandbox,
                   SandboxListener* listener)
    : store_(store),
      recorder_(recorder),
      options_(std::move(options)),
      sandbox_(sandbox),
      listener_(listener) {}

FakeNode::~FakeNode() { Stop(); }

absl::Status FakeNode::Start() {
  if (!options_.lightweight && sandbox_ == nullptr && options_.containerd == nullptr) {
    return absl::FailedPreconditionError("netns mode needs the netns sandbox");
  }
  if (!options_.state_dir.empty()) ::mkdir(options_.state_dir.c_str(), 0755);
  if (!options_.state_dir.empty() && sandbox_ != nullptr && options_.containerd == nullptr &&
      !options_.lightweight) {
    // The kubelet work (Downward API files, atomic ..data swaps for every pod) on a disk filesystem costs the
    // simulator most of its CPU in a burst (ext4 inode allocation), CPU the controller under test then waits
    // for. A tmpfs over the node's state dir, in the netns sandbox's private mount namespace: invisible to
    // the host, gone with the process. The waiters and the controller are our children and see it.
    if (::mount("tmpfs", options_.state_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
      std::fprintf(stderr, "simulator: node %s keeps its state on disk (tmpfs mount: %s)\n",
                   options_.name.c_str(), std::strerror(errno));
    }
  }
  if (options_.containerd != nullptr) {
    cri_sandboxes_ = std::make_unique<ct::SandboxClient>(options_.containerd->endpoint());
    cri_containers_ = std::make_unique<ct::ContainerClient>(options_.containerd->endpoint());
  } else if (!options_.lightweight && options_.sandbox_pool > 0) {
    pool_ = std::make_unique<SandboxPool>(sandbox_, options_.sandbox_pool);
    if (auto s = pool_->Fill(); !s.ok()) return s;
    pool_->StartRefill();
  }
  json node = {{"metadata",
                {{"name", options_.name},
                 {"labels", {{"kubernetes.io/hostname", options_.name}, {"kubernetes.io/os", "linux"}}}}},
               {"status",
                {{"addresses", {{{"type", "InternalIP"}, {"address", kNodeIp}}}},
                 {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  auto created = store_->Create(Resource::kNodes, "", node);
  if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) return created.status();
  sink_ = std::make_shared<Sink>(this);
  auto id = store_->Watch(
      Resource::kPods, "",
      {.field_selector = absl::StrCat("spec.nodeName=", options_.name), .resource_version = "0"}, sink_);
  if (!id.ok()) return id.status();
  watch_id_ = *id;
  dispatcher_ = std::thread([this] { Dispatch(); });
  return absl::OkStatus();
}

void FakeNode::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (watch_id_ != 0) store_->Unwatch(watch_id_);
  if (dispatcher_.joinable()) dispatcher_.join();
  pool_.reset();
}

int FakeNode::busy() const {
  absl::MutexLock l(&mu_);
  int n = 0;
  for (const auto& [uid, p] : pods_) n += p->done ? 0 : 1;
  return n;
}

void FakeNode::Dispatch() {
  // The fake kubelet's own work (Downward API refreshes) runs at its nice value, not at the simulator's
  // serving priority (priority.h); pod workers start from here.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), options_.kubelet_nice);
  while (true) {
    std::deque<Event> batch;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty() || stopping_; };
      absl::Duration wait = absl::Milliseconds(200);
      if (!refreshes_.empty())
        wait = std::min(wait, std::max(absl::ZeroDuration(), refreshes_.front().first - absl::Now()));
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      batch.swap(events_);
      if (stopping_ && batch.empty()) break;
    }
    for (auto& e : batch) OnPodEvent(e.type, e.object, e.at);
    // Delayed Downward API refreshes that are due.
    std::vector<std::shared_ptr<Pod>> due;
    {
      absl::MutexLock l(&mu_);
      absl::Time now = absl::Now();
      while (!refreshes_.empty() && refreshes_.front().first <= now) {
        due.push_back(refreshes_.front().second);
        refreshes_.pop_front();
      }
    }
    for (auto& p : due) {
      absl::MutexLock pl(&p->mu);
      p->refresh_pending = false;
      if (!p->volumes.empty()) RefreshVolumeLocked(*p);
    }
    // Reap finished workers.
    absl::MutexLock l(&mu_);
    for (auto it = pods_.begin(); it != pods_.end();) {
      if (it->second->done && it->second->worker.joinable()) {
        it->second->worker.join();
        it = pods_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Shutdown: every pod is torn down.
  std::map<std::string, std::shared_ptr<Pod>> pods;
  {
    absl::MutexLock l(&mu_);
    pods.swap(pods_);
  }
  for (auto& [uid, p] : pods) {
    {
      absl::MutexLock l(&p->mu);
      p->deleted = true;
      if (p->waiter_pid > 0) ::kill(p->waiter_pid, SIGKILL);
    }
    if (p->worker.joinable()) p->worker.join();
  }
}

void FakeNode::OnPodEvent(const std::string& type, const ObjectPtr& obj, absl::Time at) {
  std::string uid = FieldValue(*obj, "metadata.uid");
  std::shared_ptr<Pod> pod;
  {
    absl::MutexLock l(&mu_);
    auto it = pods_.find(uid);
    if (it != pods_.end()) pod = it->second;
  }
  auto annotations = Annotations(*obj);
  if (auto a = annotations.find(kStatusAnnotation); a != annotations.end()) {
    auto n = annotations.find(kNetnsAnnotation);
    std::string netns_value = n == annotations.end() ? "" : n->second;
    recorder_->Update(uid, [&](PodRecord& r) {
      // A re-mark for a recreated sandbox keeps the status and changes the identity.
      if (r.annotated == absl::InfinitePast() || r.status_annotation != a->second ||
          r.netns_annotation != netns_value)
        r.annotated = at;
      r.status_annotation = a->second;
      r.netns_annotation = netns_value;
    });
  }
  bool terminating = type != "DELETED" && (*obj)["metadata"].contains("deletionTimestamp");
  if (type == "DELETED" || terminating) {
    recorder_->Update(uid, [](PodRecord& r) { r.deleted = true; });
    if (pod) {
      absl::MutexLock l(&pod->mu);
      pod->deleted = true;
      pod->terminating |= terminating;
      pod->recreate = false;
      if (pod->waiter_pid > 0) ::kill(pod->waiter_pid, SIGKILL);
    } else if (terminating) {
      FinishDeletion(FieldValue(*obj, "metadata.namespace"), FieldValue(*obj, "metadata.name"), uid);
    }
    return;
  }
  if (pod) {
    absl::MutexLock l(&pod->mu);
    pod->latest = obj;
    auto labels = Labels(*obj);
    if (annotations != pod->annotations || labels != pod->labels) {
      pod->annotations = annotations;
      pod->labels = std::move(labels);
      if (!pod->volumes.empty()) {
        if (options_.downward_api_delay <= absl::ZeroDuration()) {
          RefreshVolumeLocked(*pod);
        } else if (!pod->refresh_pending) {
          // Like kubelet's volume sync: later, once, with whatever the annotations are by then.
          pod->refresh_pending = true;
          absl::MutexLock nl(&mu_);
          refreshes_.push_back({absl::Now() + options_.downward_api_delay, pod});
        }
      }
    }
    return;
  }
  // A pod new to this node.
  pod = std::make_shared<Pod>();
  pod->uid = uid;
  pod->namespace_name = FieldValue(*obj, "metadata.namespace");
  pod->name = FieldValue(*obj, "metadata.name");
  {
    absl::MutexLock l(&pod->mu);
    pod->latest = obj;
    pod->annotations = annotations;
    pod->labels = Labels(*obj);
  }
  recorder_->Update(uid, [&](PodRecord& r) {
    r.node = options_.name;
    r.namespace_name = pod->namespace_name;
    r.name = pod->name;
  });
  {
    absl::MutexLock l(&mu_);
    pods_[uid] = pod;
  }
  pod->worker = std::thread([this, pod] {
    RunPod(pod);
    bool terminating;
    {
      absl::MutexLock l(&pod->mu);
      terminating = pod->terminating;
    }
    // Containers and sandbox are gone: like kubelet, complete a graceful deletion.
    if (terminating) FinishDeletion(pod->namespace_name, pod->name, pod->uid);
    pod->done = true;
  });
}

void FakeNode::RefreshVolumeLocked(Pod& pod) {
  for (auto& [spec, volume] : pod.volumes) {
    std::map<std::string, std::string> files;
    for (const auto& [path, field] : spec.items)
      files[path] = FormatDownwardMap(field == "metadata.labels" ? pod.labels : pod.annotations);
    if (auto s = volume->Update(files); !s.ok()) {
      std::fprintf(stderr, "node %s: downward update %s/%s: %s\n", options_.name.c_str(), pod.name.c_str(),
                   spec.volume.c_str(), s.ToString().c_str());
    }
  }
}

void FakeNode::FinishDeletion(const std::string& ns, const std::string& name, const std::string& uid) {
  // UID precondition: never remove a newer pod that reuses the name. The API server's work, on the serving
  // thread (priority.h).
  RunServed([&] {
    (void)store_->Delete(Resource::kPods, ns, name,
                         {.preconditions = {.uid = uid}, .grace_period_seconds = 0});
  });
}

void FakeNode::PublishStatus(const Pod& pod, const json& status) {
  // The UID precondition keeps a late status write from landing on a recreated pod with the same name.
  json patch = {{"metadata", {{"uid", pod.uid}}}, {"status", status}};
  // The API server's work, on the serving thread (priority.h). NotFound/Conflict: the pod is gone or
  // replaced; nothing to report.
  RunServed([&] {
    (void)store_->Patch(Resource::kPods, pod.namespace_name, pod.name, PatchType::kMerge, patch,
                        Subresource::kStatus);
  });
}

std::map<std::string, absl::StatusOr<std::string>> FakeNode::LivePodTables() {
  std::vector<std::shared_ptr<Pod>> pods;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [uid, p] : pods_) pods.push_back(p);
  }
  std::map<std::string, absl::StatusOr<std::string>> out;
  for (const auto& p : pods) {
    absl::MutexLock l(&p->mu);  // keeps the netns alive (teardown clears netns_fd under it first)
    if (p->deleted || p->netns_fd < 0) continue;
    out.emplace(p->uid, ListNetfilterTables(p->netns_fd, p->dir + "/nft-tables-check.out"));
  }
  return out;
}

absl::Status FakeNode::RecreateSandbox(const std::string& ns, const std::string& name, absl::Duration down) {
  std::shared_ptr<Pod> pod;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [uid, p] : pods_) {
      if (p->namespace_name == ns && p->name == name && !p->done) pod = p;
    }
  }
  if (pod == nullptr)
    return absl::NotFoundError(absl::StrCat("no pod ", ns, "/", name, " on ", options_.name));
  if (options_.lightweight) return absl::FailedPreconditionError("lightweight nodes have no sandboxes");
  {
    absl::MutexLock l(&pod->mu);
    if (pod->deleted) return absl::NotFoundError(absl::StrCat(ns, "/", name, " is being deleted"));
    pod->recreate = true;
    pod->recreate_down = down;
    if (pod->waiter_pid > 0) ::kill(pod->waiter_pid, SIGKILL);
  }
  // Synchronously, so a wait_settled right after this waits for the new sandbox.
  recorder_->Update(pod->uid, [](PodRecord& r) {
    r.recreated = absl::Now();
    r.settled = false;
    r.phase = "Pending";
  });
  return absl::OkStatus();
}

std::pair<int, std::string> FakeNode::RunCriWaiter(const std::shared_ptr<Pod>& pod,
                                                   const std::string& sandbox_id, const ct::PodSpec& cri_pod,
                                                   const std::string& name,
                                                   const std::vector<std::string>& args,
                                                   std::optional<uid_t> uid, std::optional<gid_t> gid,
                                                   const std::string& log) {
  auto interrupted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pod->mu) { return pod->deleted || pod->recreate; };
  ct::ContainerSpec spec;
  spec.name = name;
  spec.image = options_.waiter_image;
  spec.args = args;  // --file=<node path of the Downward API volume>/<file>: mounted at the same path
  if (uid.has_value()) {
    spec.run_as_user = *uid;
    if (gid.has_value()) spec.run_as_group = *gid;
  }
  {
    absl::MutexLock l(&pod->mu);
    if (interrupted()) return {137, "pod deleted or sandbox recreated before the init container started"};
    for (const auto& [vspec, volume] : pod->volumes)
      spec.mounts.push_back({.host_path = volume->dir(), .container_path = volume->dir(), .readonly = true});
  }
  auto id = cri_containers_->Create(sandbox_id, cri_pod, cri_pod.log_directory, spec);
  if (!id.ok()) return {127, absl::StrCat("CreateContainer: ", id.status().ToString())};
  if (auto s = cri_containers_->Start(*id); !s.ok()) {
    (void)cri_containers_->Remove(*id);
    return {127, absl::StrCat("StartContainer: ", s.ToString())};
  }
  // Exit code from ContainerStatus, polled (containerd 1.6 has no container events for CRI clients).
  const absl::Time deadline = absl::Now() + options_.waiter_timeout + absl::Seconds(10);
  int code = 127;
  std::string message;
  std::string log_path;
  while (true) {
    bool stop;
    {
      absl::MutexLock l(&pod->mu);
      stop = interrupted();
    }
    if (stop || absl::Now() > deadline) {
      (void)cri_containers_->Stop(*id, 0);
      code = 137;
      message = stop ? "stopped: pod deleted or sandbox recreated" : "init container did not exit in time";
      break;
    }
    auto facts = cri_containers_->Status(*id);
    if (!facts.ok()) {
      message = absl::StrCat("ContainerStatus: ", facts.status().ToString());
      break;
    }
    log_path = facts->log_path;
    if (facts->state == ct::kContainerExited) {
      code = facts->exit_code;
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (!log_path.empty()) {
    if (auto text = ct::ReadCriLog(log_path); text.ok()) {
      std::ofstream(log, std::ios::app) << *text;
      std::string last = LastLine(log);
      if (!last.empty() && (message.empty() || code != 137)) message = last;
    }
  }
  (void)cri_containers_->Remove(*id);
  return {code, message};
}

void FakeNode::RunPod(std::shared_ptr<Pod> pod) {
  if (options_.kubelet_nice >
      0)  // this thread only (Linux: a tid is a PRIO_PROCESS target); children inherit it
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), options_.kubelet_nice);
  ObjectPtr spec_obj;
  {
    absl::MutexLock l(&pod->mu);
    spec_obj = pod->latest;
  }
  const json& podj = *spec_obj;
  const bool host_network = podj.contains("spec") && podj["spec"].value("hostNetwork", false);
  if (options_.lightweight || host_network) {
    absl::Time start = absl::Now();
    std::string ip =
        host_network ? kNodeIp : absl::StrCat("10.248.", (next_ip_ >> 8) & 0xff, ".", next_ip_ & 0xff);
    ++next_ip_;
    json terminated = {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}}}};
    json running = {{"running", {{"startedAt", Rfc3339(start)}}}};
    PublishStatus(*pod,
                  {{"phase", "Running"},
                   {"hostIP", kNodeIp},
                   {"podIP", ip},
                   {"podIPs", {{{"ip", ip}}}},
                   {"startTime", Rfc3339(start)},
                   {"conditions",
                    {Condition("PodScheduled", true, start), Condition("Initialized", true, start),
                     Condition("ContainersReady", true, start), Condition("Ready", true, start)}},
                   {"initContainerStatuses", ContainerStatuses(podj, "initContainers", terminated, false, 0)},
                   {"containerStatuses", ContainerStatuses(podj, "containers", running, true, 0)}});
    recorder_->Update(pod->uid, [&](PodRecord& r) {
      r.phase = "Running";
      r.settled = true;
      r.settled_at = absl::Now();
    });
    absl::MutexLock l(&pod->mu);
    auto gone = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pod->mu) { return pod->deleted; };
    pod->mu.Await(absl::Condition(&gone));
    return;
  }
  for (int generation = 0;; ++generation) {
    if (RunSandbox(pod, generation) == SandboxEnd::kDeleted) break;
    absl::Duration down;
    {
      absl::MutexLock l(&pod->mu);
      down = pod->recreate_down;
    }
    absl::SleepFor(down);  // the runtime notices, kubelet's pod worker comes back (a deletion may intervene)
    absl::MutexLock l(&pod->mu);
    pod->recreate = false;
    if (pod->deleted) break;
  }
  absl::MutexLock l(&pod->mu);
  for (auto& [spec, volume] : pod->volumes) volume->Remove();
}

FakeNode::SandboxEnd FakeNode::RunSandbox(const std::shared_ptr<Pod>& pod, int generation) {
  ObjectPtr spec_obj;
  {
    absl::MutexLock l(&pod->mu);
    spec_obj = pod->latest;
  }
  const json& podj = *spec_obj;
  const absl::Time start = absl::Now();
  const std::string pod_dir = absl::StrCat(options_.state_dir, "/", pod->uid);
  // The waiter init container and the proxy, as the pod spec has them (pod_shape.h).
  const absl::StatusOr<std::optional<WaiterContainer>> waiter_spec =
      FindWaiter(podj, pod_dir, options_.waiter_timeout);
  const bool waiter = !waiter_spec.ok() || waiter_spec->has_value();
  const std::string init_name =
      waiter_spec.ok() && waiter_spec->has_value() ? (*waiter_spec)->name : std::string(kWaiterContainer);
  const ProxyContainer proxy = FindProxy(podj);
  const uid_t proxy_uid = proxy.uid.value_or(options_.proxy_uid);
  const gid_t proxy_gid = proxy.gid.value_or(proxy_uid);
  // Deleted, or asked to recreate: the sandbox's life is over.
  auto interrupted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pod->mu) { return pod->deleted || pod->recreate; };
  auto settle = [&](const std::string& phase, const json& status) {
    PublishStatus(*pod, status);
    recorder_->Update(pod->uid, [&](PodRecord& r) {
      r.phase = phase;
      r.settled = true;
      r.settled_at = absl::Now();
    });
  };
  auto end_of_life = [&] {
    absl::MutexLock l(&pod->mu);
    pod->mu.Await(absl::Condition(&interrupted));
    return pod->deleted ? SandboxEnd::kDeleted : SandboxEnd::kRecreate;
  };

  // 1. Sandbox: our own netns (netns mode) or a CRI pod sandbox (runtime containerd).
  absl::StatusOr<nt::PodNetns> netns = absl::UnavailableError("runtime containerd");
  std::string cri_sandbox_id;  // runtime containerd
  absl::Time cri_ready_at = absl::InfinitePast();
  std::optional<netns::NetnsHandle> cri_netns;
  ct::PodSpec cri_pod{.uid = pod->uid,
                      .name = pod->name,
                      .namespace_name = pod->namespace_name,
                      .attempt = static_cast<uint32_t>(generation)};
  std::string ip, netns_path, client_ip;
  json pod_ips = json::array();  // status.podIPs: every global address the sandbox has, as CNI reports them
  const netns::NetnsHandle* pod_ns = nullptr;
  const netns::NetnsHandle* client_ns = nullptr;
  if (options_.containerd != nullptr) {
    cri_pod.cgroup_parent = options_.containerd->CgroupParent(pod->uid);
    cri_pod.log_directory = absl::StrCat(pod_dir, "/cri-logs-", generation);
    ::mkdir(pod_dir.c_str(), 0755);
    ::mkdir(cri_pod.log_directory.c_str(), 0755);
    absl::Status failed = absl::OkStatus();
    auto id = cri_sandboxes_->Run(cri_pod);
    cri_ready_at = absl::Now();  // RunPodSandbox returns once the sandbox is READY (CNI done)
    if (!id.ok()) {
      failed = id.status();
    } else {
      cri_sandbox_id = *id;
      auto facts = cri_sandboxes_->Status(cri_sandbox_id);
      if (!facts.ok()) {
        failed = facts.status();
      } else if (!facts->ready || facts->ip.empty() || facts->netns_path.empty()) {
        failed = absl::InternalError(absl::StrCat("sandbox ", cri_sandbox_id, " not ready (ip '", facts->ip,
                                                  "', netns '", facts->netns_path, "')"));
      } else {
        auto h = netns::NetnsHandle::Open(facts->netns_path);
        if (!h.ok()) {
          failed = h.status();
        } else {
          cri_netns.emplace(*std::move(h));
          ip = facts->ip;
          netns_path = facts->netns_path;
        }
      }
    }
    if (!failed.ok()) {
      if (!cri_sandbox_id.empty()) {
        (void)cri_sandboxes_->Stop(cri_sandbox_id);
        (void)cri_sandboxes_->Remove(cri_sandbox_id);
      }
      settle("Failed", {{"phase", "Failed"}, {"reason", "SandboxFailed"}, {"message", failed.ToString()}});
      return end_of_life();
    }
    pod_ns = &*cri_netns;
    client_ns = &options_.containerd->node_netns();
    client_ip = options_.cri_gateway_ip;
  } else {
    if (options_.sandboxes_per_second > 0) {  // a runtime's throughput: one sandbox after the other
      absl::Time slot;
      {
        absl::MutexLock l(&pace_mu_);
        slot = std::max(absl::Now(), next_sandbox_);
        next_sandbox_ = slot + absl::Seconds(1.0 / options_.sandboxes_per_second);
      }
      absl::SleepFor(slot - absl::Now());
    }
    netns =
        pool_ ? pool_->Take() : sandbox_->CreatePodNetns(absl::StrCat("pod", g_netns_counter.fetch_add(1)));
    if (!netns.ok()) {
      settle("Failed",
             {{"phase", "Failed"}, {"reason", "SandboxFailed"}, {"message", netns.status().ToString()}});
      return end_of_life();
    }
    ip = netns->pod_ipv4;
    pod_ips.push_back({{"ip", netns->pod_ipv6}});  // after the IPv4 entry added below
    netns_path = netns->netns.path();
    pod_ns = &netns->handle();
    client_ns = &sandbox_->peer();
    client_ip = netns->peer_ipv4;
  }
  pod_ips.insert(pod_ips.begin(), json{{"ip", ip}});  // status.podIP is podIPs[0]
  SandboxRecord identity{.inode = pod_ns->inode(), .ip = ip};
  std::string identity_text = "(netns cookie unreadable)";
  if (auto cookie = NetnsCookie(*pod_ns); cookie.ok()) {
    identity.cookie = *cookie;
    if (auto boot = BootId(); boot.ok()) identity_text = IdentityText(*boot, *cookie);
  } else {
    std::fprintf(stderr, "node %s: netns cookie of %s: %s\n", options_.name.c_str(), pod->name.c_str(),
                 cookie.status().ToString().c_str());
  }
  recorder_->Update(pod->uid, [&](PodRecord& r) {
    r.sandboxes.push_back(identity);
    if (generation > 0) {  // the previous sandbox's results are history now
      r.waiter_exit.reset();
      r.waiter_message.clear();
      r.waiter_exited = absl::InfinitePast();
      r.binding_checked = r.marked_for_this_netns = false;
      r.binding_detail.clear();
      r.mark_at_release.clear();
      r.release_check = ReleaseCheck{};
      r.interception_checked = r.intercepted = false;
      r.interception_detail.clear();
      r.intercepted_at = absl::InfinitePast();
    }
  });
  SandboxInfo sandbox_info{
      cri_sandbox_id.empty() ? absl::StrCat("sb-", pod->uid, "-", generation) : cri_sandbox_id,
      pod->uid,
      pod->namespace_name,
      pod->name,
      netns_path,
      ip};
  if (generation > 0) {
    // What kubelet reports when it replaces a pod's sandbox.
    json event = {
        {"metadata", {{"generateName", absl::StrCat(pod->name, ".")}, {"namespace", pod->namespace_name}}},
        {"involvedObject",
         {{"kind", "Pod"}, {"namespace", pod->namespace_name}, {"name", pod->name}, {"uid", pod->uid}}},
        {"type", "Normal"},
        {"reason", "SandboxChanged"},
        {"message", "Pod sandbox changed, it will be killed and re-created."},
        {"source", {{"component", "kubelet"}, {"host", options_.name}}}};
    RunServed([&] { (void)store_->Create(Resource::kEvents, pod->namespace_name, event); });
  }
  // Ready from here: the runtime (fake CRI) answers for it; status.podIP follows right after, as from
  // kubelet.
  // Runtime containerd: when RunPodSandbox returned (the locator can find it from then on), not after our own
  // PodSandboxStatus read-back.
  const absl::Time ready = cri_sandbox_id.empty() ? absl::Now() : cri_ready_at;
  // The runtime's CRI state, which its server reads: on the serving thread (priority.h).
  if (listener_) RunServed([&] { listener_->SandboxReady(sandbox_info); });
  json waiting = {{"waiting", {{"reason", "PodInitializing"}}}};
  PublishStatus(
      *pod, {{"phase", "Pending"},
             {"hostIP", kNodeIp},
             {"podIP", ip},
             {"podIPs", pod_ips},
             {"startTime", Rfc3339(start)},
             {"conditions",
              {Condition("PodScheduled", true, start),
               Condition("Initialized", false, start, "ContainersNotInitialized"),
               Condition("ContainersReady", false, start, "ContainersNotReady"),
               Condition("Ready", false, start, "ContainersNotReady")}},
             {"initContainerStatuses", ContainerStatuses(podj, "initContainers", waiting, false, generation)},
             {"containerStatuses", ContainerStatuses(podj, "containers", waiting, false, generation)}});
  recorder_->Update(pod->uid, [&](PodRecord& r) { r.sandbox_ready = ready; });

  // 2. Downward API volume (it outlives sandboxes, like the pod's volume directory on a real node).
  {
    absl::MutexLock l(&pod->mu);
    if (pod->volumes.empty()) {
      ::mkdir(pod_dir.c_str(), 0755);
      for (auto& spec : DownwardVolumes(podj)) {
        std::string dir = absl::StrCat(pod_dir, "/", spec.volume);
        pod->volumes.emplace_back(std::move(spec), std::make_unique<DownwardVolume>(dir));
      }
      RefreshVolumeLocked(*pod);
    }
  }

  {
    absl::MutexLock l(&pod->mu);
    pod->netns_fd = pod_ns->fd();
    pod->dir = pod_dir;
  }
  auto teardown = [&] {
    SandboxEnd end = end_of_life();
    {
      absl::MutexLock l(&pod->mu);
      pod->netns_fd = -1;
    }
    if (listener_) RunServed([&] { listener_->SandboxRemoved(sandbox_info); });
    if (!cri_sandbox_id.empty()) {  // as kubelet: stop (CNI DEL, pause killed), then remove
      if (auto s = cri_sandboxes_->Stop(cri_sandbox_id); !s.ok())
        std::fprintf(stderr, "node %s: StopPodSandbox %s: %s\n", options_.name.c_str(),
                     cri_sandbox_id.c_str(), s.ToString().c_str());
      if (auto s = cri_sandboxes_->Remove(cri_sandbox_id); !s.ok())
        std::fprintf(stderr, "node %s: RemovePodSandbox %s: %s\n", options_.name.c_str(),
                     cri_sandbox_id.c_str(), s.ToString().c_str());
    }
    return end;  // `netns` goes with this frame
  };

  // 3. Init container: the real waiter, in the pod netns, as a non-root uid.
  absl::Time init_done = absl::Now();
  CaptureListeners capture;  // the sidecar stand-in's (mesh pods), opened when the waiter exits 0
  if (waiter) {
    std::string log =
        absl::StrCat(pod_dir, "/waiter", generation == 0 ? "" : absl::StrCat("-", generation), ".log");
    SpawnOptions so;
    so.argv = {options_.waiter_binary};
    if (waiter_spec.ok()) {
      const WaiterContainer& w = **waiter_spec;
      so.argv.insert(so.argv.end(), w.args.begin(), w.args.end());
      so.uid = w.uid.value_or(options_.app_uid);
      so.gid = w.gid.value_or(*so.uid);
    }
    so.netns_fd = pod_ns->fd();
    recorder_->Update(pod->uid, [&](PodRecord& r) {
      r.waiter_container = init_name;
      r.waiter_uid = so.uid.value_or(0);
      r.waiter_gid = so.gid.value_or(0);
      r.waiter_args.assign(so.argv.begin() + 1, so.argv.end());
      r.proxy_found = proxy.found;
      r.proxy_native_sidecar = proxy.native_sidecar;
      r.proxy_uid = proxy_uid;
      r.proxy_gid = proxy_gid;
    });
    so.log_path = log;
    int code;
    std::string message;
    {
      absl::StatusOr<ChildProcess> child = absl::UnavailableError("not started");
      {
        absl::MutexLock l(&pod->mu);
        if (!interrupted()) {
          child = !waiter_spec.ok()                ? absl::StatusOr<ChildProcess>(waiter_spec.status())
                  : options_.containerd != nullptr ? absl::UnavailableError("runtime containerd")
                  : options_.waiter_binary.empty() ? absl::FailedPreconditionError("no --waiter_binary")
                                                   : ChildProcess::Spawn(so);
          if (child.ok()) pod->waiter_pid = child->pid();
        }
      }
      if (options_.containerd != nullptr && waiter_spec.ok()) {
        auto result =
            RunCriWaiter(pod, cri_sandbox_id, cri_pod, init_name,
                         std::vector<std::string>(so.argv.begin() + 1, so.argv.end()), so.uid, so.gid, log);
        code = result.first;
        message = result.second;
      } else if (!child.ok()) {
        code = 127;
        message = child.status().ToString();
      } else {
        code = child->Wait();
        absl::MutexLock l(&pod->mu);
        pod->waiter_pid = -1;
      }
    }
    if (message.empty()) message = LastLine(log);
    init_done = absl::Now();
    // The mark as this node had it when the waiter let go (informational: a tenant can guess a cookie, so
    // the proof is the datapath check below, not the mark).
    std::string status, marked_for, probe;
    bool stopped;
    {
      absl::MutexLock l(&pod->mu);
      stopped = interrupted();
      auto get = [&](const char* key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pod->mu) {
        auto it = pod->annotations.find(key);
        return it == pod->annotations.end() ? std::string() : it->second;
      };
      status = get(kStatusAnnotation);
      marked_for = get(kNetnsAnnotation);
      probe = get(kProbeAnnotation);
    }
    ReleaseCheck check;
    if (code == 0 && !stopped) {
      // The sidecar stand-in's listeners, opened now (the waiter's probe needed the port until it exited).
      auto l = OpenCaptureListeners(*pod_ns, proxy_uid, proxy_gid);
      if (l.ok()) {
        capture = *std::move(l);
      } else {
        std::fprintf(stderr, "sidecar stand-in for %s: %s\n", pod->name.c_str(),
                     l.status().ToString().c_str());
      }
      std::optional<absl::MutexLock> serial;
      if (options_.containerd != nullptr) serial.emplace(&release_check_mu_);
      check = CheckInterceptionAtRelease({.pod = pod_ns,
                                          .client = client_ns,
                                          .pod_ip = ip,
                                          .client_ip = client_ip,
                                          .app_uid = options_.app_uid,
                                          .proxy_uid = proxy_uid,
                                          .proxy_gid = proxy_gid,
                                          .test_net_ip = options_.test_net_ip,
                                          .test_net_port = options_.test_net_port},
                                         capture);
    }
    const bool bound_here = status == "initialized" && marked_for == identity_text;
    recorder_->Update(pod->uid, [&](PodRecord& r) {
      r.waiter_exit = code;
      r.waiter_message = message;
      r.waiter_exited = init_done;
      r.binding_checked = true;
      r.marked_for_this_netns = bound_here;
      r.mark_at_release = absl::StrCat("status=", status.empty() ? "-" : status,
                                       " netns=", marked_for.empty() ? "-" : marked_for,
                                       " probe=", probe.empty() ? "-" : probe);
      r.binding_detail = absl::StrCat("sandbox netns inode ", identity.inode, ", identity ", identity_text);
      r.release_check = check;
      if (!r.sandboxes.empty()) {
        SandboxRecord& sb = r.sandboxes.back();
        sb.waiter_exit = code;
        sb.redirected_at_release = code == 0 && check.passed();
        if (code == 0) sb.release_summary = absl::StrCat(check.Summary(), "; mark then: ", r.mark_at_release);
      }
    });
    if (stopped) return teardown();
    if (code != 0) {
      json term = {{"terminated",
                    {{"exitCode", code},
                     {"reason", "Error"},
                     {"message", message},
                     {"startedAt", Rfc3339(start)},
                     {"finishedAt", Rfc3339(init_done)}}}};
      settle("Failed",
             {{"phase", "Failed"},
              {"reason", "InitContainerFailed"},
              {"message", absl::StrCat("init container ", init_name, " exited with ", code, ": ", message)},
              {"podIP", ip},
              {"podIPs", pod_ips},
              {"conditions",
               {Condition("PodScheduled", true, start),
                Condition("Initialized", false, init_done, "ContainersNotInitialized"),
                Condition("Ready", false, init_done, "PodFailed")}},
              {"initContainerStatuses", ContainerStatuses(podj, "initContainers", term, false, generation)}});
      return teardown();
    }
  }

  // 4. Containers: sidecar stand-in (mesh pods) and the app's outbound check.
  bool mesh = waiter || proxy.found;
  if (mesh && !waiter) {  // with a waiter they were opened when it exited
    auto l = OpenCaptureListeners(*pod_ns, proxy_uid, proxy_gid);
    if (l.ok()) {
      capture = *std::move(l);
    } else {
      std::fprintf(stderr, "sidecar stand-in for %s: %s\n", pod->name.c_str(), l.status().ToString().c_str());
    }
  }
  const nt::UniqueFd& outbound_listener = capture.outbound;
  nt::UniqueFd conn;
  absl::Status connect = nt::RunAs(options_.app_uid, options_.app_uid, pod_ns, [&]() -> absl::Status {
    auto c = nt::TcpConnect(options_.test_net_ip, options_.test_net_port,
                            mesh ? absl::Seconds(2) : options_.no_redirect_timeout);
    if (!c.ok()) return c.status();
    conn = std::move(*c);
    return absl::OkStatus();
  });
  bool intercepted = false;
  std::string detail;
  if (!connect.ok()) {
    if (absl::IsDeadlineExceeded(connect)) {
      detail = "connect timed out: not redirected (the node peer forwards nothing)";
    } else if (absl::StrContains(connect.message(), "unreachable") ||
               absl::StrContains(connect.message(), "No route to host")) {
      // Runtime containerd: the SYN left the pod through the CNI bridge and the node (no route off it)
      // answered with ICMP unreachable. A redirect to a port without a listener is refused instead.
      detail = absl::StrCat("connect failed at the node: not redirected (", connect.message(), ")");
    } else {
      detail = absl::StrCat("connect failed: ", connect.ToString(), " (redirected but no listener?)");
    }
  } else if (!outbound_listener.valid()) {
    detail = "connect succeeded without a sidecar: something answered for the TEST-NET address";
  } else {
    auto accepted = nt::Accept(outbound_listener.get(), absl::Seconds(2));
    if (!accepted.ok()) {
      detail = absl::StrCat("connected but nothing reached 15001: ", accepted.status().ToString());
    } else {
      auto dst = nt::OriginalDst(accepted->get());
      if (!dst.ok()) {
        detail = absl::StrCat("SO_ORIGINAL_DST: ", dst.status().ToString());
      } else if (dst->ip == options_.test_net_ip && dst->port == options_.test_net_port) {
        intercepted = true;
        detail = absl::StrCat("redirected to 15001, original destination ", dst->ToString());
      } else {
        detail = absl::StrCat("redirected to 15001 but original destination is ", dst->ToString());
      }
    }
  }
  // A pod outside the mesh must not have any netfilter table at all in its namespace.
  bool tables_checked = false;
  std::string tables;
  if (!mesh) {
    auto t = ListNetfilterTables(pod_ns->fd(), pod_dir + "/nft-tables.out");
    tables_checked = true;
    tables = t.ok() ? *t : absl::StrCat("probe failed: ", t.status().ToString());
  }
  recorder_->Update(pod->uid, [&](PodRecord& r) {
    r.tables_checked = tables_checked;
    r.netfilter_tables = tables;
    r.interception_checked = true;
    r.intercepted = intercepted;
    r.interception_detail = detail;
    if (intercepted) r.intercepted_at = absl::Now();
  });
  json terminated = {{"terminated",
                      {{"exitCode", 0},
                       {"reason", "Completed"},
                       {"startedAt", Rfc3339(start)},
                       {"finishedAt", Rfc3339(init_done)}}}};
  json running = {{"running", {{"startedAt", Rfc3339(absl::Now())}}}};
  settle("Running",
         {{"phase", "Running"},
          {"hostIP", kNodeIp},
          {"podIP", ip},
          {"podIPs", pod_ips},
          {"startTime", Rfc3339(start)},
          {"conditions",
           {Condition("PodScheduled", true, start), Condition("Initialized", true, init_done),
            Condition("ContainersReady", true, absl::Now()), Condition("Ready", true, absl::Now())}},
          {"initContainerStatuses",
           ContainerStatuses(podj, "initContainers", terminated, false, generation, running)},
          {"containerStatuses", ContainerStatuses(podj, "containers", running, true, generation)}});
  conn = nt::UniqueFd();
  capture = CaptureListeners();
  return teardown();
}

}  // namespace pnc::sim
