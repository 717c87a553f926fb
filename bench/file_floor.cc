// bench_file_floor: the floor under durable ingest on this file system. It does only what the
// storage layout asks of every exchange (two new files in a day directory, written once) and
// what durability asks of every batch (one syncfs, then the directory's fsync), with no
// parsing and no index. reading_bench.py --only ingest-1k runs it beside each /ingest round:
// /ingest's rate over this one is the share the log server's own work leaves.
//
//   bench_file_floor DIR EXCHANGES PER_BATCH [REQUEST_BYTES RESPONSE_BYTES]
//
// Prints one JSON line: {"per_s", "s", "cpu_us_per_exchange"}. DIR must not exist yet.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 6) {
    std::fprintf(
        stderr, "usage: bench_file_floor DIR EXCHANGES PER_BATCH [REQUEST_BYTES RESPONSE_BYTES]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const long exchanges = std::atol(argv[2]);
  const long per_batch = std::atol(argv[3]);
  const size_t sizes[2] = {argc == 6 ? std::strtoul(argv[4], nullptr, 10) : 620,
                           argc == 6 ? std::strtoul(argv[5], nullptr, 10) : 560};
  if (exchanges <= 0 || per_batch <= 0) {
    std::fprintf(stderr, "bench_file_floor: EXCHANGES and PER_BATCH must be positive\n");
    return 2;
  }
  const std::string day = dir + "/2026-12-06";
  if (mkdir(dir.c_str(), 0700) != 0 || mkdir(day.c_str(), 0700) != 0) die("mkdir " + day);
  const int day_fd = open(day.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (day_fd < 0) die("open " + day);
  const std::string bytes(std::max(sizes[0], sizes[1]), 'x');

  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  char name[96];
  for (long i = 0; i < exchanges; ++i) {
    for (int k = 0; k < 2; ++k) {
      // The log server's names: {day}_{HH-MM-SS.mmm}_{id8}_{request|response}.bin
      std::snprintf(name, sizeof name, "2026-12-06_07-00-%02ld.%03ld_%08lx_%s.bin", i / 1000 % 60,
                    i % 1000, i, k == 0 ? "request" : "response");
      const int fd = openat(day_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) die(std::string("openat ") + name);
      if (write(fd, bytes.data(), sizes[k]) != static_cast<ssize_t>(sizes[k])) die("write");
      close(fd);
    }
    if ((i + 1) % per_batch == 0 || i + 1 == exchanges) {
      if (syncfs(day_fd) != 0 || fsync(day_fd) != 0) die("syncfs");
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - c0;
  std::printf("{\"per_s\": %.1f, \"s\": %.3f, \"cpu_us_per_exchange\": %.1f}\n",
              static_cast<double>(exchanges) / s, s, cpu / static_cast<double>(exchanges) * 1e6);
  return 0;
}
