// JSON logs: one line per event on stderr, {"ts":..., "level":..., "msg":..., <fields>}. Values are escaped
// (pod data is untrusted) and invalid UTF-8 is replaced. Never log tokens or other secrets.
#ifndef PNC_CONTROLLER_LOG_H_
#define PNC_CONTROLLER_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

namespace pnc::controller {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

using LogField = std::pair<const char*, std::string>;

void Log(LogLevel level, const std::string& msg, std::initializer_list<LogField> fields = {});
void SetMinLogLevel(LogLevel level);
// Tests/benchmarks: silence or redirect. nullptr restores stderr.
void SetLogSink(void (*sink)(const std::string& line));

}  // namespace pnc::controller

#endif  // PNC_CONTROLLER_LOG_H_
