#include "proxy/spool.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/capture_wire.h"

namespace fs = std::filesystem;

namespace {

// A real directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/lp-spool-test-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

// Restores the process umask at scope exit.
struct UmaskGuard {
  mode_t old;
  explicit UmaskGuard(mode_t m) : old(::umask(m)) {}
  ~UmaskGuard() { ::umask(old); }
};

// A real capture batch (the spool checks what it hands out), distinguishable by payload.
std::string make_batch(const std::string& proxy_id, uint64_t seq, const std::string& payload) {
  std::string out;
  lp::wire::begin_batch(&out, proxy_id, seq);
  lp::wire::append_frame(&out, lp::wire::FrameType::kRequestBody,
                         {{"id", "0123abcd-4567-4890-a123-456789abcdef"}}, payload);
  return out;
}

// The entries of `dir` but the spool's lock file, which is there by design.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() != ".lock") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> batch_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& n : list_dir(dir)) {
    if (n.size() > 6 && n.substr(n.size() - 6) == ".batch") names.push_back(n);
  }
  return names;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
  REQUIRE(f.good());
}

// Pops everything, returning the batches in the order the spool handed them out.
std::vector<std::string> drain(lp::Spool& spool) {
  std::vector<std::string> out;
  while (auto b = spool.front()) {
    out.push_back(b->bytes);
    spool.pop_front();
  }
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("append, front and pop_front keep order, count and bytes") {
  TempDir tmp;
  lp::Spool spool(tmp.sub("spool"), 1 << 20);
  CHECK(spool.empty());
  CHECK_FALSE(spool.front().has_value());
  spool.pop_front();  // no-op on empty
  CHECK(spool.count() == 0);

  std::vector<std::string> batches;
  // Seqs deliberately out of name order: the spool must keep append order.
  const uint64_t seqs[] = {10, 9, 100, 1};
  uint64_t total = 0;
  for (uint64_t seq : seqs) {
    batches.push_back(make_batch("p", seq, "payload " + std::to_string(seq)));
    REQUIRE_MESSAGE(spool.append(seq, "p", batches.back()), spool.error());
    total += batches.back().size();
    CHECK(spool.count() == batches.size());
    CHECK(spool.bytes() == total);
  }
  CHECK(batch_files(tmp.sub("spool")).size() == 4);

  for (size_t i = 0; i < batches.size(); ++i) {
    CAPTURE(i);
    auto front = spool.front();
    REQUIRE(front.has_value());
    CHECK(front->bytes == batches[i]);
    CHECK(spool.front()->bytes == batches[i]);  // front() does not consume
    spool.pop_front();
    total -= batches[i].size();
    CHECK(spool.count() == batches.size() - i - 1);
    CHECK(spool.bytes() == total);
  }
  CHECK(spool.empty());
  CHECK(spool.bytes() == 0);
  CHECK(batch_files(tmp.sub("spool")).empty());
  CHECK(list_dir(tmp.sub("spool")).empty());  // no temporary files left either
}

TEST_CASE("binary batch content survives the spool byte for byte") {
  TempDir tmp;
  lp::Spool spool(tmp.path, 1 << 20);
  std::string payload("\0\xff\r\n\x00\x80", 6);
  std::string batch = make_batch("p", 1, payload);
  REQUIRE(spool.append(1, "p", batch));
  CHECK(spool.front()->bytes == batch);
}

TEST_CASE("a batch that would exceed max_bytes is refused and nothing is written") {
  TempDir tmp;
  std::string a = make_batch("p", 1, std::string(100, 'a'));
  std::string b = make_batch("p", 2, std::string(100, 'b'));

  SUBCASE("one byte over") {
    lp::Spool spool(tmp.path, a.size() + b.size() - 1);
    REQUIRE(spool.append(1, "p", a));
    CHECK_FALSE(spool.append(2, "p", b));
    CHECK(spool.error().find("spool full") != std::string::npos);
    CHECK(spool.count() == 1);
    CHECK(spool.bytes() == a.size());
    CHECK(list_dir(tmp.path).size() == 1);
    // A smaller batch that fits is still taken.
    std::string small = make_batch("p", 3, "");
    REQUIRE(small.size() < b.size() - 1);
    CHECK(spool.append(3, "p", small));
    CHECK(spool.error().empty());
    CHECK(spool.count() == 2);
  }
  SUBCASE("exact fit") {
    lp::Spool spool(tmp.path, a.size() + b.size());
    CHECK(spool.append(1, "p", a));
    CHECK(spool.append(2, "p", b));
    CHECK(spool.bytes() == a.size() + b.size());
  }
  SUBCASE("single batch larger than the cap") {
    lp::Spool spool(tmp.path, a.size() - 1);
    CHECK_FALSE(spool.append(1, "p", a));
    CHECK(spool.empty());
    CHECK(list_dir(tmp.path).empty());
  }
  SUBCASE("space is freed by pop_front") {
    lp::Spool spool(tmp.path, a.size());
    REQUIRE(spool.append(1, "p", a));
    CHECK_FALSE(spool.append(2, "p", b));
    spool.pop_front();
    CHECK(spool.append(2, "p", b));
  }
}

TEST_CASE("a restart resumes the same batches in order, and new ones come after") {
  TempDir tmp;
  const std::string dir = tmp.sub("spool");
  // The old process had reached high seqs; its successor has a new proxy_id that sorts first
  // by name and restarts seq at 1. Ordering by name or seq would send the new batches first.
  std::string old5 = make_batch("zz-old", 5, "old 5");
  std::string old6 = make_batch("zz-old", 6, "old 6");
  std::string old7 = make_batch("zz-old", 7, "old 7");
  std::string new1 = make_batch("aa-new", 1, "new 1");
  std::string new2 = make_batch("aa-new", 2, "new 2");
  std::string newer1 = make_batch("00-newer", 1, "newer 1");
  {
    lp::Spool spool(dir, 1 << 20);
    REQUIRE(spool.append(5, "zz-old", old5));
    REQUIRE(spool.append(6, "zz-old", old6));
    REQUIRE(spool.append(7, "zz-old", old7));
    spool.pop_front();  // old5 was acknowledged before the restart
  }
  {
    lp::Spool spool(dir, 1 << 20);
    CHECK(spool.count() == 2);
    CHECK(spool.bytes() == old6.size() + old7.size());
    REQUIRE(spool.front().has_value());
    CHECK(spool.front()->bytes == old6);
    REQUIRE(spool.append(1, "aa-new", new1));
    REQUIRE(spool.append(2, "aa-new", new2));
  }
  {
    lp::Spool spool(dir, 1 << 20);
    REQUIRE(spool.append(1, "00-newer", newer1));
    CHECK(spool.count() == 5);
    std::vector<std::string> expected = {old6, old7, new1, new2, newer1};
    CHECK(drain(spool) == expected);
    CHECK(spool.error().empty());
  }
  {
    lp::Spool spool(dir, 1 << 20);
    CHECK(spool.empty());
    CHECK(spool.bytes() == 0);
  }
}

TEST_CASE("a spool in use cannot be opened a second time, and is free again once closed") {
  TempDir tmp;
  const std::string dir = tmp.sub("spool");
  {
    lp::Spool first(dir, 1 << 20);
    REQUIRE(first.append(1, "p", make_batch("p", 1, "one")));
    // flock is per open file description, so a second Spool in this process stands for a
    // second proxy exactly.
    CHECK_THROWS_WITH_AS(lp::Spool(dir, 1 << 20),
                         doctest::Contains("in use by another logging-proxy"), std::runtime_error);
    CHECK(first.count() == 1);
  }
  lp::Spool again(dir, 1 << 20);
  CHECK(again.count() == 1);  // the lock file is not mistaken for a batch
}

TEST_CASE("the ordering counter continues past the largest counter on disk") {
  TempDir tmp;
  // A file from an earlier run whose counter is large, and one with a small counter.
  std::string late = make_batch("p", 2, "late");
  std::string early = make_batch("p", 9, "early");
  write_file(tmp.sub("00000000000000000900-00000000000000000002-p.batch"), late);
  write_file(tmp.sub("00000000000000000003-00000000000000000009-p.batch"), early);
  lp::Spool spool(tmp.path, 1 << 20);
  std::string next = make_batch("q", 1, "next");
  REQUIRE(spool.append(1, "q", next));
  CHECK(batch_files(tmp.path).back().rfind("00000000000000000901-", 0) == 0);
  std::vector<std::string> expected = {early, late, next};
  CHECK(drain(spool) == expected);
}

TEST_CASE("leftover temporary files are deleted, unrelated files are left alone") {
  TempDir tmp;
  std::string kept = make_batch("p", 1, "kept");
  write_file(tmp.sub("00000000000000000001-00000000000000000001-p.batch"), kept);
  write_file(tmp.sub("00000000000000000002-00000000000000000002-p.batch.tmp"), "half a bat");
  write_file(tmp.sub("other.tmp"), "x");
  write_file(tmp.sub("README"), "not a batch");
  write_file(tmp.sub("notes.batch"), "no counter");
  write_file(tmp.sub("00000000000000000005.batch"), "no seq");
  write_file(tmp.sub("0000000000000000000x-1-p.batch"), "bad counter");
  fs::create_directory(tmp.sub("00000000000000000007-00000000000000000001-p.batch"));

  lp::Spool spool(tmp.path, 1 << 20);
  CHECK(spool.count() == 1);
  CHECK(spool.bytes() == kept.size());
  auto names = list_dir(tmp.path);
  CHECK(std::find(names.begin(), names.end(),
                  "00000000000000000002-00000000000000000002-p.batch.tmp") == names.end());
  CHECK(std::find(names.begin(), names.end(), "other.tmp") == names.end());
  for (const char* unrelated :
       {"README", "notes.batch", "00000000000000000005.batch", "0000000000000000000x-1-p.batch",
        "00000000000000000007-00000000000000000001-p.batch"}) {
    CAPTURE(unrelated);
    CHECK(std::find(names.begin(), names.end(), unrelated) != names.end());
  }
  CHECK(drain(spool) == std::vector<std::string>{kept});
  CHECK(fs::exists(tmp.sub("README")));
}

TEST_CASE("a corrupt, vanished or unreadable file is skipped, removed and reported") {
  TempDir tmp;
  std::string a = make_batch("p", 1, "a");
  std::string b = make_batch("p", 2, "b");
  std::string c = make_batch("p", 3, "c");
  std::string d = make_batch("p", 4, "d");
  lp::Spool spool(tmp.path, 1 << 20);
  REQUIRE(spool.append(1, "p", a));
  REQUIRE(spool.append(2, "p", b));
  REQUIRE(spool.append(3, "p", c));
  REQUIRE(spool.append(4, "p", d));
  auto files = batch_files(tmp.path);
  REQUIRE(files.size() == 4);

  SUBCASE("corrupt first file") {
    write_file(tmp.sub(files[0]), a.substr(0, a.size() - 1));  // cut short
    auto front = spool.front();
    REQUIRE(front.has_value());
    CHECK(front->bytes == b);
    CHECK(spool.error().find("skipped") != std::string::npos);
    CHECK(spool.error().find(files[0]) != std::string::npos);
    CHECK(spool.error().find("truncated") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.sub(files[0])));
    CHECK(spool.count() == 3);
    CHECK(spool.bytes() == b.size() + c.size() + d.size());
  }
  SUBCASE("two bad files in a row, then a good one") {
    write_file(tmp.sub(files[0]), "garbage");
    fs::remove(tmp.sub(files[1]));  // vanished behind the spool's back
    auto front = spool.front();
    REQUIRE(front.has_value());
    CHECK(front->bytes == c);
    CHECK(spool.error().find(files[0]) != std::string::npos);
    CHECK(spool.error().find(files[1]) != std::string::npos);
    CHECK(spool.count() == 2);
    CHECK(spool.bytes() == c.size() + d.size());
    // The next successful call clears the report.
    spool.pop_front();
    CHECK(spool.front()->bytes == d);
    CHECK(spool.error().empty());
  }
  SUBCASE("a directory in place of the file") {
    fs::remove(tmp.sub(files[0]));
    fs::create_directory(tmp.sub(files[0]));
    CHECK(spool.front()->bytes == b);
    CHECK(spool.error().find("not a regular file") != std::string::npos);
  }
  SUBCASE("every file bad") {
    for (const auto& f : files) write_file(tmp.sub(f), "LPCB");
    CHECK_FALSE(spool.front().has_value());
    CHECK(spool.empty());
    CHECK(spool.bytes() == 0);
    CHECK(batch_files(tmp.path).empty());
  }
  SUBCASE("unreadable file (permissions; meaningless as root)") {
    if (::geteuid() == 0) return;
    fs::permissions(tmp.sub(files[0]), fs::perms::none);
    CHECK(spool.front()->bytes == b);
    CHECK(spool.error().find(files[0]) != std::string::npos);
  }
}

