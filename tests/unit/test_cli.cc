#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/cli.h"

namespace {

lp::CliArgs parse(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return lp::parse_cli_args(static_cast<int>(args.size()), args.data());
}

}  // namespace

TEST_CASE("cli: the shared options, table-driven") {
  using A = lp::CliArgs::Action;
  struct Row {
    std::vector<const char*> args;
    A action;
    std::string config;
    bool check;
    std::string error;
  };
  const std::vector<Row> rows = {
      {{}, A::kRun, "config.yaml", false, ""},
      {{"--check"}, A::kRun, "config.yaml", true, ""},
      {{"--config", "a.yaml"}, A::kRun, "a.yaml", false, ""},
      {{"--config=b.yaml", "--check"}, A::kRun, "b.yaml", true, ""},
      {{"--config", "a.yaml", "--config", "c.yaml"}, A::kRun, "c.yaml", false, ""},
      {{"--help"}, A::kHelp, "config.yaml", false, ""},
      {{"-h", "--bogus"}, A::kHelp, "config.yaml", false, ""},
      {{"--version"}, A::kVersion, "config.yaml", false, ""},
      {{"--config"}, A::kError, "config.yaml", false, "--config needs a file name"},
      {{"--config="}, A::kError, "", false, "--config needs a file name"},
      {{"--config", ""}, A::kError, "", false, "--config needs a file name"},
      {{"--verbose"}, A::kError, "config.yaml", false, "unknown argument '--verbose'"},
      {{"config.yaml"}, A::kError, "config.yaml", false, "unknown argument 'config.yaml'"},
  };
  for (const auto& row : rows) {
    std::string joined;
    for (const char* a : row.args) joined += std::string(a) + " ";
    CAPTURE(joined);
    lp::CliArgs got = parse(row.args);
    CHECK(got.action == row.action);
    CHECK(got.error == row.error);
    if (row.action == A::kRun) {
      CHECK(got.config_path == row.config);
      CHECK(got.check == row.check);
    }
  }
}

TEST_CASE("cli: loopback hosts") {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"}) {
    CAPTURE(host);
    CHECK(lp::is_loopback_host(host));
  }
  for (const char* host : {"0.0.0.0", "::", "[::]", "", "192.168.1.10", "example.com",
                           "127.evil.example", "127.0.0.1.example", "localhost.example"}) {
    CAPTURE(host);
    CHECK_FALSE(lp::is_loopback_host(host));
  }
}
