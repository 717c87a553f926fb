// The HAR validator the export tests rely on: a valid HAR passes, and each HAR 1.2 / DevTools
// import rule, broken once in an otherwise valid HAR, is reported exactly once by JSON path.
#include "tests/support/har_validator.h"

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

using lp::test::validate_har;
using nlohmann::json;

namespace {

// Everything optional present too, so each optional rule has something to break.
json valid_har() {
  return json::parse(R"({
    "log": {
      "version": "1.2",
      "creator": {"name": "logging-proxy", "version": "1.0"},
      "browser": {"name": "none", "version": "0"},
      "pages": [{"startedDateTime": "2025-09-13T02:11:09.123Z", "id": "page_1",
                 "title": "captures", "pageTimings": {"onContentLoad": -1, "onLoad": -1}}],
      "entries": [{
        "pageref": "page_1",
        "startedDateTime": "2025-09-13T02:11:09.123+02:00",
        "time": 60.5,
        "request": {
          "method": "POST", "url": "https://api.openai.com/v1/chat/completions?x=1",
          "httpVersion": "HTTP/1.1",
          "cookies": [{"name": "a", "value": "b", "httpOnly": true}],
          "headers": [{"name": "Content-Type", "value": "application/json"}],
          "queryString": [{"name": "x", "value": "1"}],
          "postData": {"mimeType": "application/json", "text": "{\"stream\":true}"},
          "headersSize": -1, "bodySize": 15
        },
        "response": {
          "status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
          "cookies": [], "headers": [{"name": "Content-Encoding", "value": "gzip"}],
          "content": {"size": 5, "compression": -20, "mimeType": "application/octet-stream",
                      "text": "aGVsbG8=", "encoding": "base64"},
          "redirectURL": "", "headersSize": 120, "bodySize": 25,
          "_llm": {"model": "gpt-4o-mini"}
        },
        "cache": {"beforeRequest": null},
        "timings": {"blocked": -1, "dns": 1, "connect": 9, "ssl": 6, "send": 0.5,
                    "wait": 40, "receive": 10},
        "serverIPAddress": "127.0.0.1",
        "_id": "092d0424"
      }]
    }
  })");
}

struct Broken {
  const char* rule;
  std::function<void(json&)> mutate;
  const char* problem;  // the single problem expected (a prefix for computed messages)
};

json& entry(json& h) {
  return h["log"]["entries"][0];
}

