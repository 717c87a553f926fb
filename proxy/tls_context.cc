#include "proxy/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <unistd.h>

namespace lp {
namespace {

std::string openssl_error(const char* what) {
  std::string out = what;
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

class TlsStream : public Stream {
 public:
  TlsStream(int fd, SSL* ssl) : Stream(fd), ssl_(ssl) {}
  ~TlsStream() override {
    SSL_free(ssl_);
    ::close(fd_);
  }
  ssize_t read_some(char* buf, size_t n) override {
    size_t got = 0;
    if (SSL_read_ex(ssl_, buf, n, &got) == 1) return static_cast<ssize_t>(got);
    return classify(SSL_get_error(ssl_, 0), /*reading=*/true);
  }
  ssize_t write_some(const char* buf, size_t n) override {
    size_t put = 0;
    if (SSL_write_ex(ssl_, buf, n, &put) == 1) return static_cast<ssize_t>(put);
    ssize_t r = classify(SSL_get_error(ssl_, 0), /*reading=*/false);
    return r == 0 ? kFailed : r;
  }
  bool pending() const override { return SSL_pending(ssl_) > 0; }
  short read_wait_events() const override { return want_; }
  short write_wait_events() const override { return want_; }

 private:
  ssize_t classify(int err, bool reading) {
    switch (err) {
      case SSL_ERROR_WANT_READ:
        want_ = POLLIN;
        return kWouldBlock;
      case SSL_ERROR_WANT_WRITE:
        want_ = POLLOUT;
        return kWouldBlock;
      case SSL_ERROR_ZERO_RETURN:
        return 0;
      default:
        error_ = openssl_error(reading ? "TLS read failed" : "TLS write failed");
        return kFailed;
    }
  }
  SSL* ssl_;
  short want_ = POLLIN;
};

}  // namespace

std::unique_ptr<TlsClientContext> TlsClientContext::create(const std::string& ca_file, bool verify,
                                                           std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *error = openssl_error("cannot create TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Servers often close without close_notify; treat that as the end of the stream.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                             : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
    if (ok != 1) {
      *error = openssl_error(ca_file.empty() ? "cannot load the system CA store"
                                             : ("cannot load CA file " + ca_file).c_str());
      SSL_CTX_free(ctx);
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return std::unique_ptr<TlsClientContext>(new TlsClientContext(ctx, verify));
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

std::unique_ptr<Stream> TlsClientContext::handshake(int fd, const std::string& host,
                                                    Deadline deadline, std::string* error) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) {
    ::close(fd);
    *error = openssl_error("cannot create TLS session");
    return nullptr;
  }
  SSL_set_fd(ssl, fd);
  auto stream = std::make_unique<TlsStream>(fd, ssl);  // owns ssl and fd from here on
  bool ip = is_ip_literal(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (verify_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (ok != 1) {
      *error = openssl_error("cannot set the TLS host to verify");
      return nullptr;
    }
  }
  while (true) {
    int rc = SSL_connect(ssl);
    if (rc == 1) return stream;
    int err = SSL_get_error(ssl, rc);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      long verify_result = SSL_get_verify_result(ssl);
      if (verify_ && verify_result != X509_V_OK) {
        *error = std::string("TLS certificate verification failed for ") + host + ": " +
                 X509_verify_cert_error_string(verify_result);
        ERR_clear_error();
      } else {
        *error = openssl_error(("TLS handshake with " + host + " failed").c_str());
      }
      return nullptr;
    }
    pollfd pfd = {fd, events, 0};
    int timeout =
        deadline == Deadline::max()
            ? -1
            : static_cast<int>(std::max<int64_t>(
                  0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                         .count()));
    if (::poll(&pfd, 1, timeout) == 0) {
      *error = "TLS handshake with " + host + " timed out";
      return nullptr;
    }
  }
}

}  // namespace lp
