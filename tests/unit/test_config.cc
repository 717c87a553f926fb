#include "common/config.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The Go tool's config.yaml exactly as its README shows it: existing users keep this file.
const char* const kSeedConfig = R"(server:
  port: 5601
  host: "localhost"
  not_found: "/404/"

logging:
  console: true           # Enable console output for request monitoring
  server_url: "http://localhost:8080"  # Logging server URL
  default: true           # Default logging behavior for routes and unknown requests

routes:
  openrouter:
    pattern: "/api/v1/"
    destination: "https://openrouter.ai/"
  lmstudio:
    pattern: "/lmstudio/"
    destination: "http://127.0.0.1:1234/"
    logging: false        # Disable logging for this route
)";

// Returns the ConfigError message, or "" when the text loads.
std::string error_of(const std::string& text) {
  try {
    lp::parse_config(text, "config.yaml");
  } catch (const lp::ConfigError& e) {
    return e.what();
  }
  return "";
}

// A file under the temp directory, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& content, const std::string& suffix = ".yaml") {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("lp_test_config_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + suffix);
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string route_with(const std::string& extra) {
  return "routes:\n  r:\n    pattern: /r/\n    destination: http://x/\n" + extra;
}

void check_defaults(const lp::Config& c) {
  const lp::Config d;
  CHECK(c.server.host == "localhost");
  CHECK(c.server.port == 5601);
  CHECK(c.server.not_found == "/404/");
  CHECK(c.server.upstream_timeout == 5min);
  CHECK(c.server.connect_timeout == 10s);
  CHECK(c.server.idle_timeout == 60s);
  CHECK(c.server.header_timeout == 30s);
  CHECK(c.server.max_header_bytes == 64 * 1024);
  CHECK(c.server.max_request_body_bytes == 0);  // unlimited
  CHECK(c.server.max_connections == 10000);
  CHECK(c.server.threads == 0);  // one per core
  CHECK(c.server.admin_host == "localhost");
  CHECK_FALSE(c.server.admin_port.has_value());  // no admin listener
  CHECK(c.logging.console == true);
  CHECK(c.logging.console_format == lp::LoggingConfig::ConsoleFormat::kText);
  CHECK(c.logging.server_url == "http://localhost:8080");
  CHECK(c.logging.default_capture == true);
  CHECK(c.routes.empty());
  CHECK(c.log_server.host == "localhost");
  CHECK(c.log_server.port == 8080);
  CHECK(c.log_server.data_dir == "logs");
  CHECK(c.server.port == d.server.port);
}

}  // namespace

TEST_CASE("the Go tool's config.yaml loads unchanged") {
  lp::Config c = lp::parse_config(kSeedConfig, "config.yaml");
  CHECK(c.source == "config.yaml");
  CHECK(c.server.port == 5601);
  CHECK(c.server.host == "localhost");
  CHECK(c.server.not_found == "/404/");
  CHECK(c.logging.console);
  CHECK(c.logging.server_url == "http://localhost:8080");
  CHECK(c.logging.default_capture);
  REQUIRE(c.routes.size() == 2);

  const lp::RouteConfig& openrouter = c.routes[0];
  CHECK(openrouter.name == "openrouter");
  CHECK(openrouter.pattern == "/api/v1/");
  CHECK(openrouter.destination.to_string() == "https://openrouter.ai/");
  CHECK(openrouter.destination.tls());
  CHECK_FALSE(openrouter.logging.has_value());
  CHECK(openrouter.ca_file.empty());
  CHECK_FALSE(openrouter.insecure_skip_verify);
  CHECK(openrouter.line == 12);

  const lp::RouteConfig& lmstudio = c.routes[1];
  CHECK(lmstudio.name == "lmstudio");
  CHECK(lmstudio.pattern == "/lmstudio/");
  CHECK(lmstudio.destination.host == "127.0.0.1");
  CHECK(lmstudio.destination.port == 1234);
  CHECK(lmstudio.logging == false);
  CHECK(lmstudio.line == 15);

  CHECK(c.captures(&openrouter));
  CHECK_FALSE(c.captures(&lmstudio));
  CHECK(c.captures(nullptr));

  // Sections the seed does not have keep their defaults.
  CHECK(c.log_server.port == 8080);
  CHECK(c.server.upstream_timeout == 5min);
}

TEST_CASE("the shipped config/config.yaml loads") {
  // Located from this source file so the test does not depend on the working directory.
  fs::path file = fs::path(__FILE__).parent_path() / ".." / ".." / "config" / "config.yaml";
  REQUIRE(fs::exists(file));
  lp::Config c = lp::load_config_file(file.string());
  CHECK(c.server.port == 5601);
  CHECK(c.server.host == "localhost");
  CHECK(c.server.not_found == "/404/");
  REQUIRE(c.routes.size() == 4);
  CHECK(c.routes[0].name == "openrouter");
  CHECK(c.routes[0].pattern == "/api/v1/");
  CHECK(c.routes[0].destination.to_string() == "https://openrouter.ai/api/v1/");
  CHECK(c.routes[3].name == "lmstudio");
  CHECK(c.routes[3].logging == false);
  CHECK(c.log_server.host == "localhost");
  CHECK(c.log_server.port == 8080);
  CHECK(c.log_server.data_dir == "logs");
  // Its values are the documented defaults, so it must agree with an empty file.
  lp::Config d = lp::parse_config("", "empty");
  CHECK(c.server.upstream_timeout == d.server.upstream_timeout);
  CHECK(c.server.connect_timeout == d.server.connect_timeout);
  CHECK(c.server.idle_timeout == d.server.idle_timeout);
  CHECK(c.server.header_timeout == d.server.header_timeout);
  CHECK(c.server.max_header_bytes == d.server.max_header_bytes);
  CHECK(c.server.max_connections == d.server.max_connections);
  CHECK(c.server.threads == d.server.threads);
  CHECK(c.logging.console == d.logging.console);
  CHECK(c.logging.server_url == d.logging.server_url);
  CHECK(c.logging.default_capture == d.logging.default_capture);
}

