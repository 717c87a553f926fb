// Index rows for log-server unit tests: a complete chat-completions call through route
// "openai", as ingest would have written it; tests change the fields they are about.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/time_format.h"
#include "log-server/index_schema.h"

namespace lp::test {

// A valid exchange id whose first 8 characters (the short id) are `a` in hex.
inline std::string test_id(uint32_t a, uint64_t b = 0) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012llx", a,
                static_cast<unsigned long long>(b));
  return buf;
}

inline lp::logsrv::ExchangeRow sample_row(const std::string& id, int64_t started_us) {
  lp::logsrv::ExchangeRow r;
  r.id = id;
  r.short_id = id.substr(0, 8);
  r.started_us = started_us;
  r.started_at = lp::format_rfc3339_us(started_us);
  r.route = "openai";
  r.method = "POST";
  r.proxy_path = "/openai/v1/chat/completions";
  r.destination = "https://api.openai.com/v1/chat/completions";
  r.client_ip = "127.0.0.1";
  r.status = 200;
  r.outcome = "complete";
  r.request_file = id + "_request.bin";
  r.proxy_id = "p1";
  r.ingested_at = r.started_at;
  return r;
}

}  // namespace lp::test
