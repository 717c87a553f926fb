#include "proxy/forward_ca.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/host_pattern.h"

namespace lp {
namespace {

using Clock = std::chrono::system_clock;

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

std::string openssl_error(const std::string& what) {
  std::string out = what;
  if (unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

Owned<EVP_PKEY> new_p256_key() {
  return Owned<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

// 128 random bits, kept positive so the DER INTEGER needs no sign byte juggling.
bool set_random_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;  // a nonzero top byte: always the full 16 bytes on the wire
  Owned<BIGNUM> bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr;
}

bool set_validity(X509* cert, Clock::time_point from, Clock::time_point to) {
  return ASN1_TIME_set(X509_getm_notBefore(cert), Clock::to_time_t(from)) != nullptr &&
         ASN1_TIME_set(X509_getm_notAfter(cert), Clock::to_time_t(to)) != nullptr;
}

Clock::time_point not_after_of(const X509* cert) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return Clock::time_point{};
  return Clock::from_time_t(timegm(&tm));
}

// An extension from its openssl.cnf text form; `issuer` supplies the authority key id.
bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

// Built from typed values rather than "DNS:<host>" text, so no host can smuggle a second name
// in with a comma.
bool add_san(X509* cert, const std::string& host, bool ip) {
  Owned<GENERAL_NAMES> names(GENERAL_NAMES_new());
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (!names || name == nullptr) {
    GENERAL_NAME_free(name);
    return false;
  }
  if (ip) {
    ASN1_OCTET_STRING* addr = a2i_IPADDRESS(host.c_str());
    if (addr == nullptr) {
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, addr);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
    GENERAL_NAME_free(name);
    return false;
  }
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool set_common_name(X509_NAME* name, const std::string& cn) {
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(cn.data()),
                                    static_cast<int>(cn.size()), -1, 0) == 1;
}

std::string ca_common_name(Clock::time_point now) {
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  const std::time_t t = Clock::to_time_t(now);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char date[16];
  std::strftime(date, sizeof date, "%Y-%m-%d", &tm);
  // A CN is at most 64 characters; a long host name is cut rather than refused.
  std::string cn = std::string("logging-proxy CA ") + host;
  if (cn.size() > 64 - 11) cn.resize(64 - 11);
  return cn + " " + date;
}

Owned<X509> make_ca_cert(EVP_PKEY* key, Clock::time_point now) {
  Owned<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      !set_random_serial(cert.get()) ||
      !set_validity(cert.get(), now - std::chrono::hours(1), now + std::chrono::days(3650)) ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      !set_common_name(X509_get_subject_name(cert.get()), ca_common_name(now)) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      !add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key, EVP_sha256()) == 0) {
    return nullptr;
  }
  return cert;
}

std::string pem_of(int (*write)(BIO*, void*), void* object) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), object) != 1) return std::string();
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

int write_key(BIO* bio, void* key) {
  return PEM_write_bio_PrivateKey(bio, static_cast<EVP_PKEY*>(key), nullptr, nullptr, 0, nullptr,
                                  nullptr);
}
int write_cert(BIO* bio, void* cert) {
  return PEM_write_bio_X509(bio, static_cast<X509*>(cert));
}

// Written to a temporary name, synced, then linked to `path`: link() fails on an existing file,
// so a CA made meanwhile by someone else is never replaced.
bool write_new_file(const std::string& path, const std::string& data, mode_t mode,
                    std::string* error) {
  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    *error = errno_text("cannot create " + tmp, errno);
    return false;
  }
  bool ok = fchmod(fd, mode) == 0;  // the umask may have taken bits ca.pem needs
  for (size_t done = 0; ok && done < data.size();) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  int err = ok ? 0 : errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    *error = errno_text("cannot write " + tmp, err);
    unlink(tmp.c_str());
    return false;
  }
  if (link(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    unlink(tmp.c_str());
    *error = err == EEXIST ? path + " already exists" : errno_text("cannot create " + path, err);
    return false;
  }
  unlink(tmp.c_str());
  return true;
}

bool sync_dir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = errno_text("cannot read " + path, errno);
    return false;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) *error = errno_text("cannot read " + path, err);
  return err == 0;
}

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// ALPN: this side speaks HTTP/1.1 only; a client that offers no http/1.1 gets no ALPN at all
// (it then falls back to HTTP/1.1 or gives up), never a protocol the proxy cannot parse.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// No SNI (clients omit it for IP literals) is fine; an SNI naming another host is refused.
int check_sni(SSL* ssl, int* alert, void* arg) {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni == nullptr) return SSL_TLSEXT_ERR_NOACK;
  if (normalize_host(sni) == *static_cast<const std::string*>(arg)) return SSL_TLSEXT_ERR_OK;
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

