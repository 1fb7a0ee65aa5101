// Sandbox: a private network world for tests, benchmarks and the simulator's fake nodes, without touching
// the host.
//
// Sandbox::Get() moves the WHOLE PROCESS, once, into
//  - a new user namespace whose uid/gid maps cover at least 0..65535, so uid 1337 (Istio's proxy) is mapped:
//    the kernel's xt_owner check rejects `--uid-owner N` for an unmapped N (shared/notes/netfilter-facts.md).
//    As root, a short-lived helper child left in the original user namespace writes identity maps over ALL
//    ids (like the initial namespace; OpenShift-range uids such as 1000650000 work too). As a normal user
//    the helper runs newuidmap/newgidmap (package uidmap) with argv only, mapping inner 0 to the user and
//    1..65535 to the first range of /etc/subuid and /etc/subgid;
//  - a new network namespace (only loopback, up): the sandbox's "host"; NetnsHandle::Open refuses it like
//    the real host namespace;
//  - a new mount namespace with a private tmpfs (dir()) that holds the bind-mounted namespace files.
// It also sets XTABLES_LOCKFILE to a file in dir(), which legacy iptables tools need in a user namespace.
//
// Call it while the process is still single-threaded (the kernel refuses unshare(CLONE_NEWUSER|CLONE_NEWNS)
// otherwise): early in main(), or in a test's SetUp before anything starts threads. The first call decides;
// later calls return the same sandbox or the same error. When user namespaces are not available (sysctl,
// seccomp, no subordinate ids, ...) it returns FailedPrecondition with the reason: tests must GTEST_SKIP
// with it (see gtest_sandbox.h), never pass silently.
//
// Topology: one "peer" namespace (think: the node's side of the pod network) and any number of pod
// namespaces, each linked to the peer by a veth pair; for k = 1, 2, ... (at most 16383 per process):
//   pod k, eth0:   10.250.0.0 + 4k + 2 /30 (pod_ipv4)    fd00:250:0:<k hex>::2/64 (pod_ipv6)
//   peer, v<k>:    10.250.0.0 + 4k + 1 /30 (peer_ipv4)   fd00:250:0:<k hex>::1/64 (peer_ipv6)
// The pod's default routes (v4, v6) point at the peer end. IPv6 addresses skip DAD. Loopback is up
// everywhere. Packets only ever travel between namespaces of this sandbox.
//
// Thread safety: CreatePodNetns / CreateBareNetns may be called from several threads.
//
// Usage (a test: link //netns/testing:sandbox_gtest_main and use PNC_SANDBOX_OR_SKIP from gtest_sandbox.h; a
// binary such as the simulator: call Sandbox::Get() first thing in main()):
//   absl::StatusOr<Sandbox*> sb = Sandbox::Get();          // before any thread exists
//   absl::StatusOr<PodNetns> pod = (*sb)->CreatePodNetns("web-1");
//   pod->netns.path();    // e.g. /tmp/pnc-sandbox.X/web-1: what a Locator would return for this pod
//   RunInNetns(pod->handle(), [] { /* sockets created here live in the pod */ return absl::OkStatus(); });
//   RunAs(1000, 1000, &pod->handle(), [] { return TcpConnect("10.1.2.3", 80, absl::Seconds(1)).status(); });
// (RunInNetns: netns/executor.h; RunAs: run_as.h; socket helpers: sockets.h.)
#ifndef PNC_NETNS_TESTING_SANDBOX_H_
#define PNC_NETNS_TESTING_SANDBOX_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "netns/netns.h"

namespace pnc::netns::testing {

// A network namespace bind-mounted at `path` inside the sandbox's tmpfs. Destroying it unmounts and unlinks
// the file and closes the handle; the kernel frees the namespace (and its veth) once nothing else holds it.
class OwnedNetns {
 public:
  OwnedNetns(NetnsHandle handle, std::string path) : handle_(std::move(handle)), path_(std::move(path)) {}
  OwnedNetns(OwnedNetns&& other) noexcept;
  OwnedNetns& operator=(OwnedNetns&&) noexcept;
  ~OwnedNetns();

  const NetnsHandle& handle() const { return handle_; }
  const std::string& path() const { return path_; }  // an nsfs bind mount, NetnsHandle::Open()-able

 private:
  void Release();
  NetnsHandle handle_;
  std::string path_;
};

struct PodNetns {
  std::string name;
  OwnedNetns netns;
  int index = 0;                       // k above
  std::string pod_interface = "eth0";  // in the pod netns
  std::string peer_interface;          // "v<k>", in the peer netns
  std::string pod_ipv4, peer_ipv4;     // prefix 30
  std::string pod_ipv6, peer_ipv6;     // prefix 64

  const NetnsHandle& handle() const { return netns.handle(); }
};

class Sandbox {
 public:
  // See the file comment. Never returns null on success.
  static absl::StatusOr<Sandbox*> Get();

  // A pod namespace wired to the peer as described above. `name` must match [a-z0-9-]{1,40} and be unique
  // among live namespaces of this sandbox (it names the bind-mount file).
  absl::StatusOr<PodNetns> CreatePodNetns(const std::string& name);

  // A namespace with only loopback (up), bind-mounted like a pod's.
  absl::StatusOr<OwnedNetns> CreateBareNetns(const std::string& name);

  // True when this process is root in the initial user namespace: there the sandbox cannot legitimately be
  // unavailable, so tests must FAIL (not skip) when Get() fails. (Inside Bazel's linux-sandbox, root is
  // mapped alone in a user namespace and uid 1337 cannot be mapped: such tests need tags = ["no-sandbox"].)
  static bool Required();

  // Whether `uid` is mapped in the current user namespace (inside the sandbox: [0, 65536) at least, every id
  // when root). Legacy iptables refuses `--uid-owner N` for an unmapped N.
  static bool MapsUid(uint32_t uid);

  // The namespace every pod's veth leads to.
  const NetnsHandle& peer() const { return peer_->handle(); }

  // The private tmpfs holding the namespace files (and the xtables lock file).
  const std::string& dir() const { return dir_; }

  // The uid/gid range mapped in the sandbox user namespace: [0, mapped_ids()).
  static constexpr int kMappedIds = 65536;

 private:
  Sandbox() = default;
  absl::Status Init();
  absl::StatusOr<OwnedNetns> NewNetns(const std::string& name);

  std::string dir_;
  std::unique_ptr<OwnedNetns> peer_;
  absl::Mutex mu_;
  int next_index_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace pnc::netns::testing

#endif  // PNC_NETNS_TESTING_SANDBOX_H_
