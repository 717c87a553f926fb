#include "common/cli.h"

#include <iostream>

namespace lp {

CliArgs parse_cli_args(int argc, const char* const* argv, int first) {
  CliArgs out;
  auto fail = [&](std::string message) {
    out.action = CliArgs::Action::kError;
    out.error = std::move(message);
    return out;
  };
  for (int i = first; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.action = CliArgs::Action::kHelp;
      return out;
    } else if (arg == "--version") {
      out.action = CliArgs::Action::kVersion;
      return out;
    } else if (arg == "--check") {
      out.check = true;
    } else if (arg == "--config") {
      if (i + 1 >= argc) return fail("--config needs a file name");
      out.config_path = argv[++i];
      if (out.config_path.empty()) return fail("--config needs a file name");
    } else if (arg.starts_with("--config=")) {
      out.config_path = arg.substr(9);
      if (out.config_path.empty()) return fail("--config needs a file name");
    } else {
      return fail("unknown argument '" + std::string(arg) + "'");
    }
  }
  return out;
}

int cli_exit_code(const CliArgs& args, std::string_view program, std::string_view usage,
                  std::string_view version) {
  switch (args.action) {
    case CliArgs::Action::kHelp:
      std::cout << usage;
      return 0;
    case CliArgs::Action::kVersion:
      std::cout << program << " " << version << "\n";
      return 0;
    case CliArgs::Action::kError:
      std::cerr << program << ": " << args.error << "\nTry '" << program << " --help'.\n";
      return 2;
    case CliArgs::Action::kRun:
      break;
  }
  return -1;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (!host.starts_with("127.")) return false;
  // 127.0.0.0/8 as a dotted quad; "127.evil.example" is a name, resolved elsewhere.
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace lp
