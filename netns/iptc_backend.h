// libiptc backend: legacy x_tables, in process (libip4tc / libip6tc from iptables 1.8.9), no exec.
//
// Apply(ns, ruleset), inside `ns` on a RunInNetns worker, per address family and table, in ONE libiptc commit
// per table (the kernel swaps the whole table atomically, so other processes never observe a half-applied
// state):
//   1. delete our jumps (rules of built-in chains whose target is an ISTIO_* chain),
//   2. flush every ISTIO_* chain, delete the ones the new ruleset no longer has, create the missing ones,
//   3. append our chains' rules, then our jumps to the built-in chains (in ruleset order, as Istio does),
//   4. commit.
// Every other chain and rule of the table is left exactly as found, so a second Apply with the same ruleset
// leaves one copy, and a changed ruleset replaces ours. Tables the ruleset does not use are only touched when
// they already hold something of ours (which is then removed); a table is never created just to look into it.
// Then the routing state (TPROXY policy routes, loopback addresses) is synced with
// netns/routing/routing_state.h (an empty Ruleset removes ours).
//
// ReadBack translates (netns/iptc_rule_codec.h) the kernel's entries of our chains (and our jumps) into the
// Ruleset model: matches tcp, udp, owner, mark (also negated), connmark, conntrack --ctstate
// RELATED,ESTABLISHED, socket (any revision iptables 1.8 writes); targets jump, RETURN, ACCEPT, REDIRECT,
// TPROXY, MARK, CONNMARK, CT. Anything else inside our chains is an Internal error naming the chain and rule
// (tampering must fail verification, not be ignored). Tables are discovered via
// /proc/thread-self/net/ip{,6}_tables_names, so ReadBack creates nothing. Remove = Apply of an empty ruleset.
//
// libiptc keeps a little global state (the last failing function, for iptc_strerror), so calls into it are
// serialised by a process-wide mutex; each pod's work is ~0.1 ms.
#ifndef PNC_NETNS_IPTC_BACKEND_H_
#define PNC_NETNS_IPTC_BACKEND_H_

#include <memory>

#include "netns/backend.h"

namespace pnc::netns {

// Name() is "iptc". Thread-safe.
std::unique_ptr<Backend> NewIptcBackend();

}  // namespace pnc::netns

#endif  // PNC_NETNS_IPTC_BACKEND_H_
