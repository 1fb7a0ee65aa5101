#include "netns/cri/chain_locator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pnc::netns {
namespace {

// Higher = more informative for the caller deciding what to do next (FailedPrecondition returns earlier).
int Rank(absl::StatusCode code) {
  if (code == absl::StatusCode::kNotFound) return 1;  // not there yet
  return 2;                                           // transient or unexpected
}

class ChainLocator : public Locator {
 public:
  explicit ChainLocator(std::vector<std::unique_ptr<Locator>> locators) : locators_(std::move(locators)) {
    std::vector<std::string> names;
    for (const auto& l : locators_) names.push_back(l->Name());
    name_ = absl::StrCat("chain(", absl::StrJoin(names, ","), ")");
  }
  std::string Name() const override { return name_; }

  // The first locator that can list answers; if none can, the first real error (else Unimplemented).
  absl::StatusOr<std::vector<std::string>> ReadyPodUids() override {
    absl::Status first_error = absl::UnimplementedError(absl::StrCat(name_, " cannot list ready sandboxes"));
    for (const auto& l : locators_) {
      absl::StatusOr<std::vector<std::string>> uids = l->ReadyPodUids();
      if (uids.ok()) return uids;
      if (absl::IsUnimplemented(first_error) && !absl::IsUnimplemented(uids.status()))
        first_error = uids.status();
    }
    return first_error;
  }

  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override {
    if (locators_.empty()) return absl::FailedPreconditionError("no locator configured");
    std::vector<std::string> messages;
    absl::StatusCode worst = absl::StatusCode::kNotFound;
    int worst_rank = 0;
    for (const auto& l : locators_) {
      absl::StatusOr<NetnsHandle> h = l->Locate(pod);
      if (h.ok()) return h;
      messages.push_back(absl::StrCat(l->Name(), ": ", h.status().ToString()));
      // A refusal (host netns, sandbox of another pod, IP mismatch) is final: a later, less informed locator
      // must not hand out the namespace an earlier one rejected.
      if (h.status().code() == absl::StatusCode::kFailedPrecondition) {
        return absl::FailedPreconditionError(absl::StrJoin(messages, "; "));
      }
      if (Rank(h.status().code()) > worst_rank) {
        worst_rank = Rank(h.status().code());
        worst = h.status().code();
      }
    }
    return absl::Status(worst, absl::StrJoin(messages, "; "));
  }

 private:
  std::vector<std::unique_ptr<Locator>> locators_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Locator> NewChainLocator(std::vector<std::unique_ptr<Locator>> locators) {
  return std::make_unique<ChainLocator>(std::move(locators));
}

}  // namespace pnc::netns