TEST_CASE("capture keys: defaults and explicit values") {
  lp::Config d = lp::parse_config("", "c.yaml");
  CHECK(d.logging.redact);
  CHECK(d.logging.redact_headers.size() == 7);
  CHECK(d.logging.queue_bytes == 24u << 20);
  CHECK(d.logging.spool_dir == "spool");
  CHECK(d.logging.spool_max_bytes == 1ull << 30);
  CHECK(d.logging.batch_bytes == 1u << 20);
  CHECK(d.logging.batch_interval == std::chrono::milliseconds(100));
  CHECK(d.log_server.auth_token.empty());
  lp::Config c = lp::parse_config(
      "logging:\n  redact: false\n  redact_headers: [X-Secret, Cookie]\n  queue_bytes: 8MiB\n"
      "  spool_dir: /tmp/s\n  spool_max_bytes: 0\n  batch_bytes: 64KiB\n"
      "  batch_interval: 250ms\nlog_server:\n  auth_token: s3cret\n",
      "c.yaml");
  CHECK_FALSE(c.logging.redact);
  CHECK(c.logging.redact_headers == std::vector<std::string>{"X-Secret", "Cookie"});
  CHECK(c.logging.queue_bytes == 8u << 20);
  CHECK(c.logging.spool_dir == "/tmp/s");
  CHECK(c.logging.spool_max_bytes == 0);
  CHECK(c.logging.batch_bytes == 64u << 10);
  CHECK(c.logging.batch_interval == std::chrono::milliseconds(250));
  CHECK(c.log_server.auth_token == "s3cret");
}

TEST_CASE("reading keys: max_decoded_bytes, nice and retention") {
  lp::Config d = lp::parse_config("", "config.yaml");
  CHECK(d.log_server.max_decoded_bytes == 256ULL * 1024 * 1024);
  CHECK(d.log_server.nice == 10);
  CHECK_FALSE(d.log_server.retention.max_age.has_value());
  CHECK_FALSE(d.log_server.retention.max_bytes.has_value());
  lp::Config c = lp::parse_config(
      "log_server:\n  max_decoded_bytes: 1MiB\n  nice: 0\n  retention:\n    max_age: 30d\n"
      "    max_bytes: 50GiB\n",
      "config.yaml");
  CHECK(c.log_server.max_decoded_bytes == 1024 * 1024);
  CHECK(c.log_server.nice == 0);
  CHECK(lp::parse_config("log_server:\n  nice: 19\n", "config.yaml").log_server.nice == 19);
  CHECK(c.log_server.retention.max_age == std::chrono::hours(24 * 30));
  CHECK(c.log_server.retention.max_bytes == 50ULL * 1024 * 1024 * 1024);
}

TEST_CASE("an empty config means every default") {
  const char* const texts[] = {"",
                               "\n\n",
                               "# only a comment\n",
                               "---\n",
                               "~\n",
                               "server:\nlogging:\nroutes:\nlog_server:\n",
                               "server: {}\nlogging: {}\nroutes: {}\nlog_server: {}\n"};
  for (const char* text : texts) {
    CAPTURE(text);
    lp::Config c = lp::parse_config(text, "c.yaml");
    CHECK(c.source == "c.yaml");
    check_defaults(c);
  }
}

TEST_CASE("every key is read") {
  TempFile ca("-----BEGIN CERTIFICATE-----\n", ".pem");
  const std::string text = R"(server:
  host: 0.0.0.0
  port: 0
  not_found: /missing/
  upstream_timeout: 0
  connect_timeout: 300ms
  idle_timeout: 2m
  header_timeout: 15
  max_header_bytes: 1MiB
  max_request_body_bytes: 2GiB
  max_connections: 1000000
  threads: 3
  admin_host: 127.0.0.2
  admin_port: 5602
logging:
  console: off
  console_format: json
  server_url: https://logs.example.com:9443/ingest
  default: no
routes:
  zeta:
    pattern: GET example.com/test/{$}
    destination: https://internal.example:8443/base/
    logging: yes
    ca_file: )" + ca.path() +
                           R"(
    insecure_skip_verify: false
  alpha:
    pattern: /
    destination: http://[::1]:9000
    insecure_skip_verify: true
log_server:
  host: 127.0.0.1
  port: 65535
  data_dir: /var/lib/lp
)";
  lp::Config c = lp::parse_config(text, "full.yaml");
  CHECK(c.server.host == "0.0.0.0");
  CHECK(c.server.port == 0);
  CHECK(c.server.not_found == "/missing/");
  CHECK(c.server.upstream_timeout == 0ms);
  CHECK(c.server.connect_timeout == 300ms);
  CHECK(c.server.idle_timeout == 2min);
  CHECK(c.server.header_timeout == 15s);
  CHECK(c.server.max_header_bytes == 1024 * 1024);
  CHECK(c.server.max_request_body_bytes == 2ULL * 1024 * 1024 * 1024);
  CHECK(c.server.max_connections == 1000000);
  CHECK(c.server.threads == 3);
  CHECK(c.server.admin_host == "127.0.0.2");
  CHECK(c.server.admin_port == 5602);
  CHECK_FALSE(c.logging.console);
  CHECK(c.logging.console_format == lp::LoggingConfig::ConsoleFormat::kJson);
  CHECK(c.logging.server_url == "https://logs.example.com:9443/ingest");
  CHECK_FALSE(c.logging.default_capture);
  REQUIRE(c.routes.size() == 2);
  // File order, not alphabetical order: the router reports conflicts in the order written.
  CHECK(c.routes[0].name == "zeta");
  CHECK(c.routes[0].pattern == "GET example.com/test/{$}");
  CHECK(c.routes[0].destination.origin() == "https://internal.example:8443");
  CHECK(c.routes[0].destination.path == "/base/");
  CHECK(c.routes[0].logging == true);
  CHECK(c.routes[0].ca_file == ca.path());
  CHECK_FALSE(c.routes[0].insecure_skip_verify);
  CHECK(c.routes[0].line == 21);
  CHECK(c.routes[1].name == "alpha");
  CHECK(c.routes[1].destination.host == "::1");
  CHECK_FALSE(c.routes[1].logging.has_value());
  CHECK(c.routes[1].insecure_skip_verify);
  CHECK(c.routes[1].line == 27);
  CHECK(c.captures(&c.routes[0]));
  CHECK_FALSE(c.captures(&c.routes[1]));
  CHECK_FALSE(c.captures(nullptr));
  CHECK(c.log_server.host == "127.0.0.1");
  CHECK(c.log_server.port == 65535);
  CHECK(c.log_server.data_dir == "/var/lib/lp");
}

