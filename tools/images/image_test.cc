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
// rules; the controller process itself is not run here).
//
// Image build: controller layer 1 (Debian packages, mmdebstrap, network once) is cached in $PNC_IMAGE_CACHE
// (default /var/tmp/pnc-image-cache); see docs/deploy.md. Root (or CI=true) without a working build or
// runtime is a FAILURE; a non-root run without user namespaces skips with the reason.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/cri/testing/container_client.h"
#include "netns/cri/testing/containerd.h"
#include "netns/cri/testing/gtest_containerd.h"
#include "netns/cri/testing/process.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/executor.h"
#include "netns/inspector.h"
#include "netns/netns.h"
#include "netns/proof_marker.h"
#include "netns/routing/test_util.h"
#include "rules/mark.h"

namespace pnc::netns::cri_testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Runfile(const std::string& rel) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) return absl::StrCat(srcdir, "/", workspace, "/", rel);
  return rel;
}

bool MustRun() {
  const char* ci = std::getenv("CI");
  return netns::testing::NamespacesRequired() || (ci != nullptr && std::string(ci) == "true");
}

struct Images {
  std::string waiter_archive, waiter_ref, controller_archive, controller_ref, build_log;
};

// Runs build.sh once per test binary; its stdout lines are "<archive>  <reference>  <size>".
absl::StatusOr<Images> BuildImages() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/images");
  const char* cache_env = std::getenv("PNC_IMAGE_CACHE");
  const std::string cache = cache_env != nullptr && *cache_env ? cache_env : "/var/tmp/pnc-image-cache";
  std::vector<std::string> argv = {"/usr/bin/env",
                                   absl::StrCat("PATH=", kSystemPath),
                                   "/bin/bash",
                                   Runfile("tools/images/build.sh"),
                                   "--out",
                                   out,
                                   "--cache",
                                   cache,
                                   "--controller-bin",
                                   Runfile("controller/controller"),
                                   "--waiter-bin",
                                   Runfile("controller/waiter/waiter"),
                                   "--no-check"};
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> stdout_text = RunTool(argv);
  if (!stdout_text.ok()) return stdout_text.status();
  Images im;
  im.build_log =
      absl::StrCat(*stdout_text, "(build.sh took ", absl::FormatDuration(absl::Now() - start), ")");
  for (absl::string_view line : absl::StrSplit(*stdout_text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (absl::EndsWith(f[0], "/waiter.oci.tar")) im.waiter_archive = f[0], im.waiter_ref = f[1];
    if (absl::EndsWith(f[0], "/controller.oci.tar")) im.controller_archive = f[0], im.controller_ref = f[1];
  }
  if (im.waiter_ref.empty() || im.controller_ref.empty())
    return absl::InternalError(absl::StrCat("build.sh did not report both images: ", *stdout_text));
  return im;
}

constexpr char kWaiterUsage[] = "Usage: waiter [flags]";
constexpr char kControllerUsage[] = "Usage: controller --node_name=NODE";

class ImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_ = new absl::StatusOr<Images>(BuildImages());
    if (images_->ok()) std::fprintf(stderr, "%s\n", (*images_)->build_log.c_str());
  }
  static void TearDownTestSuite() {
    delete images_;
    images_ = nullptr;
  }

  void SetUp() override {
    if (!images_->ok()) {
      if (MustRun()) FAIL() << "root/CI but the images could not be built: " << images_->status();
      GTEST_SKIP() << "images not built (build.sh needs root), test not run: " << images_->status();
    }
    PNC_CONTAINERD_OR_SKIP(ctrd_);
    for (const auto& [archive, ref] :
         {std::pair{(*images_)->waiter_archive, (*images_)->waiter_ref},
          std::pair{(*images_)->controller_archive, (*images_)->controller_ref}}) {
      absl::Status s = ctrd_->ImportImage(archive, ref);
      ASSERT_TRUE(s.ok()) << s;
    }
    pod_.uid = "11111111-2222-3333-4444-555555555555";
    pod_.name = "img";
    pod_.namespace_name = "default";
    pod_.cgroup_parent = ctrd_->CgroupParent(pod_.uid);
    pod_.log_directory = ctrd_->PodLogDirectory(pod_.uid);
    ASSERT_EQ(::mkdir(absl::StrCat(ctrd_->dir(), "/pods").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(pod_.log_directory.c_str(), 0700), 0);
    sandboxes_ = std::make_unique<SandboxClient>(ctrd_->endpoint());
    containers_ = std::make_unique<ContainerClient>(ctrd_->endpoint());
    absl::StatusOr<std::string> id = sandboxes_->Run(pod_);
    ASSERT_TRUE(id.ok()) << id.status() << "\n" << ctrd_->LogTail();
    sandbox_id_ = *id;
  }

  // The waiter as the chart's injection template runs it (runAsUser/Group unset here: the image's USER).
  ContainerSpec WaiterSpec(std::vector<std::string> args) const {
    ContainerSpec s;
    s.name = "waiter";
    s.image = (*images_)->waiter_ref;
    s.args = std::move(args);
    return s;  // drop ALL, no_new_privs, read-only root, RuntimeDefault seccomp: the defaults
  }

  // Creates + starts `spec`, waits for the exit; the facts and the log (both streams).
  std::pair<ContainerFacts, std::string> RunToExit(const ContainerSpec& spec, absl::Duration timeout) {
    absl::StatusOr<std::string> id = containers_->Create(sandbox_id_, pod_, pod_.log_directory, spec);
    EXPECT_TRUE(id.ok()) << id.status() << "\n" << ctrd_->LogTail();
    if (!id.ok()) return {};
    absl::Status s = containers_->Start(*id);
    EXPECT_TRUE(s.ok()) << s << "\n" << ctrd_->LogTail();
    absl::StatusOr<ContainerFacts> f = containers_->WaitExited(*id, timeout);
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return {};
    absl::StatusOr<std::string> log = ReadCriLog(f->log_path);
    EXPECT_TRUE(log.ok()) << log.status();
    return {*f, log.ok() ? *log : ""};
  }

  static absl::StatusOr<Images>* images_;
  std::unique_ptr<Containerd> ctrd_;
  PodSpec pod_;
  std::unique_ptr<SandboxClient> sandboxes_;
  std::unique_ptr<ContainerClient> containers_;
  std::string sandbox_id_;
};

absl::StatusOr<Images>* ImageTest::images_ = nullptr;

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

// A Downward API volume stand-in: <fixture>/pods/<uid>/podinfo/annotations, bind-mounted read-only at
// /etc/podinfo, replaced atomically (rename) like the kubelet's ..data swap reaches the file's directory.
class PodInfo {
 public:
  explicit PodInfo(std::string dir) : dir_(std::move(dir)) { ::mkdir(dir_.c_str(), 0755); }
  void Write(const std::map<std::string, std::string>& ann) {
    std::string text;
    for (const auto& [k, v] : ann) absl::StrAppend(&text, k, "=\"", v, "\"\n");
    const std::string tmp = absl::StrCat(dir_, "/.annotations.tmp");
    {
      std::ofstream o(tmp, std::ios::trunc);
      o << text;
    }
    ::chmod(tmp.c_str(), 0644);
    ASSERT_EQ(::rename(tmp.c_str(), absl::StrCat(dir_, "/annotations").c_str()), 0);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

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
}  // namespace pnc::netns::cri_testing
