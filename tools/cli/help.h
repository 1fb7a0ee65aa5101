// AnswerHelp: `--help`, `-h`, `-help`, `--helpshort` and `--helpfull` for binaries that parse flags with
// absl, answered BEFORE absl::ParseCommandLine (whose own help handling exits 1): the program usage message
// and the flags on stdout, and exit code 0. `--help` lists the flags defined in files whose path contains
// `main_file` (the binary's own flags); `--helpfull` every linked-in flag. Arguments after "--" are not
// flags.
#ifndef PNC_TOOLS_CLI_HELP_H_
#define PNC_TOOLS_CLI_HELP_H_

#include <string_view>

namespace pnc::cli {

// -1 when no help was asked for; otherwise the exit code for main (0, or 3 if stdout failed).
int AnswerHelp(int argc, char** argv, std::string_view main_file);

}  // namespace pnc::cli

#endif  // PNC_TOOLS_CLI_HELP_H_