TEST_CASE("a corrupt file found at startup is skipped when its turn comes") {
  TempDir tmp;
  std::string good = make_batch("p", 2, "good");
  write_file(tmp.sub("00000000000000000001-00000000000000000001-p.batch"), "not a batch");
  write_file(tmp.sub("00000000000000000002-00000000000000000002-p.batch"), good);
  lp::Spool spool(tmp.path, 1 << 20);
  CHECK(spool.count() == 2);
  CHECK(spool.front()->bytes == good);
  CHECK(spool.error().find("bad magic") != std::string::npos);
  CHECK(spool.count() == 1);
  CHECK(spool.bytes() == good.size());
}

TEST_CASE("permissions: directory 0700 and files 0600 whatever the umask") {
  TempDir tmp;
  const mode_t masks[] = {0, 022, 077, 0277};  // 0277 strips the owner's own bits
  for (mode_t mask : masks) {
    CAPTURE(mask);
    UmaskGuard guard(mask);
    std::string dir = tmp.sub("m" + std::to_string(mask) + "/nested/spool");
    lp::Spool spool(dir, 1 << 20);
    CHECK(mode_of(dir) == 0700);
    REQUIRE(spool.append(1, "p", make_batch("p", 1, "x")));
    auto files = batch_files(dir);
    REQUIRE(files.size() == 1);
    CHECK(mode_of(dir + "/" + files[0]) == 0600);
  }
}

