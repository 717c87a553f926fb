#include "proxy/body_stream.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using lp::BodyEncoder;
using lp::BodyFraming;
using lp::BodyReader;
using lp::IoResult;
using Kind = BodyFraming::Kind;

BodyFraming framing(Kind kind, uint64_t length = 0) {
  BodyFraming f;
  f.kind = kind;
  f.length = length;
  return f;
}

// ---------------------------------------------------------------------------------------
// BodyEncoder

TEST_CASE("BodyEncoder table") {
  struct Row {
    const char* name;
    BodyFraming framing;
    std::vector<std::string> pieces;
    std::string out;  // after append() of every piece and finish()
  };
  const std::vector<Row> rows = {
      {"chunked: one piece", framing(Kind::kChunked), {"hello"}, "5\r\nhello\r\n0\r\n\r\n"},
      {"chunked: several pieces",
       framing(Kind::kChunked),
       {"data: {\"a\":1}\n\n", "x", std::string(26, 'q')},
       "f\r\ndata: {\"a\":1}\n\n\r\n1\r\nx\r\n1a\r\n" + std::string(26, 'q') + "\r\n0\r\n\r\n"},
      {"chunked: empty pieces write nothing",
       framing(Kind::kChunked),
       {"", "ab", ""},
       "2\r\nab\r\n0\r\n\r\n"},
      {"chunked: no pieces", framing(Kind::kChunked), {}, "0\r\n\r\n"},
      {"chunked: large piece in lowercase hex",
       framing(Kind::kChunked),
       {std::string(65536, 'z')},
       "10000\r\n" + std::string(65536, 'z') + "\r\n0\r\n\r\n"},
      {"chunked: binary piece",
       framing(Kind::kChunked),
       {std::string("\0\r\n", 3)},
       std::string("3\r\n\0\r\n\r\n0\r\n\r\n", 13)},
      {"length: raw", framing(Kind::kLength, 5), {"he", "", "llo"}, "hello"},
      {"until close: raw", framing(Kind::kUntilClose), {"a", "b"}, "ab"},
      {"none: raw, nothing to finish", framing(Kind::kNone), {}, ""},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name));
    BodyEncoder enc(row.framing);
    CHECK(enc.raw() == (row.framing.kind != Kind::kChunked));
    std::string out = "HEAD|";
    for (const auto& p : row.pieces) enc.append(&out, p);
    enc.finish(&out);
    CHECK(out == "HEAD|" + row.out);
  }
}

// What BodyEncoder writes, ChunkedDecoder reads back.
TEST_CASE("BodyEncoder output decodes to the pieces") {
  BodyEncoder enc(framing(Kind::kChunked));
  std::string wire;
  std::string expected;
  for (size_t n : {1u, 15u, 16u, 255u, 4096u, 70000u}) {
    std::string piece(n, static_cast<char>('a' + n % 26));
    enc.append(&wire, piece);
    expected += piece;
  }
  enc.finish(&wire);
  lp::ChunkedDecoder d;
  std::string out;
  auto r = d.feed(wire, [&](std::string_view p) { out.append(p); });
  CHECK_FALSE(r.error);
  CHECK(d.done());
  CHECK(r.consumed == wire.size());
  CHECK(out == expected);
}

// ---------------------------------------------------------------------------------------
// BodyReader over a socketpair

struct Pair {
  int peer = -1;  // the writing end
  std::unique_ptr<lp::PlainStream> stream;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    stream = std::make_unique<lp::PlainStream>(fds[0]);
    peer = fds[1];
  }
  ~Pair() {
    if (peer >= 0) ::close(peer);
  }
  void write(const std::string& s) const {
    REQUIRE(::write(peer, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }
  void close_peer() {
    ::close(peer);
    peer = -1;
  }
};

lp::Deadline soon() {
  return lp::deadline_after(std::chrono::milliseconds(2000));
}

struct ReadOutcome {
  std::string body;
  IoResult last;
  int reads = 0;
};

// Calls read_once until done or a failure.
ReadOutcome read_all(BodyReader& reader, lp::Stream& s) {
  ReadOutcome o;
  while (!reader.done() && o.reads < 1000) {
    ++o.reads;
    o.last = reader.read_once(s, soon(), -1, [&](std::string_view p) {
      CHECK(!p.empty());
      o.body.append(p);
    });
    if (!o.last.ok()) break;
  }
  return o;
}

TEST_CASE("BodyReader: kNone and kLength 0 are done at once, leftover kept") {
  for (BodyFraming f : {framing(Kind::kNone), framing(Kind::kLength, 0)}) {
    BodyReader r(f, "GET /next HTTP/1.1\r\n");
    CHECK(r.done());
    CHECK(r.decoded_bytes() == 0);
    CHECK(r.take_leftover() == "GET /next HTTP/1.1\r\n");
  }
}

TEST_CASE("BodyReader: Content-Length body from the leftover only") {
  Pair p;
  BodyReader r(framing(Kind::kLength, 5), "helloGET / HTTP/1.1\r\n");
  CHECK(r.has_buffered());
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.ok());
  CHECK(r.done());
  CHECK(o.body == "hello");
  CHECK(r.decoded_bytes() == 5);
  CHECK(r.take_leftover() == "GET / HTTP/1.1\r\n");
}

