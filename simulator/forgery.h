// A forging tenant: what a user who may create (and patch) pods can write on them, when no admission policy
// stops it: the controller's own mark, with a netns identity predicted from throwaway namespaces.
//
// Predictions: a throwaway netns is created, observed and freed right before the pod (a tenant learns the
// same from a throwaway pod on the node). The kernel hands its nsfs inode to the next namespace; netns
// cookies come from per-CPU counters, so the next cookie is the throwaway's + a little, on one of the CPUs.
// For spraying, the tenant learns every CPU's counter (throwaways pinned to each CPU: a tenant gets there
// with enough throwaway pods) and then patches the pod's netns annotation with each counter's next values,
// one after the other.
#ifndef PNC_SIMULATOR_FORGERY_H_
#define PNC_SIMULATOR_FORGERY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netns/testing/sandbox.h"
#include "simulator/recorder.h"
#include "simulator/scenario.pb.h"

namespace pnc::sim {

// The annotations to create the pod with (ForgeryRecord.annotations) and, for spray > 0, the netns values to
// patch afterwards (ForgeryRecord.spray). `sandbox` may be null only when `forge` guesses no netns.
// `throwaways` numbers the throwaway namespaces (unique names).
absl::StatusOr<ForgeryRecord> PlanForgery(const proto::Forgery& forge, netns::testing::Sandbox* sandbox,
                                          int* throwaways);

// What the tenant's guesses were worth for the pod's FIRST sandbox (the one the mark was forged for):
// "cookie guess RIGHT (…)", "inode guess wrong (sandbox has …)", "sprayed cookie RIGHT (…)", ...
std::string GuessOutcome(const ForgeryRecord& forgery, const PodRecord& pod);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_FORGERY_H_
