#include "netns/nft/decode_memo.h"

#include "absl/strings/str_cat.h"

namespace pnc::netns {

std::string DecodeMemo::Key(rules::Family family, rules::Table table, absl::string_view expressions) {
  const char prefix[2] = {static_cast<char>(family), static_cast<char>(table)};
  return absl::StrCat(absl::string_view(prefix, sizeof prefix), expressions);
}

std::optional<rules::Rule> DecodeMemo::Find(rules::Family family, rules::Table table,
                                            absl::string_view expressions) const {
  const std::string key = Key(family, table, expressions);
  absl::MutexLock l(&mu_);
  auto it = decoded_.find(key);
  if (it == decoded_.end()) return std::nullopt;
  return it->second;
}

void DecodeMemo::Remember(rules::Family family, rules::Table table, absl::string_view expressions,
                          const rules::Rule& rule) {
  std::string key = Key(family, table, expressions);
  absl::MutexLock l(&mu_);
  if (decoded_.size() >= capacity_) decoded_.clear();
  decoded_.insert_or_assign(std::move(key), rule);
}

size_t DecodeMemo::size() const {
  absl::MutexLock l(&mu_);
  return decoded_.size();
}

}  // namespace pnc::netns
