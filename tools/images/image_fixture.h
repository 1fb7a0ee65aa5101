// The image tests' shared part: build.sh run once per test binary on the test's own binaries, the containerd
// fixture with both images imported and a pod sandbox, CRI container runs, a Downward-API-like file, daemons.
// Used by image_test.cc (images alone) and real_controller_test.cc (with the fake API server and the
// controller).
#ifndef PNC_TOOLS_IMAGES_IMAGE_FIXTURE_H_
#define PNC_TOOLS_IMAGES_IMAGE_FIXTURE_H_

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "netns/cri/testing/container_client.h"
#include "netns/cri/testing/containerd.h"
#include "netns/cri/testing/gtest_containerd.h"
#include "netns/cri/testing/process.h"
#include "netns/cri/testing/sandbox_client.h"
#include "netns/netns.h"
#include "netns/routing/test_util.h"

namespace pnc::netns::cri_testing::image_testing {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

inline std::string Runfile(const std::string& rel) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) return absl::StrCat(srcdir, "/", workspace, "/", rel);
  return rel;
}

inline bool MustRun() {
  const char* ci = std::getenv("CI");
  return netns::testing::NamespacesRequired() || (ci != nullptr && std::string(ci) == "true");
}

struct Images {
  std::string waiter_archive, waiter_ref, controller_archive, controller_ref, build_log;
};

// Runs build.sh once per test binary; its stdout lines are "<archive>  <reference>  <size>".
inline absl::StatusOr<Images> BuildImages() {
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

inline constexpr char kWaiterUsage[] = "Usage: waiter [flags]";
inline constexpr char kControllerUsage[] = "Usage: controller --node_name=NODE";

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

  static inline absl::StatusOr<Images>* images_ = nullptr;
  std::unique_ptr<Containerd> ctrd_;
  PodSpec pod_;
  std::unique_ptr<SandboxClient> sandboxes_;
  std::unique_ptr<ContainerClient> containers_;
  std::string sandbox_id_;
};

// A Downward API volume stand-in: <fixture>/pods/<uid>/podinfo/annotations, bind-mounted read-only at
// /etc/podinfo, replaced atomically (rename) like the kubelet's ..data swap reaches the file's directory.
class PodInfo {
 public:
  explicit PodInfo(std::string dir) : dir_(std::move(dir)) { ::mkdir(dir_.c_str(), 0755); }
  void Write(const std::map<std::string, std::string>& ann) {
    std::string text;
    for (const auto& [k, v] : ann) {
      std::string quoted;  // the kubelet's Downward API format: key="value" with Go %q escapes
      for (char c : v) {
        if (c == '"' || c == '\\') quoted.push_back('\\');
        if (c == '\n') {
          quoted += "\\n";
          continue;
        }
        quoted.push_back(c);
      }
      absl::StrAppend(&text, k, "=\"", quoted, "\"\n");
    }
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

// A process of ours (fake API server, controller), SIGTERMed and reaped whatever the test's outcome.
struct Daemon {
  pid_t pid = 0;
  std::string log;
  ~Daemon() { KillAndReap(pid, SIGTERM, absl::Seconds(3)); }
  std::string Log() const {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

}  // namespace pnc::netns::cri_testing::image_testing

#endif  // PNC_TOOLS_IMAGES_IMAGE_FIXTURE_H_