TEST_CASE("scalars are read the way YAML users write them") {
  struct Case {
    std::string text;
    bool console;
  };
  const Case bools[] = {{"true", true}, {"false", false}, {"yes", true},
                        {"no", false},  {"on", true},     {"off", false},
                        {"True", true}, {"FALSE", false}, {"\"true\"", true}};
  for (const Case& c : bools) {
    CAPTURE(c.text);
    CHECK(lp::parse_config("logging:\n  console: " + c.text + "\n", "c").logging.console ==
          c.console);
  }
  // Quoted numbers are still numbers; flow style is still YAML.
  CHECK(lp::parse_config("server:\n  port: \"8000\"\n", "c").server.port == 8000);
  CHECK(lp::parse_config("server: {port: 1, host: h}\n", "c").server.host == "h");
  CHECK(lp::parse_config("server:\n  host: 8080\n", "c").server.host == "8080");
  CHECK(lp::parse_config("server:\n  max_header_bytes: 4096\n", "c").server.max_header_bytes ==
        4096);
  CHECK(lp::parse_config("server:\n  upstream_timeout: 1m30s\n", "c").server.upstream_timeout ==
        90s);
  // Anchors and aliases resolve before the loader sees the values.
  lp::Config c = lp::parse_config(
      "routes:\n  a:\n    pattern: /a/\n    destination: &dest http://x:81/\n  b:\n"
      "    pattern: /b/\n    destination: *dest\n",
      "c");
  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[1].destination.to_string() == "http://x:81/");
}

