// The HTTP side of the log server (cpp-httplib): the query API, POST /ingest, /healthz and
// /metrics, with bearer-token auth in front of everything but /healthz. Every answer the API
// produces itself is JSON (errors included: {"error": "...", "parameter"?: "..."}); exception
// text never reaches a client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "log-server/auth.h"
#include "log-server/blob_store.h"
#include "log-server/index_reader.h"
#include "log-server/ingest.h"
#include "log-server/live_feed.h"
#include "log-server/metrics.h"

namespace lp::logsrv {

struct ApiDeps {
  ReaderPool& readers;
  Ingestor& ingestor;
  const BlobStore& store;
  Metrics& metrics;
  LiveFeed& live;                                     // GET /live
  std::string auth_token;                             // empty: no authentication
  uint64_t max_decoded_bytes = 256ULL * 1024 * 1024;  // log_server.max_decoded_bytes
  std::string version;                                // shown in HAR exports
};

class ApiServer {
 public:
  // The worker pool is fixed: `api_threads` for everything but GET /live, plus one per live
  // subscriber the feed allows (LiveFeed::Options::max_subscribers), because an open feed
  // holds its worker for its whole life. /live beyond that cap is refused (503), so open
  // feeds never starve /ingest or /requests. An open keep-alive connection holds one worker.
  explicit ApiServer(ApiDeps deps, int api_threads = 64);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port (port 0 picks a free one; "localhost" binds 127.0.0.1). Throws
  // std::runtime_error when it cannot.
  void bind(const std::string& host, int port);
  int port() const;
  // Serves until stop(); returns false if the listener failed.
  bool run();
  void stop();  // thread-safe; in-flight requests finish first

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lp::logsrv