TEST_CASE("BodyReader: buffered_to_end says when the leftover holds the rest of the body") {
  struct Row {
    BodyFraming framing;
    std::string leftover;
    bool want;
  };
  const Row rows[] = {
      {framing(Kind::kLength, 5), "hello", true},
      {framing(Kind::kLength, 5), "helloGET / HTTP/1.1\r\n", true},  // a pipelined request after
      {framing(Kind::kLength, 5), "hell", false},
      {framing(Kind::kLength, 5), "", false},
      {framing(Kind::kLength, 0), "", false},  // done already: nothing to send
      {framing(Kind::kNone), "GET / HTTP/1.1\r\n", false},
      {framing(Kind::kChunked), "5\r\nhello\r\n0\r\n\r\n", false},  // only lengths count
      {framing(Kind::kUntilClose), "hello", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.leftover);
    BodyReader r(row.framing, row.leftover);
    CHECK(r.buffered_to_end() == row.want);
    if (!row.want) continue;
    std::string body;
    CHECK(r.consume_buffered([&](std::string_view piece) { body += piece; }).ok());
    CHECK(r.done());  // with no read, as the forwarder relies on
    CHECK(body == "hello");
    CHECK_FALSE(r.buffered_to_end());
  }
}

TEST_CASE("BodyReader: Content-Length body split between leftover and socket") {
  Pair p;
  p.write("lo wor");
  p.write("ld!!extra");
  BodyReader r(framing(Kind::kLength, 12), "hel");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.ok());
  CHECK(r.done());
  CHECK(o.body == "hello world!");
  CHECK(r.decoded_bytes() == 12);
  // It never reads past the body, so the next message stays in the socket.
  CHECK(r.take_leftover().empty());
  char buf[16];
  CHECK(::recv(p.stream->fd(), buf, sizeof(buf), 0) == 6);
}

TEST_CASE("BodyReader: Content-Length body cut short is an error") {
  Pair p;
  p.write("abc");
  p.close_peer();
  BodyReader r(framing(Kind::kLength, 10), "");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.status == IoResult::Status::kError);
  CHECK(!o.last.error.empty());
  CHECK_FALSE(r.done());
  CHECK(o.body == "abc");
}

TEST_CASE("BodyReader: chunked body, leftover and socket, pipelined bytes kept") {
  Pair p;
  p.write("lo\r\n3;ext=1\r\n wo\r\n");
  p.write("3\r\nrld\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT");
  BodyReader r(framing(Kind::kChunked), "5\r\nhel");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.ok());
  CHECK(r.done());
  CHECK(o.body == "hello world");
  CHECK(r.decoded_bytes() == 11);
  CHECK(r.take_leftover() == "NEXT");
}

TEST_CASE("BodyReader: chunked body entirely in the leftover") {
  Pair p;
  BodyReader r(framing(Kind::kChunked), "2\r\nab\r\n0\r\n\r\nPOST / HTTP/1.1\r\n");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.ok());
  CHECK(r.done());
  CHECK(o.body == "ab");
  CHECK(r.take_leftover() == "POST / HTTP/1.1\r\n");
}

TEST_CASE("BodyReader: invalid chunked body is an error") {
  for (const char* bad : {"z\r\n", "2\r\nabX\r\n", "2\nab\r\n", "0000000000000000001\r\n"}) {
    INFO(std::string(bad));
    Pair p;
    p.write(bad);
    BodyReader r(framing(Kind::kChunked), "");
    ReadOutcome o = read_all(r, *p.stream);
    CHECK(o.last.status == IoResult::Status::kError);
    CHECK(o.last.error.find("chunked") != std::string::npos);
    CHECK_FALSE(r.done());
  }
}

TEST_CASE("BodyReader: chunked body cut short is an error") {
  Pair p;
  p.write("5\r\nhello\r\n");
  p.close_peer();
  BodyReader r(framing(Kind::kChunked), "");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.status == IoResult::Status::kError);
  CHECK(o.body == "hello");
  CHECK_FALSE(r.done());
}

TEST_CASE("BodyReader: close-delimited body ends at EOF") {
  Pair p;
  p.write("data: 1\n\n");
  p.write("data: 2\n\n");
  p.close_peer();
  BodyReader r(framing(Kind::kUntilClose), "data: 0\n\n");
  ReadOutcome o = read_all(r, *p.stream);
  CHECK(o.last.ok());
  CHECK(r.done());
  CHECK(o.body == "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  CHECK(r.decoded_bytes() == o.body.size());
}

TEST_CASE("BodyReader: a read with nothing available times out") {
  Pair p;
  BodyReader r(framing(Kind::kLength, 3), "");
  IoResult res = r.read_once(*p.stream, lp::deadline_after(std::chrono::milliseconds(20)), -1,
                             [](std::string_view) {});
  CHECK(res.status == IoResult::Status::kTimeout);
  CHECK_FALSE(r.done());
}

}  // namespace
