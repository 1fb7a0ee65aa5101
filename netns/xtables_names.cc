#include "netns/xtables_names.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pnc::netns {

absl::StatusOr<std::vector<std::string>> LegacyTablesInCurrentNetns(rules::Family family) {
  return LegacyTablesIn("/proc/thread-self/net", family);
}

absl::StatusOr<std::vector<std::string>> LegacyTablesIn(const std::string& proc_net_dir,
                                                        rules::Family family) {
  const std::string path_s =
      absl::StrCat(proc_net_dir, family == rules::Family::kIPv4 ? "/ip_tables_names" : "/ip6_tables_names");
  const char* path = path_s.c_str();
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::vector<std::string>{};
    // Internal, not StatusFromErrno: restore_backend reads InvalidArgument from here as "rules outside the
    // model".
    return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) text.append(buf, n);
  const int err = errno;
  ::close(fd);
  if (n < 0) return absl::InternalError(absl::StrCat("read ", path, ": ", std::strerror(err)));
  std::vector<std::string> names = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return names;
}

absl::StatusOr<std::vector<rules::Table>> LegacyModelTablesInCurrentNetns(rules::Family family) {
  absl::StatusOr<std::vector<std::string>> names = LegacyTablesInCurrentNetns(family);
  if (!names.ok()) return names.status();
  std::vector<rules::Table> out;
  for (rules::Table t :
       {rules::Table::kRaw, rules::Table::kMangle, rules::Table::kNat, rules::Table::kFilter}) {
    for (const auto& n : *names) {
      if (n == rules::TableName(t)) out.push_back(t);
    }
  }
  return out;
}

}  // namespace pnc::netns
