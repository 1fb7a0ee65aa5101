#include "simulator/controller_log.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"

namespace pnc::sim {

std::map<std::string, MarkingReconcile> MarkingReconcilesByPod(const std::string& log_path) {
  std::map<std::string, MarkingReconcile> out;
  std::ifstream in(log_path);
  std::string line;
  auto number = [](const nlohmann::json& j, const char* key, double* v) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() && absl::SimpleAtod(it->get<std::string>(), v) && *v >= 0;
  };
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) continue;
    auto msg = j.find("msg"), uid = j.find("pod_uid");
    if (msg == j.end() || uid == j.end() || !msg->is_string() || !uid->is_string() ||
        *msg != "pod initialized")
      continue;
    MarkingReconcile m;
    if (!number(j, "took_ms", &m.took_ms) || !number(j, "locate_ms", &m.locate_ms) || m.locate_ms > m.took_ms)
      continue;
    out[uid->get<std::string>()] = m;
  }
  return out;
}

}  // namespace pnc::sim
