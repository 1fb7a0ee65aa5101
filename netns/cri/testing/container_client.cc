#include "netns/cri/testing/container_client.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "netns/cri/cri_api.grpc.pb.h"

namespace pnc::netns::cri_testing {
namespace {

namespace v1 = ::runtime::v1;

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("CRI ", what, ": ", s.error_message()));
}

std::vector<std::string> StringList(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

class ContainerClient::Impl {
 public:
  Impl(const std::string& endpoint, absl::Duration timeout)
      : channel_(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials())),
        stub_(v1::RuntimeService::NewStub(channel_)),
        timeout_(timeout) {}

  // One unary call on the generated stub, bounded by the call timeout.
  template <typename Req, typename Resp>
  absl::Status Call(grpc::Status (v1::RuntimeService::Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                    const std::string& what, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    return FromGrpc((stub_.get()->*rpc)(&ctx, req, resp), what);
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RuntimeService::Stub> stub_;
  absl::Duration timeout_;
};

ContainerClient::ContainerClient(const std::string& endpoint, absl::Duration call_timeout)
    : impl_(std::make_unique<Impl>(endpoint, call_timeout)) {}
ContainerClient::~ContainerClient() = default;

absl::StatusOr<std::string> ContainerClient::Create(const std::string& sandbox_id, const PodSpec& pod,
                                                    const std::string& log_directory,
                                                    const ContainerSpec& spec) {
  v1::CreateContainerRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  v1::PodSandboxConfig* sc = req.mutable_sandbox_config();
  sc->mutable_metadata()->set_name(pod.name);
  sc->mutable_metadata()->set_uid(pod.uid);
  sc->mutable_metadata()->set_namespace_(pod.namespace_name);
  sc->mutable_metadata()->set_attempt(pod.attempt);
  sc->set_hostname(pod.name);
  sc->set_log_directory(log_directory);
  (*sc->mutable_labels())["io.kubernetes.pod.uid"] = pod.uid;
  (*sc->mutable_labels())["io.kubernetes.pod.name"] = pod.name;
  (*sc->mutable_labels())["io.kubernetes.pod.namespace"] = pod.namespace_name;
  if (!pod.cgroup_parent.empty()) sc->mutable_linux()->set_cgroup_parent(pod.cgroup_parent);

  v1::ContainerConfig* c = req.mutable_config();
  c->mutable_metadata()->set_name(spec.name);
  c->mutable_image()->set_image(spec.image);
  for (const std::string& a : spec.command) c->add_command(a);
  for (const std::string& a : spec.args) c->add_args(a);
  for (const auto& [k, v] : spec.env) {
    v1::KeyValue* kv = c->add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (const BindMount& m : spec.mounts) {
    v1::Mount* mount = c->add_mounts();
    mount->set_host_path(m.host_path);
    mount->set_container_path(m.container_path);
    mount->set_readonly(m.readonly);
  }
  (*c->mutable_labels())["io.kubernetes.container.name"] = spec.name;
  (*c->mutable_labels())["io.kubernetes.pod.uid"] = pod.uid;
  (*c->mutable_labels())["io.kubernetes.pod.name"] = pod.name;
  (*c->mutable_labels())["io.kubernetes.pod.namespace"] = pod.namespace_name;
  c->set_log_path(absl::StrCat(spec.name, "/0.log"));
  v1::LinuxContainerSecurityContext* sec = c->mutable_linux()->mutable_security_context();
  if (spec.drop_all_capabilities) sec->mutable_capabilities()->add_drop_capabilities("ALL");
  for (const std::string& cap : spec.add_capabilities) sec->mutable_capabilities()->add_add_capabilities(cap);
  if (spec.run_as_user) sec->mutable_run_as_user()->set_value(*spec.run_as_user);
  if (spec.run_as_group) sec->mutable_run_as_group()->set_value(*spec.run_as_group);
  sec->set_no_new_privs(spec.no_new_privs);
  sec->set_readonly_rootfs(spec.readonly_rootfs);
  sec->mutable_seccomp()->set_profile_type(spec.runtime_default_seccomp ? v1::SecurityProfile::RuntimeDefault
                                                                        : v1::SecurityProfile::Unconfined);

  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (true) {
    v1::CreateContainerResponse resp;
    absl::Status s = impl_->Call(&v1::RuntimeService::Stub::CreateContainer,
                                 absl::StrCat("CreateContainer ", spec.name), req, &resp);
    if (s.ok()) return resp.container_id();
    if (!absl::IsNotFound(s) || absl::Now() > deadline) return s;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status ContainerClient::Start(const std::string& container_id) {
  v1::StartContainerRequest req;
  req.set_container_id(container_id);
  v1::StartContainerResponse resp;
  return impl_->Call(&v1::RuntimeService::Stub::StartContainer, absl::StrCat("StartContainer ", container_id),
                     req, &resp);
}

absl::Status ContainerClient::Stop(const std::string& container_id, int64_t timeout_seconds) {
  v1::StopContainerRequest req;
  req.set_container_id(container_id);
  req.set_timeout(timeout_seconds);
  v1::StopContainerResponse resp;
  return impl_->Call(&v1::RuntimeService::Stub::StopContainer, absl::StrCat("StopContainer ", container_id),
                     req, &resp);
}

absl::Status ContainerClient::Remove(const std::string& container_id) {
  v1::RemoveContainerRequest req;
  req.set_container_id(container_id);
  v1::RemoveContainerResponse resp;
  return impl_->Call(&v1::RuntimeService::Stub::RemoveContainer,
                     absl::StrCat("RemoveContainer ", container_id), req, &resp);
}

absl::StatusOr<ContainerFacts> ContainerClient::Status(const std::string& container_id) {
  v1::ContainerStatusRequest req;
  req.set_container_id(container_id);
  req.set_verbose(true);
  v1::ContainerStatusResponse resp;
  absl::Status s = impl_->Call(&v1::RuntimeService::Stub::ContainerStatus,
                               absl::StrCat("ContainerStatus ", container_id), req, &resp);
  if (!s.ok()) return s;
  ContainerFacts f;
  f.id = resp.status().id();
  f.state = resp.status().state();
  f.exit_code = resp.status().exit_code();
  f.reason = resp.status().reason();
  f.message = resp.status().message();
  f.log_path = resp.status().log_path();
  auto info = resp.info().find("info");
  if (info == resp.info().end()) return f;
  nlohmann::json j = nlohmann::json::parse(info->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return f;
  if (j.contains("pid") && j["pid"].is_number_integer()) f.pid = j["pid"].get<int>();
  if (!j.contains("runtimeSpec") || !j["runtimeSpec"].is_object()) return f;
  const nlohmann::json& rs = j["runtimeSpec"];
  f.spec_json = rs.dump();
  if (rs.contains("process") && rs["process"].is_object()) {
    const nlohmann::json& p = rs["process"];
    if (p.contains("user") && p["user"].is_object()) {
      f.spec_uid = p["user"].value("uid", -1);
      f.spec_gid = p["user"].value("gid", -1);
    }
    if (p.contains("capabilities") && p["capabilities"].is_object()) {
      const nlohmann::json& caps = p["capabilities"];
      if (caps.contains("effective")) f.spec_effective_caps = StringList(caps["effective"]);
      if (caps.contains("bounding")) f.spec_bounding_caps = StringList(caps["bounding"]);
    }
    f.spec_no_new_privileges = p.value("noNewPrivileges", false);
  }
  if (rs.contains("root") && rs["root"].is_object())
    f.spec_readonly_root = rs["root"].value("readonly", false);
  f.spec_has_seccomp = rs.contains("linux") && rs["linux"].is_object() && rs["linux"].contains("seccomp") &&
                       rs["linux"]["seccomp"].is_object();
  return f;
}

absl::StatusOr<ContainerFacts> ContainerClient::WaitExited(const std::string& container_id,
                                                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<ContainerFacts> f = Status(container_id);
    if (!f.ok()) return f.status();
    if (f->state == kContainerExited) return f;
    if (absl::Now() > deadline)
      return absl::DeadlineExceededError(absl::StrCat("container ", container_id, " still in state ",
                                                      f->state, " after ", absl::FormatDuration(timeout)));
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::StatusOr<std::string> ReadCriLog(const std::string& path, const std::string& stream) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    // <timestamp> <stream> <tag> <text>
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(' ', 3));
    if (f.size() < 3) return absl::DataLossError(absl::StrCat("not a CRI log line in ", path, ": ", line));
    if (!stream.empty() && f[1] != stream) continue;
    absl::StrAppend(&out, f.size() == 4 ? f[3] : "");
    if (f[2] == "F") out.push_back('\n');
  }
  return out;
}

absl::StatusOr<ProcessCreds> ReadProcessCreds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("no /proc/", pid, "/status"));
  ProcessCreds c;
  std::string line;
  bool uid_seen = false, gid_seen = false;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t:"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (f[0] == "Uid" && f.size() >= 3) {
      uid_seen = absl::SimpleAtoi(f[1], &c.uid) && absl::SimpleAtoi(f[2], &c.euid);
    } else if (f[0] == "Gid" && f.size() >= 3) {
      gid_seen = absl::SimpleAtoi(f[1], &c.gid) && absl::SimpleAtoi(f[2], &c.egid);
    } else if (f[0] == "CapEff") {
      absl::SimpleHexAtoi(f[1], &c.cap_eff);
    } else if (f[0] == "CapPrm") {
      absl::SimpleHexAtoi(f[1], &c.cap_prm);
    } else if (f[0] == "CapBnd") {
      absl::SimpleHexAtoi(f[1], &c.cap_bnd);
    } else if (f[0] == "NoNewPrivs") {
      absl::SimpleAtoi(f[1], &c.no_new_privs);
    }
  }
  if (!uid_seen || !gid_seen)
    return absl::DataLossError(absl::StrCat("no Uid/Gid in /proc/", pid, "/status"));
  return c;
}

}  // namespace pnc::netns::cri_testing
