// Exec fallback backend: `iptables-restore` / `ip6tables-restore` with argv + stdin, never a shell.
//
// Why legacy by default: the rules go into legacy x_tables like the libiptc backend, so both agree on what a
// netns holds (detect.h) and either can read back or clean up after the other. iptables-nft-restore would
// also work (options) but pays ~15 ms per call (netfilter-facts.md) and writes nf_tables rules that libiptc
// cannot see.
//
// Apply(ns, ruleset), inside `ns` (the child process inherits the RunInNetns worker's netns), per family:
//   1. read what is ours: `<save>` of all EXISTING tables, parsed by rules/iptables_save.h (skipped when
//      /proc/thread-self/net/ip*_tables_names is empty, i.e. in a fresh netns);
//   2. `<restore> --noflush --wait 5` fed rules::RenderIptablesRestoreReplacing(desired, current): per table
//      one atomic COMMIT that deletes our old jumps exactly as read back, flushes/creates our chains, deletes
//      stale ones, re-inserts our jumps and rules. Foreign rules are never mentioned, so they survive; a
//      family without desired rules gets RenderIptablesRestoreCleanup(current).
//   3. TPROXY policy routes and loopback addresses via netns/routing/routing_state.h (same worker).
// Repair: when our chains hold a rule outside the model (tampering), step 1 cannot describe our old state, so
// step 2 instead deletes our jumps by their exact save spelling, flushes and deletes our chains, and installs
// RenderIptablesRestore(desired) afresh, still in one COMMIT per table. ReadBack reports such a state as an
// InvalidArgument error (verification fails, never passes on a partial understanding).
// ReadBack = step 1 + ReadPolicyRoutes. `iptables-legacy-save -t <table>` would CREATE a missing table, so
// the save call never names a table: it dumps only tables that exist. Remove = Apply of an empty ruleset.
//
// Lock: every exec gets XTABLES_LOCKFILE=<options.lock_file>, a lock of our own, so we neither wait for nor
// block the node's iptables users (kube-proxy, ...) on /run/xtables.lock: pod namespaces do not share tables
// with the host. Our own concurrent restores serialise on it (each holds it ~1-2 ms).
#ifndef PNC_NETNS_RESTORE_BACKEND_H_
#define PNC_NETNS_RESTORE_BACKEND_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "netns/backend.h"

namespace pnc::netns {

struct RestoreOptions {
  std::string restore_v4 = "/usr/sbin/iptables-legacy-restore";
  std::string restore_v6 = "/usr/sbin/ip6tables-legacy-restore";
  std::string save_v4 = "/usr/sbin/iptables-legacy-save";
  std::string save_v6 = "/usr/sbin/ip6tables-legacy-save";
  // Empty: $XTABLES_LOCKFILE if set when the backend is created (the test sandbox sets it), else
  // kDefaultLockFile.
  std::string lock_file;
  absl::Duration timeout = absl::Seconds(10);  // per exec; the child is killed after it
};

inline constexpr char kDefaultLockFile[] = "/run/istio-pod-network-controller.xtables.lock";

// Name() is "restore". Thread-safe.
std::unique_ptr<Backend> NewRestoreBackend();
std::unique_ptr<Backend> NewRestoreBackend(RestoreOptions options);

}  // namespace pnc::netns

#endif  // PNC_NETNS_RESTORE_BACKEND_H_
