#include "simulator/apiserver/protobuf_body.h"

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pnc::sim {

using nlohmann::json;

namespace {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

// One field of a message: its number, wire type and value (varint or bytes).
struct Field {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t varint = 0;
  absl::string_view bytes;
};

class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  absl::StatusOr<Field> Next() {
    auto key = Varint();
    if (!key.ok()) return key.status();
    Field f;
    f.number = static_cast<uint32_t>(*key >> 3);
    f.type = static_cast<WireType>(*key & 7);
    switch (f.type) {
      case WireType::kVarint: {
        auto v = Varint();
        if (!v.ok()) return v.status();
        f.varint = *v;
        return f;
      }
      case WireType::kLength: {
        auto len = Varint();
        if (!len.ok()) return len.status();
        if (*len > data_.size() - pos_) return Malformed("length beyond the end");
        f.bytes = data_.substr(pos_, *len);
        pos_ += *len;
        return f;
      }
      case WireType::kFixed64:
      case WireType::kFixed32: {
        size_t n = f.type == WireType::kFixed64 ? 8 : 4;
        if (n > data_.size() - pos_) return Malformed("fixed field beyond the end");
        f.bytes = data_.substr(pos_, n);
        pos_ += n;
        return f;
      }
    }
    return Malformed(absl::StrCat("wire type ", static_cast<int>(f.type)));
  }

 private:
  static absl::Status Malformed(absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("malformed protobuf body: ", what));
  }
  absl::StatusOr<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Malformed("truncated varint");
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Malformed("varint too long");
  }

  absl::string_view data_;
  size_t pos_ = 0;
};

using FieldFn = std::function<absl::Status(const Field&)>;

