#include "netns/cri/cri_locator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "netns/cri/cri_api.grpc.pb.h"

namespace pnc::netns {
namespace {

constexpr char kUidLabel[] = "io.kubernetes.pod.uid";
constexpr size_t kMaxUnixPath = 107;

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  std::string msg = absl::StrCat("CRI ", what, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(msg);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(msg);
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(msg);
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(msg);
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::UnimplementedError(msg);
    case grpc::StatusCode::UNKNOWN:
      // containerd's CRI plugin answers every call this way while it restores its state after a restart.
      if (absl::StrContains(s.error_message(), "server is not initialized yet"))
        return absl::UnavailableError(msg);
      return absl::UnknownError(msg);
    default:
      return absl::UnknownError(absl::StrCat(msg, " (grpc code ", s.error_code(), ")"));
  }
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

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target);

const char* StateName(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE:
      return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
      return "CONNECTING";
    case GRPC_CHANNEL_READY:
      return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
      return "SHUTDOWN";
  }
  return "?";
}

// One channel to the runtime and its stub. Replaced as a whole, never mutated.
struct Connection {
  explicit Connection(const std::string& target)
      : channel(NewChannel(target)), stub(runtime::v1::RuntimeService::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> stub;
};

class CriLocator : public Locator {
 public:
  CriLocator(std::string target, absl::Duration timeout)
      : target_(std::move(target)),
        timeout_(timeout),
        connect_timeout_(std::min(timeout, kConnectTimeout)),
        conn_(std::make_shared<Connection>(target_)) {}

  std::string Name() const override { return "cri"; }

  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override {
    if (pod.uid.empty()) return absl::InvalidArgumentError("pod uid is empty");
    absl::StatusOr<std::shared_ptr<Connection>> conn = Connected();
    if (!conn.ok()) return conn.status();
    runtime::v1::RuntimeService::Stub& stub = *(*conn)->stub;
    runtime::v1::ListPodSandboxRequest list_req;
    (*list_req.mutable_filter()->mutable_label_selector())[kUidLabel] = pod.uid;
    list_req.mutable_filter()->mutable_state()->set_state(runtime::v1::SANDBOX_READY);
    runtime::v1::ListPodSandboxResponse list_resp;
    {
      grpc::ClientContext ctx;
      SetDeadline(ctx);
      grpc::Status s = stub.ListPodSandbox(&ctx, list_req, &list_resp);
      if (!s.ok()) return FromGrpc(s, absl::StrCat("ListPodSandbox at ", target_));
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
    if ((!pod.name.empty() && best->metadata().name() != pod.name) ||
        (!pod.namespace_name.empty() && best->metadata().namespace_() != pod.namespace_name)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "CRI: sandbox ", best->id(), " of uid ", pod.uid, " is ", best->metadata().namespace_(), "/",
          best->metadata().name(), ", expected ", pod.namespace_name, "/", pod.name));
    }

    runtime::v1::PodSandboxStatusRequest st_req;
    st_req.set_pod_sandbox_id(best->id());
    st_req.set_verbose(true);
    runtime::v1::PodSandboxStatusResponse st_resp;
    {
      grpc::ClientContext ctx;
      SetDeadline(ctx);
      grpc::Status s = stub.PodSandboxStatus(&ctx, st_req, &st_resp);
      if (!s.ok()) return FromGrpc(s, absl::StrCat("PodSandboxStatus ", best->id()));
    }
    const std::string& runtime_ip = st_resp.status().network().ip();
    if (!runtime_ip.empty() && !pod.ips.empty() &&
        std::find(pod.ips.begin(), pod.ips.end(), runtime_ip) == pod.ips.end()) {
      return absl::FailedPreconditionError(absl::StrCat("CRI: sandbox ", best->id(), " has IP ", runtime_ip,
                                                        " but the pod has ", absl::StrJoin(pod.ips, ",")));
    }
    auto info = st_resp.info().find("info");
    if (info == st_resp.info().end()) {
      return absl::InternalError(absl::StrCat("CRI: PodSandboxStatus(verbose) of ", best->id(),
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
                          absl::StrCat("CRI: sandbox ", best->id(), ": ", handle.status().message()));
      if (!absl::IsNotFound(handle.status())) return last;
    }
    return last;
  }

