#include "simulator/downward.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pnc::sim {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
size_t Utf8Len(const std::string& s, size_t i, uint32_t* cp) {
  unsigned char c = s[i];
  size_t n;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    n = 2;
    *cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    *cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    *cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = s[i + k];
    if ((cc & 0xc0) != 0x80) return 0;
    *cp = (*cp << 6) | (cc & 0x3f);
  }
  if ((n == 2 && *cp < 0x80) || (n == 3 && *cp < 0x800) || (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
      (*cp >= 0xd800 && *cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

}  // namespace

std::string GoQuote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t n = Utf8Len(s, i, &cp);
    if (n == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\v':
        out += "\\v";
        break;
      default:
        if (cp < 0x20 || cp == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", cp);
        } else if (cp >= 0x80 && cp < 0xa0) {
          // C1 controls are not printable for Go either.
          absl::StrAppendFormat(&out, "\\u%04x", cp);
        } else {
          out.append(s, i, n);
        }
    }
    i += n;
  }
  out += "\"";
  return out;
}

std::string FormatDownwardMap(const std::map<std::string, std::string>& values) {
  std::string out;
  for (const auto& [k, v] : values) absl::StrAppend(&out, k, "=", GoQuote(v), "\n");
  return out;
}

absl::Status DownwardVolume::Update(const std::map<std::string, std::string>& files) {
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir " + dir_);
  std::string ts = absl::StrCat("..", absl::FormatTime("%Y_%m_%d_%H_%M_%S", absl::Now(), absl::UTCTimeZone()),
                                ".", ++seq_, getpid());
  std::string ts_dir = absl::StrCat(dir_, "/", ts);
  if (::mkdir(ts_dir.c_str(), 0755) != 0) return Errno("mkdir " + ts_dir);
  ::chmod(ts_dir.c_str(), 0755);
  for (const auto& [name, content] : files) {
    std::string path = absl::StrCat(ts_dir, "/", name);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("open " + path);
    size_t off = 0;
    while (off < content.size()) {
      ssize_t n = ::write(fd, content.data() + off, content.size() - off);
      if (n < 0) {
        ::close(fd);
        return Errno("write " + path);
      }
      off += n;
    }
    ::fchmod(fd, 0644);
    ::close(fd);
  }
  std::string tmp = dir_ + "/..data_tmp";
  ::unlink(tmp.c_str());
  if (::symlink(ts.c_str(), tmp.c_str()) != 0) return Errno("symlink " + tmp);
  if (::rename(tmp.c_str(), (dir_ + "/..data").c_str()) != 0) return Errno("rename ..data_tmp");
  for (const auto& [name, content] : files) {
    std::string link = absl::StrCat(dir_, "/", name);
    struct stat st;
    if (::lstat(link.c_str(), &st) != 0) {
      if (::symlink(absl::StrCat("..data/", name).c_str(), link.c_str()) != 0)
        return Errno("symlink " + link);
    }
  }
  if (!current_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(absl::StrCat(dir_, "/", current_), ec);
  }
  current_ = ts;
  return absl::OkStatus();
}

void DownwardVolume::Remove() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  current_.clear();
}

}  // namespace pnc::sim
