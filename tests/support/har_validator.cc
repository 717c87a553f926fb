#include "tests/support/har_validator.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace lp::test {

namespace {

using nlohmann::json;
using Keys = std::initializer_list<std::string_view>;

// ---- value checks -----------------------------------------------------------------------------

bool digits(std::string_view s, size_t at, size_t n, int* value) {
  if (at + n > s.size()) return false;
  *value = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    *value = *value * 10 + (s[i] - '0');
  }
  return true;
}

int days_in_month(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// YYYY-MM-DDThh:mm[:ss[.fraction]] followed by Z or ±hh:mm (or ±hhmm), the HAR spec's
// "YYYY-MM-DDThh:mm:ss.sTZD". Without a zone a JavaScript Date would take local time, so the
// zone is required.
bool is_iso8601(std::string_view s) {
  int y, mo, d, h, mi, sec = 0;
  if (!digits(s, 0, 4, &y) || s.size() < 16 || s[4] != '-' || !digits(s, 5, 2, &mo) ||
      s[7] != '-' || !digits(s, 8, 2, &d) || s[10] != 'T' || !digits(s, 11, 2, &h) ||
      s[13] != ':' || !digits(s, 14, 2, &mi)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59) return false;
  size_t at = 16;
  if (at < s.size() && s[at] == ':') {
    if (!digits(s, at + 1, 2, &sec) || sec > 59) return false;
    at += 3;
    if (at < s.size() && s[at] == '.') {
      const size_t start = ++at;
      while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
      if (at == start) return false;
    }
  }
  std::string_view zone = s.substr(at);
  if (zone == "Z") return true;
  if (zone.empty() || (zone[0] != '+' && zone[0] != '-')) return false;
  int zh, zm;
  if (zone.size() == 6 && zone[3] == ':') {
    return digits(zone, 1, 2, &zh) && digits(zone, 4, 2, &zm) && zh <= 23 && zm <= 59;
  }
  return zone.size() == 5 && digits(zone, 1, 2, &zh) && digits(zone, 3, 2, &zm) && zh <= 23 &&
         zm <= 59;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// RFC 4648 with padding: what a writer should produce, and what atob() always accepts.
bool is_base64(std::string_view s) {
  if (s.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && pad < s.size() && s[s.size() - 1 - pad] == '=') ++pad;
  for (size_t i = 0; i < s.size() - pad; ++i) {
    if (!is_base64_char(s[i])) return false;
  }
  return true;
}

bool is_finite_number(const json& v) {
  return v.is_number() && std::isfinite(v.get<double>());
}

// ---- the walk ---------------------------------------------------------------------------------

class Validator {
 public:
  std::vector<std::string> run(const json& har) {
    if (!har.is_object()) {
      problem("$", "must be an object");
      return std::move(problems_);
    }
    only_known(har, "", {"log"});
    if (const json* log = object(har, "", "log")) check_log(*log, "log");
    return std::move(problems_);
  }

 private:
  void problem(const std::string& path, std::string_view what) {
    problems_.push_back(path + ": " + std::string(what));
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  static std::string index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  // The member `key` of `obj`; reports it when required and missing.
  const json* member(const json& obj, const std::string& path, std::string_view key,
                     bool required) {
    const auto it = obj.find(key);
    if (it != obj.end()) return &*it;
    if (required) problem(join(path, key), "is required");
    return nullptr;
  }

  const json* object(const json& obj, const std::string& path, std::string_view key,
                     bool required = true) {
    const json* v = member(obj, path, key, required);
    if (v == nullptr) return nullptr;
    if (v->is_object()) return v;
    problem(join(path, key), "must be an object");
    return nullptr;
  }

  const json* array(const json& obj, const std::string& path, std::string_view key,
                    bool required = true) {
    const json* v = member(obj, path, key, required);
    if (v == nullptr) return nullptr;
    if (v->is_array()) return v;
    problem(join(path, key), "must be an array");
    return nullptr;
  }

  const json* string(const json& obj, const std::string& path, std::string_view key,
                     bool required = true) {
    const json* v = member(obj, path, key, required);
    if (v == nullptr) return nullptr;
    if (v->is_string()) return v;
    problem(join(path, key), "must be a string");
    return nullptr;
  }

  std::optional<double> number(const json& obj, const std::string& path, std::string_view key,
                               bool required = true) {
    const json* v = member(obj, path, key, required);
    if (v == nullptr) return std::nullopt;
    if (is_finite_number(*v)) return v->get<double>();
    problem(join(path, key), "must be a number");
    return std::nullopt;
  }

  void boolean(const json& obj, const std::string& path, std::string_view key) {
    const json* v = member(obj, path, key, false);
    if (v != nullptr && !v->is_boolean()) problem(join(path, key), "must be a boolean");
  }

  // A size HAR allows to be unknown: -1, else a byte count.
  void size(const json& obj, const std::string& path, std::string_view key) {
    const auto v = number(obj, path, key);
    if (v && *v != -1 && *v < 0) problem(join(path, key), "must be -1 or >= 0");
  }

  void date_time(const json& obj, const std::string& path, std::string_view key) {
    const json* v = string(obj, path, key);
    if (v != nullptr && !is_iso8601(v->get_ref<const std::string&>())) {
      problem(join(path, key), "must be an ISO 8601 date-time with a time zone");
    }
  }

  // HAR 1.2: anything beyond the spec's fields is a custom field and must start with '_'.
  // Every HAR object may carry a comment.
  void only_known(const json& obj, const std::string& path, Keys known) {
    for (const auto& [key, value] : obj.items()) {
      if (key.starts_with('_') || key == "comment") continue;
      bool found = false;
      for (auto k : known) found = found || k == key;
      if (!found) problem(join(path, key), "is not a HAR 1.2 field; custom fields start with '_'");
    }
    string(obj, path, "comment", false);
  }

  void check_log(const json& log, const std::string& path) {
    only_known(log, path, {"version", "creator", "browser", "pages", "entries"});
    if (const json* v = string(log, path, "version"); v != nullptr && *v != "1.2") {
      problem(join(path, "version"), "must be \"1.2\"");
    }
    if (const json* c = object(log, path, "creator")) check_agent(*c, join(path, "creator"));
    if (const json* b = object(log, path, "browser", false)) check_agent(*b, join(path, "browser"));
    if (const json* pages = array(log, path, "pages", false)) {
      for (size_t i = 0; i < pages->size(); ++i)
        check_page((*pages)[i], index(join(path, "pages"), i));
    }
    if (const json* entries = array(log, path, "entries")) {
      for (size_t i = 0; i < entries->size(); ++i) {
        check_entry((*entries)[i], index(join(path, "entries"), i));
      }
    }
  }

  void check_agent(const json& agent, const std::string& path) {
    only_known(agent, path, {"name", "version"});
    string(agent, path, "name");
    string(agent, path, "version");
  }

  void check_page(const json& page, const std::string& path) {
    if (!page.is_object()) return problem(path, "must be an object");
    only_known(page, path, {"startedDateTime", "id", "title", "pageTimings"});
    date_time(page, path, "startedDateTime");
    string(page, path, "id");
    string(page, path, "title");
    if (const json* t = object(page, path, "pageTimings")) {
      const std::string tp = join(path, "pageTimings");
      only_known(*t, tp, {"onContentLoad", "onLoad"});
      number(*t, tp, "onContentLoad", false);
      number(*t, tp, "onLoad", false);
    }
  }

  void check_entry(const json& entry, const std::string& path) {
    if (!entry.is_object()) return problem(path, "must be an object");
    only_known(entry, path,
               {"pageref", "startedDateTime", "time", "request", "response", "cache", "timings",
                "serverIPAddress", "connection"});
    string(entry, path, "pageref", false);
    string(entry, path, "serverIPAddress", false);
    string(entry, path, "connection", false);
    date_time(entry, path, "startedDateTime");
    const auto time = number(entry, path, "time");
    if (const json* r = object(entry, path, "request")) check_request(*r, join(path, "request"));
    if (const json* r = object(entry, path, "response")) check_response(*r, join(path, "response"));
    if (const json* c = object(entry, path, "cache")) check_cache(*c, join(path, "cache"));
    if (const json* t = object(entry, path, "timings")) {
      const auto sum = check_timings(*t, join(path, "timings"));
      if (time && sum && std::fabs(*time - *sum) > 0.01) {
        problem(join(path, "time"), "must equal the sum of the non -1 timings (" +
                                        std::to_string(*sum) + "), got " + std::to_string(*time));
      }
    }
  }

  // The name/value lists: headers and queryString.
  void check_pairs(const json& list, const std::string& path) {
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string p = index(path, i);
      const json& item = list[i];
      if (!item.is_object()) {
        problem(p, "must be an object");
        continue;
      }
      only_known(item, p, {"name", "value"});
      string(item, p, "name");
      string(item, p, "value");
    }
  }

  void check_cookies(const json& cookies, const std::string& path) {
    for (size_t i = 0; i < cookies.size(); ++i) {
      const std::string p = index(path, i);
      const json& c = cookies[i];
      if (!c.is_object()) {
        problem(p, "must be an object");
        continue;
      }
      only_known(c, p, {"name", "value", "path", "domain", "expires", "httpOnly", "secure"});
      string(c, p, "name");
      string(c, p, "value");
      string(c, p, "path", false);
      string(c, p, "domain", false);
      string(c, p, "expires", false);
      boolean(c, p, "httpOnly");
      boolean(c, p, "secure");
    }
  }

  void check_message_lists(const json& msg, const std::string& path) {
    if (const json* c = array(msg, path, "cookies")) check_cookies(*c, join(path, "cookies"));
    if (const json* h = array(msg, path, "headers")) check_pairs(*h, join(path, "headers"));
  }

  void check_request(const json& req, const std::string& path) {
    only_known(req, path,
               {"method", "url", "httpVersion", "cookies", "headers", "queryString", "postData",
                "headersSize", "bodySize"});
    string(req, path, "method");
    string(req, path, "url");
    string(req, path, "httpVersion");
    check_message_lists(req, path);
    if (const json* q = array(req, path, "queryString")) {
      check_pairs(*q, join(path, "queryString"));
    }
    if (const json* pd = object(req, path, "postData", false)) {
      check_post_data(*pd, join(path, "postData"));
    }
    size(req, path, "headersSize");
    size(req, path, "bodySize");
  }

  void check_post_data(const json& pd, const std::string& path) {
    only_known(pd, path, {"mimeType", "params", "text"});
    string(pd, path, "mimeType");
    // DevTools reads postData.text unconditionally: a missing one becomes "undefined".
    string(pd, path, "text");
    if (const json* params = array(pd, path, "params", false)) {
      if (pd.contains("text")) problem(path, "text and params are mutually exclusive");
      const std::string pp = join(path, "params");
      for (size_t i = 0; i < params->size(); ++i) {
        const std::string p = index(pp, i);
        const json& item = (*params)[i];
        if (!item.is_object()) {
          problem(p, "must be an object");
          continue;
        }
        only_known(item, p, {"name", "value", "fileName", "contentType"});
        string(item, p, "name");
        string(item, p, "value", false);
        string(item, p, "fileName", false);
        string(item, p, "contentType", false);
      }
    }
  }

  void check_response(const json& resp, const std::string& path) {
    only_known(resp, path,
               {"status", "statusText", "httpVersion", "cookies", "headers", "content",
                "redirectURL", "headersSize", "bodySize"});
    number(resp, path, "status");
    string(resp, path, "statusText");
    string(resp, path, "httpVersion");
    check_message_lists(resp, path);
    if (const json* c = object(resp, path, "content")) check_content(*c, join(path, "content"));
    string(resp, path, "redirectURL");
    size(resp, path, "headersSize");
    size(resp, path, "bodySize");
  }

  void check_content(const json& content, const std::string& path) {
    only_known(content, path, {"size", "compression", "mimeType", "text", "encoding"});
    number(content, path, "size");
    number(content, path, "compression", false);
    string(content, path, "mimeType");
    const json* text = string(content, path, "text", false);
    const json* encoding = string(content, path, "encoding", false);
    if (encoding == nullptr) return;
    if (*encoding != "base64") {
      problem(join(path, "encoding"), "must be \"base64\" when present");
    } else if (text != nullptr && !is_base64(text->get_ref<const std::string&>())) {
      problem(join(path, "text"), "must be valid base64 when encoding is \"base64\"");
    }
  }

  void check_cache(const json& cache, const std::string& path) {
    only_known(cache, path, {"beforeRequest", "afterRequest"});
    for (std::string_view key : {"beforeRequest", "afterRequest"}) {
      const json* v = member(cache, path, key, false);
      if (v == nullptr || v->is_null()) continue;  // null: the cache had no entry
      const std::string p = join(path, key);
      if (!v->is_object()) {
        problem(p, "must be an object or null");
        continue;
      }
      only_known(*v, p, {"expires", "lastAccess", "eTag", "hitCount"});
      string(*v, p, "expires", false);
      string(*v, p, "lastAccess");
      string(*v, p, "eTag");
      number(*v, p, "hitCount");
    }
  }

  // Returns the sum entry.time must equal, or nothing when a timing is itself invalid (that is
  // reported once, not again as a wrong total).
  std::optional<double> check_timings(const json& t, const std::string& path) {
    only_known(t, path, {"blocked", "dns", "connect", "send", "wait", "receive", "ssl"});
    bool valid = true;
    double sum = 0;
    for (std::string_view key : {"send", "wait", "receive"}) {
      const auto v = number(t, path, key);
      if (v && *v < 0) problem(join(path, key), "must be >= 0");
      valid = valid && v && *v >= 0;
      if (v) sum += *v;
    }
    for (std::string_view key : {"blocked", "dns", "connect", "ssl"}) {
      if (!t.contains(key)) continue;
      const auto v = number(t, path, key, false);
      if (v && *v != -1 && *v < 0) problem(join(path, key), "must be -1 or >= 0");
      valid = valid && v && (*v == -1 || *v >= 0);
      if (v && *v != -1 && key != "ssl") sum += *v;  // ssl is already inside connect
    }
    return valid ? std::optional<double>(sum) : std::nullopt;
  }

  std::vector<std::string> problems_;
};

}  // namespace

std::vector<std::string> validate_har(const nlohmann::json& har) {
  return Validator().run(har);
}

}  // namespace lp::test
