#include "common/thread_name.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

namespace {

// The calling thread's name as the kernel shows it to top, perf and ps.
std::string own_comm() {
  const long tid = syscall(SYS_gettid);
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST_CASE("thread name: set on the calling thread only, cut at the kernel's 15 bytes") {
  struct Row {
    std::string name;
    std::string shown;
  };
  const Row rows[] = {
      {"lp-ship", "lp-ship"},
      {"fifteen-bytes-x", "fifteen-bytes-x"},  // the longest kept whole
      {"lp-loop-1234567890", "lp-loop-1234567"},
  };
  const std::string before = own_comm();
  for (const Row& row : rows) {
    CAPTURE(row.name);
    std::string shown;
    std::thread t([&] {
      lp::name_this_thread(row.name);
      shown = own_comm();
    });
    t.join();
    CHECK(shown == row.shown);
  }
  CHECK(own_comm() == before);  // the thread that started them keeps its name
}

}  // namespace
