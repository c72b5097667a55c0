/* tls13: detour's own TLS 1.3 server handshake and record layer (RFC 8446) for the common
 * ClientHello (tls13.h says which), on libcrypto's primitives: SHA-256/384 and ECDSA through
 * their direct functions, X25519 and the AEADs through EVP objects fetched once (all but
 * ECDSA in tls13_crypto.c). OpenSSL 3.0's libssl spends most of a handshake in allocations,
 * provider look-ups and locks around these (docs/https.md has the profile); here a
 * handshake is the cryptography, the messages written into one buffer and one send.
 *
 * What it does: a full handshake (ServerHello, EncryptedExtensions, Certificate,
 * CertificateVerify, Finished in one flight), resumption by its own tickets (psk_dhe_ke
 * only: forward secrecy kept; no early data ever), KeyUpdate, alerts, close_notify. Every
 * record is checked as RFC 8446 5 says; any fault ends the connection with the alert the
 * RFC names. */
#define OPENSSL_SUPPRESS_DEPRECATED /* EC_KEY, ECDSA_do_sign: no provider per call */
#include "tls/tls13_internal.h"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

enum {
    CIPHER_MAX = PLAIN_MAX + 256, /* a record's ciphertext (5.2) */
    RECORD_MAX = 5 + CIPHER_MAX,  /* with its header */
    HS_MAX = 64,      /* a client's handshake message after its ClientHello: Finished, KeyUpdate */
    TICKETS_FULL = 2, /* tickets after a full handshake: one each for two connections */
    TICKET_LIFETIME = 86400, /* seconds: a ticket key decrypts for 24 h after its last use */
    WRITE_RECORDS = 4,       /* records made by one write */
};

/* ---- ECDSA P-256 certificates ---------------------------------------------------------- */

struct tls13_cert {
    EC_KEY *key;
    unsigned char *msg; /* the Certificate message, whole */
    size_t len;
};

static void put24(unsigned char *p, size_t n)
{
    p[0] = (unsigned char)(n >> 16);
    p[1] = (unsigned char)(n >> 8);
    p[2] = (unsigned char)n;
}

struct tls13_cert *tls13_cert_new(X509 *leaf, STACK_OF(X509) * chain, EVP_PKEY *key)
{
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        return NULL;
    EC_KEY *ec = EVP_PKEY_get1_EC_KEY(key);
    if (!ec || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_X9_62_prime256v1) {
        EC_KEY_free(ec);
        return NULL;
    }
    int n = chain ? sk_X509_num(chain) : 0;
    size_t len = 4 + 1 + 3;
    /* a chain of over 16 KB (in one record with the rest of the flight) is the library's */
    for (int i = -1; i < n; i++) {
        int der = i2d_X509(i < 0 ? leaf : sk_X509_value(chain, i), NULL);
        if (der <= 0) {
            EC_KEY_free(ec);
            return NULL;
        }
        len += 3 + (size_t)der + 2;
    }
    if (len > 16000) {
        EC_KEY_free(ec);
        return NULL;
    }
    struct tls13_cert *c = dt_xcalloc(1, sizeof(*c));
    c->key = ec;
    c->msg = dt_xmalloc(len);
    c->len = len;
    unsigned char *p = c->msg;
    p[0] = 11; /* certificate */
    put24(p + 1, len - 4);
    p[4] = 0; /* certificate_request_context */
    put24(p + 5, len - 8);
    p += 8;
    for (int i = -1; i < n; i++) {
        unsigned char *der = p + 3;
        int dlen = i2d_X509(i < 0 ? leaf : sk_X509_value(chain, i), &der);
        put24(p, (size_t)dlen);
        p += 3 + dlen;
        p[0] = p[1] = 0; /* no extensions */
        p += 2;
    }
    return c;
}

void tls13_cert_free(struct tls13_cert *c)
{
    if (!c)
        return;
    EC_KEY_free(c->key);
    free(c->msg);
    free(c);
}

/* ---- the connection ------------------------------------------------------------------- */

enum state { HANDSHAKE, OPEN, FAILED };

