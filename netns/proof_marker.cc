#include "netns/proof_marker.h"

#include <linux/netlink.h>

#include <vector>

#include "netns/executor.h"
#include "netns/routing/netlink.h"
#include "netns/routing/routing.h"

namespace pnc::netns {

absl::Status KernelProofMarker::Place(const NetnsHandle& ns, uint32_t value) {
  return RunInNetns(ns, [&]() -> absl::Status {
    absl::StatusOr<MnlSocket> nl = MnlSocket::Open(NETLINK_ROUTE);
    if (!nl.ok()) return nl.status();
    absl::StatusOr<std::vector<uint32_t>> have = ReadNopRules(*nl, kMarkerPriority);
    if (!have.ok()) return have.status();
    bool present = false;
    for (uint32_t v : *have) {
      if (v == value && !present) {
        present = true;
        continue;
      }
      if (absl::Status del = DeleteNopRule(*nl, kMarkerPriority, v); !del.ok()) return del;
    }
    return present ? absl::OkStatus() : AddNopRule(*nl, kMarkerPriority, value);
  });
}

absl::Status FakeProofMarker::Place(const NetnsHandle& ns, uint32_t value) {
  absl::MutexLock lock(&mu_);
  if (!fail_.ok()) return std::exchange(fail_, absl::OkStatus());
  placed_[{ns.inode(), ns.testing_cookie()}] = value;
  return absl::OkStatus();
}

uint32_t FakeProofMarker::At(uint64_t inode, uint64_t cookie) const {
  absl::MutexLock lock(&mu_);
  auto it = placed_.find({inode, cookie});
  return it == placed_.end() ? 0 : it->second;
}

void FakeProofMarker::FailNext(absl::Status st) {
  absl::MutexLock lock(&mu_);
  fail_ = std::move(st);
}

}  // namespace pnc::netns
