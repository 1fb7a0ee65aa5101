#include "kube/config.h"

#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace pnc::kube {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return ss.str();
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
  return absl::StrCat(base_dir, "/", p);
}

// YAML helpers: yaml-cpp throws on type errors; every call here runs inside ParseKubeconfig's try block.
std::string Scalar(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap()) return "";
  YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return "";
  return v.as<std::string>();
}

YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const YAML::Node& item : list) {
    if (item.IsMap() && Scalar(item, "name") == name) return item[inner];
  }
  return YAML::Node();
}

absl::StatusOr<std::string> DecodeData(const std::string& b64, const char* field) {
  std::string out;
  if (!absl::Base64Unescape(b64, &out))
    return absl::InvalidArgumentError(absl::StrCat(field, " is not base64"));
  return out;
}

}  // namespace

absl::StatusOr<ClientConfig> LoadInClusterConfig(
    const std::string& sa_dir, const std::function<std::optional<std::string>(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> std::optional<std::string> {
    if (getenv_fn) return getenv_fn(name);
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  std::optional<std::string> host = env("KUBERNETES_SERVICE_HOST");
  std::optional<std::string> port = env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return absl::FailedPreconditionError(
        "not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset (use --kubeconfig)");
  }
  ClientConfig cfg;
  // IPv6 service IPs need brackets in a URL.
  std::string h = absl::StrContains(*host, ':') ? absl::StrCat("[", *host, "]") : *host;
  cfg.server = absl::StrCat("https://", h, ":", *port);
  cfg.token_file = absl::StrCat(sa_dir, "/token");
  cfg.ca_file = absl::StrCat(sa_dir, "/ca.crt");
  absl::StatusOr<std::string> tok = ReadFile(cfg.token_file);
  if (!tok.ok())
    return absl::FailedPreconditionError(absl::StrCat("service-account token: ", tok.status().message()));
  absl::StatusOr<std::string> ca = ReadFile(cfg.ca_file);
  if (!ca.ok())
    return absl::FailedPreconditionError(absl::StrCat("service-account CA: ", ca.status().message()));
  return cfg;
}

absl::StatusOr<ClientConfig> ParseKubeconfig(const std::string& text, const std::string& base_dir,
                                             const std::string& context) {
  try {
    YAML::Node root = YAML::Load(text);  // JSON is valid YAML: JSON kubeconfigs work too
    if (!root || !root.IsMap()) return absl::InvalidArgumentError("kubeconfig: not a mapping");
    std::string ctx_name = context.empty() ? Scalar(root, "current-context") : context;
    if (ctx_name.empty())
      return absl::InvalidArgumentError("kubeconfig: no current-context and no --context given");
    YAML::Node ctx = FindNamed(root["contexts"], ctx_name, "context");
    if (!ctx || !ctx.IsMap())
      return absl::NotFoundError(absl::StrCat("kubeconfig: context \"", ctx_name, "\" not found"));
    std::string cluster_name = Scalar(ctx, "cluster");
    std::string user_name = Scalar(ctx, "user");
    YAML::Node cluster = FindNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster || !cluster.IsMap()) {
      return absl::NotFoundError(absl::StrCat("kubeconfig: cluster \"", cluster_name, "\" not found"));
    }
    ClientConfig cfg;
    cfg.server = std::string(absl::StripSuffix(Scalar(cluster, "server"), "/"));
    if (cfg.server.empty()) return absl::InvalidArgumentError("kubeconfig: cluster has no server");
    if (!absl::StartsWith(cfg.server, "https://") && !absl::StartsWith(cfg.server, "http://")) {
      return absl::InvalidArgumentError("kubeconfig: server must be an http(s) URL");
    }
    cfg.ca_file = Resolve(base_dir, Scalar(cluster, "certificate-authority"));
    if (std::string d = Scalar(cluster, "certificate-authority-data"); !d.empty()) {
      absl::StatusOr<std::string> pem = DecodeData(d, "certificate-authority-data");
      if (!pem.ok()) return pem.status();
      cfg.ca_data = *std::move(pem);
    }
    std::string insecure = absl::AsciiStrToLower(Scalar(cluster, "insecure-skip-tls-verify"));
    cfg.insecure_skip_tls_verify = insecure == "true";
    if (!user_name.empty()) {
      YAML::Node user = FindNamed(root["users"], user_name, "user");
      if (user && user.IsMap()) {
        if (user["exec"] || user["auth-provider"]) {
          return absl::UnimplementedError(
              "kubeconfig: exec/auth-provider credential plugins are not supported");
        }
        cfg.token = Scalar(user, "token");
        cfg.token_file = Resolve(base_dir, Scalar(user, "tokenFile"));
        cfg.client_cert_file = Resolve(base_dir, Scalar(user, "client-certificate"));
        cfg.client_key_file = Resolve(base_dir, Scalar(user, "client-key"));
        if (std::string d = Scalar(user, "client-certificate-data"); !d.empty()) {
          absl::StatusOr<std::string> pem = DecodeData(d, "client-certificate-data");
          if (!pem.ok()) return pem.status();
          cfg.client_cert_data = *std::move(pem);
        }
        if (std::string d = Scalar(user, "client-key-data"); !d.empty()) {
          absl::StatusOr<std::string> pem = DecodeData(d, "client-key-data");
          if (!pem.ok()) return pem.status();
          cfg.client_key_data = *std::move(pem);
        }
      } else {
        return absl::NotFoundError(absl::StrCat("kubeconfig: user \"", user_name, "\" not found"));
      }
    }
    return cfg;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig: ", e.what()));
  }
}

absl::StatusOr<ClientConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::string dir;
  if (size_t slash = path.rfind('/'); slash != std::string::npos) dir = path.substr(0, slash);
  if (dir.empty() && !path.empty() && path[0] == '/') dir = "/";
  return ParseKubeconfig(*text, dir, context);
}

TokenSource::TokenSource(std::string fixed_token, std::string token_file, absl::Duration reread_interval,
                         std::function<absl::Time()> now)
    : fixed_(std::move(fixed_token)),
      file_(std::move(token_file)),
      interval_(reread_interval),
      now_(std::move(now)) {}

absl::StatusOr<std::string> TokenSource::Token() {
  if (file_.empty()) return fixed_;
  absl::MutexLock lock(&mu_);
  absl::Time now = now_();
  if (now - last_read_ >= interval_ || token_.empty()) {
    absl::StatusOr<std::string> t = ReadFile(file_);
    if (t.ok()) {
      token_ = std::string(absl::StripAsciiWhitespace(*t));
      last_read_ = now;
    } else if (token_.empty()) {
      return t.status();
    }
  }
  return token_;
}

}  // namespace pnc::kube
