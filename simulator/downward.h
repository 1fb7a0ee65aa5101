// Downward API volume files written the way kubelet's AtomicWriter does, so that the waiter's inotify logic
// meets the real sequence of filesystem events:
//   <dir>/..<timestamp>/<file>       the payload, in a fresh directory per update
//   <dir>/..data -> ..<timestamp>    swapped atomically: symlink ..data_tmp, then rename(..data_tmp, ..data)
//   <dir>/<file> -> ..data/<file>    created once
// then the previous ..<timestamp> directory is removed.
// Annotation files use kubelet's format: one `key="value"` line per key, sorted by key, values quoted with
// Go's strconv.Quote rules.
#ifndef PNC_SIMULATOR_DOWNWARD_H_
#define PNC_SIMULATOR_DOWNWARD_H_

#include <map>
#include <string>

#include "absl/status/status.h"

namespace pnc::sim {

// Go's strconv.Quote for the byte string `s` (invalid UTF-8 bytes become \x.. escapes).
std::string GoQuote(const std::string& s);

// The pod_annotations / pod_labels payload.
std::string FormatDownwardMap(const std::map<std::string, std::string>& values);

class DownwardVolume {
 public:
  // `dir` is created (0755) if missing.
  explicit DownwardVolume(std::string dir) : dir_(std::move(dir)) {}
  // Publishes a new version of all files ({name -> content}) atomically. Files are 0644 so a non-root waiter
  // reads them.
  absl::Status Update(const std::map<std::string, std::string>& files);
  // Removes the whole directory.
  void Remove();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string current_;  // ..<timestamp> now behind ..data
  int seq_ = 0;
};

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_DOWNWARD_H_
