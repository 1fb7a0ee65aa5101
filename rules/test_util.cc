#include "rules/test_util.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_split.h"
#include "rules/annotations.h"

namespace pnc::rules::testing {

std::string LineDiff(const std::string& want, const std::string& got) {
  if (want == got) return "";
  std::vector<std::string> a = absl::StrSplit(want, '\n'), b = absl::StrSplit(got, '\n');
  const size_t n = a.size(), m = b.size();
  // LCS table; goldens are a few hundred lines at most.
  std::vector<std::vector<int>> l(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      l[i][j] = a[i] == b[j] ? l[i + 1][j + 1] + 1 : std::max(l[i + 1][j], l[i][j + 1]);
  struct Line {
    char op;
    std::string text;
  };
  std::vector<Line> lines;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      lines.push_back({' ', a[i]});
      ++i, ++j;
    } else if (i < n && (j == m || l[i + 1][j] >= l[i][j + 1])) {
      lines.push_back({'-', a[i++]});
    } else {
      lines.push_back({'+', b[j++]});
    }
  }
  // Print changed lines with 3 lines of context, "..." between hunks.
  std::ostringstream out;
  out << "--- want\n+++ got\n";
  std::vector<bool> show(lines.size(), false);
  for (size_t k = 0; k < lines.size(); ++k)
    if (lines[k].op != ' ')
      for (size_t c = (k >= 3 ? k - 3 : 0); c < std::min(lines.size(), k + 4); ++c) show[c] = true;
  bool gap = false;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (!show[k]) {
      gap = true;
      continue;
    }
    if (gap) out << "...\n";
    gap = false;
    out << lines[k].op << lines[k].text << "\n";
  }
  return out.str();
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  return static_cast<bool>(f);
}

PodFacts InjectedPod() {
  PodFacts pod;
  pod.uid = "9f1c2d3e-0000-4000-8000-000000000001";
  pod.name = "web-1";
  pod.namespace_name = "shop";
  pod.annotations[kSidecarStatusAnnotation] = R"({"containers":["istio-proxy"]})";
  ContainerFacts app;
  app.name = "app";
  app.ports.push_back({8080, "TCP"});
  ContainerFacts proxy;
  proxy.name = kProxyContainerName;
  pod.containers = {app, proxy};
  pod.pod_ips = {"10.244.1.5"};
  return pod;
}

}  // namespace pnc::rules::testing
