#include "simulator/forgery.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rules/annotations.h"
#include "simulator/netns_identity.h"

namespace pnc::sim {
namespace {

namespace nt = pnc::netns::testing;

// Creates, observes and frees one netns; `cpu` >= 0 pins the creating thread (and the sandbox's helper
// thread, which inherits the affinity) to that CPU.
absl::StatusOr<NetnsFingerprint> Throwaway(nt::Sandbox* sandbox, int* throwaways, int cpu) {
  absl::StatusOr<NetnsFingerprint> out = absl::UnknownError("not run");
  std::string name = absl::StrCat("throwaway-", (*throwaways)++);
  std::thread t([&] {
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
        out = absl::InternalError(absl::StrCat("pin to cpu ", cpu, ": error ", rc));
        return;
      }
    }
    auto ns = sandbox->CreateBareNetns(name);
    if (!ns.ok()) {
      out = ns.status();
      return;
    }
    out = Fingerprint(ns->handle());
  });
  t.join();
  return out;
}

}  // namespace

absl::StatusOr<ForgeryRecord> PlanForgery(const proto::Forgery& forge, nt::Sandbox* sandbox,
                                          int* throwaways) {
  ForgeryRecord out;
  std::vector<std::string> kind;
  if (forge.status_initialized()) {
    out.annotations[rules::kStatusAnnotation] = "initialized";
    kind.push_back("status");
  }
  if (forge.netns() != proto::Forgery::NO_NETNS || forge.spray() > 0) {
    if (sandbox == nullptr) return absl::FailedPreconditionError("forged netns guesses need netns nodes");
    auto boot = BootId();
    if (!boot.ok()) return boot.status();
    if (forge.spray() > 0) {
      cpu_set_t mine;
      if (sched_getaffinity(0, sizeof mine, &mine) != 0) return absl::InternalError("sched_getaffinity");
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &mine)) continue;
        auto fp = Throwaway(sandbox, throwaways, cpu);
        if (!fp.ok()) return fp.status();
        for (uint32_t k = 1; k <= forge.spray(); ++k)
          out.spray.push_back(IdentityText(*boot, fp->cookie + k));
      }
      kind.push_back(absl::StrCat("spray ", out.spray.size(), " cookies"));
    }
    // The last throwaway right before the pod, unpinned.
    auto seen = Throwaway(sandbox, throwaways, -1);
    if (!seen.ok()) return seen.status();
    // The kernel frees a namespace asynchronously (cleanup_net): a tenant waits for its throwaway pod to be
    // gone, which takes longer than this.
    absl::SleepFor(absl::Milliseconds(50));
    out.throwaway_inode = seen->inode;
    out.throwaway_cookie = seen->cookie;
    if (forge.netns() == proto::Forgery::PREDICTED_INODE) {
      out.annotations[rules::kNetnsAnnotation] = absl::StrCat(seen->inode);
      kind.push_back("predicted inode");
    } else if (forge.netns() == proto::Forgery::PREDICTED_COOKIE) {
      int64_t guess = static_cast<int64_t>(seen->cookie) + forge.cookie_offset();
      out.annotations[rules::kNetnsAnnotation] = IdentityText(*boot, std::max<int64_t>(guess, 1));
      kind.push_back(absl::StrCat("predicted cookie (throwaway", forge.cookie_offset() < 0 ? "" : "+",
                                  forge.cookie_offset(), ")"));
    }
  }
  if (!forge.probe().empty()) {
    out.annotations[rules::kProbeAnnotation] = forge.probe();
    kind.push_back(absl::StrCat("probe=", forge.probe()));
  }
  out.kind = absl::StrJoin(kind, " + ");
  return out;
}

std::string GuessOutcome(const ForgeryRecord& f, const PodRecord& r) {
  if (r.sandboxes.empty()) return "no sandbox";
  const SandboxRecord& sb = r.sandboxes.front();
  std::vector<std::string> out;
  if (auto it = f.annotations.find(rules::kNetnsAnnotation); it != f.annotations.end()) {
    const std::string& guess = it->second;
    if (guess.find('/') == std::string::npos) {
      out.push_back(guess == absl::StrCat(sb.inode)
                        ? absl::StrCat("inode guess RIGHT (", sb.inode, ")")
                        : absl::StrCat("inode guess wrong (sandbox has ", sb.inode, ")"));
    } else {
      std::string cookie = guess.substr(guess.find('/') + 1);
      out.push_back(cookie == absl::StrCat(sb.cookie)
                        ? absl::StrCat("cookie guess RIGHT (", sb.cookie, ")")
                        : absl::StrCat("cookie guess wrong (sandbox has ", sb.cookie, ")"));
    }
  }
  if (!f.spray.empty()) {
    bool hit = false;
    for (const auto& v : f.spray) hit |= v.substr(v.find('/') + 1) == absl::StrCat(sb.cookie);
    out.push_back(hit ? absl::StrCat("a sprayed cookie was RIGHT (", sb.cookie, ")")
                      : absl::StrCat("no sprayed cookie was right (sandbox has ", sb.cookie, ")"));
  }
  if (out.empty()) return "no netns guess";
  return absl::StrJoin(out, ", ");
}

}  // namespace pnc::sim
