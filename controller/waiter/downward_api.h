// Parsing of the kubelet's Downward API annotations file. Standard C++ only: the waiter links statically and
// small.
//
// Format (kubelet fieldpath.FormatMap): one `key="value"\n` line per annotation, keys sorted, values quoted
// with Go's strconv.Quote (escapes \a \b \f \n \r \t \v \\ \" , \xHH for bytes, \uHHHH and \UHHHHHHHH for
// runes).
#ifndef PNC_CONTROLLER_WAITER_DOWNWARD_API_H_
#define PNC_CONTROLLER_WAITER_DOWNWARD_API_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pnc::waiter {

// Decodes a Go double-quoted string literal (including the quotes). nullopt if malformed.
std::optional<std::string> GoUnquote(std::string_view quoted);

// Parses the whole file. Malformed lines are skipped (they cannot be ours); `malformed` counts them if
// non-null.
std::map<std::string, std::string> ParseAnnotations(std::string_view text, int* malformed = nullptr);

}  // namespace pnc::waiter

#endif  // PNC_CONTROLLER_WAITER_DOWNWARD_API_H_
