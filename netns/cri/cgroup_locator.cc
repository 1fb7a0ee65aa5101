#include "netns/cri/cgroup_locator.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "netns/addresses.h"
#include "netns/executor.h"
#include "netns/proc_file.h"
#include "re2/re2.h"

namespace pnc::netns {
namespace {

// A pod UID as kubelet writes it (RFC 4122 UUID; static pods: 32 hex digits), with '-' or '_' separators.
const RE2& UidPattern() {
  static const RE2* re =
      new RE2("(?i)[0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12}");
  return *re;
}

// The pod segment of a kubepods cgroup path: cgroupfs ".../kubepods/burstable/pod<uid>/..." or systemd
// "...kubepods-burstable-pod<uid_with_underscores>.slice/...". Anchored on a separator before "pod" and a
// separator or ".slice" after the UID, so a UID that merely contains ours cannot match.
const RE2& PodSegmentPattern() {
  static const RE2* re = new RE2(
      "(?i)[/"
      "-]pod([0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12})(?:\\.slice)?(?:/"
      "|$)");
  return *re;
}

std::string NormalizeUid(absl::string_view uid) {
  std::string out;
  for (char c : uid)
    if (c != '-' && c != '_') out.push_back(absl::ascii_tolower(c));
  return out;
}

// True when a cgroup file (lines "hierarchy-ID:controllers:path") places the process in the pod's cgroup.
bool CgroupNamesPod(const std::string& content, const std::string& normalized_uid) {
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    colon = line.find(':', colon + 1);
    if (colon == absl::string_view::npos) continue;
    absl::string_view path = line.substr(colon + 1);
    if (path.find("kubepods") == absl::string_view::npos) continue;
    re2::StringPiece input(path.data(), path.size());
    std::string uid;
    while (RE2::FindAndConsume(&input, PodSegmentPattern(), &uid)) {
      if (NormalizeUid(uid) == normalized_uid) return true;
    }
  }
  return false;
}

// Field 22 of /proc/PID/stat (starttime, clock ticks since boot). The command name (field 2) may contain
// spaces and parentheses, so count fields after the LAST ')'.
std::optional<uint64_t> StartTime(const std::string& proc_root, int pid) {
  std::optional<std::string> stat = ReadSmallFile(absl::StrCat(proc_root, "/", pid, "/stat"));
  if (!stat) return std::nullopt;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field 22 is fields[19].
  uint64_t v;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &v)) return std::nullopt;
  return v;
}

class CgroupLocator : public Locator {
 public:
  explicit CgroupLocator(std::string proc_root) : proc_root_(std::move(proc_root)) {}
  std::string Name() const override { return "cgroup"; }

  absl::StatusOr<NetnsHandle> Locate(const PodRef& pod) override {
    absl::StatusOr<std::vector<int>> pids = FindPodProcesses(proc_root_, pod.uid);
    if (!pids.ok()) return pids.status();
    if (pids->empty()) {
      return absl::NotFoundError(
          absl::StrCat("cgroup: no process of pod uid ", pod.uid, " under ", proc_root_, " yet"));
    }
    // The oldest process is the sandbox's; if it exited meanwhile, try the next one.
    absl::Status last = absl::NotFoundError("cgroup: every process of the pod exited during the scan");
    for (int pid : *pids) {
      std::string path = absl::StrCat(proc_root_, "/", pid, "/ns/net");
      absl::StatusOr<NetnsHandle> handle = NetnsHandle::Open(path);
      if (absl::IsNotFound(handle.status())) {
        last = handle.status();
        continue;
      }
      if (!handle.ok())
        return absl::Status(handle.status().code(), absl::StrCat("cgroup: ", handle.status().message()));
      if (!pod.ips.empty()) {
        bool has_ip = false;
        absl::Status s = RunInNetns(*handle, [&]() -> absl::Status {
          absl::StatusOr<bool> r = CurrentNetnsHasAnyAddress(pod.ips);
          if (!r.ok()) return r.status();
          has_ip = *r;
          return absl::OkStatus();
        });
        if (!s.ok()) return s;
        if (!has_ip) {
          return absl::FailedPreconditionError(absl::StrCat("cgroup: netns of pid ", pid, " (pod uid ",
                                                            pod.uid, ") holds none of the pod IPs ",
                                                            absl::StrJoin(pod.ips, ",")));
        }
      }
      return handle;
    }
    return last;
  }

 private:
  std::string proc_root_;
};

}  // namespace

absl::StatusOr<std::vector<int>> FindPodProcesses(const std::string& proc_root, const std::string& pod_uid) {
  if (!RE2::FullMatch(pod_uid, UidPattern())) {
    return absl::InvalidArgumentError(absl::StrCat("not a pod UID: '", absl::CHexEscape(pod_uid), "'"));
  }
  const std::string normalized = NormalizeUid(pod_uid);
  // Cheap pre-filter: the first 8 hex digits appear verbatim in both naming schemes (any case).
  const std::string prefix = normalized.substr(0, 8);
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr)
    return absl::UnavailableError(absl::StrCat("cannot list ", proc_root, ": ", std::strerror(errno)));
  std::vector<std::pair<uint64_t, int>> found;  // (start time, pid)
  while (dirent* e = ::readdir(dir)) {
    int pid;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 0) continue;
    std::optional<std::string> cgroup = ReadSmallFile(absl::StrCat(proc_root, "/", pid, "/cgroup"));
    if (!cgroup) continue;  // exited
    if (absl::AsciiStrToLower(*cgroup).find(prefix) == std::string::npos) continue;
    if (!CgroupNamesPod(*cgroup, normalized)) continue;
    std::optional<uint64_t> start = StartTime(proc_root, pid);
    if (!start) continue;
    found.emplace_back(*start, pid);
  }
  ::closedir(dir);
  std::sort(found.begin(), found.end());
  std::vector<int> pids;
  for (const auto& [start, pid] : found) pids.push_back(pid);
  return pids;
}

absl::StatusOr<bool> CurrentNetnsHasAnyAddress(const std::vector<std::string>& ips) {
  // Parse the wanted addresses first; an unparsable one is the caller's error.
  std::vector<std::pair<int, std::array<uint8_t, 16>>> want;
  for (const std::string& ip : ips) {
    std::array<uint8_t, 16> a{};
    if (inet_pton(AF_INET, ip.c_str(), a.data()) == 1) {
      want.push_back({AF_INET, a});
    } else if (inet_pton(AF_INET6, ip.c_str(), a.data()) == 1) {
      want.push_back({AF_INET6, a});
    } else {
      return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", ip));
    }
  }
  absl::StatusOr<std::vector<InterfaceAddress>> have = DumpCurrentNetnsAddresses();
  if (!have.ok()) return have.status();
  for (const InterfaceAddress& h : *have) {
    for (const auto& [family, addr] : want) {
      if (family == h.family && addr == h.addr) return true;
    }
  }
  return false;
}

std::unique_ptr<Locator> NewCgroupLocator(std::string proc_root) {
  return std::make_unique<CgroupLocator>(std::move(proc_root));
}

}  // namespace pnc::netns
