// How to reach and authenticate to an API server: in-cluster (service account) or a kubeconfig file.
#ifndef PNC_KUBE_CONFIG_H_
#define PNC_KUBE_CONFIG_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pnc::kube {

struct ClientConfig {
  std::string server;  // "https://10.96.0.1:443" (no trailing '/'; may carry a path prefix)
  // TLS trust: a PEM file, PEM bytes, or neither (system store). insecure skips server verification (dev
  // only).
  std::string ca_file;
  std::string ca_data;
  bool insecure_skip_tls_verify = false;
  // Bearer token: a fixed value or a file that is re-read when it changes (projected service-account tokens
  // rotate).
  std::string token;
  std::string token_file;
  absl::Duration token_reread_interval = absl::Minutes(1);
  // Client certificate (mTLS): file paths or PEM bytes.
  std::string client_cert_file;
  std::string client_cert_data;
  std::string client_key_file;
  std::string client_key_data;
};

// In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT, the service-account token and CA in
// `sa_dir`. `getenv` is injectable for tests.
absl::StatusOr<ClientConfig> LoadInClusterConfig(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount",
    const std::function<std::optional<std::string>(const char*)>& getenv = nullptr);

// A kubeconfig file (YAML or JSON). Uses `context`, or current-context when empty. Relative file paths
// resolve against the kubeconfig's directory, like kubectl. Exec/auth-provider plugins are not supported
// (Unimplemented).
absl::StatusOr<ClientConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");
absl::StatusOr<ClientConfig> ParseKubeconfig(const std::string& text, const std::string& base_dir,
                                             const std::string& context = "");

// Hands out the current bearer token. With a token file it re-reads the file at most once per interval and
// keeps the last good token if a read fails (the kubelet replaces the file atomically, but be tolerant).
// Thread-safe.
class TokenSource {
 public:
  TokenSource(std::string fixed_token, std::string token_file, absl::Duration reread_interval,
              std::function<absl::Time()> now = absl::Now);
  // Empty string: no token configured. Error only if the file never could be read.
  absl::StatusOr<std::string> Token();

 private:
  const std::string fixed_;
  const std::string file_;
  const absl::Duration interval_;
  const std::function<absl::Time()> now_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time last_read_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace pnc::kube

#endif  // PNC_KUBE_CONFIG_H_
