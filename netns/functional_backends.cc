#include "netns/functional_backends.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "netns/iptc_backend.h"
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
