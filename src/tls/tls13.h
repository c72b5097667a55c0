/* tls13: detour's own TLS 1.3 server (RFC 8446) for the handshake nearly every client makes
 * (X25519, an ECDSA P-256 certificate, AES-GCM or ChaCha20-Poly1305, tickets of its own),
 * on libcrypto's primitives alone: OpenSSL 3.0's libssl spends ten times the cryptography's
 * own cost per handshake (docs/https.md). Every other ClientHello (TLS 1.2, another group or
 * key, early data, anything odd) goes to OpenSSL's libssl as before (tls.c decides), so
 * this covers one well-trodden path and refuses nothing itself. Private to src/tls, OpenSSL
 * backend only. */
#ifndef DT_TLS13_H
#define DT_TLS13_H

#include "tls/internal.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

/* An ECDSA P-256 certificate, its chain and key, as the handshake sends and uses them. */
struct tls13_cert;

/* The certificate of leaf, chain and key ready for tls13 (copies; the arguments stay the
 * caller's), or NULL when the key is not ECDSA P-256. Freed by tls13_cert_free. */
struct tls13_cert *tls13_cert_new(X509 *leaf, STACK_OF(X509) * chain, EVP_PKEY *key);
void tls13_cert_free(struct tls13_cert *c);

/* True when tls13 can answer o: TLS 1.3, an X25519 share, ECDSA P-256 signatures, a suite of
 * ours, no early data, an ALPN protocol of ours if it offers any (h2 when allowed). */
bool tls13_can(const struct tls13_offer *o, bool h2);

struct tls13;

/* Starts a connection on fd for the ClientHello hello (the whole message, its 4-byte header
 * first, hello_len bytes; o read from it) with cert, acknowledging the server name when
 * sni_ack; rest: the bytes that came after the ClientHello's records. The server's first
 * flight is made (and sent by the first tls13_read). NULL if out of memory. */
struct tls13 *tls13_start(int fd, const struct tls13_offer *o, const unsigned char *hello,
                          size_t hello_len, const struct tls13_cert *cert, bool sni_ack, bool h2,
                          const unsigned char *rest, size_t rest_len);
void tls13_free(struct tls13 *t);

/* As dt_tls_read, dt_tls_write and dt_tls_close_notify. */
ssize_t tls13_read(struct tls13 *t, void *buf, size_t n);
ssize_t tls13_write(struct tls13 *t, const void *buf, size_t n);
void tls13_close_notify(struct tls13 *t);
void tls13_closing(struct tls13 *t);

bool tls13_established(const struct tls13 *t);
bool tls13_resumed(const struct tls13 *t);
bool tls13_h2(const struct tls13 *t);
enum dt_tls_failure tls13_failure(const struct tls13 *t);

#endif
