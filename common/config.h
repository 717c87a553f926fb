// The configuration model shared by logging-proxy and log-server, and its loader.
// One YAML file configures both processes; the Go tool's config.yaml loads unchanged.
// Loading is strict: any unknown key, wrong type or invalid value throws ConfigError whose
// message names the file, the line (when known), the route (when relevant) and the problem.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/url.h"

namespace lp {

struct RouteConfig {
  std::string name;                   // the key under `routes:`
  std::string pattern;                // Go ServeMux pattern, validated by the proxy's router
  Url destination;                    // absolute http(s) URL
  std::optional<bool> logging;        // unset: follow logging.default
  std::string ca_file;                // PEM bundle to verify this destination's TLS certificate
  bool insecure_skip_verify = false;  // disables TLS verification (loud warning at start)
  // Headers the proxy sets on every request of this route (replacing any the client sent),
  // "${VAR}" already expanded from the environment. Masked in captures like credentials.
  std::vector<std::pair<std::string, std::string>> headers;
  // Unset: follow server.upstream_proxy. Set to "" (written "" or "none"): connect directly
  // even when the server has a proxy. Otherwise an http:// or socks5:// URL, stored as written.
  std::optional<std::string> upstream_proxy;
  int line = 0;  // 1-based line of the route in the file, 0 when unknown
};

struct ServerConfig {
  std::string host = "localhost";
  int port = 5601;
  std::string not_found = "/404/";
  // Longest silence allowed while waiting on upstream (headers or the next body bytes);
  // zero disables it. There is deliberately no total timeout: LLM streams run long.
  std::chrono::milliseconds upstream_timeout = std::chrono::minutes(5);
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  // How long an idle client keep-alive connection is kept open.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // How long a client may take to send a complete request head (slowloris bound).
  std::chrono::milliseconds header_timeout = std::chrono::seconds(30);
  size_t max_header_bytes = 64 * 1024;
  // Largest request body accepted; 0 = unlimited (LLM payloads with images or long contexts
  // are large, so there is no default cap). Beyond: 413 and the connection closed.
  uint64_t max_request_body_bytes = 0;
  size_t max_connections = 10000;  // concurrent client connections; more are refused with 503
  // Event-loop threads serving every connection; 0 = one per core.
  size_t threads = 0;
  // The admin listener (/metrics, /healthz, /readyz, POST /reload): off unless admin_port is
  // set, so several proxies on one machine never collide; 0 picks a free port.
  std::string admin_host = "localhost";
  std::optional<int> admin_port;
  // Where upstream connections go through: "" (direct), or an http:// or socks5:// URL with a
  // host and a port, stored as written (only its shape is checked here).
  std::string upstream_proxy;
  // Off by default so the proxy's behaviour does not change with the shell it starts from; on,
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply where the file sets no upstream_proxy.
  bool upstream_proxy_from_env = false;
  std::vector<std::string> no_proxy;  // host patterns (see common/host_pattern.h) reached directly
};

// One account for the forward proxy's Proxy-Authorization: Basic. Exactly one of the two
// password fields is set; the password itself never sits in the file.
struct ForwardProxyUser {
  std::string name;
  std::string password_sha256;  // lowercase hex of SHA-256(password)
  std::string password_env;     // environment variable holding the password
};

// The forward proxy (HTTP CONNECT) and its TLS interception. Off unless enabled.
struct ForwardProxyConfig {
  bool enabled = false;
  // Host patterns (see common/host_pattern.h) whose TLS is intercepted and captured; anything
  // else is tunnelled untouched. `exclude` wins over `intercept`.
  std::vector<std::string> intercept = {"api.openai.com",   "api.anthropic.com",
                                        "openrouter.ai",    "generativelanguage.googleapis.com",
                                        "api.mistral.ai",   "api.groq.com",
                                        "api.deepseek.com", "api.x.ai",
                                        "api.together.xyz", "api.fireworks.ai",
                                        "api.cohere.com",   "api.perplexity.ai"};
  std::vector<std::string> exclude;
  std::vector<ForwardProxyUser> users;  // empty: no Proxy-Authorization asked
  // The local CA (ca.key, ca.pem); relative to the working directory, like logging.spool_dir.
  std::string ca_dir = "ca";
};

struct LoggingConfig {
  bool console = true;
  // Console lines as text (the default) or one JSON object per exchange (log shippers).
  enum class ConsoleFormat { kText, kJson };
  ConsoleFormat console_format = ConsoleFormat::kText;
  std::string server_url = "http://localhost:8080";
  bool default_capture = true;  // YAML key `default`
  // Credentials are masked in captures before they leave the proxy ("Bearer ****wxyz").
  bool redact = true;
  std::vector<std::string> redact_headers = {"Authorization", "Proxy-Authorization", "X-Api-Key",
                                             "Api-Key",       "X-Goog-Api-Key",      "Cookie",
                                             "Set-Cookie"};
  // All capture memory: frames waiting and batches being shipped; when full, exchanges are
  // marked truncated.
  size_t queue_bytes = 24 * 1024 * 1024;
  // Batches the log server did not take wait here (survives restarts); when full, truncated.
  std::string spool_dir = "spool";
  uint64_t spool_max_bytes = 1024ULL * 1024 * 1024;
  size_t batch_bytes = 1024 * 1024;  // a batch is sent when it reaches this size ...
  std::chrono::milliseconds batch_interval = std::chrono::milliseconds(100);  // ... or age
};

// Which exchanges the log server deletes (oldest first, row and files together). Unset: keep.
struct RetentionConfig {
  std::optional<std::chrono::milliseconds> max_age;  // "30d"
  std::optional<uint64_t> max_bytes;                 // "50GiB": counts the exchange files
};

struct LogServerConfig {
  std::string host = "localhost";
  int port = 8080;
  std::string data_dir = "logs";
  // Shared secret: when set, every endpoint but /healthz needs "Authorization: Bearer TOKEN",
  // and the proxy sends it. The environment variable LOG_SERVER_TOKEN fills it when the file
  // leaves it unset.
  std::string auth_token;
  // Bound on a decoded body (GET .../body, deriving LLM fields): past it, 413 / not derived.
  uint64_t max_decoded_bytes = 256ULL * 1024 * 1024;
  // The nice value (0-19) the server runs at, so that on a host it shares with the proxy the
  // client path gets the CPU first; 0 leaves the priority it was started with.
  int nice = 10;
  RetentionConfig retention;
};

struct Config {
  std::string source;  // the file name used in error messages
  ServerConfig server;
  LoggingConfig logging;
  std::vector<RouteConfig> routes;  // in file order
  LogServerConfig log_server;
  ForwardProxyConfig forward_proxy;

