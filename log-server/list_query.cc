#include "log-server/list_query.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/time_format.h"

namespace lp::logsrv {

namespace {

bool fail(ParamError* error, std::string parameter, std::string message) {
  *error = {std::move(parameter), std::move(message)};
  return false;
}

// A decimal integer in [lo, hi], digits only (no sign, no spaces).
std::optional<int64_t> parse_int(const std::string& s, int64_t lo, int64_t hi) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

// Stored routes and proxy paths never hold control bytes (the proxy rejects raw ones in a
// request target), and SQLite's text functions stop at NUL: such a filter can only mislead.
bool has_control(const std::string& s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

bool is_outcome(std::string_view s) {
  for (const char* o : kOutcomes) {
    if (s == o) return true;
  }
  return false;
}

namespace {

std::string expected_names(const QueryShape& shape) {
  std::string names = "route, method, status, outcome, since, until, q, replay_of, model, provider";
  if (shape.limit) names += ", limit";
  if (shape.cursor) names += ", cursor";
  for (const std::string& own : shape.own) names += ", " + own;
  return names;
}

}  // namespace

bool parse_list_query(const std::vector<std::pair<std::string, std::string>>& params,
                      ListQuery* out, ParamError* error, const QueryShape& shape) {
  ListQuery q;
  q.limit = shape.default_limit;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (name.empty()) return fail(error, name, "a parameter without a name");
    if (!seen.insert(name).second) return fail(error, name, "parameter given more than once");
    if (value.size() > kMaxFilterChars) {
      return fail(error, name, "value longer than " + std::to_string(kMaxFilterChars) + " bytes");
    }
    if ((name == "route" || name == "q" || name == "model" || name == "provider") &&
        has_control(value)) {
      return fail(error, name, "contains a control character (a NUL byte, %00, or similar)");
    }
    if (std::find(shape.own.begin(), shape.own.end(), name) != shape.own.end()) continue;
    if (name == "route") {
      q.route = value;
    } else if (name == "method") {
      if (value.empty() || value.size() > 32) {
        return fail(error, name, "expected an HTTP method such as GET or POST");
      }
      std::string m;
      for (char c : value) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
          return fail(error, name, "expected an HTTP method such as GET or POST");
        m += c;
      }
      q.method = m;
    } else if (name == "status") {
      auto v = parse_int(value, 100, 599);
      if (!v) return fail(error, name, "expected an HTTP status code between 100 and 599");
      q.status = static_cast<int>(*v);
    } else if (name == "outcome") {
      if (!is_outcome(value)) {
        return fail(error, name,
                    "expected one of in_progress, complete, client_aborted, upstream_error, "
                    "truncated");
      }
      q.outcome = value;
    } else if (name == "since" || name == "until") {
      auto t = parse_rfc3339_us(value);
      if (!t) {
        return fail(error, name,
                    "expected an RFC 3339 time such as 2025-09-13T02:11:09Z or "
                    "2025-09-13T04:11:09.5+02:00");
      }
      (name == "since" ? q.since_us : q.until_us) = *t;
    } else if (name == "q") {
      if (!value.empty()) q.q = value;
    } else if (name == "model" || name == "provider") {
      if (value.empty()) return fail(error, name, "must not be empty");
      (name == "model" ? q.model : q.provider) = value;
    } else if (name == "replay_of") {
      std::string id = value;  // ids are lower case; accept them as /requests/{id} does
      for (char& c : id) {
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      }
      if (id.size() != 36 || id.find_first_not_of("0123456789abcdef-") != std::string::npos) {
        return fail(error, name, "expected a full 36-character capture id");
      }
      q.replay_of = id;
    } else if (name == "limit" && shape.limit) {
      auto v = parse_int(value, 1, shape.max_limit);
      if (!v) {
        return fail(error, name,
                    "expected an integer between 1 and " + std::to_string(shape.max_limit));
      }
      q.limit = static_cast<int>(*v);
    } else if (name == "cursor" && shape.cursor) {
      auto c = decode_cursor(value);
      if (!c) return fail(error, name, "not a cursor returned as next_cursor by this server");
      q.cursor = std::move(*c);
    } else {
      return fail(error, name, "unknown parameter (expected " + expected_names(shape) + ")");
    }
  }
  if (q.since_us && q.until_us && *q.until_us < *q.since_us) {
    return fail(error, "until", "until is earlier than since");
  }
  *out = std::move(q);
  return true;
}

}  // namespace lp::logsrv
