#include "simulator/daemonset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "simulator/loopback_port.h"

namespace pnc::sim {

using nlohmann::json;

namespace {

bool SelectorMatches(const json& selector, const json& labels) {
  if (!selector.is_object()) return true;
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    if (!labels.is_object() || !labels.contains(it.key()) || labels[it.key()] != it.value()) return false;
  }
  return true;
}

}  // namespace

class FakeDaemonSets::Sink : public WatchSink {
 public:
  explicit Sink(FakeDaemonSets* owner) : owner_(owner) {}
  void OnEvent(const std::string& type, const ObjectPtr& obj, uint64_t, const EventLine&) override {
    if (type == "BOOKMARK") return;
    std::string key =
        absl::StrCat(FieldValue(*obj, "metadata.namespace"), "/", FieldValue(*obj, "metadata.name"));
    absl::MutexLock l(&owner_->events_mu_);
    owner_->events_.emplace_back(key, type == "DELETED" ? nullptr : obj);
  }
  void OnClosed() override {}
  bool WantsLine() const override { return false; }
  bool Droppable() const override { return false; }

 private:
  FakeDaemonSets* owner_;
};

FakeDaemonSets::FakeDaemonSets(Store* store, DaemonSetOptions options, std::vector<DaemonSetNode> nodes)
    : store_(store), options_(std::move(options)), nodes_(std::move(nodes)) {}

FakeDaemonSets::~FakeDaemonSets() { Stop(); }