TEST_CASE("invalid configs fail with FILE:LINE: [route 'NAME': ]PROBLEM") {
  struct Case {
    std::string text;
    std::string message;  // expected substring
  };
  const Case cases[] = {
      // server
      {"server:\n  port: 70000\n", "config.yaml:2: server.port: 70000 is out of range (0-65535)"},
      {"server:\n  port: -1\n", "config.yaml:2: server.port: -1 is out of range (0-65535)"},
      {"server:\n  port: 99999999999999999999999\n", "config.yaml:2: server.port: 9999"},
      {"server:\n  port: abc\n", "config.yaml:2: server.port: expected an integer, got \"abc\""},
      {"server:\n  port: \"abc\"\n", "config.yaml:2: server.port: expected an integer"},
      {"server:\n  port: 80.5\n", "config.yaml:2: server.port: expected an integer, got \"80.5\""},
      {"server:\n  port: 0x50\n", "config.yaml:2: server.port: expected an integer"},
      {"server:\n  port: 1e3\n", "config.yaml:2: server.port: expected an integer"},
      {"server:\n  port: [1]\n", "config.yaml:2: server.port: expected an integer, got a list"},
      {"server:\n  port:\n", "config.yaml:2: server.port: expected an integer, got nothing"},
      {"server:\n  host: {a: 1}\n", "config.yaml:2: server.host: expected a string, got a mapping"},
      {"server:\n  host: \"\"\n", "config.yaml:2: server.host: must not be empty"},
      {"server:\n  admin_port: 70000\n",
       "config.yaml:2: server.admin_port: 70000 is out of range (0-65535)"},
      {"server:\n  port: 5601\n  admin_port: 5601\n",
       "config.yaml:3: server.admin_port: 5601 is server.port too; the admin listener needs a "
       "port of its own"},
      {"server:\n  admin_host: \"\"\n", "config.yaml:2: server.admin_host: must not be empty"},
      {"logging:\n  console_format: yaml\n",
       "config.yaml:2: logging.console_format: \"yaml\" is not text or json"},
      {"server:\n  not_found: \"404\"\n",
       "config.yaml:2: server.not_found: \"404\" must start with '/'"},
      {"server:\n  upstream_timeout: 5 minutes\n",
       "config.yaml:2: server.upstream_timeout: \"5 minutes\" is not a duration"},
      {"server:\n  connect_timeout: 0\n",
       "config.yaml:2: server.connect_timeout: must be greater than 0"},
      {"server:\n  idle_timeout: 0s\n",
       "config.yaml:2: server.idle_timeout: must be greater than 0"},
      {"server:\n  header_timeout: -5s\n",
       "config.yaml:2: server.header_timeout: \"-5s\" is not a duration"},
      {"server:\n  max_header_bytes: 2MiB\n",
       "config.yaml:2: server.max_header_bytes: 2MiB is out of range (1KiB-1MiB)"},
      {"server:\n  max_header_bytes: 512\n",
       "config.yaml:2: server.max_header_bytes: 512 is out of range (1KiB-1MiB)"},
      {"server:\n  max_header_bytes: 64 KiB\n",
       "config.yaml:2: server.max_header_bytes: \"64 KiB\" is not a size"},
      {"server:\n  max_request_body_bytes: -1\n",
       "config.yaml:2: server.max_request_body_bytes: \"-1\" is not a size"},
      {"server:\n  max_request_body_bytes: 10 MB\n",
       "config.yaml:2: server.max_request_body_bytes: \"10 MB\" is not a size"},
      {"server:\n  max_connections: 0\n",
       "config.yaml:2: server.max_connections: 0 is out of range (1-1000000)"},
      {"server:\n  max_connections: 1000001\n",
       "config.yaml:2: server.max_connections: 1000001 is out of range (1-1000000)"},
      {"server:\n  threads: -1\n", "config.yaml:2: server.threads: -1 is out of range (0-1024)"},
      {"server:\n  threads: 1025\n",
       "config.yaml:2: server.threads: 1025 is out of range (0-1024)"},
      {"server:\n  port: 1\n  colour: red\n", "config.yaml:3: unknown key 'colour' in server"},
      {"server: 5\n", "config.yaml:1: server: expected a mapping of server settings, got \"5\""},
      {"server:\n  - port: 1\n", "config.yaml:1: server: expected a mapping"},
      {"server:\n  port: 1\n  port: 2\n", "config.yaml:3: duplicate key 'port' in server"},
      // logging
      {"logging:\n  console: yes please\n",
       "config.yaml:2: logging.console: expected true or false, got \"yes please\""},
      {"logging:\n  console: 1\n", "config.yaml:2: logging.console: expected true or false"},
      {"logging:\n  default: maybe\n", "config.yaml:2: logging.default: expected true or false"},
      {"logging:\n  console: [true]\n",
       "config.yaml:2: logging.console: expected true or false, got a list"},
      {"logging:\n  server_url: ftp://x\n",
       "config.yaml:2: logging.server_url \"ftp://x\" has scheme \"ftp\"; only http and https are "
       "supported"},
      {"logging:\n  server_url: localhost:8080\n",
       "config.yaml:2: logging.server_url \"localhost:8080\" is not an absolute http(s) URL"},
      {"logging:\n  server_url: \"\"\n", "config.yaml:2: logging.server_url: must not be empty"},
      // routes
      {"routes:\n  - a\n  - b\n",
       "config.yaml:1: routes: expected a mapping of route names to routes, got a list"},
      {"routes: everything\n", "config.yaml:1: routes: expected a mapping"},
      {"routes:\n  a: http://x/\n",
       "config.yaml:2: route 'a': expected a mapping with pattern and destination, got "
       "\"http://x/\""},
      {"routes:\n  a:\n", "config.yaml:2: route 'a': expected a mapping"},
      {"routes:\n  a:\n    destination: http://x/\n",
       "config.yaml:2: route 'a': missing required key 'pattern'"},
      {"routes:\n  a:\n    pattern: /a/\n",
       "config.yaml:2: route 'a': missing required key 'destination'"},
      {"routes:\n  a:\n    pattern: \"\"\n    destination: http://x/\n",
       "config.yaml:3: route 'a': pattern: must not be empty"},
      {"routes:\n  a:\n    pattern: [/a/]\n    destination: http://x/\n",
       "config.yaml:3: route 'a': pattern: expected a string, got a list"},
      {"routes:\n  a:\n    pattern: /a/\n    destination: /elsewhere/\n",
       "config.yaml:4: route 'a': destination \"/elsewhere/\" is not an absolute http(s) URL"},
      {"routes:\n  a:\n    pattern: /a/\n    destination: https://u:p@x/\n",
       "config.yaml:4: route 'a': destination \"https://u:p@x/\" contains user info"},
      {"routes:\n  a:\n    pattern: /a/\n    destination: http://x:70000/\n",
       "config.yaml:4: route 'a': destination \"http://x:70000/\" has an invalid port"},
      {route_with("    logging: maybe\n"),
       "config.yaml:5: route 'r': logging: expected true or false, got \"maybe\""},
      {route_with("    logging:\n"),
       "config.yaml:5: route 'r': logging: expected true or false, got nothing"},
      {route_with("    insecure_skip_verify: 2\n"),
       "config.yaml:5: route 'r': insecure_skip_verify: expected true or false"},
      {route_with("    ca_file: \"\"\n"), "config.yaml:5: route 'r': ca_file: must not be empty"},
      {route_with("    ca_file: /nonexistent/lp/ca.pem\n"),
       "config.yaml:5: route 'r': ca_file \"/nonexistent/lp/ca.pem\" cannot be read: No such file "
       "or directory"},
      {route_with("    ca_file: /\n"), "config.yaml:5: route 'r': ca_file \"/\" is a directory"},
      {route_with("    destinaton: http://y/\n"),
       "config.yaml:5: route 'r': unknown key 'destinaton' (expected pattern, destination, "
       "logging, ca_file, insecure_skip_verify, headers or upstream_proxy)"},
      {route_with("    pattern: /again/\n"), "config.yaml:5: route 'r': duplicate key 'pattern'"},
      {route_with("  r:\n    pattern: /s/\n    destination: http://y/\n"),
       "config.yaml:5: duplicate key 'r' in routes"},
      {"routes:\n  \"\":\n    pattern: /a/\n    destination: http://x/\n",
       "config.yaml:2: routes: a route name must not be empty"},
      {"routes:\n  ? [a, b]\n  : {pattern: /a/, destination: http://x/}\n",
       "config.yaml:2: keys must be plain names, got a list as a key in routes"},
      // The example from the contract: the seed with one destination broken.
      {std::string(kSeedConfig)
           .replace(std::string(kSeedConfig).find("http://127.0.0.1:1234/"), 22, "ftp://x"),
       "config.yaml:17: route 'lmstudio': destination \"ftp://x\" has scheme \"ftp\"; only http "
       "and https are supported"},
      {std::string(kSeedConfig)
           .replace(std::string(kSeedConfig).find("  default"), 0, "  colour: blue\n"),
       "config.yaml:9: unknown key 'colour' in logging (expected console, server_url, default, "},
      {"logging:\n  redact_headers: Authorization\n",
       "config.yaml:2: logging.redact_headers: expected a list of header names"},
      {"logging:\n  redact_headers: [\"X-Key\", \"Bad Name\"]\n",
       "config.yaml:2: logging.redact_headers: \"Bad Name\" is not a valid header name"},
      {"logging:\n  redact: maybe\n", "config.yaml:2: logging.redact: expected true or false"},
      {"logging:\n  queue_bytes: 1KiB\n",
       "config.yaml:2: logging.queue_bytes: 1KiB is out of range"},
      {"logging:\n  batch_interval: 0\n",
       "config.yaml:2: logging.batch_interval: must be greater than 0"},
      {"log_server:\n  auth_token: \"\"\n",
       "config.yaml:2: log_server.auth_token: must not be empty"},
      {"log_server:\n  retention:\n    max_age: 0\n",
       "config.yaml:3: log_server.retention.max_age: must be greater than 0"},
      {"log_server:\n  retention:\n    max_age: 30days\n",
       "config.yaml:3: log_server.retention.max_age: \"30days\" is not a duration (use e.g. "
       "\"300ms\", \"30s\", \"5m\", \"1h\" or seconds)"},
      {"log_server:\n  retention:\n    max_files: 3\n",
       "config.yaml:3: unknown key 'max_files' in log_server.retention"},
      {"log_server:\n  max_decoded_bytes: 100\n",
       "config.yaml:2: log_server.max_decoded_bytes: 100 is out of range (1KiB or more)"},
      {"log_server:\n  nice: 20\n", "config.yaml:2: log_server.nice: 20 is out of range (0-19)"},
      {"log_server:\n  nice: -5\n", "config.yaml:2: log_server.nice: -5 is out of range (0-19)"},
      {"log_server:\n  nice: low\n",
       "config.yaml:2: log_server.nice: expected an integer, got \"low\""},
      // log_server
      {"log_server:\n  port: 65536\n",
       "config.yaml:2: log_server.port: 65536 is out of range (0-65535)"},
      {"log_server:\n  data_dir: \"\"\n", "config.yaml:2: log_server.data_dir: must not be empty"},
      {"log_server:\n  dir: logs\n", "config.yaml:2: unknown key 'dir' in log_server"},
      {"log_server:\n  host: [a]\n", "config.yaml:2: log_server.host: expected a string"},
      // top level and YAML itself
      {"server:\n  port: 1\nextra: 1\n", "config.yaml:3: unknown key 'extra' at the top level"},
      {"Server:\n  port: 1\n", "config.yaml:1: unknown key 'Server' at the top level"},
      {"routes: {}\nroutes: {}\n", "config.yaml:2: duplicate key 'routes' at the top level"},
      {"- server\n- logging\n", "config.yaml:1: expected a mapping with server, logging"},
      {"hello\n", "config.yaml:1: expected a mapping with server, logging"},
      {"server:\n  port: [1\n", "config.yaml:3: invalid YAML: end of sequence flow not found"},
      {"server:\n\tport: 1\n", "config.yaml:2: invalid YAML"},
      {"server: {port: 1\n", "config.yaml:"},
      {"server: {}\n---\nlogging: {}\n", "config.yaml: the file holds 2 YAML documents"},
      {std::string(100000, '['), "config.yaml:1: invalid YAML: nested too deeply"},
  };
  static_assert(sizeof(cases) / sizeof(cases[0]) >= 25);
  for (const Case& c : cases) {
    CAPTURE(c.text);
    std::string error = error_of(c.text);
    REQUIRE_MESSAGE(!error.empty(), "loaded without an error");
    CHECK_MESSAGE(error.find(c.message) != std::string::npos, error);
    CHECK(error.rfind("config.yaml", 0) == 0);
    CHECK(error.find('\n') == std::string::npos);
  }
}