TEST_CASE("an existing directory is used as it is") {
  TempDir tmp;
  lp::Spool spool(tmp.path, 1 << 20);
  CHECK(spool.empty());
  CHECK(spool.append(1, "p", make_batch("p", 1, "x")));
  CHECK(spool.count() == 1);
}

TEST_CASE("a directory that cannot be created throws naming it") {
  TempDir tmp;
  write_file(tmp.sub("file"), "x");
  struct Case {
    std::string dir;
    std::string expect;
  };
  const Case cases[] = {
      {tmp.sub("file/spool"), "cannot create"},
      {tmp.sub("file/a/b"), "cannot create"},
      {tmp.sub("file"), "not a directory"},
      {"", "empty path"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.dir);
    try {
      lp::Spool spool(c.dir, 1 << 20);
      FAIL("no exception");
    } catch (const std::runtime_error& e) {
      std::string what = e.what();
      CHECK_MESSAGE(what.find("spool directory " + c.dir) != std::string::npos, what);
      CHECK_MESSAGE(what.find(c.expect) != std::string::npos, what);
    }
  }
}

TEST_CASE("a write failure is reported and leaves the index unchanged") {
  TempDir tmp;
  const std::string dir = tmp.sub("spool");
  lp::Spool spool(dir, 1 << 20);
  REQUIRE(spool.append(1, "p", make_batch("p", 1, "x")));
  uint64_t bytes = spool.bytes();
  fs::remove_all(dir);  // the disk went away
  CHECK_FALSE(spool.append(2, "p", make_batch("p", 2, "y")));
  CHECK(spool.error().find("cannot create") != std::string::npos);
  CHECK(spool.error().find(dir) != std::string::npos);
  CHECK(spool.count() == 1);
  CHECK(spool.bytes() == bytes);
}

