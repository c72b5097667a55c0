/* tls13_internal: what tls13.c (the handshake and the record layer) and tls13_crypto.c (the
 * hash, HMAC, HKDF, suites, AEADs, X25519 and the tickets' sealing under them) share.
 * Private to those two files. */
#ifndef DT_TLS13_INTERNAL_H
#define DT_TLS13_INTERNAL_H

#include "tls/tls13.h"

#include <openssl/sha.h>

enum {
    H_MAX = 48,                        /* the longest hash: SHA-384 */
    PLAIN_MAX = 16384,                 /* a record's plaintext (RFC 8446 5.1) */
    SEAL_MAX = 5 + PLAIN_MAX + 1 + 16, /* a record we make */
    TAG = 16,
};

/* Alerts (RFC 8446 6). */
enum {
    CLOSE_NOTIFY = 0,
    UNEXPECTED_MESSAGE = 10,
    BAD_RECORD_MAC = 20,
    RECORD_OVERFLOW = 22,
    HANDSHAKE_FAILURE = 40,
    ILLEGAL_PARAMETER = 47,
    DECODE_ERROR = 50,
    DECRYPT_ERROR = 51,
    PROTOCOL_VERSION = 70,
    INSUFFICIENT_SECURITY = 71,
    INTERNAL_ERROR = 80,
    USER_CANCELED = 90,
};

/* ---- SHA-256 and SHA-384 -------------------------------------------------------------- */

struct tls13_hash {
    bool sha384;
    union {
        SHA256_CTX s256;
        SHA512_CTX s512;
    } u;
};

size_t tls13_hash_len(bool sha384);
void tls13_hash_init(struct tls13_hash *h, bool sha384);
void tls13_hash_update(struct tls13_hash *h, const void *p, size_t n);
void tls13_hash_final(struct tls13_hash *h, unsigned char *out);
/* The hash of what h has read so far; h reads on. */
void tls13_hash_now(const struct tls13_hash *h, unsigned char *out);

/* ---- HMAC and HKDF (RFC 2104, RFC 5869, RFC 8446 7.1) --------------------------------- */

/* HMAC of the mlen bytes at msg with the key of klen bytes (at most a block) into out. */
void tls13_hmac(bool sha384, const unsigned char *key, size_t klen, const unsigned char *msg,
                size_t mlen, unsigned char *out);
/* HKDF-Expand-Label(secret, label, context, len), len at most the hash's length (one
 * block, which is all TLS 1.3 asks for). */
void tls13_expand_label(bool sha384, const unsigned char *secret, const char *label,
                        const unsigned char *context, size_t clen, unsigned char *out, size_t len);
/* Derive-Secret(secret, label, the transcript's hash) (RFC 8446 7.1). */
void tls13_derive_secret(bool sha384, const unsigned char *secret, const char *label,
                         const unsigned char *transcript, unsigned char *out);

/* ---- suites and their AEADs -------------------------------------------------------------- */

struct tls13_suite {
    uint16_t id;
    bool sha384;
    size_t keylen;
    const char *cipher; /* EVP's name */
};

/* Fetches the suites' ciphers and makes the tickets' thread key, once per process: before
 * anything below runs. */
void tls13_crypto_init(void);
/* The suite for the offer (o->nsuites > 0): see tls13_crypto.c for the choice. */
const struct tls13_suite *tls13_pick_suite(const struct tls13_offer *o);

/* One direction's record protection. */
struct tls13_aead {
    EVP_CIPHER_CTX *ctx;
    unsigned char iv[12];
    uint64_t seq;
};

/* Keys a for suite s from the traffic secret (encrypting when enc): false if the library
 * failed. */
bool tls13_aead_key(struct tls13_aead *a, const struct tls13_suite *s, const unsigned char *secret,
                    int enc);
/* Protects n bytes of type into the record at out (SEAL_MAX bytes at most): its length, or
 * 0 if the library failed. */
size_t tls13_seal(struct tls13_aead *a, unsigned type, const unsigned char *p, size_t n,
                  unsigned char *out);
/* Seals the n bytes at p as records of type into out (room for them): their length, or 0. */
size_t tls13_seal_all(struct tls13_aead *a, unsigned type, const unsigned char *p, size_t n,
                      unsigned char *out);
/* Opens the record at rec (its header, then len bytes) in place: 0 with *type and the
 * plaintext's length, or the alert to send. */
int tls13_open_record(struct tls13_aead *a, unsigned char *rec, size_t len, unsigned *type,
                      size_t *plen);

/* ---- X25519 ------------------------------------------------------------------------------ */

/* Our key share for the client's: our public key and the shared secret, from our private
 * key priv; false if the peer's key is bad (a zero secret). */
bool tls13_x25519(const unsigned char priv[32], const unsigned char peer[32], unsigned char pub[32],
                  unsigned char shared[32]);

/* ---- tickets: our own, sealed with the ring's keys (AES-256-GCM) ------------------------ */

/* A ticket: key name (16), nonce (12), the sealed state, tag (16). The state: format (1),
 * suite (2), PSK length (1), PSK, server name length (1), server name. */
enum { TICKET_HEAD = 16 + 12, TICKET_STATE_MAX = 1 + 2 + 1 + H_MAX + 1 + 255 };

/* The ticket for psk (of suite s's hash) and the server name host into out (TICKET_HEAD +
 * TICKET_STATE_MAX + TAG bytes), sealed with nonce: its length, or 0. */
size_t tls13_ticket_make(const struct tls13_suite *s, const char *host, const unsigned char *psk,
                         const unsigned char nonce[12], unsigned char *out);
/* Opens a ticket: true with its PSK in psk (the hash's length) when a key of the ring made it for
 * the hash of suite s and the server name host. */
bool tls13_ticket_open(const unsigned char *ticket, size_t len, const struct tls13_suite *s,
                       const char *host, unsigned char *psk);

#endif
