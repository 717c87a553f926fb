#include "proxy/forward_ca.h"

#include <doctest/doctest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

bool critical(X509* cert, int nid) {
  const int i = X509_get_ext_by_NID(cert, nid, -1);
  REQUIRE(i >= 0);
  return X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

std::string common_name(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// Seconds between notBefore and notAfter.
long validity_seconds(X509* cert) {
  int days = 0;
  int secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)) == 1);
  return days * 86400L + secs;
}

bool is_p256(EVP_PKEY* key) {
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1 &&
         std::string(group) == "prime256v1";
}

// X509_verify_cert of `leaf` against a store holding only the CA, for a TLS server named `host`.
int verify(const lp::ForwardCa& ca, X509* leaf, const std::string& host, bool ip) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca.cert());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
  const int ok = X509_verify_cert(ctx);
  const int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

struct Handshake {
  bool ok = false;
  std::string alpn;
};

// A TLS handshake in memory between a client that trusts the CA and the leaf's server context.
// With `check_name` false the client checks the chain only, so a name mismatch can only fail
// on the server's side.
Handshake handshake(const lp::ForwardCa& ca, SSL_CTX* server_ctx, const char* sni,
                    const std::string& alpn_wire, bool check_name = true) {
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, nullptr);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), ca.cert());
  SSL* client = SSL_new(client_ctx);
  SSL* server = SSL_new(server_ctx);
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  if (sni != nullptr) {
    SSL_set_tlsext_host_name(client, sni);
    if (check_name) SSL_set1_host(client, sni);
  }
  if (!alpn_wire.empty()) {
    SSL_set_alpn_protos(client, reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                        static_cast<unsigned>(alpn_wire.size()));
  }
  Handshake out;
  for (int i = 0; i < 50; ++i) {
    const int c = SSL_do_handshake(client);
    const int s = SSL_do_handshake(server);
    if (c == 1 && s == 1) {
      out.ok = true;
      break;
    }
    const int ce = SSL_get_error(client, c);
    const int se = SSL_get_error(server, s);
    const bool waiting = (c == 1 || ce == SSL_ERROR_WANT_READ || ce == SSL_ERROR_WANT_WRITE) &&
                         (s == 1 || se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE);
    if (!waiting) break;
  }
  if (out.ok) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(client, &proto, &len);
    out.alpn.assign(reinterpret_cast<const char*>(proto), len);
  }
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(client_ctx);
  ERR_clear_error();
  return out;
}

std::shared_ptr<const lp::ForwardCa> new_ca(const std::string& dir) {
  std::string error;
  auto ca = lp::init_ca(dir, &error);
  REQUIRE_MESSAGE(ca, error);
  return ca;
}

}  // namespace

TEST_CASE("init_ca: a new CA with the right files, modes and extensions") {
  lp::test::TempDir tmp("lp-ca");
  const std::string dir = tmp.path() + "/ca";  // missing: init makes it
  auto ca = new_ca(dir);
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(dir + "/ca.key") == 0600);
  CHECK(mode_of(dir + "/ca.pem") == 0644);
  CHECK(lp::ca_cert_path(dir) == dir + "/ca.pem");
  CHECK(read(dir + "/ca.key").starts_with("-----BEGIN PRIVATE KEY-----\n"));
  CHECK(read(dir + "/ca.pem") == ca->cert_pem());
  CHECK(ca->cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
  // No temporary file is left behind.
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++files;
  CHECK(files == 2);

  X509* cert = ca->cert();
  CHECK(is_p256(ca->key()));
  CHECK(X509_get_version(cert) == X509_VERSION_3);
  CHECK(X509_verify(cert, ca->key()) == 1);  // self-signed
  CHECK(X509_check_issued(cert, cert) == X509_V_OK);
  CHECK(common_name(cert).starts_with("logging-proxy CA "));
  CHECK(X509_check_ca(cert) != 0);
  CHECK(critical(cert, NID_basic_constraints));
  CHECK(X509_get_pathlen(cert) == 0);
  CHECK(critical(cert, NID_key_usage));
  CHECK(X509_get_key_usage(cert) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(cert) != nullptr);
  const long years10 = 3650L * 86400;
  CHECK(validity_seconds(cert) == years10 + 3600);  // from an hour ago
  const auto left = ca->not_after() - Clock::now();
  CHECK(left > std::chrono::hours(24 * 3649));
  CHECK(left < std::chrono::hours(24 * 3651));
}