struct tls13 {
    int fd;
    enum state state;
    bool resumed, h2, ccs_seen, closed;
    bool opened;   /* the handshake finished (the connection may have failed since) */
    bool closing;  /* the next write that takes all it is given is the last */
    bool notified; /* our close_notify is made: nothing more is written */
    enum dt_tls_failure failure;
    const struct tls13_suite *suite;
    char host[256]; /* the server name, for tickets */
    struct tls13_hash transcript;
    unsigned char c_secret[H_MAX], s_secret[H_MAX]; /* the traffic secrets in use */
    unsigned char c_ap[H_MAX];                      /* the client's, from its Finished on */
    unsigned char master[H_MAX];                    /* until the tickets are made */
    unsigned char ticket_random[TICKETS_FULL * 16]; /* each one's age_add and nonce */
    unsigned char client_finished[H_MAX];           /* what its Finished must say */
    struct tls13_aead rd, wr;
    unsigned char *in; /* bytes received, not yet a whole record */
    size_t in_len;
    unsigned char *plain; /* application data opened, not yet read */
    size_t plain_off, plain_len;
    unsigned char hs[HS_MAX]; /* a handshake message arriving over records */
    size_t hs_len;
    unsigned char *out; /* records made, not yet sent */
    size_t out_off, out_len;
    size_t owed; /* bytes of the caller's that those records carry: told once sent */
};

/* A thread's space for the records of one read and one write. */
static _Thread_local unsigned char in_space[2 * RECORD_MAX];
static _Thread_local unsigned char out_space[WRITE_RECORDS * SEAL_MAX + 4096];

static void fail(struct tls13 *t, enum dt_tls_failure why)
{
    if (t->state == HANDSHAKE)
        t->failure = why;
    t->state = FAILED;
}

/* Appends n bytes to the records waiting to be sent. */
static void queue(struct tls13 *t, const unsigned char *p, size_t n)
{
    if (t->out_off == t->out_len) {
        free(t->out);
        t->out = NULL;
        t->out_off = t->out_len = 0;
    }
    t->out = dt_xrealloc(t->out, t->out_len + n);
    memcpy(t->out + t->out_len, p, n);
    t->out_len += n;
}

/* Sends what waits: 0 when all is out, DT_TLS_WANT_WRITE, or DT_TLS_ERROR. */
static int flush(struct tls13 *t)
{
    while (t->out_off < t->out_len) {
        ssize_t r = send(t->fd, t->out + t->out_off, t->out_len - t->out_off, MSG_NOSIGNAL);
        if (r > 0) {
            t->out_off += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return DT_TLS_WANT_WRITE;
        } else {
            fail(t, DT_TLS_FAIL_CLOSED);
            return DT_TLS_ERROR;
        }
    }
    free(t->out);
    t->out = NULL;
    t->out_off = t->out_len = 0;
    return 0;
}

/* Sends n bytes at p, queueing what the socket does not take: false if the connection
 * failed. */
static bool send_or_queue(struct tls13 *t, const unsigned char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(t->fd, p + done, n - done, MSG_NOSIGNAL);
        if (r > 0) {
            done += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            fail(t, DT_TLS_FAIL_CLOSED);
            return false;
        }
    }
    if (done < n)
        queue(t, p + done, n - done);
    return true;
}

/* Ends the connection with a fatal alert (best effort), protected once the ServerHello is
 * out (it always is here). */
