#include "proxy/replay_command.h"

#include <httplib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/config.h"
#include "common/url.h"
#include "proxy/body_stream.h"
#include "proxy/replay_request.h"
#include "proxy/socket.h"

namespace lp {
namespace {

constexpr const char* kReplayUsage =
    R"(Usage: logging-proxy replay ID [--config FILE] [--to PROXY_URL] [--from LOG_SERVER_URL]
                            [--header 'Name: value']...

Re-sends capture ID (full id or its 8-character prefix) through the proxy at its
X-Proxy-Path, streams the response body to stdout and prints a summary on stderr.
The replay is captured too, linked to the original (replay_of).

  --config FILE   config to take defaults from (default: config.yaml)
  --to URL        the proxy (default: http://server.host:server.port)
  --from URL      the log server (default: logging.server_url)
  --header 'K: V' add or replace a header; repeatable. Credentials masked in the capture
                  are not re-sent: supply them here, or set
                  LOGGING_PROXY_REPLAY_AUTHORIZATION for Authorization.

Exit status: 0 on a 2xx answer, 1 on another status or a failed send, 2 on usage or
lookup errors (unknown id, log server unreachable).
)";

int fail(const std::string& message, int code = 2) {
  std::cerr << "logging-proxy replay: " << message << "\n";
  return code;
}

std::unique_ptr<httplib::Client> log_server_client(const Url& url, const std::string& token) {
  auto client = std::make_unique<httplib::Client>(url.origin());
  client->set_connection_timeout(std::chrono::seconds(3));
  client->set_read_timeout(std::chrono::seconds(60));
  client->set_decompress(false);
  if (!token.empty()) client->set_bearer_token_auth(token.c_str());
  return client;
}

std::string base_path(const Url& url) {
  std::string base = url.path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

// Error text from a JSON error body, else the status.
std::string describe_error(const httplib::Result& res) {
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(res->status);
}

// Ids of the captures that replay `id` (the newest 1000).
std::set<std::string> replay_ids(httplib::Client& client, const std::string& base,
                                 const std::string& id) {
  std::set<std::string> ids;
  auto res = client.Get((base + "/requests?limit=1000&replay_of=" + id).c_str());
  if (!res || res->status != 200) return ids;
  auto list = nlohmann::json::parse(res->body, nullptr, false);
  if (!list.is_object() || !list.contains("requests") || !list["requests"].is_array()) return ids;
  for (const auto& r : list["requests"]) {
    if (r.is_object() && r.contains("id") && r["id"].is_string()) ids.insert(r["id"]);
  }
  return ids;
}

bool write_stdout(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

int run_replay(int argc, char** argv) {
  std::string id, config_path = "config.yaml", to, from;
  HeaderList overrides;
  bool config_given = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kReplayUsage;
      return 0;
    } else if (arg == "--config" || arg == "--to" || arg == "--from" || arg == "--header") {
      const char* v = value(arg.c_str());
      if (!v) return fail(arg + " needs a value\nTry 'logging-proxy replay --help'.");
      if (arg == "--config") {
        config_path = v;
        config_given = true;
      } else if (arg == "--to") {
        to = v;
      } else if (arg == "--from") {
        from = v;
      } else {
        auto h = parse_header_arg(v);
        if (!h) return fail("--header \"" + std::string(v) + "\" is not a valid 'Name: value'");
        overrides.push_back(*h);
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return fail("unknown option '" + arg + "'\nTry 'logging-proxy replay --help'.");
    } else if (id.empty()) {
      id = arg;
    } else {
      return fail("more than one ID given ('" + id + "', '" + arg + "')");
    }
  }
  if (id.empty()) return fail("missing capture ID\nTry 'logging-proxy replay --help'.");
  if (id.size() < 8 || id.size() > 36 ||
      id.find_first_not_of("0123456789abcdef-") != std::string::npos) {
    return fail("'" + id + "' is not a capture id (8 to 36 characters of 0-9, a-f and '-')");
  }

  Config config;
  try {
    config = load_config_file(config_path, {.expand_env = false});
  } catch (const ConfigError& e) {
    // Without a config file, --to and --from must say where to go.
    if (config_given || to.empty() || from.empty()) return fail(e.what());
  }
  if (from.empty()) from = config.logging.server_url;
  if (to.empty()) to = "http://" + config.server.host + ":" + std::to_string(config.server.port);
  std::string error;
  auto from_url = parse_url(from, &error);
  if (!from_url) return fail("--from " + error);
  auto to_url = parse_url(to, &error);
  if (!to_url) return fail("--to " + error);
  if (to_url->tls()) return fail("--to must be an http:// URL (the proxy listens on plain HTTP)");

  bool has_auth = false;
  for (const auto& h : overrides) has_auth = has_auth || iequals(h.name, "Authorization");
  if (const char* env = std::getenv("LOGGING_PROXY_REPLAY_AUTHORIZATION"); env && !has_auth) {
    if (*env) overrides.push_back({"Authorization", env});
  }

  // 1. The capture: its record (full id) and the stored request message.
  auto client = log_server_client(*from_url, config.log_server.auth_token);
  const std::string base = base_path(*from_url);
  auto record = client->Get((base + "/requests/" + id).c_str());
  if (!record) {
    return fail("cannot reach the log server at " + from + ": " +
                httplib::to_string(record.error()));
  }
  if (record->status == 404) return fail("no capture with id '" + id + "' on " + from);
  if (record->status != 200) return fail("looking up '" + id + "': " + describe_error(record));
  auto meta = nlohmann::json::parse(record->body, nullptr, false);
  if (!meta.is_object() || !meta.contains("id") || !meta["id"].is_string()) {
    return fail("the log server returned an unexpected record for '" + id + "'");
  }
  const std::string full_id = meta["id"].get<std::string>();
  std::string stored;
  auto raw = client->Get((base + "/requests/" + full_id + "/request").c_str(),
                         [&](const char* data, size_t n) {
                           stored.append(data, n);
                           return true;
                         });
  if (!raw) {
    return fail("cannot fetch the stored request from " + from + ": " +
                httplib::to_string(raw.error()));
  }
  if (raw->status != 200) return fail("fetching the stored request: " + describe_error(raw));

  ReplayOptions options;
  options.original_id = full_id;
  options.proxy_authority = to_url->authority();
  options.redacted_names = config.logging.redact_headers;
  options.overrides = overrides;
  auto request = build_replay_request(stored, options, &error);
  if (!request) return fail("capture " + full_id.substr(0, 8) + ": " + error);

  // 2. Send it through the proxy and stream the answer to stdout.
  const std::set<std::string> known_replays = replay_ids(*client, base, full_id);
  const auto started = Clock::now();
  int fd = connect_tcp(to_url->host, to_url->port, deadline_after(std::chrono::seconds(5)), &error);
  if (fd < 0) return fail("cannot reach the proxy at " + to + ": " + error);
  PlainStream proxy(fd);
  std::string out;
  append_request_head(&out, request->head);
  out.append(request->body);
  if (!write_all(proxy, out.data(), out.size(), deadline_after(std::chrono::minutes(5))).ok()) {
    return fail("sending the request to the proxy failed", 1);
  }
  std::string buf;
  ResponseHead response;
  ParseResult parsed;
  while (true) {
    parsed = parse_response_head(buf, HeadLimits{}, &response);
    if (parsed.state == ParseResult::State::kDone && response.status >= 200) break;
    if (parsed.state == ParseResult::State::kDone) {  // interim 1xx
      buf.erase(0, parsed.consumed);
      continue;
    }
    if (parsed.state == ParseResult::State::kError) return fail(parsed.error, 1);
    char tmp[16384];
    IoResult r = read_some(proxy, tmp, sizeof(tmp), deadline_after(std::chrono::minutes(10)));
    if (!r.ok()) return fail("the proxy closed the connection without a response", 1);
    buf.append(tmp, r.bytes);
  }
  FramingResult framing = response_framing(request->head.method, response);
  BodyReader body(framing.framing, buf.substr(parsed.consumed));
  bool body_ok = true;
  while (!body.done()) {
    IoResult r = body.read_once(proxy, deadline_after(std::chrono::minutes(10)), -1,
                                [&](std::string_view piece) { body_ok &= write_stdout(piece); });
    if (!r.ok()) {
      body_ok = false;
      break;
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();

  // 3. Find the new capture: the replay of full_id that was not there before we sent ours
  // (it reaches the log server within a batch interval or so).
  std::string new_id = "not captured (yet)";
  const auto wait_until = Clock::now() + std::chrono::seconds(3);
  while (Clock::now() < wait_until) {
    std::set<std::string> now_known = replay_ids(*client, base, full_id);
    for (const auto& candidate : now_known) {
      if (!known_replays.count(candidate)) new_id = candidate;
    }
    if (new_id[0] != 'n') break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling the log server
  }
  char summary[512];
  std::snprintf(summary, sizeof(summary),
                "replay of %s: %d %s, %llu bytes, %.1f ms, new capture %s%s",
                full_id.substr(0, 8).c_str(), response.status, response.reason.c_str(),
                static_cast<unsigned long long>(body.decoded_bytes()), ms, new_id.c_str(),
                body_ok ? "" : " (response body incomplete)");
  std::cerr << summary << "\n";
  return response.status >= 200 && response.status < 300 && body_ok ? 0 : 1;
}

}  // namespace lp
