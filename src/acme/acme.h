/* acme: an ACME client (RFC 8555) that gets certificates from a CA's directory: an account
 * (an ECDSA P-256 key, made once and kept), JWS (ES256) requests with nonces and badNonce
 * retries, orders, authorizations answered by HTTP-01 (the caller publishes the key
 * authorizations its listeners serve), polling that honours Retry-After, a CSR per order
 * with a new ECDSA P-256 key, and the chain downloaded and checked against that key.
 *
 * Blocking (libcurl, with timeouts): for a thread of its own. Not thread-safe: one client,
 * one thread. */
#ifndef DT_ACME_H
#define DT_ACME_H

#include "base/base.h"

#include <time.h>

/* A challenge to answer. */
struct dt_acme_challenge {
    const char *type; /* "http-01" or "tls-alpn-01" */
    const char *name; /* the host being validated */
    const char *token;
    const char *key_authorization; /* TOKEN.THUMBPRINT (RFC 8555 8.1) */
};

struct dt_acme_config {
    const char *directory;   /* the directory's URL */
    const char *ca_file;     /* trust this CA for the directory's TLS, or NULL: the system's */
    const char *email;       /* the account's contact, or NULL */
    const char *account_key; /* the account key's file: read, or made (mode 600) */
    /* The challenges the caller answers: HTTP-01 (RFC 8555 8.3; preferred when both can be)
     * and TLS-ALPN-01 (RFC 8737). publish(ctx, ch) before the CA is asked to validate
     * (false: it cannot be answered); unpublish(ctx, ch) once the authorization is done
     * either way. */
    bool http01, tls_alpn01;
    bool (*publish)(void *ctx, const struct dt_acme_challenge *ch);
    void (*unpublish)(void *ctx, const struct dt_acme_challenge *ch);
    void *ctx;
    long poll_limit_ms; /* how long an authorization or an order may stay pending (0: 120 s) */
    /* when it returns true (any thread may make it so), the order in progress ends at once
     * with an error; NULL: never */
    bool (*cancelled)(void *ctx);
};

struct dt_acme;

/* A client for c (its strings are copied). NULL with a message in err when the account key
 * cannot be read or made. The account itself is made or found at the first order. */
struct dt_acme *dt_acme_new(const struct dt_acme_config *c, struct dt_buf *err);
void dt_acme_free(struct dt_acme *a);

/* What an order gave. */
struct dt_acme_cert {
    struct dt_buf chain; /* PEM: the certificate, then its issuers */
    struct dt_buf key;   /* PEM: its private key (PKCS#8) */
};

/* Gets a certificate for the n names (host names; the first is the subject's): true with
 * out filled (out's buffers initialised by the caller, appended to), or false with why in
 * err (the CA's problem document's detail when it sent one). */
bool dt_acme_order(struct dt_acme *a, const char *const *names, size_t n, struct dt_acme_cert *out,
                   struct dt_buf *err);

/* A self-signed ECDSA P-256 certificate for name, valid days from now (a placeholder
 * until a name has its own). */
bool dt_acme_self_signed(const char *name, long days, struct dt_acme_cert *out);

/* TLS-ALPN-01's certificate for name (RFC 8737 3): self-signed, name its only
 * subjectAltName, the critical acmeIdentifier extension holding SHA-256 of the key
 * authorization. */
bool dt_acme_tls_alpn_cert(const char *name, const char *key_authorization,
                           struct dt_acme_cert *out);

/* The first certificate of a PEM file: true with its notBefore, notAfter and issuer's common
 * name (cap bytes at issuer; "" when it has none). */
bool dt_acme_cert_info(const char *path, time_t *not_before, time_t *not_after, char *issuer,
                       size_t cap);

/* RFC 9773: the CA's suggested renewal window for the certificate that chain (PEM) starts
 * with: 1 with start and end, 0 when the CA offers no renewal information, -1 with why in
 * err. */
int dt_acme_renewal_window(struct dt_acme *a, const char *chain, time_t *start, time_t *end,
                           struct dt_buf *err);
/* The ARI certificate identifier of chain's first certificate (RFC 9773 4.1):
 * base64url(authority key identifier) "." base64url(serial number), appended to out. */
bool dt_acme_cert_id(const char *chain, struct dt_buf *out);

/* How many requests were sent again after a badNonce, since the client was made. */
unsigned long dt_acme_bad_nonces(const struct dt_acme *a);

/* base64url without padding (RFC 4648 5), appended to out. */
void dt_acme_b64url(struct dt_buf *out, const unsigned char *p, size_t n);

#endif
