#include "simulator/netfilter_probe.h"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "simulator/process.h"

namespace pnc::sim {

absl::StatusOr<std::string> ListNetfilterTables(int netns_fd, const std::string& scratch_path) {
  std::string out;
  absl::Status status;
  auto read_xtables = [&] {
    for (const char* family : {"ip", "ip6"}) {
      std::ifstream f(absl::StrCat("/proc/thread-self/net/", family, "_tables_names"));
      std::string table;
      while (f >> table) absl::StrAppend(&out, family, ":", table, " ");
    }
  };
  if (netns_fd < 0) {
    read_xtables();
  } else {
    // A short-lived thread enters the namespace, so no other thread of this process changes namespace.
    std::thread t([&] {
      if (::setns(netns_fd, CLONE_NEWNET) != 0) {
        status = absl::InternalError(absl::StrCat("setns: ", std::strerror(errno)));
        return;
      }
      read_xtables();
    });
    t.join();
    if (!status.ok()) return status;
  }
  const char* nft = ::access("/usr/sbin/nft", X_OK) == 0 ? "/usr/sbin/nft" : nullptr;
  if (nft != nullptr) {
    ::unlink(scratch_path.c_str());
    SpawnOptions so;
    so.argv = {nft, "list", "tables"};
    so.netns_fd = netns_fd;
    so.log_path = scratch_path;
    auto child = ChildProcess::Spawn(so);
    if (!child.ok()) return child.status();
    int code = child->Wait();
    std::ifstream f(scratch_path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (code != 0) return absl::InternalError(absl::StrCat("nft list tables exited ", code, ": ", ss.str()));
    for (absl::string_view line : absl::StrSplit(ss.str(), '\n', absl::SkipWhitespace())) {
      absl::StrAppend(&out, "nft:", absl::StripAsciiWhitespace(line), " ");
    }
    ::unlink(scratch_path.c_str());
  }
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

}  // namespace pnc::sim