absl::Status ForEachField(absl::string_view message, const FieldFn& fn) {
  Reader r(message);
  while (!r.done()) {
    auto f = r.Next();
    if (!f.ok()) return f.status();
    if (auto s = fn(*f); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A map<string, string|bytes> entry: {1: key, 2: value}.
absl::Status MapEntry(absl::string_view entry, std::string* key, std::string* value) {
  return ForEachField(entry, [&](const Field& f) {
    if (f.type != WireType::kLength) return absl::OkStatus();
    if (f.number == 1) *key = std::string(f.bytes);
    if (f.number == 2) *value = std::string(f.bytes);
    return absl::OkStatus();
  });
}

absl::Status AddMapEntry(absl::string_view entry, json& object, bool base64) {
  std::string k, v;
  if (auto s = MapEntry(entry, &k, &v); !s.ok()) return s;
  object[k] = base64 ? absl::Base64Escape(v) : v;
  return absl::OkStatus();
}

// k8s.io/apimachinery/pkg/apis/meta/v1 ObjectMeta, the fields a client sets on create/update.
absl::StatusOr<json> ObjectMeta(absl::string_view message) {
  json md = json::object();
  auto s = ForEachField(message, [&](const Field& f) -> absl::Status {
    switch (f.number) {
      case 1:
        md["name"] = std::string(f.bytes);
        break;
      case 2:
        md["generateName"] = std::string(f.bytes);
        break;
      case 3:
        md["namespace"] = std::string(f.bytes);
        break;
      case 5:
        md["uid"] = std::string(f.bytes);
        break;
      case 6:
        md["resourceVersion"] = std::string(f.bytes);
        break;
      case 11:
        return AddMapEntry(f.bytes, md["labels"], false);
      case 12:
        return AddMapEntry(f.bytes, md["annotations"], false);
      case 14:
        md["finalizers"].push_back(std::string(f.bytes));
        break;
      default:  // selfLink, generation, timestamps, ownerReferences, managedFields: server-owned or unused
                // here
        break;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const char* key : {"name", "generateName", "namespace", "uid", "resourceVersion"}) {
    if (md.contains(key) && md[key].get<std::string>().empty()) md.erase(key);
  }
  return md;
}

// A core/v1 object: field 1 is its ObjectMeta; `field` decodes the others into `o` (unknown ones ignored).
absl::StatusOr<json> CoreObject(absl::string_view raw, const char* kind,
                                const std::function<absl::Status(const Field&, json& o)>& field) {
  json o = {{"apiVersion", "v1"}, {"kind", kind}};
  auto s = ForEachField(raw, [&](const Field& f) -> absl::Status {
    if (f.number != 1) return field(f, o);
    auto md = ObjectMeta(f.bytes);
    if (!md.ok()) return md.status();
    o["metadata"] = *md;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return o;
}

absl::StatusOr<json> Secret(absl::string_view raw) {
  return CoreObject(raw, "Secret", [](const Field& f, json& o) -> absl::Status {
    switch (f.number) {
      case 2:
        return AddMapEntry(f.bytes, o["data"], true);
      case 3:
        o["type"] = std::string(f.bytes);
        return absl::OkStatus();
      case 4:
        return AddMapEntry(f.bytes, o["stringData"], false);
      case 5:
        o["immutable"] = f.varint != 0;
        return absl::OkStatus();
      default:
        return absl::OkStatus();
    }
  });
}

absl::StatusOr<json> ConfigMap(absl::string_view raw) {
  return CoreObject(raw, "ConfigMap", [](const Field& f, json& o) -> absl::Status {
    switch (f.number) {
      case 2:
        return AddMapEntry(f.bytes, o["data"], false);
      case 3:
        return AddMapEntry(f.bytes, o["binaryData"], true);
      case 4:
        o["immutable"] = f.varint != 0;
        return absl::OkStatus();
      default:
        return absl::OkStatus();
    }
  });
}

absl::StatusOr<json> Namespace(absl::string_view raw) {
  // spec.finalizers / status: server-owned here.
  return CoreObject(raw, "Namespace", [](const Field&, json&) { return absl::OkStatus(); });
}

// meta/v1 DeleteOptions (Helm's uninstall deletes its release Secrets with one).
absl::StatusOr<json> DeleteOptions(absl::string_view raw) {
  json o = {{"apiVersion", "meta.k8s.io/v1"}, {"kind", "DeleteOptions"}};
  auto s = ForEachField(raw, [&](const Field& f) -> absl::Status {
    switch (f.number) {
      case 1:
        o["gracePeriodSeconds"] = static_cast<int64_t>(f.varint);
        return absl::OkStatus();
      case 2:
        return ForEachField(f.bytes, [&](const Field& p) {
          if (p.number == 1) o["preconditions"]["uid"] = std::string(p.bytes);
          if (p.number == 2) o["preconditions"]["resourceVersion"] = std::string(p.bytes);
          return absl::OkStatus();
        });
      case 3:
        o["orphanDependents"] = f.varint != 0;
        return absl::OkStatus();
      case 4:
        o["propagationPolicy"] = std::string(f.bytes);
        return absl::OkStatus();
      case 5:
        o["dryRun"].push_back(std::string(f.bytes));
        return absl::OkStatus();
      default:
        return absl::OkStatus();
    }
  });
  if (!s.ok()) return s;
  return o;
}

}  // namespace

absl::StatusOr<json> DecodeKubeProtobuf(absl::string_view body) {
  const absl::string_view kMagic("k8s\0", 4);
  if (body.substr(0, 4) != kMagic) return absl::InvalidArgumentError("protobuf body without the k8s magic");
  std::string api_version, kind;
  absl::string_view raw;
  auto s = ForEachField(body.substr(4), [&](const Field& f) -> absl::Status {
    if (f.number == 1) {
      return ForEachField(f.bytes, [&](const Field& t) {
        if (t.number == 1) api_version = std::string(t.bytes);
        if (t.number == 2) kind = std::string(t.bytes);
        return absl::OkStatus();
      });
    }
    if (f.number == 2) raw = f.bytes;
    if (f.number == 3 && !f.bytes.empty())
      return absl::UnimplementedError(absl::StrCat("content encoding ", f.bytes));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  absl::StatusOr<json> out =
      absl::UnimplementedError(absl::StrCat("no protobuf decoding for ", api_version, " ", kind));
  if (api_version == "v1" && kind == "Secret") out = Secret(raw);
  if (api_version == "v1" && kind == "ConfigMap") out = ConfigMap(raw);
  if (api_version == "v1" && kind == "Namespace") out = Namespace(raw);
  if (kind == "DeleteOptions" && (api_version == "v1" || api_version == "meta.k8s.io/v1")) {
    out = DeleteOptions(raw);
    return out;  // not an object: no metadata
  }
  if (out.ok() && !out->contains("metadata")) (*out)["metadata"] = json::object();
  return out;
}

}  // namespace pnc::sim
