#include "netns/detect.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "netns/executor.h"
#include "netns/nft/nft_backend.h"
#include "netns/xtables_names.h"

namespace pnc::netns {

absl::StatusOr<Detection> DecideBackend(std::vector<std::string> legacy_tables,
                                        std::vector<std::string> nft_tables, absl::string_view preferred,
                                        absl::string_view where) {
  if (preferred != "iptc" && preferred != "restore" && preferred != "nft") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown backend '", preferred, "' (want iptc, restore or nft)"));
  }
  Detection d{"", std::move(legacy_tables), std::move(nft_tables)};
  const bool legacy = !d.legacy.empty(), nft = !d.nft.empty();
  if (legacy && nft) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " already holds both legacy iptables tables (", absl::StrJoin(d.legacy, ", "),
                     ") and nftables tables (", absl::StrJoin(d.nft, ", "),
                     "); refusing to add rules that the other backend may override (choose the backend "
                     "explicitly, or clean up)"));
  }
  if (legacy) {
    d.backend = preferred == "nft" ? "iptc" : std::string(preferred);
  } else if (nft) {
    d.backend = "nft";
  } else {
    d.backend = std::string(preferred);
  }
  return d;
}

absl::StatusOr<NodeNetfilter> DetectNodeNetfilter(const std::string& node_proc_net) {
  NodeNetfilter node;
  for (rules::Family f : {rules::Family::kIPv4, rules::Family::kIPv6}) {
    absl::StatusOr<std::vector<std::string>> names = LegacyTablesIn(node_proc_net, f);
    if (!names.ok()) return names.status();
    for (const auto& n : *names) node.legacy.push_back(absl::StrCat(rules::FamilyName(f), " ", n));
  }
  return node;
}

absl::StatusOr<Detection> DetectBackend(const NetnsHandle& ns, absl::string_view preferred) {
  std::vector<std::string> legacy, nft;
  absl::Status s = RunInNetns(ns, [&]() -> absl::Status {
    for (rules::Family f : {rules::Family::kIPv4, rules::Family::kIPv6}) {
      absl::StatusOr<std::vector<std::string>> names = LegacyTablesInCurrentNetns(f);
      if (!names.ok()) return names.status();
      for (const auto& n : *names) legacy.push_back(absl::StrCat(rules::FamilyName(f), " ", n));
    }
    absl::StatusOr<std::vector<std::string>> tables = ListNftTablesInCurrentNetns();
    if (!tables.ok()) return tables.status();
    nft = *std::move(tables);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return DecideBackend(std::move(legacy), std::move(nft), preferred,
                       absl::StrCat("network namespace ", ns.path()));
}

}  // namespace pnc::netns
