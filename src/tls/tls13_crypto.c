/* tls13_crypto: the cryptography under detour's own TLS 1.3 (tls13.c): SHA-256/384, HMAC
 * and HKDF, the suites and their AEADs, record sealing and opening, X25519, and the sealing
 * of its tickets with the ring's keys. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init: no provider per call */
#include "tls/tls13_internal.h"

#include <openssl/crypto.h>
#include <sodium.h>

#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

/* ---- SHA-256 and SHA-384 -------------------------------------------------------------- */

size_t tls13_hash_len(bool sha384)
{
    return sha384 ? 48 : 32;
}

void tls13_hash_init(struct tls13_hash *h, bool sha384)
{
    h->sha384 = sha384;
    if (sha384)
        SHA384_Init(&h->u.s512);
    else
        SHA256_Init(&h->u.s256);
}

void tls13_hash_update(struct tls13_hash *h, const void *p, size_t n)
{
    if (h->sha384)
        SHA384_Update(&h->u.s512, p, n);
    else
        SHA256_Update(&h->u.s256, p, n);
}

void tls13_hash_final(struct tls13_hash *h, unsigned char *out)
{
    if (h->sha384)
        SHA384_Final(out, &h->u.s512);
    else
        SHA256_Final(out, &h->u.s256);
}

void tls13_hash_now(const struct tls13_hash *h, unsigned char *out)
{
    struct tls13_hash copy = *h;
    tls13_hash_final(&copy, out);
}

/* ---- HMAC and HKDF (RFC 2104, RFC 5869, RFC 8446 7.1) --------------------------------- */

struct hmac {
    struct tls13_hash inner, outer;
};

/* Keys here are at most 64 bytes: never longer than a block. */
static void hmac_init(struct hmac *m, bool sha384, const unsigned char *key, size_t klen)
{
    size_t block = sha384 ? 128 : 64;
    unsigned char pad[128];
    memset(pad, 0x36, block);
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    tls13_hash_init(&m->inner, sha384);
    tls13_hash_update(&m->inner, pad, block);
    memset(pad, 0x5c, block);
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    tls13_hash_init(&m->outer, sha384);
    tls13_hash_update(&m->outer, pad, block);
    OPENSSL_cleanse(pad, sizeof(pad));
}

static void hmac_final(struct hmac *m, unsigned char *out)
{
    unsigned char d[H_MAX];
    tls13_hash_final(&m->inner, d);
    tls13_hash_update(&m->outer, d, tls13_hash_len(m->inner.sha384));
    tls13_hash_final(&m->outer, out);
    OPENSSL_cleanse(m, sizeof(*m));
}

void tls13_hmac(bool sha384, const unsigned char *key, size_t klen, const unsigned char *msg,
                size_t mlen, unsigned char *out)
{
    struct hmac m;
    hmac_init(&m, sha384, key, klen);
    tls13_hash_update(&m.inner, msg, mlen);
    hmac_final(&m, out);
}

void tls13_expand_label(bool sha384, const unsigned char *secret, const char *label,
                        const unsigned char *context, size_t clen, unsigned char *out, size_t len)
{
    unsigned char info[2 + 1 + 6 + 32 + 1 + H_MAX + 1];
    size_t llen = strlen(label), at = 0;
    info[at++] = (unsigned char)(len >> 8);
    info[at++] = (unsigned char)len;
    info[at++] = (unsigned char)(6 + llen);
    memcpy(info + at, "tls13 ", 6);
    memcpy(info + at + 6, label, llen);
    at += 6 + llen;
    info[at++] = (unsigned char)clen;
    if (clen)
        memcpy(info + at, context, clen);
    at += clen;
    info[at++] = 1; /* T(1) */
    unsigned char t[H_MAX];
    tls13_hmac(sha384, secret, tls13_hash_len(sha384), info, at, t);
    memcpy(out, t, len);
    OPENSSL_cleanse(t, sizeof(t));
}

void tls13_derive_secret(bool sha384, const unsigned char *secret, const char *label,
                         const unsigned char *transcript, unsigned char *out)
{
    tls13_expand_label(sha384, secret, label, transcript, tls13_hash_len(sha384), out,
                       tls13_hash_len(sha384));
}

/* ---- suites and their AEADs -------------------------------------------------------------- */

