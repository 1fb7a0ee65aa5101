// SandboxClient: drives pod sandboxes through CRI the way kubelet does (RunPodSandbox with the pod's
// metadata and the io.kubernetes.pod.* labels, StopPodSandbox, RemovePodSandbox), for the real-runtime tests
// and the containerd fixture's teardown. Reads back what the locator also reads (PodSandboxStatus verbose).
#ifndef PNC_NETNS_CRI_TESTING_SANDBOX_CLIENT_H_
#define PNC_NETNS_CRI_TESTING_SANDBOX_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pnc::netns::cri_testing {

struct PodSpec {
  std::string uid;
  std::string name;
  std::string namespace_name;
  uint32_t attempt = 0;
  std::string cgroup_parent;  // e.g. Containerd::CgroupParent(uid); empty: the runtime's default
  std::string log_directory;  // containers' logs (e.g. Containerd::PodLogDirectory(uid)); empty: none
};

struct SandboxFacts {
  std::string id;
  bool ready = false;
  std::string ip;          // status.network.ip
  std::string netns_path;  // verbose info: runtimeSpec.linux.namespaces[network].path
  int pid = 0;             // verbose info: pid
};

class SandboxClient {
 public:
  // endpoint: "unix:/path" (as Containerd::endpoint()). No I/O here.
  explicit SandboxClient(const std::string& endpoint, absl::Duration call_timeout = absl::Seconds(30));
  ~SandboxClient();

  absl::StatusOr<std::string> Run(const PodSpec& pod);  // the sandbox id
  absl::Status Stop(const std::string& sandbox_id);
  absl::Status Remove(const std::string& sandbox_id);
  absl::StatusOr<SandboxFacts> Status(const std::string& sandbox_id);
  absl::StatusOr<std::vector<std::string>> ListIds();  // every sandbox, any state
  absl::StatusOr<std::string> Version();               // "containerd 1.6.20~ds1"

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pnc::netns::cri_testing

#endif  // PNC_NETNS_CRI_TESTING_SANDBOX_CLIENT_H_