static ssize_t alert(struct tls13 *t, unsigned code, enum dt_tls_failure why)
{
    if (t->state != FAILED && t->wr.ctx) {
        /* after what waits (tickets): records go in the order they were sealed */
        unsigned char body[2] = {2, (unsigned char)code}, rec[5 + 2 + 1 + TAG];
        size_t n = tls13_seal(&t->wr, 21, body, 2, rec);
        if (n && flush(t) == 0)
            (void)send(t->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    fail(t, why);
    return DT_TLS_ERROR;
}

/* ---- the handshake ------------------------------------------------------------------- */

bool tls13_can(const struct tls13_offer *o, bool h2)
{
    return o->ok && o->v13 && o->nsuites && o->x25519 && o->ecdsa_p256 &&
           o->null_compression_only && !o->early_data &&
           (!o->has_alpn || o->alpn_http11 || (h2 && o->alpn_h2));
}

/* The offer's PSK when one of its tickets is ours, for its suite and name and its binder
 * right: 1 with psk and *index, 0 for none (a full handshake), or the alert to send. */
static int find_psk(const struct tls13 *t, const struct tls13_offer *o, const unsigned char *hello,
                    unsigned char *psk, unsigned *index)
{
    if (!o->identities || !o->psk_dhe)
        return 0;
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    const unsigned char *ids = o->identities, *binders = o->binders;
    size_t ileft = o->identities_len, bleft = o->binders_len;
    for (unsigned i = 0; ileft >= 2; i++) {
        size_t len = tls_get16(ids);
        if (len == 0 || ileft < 2 + len + 4 || bleft < 1 || bleft < 1u + binders[0])
            return DECODE_ERROR;
        const unsigned char *ticket = ids + 2, *binder = binders + 1;
        size_t blen = binders[0];
        ids += 2 + len + 4;
        ileft -= 2 + len + 4;
        binders += 1 + blen;
        bleft -= 1 + blen;
        if (!tls13_ticket_open(ticket, len, t->suite, t->host, psk))
            continue;
        if (blen != hl)
            return ILLEGAL_PARAMETER;
        /* binder = HMAC(finished key of "res binder", hash of the ClientHello up to the
         * binders) (RFC 8446 4.2.11.2) */
        unsigned char zeros[H_MAX] = {0}, early[H_MAX], binder_key[H_MAX], fk[H_MAX], th[H_MAX],
                      want[H_MAX], empty[H_MAX];
        struct tls13_hash h;
        tls13_hash_init(&h, sha384);
        tls13_hash_final(&h, empty);
        tls13_hmac(sha384, zeros, hl, psk, hl, early);
        tls13_derive_secret(sha384, early, "res binder", empty, binder_key);
        tls13_expand_label(sha384, binder_key, "finished", NULL, 0, fk, hl);
        tls13_hash_init(&h, sha384);
        tls13_hash_update(&h, hello, 4 + o->binders_at);
        tls13_hash_final(&h, th);
        tls13_hmac(sha384, fk, hl, th, hl, want);
        bool right = CRYPTO_memcmp(want, binder, hl) == 0;
        OPENSSL_cleanse(early, sizeof(early));
        OPENSSL_cleanse(binder_key, sizeof(binder_key));
        OPENSSL_cleanse(fk, sizeof(fk));
        if (!right)
            return DECRYPT_ERROR;
        *index = i;
        return 1;
    }
    return ileft || bleft ? DECODE_ERROR : 0;
}

static size_t put_msg_head(unsigned char *p, unsigned type, size_t len)
{
    p[0] = (unsigned char)type;
    put24(p + 1, len);
    return 4;
}

/* ServerHello into p: its length. */
static size_t server_hello(const struct tls13 *t, const struct tls13_offer *o,
                           const unsigned char *random, const unsigned char *pub, bool psk,
                           unsigned index, unsigned char *p)
{
    size_t at = 4;
    p[at++] = 3;
    p[at++] = 3;
    memcpy(p + at, random, 32);
    at += 32;
    p[at++] = (unsigned char)o->sidlen;
    memcpy(p + at, o->sid, o->sidlen);
    at += o->sidlen;
    p[at++] = (unsigned char)(t->suite->id >> 8);
    p[at++] = (unsigned char)t->suite->id;
    p[at++] = 0; /* compression */
    size_t exts = at;
    at += 2;
    static const unsigned char versions[] = {0x00, 0x2b, 0x00, 0x02, 0x03, 0x04};
    memcpy(p + at, versions, sizeof(versions));
    at += sizeof(versions);
    static const unsigned char share[] = {0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20};
    memcpy(p + at, share, sizeof(share));
    memcpy(p + at + sizeof(share), pub, 32);
    at += sizeof(share) + 32;
    if (psk) {
        unsigned char ext[] = {
            0x00, 0x29, 0x00, 0x02, (unsigned char)(index >> 8), (unsigned char)index};
        memcpy(p + at, ext, sizeof(ext));
        at += sizeof(ext);
    }
    p[exts] = (unsigned char)((at - exts - 2) >> 8);
    p[exts + 1] = (unsigned char)(at - exts - 2);
    put_msg_head(p, 2, at - 4);
    return at;
}

/* EncryptedExtensions into p: its length. */
static size_t encrypted_extensions(const struct tls13_offer *o, bool sni_ack, const char *alpn,
                                   unsigned char *p)
{
    size_t at = 6;
    if (sni_ack) {
        memset(p + at, 0, 4);
        at += 4;
    }
    if (o->has_alpn) {
        size_t n = strlen(alpn);
        unsigned char head[] = {0x00,
                                0x10,
                                0x00,
                                (unsigned char)(n + 3),
                                0x00,
                                (unsigned char)(n + 1),
                                (unsigned char)n};
        memcpy(p + at, head, sizeof(head));
        memcpy(p + at + sizeof(head), alpn, n);
        at += sizeof(head) + n;
    }
    p[4] = (unsigned char)((at - 6) >> 8);
    p[5] = (unsigned char)(at - 6);
    put_msg_head(p, 8, at - 4);
    return at;
}

/* CertificateVerify into p (room for 4 + 4 + 72): its length, or 0. */
static size_t certificate_verify(const struct tls13 *t, const struct tls13_cert *cert,
                                 unsigned char *p)
{
    static const char context[] = "TLS 1.3, server CertificateVerify";
    unsigned char content[64 + sizeof(context) + H_MAX], digest[32];
    size_t hl = tls13_hash_len(t->suite->sha384);
    memset(content, 0x20, 64);
    memcpy(content + 64, context, sizeof(context)); /* with its 0 */
    tls13_hash_now(&t->transcript, content + 64 + sizeof(context));
    SHA256(content, 64 + sizeof(context) + hl, digest);
    ECDSA_SIG *sig = ECDSA_do_sign(digest, sizeof(digest), cert->key);
    if (!sig)
        return 0;
    unsigned char *der = p + 8;
    int n = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (n <= 0 || n > 72)
        return 0;
    p[4] = 0x04;
    p[5] = 0x03; /* ecdsa_secp256r1_sha256 */
    p[6] = 0;
    p[7] = (unsigned char)n;
    put_msg_head(p, 15, 4 + (size_t)n);
    return 8 + (size_t)n;
}

/* Finished for the base secret into p: its length. */
static size_t finished(const struct tls13 *t, const unsigned char *base, unsigned char *p)
{
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    unsigned char fk[H_MAX], th[H_MAX];
    tls13_expand_label(sha384, base, "finished", NULL, 0, fk, hl);
    tls13_hash_now(&t->transcript, th);
    tls13_hmac(sha384, fk, hl, th, hl, p + 4);
    OPENSSL_cleanse(fk, sizeof(fk));
    put_msg_head(p, 20, hl);
    return 4 + hl;
}

static void add(struct tls13 *t, const unsigned char *msg, size_t len)
{
    tls13_hash_update(&t->transcript, msg, len);
}

/* Makes and sends the server's flight: false with an alert (a plaintext one: no keys yet)
 * when it cannot be. */
static bool first_flight(struct tls13 *t, const struct tls13_offer *o, const unsigned char *hello,
                         size_t hello_len, const struct tls13_cert *cert, bool sni_ack)
{
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    unsigned char psk[H_MAX] = {0}, zeros[H_MAX] = {0}, empty[H_MAX], shared[32], pub[32],
                  secret[H_MAX], derived[H_MAX], th[H_MAX], random[64 + sizeof(t->ticket_random)];
    unsigned index = 0, code = INTERNAL_ERROR;
    struct tls13_hash h;
    tls13_hash_init(&h, sha384);
    tls13_hash_final(&h, empty);
    int found = find_psk(t, o, hello, psk, &index);
    if (found > 1) {
        code = (unsigned)found;
        goto fail;
    }
    t->resumed = found == 1;
    /* one call for the connection's randomness: our X25519 key, ServerHello.random, and
     * what the tickets will need */
    if (RAND_bytes(random, sizeof(random)) != 1)
        goto fail;
    memcpy(t->ticket_random, random + 64, sizeof(t->ticket_random));
    if (!tls13_x25519(random, o->x25519, pub, shared)) {
        code = ILLEGAL_PARAMETER;
        goto fail;
    }
    tls13_hash_init(&t->transcript, sha384);
    add(t, hello, hello_len);

    unsigned char *out = out_space;
    size_t at = 5;
    size_t n = server_hello(t, o, random + 32, pub, t->resumed, index, out + at);
    add(t, out + at, n);
    out[0] = 22;
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)(n >> 8);
    out[4] = (unsigned char)n;
    at += n;
    if (o->sidlen) { /* middlebox compatibility (RFC 8446 D.4) */
        static const unsigned char ccs[] = {20, 3, 3, 0, 1, 1};
        memcpy(out + at, ccs, sizeof(ccs));
        at += sizeof(ccs);
    }

    /* the key schedule (RFC 8446 7.1) up to the handshake traffic secrets */
    tls13_hmac(sha384, zeros, hl, psk, hl, secret); /* early secret */
    tls13_derive_secret(sha384, secret, "derived", empty, derived);
    tls13_hmac(sha384, derived, hl, shared, sizeof(shared), secret); /* handshake secret */
    tls13_hash_now(&t->transcript, th);
    tls13_derive_secret(sha384, secret, "c hs traffic", th, t->c_secret);
    tls13_derive_secret(sha384, secret, "s hs traffic", th, t->s_secret);
    tls13_derive_secret(sha384, secret, "derived", empty, derived);
    tls13_hmac(sha384, derived, hl, zeros, hl, t->master);
    if (!tls13_aead_key(&t->wr, t->suite, t->s_secret, 1) ||
        !tls13_aead_key(&t->rd, t->suite, t->c_secret, 0))
        goto fail;

    /* EncryptedExtensions, Certificate, CertificateVerify, Finished: one plaintext */
    size_t cap = 512 + (t->resumed ? 0 : cert->len), len = 0;
    unsigned char *plain = cap <= 4096 ? out_space + sizeof(out_space) - 4096 : dt_xmalloc(cap);
    n = encrypted_extensions(o, sni_ack, t->h2 ? "h2" : "http/1.1", plain);
    add(t, plain, n);
    len += n;
    if (!t->resumed) {
        memcpy(plain + len, cert->msg, cert->len);
        add(t, plain + len, cert->len);
        len += cert->len;
        n = certificate_verify(t, cert, plain + len);
        if (!n) {
            if (plain != out_space + sizeof(out_space) - 4096)
                free(plain);
            goto fail;
        }
        add(t, plain + len, n);
        len += n;
    }
    n = finished(t, t->s_secret, plain + len);
    add(t, plain + len, n);
    len += n;
    size_t sealed = 0;
    if (at + len + (len / PLAIN_MAX + 1) * (5 + 1 + TAG) <= sizeof(out_space) - 4096)
        sealed = tls13_seal_all(&t->wr, 22, plain, len, out + at);
    if (plain != out_space + sizeof(out_space) - 4096)
        free(plain);
    if (!sealed)
        goto fail;
    at += sealed;

    /* the application traffic secrets, from the transcript up to our Finished */
    tls13_hash_now(&t->transcript, th);
    tls13_derive_secret(sha384, t->master, "c ap traffic", th, t->c_ap);
    tls13_derive_secret(sha384, t->master, "s ap traffic", th, t->s_secret);
    {
        unsigned char fk[H_MAX];
        tls13_expand_label(sha384, t->c_secret, "finished", NULL, 0, fk, hl);
        tls13_hmac(sha384, fk, hl, th, hl, t->client_finished);
        OPENSSL_cleanse(fk, sizeof(fk));
    }
    if (!tls13_aead_key(&t->wr, t->suite, t->s_secret, 1))
        goto fail;
    OPENSSL_cleanse(psk, sizeof(psk));
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(derived, sizeof(derived));
    OPENSSL_cleanse(random, sizeof(random));
    return send_or_queue(t, out, at);
fail:
    OPENSSL_cleanse(random, sizeof(random));
    OPENSSL_cleanse(psk, sizeof(psk));
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(derived, sizeof(derived));
    {
        unsigned char rec[] = {21, 3, 3, 0, 2, 2, (unsigned char)code};
        (void)send(t->fd, rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    fail(t, code == HANDSHAKE_FAILURE ? DT_TLS_FAIL_CIPHER : DT_TLS_FAIL_OTHER);
    return false;
}

struct tls13 *tls13_start(int fd, const struct tls13_offer *o, const unsigned char *hello,
                          size_t hello_len, const struct tls13_cert *cert, bool sni_ack, bool h2,
                          const unsigned char *rest, size_t rest_len)
{
    tls13_crypto_init();
    struct tls13 *t = dt_xcalloc(1, sizeof(*t));
    t->fd = fd;
    t->failure = DT_TLS_FAIL_OTHER;
    t->state = HANDSHAKE;
    t->suite = tls13_pick_suite(o);
    /* ALPN: h2 first when we speak it, else http/1.1 (tls13_can saw one is there) */
    t->h2 = o->has_alpn && h2 && o->alpn_h2;
    snprintf(t->host, sizeof(t->host), "%s", o->host);
    if (rest_len) {
        t->in = dt_xmalloc(rest_len);
        memcpy(t->in, rest, rest_len);
        t->in_len = rest_len;
    }
    (void)first_flight(t, o, hello, hello_len, cert, sni_ack);
    return t;
}

void tls13_free(struct tls13 *t)
{
    if (!t)
        return;
    EVP_CIPHER_CTX_free(t->rd.ctx);
    EVP_CIPHER_CTX_free(t->wr.ctx);
    free(t->in);
    free(t->plain);
    free(t->out);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

/* ---- after the flight: records in ------------------------------------------------------ */

/* The NewSessionTicket messages, sealed and queued for the next write (they go out with
 * the first answer): count of them. */
static void make_tickets(struct tls13 *t, const unsigned char *resumption, unsigned count)
{
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    unsigned char
        msgs[TICKETS_FULL * (4 + 4 + 4 + 2 + 2 + TICKET_HEAD + TICKET_STATE_MAX + TAG + 2)];
    const unsigned char *random = t->ticket_random;
    size_t len = 0;
    if (count > TICKETS_FULL)
        return;
    for (unsigned i = 0; i < count; i++) {
        unsigned char nonce = (unsigned char)i, psk[H_MAX], *m = msgs + len;
        tls13_expand_label(sha384, resumption, "resumption", &nonce, 1, psk, hl);
        size_t at = 4;
        m[at++] = (unsigned char)(TICKET_LIFETIME >> 24);
        m[at++] = (unsigned char)(TICKET_LIFETIME >> 16);
        m[at++] = (unsigned char)(TICKET_LIFETIME >> 8);
        m[at++] = (unsigned char)TICKET_LIFETIME;
        memcpy(m + at, random + 16 * i, 4); /* ticket_age_add */
        at += 4;
        m[at++] = 1;
        m[at++] = nonce;
        size_t tlen = tls13_ticket_make(t->suite, t->host, psk, random + 16 * i + 4, m + at + 2);
        OPENSSL_cleanse(psk, sizeof(psk));
        if (!tlen)
            break;
        m[at++] = (unsigned char)(tlen >> 8);
        m[at++] = (unsigned char)tlen;
        at += tlen;
        m[at++] = 0;
        m[at++] = 0; /* no extensions: no early data */
        put_msg_head(m, 4, at - 4);
        len += at;
    }
    unsigned char rec[sizeof(msgs) + 5 + 1 + TAG];
    size_t n = len ? tls13_seal(&t->wr, 22, msgs, len, rec) : 0;
    if (n)
        queue(t, rec, n);
}

/* The client's Finished, whole in msg: 0, or the alert to send. */
static int client_finished(struct tls13 *t, const unsigned char *msg, size_t len)
{
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    if (msg[0] != 20)
        return UNEXPECTED_MESSAGE;
    if (len != 4 + hl)
        return DECODE_ERROR;
    if (CRYPTO_memcmp(msg + 4, t->client_finished, hl) != 0)
        return DECRYPT_ERROR;
    add(t, msg, len);
    unsigned char th[H_MAX], resumption[H_MAX];
    tls13_hash_now(&t->transcript, th);
    tls13_derive_secret(sha384, t->master, "res master", th, resumption);
    OPENSSL_cleanse(t->master, sizeof(t->master));
    memcpy(t->c_secret, t->c_ap, hl);
    OPENSSL_cleanse(t->c_ap, sizeof(t->c_ap));
    if (!tls13_aead_key(&t->rd, t->suite, t->c_secret, 0))
        return INTERNAL_ERROR;
    t->state = OPEN;
    t->opened = true;
    /* Nothing goes back now (the tickets wait for the first answer): acknowledge the
     * Finished at once, or a client with Nagle on holds its request behind it until the
     * delayed ACK (40 ms) */
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    if (tls_tickets_any())
        make_tickets(t, resumption, t->resumed ? 1 : TICKETS_FULL);
    OPENSSL_cleanse(resumption, sizeof(resumption));
    return 0;
}

/* A KeyUpdate (RFC 8446 4.6.3): 0, or the alert to send. */
static int key_update(struct tls13 *t, const unsigned char *msg, size_t len)
{
    bool sha384 = t->suite->sha384;
    size_t hl = tls13_hash_len(sha384);
    if (len != 5)
        return DECODE_ERROR;
    if (msg[4] > 1)
        return ILLEGAL_PARAMETER;
    unsigned char next[H_MAX];
    tls13_expand_label(sha384, t->c_secret, "traffic upd", NULL, 0, next, hl);
    memcpy(t->c_secret, next, hl);
    if (!tls13_aead_key(&t->rd, t->suite, t->c_secret, 0))
        return INTERNAL_ERROR;
    if (msg[4] == 1) { /* update_requested: ours, under the old key, then the new key */
        unsigned char ku[5] = {24, 0, 0, 1, 0}, rec[5 + 5 + 1 + TAG];
        size_t n = tls13_seal(&t->wr, 22, ku, sizeof(ku), rec);
        if (!n)
            return INTERNAL_ERROR;
        queue(t, rec, n);
        tls13_expand_label(sha384, t->s_secret, "traffic upd", NULL, 0, next, hl);
        memcpy(t->s_secret, next, hl);
        if (!tls13_aead_key(&t->wr, t->suite, t->s_secret, 1))
            return INTERNAL_ERROR;
    }
    OPENSSL_cleanse(next, sizeof(next));
    return 0;
}

/* Handshake bytes: 0, or the alert to send. A message must end where its record does when
 * keys change after it (RFC 8446 5.1): both of the messages read here change them. */
static int handshake_bytes(struct tls13 *t, const unsigned char *p, size_t n)
{
    if (n == 0)
        return UNEXPECTED_MESSAGE; /* no zero-length handshake records */
    if (t->hs_len + n > sizeof(t->hs))
        return UNEXPECTED_MESSAGE; /* nothing we read is this long */
    memcpy(t->hs + t->hs_len, p, n);
    t->hs_len += n;
    if (t->hs_len < 4)
        return 0;
    size_t len = 4 + ((size_t)t->hs[1] << 16 | (size_t)t->hs[2] << 8 | t->hs[3]);
    if (len > sizeof(t->hs))
        return t->hs[0] == 20 || t->hs[0] == 24 ? DECODE_ERROR : UNEXPECTED_MESSAGE;
    if (t->hs_len < len)
        return 0;
    if (t->hs_len > len)
        return UNEXPECTED_MESSAGE; /* another message after one that changes keys */
    t->hs_len = 0;
    if (t->state == HANDSHAKE)
        return client_finished(t, t->hs, len);
    if (t->hs[0] == 24)
        return key_update(t, t->hs, len);
    return UNEXPECTED_MESSAGE;
}

/* Why a handshake failed, by the client's alert. */
static enum dt_tls_failure failure_of_alert(unsigned code)
{
    switch (code) {
    case PROTOCOL_VERSION:
        return DT_TLS_FAIL_PROTOCOL;
    case HANDSHAKE_FAILURE:
    case INSUFFICIENT_SECURITY:
        return DT_TLS_FAIL_CIPHER;
    }
    return DT_TLS_FAIL_OTHER;
}

/* One whole record (header at rec, len bytes after): > 0 bytes of application data put at
 * buf (at most n; the rest kept), 0 when there was none, or DT_TLS_ERROR. At the client's
 * close_notify, t->closed. */
static ssize_t record(struct tls13 *t, unsigned char *rec, size_t len, unsigned char *buf, size_t n)
{
    unsigned type = rec[0];
    if (type == 20) { /* change_cipher_spec: once, during the handshake, dropped */
        if (t->state != HANDSHAKE || t->ccs_seen || len != 1 || rec[5] != 1)
            return alert(t, UNEXPECTED_MESSAGE, DT_TLS_FAIL_OTHER);
        t->ccs_seen = true;
        return 0;
    }
    if (type == 21 && t->state == HANDSHAKE && len == 2) { /* it could not read our hello */
        fail(t, failure_of_alert(rec[6]));
        return DT_TLS_ERROR;
    }
    if (type != 23)
        return alert(t, UNEXPECTED_MESSAGE, DT_TLS_FAIL_OTHER);
    size_t plen;
    int a = tls13_open_record(&t->rd, rec, len, &type, &plen);
    if (a)
        return alert(t, (unsigned)a, DT_TLS_FAIL_OTHER);
    unsigned char *p = rec + 5;
    switch (type) {
    case 22:
        a = handshake_bytes(t, p, plen);
        return a ? alert(t, (unsigned)a, DT_TLS_FAIL_OTHER) : 0;
    case 21:
        if (plen != 2)
            return alert(t, DECODE_ERROR, DT_TLS_FAIL_OTHER);
        if (p[1] == CLOSE_NOTIFY && t->state == HANDSHAKE) {
            fail(t, DT_TLS_FAIL_CLOSED);
            return DT_TLS_ERROR;
        }
        if (p[1] == CLOSE_NOTIFY) {
            t->closed = true;
            return 0;
        }
        if (p[1] == USER_CANCELED)
            return 0;
        fail(t, t->state == HANDSHAKE ? failure_of_alert(p[1]) : DT_TLS_FAIL_OTHER);
        return DT_TLS_ERROR;
    case 23:
        if (t->state != OPEN || t->hs_len)
            return alert(t, UNEXPECTED_MESSAGE, DT_TLS_FAIL_OTHER);
        if (plen <= n) {
            memcpy(buf, p, plen);
            return (ssize_t)plen;
        }
        memcpy(buf, p, n);
        t->plain = dt_xmalloc(plen - n);
        memcpy(t->plain, p + n, plen - n);
        t->plain_off = 0;
        t->plain_len = plen - n;
        return (ssize_t)n;
    }
    return alert(t, UNEXPECTED_MESSAGE, DT_TLS_FAIL_OTHER);
}

ssize_t tls13_read(struct tls13 *t, void *buf, size_t n)
{
    if (t->state == FAILED)
        return DT_TLS_ERROR;
    if (t->state == HANDSHAKE && t->out_off < t->out_len) {
        int f = flush(t); /* the flight first */
        if (f)
            return f;
    }
    if (t->plain_len) {
        size_t k = t->plain_len - t->plain_off < n ? t->plain_len - t->plain_off : n;
        memcpy(buf, t->plain + t->plain_off, k);
        t->plain_off += k;
        if (t->plain_off == t->plain_len) {
            free(t->plain);
            t->plain = NULL;
            t->plain_off = t->plain_len = 0;
        }
        return (ssize_t)k;
    }
    if (t->closed)
        return 0;
    /* the bytes kept from before, then what the socket has */
    unsigned char *space = in_space;
    size_t have = t->in_len, at = 0;
    if (have)
        memcpy(space, t->in, have);
    free(t->in);
    t->in = NULL;
    t->in_len = 0;
    ssize_t got = 0;
    for (;;) {
        while (have - at >= 5) {
            size_t len = tls_get16(space + at + 3);
            if (len > CIPHER_MAX) {
                got = alert(t, RECORD_OVERFLOW, DT_TLS_FAIL_OTHER);
                goto out;
            }
            if (have - at < 5 + len)
                break;
            got = record(t, space + at, len, buf, n);
            at += 5 + len;
            if (got != 0 || t->closed || t->state == FAILED)
                goto out;
        }
        if (at) { /* move the part of a record to the front */
            memmove(space, space + at, have - at);
            have -= at;
            at = 0;
        }
        if (have == sizeof(in_space)) { /* cannot be: two records fit, a part is left */
            got = alert(t, INTERNAL_ERROR, DT_TLS_FAIL_OTHER);
            goto out;
        }
        ssize_t r = recv(t->fd, space + have, sizeof(in_space) - have, 0);
        if (r > 0) {
            have += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            got = DT_TLS_WANT_READ;
            break;
        }
        /* the client went away: the end of the stream once established, a failure before */
        if (t->state == HANDSHAKE) {
            fail(t, DT_TLS_FAIL_CLOSED);
            got = DT_TLS_ERROR;
        } else {
            t->closed = true;
            got = 0;
        }
        break;
    }
out:
    if (t->state != FAILED && have > at) {
        t->in = dt_xmalloc(have - at);
        memcpy(t->in, space + at, have - at);
        t->in_len = have - at;
    }
    if (got != 0 || t->closed)
        return got;
    return t->state == FAILED ? DT_TLS_ERROR : DT_TLS_WANT_READ;
}

/* ---- records out ------------------------------------------------------------------------ */

ssize_t tls13_write(struct tls13 *t, const void *buf, size_t n)
{
    if (t->state == FAILED)
        return DT_TLS_ERROR;
    if (t->state != OPEN)
        return DT_TLS_WANT_READ;
    if (t->owed) { /* records of an earlier call, partly sent: those bytes again */
        int f = flush(t);
        if (f)
            return f;
        size_t owed = t->owed < n ? t->owed : n;
        t->owed = 0;
        return (ssize_t)owed;
    }
    /* what waits (tickets, a KeyUpdate), then these bytes' records, in one send */
    unsigned char *out = out_space;
    size_t at = 0, waiting = t->out_len - t->out_off;
    if (waiting > sizeof(out_space) - WRITE_RECORDS * SEAL_MAX) {
        int f = flush(t);
        if (f)
            return f;
        waiting = 0;
    }
    if (waiting)
        memcpy(out, t->out + t->out_off, waiting);
    at = waiting;
    size_t take = n < WRITE_RECORDS * PLAIN_MAX ? n : WRITE_RECORDS * PLAIN_MAX;
    if (t->notified)
        return DT_TLS_ERROR;
    size_t sealed = tls13_seal_all(&t->wr, 23, buf, take, out + at);
    if (!sealed)
        return alert(t, INTERNAL_ERROR, DT_TLS_FAIL_OTHER);
    at += sealed;
    if (t->closing && take == n) { /* the last bytes: close_notify in the same send */
        unsigned char body[2] = {1, CLOSE_NOTIFY};
        size_t k = tls13_seal(&t->wr, 21, body, 2, out + at);
        if (k) {
            at += k;
            t->notified = true;
        }
    }
    free(t->out);
    t->out = NULL;
    t->out_off = t->out_len = 0;
    if (!send_or_queue(t, out, at))
        return DT_TLS_ERROR;
    if (t->out_len) {
        t->owed = take;
        return DT_TLS_WANT_WRITE;
    }
    return (ssize_t)take;
}

void tls13_closing(struct tls13 *t)
{
    t->closing = true;
}

void tls13_close_notify(struct tls13 *t)
{
    if (t->state != OPEN || t->notified)
        return;
    t->notified = true;
    unsigned char body[2] = {1, CLOSE_NOTIFY}, rec[5 + 2 + 1 + TAG];
    size_t n = tls13_seal(&t->wr, 21, body, 2, rec);
    if (n && (t->out_off == t->out_len || flush(t) == 0))
        (void)send(t->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool tls13_established(const struct tls13 *t)
{
    return t->opened;
}

bool tls13_resumed(const struct tls13 *t)
{
    return t->resumed;
}

bool tls13_h2(const struct tls13 *t)
{
    return t->h2;
}

enum dt_tls_failure tls13_failure(const struct tls13 *t)
{
    return t->failure;
}
