#include "tools/cli/help.h"

#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pnc::cli {

int AnswerHelp(int argc, char** argv, std::string_view main_file) {
  bool help = false, full = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--") == 0) break;
    if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-help") == 0 || std::strcmp(a, "-h") == 0 ||
        std::strcmp(a, "--helpshort") == 0)
      help = true;
    if (std::strcmp(a, "--helpfull") == 0 || std::strcmp(a, "-helpfull") == 0) help = full = true;
  }
  if (!help) return -1;
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (full || absl::StrContains(flag->Filename(), absl::string_view(main_file.data(), main_file.size())))
      flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(), [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
    return a->Name() < b->Name();
  });
  std::string out = absl::StrCat(absl::ProgramUsageMessage(), "\n\nFlags:\n");
  for (const absl::CommandLineFlag* f : flags) {
    absl::StrAppend(&out, "  --", f->Name(), " (default \"", f->DefaultValue(), "\")\n      ", f->Help(),
                    "\n");
  }
  if (!full) absl::StrAppend(&out, "\n--helpfull lists the flags of the linked-in libraries too.\n");
  std::cout << out << std::flush;
  return std::cout ? 0 : 3;
}

}  // namespace pnc::cli
