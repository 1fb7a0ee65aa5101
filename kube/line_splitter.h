// LineSplitter: turns the byte chunks of a watch stream into complete lines. A JSON event may span any number
// of chunks, and a chunk may hold several events; nothing is assumed about chunk boundaries.
#ifndef PNC_KUBE_LINE_SPLITTER_H_
#define PNC_KUBE_LINE_SPLITTER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace pnc::kube {

class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 16 << 20) : max_line_(max_line) {}

  // Feeds bytes; calls on_line(std::string_view) for every complete, non-blank line (without '\n'). Stops
  // early and returns the callback's error if it returns one; ResourceExhausted if a line grows beyond
  // max_line.
  template <typename F>
  absl::Status Feed(std::string_view chunk, F&& on_line) {
    while (!chunk.empty()) {
      size_t nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (partial_.size() + chunk.size() > max_line_) {
          return absl::ResourceExhaustedError("watch: line exceeds the size limit");
        }
        partial_.append(chunk);
        return absl::OkStatus();
      }
      std::string_view line;
      if (partial_.empty()) {
        line = chunk.substr(0, nl);  // fast path: no copy
      } else {
        partial_.append(chunk.substr(0, nl));
        line = partial_;
      }
      chunk.remove_prefix(nl + 1);
      if (!IsBlank(line)) {
        absl::Status st = on_line(line);
        if (!st.ok()) {
          partial_.clear();
          return st;
        }
      }
      partial_.clear();
    }
    return absl::OkStatus();
  }

  // Bytes of an unfinished line (a stream that ends here was cut mid-event).
  size_t pending() const { return partial_.size(); }

 private:
  static bool IsBlank(std::string_view s) {
    for (char c : s)
      if (c != ' ' && c != '\r' && c != '\t') return false;
    return true;
  }
  size_t max_line_;
  std::string partial_;
};

}  // namespace pnc::kube

#endif  // PNC_KUBE_LINE_SPLITTER_H_
