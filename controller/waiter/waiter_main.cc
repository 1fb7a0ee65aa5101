// waiter: the pod's init container. Blocks until the istio-pod-network-controller has marked this pod AND the
// redirection is proven from inside the pod (controller/waiter/wait.h, docs/mark.md). Runs as non-root, as a
// uid/gid other than the proxy's, with no capabilities on a read-only root fs; links statically.
//
// Exit codes: 0 initialized and proven; 1 the controller reported an error (reason on stderr); 2 timeout
// (the message says what was missing: the mark, the identity, or the probe); 3 usage or I/O error.
//
// Flags: hand-parsed (no absl, to stay static and tiny). Accepted spellings: --name=value, --name value,
// -name=value, and for the 2018 tool's names both dashes and underscores (--annotation-key ==
// --annotation_key).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "controller/waiter/wait.h"

namespace {

constexpr char kUsage[] =
    "waiter: init container that waits until istio-pod-network-controller has installed this pod's traffic\n"
    "redirection, by watching the Downward API annotations file with inotify.\n"
    "\n"
    "Usage: waiter [flags]\n"
    "  --file=PATH              Downward API annotations file (default /etc/podinfo/pod_annotations)\n"
    "  --annotation_key=KEY     annotation to wait for (default pod-network-controller.istio.io/status)\n"
    "                           (also --annotation-key, the 2018 spelling)\n"
    "  --annotation_value=VAL   value meaning success (default initialized) (also --annotation-value)\n"
    "  --timeout=DURATION       give up after this long: 300, 300s, 5m, 1500ms (default 300s)\n"
    "  --probe=BOOL             prove the redirection before exiting 0 (default true): as this container's\n"
    "                           uid/gid, connect to the target the controller wrote in\n"
    "                           pod-network-controller.istio.io/probe and require the connection on the\n"
    "                           capture port with SO_ORIGINAL_DST = target. Must not run as the proxy's\n"
    "                           uid/gid (their traffic bypasses the capture). false: debugging only\n"
    "  --probe_timeout=DURATION one probe attempt (default 300ms); attempts repeat every 200ms and on every\n"
    "                           change of the file until --timeout\n"
    "  --require_netns_match=BOOL  accept the mark only when pod-network-controller.istio.io/netns equals\n"
    "                           this container's network namespace identity (<boot_id>/<netns cookie>), "
    "i.e.\n"
    "                           the controller marked THIS sandbox (default true; false: debugging only)\n"
    "                           (also --require-netns-match)\n"
    "  --help                   this text\n"
    "Exit codes: 0 initialized and proven, 1 the controller reported an error, 2 timeout (says what was\n"
    "missing), 3 usage/I/O error.\n";

// "300" (seconds), "300s", "5m", "1500ms", "1h". Returns -1 if malformed.
int64_t ParseDurationMs(const std::string& s) {
  if (s.empty()) return -1;
  size_t i = 0;
  int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (s[i] - '0');
    if (v > 100000000) return -1;
    ++i;
  }
  if (i == 0) return -1;
  std::string unit = s.substr(i);
  if (unit.empty() || unit == "s") return v * 1000;
  if (unit == "ms") return v;
  if (unit == "m") return v * 60000;
  if (unit == "h") return v * 3600000;
  return -1;
}

int Usage(const std::string& err) {
  std::fprintf(stderr, "waiter: %s\n\n%s", err.c_str(), kUsage);
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  pnc::waiter::WaitOptions wo;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') return Usage("unexpected argument " + arg);
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    for (char& c : name)
      if (c == '-') c = '_';  // the 2018 tool's --annotation-key etc.
    if (name == "help" || name == "h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (name == "probe") {
      if (has_value && value != "true" && value != "false") return Usage("--probe takes true or false");
      wo.probe = !has_value || value == "true";
      continue;
    }
    if (name == "require_netns_match") {
      if (has_value && value != "true" && value != "false")
        return Usage("--require_netns_match takes true or false");
      wo.require_netns_match = !has_value || value == "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) return Usage("--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "file") {
      wo.file = value;
    } else if (name == "annotation_key") {
      wo.key = value;
    } else if (name == "annotation_value") {
      wo.value = value;
    } else if (name == "timeout") {
      wo.timeout_ms = ParseDurationMs(value);
      if (wo.timeout_ms < 0) return Usage("bad --timeout " + value);
    } else if (name == "probe_capture_port" || name == "probe_target") {
      return Usage("--" + name + " was removed: the controller names the probe in the pod's mark");
    } else if (name == "probe_timeout") {
      int64_t ms = ParseDurationMs(value);
      if (ms <= 0 || ms > 60000) return Usage("bad --probe_timeout");
      wo.probe_attempt_ms = static_cast<int>(ms);
    } else {
      return Usage("unknown flag --" + name);
    }
  }
  if (wo.file.empty() || wo.key.empty()) return Usage("--file and --annotation_key must not be empty");

  // The watcher is never destroyed: closing an inotify fd waits for a kernel grace period; exit does it for
  // us.
  auto* watcher = new pnc::waiter::AnnotationWatcher(wo);
  pnc::waiter::WaitResult r = watcher->Wait();
  switch (r.outcome) {
    case pnc::waiter::WaitOutcome::kReady:
      std::fprintf(stderr, "waiter: %s=%s; %s\n", wo.key.c_str(), r.message.c_str(), r.note.c_str());
      return 0;
    case pnc::waiter::WaitOutcome::kError:
      std::fprintf(
          stderr,
          "waiter: istio-pod-network-controller could not set up this pod's traffic redirection: %s\n",
          r.message.c_str());
      return 1;
    case pnc::waiter::WaitOutcome::kTimeout:
      std::fprintf(stderr,
                   "waiter: timed out after %lld ms waiting for %s=%s in %s (last seen: %s). Is "
                   "istio-pod-network-controller running on this node?\n",
                   static_cast<long long>(wo.timeout_ms), wo.key.c_str(), wo.value.c_str(), wo.file.c_str(),
                   r.message.c_str());
      return 2;
    case pnc::waiter::WaitOutcome::kFailure:
      std::fprintf(stderr, "waiter: %s\n", r.message.c_str());
      return 3;
  }
  return 0;
}
