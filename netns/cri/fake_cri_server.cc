#include "netns/cri/fake_cri_server.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "netns/cri/cri_api.grpc.pb.h"

namespace pnc::netns {
namespace {

constexpr char kUidLabel[] = "io.kubernetes.pod.uid";

std::string InfoJson(const FakeSandbox& s) {
  nlohmann::json namespaces = nlohmann::json::array();
  namespaces.push_back({{"type", "pid"}});
  namespaces.push_back({{"type", "ipc"}});
  nlohmann::json net = {{"type", "network"}};
  if (!s.netns_path.empty()) net["path"] = s.netns_path;
  namespaces.push_back(net);
  nlohmann::json info = {
      {"sandboxID", s.id},
      {"runtimeSpec", {{"ociVersion", "1.0.2-dev"}, {"linux", {{"namespaces", namespaces}}}}}};
  if (s.pid != 0) info["pid"] = s.pid;
  return info.dump();
}

void FillMetadata(const FakeSandbox& s, runtime::v1::PodSandboxMetadata* m) {
  m->set_name(s.pod_name);
  m->set_uid(s.pod_uid);
  m->set_namespace_(s.pod_namespace);
  m->set_attempt(s.attempt);
}

}  // namespace

class FakeCriServer::Impl final : public runtime::v1::RuntimeService::Service {
 public:
  std::string endpoint;
  std::unique_ptr<grpc::Server> server;

  void Upsert(FakeSandbox s) {
    absl::MutexLock l(&mu_);
    if (s.id.empty()) s.id = absl::StrCat("sandbox-", s.pod_uid, "-", s.attempt);
    if (s.created_at_ns == 0) s.created_at_ns = absl::ToUnixNanos(absl::Now());
    sandboxes_[s.id] = std::move(s);
  }
  void RemovePod(const std::string& uid) {
    absl::MutexLock l(&mu_);
    for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
      it = it->second.pod_uid == uid ? sandboxes_.erase(it) : std::next(it);
    }
  }
  void Clear() {
    absl::MutexLock l(&mu_);
    sandboxes_.clear();
  }
  void SetStall(absl::Duration d) {
    absl::MutexLock l(&mu_);
    stall_ = d;
  }
  void FailNext(int n) {
    absl::MutexLock l(&mu_);
    fail_next_ = n;
  }
  int64_t calls() const {
    absl::MutexLock l(&mu_);
    return calls_;
  }
  void ReleaseStalls() {
    absl::MutexLock l(&mu_);
    shutting_down_ = true;
  }

  grpc::Status Version(grpc::ServerContext*, const runtime::v1::VersionRequest*,
                       runtime::v1::VersionResponse* resp) override {
    if (grpc::Status s = Enter(); !s.ok()) return s;
    resp->set_version("0.1.0");
    resp->set_runtime_name("pnc-fake-cri");
    resp->set_runtime_version("0.1.0");
    resp->set_runtime_api_version("v1");
    return grpc::Status::OK;
  }

