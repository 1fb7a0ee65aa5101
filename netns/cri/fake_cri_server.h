// FakeCriServer: an in-memory CRI RuntimeService (Version, ListPodSandbox, PodSandboxStatus) on a unix
// socket, for tests and the simulator's fake nodes. Not testonly: the simulator links it into its binaries.
//
// Behaves like containerd for what the locator reads: sandboxes carry the label io.kubernetes.pod.uid, the
// list honours the id / state / label_selector filter, and PodSandboxStatus(verbose) returns info["info"] as
// containerd's JSON ({"pid": N, "runtimeSpec": {"linux": {"namespaces": [{"type": "network", "path":
// ...}]}}}); unknown ids give NOT_FOUND. Thread-safe.
#ifndef PNC_NETNS_CRI_FAKE_CRI_SERVER_H_
#define PNC_NETNS_CRI_FAKE_CRI_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pnc::netns {

struct FakeSandbox {
  std::string id;  // sandbox id; generated from uid + attempt when empty
  std::string pod_uid;
  std::string pod_name;
  std::string pod_namespace;
  uint32_t attempt = 0;
  bool ready = true;
  std::string netns_path;        // runtimeSpec.linux.namespaces[network].path; omitted when empty
  int pid = 0;                   // info.pid; omitted when 0
  std::vector<std::string> ips;  // status.network.ip = ips[0], additional_ips = the rest
  int64_t created_at_ns = 0;     // set by Upsert when 0
};

class FakeCriServer {
 public:
  // endpoint: "unix:/short/path.sock" (<= 107 bytes), "/short/path.sock" or "unix-abstract:name".
  static absl::StatusOr<std::unique_ptr<FakeCriServer>> Start(const std::string& endpoint);
  // "unix-abstract:<prefix>-<64 random bits>": abstract names are per network namespace and PIDs repeat
  // across sandboxes (Bazel runs every test as pid ~12), so parallel tests and fake nodes need random names.
  static std::string RandomAbstractEndpoint(const std::string& prefix = "pnc-fake-cri");
  ~FakeCriServer();  // shuts down; stalled calls are released first

  const std::string& endpoint() const;  // as clients dial it ("unix:..." / "unix-abstract:...")

  void Upsert(FakeSandbox sandbox);            // by id (or uid+attempt)
  void RemovePod(const std::string& pod_uid);  // all its sandboxes
  void Clear();
  // Every RPC waits this long before answering (0 = no stall); for deadline tests.
  void SetStall(absl::Duration stall);
  // The next `n` RPCs fail with UNAVAILABLE.
  void FailNext(int n);
  int64_t calls() const;

  class Impl;

 private:
  explicit FakeCriServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_CRI_FAKE_CRI_SERVER_H_
