// The SSE parser against the WHATWG event-stream rules, fed whole, split at every byte position
// and byte by byte: a capture's bytes arrive in whatever pieces the network chose, and the
// events must not depend on them.
#include "log-server/reading/sse.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

using lp::logsrv::reading::SseEvent;
using lp::logsrv::reading::SseParser;
using namespace std::string_literals;

namespace {

struct Ev {
  std::string type;
  std::string data;
  std::string id;
  bool operator==(const Ev&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << e.type << "|" << e.data << "|" << e.id << "}";
}

struct Outcome {
  std::vector<Ev> events;
  uint64_t comments = 0;
  uint64_t counted = 0;  // events() as the parser counts them
  std::optional<uint64_t> retry;
  bool cut = false;
  bool overflowed = false;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "events=[";
  for (const auto& e : o.events) os << e;
  return os << "] comments=" << o.comments << " cut=" << o.cut << " overflowed=" << o.overflowed;
}

// Feeds `pieces` in order, then finishes.
Outcome run(const std::vector<std::string_view>& pieces, size_t max = 16 * 1024 * 1024) {
  SseParser p(max);
  Outcome o;
  const SseParser::OnEvent on = [&o](const SseEvent& e) {
    o.events.push_back({e.type, e.data, e.last_id});
  };
  for (auto piece : pieces) p.feed(piece, on);
  o.cut = p.finish();
  o.comments = p.comments();
  o.counted = p.events();
  o.retry = p.retry_ms();
  o.overflowed = p.overflowed();
  return o;
}

Outcome run_whole(std::string_view s, size_t max = 16 * 1024 * 1024) {
  return run({s}, max);
}

Outcome run_bytewise(std::string_view s) {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < s.size(); ++i) pieces.push_back(s.substr(i, 1));
  return run(pieces);
}

// Every split into two pieces and every split into three (with an empty feed between some):
// the outcome must equal feeding the whole input.
void check_split_invariance(std::string_view s, const Outcome& whole) {
  for (size_t i = 0; i <= s.size(); ++i) {
    CAPTURE(i);
    REQUIRE(run({s.substr(0, i), s.substr(i)}) == whole);
    if (s.size() <= 64) {
      for (size_t j = i; j <= s.size(); ++j) {
        CAPTURE(j);
        REQUIRE(run({s.substr(0, i), "", s.substr(i, j - i), s.substr(j)}) == whole);
      }
    }
  }
  REQUIRE(run_bytewise(s) == whole);
}

struct Row {
  const char* name;
  std::string input;
  std::vector<Ev> events;
  uint64_t comments;
  bool cut;
};

const std::string kBom = "\xEF\xBB\xBF";

std::vector<Row> rows() {
  return {
      {"LF line ends",
       "data: a\n\ndata: b\n\n",
       {{"message", "a", ""}, {"message", "b", ""}},
       0,
       false},
      {"CR line ends",
       "data: a\r\rdata: b\r\r",
       {{"message", "a", ""}, {"message", "b", ""}},
       0,
       false},
      {"CRLF line ends",
       "data: a\r\n\r\ndata: b\r\n\r\n",
       {{"message", "a", ""}, {"message", "b", ""}},
       0,
       false},
      {"mixed line ends",
       "data: a\r\n\ndata: b\r\rdata: c\n\r\n",
       {{"message", "a", ""}, {"message", "b", ""}, {"message", "c", ""}},
       0,
       false},
      // "\r\n" is one line end: if it counted as two, "x" would dispatch before "y" joined it.
      {"CRLF is one line end", "data: x\r\ndata: y\r\n\r\n", {{"message", "x\ny", ""}}, 0, false},
      {"multi-line data joins with LF",
       "data: one\ndata: two\ndata: three\n\n",
       {{"message", "one\ntwo\nthree", ""}},
       0,
       false},
      {"empty data line keeps a line", "data:\ndata: b\n\n", {{"message", "\nb", ""}}, 0, false},
      {"data line with empty value dispatches empty data",
       "data\n\n",
       {{"message", "", ""}},
       0,
       false},
      {"data without colon is the field name", "data\ndata\n\n", {{"message", "\n", ""}}, 0, false},
      {"one leading space removed only",
       "data:  two spaces\n\n",
       {{"message", " two spaces", ""}},
       0,
       false},
      {"no space after colon", "data:x\n\n", {{"message", "x", ""}}, 0, false},
      {"colons after the first are value",
       "data: a: b:c\n\n",
       {{"message", "a: b:c", ""}},
       0,
       false},
      {"tab is not the removed space", "data:\tx\n\n", {{"message", "\tx", ""}}, 0, false},
      {"comments counted and ignored",
       ": keep-alive\n:\ndata: x\n: mid\n\n",
       {{"message", "x", ""}},
       3,
       false},
      {"event sets the type", "event: ping\ndata: {}\n\n", {{"ping", "{}", ""}}, 0, false},
      {"type resets after dispatch",
       "event: a\ndata: 1\n\ndata: 2\n\n",
       {{"a", "1", ""}, {"message", "2", ""}},
       0,
       false},
      {"event with empty data is not dispatched and its type is reset",
       "event: lonely\n\ndata: x\n\n",
       {{"message", "x", ""}},
       0,
       false},
      {"field names are case-sensitive",
       "Data: x\nDATA: y\nEvent: e\ndata: z\n\n",
       {{"message", "z", ""}},
       0,
       false},
      {"unknown fields ignored", "foo: bar\ndata: x\nbaz\n\n", {{"message", "x", ""}}, 0, false},
      {"id persists across events",
       "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
       {{"message", "a", "7"}, {"message", "b", "7"}, {"message", "c", ""}},
       0,
       false},
      {"id with NUL ignored",
       "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s,
       {{"message", "a", "1"}, {"message", "b", "1"}},
       0,
       false},
      {"id alone sets the buffer without dispatch",
       "id: 5\n\ndata: x\n\n",
       {{"message", "x", "5"}},
       0,
       false},
      {"BOM at start is skipped", kBom + "data: x\n\n", {{"message", "x", ""}}, 0, false},
      {"BOM before a field name is not part of it",
       kBom + "event: e\ndata: x\n\n",
       {{"e", "x", ""}},
       0,
       false},
      {"second BOM is data", kBom + kBom + "data: x\n\n", {}, 0, false},
      {"BOM not at start is data",
       "data: " + kBom + "x\n\n",
       {{"message", kBom + "x", ""}},
       0,
       false},
      {"partial BOM at start is data", "\xEF\xBB" + std::string("data: x\n\n"), {}, 0, false},
      {"unterminated event at EOF discarded",
       "data: a\n\ndata: b\n",
       {{"message", "a", ""}},
       0,
       true},
      {"partial line at EOF discarded", "data: a\n\ndata: b", {{"message", "a", ""}}, 0, true},
      {"trailing CR ends the stream cleanly", "data: a\r\r", {{"message", "a", ""}}, 0, false},
      {"type-only tail is not a cut event",
       "data: a\n\nevent: x\n",
       {{"message", "a", ""}},
       0,
       false},
      {"empty stream", "", {}, 0, false},
      {"only blank lines", "\n\r\n\r\n", {}, 0, false},
      {"NUL in data is kept", "data: a\0b\n\n"s, {{"message", "a\0b"s, ""}}, 0, false},
      {"OpenAI chat stream",
       "data: "
       "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
       "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
       "data: "
       "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
       "data: [DONE]\n\n",
       {{"message",
         "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
         "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
         ""},
        {"message",
         "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}", ""},
        {"message", "[DONE]", ""}},
       0,
       false},
      {"Anthropic stream with event lines and ping",
       "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
       "event: ping\ndata: {\"type\": \"ping\"}\n\n"
       "event: content_block_delta\ndata: "
       "{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"Hi\"}}"
       "\n\n"
       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
       {{"message_start", "{\"type\":\"message_start\"}", ""},
        {"ping", "{\"type\": \"ping\"}", ""},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"Hi\"}}",
         ""},
        {"message_stop", "{\"type\":\"message_stop\"}", ""}},
       0,
       false},
      {"OpenRouter stream with processing comments",
       ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
       "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
       {{"message", "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}", ""},
        {"message", "[DONE]", ""}},
       2,
       false},
      {"Gemini stream with CRLF separators",
       "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}]}}]}\r\n\r\n"
       "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}]}}]}\r\n\r\n",
       {{"message", "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}]}}]}", ""},
        {"message", "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}]}}]}", ""}},
       0,
       false},
  };
}

}  // namespace

