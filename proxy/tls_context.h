// TLS towards upstream destinations (OpenSSL under Boost.Asio's ssl::stream). One context
// per distinct trust setting, shared by every connection (and thread) that uses it: loading
// a CA bundle is the expensive part, and an SSL_CTX is safe to share once configured.
// Verification is on by default against the system store, which honours SSL_CERT_FILE and
// SSL_CERT_DIR like curl and openssl do; a route may name its own CA file instead.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

typedef struct ssl_st SSL;

namespace lp {

class TlsClientContext {
 public:
  // ca_file empty: the system store. verify false: no certificate or host checks at all.
  static std::unique_ptr<TlsClientContext> create(const std::string& ca_file, bool verify,
                                                  std::string* error);
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  boost::asio::ssl::context& context() const { return context_; }
  // Before the handshake: SNI for `host` (unless an IP literal) and, when verifying, the name
  // or address the certificate must carry. False with *error when OpenSSL refuses.
  bool prepare(SSL* ssl, const std::string& host, std::string* error) const;
  // After a failed handshake: the reason, naming a certificate problem when there was one.
  std::string handshake_error(SSL* ssl, const std::string& host, const std::string& cause) const;

 private:
  TlsClientContext(boost::asio::ssl::context context, bool verify)
      : context_(std::move(context)), verify_(verify) {}
  mutable boost::asio::ssl::context context_;  // SSL_CTX is internally synchronised
  bool verify_;
};

}  // namespace lp