absl::Status FakeDaemonSets::Start() {
  sink_ = std::make_shared<Sink>(this);
  auto id = store_->Watch(Resource::kDaemonSets, "", {.resource_version = "0"}, sink_);
  if (!id.ok()) return id.status();
  watch_id_ = *id;
  loop_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void FakeDaemonSets::Stop() {
  {
    absl::MutexLock l(&events_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (watch_id_ != 0) store_->Unwatch(watch_id_);
  if (loop_.joinable()) loop_.join();
}

void FakeDaemonSets::Note(const std::string& line) {
  history_.push_back(absl::StrCat(absl::FormatTime("%H:%M:%E3S ", absl::Now(), absl::LocalTimeZone()), line));
}

void FakeDaemonSets::Loop() {
  std::map<std::string, ObjectPtr> live;  // DaemonSets as last seen
  while (true) {
    std::deque<std::pair<std::string, ObjectPtr>> batch;
    {
      absl::MutexLock l(&events_mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return !events_.empty() || stopping_; };
      events_mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
      batch.swap(events_);
      if (stopping_) break;
    }
    for (auto& [key, obj] : batch) {
      if (obj) {
        live[key] = obj;
      } else {
        live.erase(key);
      }
      Reconcile(key, obj);
    }
    // Readiness changes show up in the status without a DaemonSet event.
    if (batch.empty()) {
      for (const auto& [key, obj] : live) Reconcile(key, obj);
    }
  }
  absl::MutexLock l(&mu_);
  std::vector<std::string> keys;
  for (const auto& [k, p] : pods_) keys.push_back(k);
  for (const auto& k : keys) StopPod(k);
}

void FakeDaemonSets::StopPod(const std::string& pod_key) {
  auto it = pods_.find(pod_key);
  if (it == pods_.end()) return;
  if (it->second.process) {
    it->second.process->Signal(SIGTERM);
    std::optional<int> code =
        it->second.process->WaitFor(absl::Seconds(30));  // terminationGracePeriodSeconds
    if (!code) {
      it->second.process->Signal(SIGKILL);
      code = it->second.process->Wait();
    }
    Note(absl::StrCat("stopped ", pod_key, " (generation ", it->second.generation, ", exit ", *code, ")"));
  }
  pods_.erase(it);
}

void FakeDaemonSets::Reconcile(const std::string& key, const ObjectPtr& ds) {
  absl::MutexLock l(&mu_);
  if (ds == nullptr) {  // deleted: its pods go
    std::vector<std::string> mine;
    for (const auto& [k, p] : pods_) {
      if (absl::StartsWith(k, key + "@")) mine.push_back(k);
    }
    for (const auto& k : mine) StopPod(k);
    return;
  }
  const json& obj = *ds;
  if (obj["metadata"].contains("deletionTimestamp")) return;
  const int64_t generation = obj["metadata"].value("generation", int64_t{1});
  const json& tmpl = obj["spec"]["template"];
  const json& pod_spec = tmpl["spec"];
  int desired = 0, updated = 0, ready = 0;
  for (const auto& node : nodes_) {
    auto n = store_->Get(Resource::kNodes, "", node.name);
    json labels = n.ok() ? (**n)["metadata"].value("labels", json::object()) : json::object();
    std::string pod_key = absl::StrCat(key, "@", node.name);
    if (!SelectorMatches(pod_spec.value("nodeSelector", json::object()), labels)) {
      StopPod(pod_key);
      continue;
    }
    ++desired;
    auto it = pods_.find(pod_key);
    if (it != pods_.end() && it->second.generation != generation) {
      StopPod(pod_key);  // RollingUpdate, one node at a time (this loop is sequential)
      it = pods_.end();
    }
    if (it != pods_.end() && it->second.process && it->second.process->WaitFor(absl::ZeroDuration())) {
      Note(absl::StrCat(pod_key, " exited with ", *it->second.process->WaitFor(absl::ZeroDuration()),
                        "; restarting"));
      pods_.erase(it);
      it = pods_.end();
    }
    if (it == pods_.end()) {
      std::string ds_name = FieldValue(obj, "metadata.name");
      NodeRuntime rt{node.name, node.cri_endpoint, absl::StrCat(ds_name, "-", node.name),
                     FieldValue(obj, "metadata.namespace"),
                     absl::StrCat(options_.work_dir, "/ds-", ds_name, "-", node.name)};
      auto mapped = MapContainer(pod_spec, pod_spec["containers"][0], rt, options_.images);
      DsPod pod;
      pod.generation = generation;
      if (!mapped.ok()) {
        Note(absl::StrCat("cannot run ", pod_key, ": ", mapped.status().ToString()));
      } else {
        mapped->spawn.log_path = absl::StrCat(options_.work_dir, "/ds-", ds_name, "-", node.name, ".log");
        mapped->spawn.nice = 0;  // the system under test runs like any process on a node (priority.h)
        auto child = ChildProcess::Spawn(mapped->spawn);
        if (!child.ok()) {
          Note(absl::StrCat("cannot start ", pod_key, ": ", child.status().ToString()));
        } else {
          Note(absl::StrCat("started ", pod_key, " (generation ", generation, ", pid ", child->pid(),
                            "): ", absl::StrJoin(mapped->spawn.argv, " ")));
          pod.process.emplace(*std::move(child));
          pod.metrics_port = mapped->metrics_port;
        }
      }
      it = pods_.emplace(pod_key, std::move(pod)).first;
    }
    ++updated;
    if (it->second.process && HttpGetOk(it->second.metrics_port, "/readyz")) ++ready;
  }
  json status = {{"observedGeneration", generation},
                 {"desiredNumberScheduled", desired},
                 {"currentNumberScheduled", desired},
                 {"updatedNumberScheduled", updated},
                 {"numberReady", ready},
                 {"numberAvailable", ready},
                 {"numberUnavailable", desired - ready},
                 {"numberMisscheduled", 0}};
  if (obj.value("status", json::object()) == status) return;
  (void)store_->Patch(Resource::kDaemonSets, FieldValue(obj, "metadata.namespace"),
                      FieldValue(obj, "metadata.name"), PatchType::kMerge, {{"status", status}},
                      Subresource::kStatus);
}

int FakeDaemonSets::Running() const {
  absl::MutexLock l(&mu_);
  int n = 0;
  for (const auto& [k, p] : pods_) n += p.process.has_value();
  return n;
}

std::vector<std::string> FakeDaemonSets::History() const {
  absl::MutexLock l(&mu_);
  return history_;
}

std::map<std::string, pid_t> FakeDaemonSets::Pids() const {
  absl::MutexLock l(&mu_);
  std::map<std::string, pid_t> out;
  for (const auto& [k, p] : pods_) {
    if (p.process) out[k] = p.process->pid();
  }
  return out;
}

}  // namespace pnc::sim