 private:
  // A connection that is READY, or Unavailable once a connection attempt failed (the runtime is down or
  // restarting: the runtime's failure, never the pod's NotFound).
  //
  // Why not just call: a gRPC channel whose connection broke serves every fail-fast call the cached connect
  // error until its reconnect backoff (exponential, up to the channel's cap) runs out, so after a ~3 s
  // runtime restart locates kept failing for another ~2 s (up to the cap) although the runtime answered. Here
  // a channel in TRANSIENT_FAILURE is replaced by a fresh one (its own subchannel pool, so no inherited
  // backoff) that dials at once; at most one replacement per kMinRebuildInterval, so an outage costs one
  // connect attempt (~50 us on a unix socket) per interval, not one per pod.
  absl::StatusOr<std::shared_ptr<Connection>> Connected() {
    std::shared_ptr<Connection> conn;
    {
      absl::MutexLock lock(&mu_);
      conn = conn_;
    }
    grpc_connectivity_state state = conn->channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return conn;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
      absl::MutexLock lock(&mu_);
      absl::Time now = absl::Now();
      if (conn_ == conn && now - last_rebuild_ >= kMinRebuildInterval) {
        conn_ = std::make_shared<Connection>(target_);
        last_rebuild_ = now;
      }
      conn = conn_;
      // IDLE for a new channel (GetState(true) starts its first attempt); TRANSIENT_FAILURE when a channel
      // made less than kMinRebuildInterval ago already failed: that answer is fresh enough.
      state = conn->channel->GetState(/*try_to_connect=*/true);
    }
    // Wait for the attempt in progress to end: READY, or TRANSIENT_FAILURE (refused, no socket: at once).
    // gRPC's TRANSIENT_FAILURE is sticky across the channel's own retries, so it ends the wait.
    const absl::Time deadline = absl::Now() + connect_timeout_;
    while (state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) {
      if (!conn->channel->WaitForStateChange(state, absl::ToChronoTime(deadline))) break;
      state = conn->channel->GetState(/*try_to_connect=*/true);
    }
    if (state == GRPC_CHANNEL_READY) return conn;
    return absl::UnavailableError(absl::StrCat("CRI runtime at ", target_, " unreachable (channel ",
                                               StateName(state), "): runtime down or restarting"));
  }

  void SetDeadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  }

  static constexpr absl::Duration kConnectTimeout = absl::Milliseconds(500);
  static constexpr absl::Duration kMinRebuildInterval = absl::Milliseconds(20);

  const std::string target_;
  const absl::Duration timeout_;
  const absl::Duration connect_timeout_;
  absl::Mutex mu_;
  std::shared_ptr<Connection> conn_ ABSL_GUARDED_BY(mu_);
  absl::Time last_rebuild_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// "unix:/path" or "unix-abstract:name" as gRPC dials it.
absl::StatusOr<std::string> GrpcTarget(const std::string& endpoint) {
  if (absl::StartsWith(endpoint, "unix-abstract:")) return endpoint;
  std::string path = endpoint;
  if (absl::StartsWith(path, "unix://")) {
    path = path.substr(7);
  } else if (absl::StartsWith(path, "unix:")) {
    path = path.substr(5);
  }
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "CRI endpoint must be an absolute unix socket path or unix-abstract:NAME, got ", endpoint));
  }
  if (path.size() > kMaxUnixPath) {
    return absl::InvalidArgumentError(absl::StrCat("CRI socket path longer than 107 bytes: ", path));
  }
  return absl::StrCat("unix:", path);
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);  // verbose info can be large; runtimes cap their own
  // A restarted runtime must be reachable again at once, not after gRPC's default 2-minute backoff cap: the
  // channel's own reconnects stay short (a unix socket connect costs microseconds), and a channel in
  // TRANSIENT_FAILURE is replaced (CriLocator::Connected). Its own subchannel pool: otherwise a new channel
  // to the same target would share the old subchannel and its backoff state.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Locator>> NewCriLocator(const std::string& endpoint,
                                                       absl::Duration call_timeout) {
  absl::StatusOr<std::string> target = GrpcTarget(endpoint);
  if (!target.ok()) return target.status();
  if (call_timeout <= absl::ZeroDuration())
    return absl::InvalidArgumentError("CRI call timeout must be positive");
  return std::unique_ptr<Locator>(new CriLocator(*target, call_timeout));
}

absl::StatusOr<std::string> CriRuntimeVersion(const std::string& endpoint, absl::Duration call_timeout) {
  absl::StatusOr<std::string> target = GrpcTarget(endpoint);
  if (!target.ok()) return target.status();
  auto stub = runtime::v1::RuntimeService::NewStub(NewChannel(*target));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout));
  runtime::v1::VersionRequest req;
  req.set_version("v1");
  runtime::v1::VersionResponse resp;
  grpc::Status s = stub->Version(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("Version at ", *target));
  return absl::StrCat(resp.runtime_name(), " ", resp.runtime_version(), " (CRI ", resp.runtime_api_version(),
                      ")");
}

}  // namespace pnc::netns