TEST_CASE("init_ca: refuses to replace an existing CA") {
  lp::test::TempDir tmp("lp-ca");
  new_ca(tmp.path());
  const std::string key = read(tmp.path() + "/ca.key");
  const std::string pem = read(tmp.path() + "/ca.pem");
  std::string error;
  CHECK_FALSE(lp::init_ca(tmp.path(), &error));
  CHECK(error.find("a CA already exists in " + tmp.path()) != std::string::npos);
  CHECK(read(tmp.path() + "/ca.key") == key);
  CHECK(read(tmp.path() + "/ca.pem") == pem);
  // A certificate alone blocks it too.
  lp::test::TempDir other("lp-ca");
  std::ofstream(other.path() + "/ca.pem") << pem;
  CHECK_FALSE(lp::init_ca(other.path(), &error));
  CHECK(error.find("already exists") != std::string::npos);
  CHECK_FALSE(fs::exists(other.path() + "/ca.key"));
}

TEST_CASE("load_ca: loads what init made, refuses a key others can read") {
  lp::test::TempDir tmp("lp-ca");
  auto made = new_ca(tmp.path());
  std::string error;
  auto loaded = lp::load_ca(tmp.path(), &error);
  REQUIRE_MESSAGE(loaded, error);
  CHECK(X509_cmp(loaded->cert(), made->cert()) == 0);
  CHECK(EVP_PKEY_eq(loaded->key(), made->key()) == 1);
  CHECK(loaded->not_after() == made->not_after());

  const std::string key = tmp.path() + "/ca.key";
  struct Case {
    unsigned mode;
    const char* text;
  };
  for (const Case& c : {Case{0644, "0644"}, Case{0640, "0640"}, Case{0604, "0604"}}) {
    CAPTURE(std::string(c.text));
    REQUIRE(chmod(key.c_str(), c.mode) == 0);
    CHECK_FALSE(lp::load_ca(tmp.path(), &error));
    CHECK(error == key + " has mode " + c.text +
                       ": the CA key must be readable by its owner only (chmod 600 " + key + ")");
  }
  REQUIRE(chmod(key.c_str(), 0400) == 0);
  CHECK(lp::load_ca(tmp.path(), &error));
}

TEST_CASE("load_ca: missing, mismatched and garbled files") {
  lp::test::TempDir tmp("lp-ca");
  std::string error;
  CHECK_FALSE(lp::load_ca(tmp.path() + "/nope", &error));
  CHECK(error.find("no CA in " + tmp.path() + "/nope") != std::string::npos);
  CHECK(error.find("logging-proxy ca init") != std::string::npos);

  const std::string a = tmp.path() + "/a";
  const std::string b = tmp.path() + "/b";
  new_ca(a);
  new_ca(b);
  fs::copy_file(b + "/ca.pem", a + "/ca.pem", fs::copy_options::overwrite_existing);
  CHECK_FALSE(lp::load_ca(a, &error));
  CHECK(error.find("do not belong together") != std::string::npos);

  std::ofstream(b + "/ca.key", std::ios::trunc) << "not a key\n";
  CHECK_FALSE(lp::load_ca(b, &error));
  CHECK(error == b + "/ca.key holds no readable private key (PEM)");

  CHECK(lp::read_ca_cert_pem(b, &error) == read(b + "/ca.pem"));
  CHECK_FALSE(lp::read_ca_cert_pem(tmp.path(), &error));
  CHECK(error.find("cannot read " + tmp.path() + "/ca.pem") != std::string::npos);
}