const std::vector<Broken>& broken_rows() {
  static const std::vector<Broken> rows = {
      {"root is an object", [](json& h) { h = json::array(); }, "$: must be an object"},
      {"log is an object", [](json& h) { h["log"] = "x"; }, "log: must be an object"},
      {"log is required", [](json& h) { h.erase("log"); }, "log: is required"},
      {"version is required", [](json& h) { h["log"].erase("version"); },
       "log.version: is required"},
      {"version is 1.2", [](json& h) { h["log"]["version"] = "1.1"; },
       "log.version: must be \"1.2\""},
      {"creator is an object", [](json& h) { h["log"]["creator"] = "me"; },
       "log.creator: must be an object"},
      {"creator.name is required", [](json& h) { h["log"]["creator"].erase("name"); },
       "log.creator.name: is required"},
      {"creator.version is a string", [](json& h) { h["log"]["creator"]["version"] = 1; },
       "log.creator.version: must be a string"},
      {"entries is an array", [](json& h) { h["log"]["entries"] = json::object(); },
       "log.entries: must be an array"},
      {"entries is required", [](json& h) { h["log"].erase("entries"); },
       "log.entries: is required"},
      {"an entry is an object", [](json& h) { entry(h) = 1; }, "log.entries[0]: must be an object"},
      {"page needs pageTimings", [](json& h) { h["log"]["pages"][0].erase("pageTimings"); },
       "log.pages[0].pageTimings: is required"},
      {"pageTimings is an object", [](json& h) { h["log"]["pages"][0]["pageTimings"] = 0; },
       "log.pages[0].pageTimings: must be an object"},
      {"page needs an id", [](json& h) { h["log"]["pages"][0].erase("id"); },
       "log.pages[0].id: is required"},
      {"page needs a title", [](json& h) { h["log"]["pages"][0].erase("title"); },
       "log.pages[0].title: is required"},
      {"page startedDateTime parses",
       [](json& h) { h["log"]["pages"][0]["startedDateTime"] = "now"; },
       "log.pages[0].startedDateTime: must be an ISO 8601 date-time with a time zone"},
      {"startedDateTime parses", [](json& h) { entry(h)["startedDateTime"] = "yesterday"; },
       "log.entries[0].startedDateTime: must be an ISO 8601 date-time with a time zone"},
      {"startedDateTime has a zone",
       [](json& h) { entry(h)["startedDateTime"] = "2025-09-13T02:11:09.123"; },
       "log.entries[0].startedDateTime: must be an ISO 8601 date-time with a time zone"},
      {"startedDateTime is a real date",
       [](json& h) { entry(h)["startedDateTime"] = "2025-02-29T02:11:09Z"; },
       "log.entries[0].startedDateTime: must be an ISO 8601 date-time with a time zone"},
      {"startedDateTime is a string", [](json& h) { entry(h)["startedDateTime"] = 1757729469; },
       "log.entries[0].startedDateTime: must be a string"},
      {"time is numeric", [](json& h) { entry(h)["time"] = "60.5"; },
       "log.entries[0].time: must be a number"},
      {"time is required", [](json& h) { entry(h).erase("time"); },
       "log.entries[0].time: is required"},
      {"time is finite", [](json& h) { entry(h)["time"] = NAN; },
       "log.entries[0].time: must be a number"},
      {"time is the sum of the timings", [](json& h) { entry(h)["time"] = 61; },
       "log.entries[0].time: must equal the sum of the non -1 timings"},
      {"request is an object", [](json& h) { entry(h)["request"] = json::array(); },
       "log.entries[0].request: must be an object"},
      {"response is an object", [](json& h) { entry(h)["response"] = nullptr; },
       "log.entries[0].response: must be an object"},
      {"cache is required", [](json& h) { entry(h).erase("cache"); },
       "log.entries[0].cache: is required"},
      {"cache is an object", [](json& h) { entry(h)["cache"] = json::array(); },
       "log.entries[0].cache: must be an object"},
      {"timings is an object", [](json& h) { entry(h)["timings"] = 60.5; },
       "log.entries[0].timings: must be an object"},
      {"request.method is required", [](json& h) { entry(h)["request"].erase("method"); },
       "log.entries[0].request.method: is required"},
      {"request.url is a string", [](json& h) { entry(h)["request"]["url"] = json::object(); },
       "log.entries[0].request.url: must be a string"},
      {"request.headers is an array", [](json& h) { entry(h)["request"]["headers"] = "a: b"; },
       "log.entries[0].request.headers: must be an array"},
      {"request.cookies is required", [](json& h) { entry(h)["request"].erase("cookies"); },
       "log.entries[0].request.cookies: is required"},
      {"request.queryString is required", [](json& h) { entry(h)["request"].erase("queryString"); },
       "log.entries[0].request.queryString: is required"},
      {"a header has a value", [](json& h) { entry(h)["request"]["headers"][0].erase("value"); },
       "log.entries[0].request.headers[0].value: is required"},
      {"a cookie is an object", [](json& h) { entry(h)["request"]["cookies"][0] = "a=b"; },
       "log.entries[0].request.cookies[0]: must be an object"},
      {"request.headersSize is numeric", [](json& h) { entry(h)["request"]["headersSize"] = "-1"; },
       "log.entries[0].request.headersSize: must be a number"},
      {"request.bodySize is required", [](json& h) { entry(h)["request"].erase("bodySize"); },
       "log.entries[0].request.bodySize: is required"},
      {"request.bodySize is -1 or more", [](json& h) { entry(h)["request"]["bodySize"] = -2; },
       "log.entries[0].request.bodySize: must be -1 or >= 0"},
      {"postData.text is present", [](json& h) { entry(h)["request"]["postData"].erase("text"); },
       "log.entries[0].request.postData.text: is required"},
      {"postData is an object", [](json& h) { entry(h)["request"]["postData"] = "body"; },
       "log.entries[0].request.postData: must be an object"},
      {"postData text and params exclude each other",
       [](json& h) {
         entry(h)["request"]["postData"]["params"] = json::array({{{"name", "a"}}});
       },
       "log.entries[0].request.postData: text and params are mutually exclusive"},
      {"response.status is numeric", [](json& h) { entry(h)["response"]["status"] = "200"; },
       "log.entries[0].response.status: must be a number"},
      {"response.statusText is required", [](json& h) { entry(h)["response"].erase("statusText"); },
       "log.entries[0].response.statusText: is required"},
      {"response.headersSize is numeric",
       [](json& h) { entry(h)["response"]["headersSize"] = nullptr; },
       "log.entries[0].response.headersSize: must be a number"},
      {"response.bodySize is numeric", [](json& h) { entry(h)["response"]["bodySize"] = true; },
       "log.entries[0].response.bodySize: must be a number"},
      {"response.redirectURL is required",
       [](json& h) { entry(h)["response"].erase("redirectURL"); },
       "log.entries[0].response.redirectURL: is required"},
      {"response.content is an object", [](json& h) { entry(h)["response"]["content"] = ""; },
       "log.entries[0].response.content: must be an object"},
      {"content.size is numeric", [](json& h) { entry(h)["response"]["content"]["size"] = "5"; },
       "log.entries[0].response.content.size: must be a number"},
      {"content.size is required", [](json& h) { entry(h)["response"]["content"].erase("size"); },
       "log.entries[0].response.content.size: is required"},
      {"content.mimeType is required",
       [](json& h) { entry(h)["response"]["content"].erase("mimeType"); },
       "log.entries[0].response.content.mimeType: is required"},
      {"content.encoding is only base64",
       [](json& h) { entry(h)["response"]["content"]["encoding"] = "gzip"; },
       "log.entries[0].response.content.encoding: must be \"base64\" when present"},
      {"base64 text is valid base64",
       [](json& h) { entry(h)["response"]["content"]["text"] = "hello!"; },
       "log.entries[0].response.content.text: must be valid base64 when encoding is \"base64\""},
      {"base64 text is padded",
       [](json& h) { entry(h)["response"]["content"]["text"] = "aGVsbG8"; },
       "log.entries[0].response.content.text: must be valid base64 when encoding is \"base64\""},
      {"timings.send is required", [](json& h) { entry(h)["timings"].erase("send"); },
       "log.entries[0].timings.send: is required"},
      {"timings.wait is >= 0", [](json& h) { entry(h)["timings"]["wait"] = -1; },
       "log.entries[0].timings.wait: must be >= 0"},
      {"timings.receive is numeric", [](json& h) { entry(h)["timings"]["receive"] = "10"; },
       "log.entries[0].timings.receive: must be a number"},
      {"timings.dns is -1 or >= 0", [](json& h) { entry(h)["timings"]["dns"] = -2; },
       "log.entries[0].timings.dns: must be -1 or >= 0"},
      {"timings.blocked is numeric", [](json& h) { entry(h)["timings"]["blocked"] = nullptr; },
       "log.entries[0].timings.blocked: must be a number"},
      {"timings.ssl is -1 or >= 0", [](json& h) { entry(h)["timings"]["ssl"] = -0.5; },
       "log.entries[0].timings.ssl: must be -1 or >= 0"},
      {"custom entry fields start with _", [](json& h) { entry(h)["llm"] = 1; },
       "log.entries[0].llm: is not a HAR 1.2 field; custom fields start with '_'"},
      {"custom content fields start with _",
       [](json& h) { entry(h)["response"]["content"]["decoded"] = true; },
       "log.entries[0].response.content.decoded: is not a HAR 1.2 field; custom fields start "
       "with '_'"},
      {"custom log fields start with _", [](json& h) { h["log"]["id"] = 1; },
       "log.id: is not a HAR 1.2 field; custom fields start with '_'"},
      {"comment is a string", [](json& h) { entry(h)["comment"] = 3; },
       "log.entries[0].comment: must be a string"},
  };
  return rows;
}

}  // namespace

