// The log-server fixture of the end-to-end tests: a real log-server process on port 0 with its
// data dir in a temp dir (LogServer), capture batches built with the real wire encoder (Batch),
// and small helpers to post them and to read the API, the metrics and the files on disk.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>

#include "common/capture_wire.h"
#include "tests/e2e/harness.h"

namespace e2e {

using lp::wire::FrameType;

inline const std::string kHead =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
    "Content-Type: application/json\r\nX-Proxy-Path: /mock/v1/chat/completions?x=1\r\n\r\n";
inline const std::string kResponseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n";

inline std::string make_id(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012d", 0x0a000000 + n, n);
  return buf;
}

class LogServer {
 public:
  explicit LogServer(const std::string& extra_yaml = "", ChildOptions opts = {},
                     const std::string* reuse_dir = nullptr) {
    dir_path_ = reuse_dir ? *reuse_dir : dir_.path();
    config_ = dir_path_ + "/config.yaml";
    write_file(config_, "log_server:\n  host: localhost\n  port: 0\n  data_dir: " + data() + "\n" +
                            extra_yaml);
    proc_ = std::make_unique<ChildProcess>(bin_dir() + "/log-server",
                                           std::vector<std::string>{"--config", config_}, opts);
    auto m = proc_->wait_for_line(std::regex(R"(log-server listening on http://localhost:(\d+))"),
                                  10000ms);
    port_ = std::stoi(m[1]);
  }
  int port() const { return port_; }
  std::string data() const { return dir_path_ + "/data"; }
  const std::string& dir() const { return dir_path_; }
  ChildProcess& process() { return *proc_; }

  httplib::Client client(const std::string& token = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    if (!token.empty()) c.set_bearer_token_auth(token.c_str());
    return c;
  }

 private:
  TempDir dir_;
  std::string dir_path_;
  std::string config_;
  std::unique_ptr<ChildProcess> proc_;
  int port_ = 0;
};

class Batch {
 public:
  Batch(const std::string& proxy_id, uint64_t seq) {
    lp::wire::begin_batch(&bytes_, proxy_id, seq);
  }
  Batch& begin(const std::string& id, const std::string& started_at, const std::string& route,
               const std::string& path, const std::string& method = "POST") {
    return frame(FrameType::kBegin,
                 {{"id", id},
                  {"route", route},
                  {"method", method},
                  {"proxy_path", path},
                  {"destination", "http://127.0.0.1:9/v1/chat/completions"},
                  {"client_ip", "127.0.0.1"},
                  {"started_at", started_at}},
                 "");
  }
  Batch& frame(FrameType type, const json& meta, const std::string& data = "") {
    lp::wire::append_frame(&bytes_, type, meta, data);
    return *this;
  }
  Batch& end(const std::string& id, int status, const std::string& outcome = "complete") {
    return frame(FrameType::kEnd, {{"id", id},
                                   {"outcome", outcome},
                                   {"status", status},
                                   {"request_bytes", 5},
                                   {"response_bytes", 11},
                                   {"timings",
                                    {{"request_forwarded_us", 120},
                                     {"upstream_headers_us", 2500},
                                     {"first_byte_us", 3000},
                                     {"total_us", 45500}}}});
  }
  // A complete exchange in this batch: begin, heads, bodies, end.
  Batch& exchange(const std::string& id, const std::string& started_at, int status,
                  const std::string& route = "mock", const std::string& path = "/mock/v1/x",
                  const std::string& body = "hello") {
    begin(id, started_at, route, path);
    frame(FrameType::kRequestHead, {{"id", id}}, kHead);
    frame(FrameType::kRequestBody, {{"id", id}}, body);
    frame(FrameType::kResponseHead, {{"id", id}, {"t_us", 2500}},
          "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: text/plain\r\n\r\n");
    frame(FrameType::kResponseBody, {{"id", id}, {"t_us", 3000}}, "hello world");
    return end(id, status);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

inline httplib::Result post(const httplib::Client& c0, const std::string& body) {
  auto& c = const_cast<httplib::Client&>(c0);
  return c.Post("/ingest", body, "application/octet-stream");
}

inline json get_json(httplib::Client& c, const std::string& path, int want_status = 200) {
  auto r = c.Get(path.c_str());
  REQUIRE_MESSAGE(r, "GET " << path << " failed: " << httplib::to_string(r.error()));
  INFO("GET " << path << " -> " << r->status << " " << r->body);
  CHECK(r->status == want_status);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  json j = json::parse(r->body, nullptr, false);
  REQUIRE(!j.is_discarded());
  return j;
}

inline size_t count_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".bin") ++n;
  }
  return n;
}

inline double metric(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  FAIL("metric " << name << " not found in\n" << r->body);
  return -1;
}

}  // namespace e2e
