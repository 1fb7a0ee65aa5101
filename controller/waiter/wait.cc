#include "controller/waiter/wait.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "controller/waiter/downward_api.h"

namespace pnc::waiter {
namespace {

constexpr size_t kMaxFile =
    4u << 20;  // annotations are limited to 256 KiB in total; be generous, not unbounded
constexpr uint32_t kDirEvents = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY |
                                IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

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

}  // namespace

AnnotationWatcher::AnnotationWatcher(WaitOptions options) : o_(std::move(options)) {
  fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd_ < 0) {
    setup_error_ = std::string("inotify_init1: ") + std::strerror(errno);
    return;
  }
  if (o_.require_netns_match && o_.own_netns_inode == 0) {
    struct stat st;
    if (::stat("/proc/self/ns/net", &st) != 0) {
      setup_error_ = std::string("cannot identify this pod's network namespace (stat /proc/self/ns/net: ") +
                     std::strerror(errno) + "); pass --require_netns_match=false to accept the status alone";
      return;
    }
    o_.own_netns_inode = static_cast<uint64_t>(st.st_ino);
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
    if (text) {
      std::map<std::string, std::string> ann = ParseAnnotations(*text);
      auto it = ann.find(o.key);
      if (it == ann.end()) {
        last_seen = "annotation " + o.key + " not set";
      } else if (it->second == o.value) {
        auto bound = ann.find(o.netns_key);
        const std::string own = std::to_string(o.own_netns_inode);
        if (!o.require_netns_match || (bound != ann.end() && bound->second == own)) {
          r.outcome = WaitOutcome::kReady;
          r.message = it->second;
          return r;
        }
        // Not for this netns (yet): keep waiting for the controller to rebind it.
        if (bound == ann.end()) {
          last_seen = "annotation " + o.key + "=\"" + Printable(it->second) + "\" without " + o.netns_key +
                      ": written by an older controller or set by hand; pass --require_netns_match=false to "
                      "accept it";
        } else {
          last_seen = "annotation " + o.key + "=\"" + Printable(it->second) + "\" but for netns " +
                      Printable(bound->second.substr(0, 40)) + ", this pod's is " + own +
                      ": the sandbox was recreated and the controller has not re-applied the rules yet";
        }
      } else if (!o.error_prefix.empty() &&
                 it->second.compare(0, o.error_prefix.size(), o.error_prefix) == 0) {
        r.outcome = WaitOutcome::kError;
        r.message = Printable(it->second.substr(o.error_prefix.size()));
        return r;
      } else {
        last_seen = "annotation " + o.key + "=\"" + Printable(it->second.substr(0, 200)) + "\"";
      }
    } else {
      last_seen = "file " + o.file + " not readable yet";
    }
    // Sleep until something changes in the directory.
    while (true) {
      int64_t left = deadline - NowMs();
      if (left <= 0) {
        r.outcome = WaitOutcome::kTimeout;
        r.message = last_seen;
        return r;
      }
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
