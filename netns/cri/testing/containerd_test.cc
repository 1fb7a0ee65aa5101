#include "netns/cri/testing/containerd.h"

#include <dirent.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "netns/cri/testing/gtest_containerd.h"
#include "netns/cri/testing/process.h"
#include "netns/cri/testing/sandbox_client.h"

namespace pnc::netns::cri_testing {
namespace {

constexpr char kUid[] = "6b1f3c2a-9d4e-4f10-8a2b-0c1d2e3f4a5b";

std::vector<std::string> Entries(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ContainerdFixtureTest, RunsASandboxOnThePrivateBridgeAndCleansUpEverything) {
  const std::string forward_before = ReadFile("/proc/sys/net/ipv4/ip_forward");
  std::unique_ptr<Containerd> ctrd;
  absl::Time t0 = absl::Now();
  PNC_CONTAINERD_OR_SKIP(ctrd);
  std::cerr << "containerd fixture started in " << absl::FormatDuration(absl::Now() - t0) << "\n";
  const std::string dir = ctrd->dir();
  const std::string cgroup_root = ctrd->cgroup_root();

  SandboxClient client(ctrd->endpoint());
  absl::StatusOr<std::string> version = client.Version();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_TRUE(absl::StartsWith(*version, "containerd 1.")) << *version;

  t0 = absl::Now();
  absl::StatusOr<std::string> id = client.Run({kUid, "web-0", "shop", 0, ctrd->CgroupParent(kUid)});
  ASSERT_TRUE(id.ok()) << id.status() << "\n" << ctrd->LogTail();
  std::cerr << "RunPodSandbox took " << absl::FormatDuration(absl::Now() - t0) << "\n";
  absl::StatusOr<SandboxFacts> facts = client.Status(*id);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_TRUE(facts->ready);
  EXPECT_TRUE(absl::StartsWith(facts->ip, "10.251.0.")) << facts->ip;
  EXPECT_TRUE(absl::StartsWith(facts->netns_path, absl::StrCat(dir, "/state/"))) << facts->netns_path;
  ASSERT_GT(facts->pid, 0);
  EXPECT_NE(ReadFile(absl::StrCat("/proc/", facts->pid, "/cgroup")).find(ctrd->CgroupParent(kUid)),
            std::string::npos);
  EXPECT_FALSE(FindProcesses(dir, "").empty()) << "containerd and the shim name the fixture dir";

  // The host netns is untouched: no bridge here, ip_forward as before (the bridge plugin sets it to 1 in
  // the fixture's private node netns).
  EXPECT_EQ(if_nametoindex("pncbr0"), 0u);
  EXPECT_EQ(ReadFile("/proc/sys/net/ipv4/ip_forward"), forward_before);

  const int pause_pid = facts->pid;
  ctrd.reset();  // teardown with the sandbox still running (like a failing test)

  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(FindProcesses(dir, cgroup_root).empty());
  EXPECT_FALSE(Exists(absl::StrCat("/proc/", pause_pid, "/ns"))) << "pause process survived";
  for (const char* hierarchy : {"cpu", "memory", "pids", "devices", "freezer", "blkio", "systemd"}) {
    EXPECT_FALSE(Exists(absl::StrCat("/sys/fs/cgroup/", hierarchy, "/", cgroup_root))) << hierarchy;
  }
  EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(dir), std::string::npos);
  EXPECT_EQ(ReadFile("/proc/sys/net/ipv4/ip_forward"), forward_before);
}

TEST(ContainerdFixtureTest, TeardownAfterAKilledRuntimeStillRemovesShimsAndSandboxes) {
  std::unique_ptr<Containerd> ctrd;
  PNC_CONTAINERD_OR_SKIP(ctrd);
  const std::string dir = ctrd->dir();
  SandboxClient client(ctrd->endpoint());
  absl::StatusOr<std::string> id = client.Run({kUid, "web-0", "shop", 0, ctrd->CgroupParent(kUid)});
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<SandboxFacts> facts = client.Status(*id);
  ASSERT_TRUE(facts.ok()) << facts.status();
  // Other fixtures may run in parallel and share these dirs: look only at this sandbox's entries.
  const std::string shim_socket = ShimSocketPath(dir, "k8s.io", *id);
  EXPECT_TRUE(Exists(shim_socket)) << shim_socket;
  auto cache_files = [&] {
    std::vector<std::string> out;
    for (const std::string& e : Entries("/var/lib/cni/results"))
      if (absl::StrContains(e, *id)) out.push_back(e);
    return out;
  };
  EXPECT_EQ(cache_files().size(), 2u);  // our bridge network's eth0 and containerd's cni-loopback lo
  ASSERT_TRUE(ctrd->Kill().ok());
  // No runtime to ask: teardown must find the shim by its command line and the pause by its cgroup.
  std::vector<pid_t> left = FindProcesses(dir, ctrd->cgroup_root());
  EXPECT_GE(left.size(), 2u);
  const std::string cgroup_root = ctrd->cgroup_root();
  ctrd.reset();
  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(FindProcesses(dir, cgroup_root).empty());
  EXPECT_FALSE(Exists(absl::StrCat("/proc/", facts->pid, "/ns")));
  EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(dir), std::string::npos);
  // The shim's socket and libcni's cache files (no CNI DEL ran) are gone too.
  EXPECT_FALSE(Exists(shim_socket));
  EXPECT_TRUE(cache_files().empty());
}

}  // namespace
}  // namespace pnc::netns::cri_testing
