#include "netns/cri/testing/sandbox_client.h"

#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "netns/cri/cri_api.grpc.pb.h"

namespace pnc::netns::cri_testing {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("CRI ", what, ": ", s.error_message()));
}

}  // namespace

class SandboxClient::Impl {
 public:
  Impl(const std::string& endpoint, absl::Duration timeout)
      : stub_(runtime::v1::RuntimeService::NewStub(
            grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()))),
        timeout_(timeout) {}

  template <typename Req, typename Resp, typename Call>
  absl::Status Invoke(const std::string& what, const Req& req, Resp* resp, Call call) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    return FromGrpc(((*stub_).*call)(&ctx, req, resp), what);
  }

  std::unique_ptr<runtime::v1::RuntimeService::Stub> stub_;
  absl::Duration timeout_;
};

SandboxClient::SandboxClient(const std::string& endpoint, absl::Duration call_timeout)
    : impl_(std::make_unique<Impl>(endpoint, call_timeout)) {}
SandboxClient::~SandboxClient() = default;

absl::StatusOr<std::string> SandboxClient::Run(const PodSpec& pod) {
  runtime::v1::RunPodSandboxRequest req;
  runtime::v1::PodSandboxConfig* c = req.mutable_config();
  c->mutable_metadata()->set_name(pod.name);
  c->mutable_metadata()->set_uid(pod.uid);
  c->mutable_metadata()->set_namespace_(pod.namespace_name);
  c->mutable_metadata()->set_attempt(pod.attempt);
  c->set_hostname(pod.name);
  (*c->mutable_labels())["io.kubernetes.pod.uid"] = pod.uid;
  (*c->mutable_labels())["io.kubernetes.pod.name"] = pod.name;
  (*c->mutable_labels())["io.kubernetes.pod.namespace"] = pod.namespace_name;
  if (!pod.cgroup_parent.empty()) c->mutable_linux()->set_cgroup_parent(pod.cgroup_parent);
  if (!pod.log_directory.empty()) c->set_log_directory(pod.log_directory);
  runtime::v1::RunPodSandboxResponse resp;
  absl::Status s = impl_->Invoke(absl::StrCat("RunPodSandbox ", pod.namespace_name, "/", pod.name), req,
                                 &resp, &runtime::v1::RuntimeService::Stub::RunPodSandbox);
  if (!s.ok()) return s;
  return resp.pod_sandbox_id();
}

absl::Status SandboxClient::Stop(const std::string& sandbox_id) {
  runtime::v1::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  runtime::v1::StopPodSandboxResponse resp;
  return impl_->Invoke(absl::StrCat("StopPodSandbox ", sandbox_id), req, &resp,
                       &runtime::v1::RuntimeService::Stub::StopPodSandbox);
}

absl::Status SandboxClient::Remove(const std::string& sandbox_id) {
  runtime::v1::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  runtime::v1::RemovePodSandboxResponse resp;
  return impl_->Invoke(absl::StrCat("RemovePodSandbox ", sandbox_id), req, &resp,
                       &runtime::v1::RuntimeService::Stub::RemovePodSandbox);
}

absl::StatusOr<SandboxFacts> SandboxClient::Status(const std::string& sandbox_id) {
  runtime::v1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  req.set_verbose(true);
  runtime::v1::PodSandboxStatusResponse resp;
  absl::Status s = impl_->Invoke(absl::StrCat("PodSandboxStatus ", sandbox_id), req, &resp,
                                 &runtime::v1::RuntimeService::Stub::PodSandboxStatus);
  if (!s.ok()) return s;
  SandboxFacts f;
  f.id = resp.status().id();
  f.ready = resp.status().state() == runtime::v1::SANDBOX_READY;
  f.ip = resp.status().network().ip();
  auto info = resp.info().find("info");
  if (info != resp.info().end()) {
    nlohmann::json j = nlohmann::json::parse(info->second, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      if (j.contains("pid") && j["pid"].is_number_integer()) f.pid = j["pid"].get<int>();
      const nlohmann::json* ns = nullptr;
      if (j.contains("runtimeSpec") && j["runtimeSpec"].is_object() && j["runtimeSpec"].contains("linux") &&
          j["runtimeSpec"]["linux"].is_object() && j["runtimeSpec"]["linux"].contains("namespaces"))
        ns = &j["runtimeSpec"]["linux"]["namespaces"];
      if (ns != nullptr && ns->is_array()) {
        for (const auto& n : *ns) {
          if (n.is_object() && n.value("type", "") == "network") f.netns_path = n.value("path", "");
        }
      }
    }
  }
  return f;
}

absl::StatusOr<std::vector<std::string>> SandboxClient::ListIds() {
  runtime::v1::ListPodSandboxRequest req;
  runtime::v1::ListPodSandboxResponse resp;
  absl::Status s =
      impl_->Invoke("ListPodSandbox", req, &resp, &runtime::v1::RuntimeService::Stub::ListPodSandbox);
  if (!s.ok()) return s;
  std::vector<std::string> ids;
  for (const auto& item : resp.items()) ids.push_back(item.id());
  return ids;
}

absl::StatusOr<std::string> SandboxClient::Version() {
  runtime::v1::VersionRequest req;
  req.set_version("v1");
  runtime::v1::VersionResponse resp;
  absl::Status s = impl_->Invoke("Version", req, &resp, &runtime::v1::RuntimeService::Stub::Version);
  if (!s.ok()) return s;
  return absl::StrCat(resp.runtime_name(), " ", resp.runtime_version());
}

}  // namespace pnc::netns::cri_testing
