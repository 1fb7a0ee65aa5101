// Reading small kernel-made files (/proc/<pid>/stat, cgroup, cmdline): no syscalls elsewhere for it.
#ifndef PNC_NETNS_PROC_FILE_H_
#define PNC_NETNS_PROC_FILE_H_

#include <optional>
#include <string>

namespace pnc::netns {

// The file's content, read to its end (EINTR retried) but never past 1 MiB (no legitimate /proc file we read
// is that large; a larger one is returned cut there). nullopt when it cannot be opened (e.g. the process is
// gone).
std::optional<std::string> ReadSmallFile(const std::string& path);

}  // namespace pnc::netns

#endif  // PNC_NETNS_PROC_FILE_H_
