#include "simulator/controller_log.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"

namespace pnc::sim {

std::map<std::string, double> LocateMsByPod(const std::string& log_path) {
  std::map<std::string, double> out;
  std::ifstream in(log_path);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) continue;
    auto msg = j.find("msg"), uid = j.find("pod_uid"), ms = j.find("locate_ms");
    if (msg == j.end() || uid == j.end() || ms == j.end() || !msg->is_string() || !uid->is_string() ||
        !ms->is_string() || *msg != "pod initialized")
      continue;
    double v = 0;
    if (absl::SimpleAtod(ms->get<std::string>(), &v) && v >= 0) out[uid->get<std::string>()] = v;
  }
  return out;
}

}  // namespace pnc::sim
