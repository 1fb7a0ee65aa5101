#include "simulator/container_mapping.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The DaemonSet pod spec as charts/istio-pod-network-controller renders it (trimmed to what matters).
json ChartPodSpec() {
  return json::parse(R"js({
    "containers": [{
      "name": "controller",
      "image": "quay.io/istio-pod-network-controller/controller:0.1.0",
      "command": ["/usr/local/bin/controller"],
      "args": ["--node_name=$(NODE_NAME)", "--locator=auto",
               "--cri_endpoint=unix:///run/containerd/containerd.sock",
               "--metrics_address=0.0.0.0:9153", "--literal=$$(NODE_NAME)"],
      "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
              {"name": "XTABLES_LOCKFILE", "value": "/run/istio-pod-network-controller/xtables.lock"}],
      "ports": [{"name": "metrics", "containerPort": 9153}],
      "volumeMounts": [{"name": "run", "mountPath": "/run/istio-pod-network-controller"},
                       {"name": "cri-socket", "mountPath": "/run/containerd/containerd.sock"}]
    }],
    "volumes": [{"name": "run", "emptyDir": {"medium": "Memory"}},
                {"name": "cri-socket", "hostPath": {"path": "/run/containerd/containerd.sock", "type": "Socket"}}]
})js");
}

class ContainerMappingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/cm";
    node_ = {"node-7", "unix-abstract:fake-cri-7", "pnc-node-7", "istio-system", dir_};
    images_.binaries["controller"] = "/bin/controller-under-test";
    images_.kubeconfig = "/tmp/sim.kubeconfig";
  }
  std::string dir_;
  NodeRuntime node_;
  ImageMap images_;
};

TEST_F(ContainerMappingTest, ChartWiringReachesTheProcess) {
  json spec = ChartPodSpec();
  auto m = MapContainer(spec, spec["containers"][0], node_, images_);
  ASSERT_TRUE(m.ok()) << m.status();
  const auto& argv = m->spawn.argv;
  ASSERT_EQ(argv.size(), 6u);
  EXPECT_EQ(argv[0], "/bin/controller-under-test");
  EXPECT_EQ(argv[1], "--node_name=node-7");                          // Downward API
  EXPECT_EQ(argv[3], "--cri_endpoint=unix-abstract:fake-cri-7");     // the node's fake CRI socket
  EXPECT_THAT(argv[4], StartsWith("--metrics_address=127.0.0.1:"));  // a free loopback port
  EXPECT_EQ(argv[4], "--metrics_address=127.0.0.1:" + std::to_string(m->metrics_port));
  EXPECT_EQ(argv[5], "--literal=$(NODE_NAME)");  // $$ escapes
  ASSERT_TRUE(m->spawn.env.has_value());
  EXPECT_THAT(*m->spawn.env, Contains("NODE_NAME=node-7"));
  EXPECT_THAT(*m->spawn.env, Contains("XTABLES_LOCKFILE=" + dir_ + "/run/xtables.lock"));  // emptyDir
  EXPECT_THAT(*m->spawn.env, Contains("KUBECONFIG=/tmp/sim.kubeconfig"));  // the service account stand-in
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/run"));
}

TEST_F(ContainerMappingTest, UnmappedImageAndUnmodelledEnvAreErrors) {
  json spec = ChartPodSpec();
  json c = spec["containers"][0];
  c["image"] = "docker.io/library/nginx:1";
  EXPECT_TRUE(absl::IsUnimplemented(MapContainer(spec, c, node_, images_).status()));
  c = spec["containers"][0];
  c["env"].push_back({{"name", "X"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "k"}}}}}});
  auto r = MapContainer(spec, c, node_, images_);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_THAT(r.status().message(), HasSubstr("X"));
  c = spec["containers"][0];
  c["volumeMounts"].push_back({{"name", "missing"}, {"mountPath", "/x"}});
  EXPECT_TRUE(absl::IsInvalidArgument(MapContainer(spec, c, node_, images_).status()));
}

}  // namespace
}  // namespace pnc::sim
