// Containerd: a private containerd (Debian's 1.6) for tests, started by hand and torn down completely.
//
// Start() creates /tmp/pnc-ctrd-<random> (short: the socket path must fit in 107 bytes) holding the config,
// root, state, the `io.containerd.internal.v1.opt` path, runc's root, the CNI conf dir and host-local IPAM
// data, and the socket `<dir>/c.sock`. It then:
//   - creates a private "node" network namespace and runs containerd (and therefore its shims and the CNI
//     plugins) inside it, so the CNI bridge `pncbr0` (10.251.0.0/24, isGateway true, ipMasq false), its
//     veths and the bridge plugin's ip_forward=1 exist only there: the host netns is never modified and no
//     route leads off the machine;
//   - packs the static pause binary as an OCI image with umoci and imports it with `ctr -n k8s.io images
//     import` (sandbox_image = pnc.local/pause:3.9; nothing is pulled);
//   - CRI settings from the measured facts: restrict_oom_score_adj, netns_mounts_under_state_dir,
//     disable_apparmor, runc v2 shim (SystemdCgroup=false, Root under the dir, BinaryName = the runc found).
// Every program is run with an argv vector (no shell); nothing untrusted reaches a command line.
//
// Sandboxes made through this fixture's SandboxClient get cgroup_parent
// "/<dir basename>/kubepods/besteffort/pod<uid>" (cgroupfs, the path the cgroup locator recognises).
//
// Teardown (destructor, and TeardownFixtureDir for leftovers of a crashed run): stop+remove every sandbox
// through CRI while containerd answers, SIGTERM then SIGKILL containerd, SIGKILL by PID every process that
// names the dir on its command line (shims) or lives in the fixture's cgroups (pause), unmount everything
// under the dir, remove the cgroup directories, the shims' sockets under /run/containerd/s, CNI result cache
// files of the fixture's network, then the dir. The private netns (bridge, veths) dies with its last user.
#ifndef PNC_NETNS_CRI_TESTING_CONTAINERD_H_
#define PNC_NETNS_CRI_TESTING_CONTAINERD_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netns/netns.h"

namespace pnc::netns::cri_testing {

struct ContainerdOptions {
  // The static pause binary packed into the sandbox image (tests: runfiles path of
  // //netns/cri/testing:pause).
  std::string pause_binary;
  // Give up on containerd answering CRI Version after this long.
  absl::Duration start_timeout = absl::Seconds(20);
};

class Containerd {
 public:
  // FailedPrecondition when a required program is missing (containerd, runc, containerd-shim-runc-v2,
  // umoci, ctr, tar, the CNI bridge plugin), with the package to install.
  static absl::StatusOr<std::unique_ptr<Containerd>> Start(const ContainerdOptions& options);
  ~Containerd();  // full teardown; never throws, logs what it could not undo to stderr
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  // "unix:/tmp/pnc-ctrd-XXXX/c.sock" as the locator dials it.
  std::string endpoint() const;
  const std::string& dir() const { return dir_; }
  // The cgroup directory name all sandboxes live under ("pnc-ctrd-XXXX").
  std::string cgroup_root() const;
  // cgroup_parent for a pod's sandbox: "/<cgroup_root>/kubepods/besteffort/pod<uid>".
  std::string CgroupParent(const std::string& pod_uid) const;
  // The private node netns (holds the CNI bridge).
  const NetnsHandle& node_netns() const { return node_netns_; }
  pid_t pid() const { return pid_; }  // 0 while stopped
  std::string LogTail(size_t bytes = 4000) const;

  // Imports an oci-archive holding the image `reference` ("repo/name:tag", the archive's ref.name annotation)
  // into the k8s.io namespace with `ctr images import` (nothing is pulled), for CRI CreateContainer; checks
  // that ctr lists it afterwards. Its content lives under dir() and goes with the fixture.
  absl::Status ImportImage(const std::string& oci_archive, const std::string& reference);
  // A directory under dir() for a pod's CRI container logs (kubelet's /var/log/pods/<ns>_<name>_<uid>).
  std::string PodLogDirectory(const std::string& pod_uid) const;

  // Runtime faults: Kill() SIGKILLs containerd only (shims and sandboxes keep running, like a crash);
  // Restart() starts it again on the same dir and waits until CRI answers.
  absl::Status Kill();
  absl::Status Restart();

 private:
  Containerd(std::string dir, NetnsHandle node_netns, ContainerdOptions options);
  absl::Status Launch();
  absl::Status WaitUntilServing(absl::Duration timeout);

  std::string dir_;
  NetnsHandle node_netns_;
  ContainerdOptions options_;
  pid_t pid_ = 0;
};

// containerd 1.6's shim socket for task `id` in namespace `ns` of the fixture in `dir`:
// /run/containerd/s/<hex sha256("<dir>/c.sock/<ns>/<id>")>.
std::string ShimSocketPath(const std::string& dir, const std::string& ns, const std::string& id);

// Undoes everything a fixture created under `dir` (see the header comment). Used by ~Containerd and, at
// Start, for /tmp/pnc-ctrd-* dirs whose owner process is gone. Best effort; returns the first error.
absl::Status TeardownFixtureDir(const std::string& dir);

}  // namespace pnc::netns::cri_testing

#endif  // PNC_NETNS_CRI_TESTING_CONTAINERD_H_