TEST_CASE("sse: table of WHATWG rules and real streams, whole and split at every byte") {
  for (const auto& row : rows()) {
    CAPTURE(row.name);
    const Outcome whole = run_whole(row.input);
    CHECK(whole.events == row.events);
    CHECK(whole.counted == row.events.size());
    CHECK(whole.comments == row.comments);
    CHECK(whole.cut == row.cut);
    CHECK_FALSE(whole.overflowed);
    check_split_invariance(row.input, whole);
  }
}

TEST_CASE("sse: CR at the end of one feed and LF at the start of the next are one line end") {
  // Two line ends here would be a blank line, dispatching "a" alone before "b" joined it.
  const Outcome o = run({"data: a\r", "\ndata: b\n\n"});
  REQUIRE(o.events.size() == 1);
  CHECK(o.events[0].data == "a\nb");
  // The pairing survives empty feeds in between.
  CHECK(run({"data: a\r", "", "", "\ndata: b\n\n"}).events == o.events);
  // A lone CR followed by a feed starting with another CR is a blank line: dispatch.
  const Outcome two = run({"data: a\r", "\rdata: b\n\n"});
  REQUIRE(two.events.size() == 2);
  CHECK(two.events[0].data == "a");
  CHECK(two.events[1].data == "b");
}

