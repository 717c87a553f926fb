#include "proxy/ca_command.h"

#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "common/cli.h"
#include "common/config.h"
#include "proxy/forward_ca.h"

namespace lp {
namespace {

constexpr const char* kUsage = R"(Usage: logging-proxy ca init [--config FILE]
       logging-proxy ca export [--config FILE]

The local certificate authority the forward proxy signs intercepted hosts'
certificates with. It lives in forward_proxy.ca_dir of FILE (default: ca, relative
to the working directory): ca.key (readable by its owner only) and ca.pem.

  init     make a new CA there and print the certificate's path; refuses to replace
           an existing one
  export   print the CA certificate (PEM) on stdout, and on stderr the commands that
           make clients trust it

Exit 0 when done, 1 when the CA cannot be made or read, 2 on bad arguments or config.
)";

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

int run_init(const Config& config) {
  const std::string& dir = config.forward_proxy.ca_dir;
  std::string error;
  if (!init_ca(dir, &error)) {
    std::cerr << "logging-proxy ca init: " << error << "\n";
    return 1;
  }
  std::cout << absolute_path(ca_cert_path(dir)) << "\n";
  std::cerr << "logging-proxy ca init: new CA in " << dir
            << "; `logging-proxy ca export` shows how to make clients trust it\n";
  return 0;
}

int run_export(const Config& config) {
  const std::string& dir = config.forward_proxy.ca_dir;
  std::string error;
  std::optional<std::string> pem = read_ca_cert_pem(dir, &error);
  if (!pem) {
    std::cerr << "logging-proxy ca export: " << error << "\n";
    return 1;
  }
  std::cout << *pem << std::flush;
  const std::string path = absolute_path(ca_cert_path(dir));
  std::cerr << "# Trust it system-wide (Debian, Ubuntu):\n"
            << "sudo cp " << path
            << " /usr/local/share/ca-certificates/logging-proxy.crt && sudo "
               "update-ca-certificates\n"
            << "# Or per process. Node adds it to its own store:\n"
            << "export NODE_EXTRA_CA_CERTS=" << path << "\n"
            << "# These two replace the store, so hosts that are not intercepted fail unless the "
               "file also holds the system CAs (cat /etc/ssl/certs/ca-certificates.crt "
            << path << " > bundle.pem):\n"
            << "export SSL_CERT_FILE=" << path << "\n"
            << "export REQUESTS_CA_BUNDLE=" << path << "\n"
            << "curl --cacert " << path << " ...\n";
  // Only the certificate is read here; a key others can read is still worth a word.
  struct stat st {};
  const std::string key_path = dir + "/" + kCaKeyFile;
  if (stat(key_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    std::cerr << "WARNING: " << key_path
              << " is readable by group or others; the proxy will refuse it (chmod 600 " << key_path
              << ")\n";
  }
  return 0;
}

}  // namespace

int run_ca_command(int argc, char** argv) {
  const std::string action = argc > 2 ? argv[2] : "";
  if (action == "--help" || action == "-h") {
    std::cout << kUsage;
    return 0;
  }
  if (action != "init" && action != "export") {
    std::cerr << "logging-proxy ca: "
              << (action.empty() ? "expected init or export"
                                 : "unknown action '" + action + "' (expected init or export)")
              << "\nTry 'logging-proxy ca --help'.\n";
    return 2;
  }
  const std::string program = "logging-proxy ca " + action;
  const CliArgs args = parse_cli_args(argc, argv, 3);
  if (args.check) {
    std::cerr << program << ": --check is not an option here\n";
    return 2;
  }
  if (int code = cli_exit_code(args, program, kUsage, ""); code >= 0) return code;
  Config config;
  try {
    // Route headers' ${VAR} are the proxy's secrets; making a CA needs none of them.
    config = load_config_file(args.config_path, LoadOptions{.expand_env = false});
  } catch (const ConfigError& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  }
  return action == "init" ? run_init(config) : run_export(config);
}

}  // namespace lp