TEST_CASE("leaf certificates: SAN, extensions and chain for DNS names and IP addresses") {
  lp::test::TempDir tmp("lp-ca");
  auto ca = new_ca(tmp.path());
  lp::LeafCertCache cache(ca);
  struct Case {
    const char* host;
    bool ip;
    const char* other;  // a name the leaf must not pass for
  };
  const Case cases[] = {
      {"api.openai.com", false, "openai.com"},
      {"generativelanguage.googleapis.com", false, "api.openai.com"},
      {"localhost", false, "127.0.0.1"},
      {"127.0.0.1", true, "127.0.0.2"},
      {"::1", true, "::2"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.host));
    std::string error;
    auto leaf = cache.get(c.host, &error);
    REQUIRE_MESSAGE(leaf, error);
    X509* cert = leaf->cert;
    REQUIRE(cert != nullptr);
    REQUIRE(leaf->ctx != nullptr);
    if (c.ip) {
      CHECK(X509_check_ip_asc(cert, c.host, 0) == 1);
      CHECK(X509_check_ip_asc(cert, c.other, 0) == 0);
    } else {
      CHECK(X509_check_host(cert, c.host, 0, 0, nullptr) == 1);
      CHECK(X509_check_host(cert, c.other, 0, 0, nullptr) != 1);
    }
    CHECK(verify(*ca, cert, c.host, c.ip) == X509_V_OK);
    CHECK(verify(*ca, cert, c.other,
                 std::string(c.other).find_first_not_of("0123456789.:") == std::string::npos) !=
          X509_V_OK);
    CHECK(X509_check_ca(cert) == 0);
    CHECK(critical(cert, NID_basic_constraints));
    CHECK(critical(cert, NID_key_usage));
    CHECK(X509_get_key_usage(cert) == KU_DIGITAL_SIGNATURE);
    CHECK(X509_get_extended_key_usage(cert) == XKU_SSL_SERVER);
    REQUIRE(X509_get0_authority_key_id(cert) != nullptr);
    CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                X509_get0_subject_key_id(ca->cert())) == 0);
    EVP_PKEY* key = X509_get0_pubkey(cert);
    CHECK(is_p256(key));
    BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
    CHECK(BN_num_bits(serial) > 100);
    CHECK(BN_num_bits(serial) <= 128);
    BN_free(serial);
    CHECK(validity_seconds(cert) == 7 * 86400L + 3600);
    CHECK(leaf->not_after > Clock::now() + std::chrono::hours(24 * 7 - 1));
  }
  // A different CA does not vouch for these leaves.
  lp::test::TempDir other_dir("lp-ca");
  auto other = new_ca(other_dir.path());
  std::string error;
  CHECK(verify(*other, cache.get("api.openai.com", &error)->cert, "api.openai.com", false) ==
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_CASE("leaf cache: same leaf for the same host, new one for another, bounded") {
  lp::test::TempDir tmp("lp-ca");
  auto ca = new_ca(tmp.path());
  lp::LeafCertCache::Options options;
  options.capacity = 2;
  lp::LeafCertCache cache(ca, options);
  std::string error;
  auto a = cache.get("api.openai.com", &error);
  REQUIRE(a);
  CHECK(cache.get("api.openai.com", &error) == a);
  CHECK(cache.get("API.OpenAI.com.", &error) == a);  // one host, however written
  CHECK(a->host == "api.openai.com");
  auto b = cache.get("api.anthropic.com", &error);
  REQUIRE(b);
  CHECK(b != a);
  CHECK(X509_cmp(a->cert, b->cert) != 0);
  CHECK(cache.size() == 2);
  CHECK(cache.get("api.openai.com", &error) == a);  // now the most recently used
  auto c = cache.get("openrouter.ai", &error);      // evicts api.anthropic.com
  REQUIRE(c);
  CHECK(cache.size() == 2);
  CHECK(cache.get("api.openai.com", &error) == a);
  auto b2 = cache.get("api.anthropic.com", &error);
  REQUIRE(b2);
  CHECK(b2 != b);
  // Evicted leaves stay usable by whoever holds them.
  CHECK(X509_check_host(b->cert, "api.anthropic.com", 0, 0, nullptr) == 1);
}

TEST_CASE("leaf cache: re-minted within a day of expiry, never past the CA's end") {
  lp::test::TempDir tmp("lp-ca");
  auto ca = new_ca(tmp.path());
  Clock::time_point now = Clock::now();
  lp::LeafCertCache::Options options;
  options.now = [&] { return now; };
  lp::LeafCertCache cache(ca, options);
  std::string error;
  auto first = cache.get("api.openai.com", &error);
  REQUIRE(first);
  now += std::chrono::hours(24 * 5);
  CHECK(cache.get("api.openai.com", &error) == first);
  now += std::chrono::hours(24 + 1);  // 6 days and an hour: within a day of the end
  auto second = cache.get("api.openai.com", &error);
  REQUIRE(second);
  CHECK(second != first);
  CHECK(second->not_after > first->not_after);
  CHECK(cache.size() == 1);

  // A CA with two days left signs leaves that end with it.
  lp::test::TempDir old_dir("lp-ca");
  auto old_ca = lp::init_ca(old_dir.path(), &error,
                            [] { return Clock::now() - std::chrono::hours(24 * 3648); });
  REQUIRE_MESSAGE(old_ca, error);
  CHECK(old_ca->not_after() < Clock::now() + std::chrono::hours(24 * 2 + 1));
  lp::LeafCertCache short_cache(old_ca);
  auto leaf = short_cache.get("api.openai.com", &error);
  REQUIRE_MESSAGE(leaf, error);
  CHECK(leaf->not_after == old_ca->not_after());
  CHECK(ASN1_TIME_compare(X509_get0_notAfter(leaf->cert), X509_get0_notAfter(old_ca->cert())) == 0);
}

TEST_CASE("leaf cache: threads asking at once all get a leaf for their host") {
  lp::test::TempDir tmp("lp-ca");
  lp::LeafCertCache::Options options;
  options.capacity = 8;  // smaller than the hosts asked for: eviction races lookups
  lp::LeafCertCache cache(new_ca(tmp.path()), options);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string host = "h" + std::to_string((i * 7 + t) % 12) + ".example.com";
        std::string error;
        auto leaf = cache.get(host, &error);
        if (!leaf || X509_check_host(leaf->cert, host.c_str(), 0, 0, nullptr) != 1) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == std::vector<int>(4, 0));
  CHECK(cache.size() <= 8);
}