TEST_CASE("a proxy_id with path characters stays inside the directory") {
  TempDir tmp;
  const std::string dir = tmp.sub("spool");
  std::string batch = make_batch("../evil/id", 3, "x");
  {
    lp::Spool spool(dir, 1 << 20);
    REQUIRE_MESSAGE(spool.append(3, "../evil/id", batch), spool.error());
    auto files = batch_files(dir);
    REQUIRE(files.size() == 1);
    CHECK(files[0] == "00000000000000000001-00000000000000000003-.._evil_id.batch");
    CHECK(list_dir(tmp.path) == std::vector<std::string>{"spool"});
  }
  lp::Spool reopened(dir, 1 << 20);
  CHECK(reopened.front()->bytes == batch);
}

TEST_CASE("a reserved slot orders a batch before those appended after the reservation") {
  // Each step: 'r' reserves a slot for the next letter, 'a' appends a letter behind all,
  // 'f' files the reserved letter at its slot. The expected order is the order of age.
  struct Case {
    const char* steps;
    const char* expected;
  };
  const Case cases[] = {
      {"r a a f", "0 1 2"},  // a failed send filed after two overflow batches goes first
      {"r f a", "0 1"},      // filed at once: same as an append
      {"a r a f", "0 1 2"},  // behind what was spooled before the reservation
      {"r a r f a f", "0 1 2 3"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.steps);
    TempDir tmp;
    lp::Spool spool(tmp.sub("spool"), 1 << 20);
    std::vector<std::pair<uint64_t, uint64_t>> reserved;  // (slot, age)
    uint64_t age = 0;
    for (const char* p = c.steps; *p; ++p) {
      if (*p == 'r') reserved.push_back({spool.reserve(), age++});
      if (*p == 'a') {
        REQUIRE(spool.append(age, "p", make_batch("p", age, std::to_string(age))));
        ++age;
      }
      if (*p == 'f') {
        REQUIRE(!reserved.empty());
        auto [slot, a] = reserved.front();
        reserved.erase(reserved.begin());
        REQUIRE_MESSAGE(spool.append_at(slot, a, "p", make_batch("p", a, std::to_string(a))),
                        spool.error());
      }
    }
    std::string order;
    for (int i = 0; i < 100 && !spool.empty(); ++i) {
      auto b = spool.front();
      REQUIRE(b.has_value());
      std::string err;
      auto d = lp::wire::decode_batch(b->bytes, &err);
      REQUIRE(d.has_value());
      CHECK(b->seq == d->seq);  // what the spool read from the preamble
      if (!order.empty()) order += " ";
      order += std::to_string(d->seq);
      spool.pop_front();
    }
    CHECK(order == c.expected);
  }
}

