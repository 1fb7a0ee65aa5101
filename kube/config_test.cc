#include "kube/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace pnc::kube {
namespace {

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/cfgXXXXXX";
  char* d = mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr);
  return tmpl;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

TEST(Kubeconfig, YamlWithDataFieldsAndCurrentContext) {
  std::string ca = absl::Base64Escape("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
  std::string yaml = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
- name: devc
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: )" +
                     ca + R"(
contexts:
- name: prod
  context: {cluster: prod, user: produser}
- name: dev
  context:
    cluster: devc
    user: devuser
    namespace: default
users:
- name: devuser
  user:
    token: abc.def
    client-certificate-data: )" +
                     absl::Base64Escape("CERT") + R"(
    client-key-data: )" +
                     absl::Base64Escape("KEY") + R"(
- name: produser
  user:
    client-certificate: certs/client.crt
    client-key: /abs/client.key
)";
  absl::StatusOr<ClientConfig> cfg = ParseKubeconfig(yaml, "/home/u/.kube");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://127.0.0.1:6443");
  EXPECT_EQ(cfg->ca_data, "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(cfg->token, "abc.def");
  EXPECT_EQ(cfg->client_cert_data, "CERT");
  EXPECT_EQ(cfg->client_key_data, "KEY");
  EXPECT_FALSE(cfg->insecure_skip_tls_verify);

  absl::StatusOr<ClientConfig> prod = ParseKubeconfig(yaml, "/home/u/.kube", "prod");
  ASSERT_TRUE(prod.ok()) << prod.status();
  EXPECT_EQ(prod->server, "https://prod.example:6443");
  EXPECT_EQ(prod->client_cert_file, "/home/u/.kube/certs/client.crt");  // relative to the kubeconfig
  EXPECT_EQ(prod->client_key_file, "/abs/client.key");
  EXPECT_EQ(ParseKubeconfig(yaml, "", "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(Kubeconfig, JsonAndInsecure) {
  std::string json =
      R"({"current-context":"c","clusters":[{"name":"k","cluster":{"server":"http://127.0.0.1:8080",
      "insecure-skip-tls-verify":true}}],"contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],
      "users":[{"name":"u","user":{"tokenFile":"tok"}}]})";
  absl::StatusOr<ClientConfig> cfg = ParseKubeconfig(json, "/d");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "http://127.0.0.1:8080");
  EXPECT_TRUE(cfg->insecure_skip_tls_verify);
  EXPECT_EQ(cfg->token_file, "/d/tok");
}

TEST(Kubeconfig, Errors) {
  EXPECT_FALSE(ParseKubeconfig("", "").ok());
  EXPECT_FALSE(ParseKubeconfig("[1, 2", "").ok());
  EXPECT_FALSE(ParseKubeconfig("clusters: []\n", "").ok());  // no current-context
  EXPECT_EQ(ParseKubeconfig(R"(current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://x"}}]
users: [{name: u, user: {exec: {command: aws}}}]
)",
                            "")
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(ParseKubeconfig(R"(current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "ftp://x"}}]
)",
                               "")
                   .ok());
  EXPECT_FALSE(ParseKubeconfig(R"(current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "https://x", certificate-authority-data: "%%%"}}]
)",
                               "")
                   .ok());
  EXPECT_EQ(LoadKubeconfig("/nonexistent/kubeconfig").status().code(), absl::StatusCode::kNotFound);
}

TEST(Kubeconfig, LoadFromFile) {
  std::string dir = TempDir();
  Write(dir + "/config", R"(current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "https://x:1", certificate-authority: ca.pem}}]
)");
  absl::StatusOr<ClientConfig> cfg = LoadKubeconfig(dir + "/config");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->ca_file, dir + "/ca.pem");
}

TEST(InCluster, ReadsEnvAndServiceAccount) {
  std::string dir = TempDir();
  Write(dir + "/token", "tok-1\n");
  Write(dir + "/ca.crt", "PEM");
  auto env = [](const char* n) -> std::optional<std::string> {
    if (std::string(n) == "KUBERNETES_SERVICE_HOST") return "fd00::1";
    if (std::string(n) == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  absl::StatusOr<ClientConfig> cfg = LoadInClusterConfig(dir, env);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://[fd00::1]:443");
  EXPECT_EQ(cfg->token_file, dir + "/token");
  EXPECT_EQ(cfg->ca_file, dir + "/ca.crt");

  auto noenv = [](const char*) -> std::optional<std::string> { return std::nullopt; };
  EXPECT_EQ(LoadInClusterConfig(dir, noenv).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LoadInClusterConfig(dir + "/missing", env).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TokenSource, RereadsRotatedTokenAtMostOncePerInterval) {
  std::string dir = TempDir();
  std::string file = dir + "/token";
  Write(file, "one\n");
  absl::Time now = absl::FromUnixSeconds(1000);
  TokenSource ts("", file, absl::Seconds(60), [&] { return now; });
  EXPECT_EQ(*ts.Token(), "one");
  Write(file, "two");
  now += absl::Seconds(30);
  EXPECT_EQ(*ts.Token(), "one");  // within the interval: cached
  now += absl::Seconds(31);
  EXPECT_EQ(*ts.Token(), "two");  // rotated
  unlink(file.c_str());
  now += absl::Seconds(61);
  EXPECT_EQ(*ts.Token(), "two");  // a failed re-read keeps the last good token

  TokenSource fixed("static", "", absl::Seconds(1));
  EXPECT_EQ(*fixed.Token(), "static");
  TokenSource missing("", dir + "/nope", absl::Seconds(1));
  EXPECT_FALSE(missing.Token().ok());
}

}  // namespace
}  // namespace pnc::kube