static const struct tls13_suite suites[] = {
    {0x1301, false, 16, "AES-128-GCM"},
    {0x1302, true, 32, "AES-256-GCM"},
    {0x1303, false, 32, "ChaCha20-Poly1305"},
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static EVP_CIPHER *ciphers[NSUITES];
static pthread_once_t ciphers_once = PTHREAD_ONCE_INIT;

static void ticket_ctx_free(void *p);
static pthread_key_t ticket_key;

static void fetch_ciphers(void)
{
    if (pthread_key_create(&ticket_key, ticket_ctx_free) != 0)
        dt_oom();
    for (size_t i = 0; i < NSUITES; i++)
        ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
}

void tls13_crypto_init(void)
{
    pthread_once(&ciphers_once, fetch_ciphers);
}

static const struct tls13_suite *suite_of(unsigned id)
{
    for (size_t i = 0; i < NSUITES; i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

/* The suite: ChaCha20-Poly1305 when the client puts it first (it has no AES instructions),
 * else AES-128-GCM when offered (its SHA-256 key schedule runs on the CPU's SHA
 * instructions where SHA-384 has none; 128-bit security, as every browser's first
 * choice), else the client's first. */
const struct tls13_suite *tls13_pick_suite(const struct tls13_offer *o)
{
    if (o->suites[0] != 0x1303)
        for (size_t i = 0; i < o->nsuites; i++)
            if (o->suites[i] == 0x1301)
                return &suites[0];
    return suite_of(o->suites[0]);
}

bool tls13_aead_key(struct tls13_aead *a, const struct tls13_suite *s, const unsigned char *secret,
                    int enc)
{
    unsigned char key[32];
    tls13_expand_label(s->sha384, secret, "key", NULL, 0, key, s->keylen);
    tls13_expand_label(s->sha384, secret, "iv", NULL, 0, a->iv, sizeof(a->iv));
    a->seq = 0;
    /* the cipher once, then only new keys: the library makes its context again otherwise */
    const EVP_CIPHER *cipher = NULL;
    if (!a->ctx) {
        a->ctx = EVP_CIPHER_CTX_new();
        cipher = ciphers[s - suites];
    }
    bool ok = a->ctx && ciphers[s - suites] &&
              EVP_CipherInit_ex(a->ctx, cipher, NULL, key, NULL, enc) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

static void aead_nonce(const struct tls13_aead *a, unsigned char nonce[12])
{
    memcpy(nonce, a->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (unsigned char)(a->seq >> (8 * i));
}

size_t tls13_seal(struct tls13_aead *a, unsigned type, const unsigned char *p, size_t n,
                  unsigned char *out)
{
    size_t clen = n + 1 + TAG;
    out[0] = 23;
    out[1] = out[2] = 3;
    out[3] = (unsigned char)(clen >> 8);
    out[4] = (unsigned char)clen;
    unsigned char nonce[12], inner = (unsigned char)type;
    aead_nonce(a, nonce);
    int l;
    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, nonce, 1) != 1 ||
        EVP_CipherUpdate(a->ctx, NULL, &l, out, 5) != 1 ||
        (n && EVP_CipherUpdate(a->ctx, out + 5, &l, p, (int)n) != 1) ||
        EVP_CipherUpdate(a->ctx, out + 5 + n, &l, &inner, 1) != 1 ||
        EVP_CipherFinal_ex(a->ctx, out + 5 + n + 1, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, TAG, out + 5 + n + 1) != 1)
        return 0;
    a->seq++;
    return 5 + clen;
}

size_t tls13_seal_all(struct tls13_aead *a, unsigned type, const unsigned char *p, size_t n,
                      unsigned char *out)
{
    size_t at = 0;
    do {
        size_t part = n > PLAIN_MAX ? PLAIN_MAX : n;
        size_t r = tls13_seal(a, type, p, part, out + at);
        if (!r)
            return 0;
        at += r;
        p += part;
        n -= part;
    } while (n > 0);
    return at;
}

int tls13_open_record(struct tls13_aead *a, unsigned char *rec, size_t len, unsigned *type,
                      size_t *plen)
{
    if (len < 1 + TAG)
        return BAD_RECORD_MAC;
    unsigned char *body = rec + 5, nonce[12];
    size_t n = len - TAG;
    aead_nonce(a, nonce);
    int l;
    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, nonce, 0) != 1 ||
        EVP_CipherUpdate(a->ctx, NULL, &l, rec, 5) != 1 ||
        EVP_CipherUpdate(a->ctx, body, &l, body, (int)n) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, TAG, body + n) != 1 ||
        EVP_CipherFinal_ex(a->ctx, body + n, &l) != 1)
        return BAD_RECORD_MAC;
    a->seq++;
    while (n > 0 && body[n - 1] == 0) /* padding */
        n--;
    if (n == 0)
        return UNEXPECTED_MESSAGE; /* no content type */
    if (n - 1 > PLAIN_MAX)
        return RECORD_OVERFLOW;
    *type = body[n - 1];
    *plen = n - 1;
    return 0;
}

/* ---- X25519 ------------------------------------------------------------------------------ */

/* libsodium's X25519: OpenSSL 3.0
 * has no X25519 call without an EVP_PKEY, whose import of a private key computes the public
 * one by its slow generic code (80 us here, libsodium's 40 us) before the derivation. */
bool tls13_x25519(const unsigned char priv[32], const unsigned char peer[32], unsigned char pub[32],
                  unsigned char shared[32])
{
    return crypto_scalarmult_curve25519_base(pub, priv) == 0 &&
           crypto_scalarmult_curve25519(shared, priv, peer) == 0;
}

/* ---- tickets: our own, sealed with the ring's keys (AES-256-GCM) ------------------------ */

