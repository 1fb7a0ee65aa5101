#include "simulator/resource_sampler.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pnc::sim {

absl::StatusOr<ResourceSample> SampleProcess(pid_t pid) {
  ResourceSample s;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  if (!status) return absl::NotFoundError(absl::StrCat("no process ", pid));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, "kB");
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &s.rss_kib);
    } else if (absl::ConsumePrefix(&v, "RssAnon:") || absl::ConsumePrefix(&v, "RssFile:")) {
      int64_t* field = absl::StartsWith(line, "RssAnon") ? &s.anon_kib : &s.file_kib;
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, "kB");
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(v), field);
    } else if (absl::ConsumePrefix(&v, "Threads:")) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &s.threads);
    }
  }
  {
    // Fields 14 and 15 (utime, stime) follow the ")" that ends the command name.
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t paren = all.rfind(')');
    if (paren != std::string::npos) {
      std::vector<std::string> f = absl::StrSplit(all.substr(paren + 2), ' ');
      int64_t ut = 0, st = 0;
      if (f.size() > 13 && absl::SimpleAtoi(f[11], &ut) && absl::SimpleAtoi(f[12], &st))
        s.cpu_ms = (ut + st) * 1000 / ::sysconf(_SC_CLK_TCK);
    }
  }
  DIR* d = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat("no fd dir for ", pid));
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++s.fds;
  }
  ::closedir(d);
  if (s.rss_kib == 0) return absl::NotFoundError(absl::StrCat("process ", pid, " has no memory (exiting)"));
  return s;
}

ResourceSampler::ResourceSampler(pid_t pid, absl::Duration every) : pid_(pid), every_(every) {
  absl::MutexLock l(&mu_);
  Take();
  thread_ = std::thread([this] { Loop(); });
}

ResourceSampler::~ResourceSampler() { Stop(); }

void ResourceSampler::Take() {
  auto s = SampleProcess(pid_);
  if (!s.ok()) return;
  if (series_.samples == 0) series_.start = *s;
  series_.end = *s;
  series_.peak.rss_kib = std::max(series_.peak.rss_kib, s->rss_kib);
  series_.peak.anon_kib = std::max(series_.peak.anon_kib, s->anon_kib);
  series_.peak.file_kib = std::max(series_.peak.file_kib, s->file_kib);
  series_.peak.fds = std::max(series_.peak.fds, s->fds);
  series_.peak.threads = std::max(series_.peak.threads, s->threads);
  series_.peak.cpu_ms = std::max(series_.peak.cpu_ms, s->cpu_ms);
  ++series_.samples;
}

void ResourceSampler::Loop() {
  absl::MutexLock l(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), every_)) Take();
}

void ResourceSampler::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    Take();
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

ResourceSeries ResourceSampler::Series() const {
  absl::MutexLock l(&mu_);
  return series_;
}

}  // namespace pnc::sim
