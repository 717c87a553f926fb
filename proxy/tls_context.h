// TLS towards upstream destinations (OpenSSL). One context per distinct trust setting,
// shared by every connection that uses it: loading a CA bundle is the expensive part.
// Verification is on by default against the system store, which honours SSL_CERT_FILE and
// SSL_CERT_DIR like curl and openssl do; a route may name its own CA file instead.
#pragma once

#include <memory>
#include <string>

#include "proxy/socket.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace lp {

class TlsClientContext {
 public:
  // ca_file empty: the system store. verify false: no certificate or host checks at all.
  static std::unique_ptr<TlsClientContext> create(const std::string& ca_file, bool verify,
                                                  std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // Runs the handshake on a connected non-blocking fd (ownership passes to the result, or
  // the fd is closed on failure) for `host`, checked against the certificate.
  std::unique_ptr<Stream> handshake(int fd, const std::string& host, Deadline deadline,
                                    std::string* error) const;

 private:
  TlsClientContext(SSL_CTX* ctx, bool verify) : ctx_(ctx), verify_(verify) {}
  SSL_CTX* ctx_;
  bool verify_;
};

}  // namespace lp
