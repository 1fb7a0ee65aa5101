#include "netns/backends.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "netns/detect.h"
#include "netns/iptc_backend.h"
#include "netns/nft/nft_backend.h"
#include "netns/restore_backend.h"

namespace pnc::netns {
namespace {

// Dispatches every call to the backend DetectBackend picks for that namespace.
class AutoBackend : public Backend {
 public:
  explicit AutoBackend(NodeNetfilter node)
      : node_(std::move(node)), iptc_(NewIptcBackend()), nft_(NewNftBackend()) {}
  std::string Name() const override { return "auto"; }

  absl::Status Apply(const NetnsHandle& ns, const rules::Ruleset& ruleset) override {
    absl::StatusOr<Backend*> b = Pick(ns);
    if (!b.ok()) return b.status();
    return (*b)->Apply(ns, ruleset);
  }
  absl::StatusOr<rules::Ruleset> ReadBack(const NetnsHandle& ns) override {
    absl::StatusOr<Backend*> b = Pick(ns);
    if (!b.ok()) return b.status();
    return (*b)->ReadBack(ns);
  }
  // One detection for both steps (the default would detect twice).
  absl::StatusOr<rules::Ruleset> ApplyAndReadBack(const NetnsHandle& ns,
                                                  const rules::Ruleset& ruleset) override {
    absl::StatusOr<Backend*> b = Pick(ns);
    if (!b.ok()) return b.status();
    return (*b)->ApplyAndReadBack(ns, ruleset);
  }
  absl::Status Remove(const NetnsHandle& ns) override {
    absl::StatusOr<Backend*> b = Pick(ns);
    if (!b.ok()) return b.status();
    return (*b)->Remove(ns);
  }

 private:
  absl::StatusOr<Backend*> Pick(const NetnsHandle& ns) {
    absl::StatusOr<Detection> d = DetectBackend(ns, node_.preferred());
    if (!d.ok()) return d.status();
    return d->backend == "nft" ? nft_.get() : iptc_.get();
  }
  const NodeNetfilter node_;
  std::unique_ptr<Backend> iptc_;
  std::unique_ptr<Backend> nft_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewBackendByName(absl::string_view name) {
  if (name == "iptc") return NewIptcBackend();
  if (name == "nft") return NewNftBackend();
  if (name == "restore") return NewRestoreBackend();
  if (name == "auto") return NewAutoBackend();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown netns backend '", name, "' (want iptc, nft, restore or auto)"));
}

absl::StatusOr<std::unique_ptr<Backend>> NewAutoBackend(const std::string& node_proc_net) {
  absl::StatusOr<NodeNetfilter> node = DetectNodeNetfilter(node_proc_net);
  if (!node.ok()) return node.status();
  return std::unique_ptr<Backend>(std::make_unique<AutoBackend>(*std::move(node)));
}

}  // namespace pnc::netns
