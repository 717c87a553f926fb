// A fresh directory under the system temp dir for one test, removed with everything in it when
// the test ends. Unit tests only (the e2e harness has its own, with file helpers).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

namespace lp::test {

class TempDir {
 public:
  // `prefix` names the directory (PREFIX-XXXXXX), so a leftover says which test made it.
  explicit TempDir(const std::string& prefix = "lptest") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lp::test
