#include "controller/waiter/downward_api.h"

#include <cstdint>

namespace pnc::waiter {
namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t r, std::string* out) {
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

}  // namespace

std::optional<std::string> GoUnquote(std::string_view q) {
  if (q.size() < 2 || q.front() != '"' || q.back() != '"') return std::nullopt;
  q = q.substr(1, q.size() - 2);
  std::string out;
  out.reserve(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (c == '"' || c == '\n') return std::nullopt;  // unescaped quote/newline inside
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= q.size()) return std::nullopt;
    char e = q[i];
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case 'x':
      case 'u':
      case 'U': {
        size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (i + n >= q.size()) return std::nullopt;  // digits live at i+1 .. i+n
        uint32_t v = 0;
        for (size_t k = 1; k <= n; ++k) {
          int h = Hex(q[i + k]);
          if (h < 0) return std::nullopt;
          v = v * 16 + static_cast<uint32_t>(h);
        }
        i += n;
        if (e == 'x') {
          out.push_back(static_cast<char>(v));
        } else {
          if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return std::nullopt;
          AppendUtf8(v, &out);
        }
        break;
      }
      default:
        if (e >= '0' && e <= '7') {  // \ooo, exactly three octal digits
          if (i + 2 >= q.size()) return std::nullopt;
          uint32_t v = 0;
          for (size_t k = 0; k < 3; ++k) {
            char d = q[i + k];
            if (d < '0' || d > '7') return std::nullopt;
            v = v * 8 + static_cast<uint32_t>(d - '0');
          }
          if (v > 255) return std::nullopt;
          i += 2;
          out.push_back(static_cast<char>(v));
          break;
        }
        return std::nullopt;
    }
  }
  return out;
}

std::map<std::string, std::string> ParseAnnotations(std::string_view text, int* malformed) {
  std::map<std::string, std::string> out;
  int bad = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t eq = line.find('=');  // keys never contain '='; values are quoted
    if (eq == std::string_view::npos || eq == 0) {
      ++bad;
      continue;
    }
    std::optional<std::string> v = GoUnquote(line.substr(eq + 1));
    if (!v) {
      ++bad;
      continue;
    }
    out[std::string(line.substr(0, eq))] = *std::move(v);
  }
  if (malformed != nullptr) *malformed = bad;
  return out;
}

}  // namespace pnc::waiter
