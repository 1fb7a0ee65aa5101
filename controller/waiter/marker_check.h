// Reading the controller's proof marker (rules/mark.h, netns/proof_marker.h) from inside the pod, without
// privileges: an RTM_GETRULE dump of the IPv4 rule list over a plain NETLINK_ROUTE socket (no libmnl: the
// waiter links statically and stays small).
#ifndef PNC_CONTROLLER_WAITER_MARKER_CHECK_H_
#define PNC_CONTROLLER_WAITER_MARKER_CHECK_H_

#include <cstdint>
#include <string>

namespace pnc::waiter {

enum class MarkerCheck {
  kPresent,  // a NOP rule at the marker priority, with the marker protocol and fwmark == value
  kAbsent,
  kError,  // the dump failed; *error says why
};

MarkerCheck CheckProofMarker(uint32_t value, std::string* error);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_MARKER_CHECK_H_
