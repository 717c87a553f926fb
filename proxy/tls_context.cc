#include "proxy/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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
  // Idle streams (an SSE stream between events) need not keep OpenSSL's record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
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
  // The asio context takes ownership of ctx.
  return std::unique_ptr<TlsClientContext>(
      new TlsClientContext(boost::asio::ssl::context(ctx), verify));
}

bool TlsClientContext::prepare(SSL* ssl, const std::string& host, std::string* error) const {
  const bool ip = is_ip_literal(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!verify_) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  if (ok != 1) {
    *error = openssl_error("cannot set the TLS host to verify");
    return false;
  }
  return true;
}

std::string TlsClientContext::handshake_error(SSL* ssl, const std::string& host,
                                              const std::string& cause) const {
  const long verify_result = SSL_get_verify_result(ssl);
  ERR_clear_error();
  if (verify_ && verify_result != X509_V_OK) {
    return "TLS certificate verification failed for " + host + ": " +
           X509_verify_cert_error_string(verify_result);
  }
  return "TLS handshake with " + host + " failed: " + cause;
}

}  // namespace lp
