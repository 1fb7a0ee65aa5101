#include "netns/functional_backends.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "netns/iptc_backend.h"
#include "netns/nft/nft_backend.h"
#include "netns/restore_backend.h"

namespace pnc::netns {
namespace {

FunctionalBackend Legacy(std::string name, std::function<std::unique_ptr<Backend>()> make) {
  const std::string ipt = "/usr/sbin/iptables-legacy";
  return FunctionalBackend{
      .name = std::move(name),
      .make = std::move(make),
      .dump_argv = {"/usr/sbin/iptables-legacy-save"},
      .istio_output_jump_line = "-A OUTPUT -j ISTIO_OUTPUT",
      .add_foreign_argvs = {{ipt, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j",
                             "ACCEPT"},
                            {ipt, "-w", "-t", "nat", "-N", "FOREIGN_CHAIN"},
                            {ipt, "-w", "-t", "nat", "-A", "FOREIGN_CHAIN", "-j", "RETURN"},
                            {ipt, "-w", "-t", "nat", "-I", "PREROUTING", "-p", "tcp", "--dport", "9998", "-j",
                             "FOREIGN_CHAIN"},
                            {ipt, "-w", "-t", "mangle", "-A", "OUTPUT", "-p", "udp", "--dport", "9997", "-j",
                             "ACCEPT"}},
      .tamper_argv = {ipt, "-w", "-t", "nat", "-A", "ISTIO_OUTPUT", "-p", "tcp", "-m", "multiport",
                      "--dports", "1:2", "-j", "RETURN"},
      .foreign_needles = {"-A OUTPUT -p tcp -m tcp --dport 9999 -j ACCEPT", ":FOREIGN_CHAIN",
                          "-A FOREIGN_CHAIN -j RETURN",
                          "-A PREROUTING -p tcp -m tcp --dport 9998 -j FOREIGN_CHAIN",
                          "-A OUTPUT -p udp -m udp --dport 9997 -j ACCEPT"},
  };
}

}  // namespace

std::vector<FunctionalBackend> FunctionalBackends() {
  std::vector<FunctionalBackend> out;
  out.push_back(Legacy("iptc", [] { return NewIptcBackend(); }));
  out.push_back(Legacy("restore", [] { return NewRestoreBackend(); }));
  const std::string nft = "/usr/sbin/nft";
  out.push_back(FunctionalBackend{
      .name = "nft",
      .make = [] { return NewNftBackend(); },
      .dump_argv = {nft, "list", "ruleset", "ip"},  // IPv4 only, like iptables-legacy-save
      .istio_output_jump_line = "jump nat_ISTIO_OUTPUT",
      .add_foreign_argvs = {{nft, "add", "table", "ip", "foreign"},
                            {nft, "add", "chain", "ip", "foreign", "out",
                             "{ type nat hook output priority -100 ; }"},
                            {nft, "add", "rule", "ip", "foreign", "out", "tcp", "dport", "9999", "accept"},
                            {nft, "add", "table", "ip", "filter"},
                            {nft, "add", "chain", "ip", "filter", "output",
                             "{ type filter hook output priority 0 ; }"},
                            {nft, "add", "rule", "ip", "filter", "output", "udp", "dport", "9997", "accept"}},
      .tamper_argv = {nft, "add", "rule", "ip", "istio_pnc", "nat_ISTIO_OUTPUT", "counter"},
      .foreign_needles = {"table ip foreign", "tcp dport 9999 accept", "table ip filter",
                          "udp dport 9997 accept"},
  });
  return out;
}

int CountJumpsToIstioOutput(const FunctionalBackend& b, const std::string& dump) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(dump, '\n')) {
    if (absl::StripAsciiWhitespace(line) == b.istio_output_jump_line) ++n;
  }
  return n;
}

}  // namespace pnc::netns
