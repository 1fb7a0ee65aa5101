#include "netns/cri/cri_locator.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "netns/cri/cri_api.pb.h"
#include "netns/cri/grpc_unary.h"

namespace pnc::netns {
namespace {

constexpr char kUidLabel[] = "io.kubernetes.pod.uid";

// The call's status with context; containerd's CRI plugin answers every call UNKNOWN "server is not
// initialized yet" while it restores its state after a restart: the runtime's unavailability, not a failure.
absl::Status WithContext(const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("CRI ", s.message()));
}

absl::Status FromCri(const absl::Status& s, const std::string& what) {
  std::string msg = absl::StrCat("CRI ", what, ": ", s.message());
  if (absl::IsUnknown(s) && absl::StrContains(s.message(), "server is not initialized yet"))
    return absl::UnavailableError(msg);
  return absl::Status(s.code(), msg);
}

// Where the sandbox's netns can be opened, best first: runtimeSpec.linux.namespaces[type=network].path (a
// /var/run/netns file, visible only if the controller mounts that directory), then /proc/<info.pid>/ns/net
// (needs hostPID). Untrusted input: parsed without exceptions, every type checked.
absl::StatusOr<std::vector<std::string>> NetnsCandidatesFromInfo(const std::string& info) {
  nlohmann::json j = nlohmann::json::parse(info, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InternalError("CRI verbose info is not a JSON object");
  std::vector<std::string> out;
  auto spec = j.find("runtimeSpec");
  if (spec != j.end() && spec->is_object()) {
    auto linux_it = spec->find("linux");
    if (linux_it != spec->end() && linux_it->is_object()) {
      auto ns = linux_it->find("namespaces");
      if (ns != linux_it->end() && ns->is_array()) {
        for (const auto& n : *ns) {
          if (!n.is_object()) continue;
          auto type = n.find("type");
          auto path = n.find("path");
          if (type != n.end() && type->is_string() && *type == "network" && path != n.end() &&
              path->is_string() && !path->get<std::string>().empty()) {
            std::string p = path->get<std::string>();
            if (p.front() != '/') {
              return absl::InternalError(absl::StrCat("CRI netns path is not absolute: ", p));
            }
            out.push_back(std::move(p));
            break;
          }
        }
      }
    }
  }
  auto pid = j.find("pid");
  if (pid != j.end() && pid->is_number_integer() && pid->get<int64_t>() > 0 &&
      pid->get<int64_t>() < (1 << 30)) {
    out.push_back(absl::StrCat("/proc/", pid->get<int64_t>(), "/ns/net"));
  }
  if (out.empty())
    return absl::InternalError("CRI verbose info has neither a network namespace path nor a pid");
  return out;
}

constexpr char kService[] = "/runtime.v1.RuntimeService/";

// Pods whose sandbox was found, by pod UID -> sandbox id; bounded (cleared when full: only a cost).
constexpr size_t kMaxKnownSandboxes = 4096;

class CriLocator : public Locator {
 public:
  CriLocator(std::string endpoint, std::unique_ptr<GrpcUnaryClient> client, absl::Duration timeout)
      : endpoint_(std::move(endpoint)), client_(std::move(client)), timeout_(timeout) {}

  std::string Name() const override { return "cri"; }

  // ListPodSandbox(state READY) without a label filter: every ready sandbox on the node in one call. The
  // newest ready sandbox of each pod becomes that pod's known sandbox (replacing all that was known), so its
  // next Locate is one PodSandboxStatus, which re-checks state, uid and name itself.
  absl::StatusOr<std::vector<std::string>> ReadyPodUids() override {
    runtime::v1::ListPodSandboxRequest req;
    req.mutable_filter()->mutable_state()->set_state(runtime::v1::SANDBOX_READY);
    runtime::v1::ListPodSandboxIdentities resp;  // every sandbox of the node: no labels / annotations maps
    if (absl::Status s = client_->Call(absl::StrCat(kService, "ListPodSandbox"), req, resp, timeout_);
        !s.ok()) {
      return FromCri(s, absl::StrCat("ListPodSandbox at ", endpoint_));
    }
    absl::flat_hash_map<std::string, const runtime::v1::PodSandboxIdentity*> newest;
    for (const auto& item : resp.items()) {
      if (item.metadata().uid().empty() || item.state() != runtime::v1::SANDBOX_READY) continue;
      const runtime::v1::PodSandboxIdentity*& best = newest[item.metadata().uid()];
      if (best == nullptr || item.created_at() > best->created_at()) best = &item;
    }
    // The answer is every ready sandbox: it replaces what was known (a pod not in it has no ready sandbox, so
    // its entry would only cost a futile call; and the map stays as small as the node's ready sandboxes).
    std::vector<std::string> uids;
    uids.reserve(newest.size());
    absl::flat_hash_map<std::string, std::string> known;
    for (const auto& [uid, item] : newest) {
      if (known.size() < kMaxKnownSandboxes) known.emplace(uid, item->id());
      uids.push_back(uid);
    }
    absl::MutexLock lock(&mu_);
    known_ = std::move(known);
    return uids;
  }

  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override {
    if (pod.uid.empty()) return absl::InvalidArgumentError("pod uid is empty");
    // The sandbox this pod was found in before, while the runtime still reports it READY for this pod: one
    // call instead of two. The kubelet stops a pod's sandbox before it creates another one, so a sandbox
    // still READY is the pod's current one; any other answer takes the full lookup below.
    if (std::optional<std::string> id = Known(pod.uid)) {
      absl::StatusOr<NetnsHandle> h = FromStatus(pod, *id, /*require_ready=*/true);
      if (h.ok() || absl::IsUnavailable(h.status()) || absl::IsDeadlineExceeded(h.status())) return h;
      Forget(pod.uid);
    }
    runtime::v1::ListPodSandboxRequest list_req;
    (*list_req.mutable_filter()->mutable_label_selector())[kUidLabel] = pod.uid;
    list_req.mutable_filter()->mutable_state()->set_state(runtime::v1::SANDBOX_READY);
    runtime::v1::ListPodSandboxResponse list_resp;
    if (absl::Status s =
            client_->Call(absl::StrCat(kService, "ListPodSandbox"), list_req, list_resp, timeout_);
        !s.ok()) {
      return FromCri(s, absl::StrCat("ListPodSandbox at ", endpoint_));
    }
    // The newest ready sandbox of this pod (a restarted sandbox has a higher attempt). Re-check what the
    // runtime's filter should have done: never trust a sandbox of another pod.
    const runtime::v1::PodSandbox* best = nullptr;
    for (const auto& item : list_resp.items()) {
      if (item.metadata().uid() != pod.uid || item.state() != runtime::v1::SANDBOX_READY) continue;
      if (best == nullptr || item.created_at() > best->created_at()) best = &item;
    }
    if (best == nullptr) {
      return absl::NotFoundError(absl::StrCat("CRI: no ready sandbox for pod uid ", pod.uid, " yet"));
    }
    if (absl::Status s = SameName(pod, best->id(), best->metadata()); !s.ok()) return s;
    absl::StatusOr<NetnsHandle> h = FromStatus(pod, best->id(), /*require_ready=*/false);
    if (h.ok()) Remember(pod.uid, best->id());
    return h;
  }

 private:
  static absl::Status SameName(const PodRef& pod, const std::string& id,
                               const runtime::v1::PodSandboxMetadata& m) {
    if ((!pod.name.empty() && m.name() != pod.name) ||
        (!pod.namespace_name.empty() && m.namespace_() != pod.namespace_name)) {
      return absl::FailedPreconditionError(absl::StrCat("CRI: sandbox ", id, " of uid ", pod.uid, " is ",
                                                        m.namespace_(), "/", m.name(), ", expected ",
                                                        pod.namespace_name, "/", pod.name));
    }
    return absl::OkStatus();
  }

  // PodSandboxStatus(verbose) of sandbox `id` -> its network namespace, after the cross-checks.
  // require_ready: the sandbox must still be READY and belong to `pod` (NotFound otherwise).
  absl::StatusOr<NetnsHandle> FromStatus(const PodRef& pod, const std::string& id, bool require_ready) {
    runtime::v1::PodSandboxStatusRequest st_req;
    st_req.set_pod_sandbox_id(id);
    st_req.set_verbose(true);
    runtime::v1::PodSandboxStatusResponse st_resp;
    if (absl::Status s = client_->Call(absl::StrCat(kService, "PodSandboxStatus"), st_req, st_resp, timeout_);
        !s.ok()) {
      return FromCri(s, absl::StrCat("PodSandboxStatus ", id));
    }
    if (require_ready) {
      const runtime::v1::PodSandboxStatus& st = st_resp.status();
      if (st.state() != runtime::v1::SANDBOX_READY || st.metadata().uid() != pod.uid)
        return absl::NotFoundError(
            absl::StrCat("CRI: sandbox ", id, " is no longer the pod's ready sandbox"));
      if (absl::Status s = SameName(pod, id, st.metadata()); !s.ok()) return s;
    }
    const std::string& runtime_ip = st_resp.status().network().ip();
    if (!runtime_ip.empty() && !pod.ips.empty() &&
        std::find(pod.ips.begin(), pod.ips.end(), runtime_ip) == pod.ips.end()) {
      return absl::FailedPreconditionError(absl::StrCat("CRI: sandbox ", id, " has IP ", runtime_ip,
                                                        " but the pod has ", absl::StrJoin(pod.ips, ",")));
    }
    auto info = st_resp.info().find("info");
    if (info == st_resp.info().end()) {
      return absl::InternalError(absl::StrCat("CRI: PodSandboxStatus(verbose) of ", id,
                                              " has no info[\"info\"]; runtime not supported"));
    }
    absl::StatusOr<std::vector<std::string>> candidates = NetnsCandidatesFromInfo(info->second);
    if (!candidates.ok()) return candidates.status();
    // Only "not there" moves on to the next candidate; a refusal (host netns, not a namespace) is final.
    absl::Status last;
    for (const std::string& path : *candidates) {
      absl::StatusOr<NetnsHandle> handle = NetnsHandle::Open(path);
      if (handle.ok()) return handle;
      last = absl::Status(handle.status().code(),
                          absl::StrCat("CRI: sandbox ", id, ": ", handle.status().message()));
      if (!absl::IsNotFound(handle.status())) return last;
    }
    return last;
  }

  std::optional<std::string> Known(const std::string& uid) {
    absl::MutexLock lock(&mu_);
    auto it = known_.find(uid);
    if (it == known_.end()) return std::nullopt;
    return it->second;
  }
  void Remember(const std::string& uid, const std::string& id) {
    absl::MutexLock lock(&mu_);
    if (known_.size() >= kMaxKnownSandboxes) known_.clear();
    known_[uid] = id;
  }
  void Forget(const std::string& uid) {
    absl::MutexLock lock(&mu_);
    known_.erase(uid);
  }

  const std::string endpoint_;
  const std::unique_ptr<GrpcUnaryClient> client_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Locator>> NewCriLocator(const std::string& endpoint,
                                                       absl::Duration call_timeout) {
  if (call_timeout <= absl::ZeroDuration())
    return absl::InvalidArgumentError("CRI call timeout must be positive");
  absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> client = NewCurlGrpcUnaryClient(endpoint);
  if (!client.ok()) return WithContext(client.status());
  return std::unique_ptr<Locator>(new CriLocator(endpoint, *std::move(client), call_timeout));
}

absl::StatusOr<std::string> CriRuntimeVersion(const std::string& endpoint, absl::Duration call_timeout) {
  absl::StatusOr<std::unique_ptr<GrpcUnaryClient>> client = NewCurlGrpcUnaryClient(endpoint);
  if (!client.ok()) return WithContext(client.status());
  runtime::v1::VersionRequest req;
  req.set_version("v1");
  runtime::v1::VersionResponse resp;
  if (absl::Status s = (*client)->Call(absl::StrCat(kService, "Version"), req, resp, call_timeout); !s.ok())
    return FromCri(s, absl::StrCat("Version at ", endpoint));
  return absl::StrCat(resp.runtime_name(), " ", resp.runtime_version(), " (CRI ", resp.runtime_api_version(),
                      ")");
}

}  // namespace pnc::netns
