// The forward proxy's local certificate authority and the leaf certificates it signs for the
// hosts it intercepts. The CA (ECDSA P-256 key `ca.key`, mode 0600, and self-signed `ca.pem`)
// lives in forward_proxy.ca_dir; `logging-proxy ca init` makes it once and clients are told to
// trust ca.pem. Leaves are short-lived, minted in memory per host, and never written to disk.
// No name constraints on the CA: they would pin it to the intercept list of the day it was made,
// while the list is config that changes and the CA lives ten years; the key's 0600 mode is the
// protection instead.
// A ForwardCa is immutable once loaded and shared by every thread. LeafCertCache::get is called
// by the event-loop threads while they accept CONNECTs, concurrently; one mutex guards the cache,
// and minting (key, signature, SSL_CTX: about half a millisecond) happens outside the lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;

namespace lp {

inline constexpr const char* kCaKeyFile = "ca.key";
inline constexpr const char* kCaCertFile = "ca.pem";

// dir + "/ca.pem".
std::string ca_cert_path(const std::string& dir);

class ForwardCa {
 public:
  ForwardCa(const ForwardCa&) = delete;
  ForwardCa& operator=(const ForwardCa&) = delete;
  ~ForwardCa();

  X509* cert() const { return cert_; }
  EVP_PKEY* key() const { return key_; }
  std::chrono::system_clock::time_point not_after() const { return not_after_; }
  std::string cert_pem() const;

 private:
  friend std::shared_ptr<const ForwardCa> make_forward_ca(X509*, EVP_PKEY*);
  ForwardCa(X509* cert, EVP_PKEY* key, std::chrono::system_clock::time_point not_after)
      : cert_(cert), key_(key), not_after_(not_after) {}
  X509* cert_;     // owned
  EVP_PKEY* key_;  // owned
  std::chrono::system_clock::time_point not_after_;
};

// Creates `dir` (mode 0700) when missing (its parent must exist), then a new CA in it: ca.key
// (0600) and ca.pem (0644), each written to a temporary file, synced and linked into place so a
// crash leaves no partial file and two inits cannot both win. Refuses (nullptr, *error says so)
// when either file exists. `now` is the clock the validity is counted from (tests); empty means the
// system clock.
std::shared_ptr<const ForwardCa> init_ca(
    const std::string& dir, std::string* error,
    const std::function<std::chrono::system_clock::time_point()>& now = {});

// The PEM of dir/ca.pem, checked to be a CA certificate; the key is not read, so this works for
// a user who may not read ca.key. nullopt with *error otherwise.
std::optional<std::string> read_ca_cert_pem(const std::string& dir, std::string* error);

// Loads the CA from `dir`: refuses a key readable by group or others (the message names the
// mode), a certificate that is not a CA or has expired, and a key and certificate that do not
// belong together.
std::shared_ptr<const ForwardCa> load_ca(const std::string& dir, std::string* error);

// One host's leaf: its certificate and a server SSL_CTX (TLS 1.2+, ALPN http/1.1 or none) that
// presents it. The context refuses a ClientHello whose SNI names another host: the CONNECT host
// is the one the client asked for and the one the upstream is dialled by.
struct LeafCert {
  LeafCert() = default;
  LeafCert(const LeafCert&) = delete;
  LeafCert& operator=(const LeafCert&) = delete;
  ~LeafCert();

  std::string host;        // normalized (common/host_pattern.h)
  SSL_CTX* ctx = nullptr;  // owned
  X509* cert = nullptr;    // owned
  std::chrono::system_clock::time_point not_after;
};

class LeafCertCache {
 public:
  struct Options {
    size_t capacity = 1024;  // hosts kept (0: no bound); the least recently used goes first
    std::chrono::hours lifetime = std::chrono::hours(24 * 7);  // never past the CA's own end
    std::chrono::hours renew_before = std::chrono::hours(24);  // re-minted this close to expiry
    // Empty: the system clock. Called from every thread that calls get().
    std::function<std::chrono::system_clock::time_point()> now;
  };

  explicit LeafCertCache(std::shared_ptr<const ForwardCa> ca) : LeafCertCache(std::move(ca), {}) {}
  LeafCertCache(std::shared_ptr<const ForwardCa> ca, Options options);

  // The leaf for `host` (a DNS name or an IP literal, without port), minted when absent or near
  // expiry. nullptr with *error for a host no certificate can name, or when OpenSSL fails.
  // The result stays valid after eviction for as long as the caller holds it.
  std::shared_ptr<const LeafCert> get(std::string_view host, std::string* error);

  size_t size() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const LeafCert>>;
  std::chrono::system_clock::time_point now() const;
  bool fresh(const LeafCert& leaf) const;

  const std::shared_ptr<const ForwardCa> ca_;
  const Options options_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace lp
