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

struct dt_acme_config {
    const char *directory;   /* the directory's URL */
    const char *ca_file;     /* trust this CA for the directory's TLS, or NULL: the system's */
    const char *email;       /* the account's contact, or NULL */
    const char *account_key; /* the account key's file: read, or made (mode 600) */
    /* HTTP-01: publish(ctx, token, key_authorization) before the CA is asked to validate;
     * unpublish(ctx, token) once the authorization is done either way */
    void (*publish)(void *ctx, const char *token, const char *key_authorization);
    void (*unpublish)(void *ctx, const char *token);
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

/* The validity of the first certificate of a PEM file: true with notBefore and notAfter. */
bool dt_acme_cert_times(const char *path, time_t *not_before, time_t *not_after);

/* How many requests were sent again after a badNonce, since the client was made. */
unsigned long dt_acme_bad_nonces(const struct dt_acme *a);

/* base64url without padding (RFC 4648 5), appended to out. */
void dt_acme_b64url(struct dt_buf *out, const unsigned char *p, size_t n);

#endif
