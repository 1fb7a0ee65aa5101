// Test helpers for rules/ (testonly): a readable line diff, file IO for goldens, and a default meshed pod.
#ifndef PNC_RULES_TEST_UTIL_H_
#define PNC_RULES_TEST_UTIL_H_

#include <optional>
#include <string>

#include "rules/inputs.h"

namespace pnc::rules::testing {

// Unified-style diff ("--- want", "+++ got", " context", "-removed", "+added") of two texts; empty when
// equal.
std::string LineDiff(const std::string& want, const std::string& got);

std::optional<std::string> ReadFile(const std::string& path);
bool WriteFile(const std::string& path, const std::string& content);

// An Istio-injected pod (istio-proxy container, sidecar.istio.io/status), IPv4 pod IP 10.244.1.5, no
// securityContext.
PodFacts InjectedPod();

}  // namespace pnc::rules::testing

#endif  // PNC_RULES_TEST_UTIL_H_