TEST_CASE("a batch filed at a reserved slot keeps its place across a restart") {
  TempDir tmp;
  {
    lp::Spool spool(tmp.path, 1 << 20);
    const uint64_t slot = spool.reserve();
    REQUIRE(spool.append(2, "p", make_batch("p", 2, "newer")));
    REQUIRE(spool.append_at(slot, 1, "p", make_batch("p", 1, "older")));
    CHECK(spool.has_room(1));
    CHECK_FALSE(spool.has_room(1 << 20));
  }
  lp::Spool again(tmp.path, 1 << 20);
  REQUIRE(again.count() == 2);
  CHECK(again.front()->bytes == make_batch("p", 1, "older"));
  again.pop_front();
  CHECK(again.front()->bytes == make_batch("p", 2, "newer"));
}

TEST_CASE("next and remove hand out several batches in order and take acks in any order") {
  TempDir tmp;
  lp::Spool spool(tmp.sub("spool"), 1 << 20);
  std::vector<std::string> batches;
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    batches.push_back(make_batch(seq <= 3 ? "proxy-a" : "proxy-b", seq, std::to_string(seq)));
    REQUIRE(spool.append(seq, seq <= 3 ? "proxy-a" : "proxy-b", batches.back()));
  }
  // Three in flight, oldest first, each named by the one before it.
  auto first = spool.front();
  REQUIRE(first.has_value());
  CHECK(first->proxy_id == "proxy-a");
  CHECK(first->seq == 1);
  CHECK(spool.next_size(first->id) == batches[1].size());
  auto second = spool.next(first->id);
  REQUIRE(second.has_value());
  CHECK(second->bytes == batches[1]);
  auto third = spool.next(second->id);
  REQUIRE(third.has_value());
  CHECK(third->seq == 3);
  auto fourth = spool.next(third->id);
  REQUIRE(fourth.has_value());
  CHECK(fourth->proxy_id == "proxy-b");
  CHECK_FALSE(spool.next(fourth->id).has_value());
  CHECK(spool.next_size(fourth->id) == 0);

  // Acknowledged out of order: the second first; the first stays the front.
  spool.remove(second->id);
  CHECK(spool.count() == 3);
  CHECK(spool.front()->bytes == batches[0]);
  CHECK(spool.next(first->id)->bytes == batches[2]);   // skips the removed one
  CHECK(spool.next(second->id)->bytes == batches[2]);  // a removed id still orders
  spool.remove(second->id);                            // twice: no-op
  spool.remove(12345);                                 // never stored: no-op
  CHECK(spool.count() == 3);
  spool.remove(first->id);
  spool.remove(fourth->id);
  spool.remove(third->id);
  CHECK(spool.empty());
  CHECK(spool.bytes() == 0);
  CHECK(batch_files(tmp.sub("spool")).empty());
}

TEST_CASE("next skips and removes a batch file that no longer decodes") {
  TempDir tmp;
  lp::Spool spool(tmp.sub("spool"), 1 << 20);
  REQUIRE(spool.append(1, "p", make_batch("p", 1, "one")));
  REQUIRE(spool.append(2, "p", make_batch("p", 2, "two")));
  REQUIRE(spool.append(3, "p", make_batch("p", 3, "three")));
  auto files = batch_files(tmp.sub("spool"));
  REQUIRE(files.size() == 3);
  write_file(tmp.sub("spool") + "/" + files[1], "not a batch");
  auto first = spool.front();
  REQUIRE(first.has_value());
  auto next = spool.next(first->id);
  REQUIRE(next.has_value());
  CHECK(next->seq == 3);
  CHECK(spool.error().find("not a capture batch") != std::string::npos);
  CHECK(spool.count() == 2);
  CHECK(batch_files(tmp.sub("spool")).size() == 2);
}