/* A thread's cipher context for tickets, keyed for the ring key it last used. */
struct ticket_ctx {
    EVP_CIPHER_CTX *ctx;
    unsigned char name[16];
};

static void ticket_ctx_free(void *p)
{
    struct ticket_ctx *t = p;
    EVP_CIPHER_CTX_free(t->ctx);
    free(t);
}

/* The thread's ticket context, keyed for k, its nonce set: NULL if the library failed. */
static EVP_CIPHER_CTX *ticket_cipher(const struct tls_ticket_key *k, const unsigned char *nonce,
                                     int enc)
{
    struct ticket_ctx *t = pthread_getspecific(ticket_key);
    if (!t) {
        t = dt_xcalloc(1, sizeof(*t));
        t->ctx = EVP_CIPHER_CTX_new();
        if (!t->ctx || pthread_setspecific(ticket_key, t) != 0) {
            ticket_ctx_free(t);
            return NULL;
        }
    } else if (!memcmp(t->name, k->name, 16)) {
        return EVP_CipherInit_ex(t->ctx, NULL, NULL, NULL, nonce, enc) == 1 ? t->ctx : NULL;
    }
    /* the ring's secret also keys the library's tickets: this key is derived from it */
    unsigned char key[32];
    tls13_hmac(false, k->secret, sizeof(k->secret), (const unsigned char *)"detour tls13 ticket",
               19, key);
    bool ok = ciphers[1] && EVP_CipherInit_ex(t->ctx, ciphers[1], NULL, key, nonce, enc) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    memcpy(t->name, k->name, 16);
    if (!ok)
        memset(t->name, 0, 16); /* keyed again next time */
    return ok ? t->ctx : NULL;
}

size_t tls13_ticket_make(const struct tls13_suite *s, const char *host, const unsigned char *psk,
                         const unsigned char nonce[12], unsigned char *out)
{
    struct tls_ticket_key k;
    if (!tls_tickets_current(&k))
        return 0;
    memcpy(out + 16, nonce, 12);
    memcpy(out, k.name, 16);
    unsigned char state[TICKET_STATE_MAX];
    size_t hl = tls13_hash_len(s->sha384), hlen = strlen(host), n = 0;
    state[n++] = 1;
    state[n++] = (unsigned char)(s->id >> 8);
    state[n++] = (unsigned char)s->id;
    state[n++] = (unsigned char)hl;
    memcpy(state + n, psk, hl);
    n += hl;
    state[n++] = (unsigned char)hlen;
    memcpy(state + n, host, hlen);
    n += hlen;
    EVP_CIPHER_CTX *ctx = ticket_cipher(&k, out + 16, 1);
    int l;
    bool ok = ctx && EVP_CipherUpdate(ctx, NULL, &l, out, TICKET_HEAD) == 1 &&
              EVP_CipherUpdate(ctx, out + TICKET_HEAD, &l, state, (int)n) == 1 &&
              EVP_CipherFinal_ex(ctx, out + TICKET_HEAD + n, &l) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, out + TICKET_HEAD + n) == 1;
    OPENSSL_cleanse(state, sizeof(state));
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? TICKET_HEAD + n + TAG : 0;
}

bool tls13_ticket_open(const unsigned char *ticket, size_t len, const struct tls13_suite *s,
                       const char *host, unsigned char *psk)
{
    struct tls_ticket_key k;
    if (len < TICKET_HEAD + 1 + TAG || len > TICKET_HEAD + TICKET_STATE_MAX + TAG ||
        !tls_tickets_find(ticket, &k))
        return false;
    unsigned char state[TICKET_STATE_MAX], tag[TAG];
    size_t n = len - TICKET_HEAD - TAG;
    memcpy(tag, ticket + len - TAG, TAG);
    EVP_CIPHER_CTX *ctx = ticket_cipher(&k, ticket + 16, 0);
    int l;
    bool ok = ctx && EVP_CipherUpdate(ctx, NULL, &l, ticket, TICKET_HEAD) == 1 &&
              EVP_CipherUpdate(ctx, state, &l, ticket + TICKET_HEAD, (int)n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) == 1 &&
              EVP_CipherFinal_ex(ctx, state + n, &l) == 1;
    OPENSSL_cleanse(&k, sizeof(k));
    size_t hl = tls13_hash_len(s->sha384);
    /* made by us, so well formed; checked all the same */
    if (ok)
        ok = n >= 5 + hl && state[0] == 1 && state[3] == hl &&
             suite_of((unsigned)state[1] << 8 | state[2]) &&
             suite_of((unsigned)state[1] << 8 | state[2])->sha384 == s->sha384 &&
             n == 5 + hl + state[4 + hl] && strlen(host) == state[4 + hl] &&
             strncasecmp(host, (const char *)state + 5 + hl, state[4 + hl]) == 0;
    if (ok)
        memcpy(psk, state + 4, hl);
    OPENSSL_cleanse(state, sizeof(state));
    return ok;
}