TEST_CASE("leaf cache: refuses hosts no certificate can name") {
  lp::test::TempDir tmp("lp-ca");
  lp::LeafCertCache cache(new_ca(tmp.path()));
  using namespace std::string_literals;
  for (const std::string& host :
       {""s, "bad host"s, "a,DNS:evil.example"s, "*.openai.com"s, "a..b"s, "api.openai.com:443"s,
        "[::1]:443"s, "127.0.0.1\0.evil"s, "::1\0"s, "api.openai.com\0.evil"s}) {
    CAPTURE(host);
    std::string error;
    CHECK_FALSE(cache.get(host, &error));
    CHECK(error.find("is not a host name or IP address") != std::string::npos);
  }
  CHECK(cache.size() == 0);
}

TEST_CASE("leaf TLS context: handshake, ALPN http/1.1 or none, SNI must match") {
  lp::test::TempDir tmp("lp-ca");
  auto ca = new_ca(tmp.path());
  lp::LeafCertCache cache(ca);
  std::string error;
  auto leaf = cache.get("api.openai.com", &error);
  REQUIRE(leaf);
  const std::string h2_and_http11("\x02h2\x08http/1.1", 12);
  const std::string h2_only("\x02h2", 3);

  Handshake h = handshake(*ca, leaf->ctx, "api.openai.com", h2_and_http11);
  CHECK(h.ok);
  CHECK(h.alpn == "http/1.1");
  h = handshake(*ca, leaf->ctx, "API.OPENAI.COM", h2_only);
  CHECK(h.ok);
  CHECK(h.alpn.empty());
  h = handshake(*ca, leaf->ctx, "api.openai.com", "");
  CHECK(h.ok);
  CHECK(h.alpn.empty());
  CHECK_FALSE(handshake(*ca, leaf->ctx, "api.anthropic.com", h2_and_http11).ok);
  // The server itself refuses an SNI for another host, whatever the client checks.
  CHECK(handshake(*ca, leaf->ctx, "api.openai.com.", h2_and_http11, false).ok);
  CHECK_FALSE(handshake(*ca, leaf->ctx, "api.anthropic.com", h2_and_http11, false).ok);

  auto ip_leaf = cache.get("127.0.0.1", &error);
  REQUIRE(ip_leaf);
  CHECK(handshake(*ca, ip_leaf->ctx, nullptr, h2_and_http11).ok);  // no SNI for an address
}