TEST_CASE("a message stays on one line even when a value spans several") {
  std::string error = error_of("routes:\n  \"a\\nb\":\n    pattern: /a/\n");
  CHECK(error.find('\n') == std::string::npos);
  CHECK(error.find("route 'a b': missing required key 'destination'") != std::string::npos);
}

TEST_CASE("parse_duration") {
  struct Case {
    const char* text;
    std::optional<std::chrono::milliseconds> want;
  };
  const Case cases[] = {
      {"0", 0ms},
      {"0s", 0ms},
      {"0ms", 0ms},
      {"300ms", 300ms},
      {"30s", 30s},
      {"5m", 5min},
      {"1h", 1h},
      {"30", 30s},
      {"1m30s", 90s},
      {"1h2m3s4ms", 1h + 2min + 3s + 4ms},
      {"007s", 7s},
      {"86400", 24h},
      {"", std::nullopt},
      {"s", std::nullopt},
      {"ms", std::nullopt},
      {"-1", std::nullopt},
      {"-5s", std::nullopt},
      {"+5s", std::nullopt},
      {"1.5s", std::nullopt},
      {"5 s", std::nullopt},
      {" 5s", std::nullopt},
      {"5s ", std::nullopt},
      {"5S", std::nullopt},
      {"5sec", std::nullopt},
      {"5d", std::chrono::hours(120)},
      {"1d12h", std::chrono::hours(36)},
      {"5D", std::nullopt},
      {"5us", std::nullopt},
      {"1m30", std::nullopt},
      {"abc", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"9223372036854775807s", std::nullopt},
      {"9223372036854775807", std::nullopt},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK(lp::parse_duration(c.text) == c.want);
  }
}

TEST_CASE("parse_byte_size") {
  struct Case {
    const char* text;
    std::optional<size_t> want;
  };
  const Case cases[] = {
      {"0", 0},
      {"1", 1},
      {"4096", 4096},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"64kib", 64 * 1024},
      {"1MiB", 1024 * 1024},
      {"1GiB", size_t{1} << 30},
      {"2TiB", size_t{2} << 40},
      {"512KB", 512000},
      {"512kB", 512000},
      {"1MB", 1000000},
      {"3GB", size_t{3000000000}},
      {"1TB", size_t{1000000000000}},
      {"", std::nullopt},
      {"KiB", std::nullopt},
      {"-1", std::nullopt},
      {"1.5MiB", std::nullopt},
      {"64 KiB", std::nullopt},
      {" 64KiB", std::nullopt},
      {"64K", std::nullopt},
      {"64KiBs", std::nullopt},
      {"64PiB", std::nullopt},
      {"abc", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"17179869184GiB", std::nullopt},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK(lp::parse_byte_size(c.text) == c.want);
  }
}

