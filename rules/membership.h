// Mesh membership: does the controller program redirection into this pod? Pure function of PodFacts.
//
// A pod is a member when it is not hostNetwork (never: its netns is the node's) and either
//  - Istio-native: it has a container (or a native-sidecar init container, restartPolicy Always) named
//  istio-proxy,
//    carries the sidecar.istio.io/status annotation, and has no istio-init init container (that one programs
//    the rules itself; doing it twice would duplicate them); or
//  - 2018-compatible opt-in: istio-pod-network-controller/initialize is "true" on the pod, or on its
//  namespace and
//    the pod does not say "false".
// sidecar.istio.io/inject "false" (label first, else annotation) opts the pod out of both.
// Whether the pod is already initialized is the controller's business, not membership's.
#ifndef PNC_RULES_MEMBERSHIP_H_
#define PNC_RULES_MEMBERSHIP_H_

#include <string>

#include "rules/inputs.h"

namespace pnc::rules {

struct MembershipDecision {
  bool member = false;
  std::string
      reason;  // always set; human readable, safe to log (pod-provided values are escaped and truncated)
};

MembershipDecision DecideMembership(const PodFacts& pod);

}  // namespace pnc::rules

#endif  // PNC_RULES_MEMBERSHIP_H_
