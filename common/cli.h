// The command line both programs share: `--config FILE` (or `--config=FILE`), `--check`,
// `--help`/`-h`, `--version`. Parsing is pure; each main decides what to print and exits.
#pragma once

#include <string>
#include <string_view>

namespace lp {

struct CliArgs {
  enum class Action { kRun, kHelp, kVersion, kError };
  Action action = Action::kRun;
  std::string config_path = "config.yaml";
  bool check = false;
  std::string error;  // kError: names the offending argument
};

// argv[first..argc) are parsed; --help and --version win as soon as they are seen.
CliArgs parse_cli_args(int argc, const char* const* argv, int first = 1);

// What every program does with a parse that is not kRun: --help prints `usage` and --version
// "<program> <version>" on stdout (exit 0); an error prints "<program>: <error>" and a hint on
// stderr (exit 2). Returns that exit code, or -1 when the program should run.
int cli_exit_code(const CliArgs& args, std::string_view program, std::string_view usage,
                  std::string_view version);

// Whether `host` (a listen address from the config) is reachable only from this machine:
// "localhost", 127.0.0.0/8 and ::1. Anything else, "0.0.0.0" above all, is exposed.
bool is_loopback_host(std::string_view host);

}  // namespace lp
