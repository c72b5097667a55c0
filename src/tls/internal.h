/* internal: what the TLS backends (tls.c on OpenSSL, tls_wolfssl.c on wolfSSL) share, none
 * of it tied to a library: a certificate's names, the names of a set and the look-up SNI
 * makes in them, the files of a --cert-dir and the key file beside a certificate, and the
 * ring of session ticket keys. Private to src/tls. */
#ifndef DT_TLS_INTERNAL_H
#define DT_TLS_INTERNAL_H

#include "tls/tls.h"

/* A certificate's own names: host names and wildcards, lower-cased, each once. */
struct tls_cert_names {
    char **v;
    size_t n;
};

/* Adds the name of len bytes at s (from a subjectAltName or a common name) unless it is
 * not a host name or wildcard ([A-Za-z0-9-._*], 1 to 253 bytes) or already there. */
void tls_cert_names_add(struct tls_cert_names *c, const char *s, size_t len);
/* The names sorted and joined by spaces (malloc'd): certificates with the same key share a
 * context (an RSA and an ECDSA one). */
char *tls_cert_names_key(const struct tls_cert_names *c);
void tls_cert_names_dispose(struct tls_cert_names *c);

/* The names of a set, each with the index of the context that answers it. */
struct tls_name {
    char *name;
    size_t index;
    time_t not_after;
};

struct tls_names {
    struct tls_name *v;
    size_t n;
};

void tls_names_add(struct tls_names *t, const struct tls_cert_names *c, size_t index,
                   time_t not_after);
/* Sorts the names; a name given twice keeps the first certificate's (the lowest index). */
void tls_names_finish(struct tls_names *t);
/* The index for host (any case, no port): its exact name, else a wildcard for its first
 * label, else -1. */
long tls_names_find(const struct tls_names *t, struct dt_str host);
void tls_names_each(const struct tls_names *t,
                    void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx);
void tls_names_dispose(struct tls_names *t);

/* Loads every file of paths, then every *.pem of dir (may be NULL; not hidden files; in name
 * order, so that the first is the same at every load) with load: true, or false with a
 * message in err at the first that does not load, or when there is none at all. */
bool tls_load_all(const char *const *paths, size_t npaths, const char *const *dirs, size_t ndirs,
                  bool (*load)(void *set, const char *path, struct dt_buf *err), void *set,
                  struct dt_buf *err);
/* NAME.key for NAME.pem into out (cap bytes): true, or false (and out empty) when path does
 * not end in .pem or is too long. */
bool tls_key_beside(const char *path, char *out, size_t cap);
/* The message for a certificate file whose key was found neither in it nor beside it. */
void tls_no_key(struct dt_buf *err, const char *path, const char *beside);

/* The hook of dt_tls_on_unknown_name, called by the backends once their look-up found no
 * certificate for host (any case). */
void tls_unknown_name(const char *host);

/* ---- a ClientHello's offers (hello.c) ------------------------------------------------- */

enum { TLS_KEY_RSA, TLS_KEY_EC };

/* What a ClientHello offers that picks a certificate and a protocol. */
struct tls_hello {
    char host[256]; /* the server name, or "" */
    bool tls13;     /* supported_versions names TLS 1.3 */
    bool has_sigalgs, has_groups;
    bool has_alpn, alpn_h2, alpn_http11, alpn_acme;
    uint16_t suites[8]; /* our TLS 1.2 suites among its own, in its order */
    size_t nsuites;
    uint16_t sigalgs[64]; /* in its order */
    size_t nsigalgs;
    uint16_t groups[16]; /* its supported groups (the first ones), in its order */
    size_t ngroups;
};

/* Handshake bytes held until the library reads them: a ClientHello spread over records. */
#define TLS_HELLO_MAX (32 * 1024)