TEST_CASE("load_config_file") {
  SUBCASE("reads the file and names it in the config") {
    TempFile file(kSeedConfig);
    lp::Config c = lp::load_config_file(file.path());
    CHECK(c.source == file.path());
    CHECK(c.routes.size() == 2);
  }
  SUBCASE("a missing file") {
    CHECK_THROWS_WITH_AS(lp::load_config_file("/nonexistent/lp/config.yaml"),
                         "/nonexistent/lp/config.yaml: cannot read config: No such file or "
                         "directory",
                         lp::ConfigError);
  }
  SUBCASE("a directory") {
    std::string dir = fs::temp_directory_path().string();
    CHECK_THROWS_WITH_AS(lp::load_config_file(dir),
                         (dir + ": cannot read config: Is a directory").c_str(), lp::ConfigError);
  }
  SUBCASE("errors name the file path") {
    TempFile file("server:\n  port: 70000\n");
    CHECK_THROWS_WITH_AS(lp::load_config_file(file.path()),
                         (file.path() + ":2: server.port: 70000 is out of range (0-65535)").c_str(),
                         lp::ConfigError);
  }
  SUBCASE("an empty file") {
    TempFile file("");
    check_defaults(lp::load_config_file(file.path()));
  }
}

TEST_CASE("ca_file must name a readable, non-empty file") {
  SUBCASE("readable") {
    TempFile ca("-----BEGIN CERTIFICATE-----\n", ".pem");
    lp::Config c = lp::parse_config(route_with("    ca_file: " + ca.path() + "\n"), "c");
    CHECK(c.routes.at(0).ca_file == ca.path());
  }
  SUBCASE("missing") {
    std::string error = error_of(route_with("    ca_file: /nonexistent/ca.pem\n"));
    CHECK(error ==
          "config.yaml:5: route 'r': ca_file \"/nonexistent/ca.pem\" cannot be read: No such file "
          "or directory");
  }
  SUBCASE("empty") {
    TempFile ca("", ".pem");
    std::string error = error_of(route_with("    ca_file: " + ca.path() + "\n"));
    CHECK(error == "config.yaml:5: route 'r': ca_file \"" + ca.path() + "\" is empty");
  }
  SUBCASE("unreadable") {
    TempFile ca("-----BEGIN CERTIFICATE-----\n", ".pem");
    fs::permissions(ca.path(), fs::perms::none);
    std::ifstream probe(ca.path());
    // root reads files regardless of their mode, so this case only means something otherwise.
    if (!probe.is_open()) {
      std::string error = error_of(route_with("    ca_file: " + ca.path() + "\n"));
      CHECK(error == "config.yaml:5: route 'r': ca_file \"" + ca.path() +
                         "\" cannot be read: Permission denied");
    }
  }
}

TEST_CASE("expand_env: ${NAME}, $$, and errors that name the problem") {
  auto lookup = [](const std::string& name) -> const char* {
    if (name == "KEY") return "sk-123";
    if (name == "EMPTY") return "";
    return nullptr;
  };
  struct Row {
    const char* in;
    const char* out;    // nullptr: error expected
    const char* error;  // substring of the error
  };
  const Row rows[] = {
      {"plain", "plain", ""},
      {"Bearer ${KEY}", "Bearer sk-123", ""},
      {"${KEY}${KEY}", "sk-123sk-123", ""},
      {"a${EMPTY}b", "ab", ""},
      {"cost $$5", "cost $5", ""},
      {"$$", "$", ""},
      {"${MISSING}", nullptr, "environment variable MISSING is not set"},
      {"$KEY", nullptr, "must start ${NAME}"},
      {"trailing $", nullptr, "must start ${NAME}"},
      {"${KEY", nullptr, "malformed"},
      {"${}", nullptr, "malformed"},
      {"${1A}", nullptr, "malformed"},
      {"${A-B}", nullptr, "malformed"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    std::string error;
    auto v = lp::expand_env(r.in, lookup, &error);
    if (r.out) {
      REQUIRE(v);
      CHECK(*v == r.out);
    } else {
      CHECK_FALSE(v);
      CHECK(error.find(r.error) != std::string::npos);
    }
  }
}

TEST_CASE("routes.NAME.headers are expanded at load time, a missing variable is an error") {
  setenv("LP_TEST_PROVIDER_KEY", "sk-or-abc", 1);
  unsetenv("LP_TEST_UNSET_KEY");
  lp::Config c = lp::parse_config(
      "routes:\n  or:\n    pattern: /or/\n    destination: https://openrouter.ai/api/v1/\n"
      "    headers:\n      Authorization: \"Bearer ${LP_TEST_PROVIDER_KEY}\"\n"
      "      X-Title: my app\n",
      "c.yaml");
  REQUIRE(c.routes.size() == 1);
  REQUIRE(c.routes[0].headers.size() == 2);
  CHECK(c.routes[0].headers[0].first == "Authorization");
  CHECK(c.routes[0].headers[0].second == "Bearer sk-or-abc");
  CHECK(c.routes[0].headers[1].second == "my app");
  const std::pair<const char*, const char*> bad[] = {
      {"routes:\n  or:\n    pattern: /or/\n    destination: http://h/\n"
       "    headers:\n      Authorization: \"Bearer ${LP_TEST_UNSET_KEY}\"\n",
       "c.yaml:6: route 'or': headers.Authorization: environment variable LP_TEST_UNSET_KEY is "
       "not set"},
      {"routes:\n  or:\n    pattern: /or/\n    destination: http://h/\n    headers: [a]\n",
       "c.yaml:5: route 'or': headers: expected a mapping"},
      {"routes:\n  or:\n    pattern: /or/\n    destination: http://h/\n"
       "    headers:\n      \"Bad Name\": x\n",
       "c.yaml:6: route 'or': headers: \"Bad Name\" is not a valid header name"},
  };
  for (const auto& [text, message] : bad) {
    CAPTURE(text);
    std::string error;
    try {
      lp::parse_config(text, "c.yaml");
    } catch (const lp::ConfigError& e) {
      error = e.what();
    }
    CHECK(error.find(message) != std::string::npos);
  }
}

TEST_CASE("expand_env false keeps routes.NAME.headers as written (log server, replay)") {
  unsetenv("LP_TEST_UNSET_KEY");
  lp::Config c = lp::parse_config(
      "routes:\n  or:\n    pattern: /or/\n    destination: http://h/\n"
      "    headers:\n      Authorization: \"Bearer ${LP_TEST_UNSET_KEY}\"\n",
      "c.yaml", {.expand_env = false});
  REQUIRE(c.routes[0].headers.size() == 1);
  CHECK(c.routes[0].headers[0].second == "Bearer ${LP_TEST_UNSET_KEY}");
}

TEST_CASE("forward proxy and upstream proxy keys: defaults") {
  const lp::Config c = lp::parse_config("", "c.yaml");
  CHECK_FALSE(c.forward_proxy.enabled);
  CHECK(c.forward_proxy.intercept ==
        std::vector<std::string>{"api.openai.com", "api.anthropic.com", "openrouter.ai",
                                 "generativelanguage.googleapis.com", "api.mistral.ai",
                                 "api.groq.com", "api.deepseek.com", "api.x.ai", "api.together.xyz",
                                 "api.fireworks.ai", "api.cohere.com", "api.perplexity.ai"});
  CHECK(c.forward_proxy.exclude.empty());
  CHECK(c.forward_proxy.users.empty());
  CHECK(c.forward_proxy.ca_dir == "ca");
  CHECK(c.server.upstream_proxy.empty());
  CHECK_FALSE(c.server.upstream_proxy_from_env);
  CHECK(c.server.no_proxy.empty());
  const lp::Config r = lp::parse_config(route_with(""), "c.yaml");
  CHECK_FALSE(r.routes[0].upstream_proxy.has_value());
  // An empty section keeps the defaults.
  CHECK(lp::parse_config("forward_proxy:\n", "c").forward_proxy.intercept.size() == 12);
}

TEST_CASE("every shipped file in config/ loads, with the forward proxy off") {
  const fs::path dir = fs::path(__FILE__).parent_path() / ".." / ".." / "config";
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    CAPTURE(entry.path().string());
    const lp::Config c = lp::load_config_file(entry.path().string());
    CHECK_FALSE(c.forward_proxy.enabled);
    CHECK(c.server.upstream_proxy.empty());
    ++files;
  }
  CHECK(files >= 2);
}

