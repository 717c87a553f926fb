// `logging-proxy ca init` and `ca export` end to end: the real executable making a CA in a temp
// dir (relative ca_dir resolved against its working directory, like logging.spool_dir), refusing
// to replace it, exporting a certificate OpenSSL reads as a CA, and its exit codes.
#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"

using namespace e2e;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr, line by line
};

Outcome ca(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> all{"ca"};
  all.insert(all.end(), args.begin(), args.end());
  ChildOptions opts = child_opts("ca");
  opts.cwd = cwd;
  ChildProcess p(bin_dir() + "/logging-proxy", all, opts);
  const bool exited = p.wait_exit(30000ms);
  p.find_line(std::regex("a^"), 2000ms);  // never matches: waits for the output to close
  Outcome out;
  for (const std::string& line : p.lines()) out.output += line + "\n";
  REQUIRE_MESSAGE(exited, "ca still running:\n" << out.output);
  out.exit_code = p.exit_code().value_or(-1);
  return out;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

bool is_ca_pem(const std::string& text) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  const bool ca = cert != nullptr && X509_check_ca(cert) != 0;
  X509_free(cert);
  BIO_free(bio);
  return ca;
}

}  // namespace

TEST_CASE("ca init makes the CA in ca_dir, relative to the working directory, once") {
  TempDir dir;
  write_file(dir.file("config.yaml"), "forward_proxy:\n  ca_dir: certs/ca\n");
  REQUIRE(::mkdir(dir.file("certs").c_str(), 0755) == 0);

  Outcome init = ca({"init"}, dir.path());  // --config defaults to ./config.yaml
  INFO(init.output);
  CHECK(init.exit_code == 0);
  CHECK(init.output.starts_with(dir.file("certs/ca/ca.pem") + "\n"));
  CHECK(mode_of(dir.file("certs/ca")) == 0700);
  CHECK(mode_of(dir.file("certs/ca/ca.key")) == 0600);
  CHECK(mode_of(dir.file("certs/ca/ca.pem")) == 0644);
  CHECK(init.output.find("PRIVATE KEY") == std::string::npos);
  const std::string pem = read_file(dir.file("certs/ca/ca.pem"));

  Outcome again = ca({"init", "--config", dir.file("config.yaml")}, dir.path());
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("a CA already exists in certs/ca (certs/ca/ca.key)") !=
        std::string::npos);
  CHECK(read_file(dir.file("certs/ca/ca.pem")) == pem);

  Outcome exported = ca({"export"}, dir.path());
  INFO(exported.output);
  CHECK(exported.exit_code == 0);
  CHECK(exported.output.starts_with(pem));
  CHECK(is_ca_pem(exported.output));
  const std::string path = dir.file("certs/ca/ca.pem");
  for (const std::string& line :
       {"sudo cp " + path +
            " /usr/local/share/ca-certificates/logging-proxy.crt && sudo update-ca-certificates",
        "export NODE_EXTRA_CA_CERTS=" + path, "export SSL_CERT_FILE=" + path,
        "export REQUESTS_CA_BUNDLE=" + path, "curl --cacert " + path}) {
    CHECK_MESSAGE(exported.output.find(line) != std::string::npos, line);
  }
  CHECK(exported.output.find("PRIVATE KEY") == std::string::npos);
  CHECK(exported.output.find("WARNING") == std::string::npos);
}

TEST_CASE("ca: missing CA, bad config and bad arguments") {
  TempDir dir;
  write_file(dir.file("config.yaml"), "forward_proxy:\n  ca_dir: " + dir.file("none") + "\n");
  Outcome missing = ca({"export", "--config", dir.file("config.yaml")}, dir.path());
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("logging-proxy ca init") != std::string::npos);

  write_file(dir.file("bad.yaml"), "forward_proxy:\n  ca_dirr: x\n");
  Outcome bad = ca({"init", "--config", dir.file("bad.yaml")}, dir.path());
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("unknown key 'ca_dirr' in forward_proxy") != std::string::npos);

  CHECK(ca({}, dir.path()).exit_code == 2);
  CHECK(ca({"renew"}, dir.path()).exit_code == 2);
  CHECK(ca({"init", "--verbose"}, dir.path()).exit_code == 2);
  Outcome help = ca({"--help"}, dir.path());
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("Usage: logging-proxy ca init") != std::string::npos);
}