/* What the first bytes of a connection are (tls_first_scan). */
enum tls_first {
    TLS_FIRST_MORE,    /* too few bytes to tell */
    TLS_FIRST_HELLO,   /* a whole ClientHello: *body, *blen */
    TLS_FIRST_OTHER,   /* anything else: for the library to refuse */
    TLS_FIRST_HTTP,    /* plain HTTP */
    TLS_FIRST_CONNECT, /* a proxy's CONNECT */
    TLS_FIRST_NOT_TLS, /* other bytes */
};

/* Tells what the len bytes at p are; for a ClientHello spread over records, *copy is a
 * malloc'd joining of them (the caller frees it), else NULL and *body points into p. */
enum tls_first tls_first_scan(const unsigned char *p, size_t len, const unsigned char **body,
                              size_t *blen, unsigned char **copy);
unsigned tls_get16(const unsigned char *p);
/* Reads what fd has into *in (*len bytes so far, below TLS_HELLO_MAX; grown to 4 KiB, then
 * to TLS_HELLO_MAX): 1 when bytes came, DT_TLS_WANT_READ, or DT_TLS_ERROR when the client
 * has gone. */
int tls_read_more(int fd, unsigned char **in, size_t *len);

/* Reads the body of a ClientHello (after its 4-byte handshake header): true, with h filled;
 * false for bytes that are not one. */
bool tls_hello_parse(const unsigned char *body, size_t len, struct tls_hello *h);
/* What a ClientHello offers that detour's own TLS 1.3 handshake (tls13.c) needs; pointers
 * are into the ClientHello's bytes. */
struct tls13_offer {
    bool ok;                    /* read whole, no extension of ours twice, PSK last */
    bool v13;                   /* supported_versions names TLS 1.3 */
    bool null_compression_only; /* legacy_compression_methods is exactly {null} */
    bool ecdsa_p256;            /* signature_algorithms has ecdsa_secp256r1_sha256 */
    bool early_data;            /* it offers early data */
    bool psk_dhe;               /* psk_key_exchange_modes has psk_dhe_ke */
    bool psk_last;              /* pre_shared_key is the last extension */
    bool has_sni, has_alpn, alpn_h2, alpn_http11;
    bool alpn_acme;           /* "acme-tls/1": a CA's TLS-ALPN-01 validation (RFC 8737) */
    const unsigned char *sid; /* legacy_session_id, echoed */
    size_t sidlen;
    const unsigned char *x25519; /* its X25519 key share (32 bytes), or NULL */
    uint16_t suites[3];          /* TLS 1.3 suites, in its order */
    size_t nsuites;
    char host[256];                            /* the server name, or "" */
    const unsigned char *identities, *binders; /* the PSK lists' contents, or NULL */
    size_t identities_len, binders_len;
    size_t binders_at; /* where the binders list (its length first) starts in the body */
};

/* Reads the body of a ClientHello (after its 4-byte header) for tls13.c: o->ok, false for
 * bytes that are not one or that only the library should answer. */
bool tls13_offer_parse(const unsigned char *body, size_t len, struct tls13_offer *o);

/* The key type of one of our TLS 1.2 suites (TLS_KEY_RSA, TLS_KEY_EC), or -1. */
int tls_suite_type(unsigned suite);

/* ---- session ticket keys: made at the first load, shared by every context and worker --- */

struct tls_ticket_key {
    unsigned char name[16];
    unsigned char secret[64]; /* what a backend derives its cipher and MAC keys from */
};

/* Rotates (fills with random bytes from fill) when the current key is older than period or
 * there is none; keeps the two before it. */
void tls_tickets_rotate(time_t now, time_t period, void (*fill)(unsigned char *p, size_t n));
bool tls_tickets_any(void);
/* The key that encrypts now: false if there is none. */
bool tls_tickets_current(struct tls_ticket_key *out);
/* The key named name: false if none of the three is. */
bool tls_tickets_find(const unsigned char name[16], struct tls_ticket_key *out);

#endif