TEST_CASE("forward proxy and upstream proxy keys: every key is read") {
  const std::string text = R"(server:
  upstream_proxy: http://proxy.corp:3128
  upstream_proxy_from_env: true
  no_proxy: [localhost, "*.corp.example", 10.1.2.3, "::1"]
forward_proxy:
  enabled: true
  intercept: [api.openai.com, "*.anthropic.com", 192.168.1.9]
  exclude:
    - files.anthropic.com
  users:
    - name: alice
      password_sha256: 2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B
    - {name: bob, password_env: LP_BOB_PASSWORD}
  ca_dir: /var/lib/lp/ca
routes:
  a:
    pattern: /a/
    destination: http://a/
    upstream_proxy: socks5://127.0.0.1:1080
  b:
    pattern: /b/
    destination: http://b/
    upstream_proxy: none
  c:
    pattern: /c/
    destination: http://c/
    upstream_proxy: ""
  d:
    pattern: /d/
    destination: http://d/
    upstream_proxy: http://user:pa%40ss@[::1]:8080/
)";
  const lp::Config c = lp::parse_config(text, "c.yaml");
  CHECK(c.server.upstream_proxy == "http://proxy.corp:3128");
  CHECK(c.server.upstream_proxy_from_env);
  CHECK(c.server.no_proxy ==
        std::vector<std::string>{"localhost", "*.corp.example", "10.1.2.3", "::1"});
  CHECK(c.forward_proxy.enabled);
  CHECK(c.forward_proxy.intercept ==
        std::vector<std::string>{"api.openai.com", "*.anthropic.com", "192.168.1.9"});
  CHECK(c.forward_proxy.exclude == std::vector<std::string>{"files.anthropic.com"});
  REQUIRE(c.forward_proxy.users.size() == 2);
  CHECK(c.forward_proxy.users[0].name == "alice");
  CHECK(c.forward_proxy.users[0].password_sha256 ==
        "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
  CHECK(c.forward_proxy.users[0].password_env.empty());
  CHECK(c.forward_proxy.users[1].name == "bob");
  CHECK(c.forward_proxy.users[1].password_sha256.empty());
  CHECK(c.forward_proxy.users[1].password_env == "LP_BOB_PASSWORD");
  CHECK(c.forward_proxy.ca_dir == "/var/lib/lp/ca");
  REQUIRE(c.routes.size() == 4);
  CHECK(c.routes[0].upstream_proxy == "socks5://127.0.0.1:1080");
  CHECK(c.routes[1].upstream_proxy == "");  // "none": direct even though server has a proxy
  CHECK(c.routes[2].upstream_proxy == "");
  CHECK(c.routes[3].upstream_proxy == "http://user:pa%40ss@[::1]:8080/");
  // An empty list is a choice too: intercept nothing.
  CHECK(lp::parse_config("forward_proxy:\n  intercept: []\n", "c").forward_proxy.intercept.empty());
}

