#include "controller/waiter/wait.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

#include "controller/waiter/downward_api.h"
#include "controller/waiter/fd.h"
#include "controller/waiter/marker_check.h"
#include "controller/waiter/probe.h"

namespace pnc::waiter {
namespace {

constexpr int kSoNetnsCookie = 71;  // SO_NETNS_COOKIE (Linux >= 5.14); older libc headers lack it
constexpr char kBootIdFile[] = "/proc/sys/kernel/random/boot_id";

constexpr size_t kMaxFile =
    4u << 20;  // annotations are limited to 256 KiB in total; be generous, not unbounded
constexpr uint32_t kDirEvents = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY |
                                IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// nullopt: file missing or unreadable right now (it may appear later).
std::optional<std::string> ReadFile(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return std::nullopt;
  std::string out;
  char buf[16384];
  while (out.size() < kMaxFile) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Annotation values are tenant-controlled (anyone who may edit the pod) and end up in the container's log and
// termination message: control bytes are escaped (\xNN) and the text is bounded.
constexpr size_t kMaxShown = 1024;
std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= kMaxShown) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string DirOf(const std::string& file) {
  size_t slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return file.substr(0, slash);
}

std::string Get(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}

// What one read of the annotations file says.
struct Reading {
  enum Kind { kWait, kError, kProbe, kReady } kind = kWait;
  std::string text;  // kWait: what was seen; kError: the reason
  rules::ProbeSpec probe;
  std::string note;
};

Reading Evaluate(const WaitOptions& o, const std::optional<std::string>& text) {
  Reading r;
  if (!text) {
    r.text = "file " + o.file + " not readable yet";
    return r;
  }
  std::map<std::string, std::string> ann = ParseAnnotations(*text);
  auto it = ann.find(o.key);
  if (it == ann.end()) {
    r.text = "annotation " + o.key + " not set";
    return r;
  }
  if (!o.error_prefix.empty() && it->second.compare(0, o.error_prefix.size(), o.error_prefix) == 0) {
    r.kind = Reading::kError;
    r.text = Printable(it->second.substr(o.error_prefix.size()));
    return r;
  }
  if (it->second != o.value) {
    r.text = "annotation " + o.key + "=\"" + Printable(it->second.substr(0, 200)) + "\"";
    return r;
  }
  const std::string shown = o.key + "=\"" + Printable(it->second) + "\"";
  if (o.require_netns_match) {
    auto bound = ann.find(o.netns_key);
    const std::string own = rules::FormatNetnsIdentity(*o.own_identity);
    if (bound == ann.end()) {
      r.text = shown + " without " + o.netns_key + " (set by hand or by a controller that predates it)";
      return r;
    }
    std::optional<rules::NetnsIdentity> id = rules::ParseNetnsIdentity(bound->second);
    if (!id) {
      r.text = shown + " but " + o.netns_key + "=\"" + Printable(bound->second.substr(0, 80)) +
               "\" is not a netns identity (<boot_id>/<cookie>)";
      return r;
    }
    if (!(*id == *o.own_identity)) {
      r.text =
          shown + " but for netns " + Printable(bound->second) + ", this pod's is " + own +
          (id->boot_id != o.own_identity->boot_id ? " (marked before a reboot)"
                                                  : " (the sandbox was recreated, or the mark is forged)") +
          ": waiting for the controller to apply and mark this one";
      return r;
    }
  }
  if (!o.probe) {
    r.kind = Reading::kReady;
    r.note = "NOT proven: --probe=false, accepted on the mark alone";
    return r;
  }
  auto probe = ann.find(o.probe_key);
  std::optional<rules::ProbeSpec> spec =
      probe == ann.end() ? std::nullopt : rules::ParseProbeSpec(probe->second);
  if (!spec) {
    r.text =
        shown + " but " + o.probe_key +
        (probe == ann.end() ? std::string(" is missing")
                            : "=\"" + Printable(probe->second.substr(0, 80)) + "\" is not a valid probe");
    return r;
  }
  if (spec->none) {
    // No connection to prove redirection with (nothing outbound is captured, or the pod has no route):
    // only the controller's marker in this very netns vouches for the rules, and nothing in the pod can
    // create it. The mark's text alone (status, identity, `none`) can be forged.
    std::optional<uint32_t> value = rules::ProofMarkerValue(Get(ann, o.plan_key));
    if (!value) {
      r.text = shown + " with " + o.probe_key + "=none but no valid " + o.plan_key;
      return r;
    }
    std::string err;
    switch (CheckProofMarker(*value, &err)) {
      case MarkerCheck::kPresent:
        r.kind = Reading::kReady;
        r.note =
            "no datapath probe (the controller found no outbound TCP connection this pod's rules capture); "
            "proven by the controller's marker in this network namespace";
        return r;
      case MarkerCheck::kAbsent:
        r.text = shown + " with " + o.probe_key +
                 "=none, but the controller's marker is not in this network namespace (yet)";
        return r;
      case MarkerCheck::kError:
        r.text = shown + " with " + o.probe_key + "=none, and the marker cannot be read: " + err;
        return r;
    }
  }
  r.kind = Reading::kProbe;
  r.probe = *spec;
  r.text = shown;
  return r;
}

}  // namespace

AnnotationWatcher::AnnotationWatcher(WaitOptions options) : o_(std::move(options)) {
  fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd_ < 0) {
    setup_error_ = std::string("inotify_init1: ") + std::strerror(errno);
    return;
  }
  if (o_.require_netns_match && !o_.own_identity) {
    rules::NetnsIdentity id;
    std::string err;
    if (!ReadOwnIdentity(&id, &err)) {
      setup_error_ = "cannot identify this pod's network namespace: " + err;
      return;
    }
    o_.own_identity = id;
  }
  // Watch first, then read (in Wait): a swap between the two is then never missed.
  std::string dir = DirOf(o_.file);
  if (inotify_add_watch(fd_, dir.c_str(), kDirEvents) < 0) {
    setup_error_ = "cannot watch directory " + dir + ": " + std::strerror(errno);
  }
}

