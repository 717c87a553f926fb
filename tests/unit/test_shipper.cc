// The shipper against a log server that accepts connections and never answers, with the
// spool disabled: nothing it takes from the queue can leave memory, so what the queue admits
// while it holds batches shows whether logging.queue_bytes bounds all the capture memory.
#include "proxy/shipper.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "tests/support/await.h"
#include "tests/support/silent_listener.h"
#include "tests/support/temp_dir.h"

using namespace std::chrono_literals;

TEST_CASE("shipper: the queue's bound counts the batches the shipper holds") {
  lp::test::TempDir dir("lp-shipper");
  lp::test::SilentListener log_server;
  lp::Config config;
  config.logging.server_url = "http://127.0.0.1:" + std::to_string(log_server.port());
  config.logging.spool_dir = dir.path() + "/spool";
  config.logging.spool_max_bytes = 0;  // no spool: a batch taken stays in memory
  config.logging.batch_bytes = 32 * 1024;
  config.logging.batch_interval = 10ms;
  const size_t kBound = 256 * 1024;
  lp::CaptureQueue queue(kBound);
  lp::CaptureCounters counters;
  lp::ConsoleLog console(false);
  lp::Shipper shipper(config, queue, counters, console);
  shipper.start();

  size_t admitted = 0;  // what push() counts: the frames' capacities
  auto push = [&] {
    std::string frame(1000, 'f');
    const size_t cost = frame.capacity();
    if (!queue.push(std::move(frame))) return false;
    admitted += cost;
    return true;
  };
  for (int i = 0; i < 40; ++i) REQUIRE(push());
  // A first batch is cut and sent; its POST is never answered. (Awaited by its size: before
  // its first cut the shipper already reports a few bytes, its empty buffer's capacity.)
  REQUIRE(lp::test::await([&] { return queue.outside() >= config.logging.batch_bytes / 2; }));
  for (int i = 0; i < 1000 && push(); ++i) {
  }
  // Nothing left memory (no answer, no spool): all admitted is still held, and within the bound.
  MESSAGE("admitted " << admitted << " bytes; " << queue.bytes() << " queued, " << queue.outside()
                      << " held by the shipper");
  CHECK(admitted <= kBound);
  CHECK(admitted + 2 * 1024 > kBound);  // and the bound was reached, not something smaller
  CHECK(queue.bytes() + queue.outside() <= kBound);
  CHECK(queue.outside() >= config.logging.batch_bytes / 2);

  log_server.close();  // the POST in flight fails at once, so stop() need not wait it out
  shipper.stop(0ms);
}