std::shared_ptr<const ForwardCa> make_forward_ca(X509* cert, EVP_PKEY* key) {
  return std::shared_ptr<const ForwardCa>(new ForwardCa(cert, key, not_after_of(cert)));
}

std::string ca_cert_path(const std::string& dir) {
  return dir + "/" + kCaCertFile;
}

ForwardCa::~ForwardCa() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

std::string ForwardCa::cert_pem() const {
  return pem_of(write_cert, cert_);
}

std::shared_ptr<const ForwardCa> init_ca(const std::string& dir, std::string* error,
                                         const std::function<Clock::time_point()>& now) {
  const std::string key_path = dir + "/" + kCaKeyFile;
  const std::string cert_path = ca_cert_path(dir);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = errno_text("cannot create the CA directory " + dir, errno);
    return nullptr;
  }
  struct stat st {};
  for (const std::string& path : {key_path, cert_path}) {
    if (lstat(path.c_str(), &st) == 0) {
      *error = "a CA already exists in " + dir + " (" + path +
               "); it is not replaced. To make a new one, remove ca.key and ca.pem from it, then "
               "trust the new ca.pem everywhere the old one was trusted";
      return nullptr;
    }
  }
  const Clock::time_point t = now ? now() : Clock::now();
  Owned<EVP_PKEY> key = new_p256_key();
  if (!key) {
    *error = openssl_error("cannot generate the CA key");
    return nullptr;
  }
  Owned<X509> cert = make_ca_cert(key.get(), t);
  if (!cert) {
    *error = openssl_error("cannot make the CA certificate");
    return nullptr;
  }
  std::string key_pem = pem_of(write_key, key.get());
  const std::string cert_pem = pem_of(write_cert, cert.get());
  if (key_pem.empty() || cert_pem.empty()) {
    *error = openssl_error("cannot encode the CA");
    return nullptr;
  }
  const bool key_written = write_new_file(key_path, key_pem, 0600, error);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  if (!key_written) return nullptr;
  if (!write_new_file(cert_path, cert_pem, 0644, error)) {
    // The key alone would block the next init; it was never trusted by anyone, so it goes.
    unlink(key_path.c_str());
    return nullptr;
  }
  if (!sync_dir(dir)) {
    *error = errno_text("cannot sync the CA directory " + dir, errno);
    return nullptr;
  }
  return make_forward_ca(cert.release(), key.release());
}

std::optional<std::string> read_ca_cert_pem(const std::string& dir, std::string* error) {
  const std::string cert_path = ca_cert_path(dir);
  std::string text;
  if (!read_file(cert_path, &text, error)) {
    if (errno == ENOENT) *error += " (make the CA with `logging-proxy ca init`)";
    return std::nullopt;
  }
  Owned<BIO> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  Owned<X509> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert || X509_check_ca(cert.get()) == 0) {
    ERR_clear_error();
    *error = cert_path + " holds no CA certificate (PEM)";
    return std::nullopt;
  }
  return pem_of(write_cert, cert.get());
}

std::shared_ptr<const ForwardCa> load_ca(const std::string& dir, std::string* error) {
  const std::string key_path = dir + "/" + kCaKeyFile;
  const std::string cert_path = ca_cert_path(dir);
  struct stat st {};
  if (stat(key_path.c_str(), &st) != 0) {
    *error = errno == ENOENT ? "no CA in " + dir + " (" + key_path +
                                   " is missing); make one with `logging-proxy ca init`"
                             : errno_text("cannot read " + key_path, errno);
    return nullptr;
  }
  if ((st.st_mode & 077) != 0) {
    *error = key_path + " has mode " + mode_text(st.st_mode) +
             ": the CA key must be readable by its owner only (chmod 600 " + key_path + ")";
    return nullptr;
  }
  std::string key_text;
  std::string cert_text;
  if (!read_file(key_path, &key_text, error) || !read_file(cert_path, &cert_text, error)) {
    return nullptr;
  }
  Owned<BIO> key_bio(BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
  Owned<EVP_PKEY> key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                              : nullptr);
  // The key's bytes stay out of every message, OpenSSL's included.
  OPENSSL_cleanse(key_text.data(), key_text.size());
  if (!key) {
    ERR_clear_error();
    *error = key_path + " holds no readable private key (PEM)";
    return nullptr;
  }
  Owned<BIO> cert_bio(BIO_new_mem_buf(cert_text.data(), static_cast<int>(cert_text.size())));
  Owned<X509> cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)
                            : nullptr);
  if (!cert) {
    *error = openssl_error(cert_path + " holds no readable certificate (PEM)");
    return nullptr;
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    *error = cert_path + " and " + key_path + " do not belong together";
    return nullptr;
  }
  if (X509_check_ca(cert.get()) == 0) {
    *error = cert_path + " is not a CA certificate";
    return nullptr;
  }
  if (not_after_of(cert.get()) <= Clock::now()) {
    *error = cert_path + " has expired; remove ca.key and ca.pem and run `logging-proxy ca init`";
    return nullptr;
  }
  return make_forward_ca(cert.release(), key.release());
}