TEST_CASE("forward proxy and upstream proxy keys: errors name the key and the problem") {
  struct Case {
    std::string text;
    std::string message;  // expected substring
  };
  const Case cases[] = {
      // server.upstream_proxy
      {"server:\n  upstream_proxy: https://p:3128\n",
       "config.yaml:2: server.upstream_proxy \"https://p:3128\" must start with http:// or "
       "socks5:// (expected http://HOST:PORT or socks5://HOST:PORT)"},
      {"server:\n  upstream_proxy: proxy.corp:3128\n",
       "config.yaml:2: server.upstream_proxy \"proxy.corp:3128\" must start with http://"},
      {"server:\n  upstream_proxy: http://proxy.corp\n",
       "config.yaml:2: server.upstream_proxy \"http://proxy.corp\" has no port"},
      {"server:\n  upstream_proxy: http://proxy.corp:0\n", "has an invalid port"},
      {"server:\n  upstream_proxy: http://proxy.corp:65536\n", "has an invalid port"},
      {"server:\n  upstream_proxy: http://proxy.corp:31x\n", "has an invalid port"},
      {"server:\n  upstream_proxy: \"http://:3128\"\n", "has no host"},
      {"server:\n  upstream_proxy: http://[::1]\n", "has no port"},
      {"server:\n  upstream_proxy: http://::1:3128\n", "write an IPv6 address in brackets"},
      {"server:\n  upstream_proxy: http://bad_host!:3128\n", "has an invalid host"},
      {"server:\n  upstream_proxy: http://p:3128/path\n", "has a path"},
      {"server:\n  upstream_proxy: \"\"\n",
       "config.yaml:2: server.upstream_proxy: must not be empty"},
      {"server:\n  upstream_proxy: [http://p:1]\n",
       "config.yaml:2: server.upstream_proxy: expected a string, got a list"},
      {"server:\n  upstream_proxy_from_env: sometimes\n",
       "config.yaml:2: server.upstream_proxy_from_env: expected true or false"},
      // server.no_proxy
      {"server:\n  no_proxy: localhost\n",
       "config.yaml:2: server.no_proxy: expected a list of host patterns, got \"localhost\""},
      {"server:\n  no_proxy: [localhost, \"corp.example:8080\"]\n",
       "config.yaml:2: server.no_proxy: \"corp.example:8080\" has a port"},
      {"server:\n  no_proxy:\n    - ok.example\n    - [nested]\n",
       "config.yaml:4: server.no_proxy: expected a host pattern, got a list"},
      // routes.NAME.upstream_proxy
      {route_with("    upstream_proxy: ftp://p:21\n"),
       "config.yaml:5: route 'r': upstream_proxy \"ftp://p:21\" must start with http:// or "
       "socks5://"},
      {route_with("    upstream_proxy:\n"),
       "config.yaml:5: route 'r': upstream_proxy: expected a string, got nothing"},
      {route_with("    upstream_proxy: direct\n"),
       "route 'r': upstream_proxy \"direct\" must start with"},
      // forward_proxy
      {"forward_proxy: true\n",
       "config.yaml:1: forward_proxy: expected a mapping of forward proxy settings, got \"true\""},
      {"forward_proxy:\n  enabled: maybe\n",
       "config.yaml:2: forward_proxy.enabled: expected true or false"},
      {"forward_proxy:\n  intercept: api.openai.com\n",
       "config.yaml:2: forward_proxy.intercept: expected a list of host patterns"},
      {"forward_proxy:\n  intercept:\n    - api.openai.com\n    - https://api.anthropic.com\n",
       "config.yaml:4: forward_proxy.intercept: \"https://api.anthropic.com\" has a scheme"},
      {"forward_proxy:\n  intercept: [\"api.openai.com/v1\"]\n",
       "config.yaml:2: forward_proxy.intercept: \"api.openai.com/v1\" has a path"},
      {"forward_proxy:\n  intercept: [\"api openai.com\"]\n",
       "forward_proxy.intercept: \"api openai.com\" contains a space"},
      {"forward_proxy:\n  exclude: [\"*\"]\n",
       "config.yaml:2: forward_proxy.exclude: \"*\" has a '*' other than a leading \"*.\""},
      {"forward_proxy:\n  exclude: [\"bad!host\"]\n",
       "config.yaml:2: forward_proxy.exclude: \"bad!host\" is not a host name or IP address"},
      {"forward_proxy:\n  exclude: [\"api.*.com\"]\n",
       "forward_proxy.exclude: \"api.*.com\" has a '*' other than a leading \"*.\""},
      {"forward_proxy:\n  ca_dir: \"\"\n",
       "config.yaml:2: forward_proxy.ca_dir: must not be empty"},
      {"forward_proxy:\n  ca: x\n",
       "config.yaml:2: unknown key 'ca' in forward_proxy (expected enabled, intercept, exclude, "
       "users or ca_dir)"},
      {"forward_proxy:\n  users: alice\n",
       "config.yaml:2: forward_proxy.users: expected a list of users, got \"alice\""},
      {"forward_proxy:\n  users:\n    - alice\n",
       "config.yaml:3: forward_proxy.users[0]: expected a mapping with name and password_sha256 "
       "or password_env, got \"alice\""},
      {"forward_proxy:\n  users:\n    - password_env: X\n",
       "config.yaml:3: forward_proxy.users[0]: missing required key 'name'"},
      {"forward_proxy:\n  users:\n    - name: alice\n",
       "config.yaml:3: forward_proxy.users[0] ('alice'): set exactly one of password_sha256 and "
       "password_env"},
      {"forward_proxy:\n  users:\n    - name: alice\n      password_env: A\n"
       "      password_sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
       "forward_proxy.users[0] ('alice'): set exactly one of password_sha256 and password_env"},
      {"forward_proxy:\n  users:\n    - name: alice\n      password_sha256: secret\n",
       "config.yaml:4: forward_proxy.users[0].password_sha256: expected 64 hex digits"},
      {"forward_proxy:\n  users:\n    - name: \"a:b\"\n      password_env: A\n",
       "config.yaml:3: forward_proxy.users[0].name: must not contain ':'"},
      {"forward_proxy:\n  users:\n    - name: alice\n      password: secret\n",
       "config.yaml:4: unknown key 'password' in forward_proxy.users[0] (expected name, "
       "password_sha256 or password_env)"},
      {"forward_proxy:\n  users:\n    - {name: a, password_env: A}\n    - {name: b, password_env: "
       "B}\n    - {name: a, password_env: C}\n",
       "config.yaml:5: forward_proxy.users[2]: user 'a' is listed twice"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    std::string error = error_of(c.text);
    REQUIRE_MESSAGE(!error.empty(), "loaded without an error");
    CHECK_MESSAGE(error.find(c.message) != std::string::npos, error);
  }
}
