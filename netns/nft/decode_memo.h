// DecodeMemo: DecodeRule's results (rule_codec.h) remembered per exact expression bytes, so a read-back of
// rules whose bytes were decoded before skips libnftnl's parse and the decode.
//
// Sound by construction: DecodeRule is a pure function of (family, iptables table, the rule's
// NFTA_RULE_EXPRESSIONS attribute), so bytes identical to bytes that decoded to a Rule decode to that Rule
// again; any other bytes (one bit differs) miss and take the full decode. Nothing is assumed from what was
// written: the key is what the kernel reported. Only successful decodes are remembered. Bounded: cleared when
// it reaches its capacity. Thread-safe.
#ifndef PNC_NETNS_NFT_DECODE_MEMO_H_
#define PNC_NETNS_NFT_DECODE_MEMO_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rules/ruleset.h"

namespace pnc::netns {

class DecodeMemo {
 public:
  explicit DecodeMemo(size_t capacity = 4096) : capacity_(capacity) {}

  // The Rule these expression bytes decoded to before, if any.
  std::optional<rules::Rule> Find(rules::Family family, rules::Table table,
                                  absl::string_view expressions) const;
  // Records a successful DecodeRule of these bytes.
  void Remember(rules::Family family, rules::Table table, absl::string_view expressions,
                const rules::Rule& rule);

  size_t size() const;

 private:
  static std::string Key(rules::Family family, rules::Table table, absl::string_view expressions);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, rules::Rule> decoded_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pnc::netns

#endif  // PNC_NETNS_NFT_DECODE_MEMO_H_