  grpc::Status ListPodSandbox(grpc::ServerContext*, const runtime::v1::ListPodSandboxRequest* req,
                              runtime::v1::ListPodSandboxResponse* resp) override {
    if (grpc::Status s = Enter(); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    const auto& f = req->filter();
    for (const auto& [id, s] : sandboxes_) {
      if (!f.id().empty() && f.id() != id) continue;
      if (f.has_state() && (f.state().state() == runtime::v1::SANDBOX_READY) != s.ready) continue;
      bool labels_match = true;
      for (const auto& [k, v] : f.label_selector()) {
        if (k != kUidLabel || v != s.pod_uid) labels_match = false;  // the only label the fake carries
      }
      if (!labels_match) continue;
      runtime::v1::PodSandbox* item = resp->add_items();
      item->set_id(id);
      FillMetadata(s, item->mutable_metadata());
      item->set_state(s.ready ? runtime::v1::SANDBOX_READY : runtime::v1::SANDBOX_NOTREADY);
      item->set_created_at(s.created_at_ns);
      (*item->mutable_labels())[kUidLabel] = s.pod_uid;
    }
    return grpc::Status::OK;
  }

  grpc::Status PodSandboxStatus(grpc::ServerContext*, const runtime::v1::PodSandboxStatusRequest* req,
                                runtime::v1::PodSandboxStatusResponse* resp) override {
    if (grpc::Status s = Enter(); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    auto it = sandboxes_.find(req->pod_sandbox_id());
    if (it == sandboxes_.end()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("an error occurred when try to find sandbox: not found: ", req->pod_sandbox_id()));
    }
    const FakeSandbox& s = it->second;
    runtime::v1::PodSandboxStatus* st = resp->mutable_status();
    st->set_id(s.id);
    FillMetadata(s, st->mutable_metadata());
    st->set_state(s.ready ? runtime::v1::SANDBOX_READY : runtime::v1::SANDBOX_NOTREADY);
    st->set_created_at(s.created_at_ns);
    if (!s.ips.empty()) {
      st->mutable_network()->set_ip(s.ips[0]);
      for (size_t i = 1; i < s.ips.size(); ++i) st->mutable_network()->add_additional_ips()->set_ip(s.ips[i]);
    }
    (*st->mutable_labels())[kUidLabel] = s.pod_uid;
    if (req->verbose()) (*resp->mutable_info())["info"] = InfoJson(s);
    resp->set_timestamp(absl::ToUnixNanos(absl::Now()));
    return grpc::Status::OK;
  }

 private:
  // Counts the call, applies fault injection and the stall (released early at shutdown).
  grpc::Status Enter() {
    absl::MutexLock l(&mu_);
    ++calls_;
    if (fail_next_ > 0) {
      --fail_next_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected failure");
    }
    if (stall_ > absl::ZeroDuration()) {
      absl::Time until = absl::Now() + stall_;
      mu_.AwaitWithDeadline(absl::Condition(&shutting_down_), until);
    }
    return grpc::Status::OK;
  }

  mutable absl::Mutex mu_;
  std::map<std::string, FakeSandbox> sandboxes_ ABSL_GUARDED_BY(mu_);
  absl::Duration stall_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

std::string FakeCriServer::RandomAbstractEndpoint(const std::string& prefix) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen =
      new absl::BitGen();  // seeded from the OS; leaked like any process-wide generator
  absl::MutexLock l(&mu);
  return absl::StrCat("unix-abstract:", prefix, "-",
                      absl::Hex(absl::Uniform<uint64_t>(*gen), absl::kZeroPad16));
}

absl::StatusOr<std::unique_ptr<FakeCriServer>> FakeCriServer::Start(const std::string& endpoint) {
  std::string address = endpoint;
  if (absl::StartsWith(address, "/")) address = absl::StrCat("unix:", address);
  if (!absl::StartsWith(address, "unix:") && !absl::StartsWith(address, "unix-abstract:")) {
    return absl::InvalidArgumentError(absl::StrCat("fake CRI endpoint must be a unix socket: ", endpoint));
  }
  if (absl::StartsWith(address, "unix:") && address.size() - 5 > 107) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path longer than 107 bytes: ", endpoint));
  }
  auto impl = std::make_unique<Impl>();
  impl->endpoint = address;
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(impl.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  return std::unique_ptr<FakeCriServer>(new FakeCriServer(std::move(impl)));
}

FakeCriServer::FakeCriServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FakeCriServer::~FakeCriServer() {
  impl_->ReleaseStalls();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
}

const std::string& FakeCriServer::endpoint() const { return impl_->endpoint; }
void FakeCriServer::Upsert(FakeSandbox sandbox) { impl_->Upsert(std::move(sandbox)); }
void FakeCriServer::RemovePod(const std::string& pod_uid) { impl_->RemovePod(pod_uid); }
void FakeCriServer::Clear() { impl_->Clear(); }
void FakeCriServer::SetStall(absl::Duration stall) { impl_->SetStall(stall); }
void FakeCriServer::FailNext(int n) { impl_->FailNext(n); }
int64_t FakeCriServer::calls() const { return impl_->calls(); }

}  // namespace pnc::netns