  // Whether exchanges on `route` (nullptr: no route matched) are captured.
  bool captures(const RouteConfig* route) const {
    if (route && route->logging) return *route->logging;
    return logging.default_capture;
  }
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoadOptions {
  // Expand ${VAR} in routes.NAME.headers (an unset variable is then an error). Only the proxy
  // sends those headers; the log server and `replay` load the same file without expanding, so
  // they need none of the proxy's secrets in their environment.
  bool expand_env = true;
};

// Parses YAML text; `source` names it in error messages (usually the file path).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const LoadOptions& options = {});
// Reads and parses a file; a missing or unreadable file is a ConfigError too.
Config load_config_file(const std::string& path, const LoadOptions& options = {});

// Expands "${NAME}" from `lookup` (nullptr: unset, which is an error naming the variable);
// "$$" is a literal "$". nullopt with *error set on an unset variable or a malformed reference.
std::optional<std::string> expand_env(std::string_view text,
                                      const std::function<const char*(const std::string&)>& lookup,
                                      std::string* error);

// "300ms", "30s", "5m", "1h", "30d", a bare number of seconds, or "0" (disabled).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// "64KiB", "1MiB", "1GiB", "512KB", a bare number of bytes.
std::optional<size_t> parse_byte_size(std::string_view text);

}  // namespace lp