LeafCert::~LeafCert() {
  SSL_CTX_free(ctx);
  X509_free(cert);
}

namespace {

Owned<X509> make_leaf_cert(const ForwardCa& ca, const std::string& host, bool ip, EVP_PKEY* key,
                           Clock::time_point now, Clock::time_point not_after) {
  Owned<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      !set_random_serial(cert.get()) ||
      !set_validity(cert.get(), now - std::chrono::hours(1), not_after) ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert())) != 1) {
    return nullptr;
  }
  // Clients read the SAN only; the CN is for people, when the host fits in one (64 chars).
  if (host.size() <= 64 && !set_common_name(X509_get_subject_name(cert.get()), host)) {
    return nullptr;
  }
  if (!add_ext(cert.get(), ca.cert(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), ca.cert(), NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert.get(), ca.cert(), NID_ext_key_usage, "serverAuth") ||
      !add_ext(cert.get(), ca.cert(), NID_subject_key_identifier, "hash") ||
      !add_ext(cert.get(), ca.cert(), NID_authority_key_identifier, "keyid:always") ||
      !add_san(cert.get(), host, ip) || X509_sign(cert.get(), ca.key(), EVP_sha256()) == 0) {
    return nullptr;
  }
  return cert;
}

std::shared_ptr<const LeafCert> mint_leaf(const ForwardCa& ca, const std::string& host,
                                          Clock::time_point now, std::chrono::hours lifetime,
                                          std::string* error) {
  const bool ip = is_ip_literal(host);
  const Clock::time_point not_after = std::min(now + lifetime, ca.not_after());
  if (not_after <= now) {
    *error = "the forward proxy's CA has expired";
    return nullptr;
  }
  Owned<EVP_PKEY> key = new_p256_key();
  Owned<X509> cert = key ? make_leaf_cert(ca, host, ip, key.get(), now, not_after) : nullptr;
  if (!cert) {
    *error = openssl_error("cannot mint a certificate for " + host);
    return nullptr;
  }
  auto leaf = std::make_shared<LeafCert>();
  leaf->host = host;
  leaf->not_after = not_after;
  leaf->ctx = SSL_CTX_new(TLS_server_method());
  if (leaf->ctx == nullptr || SSL_CTX_set_min_proto_version(leaf->ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate(leaf->ctx, cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(leaf->ctx, key.get()) != 1) {
    *error = openssl_error("cannot make the TLS context for " + host);
    return nullptr;
  }
  SSL_CTX_set_options(leaf->ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(leaf->ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(leaf->ctx, select_alpn, nullptr);
  SSL_CTX_set_tlsext_servername_callback(leaf->ctx, check_sni);
  // The leaf owns the context, so the host string outlives every callback that reads it.
  SSL_CTX_set_tlsext_servername_arg(leaf->ctx, &leaf->host);
  leaf->cert = cert.release();
  return leaf;
}

}  // namespace

LeafCertCache::LeafCertCache(std::shared_ptr<const ForwardCa> ca, Options options)
    : ca_(std::move(ca)), options_(std::move(options)) {}

Clock::time_point LeafCertCache::now() const {
  return options_.now ? options_.now() : Clock::now();
}

bool LeafCertCache::fresh(const LeafCert& leaf) const {
  return now() + options_.renew_before < leaf.not_after;
}

std::shared_ptr<const LeafCert> LeafCertCache::get(std::string_view host, std::string* error) {
  if (!is_valid_host(host)) {
    *error = "\"" + std::string(host) + "\" is not a host name or IP address";
    return nullptr;
  }
  const std::string key = normalize_host(host);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = index_.find(key); it != index_.end() && fresh(*it->second->second)) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  std::shared_ptr<const LeafCert> leaf = mint_leaf(*ca_, key, now(), options_.lifetime, error);
  if (!leaf) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) {
    // Another thread minted this host meanwhile; either leaf is good, the newer one stays.
    it->second->second = leaf;
    lru_.splice(lru_.begin(), lru_, it->second);
    return leaf;
  }
  lru_.emplace_front(key, leaf);
  index_[key] = lru_.begin();
  while (lru_.size() > options_.capacity && options_.capacity > 0) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return leaf;
}

size_t LeafCertCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

}  // namespace lp
