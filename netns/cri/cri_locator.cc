#include "netns/cri/cri_locator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

class CriLocator : public Locator {
 public:
  CriLocator(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout, std::string endpoint)
      : stub_(runtime::v1::RuntimeService::NewStub(channel)),
        timeout_(timeout),
        endpoint_(std::move(endpoint)) {}

  std::string Name() const override { return "cri"; }

  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override {
    if (pod.uid.empty()) return absl::InvalidArgumentError("pod uid is empty");
    runtime::v1::ListPodSandboxRequest list_req;
    (*list_req.mutable_filter()->mutable_label_selector())[kUidLabel] = pod.uid;
    list_req.mutable_filter()->mutable_state()->set_state(runtime::v1::SANDBOX_READY);
    runtime::v1::ListPodSandboxResponse list_resp;
    {
      grpc::ClientContext ctx;
      SetDeadline(ctx);
      grpc::Status s = stub_->ListPodSandbox(&ctx, list_req, &list_resp);
      if (!s.ok()) return FromGrpc(s, absl::StrCat("ListPodSandbox at ", endpoint_));
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
      grpc::Status s = stub_->PodSandboxStatus(&ctx, st_req, &st_resp);
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
  void SetDeadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  }

  std::unique_ptr<runtime::v1::RuntimeService::Stub> stub_;
  absl::Duration timeout_;
  std::string endpoint_;
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
  // A restarted runtime must be reachable again within seconds, not after gRPC's default 2-minute backoff
  // cap.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Locator>> NewCriLocator(const std::string& endpoint,
                                                       absl::Duration call_timeout) {
  absl::StatusOr<std::string> target = GrpcTarget(endpoint);
  if (!target.ok()) return target.status();
  if (call_timeout <= absl::ZeroDuration())
    return absl::InvalidArgumentError("CRI call timeout must be positive");
  return std::unique_ptr<Locator>(new CriLocator(NewChannel(*target), call_timeout, *target));
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