TEST_CASE("har: the reference HAR is valid") {
  CHECK(validate_har(valid_har()).empty());
}

TEST_CASE("har: valid variants pass") {
  const std::vector<std::pair<const char*, std::function<void(json&)>>> variants = {
      {"no optional fields",
       [](json& h) {
         h["log"].erase("browser");
         h["log"].erase("pages");
         auto& e = entry(h);
         e.erase("pageref");
         e.erase("serverIPAddress");
         e["request"].erase("postData");
         e["response"]["content"] = {{"size", 0}, {"mimeType", ""}};
         e["cache"] = json::object();
         e["timings"] = {{"send", 0}, {"wait", 0}, {"receive", 0}};
         e["time"] = 0;
       }},
      {"no entries", [](json& h) { h["log"]["entries"] = json::array(); }},
      {"time within rounding", [](json& h) { entry(h)["time"] = 60.505; }},
      {"all optional timings -1",
       [](json& h) {
         auto& t = entry(h)["timings"];
         t["dns"] = t["connect"] = t["ssl"] = -1;
         entry(h)["time"] = 50.5;
       }},
      {"plain text body",
       [](json& h) {
         entry(h)["response"]["content"].erase("encoding");
         entry(h)["response"]["content"]["text"] = "hello!";
       }},
      {"empty base64 text", [](json& h) { entry(h)["response"]["content"]["text"] = ""; }},
      {"zone offset without colon",
       [](json& h) { entry(h)["startedDateTime"] = "2024-02-29T23:59:59-0530"; }},
      {"no fraction of a second",
       [](json& h) { entry(h)["startedDateTime"] = "2025-09-13T02:11:09Z"; }},
      {"custom fields everywhere",
       [](json& h) {
         h["_x"] = 1;
         h["log"]["_x"] = 1;
         entry(h)["timings"]["_queued"] = 3;
         entry(h)["request"]["headers"][0]["_raw"] = "x";
       }},
  };
  for (const auto& [name, mutate] : variants) {
    CAPTURE(name);
    json h = valid_har();
    mutate(h);
    CHECK(validate_har(h) == std::vector<std::string>{});
  }
}

TEST_CASE("har: each broken rule is reported once, by JSON path") {
  for (const auto& row : broken_rows()) {
    CAPTURE(row.rule);
    json h = valid_har();
    row.mutate(h);
    const auto problems = validate_har(h);
    CAPTURE(json(problems).dump());
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].starts_with(row.problem));
  }
}

TEST_CASE("har: every problem is reported, not only the first") {
  json h = valid_har();
  entry(h)["response"]["content"]["size"] = "5";
  entry(h)["timings"]["send"] = -3;
  h["log"]["creator"].erase("version");
  const auto problems = validate_har(h);
  CHECK(problems == std::vector<std::string>{
                        "log.creator.version: is required",
                        "log.entries[0].response.content.size: must be a number",
                        "log.entries[0].timings.send: must be >= 0",
                    });
}
