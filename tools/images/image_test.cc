// image_test: the controller and waiter OCI images, built by tools/images/build.sh from this test's own
// binaries
// (//controller, //controller/waiter in the test's compilation mode), run by a real container runtime: the
// containerd fixture (netns/cri/testing: Debian's containerd 1.6 + runc, private dir and node netns), images
// imported with `ctr images import` (nothing pulled), containers created through CRI in a pod sandbox the way
// kubelet creates them, with the securityContext the chart renders.
//
// Checked: `--help` exits 0 with the usage text for both images, each as its image's own USER; the waiter
// image runs as 65532:65532 with no capabilities at all and no_new_privs (from /proc of the running process,
// not only from the OCI spec); as an init container reading a Downward-API-like bind-mounted file it exits 2
// (timeout) on a mark a tenant can forge (initialized, this sandbox's real netns identity, probe none, a
// plan) and 0 once the controller's proof marker for that plan is in the sandbox's netns (placed with the
// controller's own netns::KernelProofMarker from the host side, as the controller does after verifying its
// rules). real_controller_test runs the controller process itself.
//
// Image build: controller layer 1 (Debian packages, mmdebstrap, network once) is cached in $PNC_IMAGE_CACHE
// (default /var/tmp/pnc-image-cache); see docs/deploy.md. Root (or CI=true) without a working build or
// runtime is a FAILURE; a non-root run skips with the reason.
#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/cri/testing/container_client.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/executor.h"
#include "netns/inspector.h"
#include "netns/netns.h"
#include "netns/proof_marker.h"
#include "rules/mark.h"
#include "tools/images/image_fixture.h"

namespace pnc::netns::cri_testing::image_testing {
namespace {

TEST_F(ImageTest, WaiterHelpExitsZeroAsItsImageUserWithNoCapabilities) {
  auto [f, log] = RunToExit(WaiterSpec({"--help"}), absl::Seconds(20));
  EXPECT_EQ(f.exit_code, 0) << log;
  EXPECT_THAT(log, HasSubstr(kWaiterUsage));
  // What the runtime handed to runc: the image's USER, an empty capability set, no_new_privs, read-only root,
  // a seccomp profile.
  EXPECT_EQ(f.spec_uid, 65532) << f.spec_json;
  EXPECT_EQ(f.spec_gid, 65532) << f.spec_json;
  EXPECT_THAT(f.spec_effective_caps, IsEmpty()) << f.spec_json;
  EXPECT_THAT(f.spec_bounding_caps, IsEmpty()) << f.spec_json;
  EXPECT_TRUE(f.spec_no_new_privileges);
  EXPECT_TRUE(f.spec_readonly_root);
  EXPECT_TRUE(f.spec_has_seccomp);
}

TEST_F(ImageTest, ControllerHelpExitsZeroAsItsImageUserWithTheChartsCapabilities) {
  ContainerSpec s;
  s.name = "controller";
  s.image = (*images_)->controller_ref;
  s.args = {"--help"};
  s.add_capabilities = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"};  // the chart's DaemonSet
  auto [f, log] = RunToExit(s, absl::Seconds(20));
  EXPECT_EQ(f.exit_code, 0) << log;
  EXPECT_THAT(log, HasSubstr(kControllerUsage));  // every shared library resolved inside the image
  EXPECT_EQ(f.spec_uid, 0) << f.spec_json;
  EXPECT_THAT(f.spec_effective_caps, ::testing::UnorderedElementsAre("CAP_NET_ADMIN", "CAP_NET_RAW",
                                                                     "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"))
      << f.spec_json;
  EXPECT_TRUE(f.spec_readonly_root);
}

TEST_F(ImageTest, WaiterInitContainerRefusesAForgedMarkAndReleasesOnTheControllersProof) {
  absl::StatusOr<SandboxFacts> sb = sandboxes_->Status(sandbox_id_);
  ASSERT_TRUE(sb.ok()) << sb.status();
  absl::StatusOr<NetnsHandle> ns = NetnsHandle::Open(sb->netns_path);
  ASSERT_TRUE(ns.ok()) << ns.status();
  uint64_t cookie = 0;
  absl::Status s = RunInNetns(*ns, [&]() -> absl::Status {
    absl::StatusOr<uint64_t> c = CurrentNetnsCookie();
    if (!c.ok()) return c.status();
    cookie = *c;
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  absl::StatusOr<std::string> boot = ReadBootId();
  ASSERT_TRUE(boot.ok()) << boot.status();
  const std::string identity = rules::FormatNetnsIdentity({*boot, cookie});
  const std::string plan = "0123456789abcdef";

  // Everything a tenant can write into its own pod's annotations: initialized, this very sandbox's netns
  // identity, probe none, a plan digest. No proof marker in the netns: the waiter must time out (exit 2).
  PodInfo info(absl::StrCat(pod_.log_directory, "/podinfo"));
  const std::map<std::string, std::string> mark = {{"pod-network-controller.istio.io/status", "initialized"},
                                                   {"pod-network-controller.istio.io/netns", identity},
                                                   {"pod-network-controller.istio.io/probe", "none"},
                                                   {"pod-network-controller.istio.io/plan", plan}};
  info.Write(mark);
  ContainerSpec forged = WaiterSpec({"--file=/etc/podinfo/annotations", "--timeout=3s"});
  forged.name = "waiter-forged";
  forged.mounts = {{info.dir(), "/etc/podinfo", true}};
  absl::StatusOr<std::string> id = containers_->Create(sandbox_id_, pod_, pod_.log_directory, forged);
  ASSERT_TRUE(id.ok()) << id.status() << "\n" << ctrd_->LogTail();
  ASSERT_TRUE(containers_->Start(*id).ok());
  // While it waits: its credentials as the kernel sees them.
  absl::StatusOr<ContainerFacts> running = containers_->Status(*id);
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_EQ(running->state, kContainerRunning) << running->message;
  ASSERT_GT(running->pid, 0);
  absl::StatusOr<ProcessCreds> creds = ReadProcessCreds(running->pid);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->uid, 65532u);
  EXPECT_EQ(creds->euid, 65532u);
  EXPECT_EQ(creds->gid, 65532u);
  EXPECT_EQ(creds->egid, 65532u);
  EXPECT_EQ(creds->cap_eff, 0u);
  EXPECT_EQ(creds->cap_prm, 0u);
  EXPECT_EQ(creds->cap_bnd, 0u);
  EXPECT_EQ(creds->no_new_privs, 1);
  absl::StatusOr<ContainerFacts> forged_exit = containers_->WaitExited(*id, absl::Seconds(20));
  ASSERT_TRUE(forged_exit.ok()) << forged_exit.status();
  absl::StatusOr<std::string> forged_log = ReadCriLog(forged_exit->log_path);
  ASSERT_TRUE(forged_log.ok());
  EXPECT_EQ(forged_exit->exit_code, 2) << *forged_log;

  // The controller's proof for this plan in the sandbox's netns (what the controller places after verifying
  // its rules there; needs CAP_NET_ADMIN, which the pod lacks): the same mark now releases the init
  // container.
  std::optional<uint32_t> value = rules::ProofMarkerValue(plan);
  ASSERT_TRUE(value.has_value());
  KernelProofMarker marker;
  s = marker.Place(*ns, *value);
  ASSERT_TRUE(s.ok()) << s;
  ContainerSpec proven = forged;
  proven.name = "waiter-proven";
  auto [f, log] = RunToExit(proven, absl::Seconds(20));
  EXPECT_EQ(f.exit_code, 0) << log;
}

}  // namespace
}  // namespace pnc::netns::cri_testing::image_testing