AnnotationWatcher::~AnnotationWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

WaitResult WaitForAnnotation(const WaitOptions& o, const std::atomic<bool>* cancel) {
  AnnotationWatcher w(o);
  return w.Wait(cancel);
}

bool ReadOwnIdentity(rules::NetnsIdentity* out, std::string* error) {
  Fd s;
  s.fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(s.fd, SOL_SOCKET, kSoNetnsCookie, &cookie, &len) != 0 || cookie == 0) {
    *error = std::string("getsockopt(SO_NETNS_COOKIE): ") + std::strerror(errno) +
             " (Linux >= 5.14 is needed; the controller refuses to run without it too)";
    return false;
  }
  std::optional<std::string> text = ReadFile(kBootIdFile);
  std::optional<std::string> boot = text ? rules::CanonicalBootId(*text) : std::nullopt;
  if (!boot) {
    *error = std::string("cannot read a boot id from ") + kBootIdFile;
    return false;
  }
  *out = rules::NetnsIdentity{*boot, cookie};
  return true;
}

WaitResult AnnotationWatcher::Wait(const std::atomic<bool>* cancel) {
  const WaitOptions& o = o_;
  WaitResult r;
  if (!setup_error_.empty()) {
    r.message = setup_error_;
    return r;
  }
  std::string dir = DirOf(o.file);
  const int64_t deadline = NowMs() + o.timeout_ms;
  std::string last_seen = "file not found";
  alignas(inotify_event) char evbuf[8192];
  while (true) {
    std::optional<std::string> text = ReadFile(o.file);
    ++r.reads;
    Reading reading = Evaluate(o, text);
    bool probing = false;  // marked for this netns, probe failing: retry on a timer too
    switch (reading.kind) {
      case Reading::kReady:
        r.outcome = WaitOutcome::kReady;
        r.message = o.value;
        r.note = reading.note;
        return r;
      case Reading::kError:
        r.outcome = WaitOutcome::kError;
        r.message = reading.text;
        return r;
      case Reading::kProbe: {
        ++r.probes;
        ProbeResult pr = RunProbe(reading.probe, o.probe_attempt_ms);
        if (pr.ok) {
          r.outcome = WaitOutcome::kReady;
          r.message = o.value;
          r.note = pr.message;
          return r;
        }
        last_seen = reading.text + " for this netns, but the datapath probe fails: " + pr.message;
        probing = true;
        break;
      }
      case Reading::kWait:
        last_seen = reading.text;
        break;
    }
    // Sleep until something changes in the directory (or, while probing, the next attempt is due).
    const int64_t retry_at = probing ? NowMs() + o.probe_interval_ms : deadline;
    while (true) {
      int64_t now = NowMs();
      int64_t left = deadline - now;
      if (left <= 0) {
        r.outcome = WaitOutcome::kTimeout;
        r.message = last_seen;
        return r;
      }
      if (probing && retry_at - now <= 0) break;
      if (probing && retry_at - now < left) left = retry_at - now;
      if (cancel != nullptr) {
        if (cancel->load()) {
          r.outcome = WaitOutcome::kTimeout;
          r.message = "cancelled";
          return r;
        }
        if (left > 100) left = 100;
      }
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc < 0 && errno != EINTR) {
        r.message = std::string("poll: ") + std::strerror(errno);
        return r;
      }
      if (rc <= 0) continue;
      bool dir_gone = false;
      ssize_t n;
      while ((n = ::read(fd_, evbuf, sizeof evbuf)) > 0) {  // drain: one re-read per burst of events
        for (char* ptr = evbuf; ptr < evbuf + n;) {
          auto* ev = reinterpret_cast<inotify_event*>(ptr);
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) dir_gone = true;
          ptr += sizeof(inotify_event) + ev->len;
        }
      }
      if (dir_gone) {
        r.message = "directory " + dir + " was removed or moved";
        return r;
      }
      break;
    }
  }
}

}  // namespace pnc::waiter