TEST_CASE("sse: BOM split across feeds is still skipped") {
  const std::vector<std::vector<std::string_view>> splits = {
      {"\xEF",
       "\xBB\xBF"
       "data: x\n\n"},
      {"\xEF\xBB",
       "\xBF"
       "data: x\n\n"},
      {"\xEF", "\xBB", "\xBF", "data: x\n\n"},
      {"\xEF\xBB\xBF", "data: x\n\n"},
  };
  for (const auto& pieces : splits) {
    const Outcome o = run(pieces);
    REQUIRE(o.events.size() == 1);
    CHECK(o.events[0].type == "message");
    CHECK(o.events[0].data == "x");
  }
  // Only the first BOM: the same bytes after a first feed are ordinary bytes of a field name.
  CHECK(run({"data: x\n\n",
             "\xEF\xBB\xBF"
             "data: y\n\n"})
            .events.size() == 1);
}

TEST_CASE("sse: retry accepted only when all ASCII digits") {
  struct RetryRow {
    const char* input;
    std::optional<uint64_t> want;
  };
  const RetryRow retry_rows[] = {
      {"retry: 3000\n", 3000},          {"retry:0\n", 0},
      {"retry: 1000\nretry: 25\n", 25}, {"retry: 12a\n", std::nullopt},
      {"retry: -5\n", std::nullopt},    {"retry: 1.5\n", std::nullopt},
      {"retry:  5\n", std::nullopt},  // the second space is part of the value
      {"retry:\n", std::nullopt},       {"retry\n", std::nullopt},
      {"Retry: 5\n", std::nullopt},     {"retry: 99999999999999999999999\n", std::nullopt},
      {"retry: 300\nretry: x\n", 300},  // a bad value leaves the last good one
  };
  for (const auto& r : retry_rows) {
    CAPTURE(r.input);
    CHECK(run_whole(r.input).retry == r.want);
  }
}

TEST_CASE("sse: max_event_bytes bounds a line and an event's data") {
  SUBCASE("a line that never ends") {
    const std::string big = "data: " + std::string(100, 'x');
    const Outcome o = run({big.substr(0, 50), big.substr(50)}, 64);
    CHECK(o.overflowed);
    CHECK(o.events.empty());
    CHECK(o.cut);
  }
  SUBCASE("a terminated line over the bound, fed whole, overflows as when split") {
    const std::string s = "event: " + std::string(100, 'x') + "\ndata: y\n\n";
    const Outcome whole = run_whole(s, 64);
    CHECK(whole.overflowed);
    CHECK(whole.events.empty());
    CHECK(run({s.substr(0, 30), s.substr(30)}, 64) == whole);
  }
  SUBCASE("many data lines within one event") {
    std::string s;
    for (int i = 0; i < 20; ++i) s += "data: 0123456789\n";
    s += "\n";
    const Outcome o = run_whole(s, 100);
    CHECK(o.overflowed);
    CHECK(o.events.empty());
  }
  SUBCASE("the rest of the stream is ignored after an overflow") {
    const std::string s = "data: " + std::string(80, 'x') + "\n\ndata: later\n\n";
    const Outcome o = run_whole(s, 64);
    CHECK(o.overflowed);
    CHECK(o.events.empty());
  }
  SUBCASE("events within the bound pass") {
    const Outcome o = run_whole("data: " + std::string(50, 'x') + "\n\n", 64);
    CHECK_FALSE(o.overflowed);
    REQUIRE(o.events.size() == 1);
    CHECK(o.events[0].data.size() == 50);
    CHECK_FALSE(o.cut);
  }
}

TEST_CASE("sse: finish reports an unterminated event only once it is pending") {
  SseParser p;
  int n = 0;
  const SseParser::OnEvent on = [&n](const SseEvent&) { ++n; };
  p.feed("data: a\n\n", on);
  CHECK(n == 1);
  CHECK_FALSE(p.finish());
  SseParser q;
  q.feed("data: a\n", on);
  CHECK(n == 1);
  CHECK(q.finish());
  CHECK(q.events() == 0);
}
