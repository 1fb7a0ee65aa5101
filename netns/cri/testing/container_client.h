// ContainerClient: runs containers inside pod sandboxes through CRI the way kubelet does (CreateContainer
// with the pod's sandbox config, StartContainer, ContainerStatus, StopContainer, RemoveContainer), for the
// image tests: an image's own USER, the securityContext a chart renders (capabilities, no_new_privs,
// read-only root, RuntimeDefault seccomp), bind mounts (a Downward-API-like file), and the container's log as
// the runtime wrote it. Reads back what the runtime actually handed to runc (verbose ContainerStatus: the OCI
// runtime spec) and, while the process runs, its credentials from /proc.
//
// The wire messages and stub are //netns/cri:cri_api_grpc (runtime.v1, upstream field numbers).
#ifndef PNC_NETNS_CRI_TESTING_CONTAINER_CLIENT_H_
#define PNC_NETNS_CRI_TESTING_CONTAINER_CLIENT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/cri/testing/sandbox_client.h"

namespace pnc::netns::cri_testing {

struct BindMount {
  std::string host_path;
  std::string container_path;
  bool readonly = true;
};

struct ContainerSpec {
  std::string name;                  // container name within the pod
  std::string image;                 // reference as imported, e.g. "quay.io/x/waiter:0.1.0"
  std::vector<std::string> command;  // empty: the image's ENTRYPOINT
  std::vector<std::string> args;     // empty: the image's CMD
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<BindMount> mounts;
  std::optional<int64_t> run_as_user;   // unset: the image's USER (as kubelet without runAsUser)
  std::optional<int64_t> run_as_group;  // only with run_as_user
  bool drop_all_capabilities = true;
  std::vector<std::string> add_capabilities;  // "NET_ADMIN" (CRI spelling, without CAP_)
  bool no_new_privs = true;                   // allowPrivilegeEscalation: false
  bool readonly_rootfs = true;
  bool runtime_default_seccomp = true;  // else Unconfined
};

// What the runtime reports, plus what its OCI runtime spec says (verbose info).
struct ContainerFacts {
  std::string id;
  int state = -1;  // runtime.v1.ContainerState: 0 created, 1 running, 2 exited, 3 unknown
  int exit_code = 0;
  std::string reason;
  std::string message;
  std::string log_path;
  int pid = 0;  // verbose info "pid" (0 once exited)
  // runtimeSpec.process
  int64_t spec_uid = -1;
  int64_t spec_gid = -1;
  std::vector<std::string> spec_effective_caps;
  std::vector<std::string> spec_bounding_caps;
  bool spec_no_new_privileges = false;
  bool spec_readonly_root = false;
  bool spec_has_seccomp = false;
  std::string spec_json;  // runtimeSpec, for diagnostics
};

inline constexpr int kContainerCreated = 0;
inline constexpr int kContainerRunning = 1;
inline constexpr int kContainerExited = 2;

class ContainerClient {
 public:
  // endpoint: "unix:/path" (as Containerd::endpoint()).
  explicit ContainerClient(const std::string& endpoint, absl::Duration call_timeout = absl::Seconds(30));
  ~ContainerClient();

  // CreateContainer in `sandbox_id` (made from `pod`; its cgroup_parent and `log_directory` are passed again
  // as kubelet does). The log goes to <log_directory>/<name>/0.log. Retries NotFound for the image for up to
  // 2 s (an image imported with ctr reaches CRI's image store through an event).
  absl::StatusOr<std::string> Create(const std::string& sandbox_id, const PodSpec& pod,
                                     const std::string& log_directory, const ContainerSpec& spec);
  absl::Status Start(const std::string& container_id);
  absl::Status Stop(const std::string& container_id, int64_t timeout_seconds);
  absl::Status Remove(const std::string& container_id);
  absl::StatusOr<ContainerFacts> Status(const std::string& container_id);
  // Polls Status until the container has exited (DeadlineExceeded after `timeout`).
  absl::StatusOr<ContainerFacts> WaitExited(const std::string& container_id, absl::Duration timeout);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The text of a CRI container log file (lines "<RFC3339Nano> <stdout|stderr> <F|P> <text>"): the texts
// joined, partial lines (P) continued, each full line ending in '\n'. `stream` "stdout"/"stderr", or "" for
// both.
absl::StatusOr<std::string> ReadCriLog(const std::string& path, const std::string& stream = "");

// Credentials of a running process from /proc/<pid>/status: real/effective uid and gid, CapEff/CapPrm/CapBnd
// (hex masks), NoNewPrivs.
struct ProcessCreds {
  uid_t uid = 0, euid = 0;
  gid_t gid = 0, egid = 0;
  uint64_t cap_eff = ~0ull, cap_prm = ~0ull, cap_bnd = ~0ull;
  int no_new_privs = -1;
};
absl::StatusOr<ProcessCreds> ReadProcessCreds(pid_t pid);

}  // namespace pnc::netns::cri_testing

#endif  // PNC_NETNS_CRI_TESTING_CONTAINER_CLIENT_H_
