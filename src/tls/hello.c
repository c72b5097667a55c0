/* hello: a ClientHello's offers (RFC 8446 4.1.2), read from its bytes with every read
 * bounds-checked: for a backend that picks a certificate and a protocol itself before its
 * library sees the handshake (tls_wolfssl.c). Library-independent; fuzzed by fuzz_hello. */
#include "tls/internal.h"

#include <errno.h>
#include <sys/socket.h>

unsigned tls_get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* The key type of one of our TLS 1.2 suites, or -1 for another suite. */
int tls_suite_type(unsigned suite)
{
    switch (suite) {
    case 0xc02b: /* ECDHE-ECDSA-AES128-GCM-SHA256 */
    case 0xc02c: /* ECDHE-ECDSA-AES256-GCM-SHA384 */
    case 0xcca9: /* ECDHE-ECDSA-CHACHA20-POLY1305 */
        return TLS_KEY_EC;
    case 0xc02f: /* ECDHE-RSA-AES128-GCM-SHA256 */
    case 0xc030: /* ECDHE-RSA-AES256-GCM-SHA384 */
    case 0xcca8: /* ECDHE-RSA-CHACHA20-POLY1305 */
        return TLS_KEY_RSA;
    }
    return -1;
}

/* A cursor over a ClientHello's bytes: every read is bounds-checked, and a short read sets
 * bad. */
struct cursor {
    const unsigned char *p;
    size_t left;
    bool bad;
};

static const unsigned char *take(struct cursor *c, size_t n)
{
    if (c->bad || c->left < n) {
        c->bad = true;
        return NULL;
    }
    const unsigned char *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static unsigned take8(struct cursor *c)
{
    const unsigned char *p = take(c, 1);
    return p ? p[0] : 0;
}

static unsigned take16(struct cursor *c)
{
    const unsigned char *p = take(c, 2);
    return p ? tls_get16(p) : 0;
}

/* A sub-cursor of n bytes. */
static struct cursor sub(struct cursor *c, size_t n)
{
    const unsigned char *p = take(c, n);
    return (struct cursor){.p = p, .left = p ? n : 0, .bad = !p};
}

static void parse_sni(struct cursor e, struct tls_hello *h)
{
    struct cursor list = sub(&e, take16(&e));
    while (!list.bad && list.left > 0) {
        unsigned type = take8(&list);
        size_t len = take16(&list);
        const unsigned char *name = take(&list, len);
        if (name && type == 0 && len > 0 && len < sizeof(h->host) && !h->host[0]) {
            memcpy(h->host, name, len);
            h->host[len] = '\0';
            if (memchr(h->host, '\0', len)) /* not a host name */
                h->host[0] = '\0';
        }
    }
}

static void parse_alpn(struct cursor e, struct tls_hello *h)
{
    struct cursor list = sub(&e, take16(&e));
    h->has_alpn = true;
    while (!list.bad && list.left > 0) {
        size_t len = take8(&list);
        const unsigned char *p = take(&list, len);
        if (p && len == 2 && !memcmp(p, "h2", 2))
            h->alpn_h2 = true;
        if (p && len == 8 && !memcmp(p, "http/1.1", 8))
            h->alpn_http11 = true;
        if (p && len == 10 && !memcmp(p, "acme-tls/1", 10))
            h->alpn_acme = true;
    }
}

/* A ClientHello's body (after its 4-byte header). False if it is not one. */
bool tls_hello_parse(const unsigned char *body, size_t len, struct tls_hello *h)
{
    memset(h, 0, sizeof(*h));
    struct cursor c = {.p = body, .left = len};
    take(&c, 2 + 32);    /* legacy_version, random */
    take(&c, take8(&c)); /* legacy_session_id */
    struct cursor suites = sub(&c, take16(&c));
    take(&c, take8(&c)); /* legacy_compression_methods */
    while (!suites.bad && suites.left >= 2) {
        unsigned s = take16(&suites);
        if (tls_suite_type(s) >= 0 && h->nsuites < sizeof(h->suites) / sizeof(h->suites[0]))
            h->suites[h->nsuites++] = (uint16_t)s;
    }
    if (c.bad)
        return false;
    struct cursor exts = sub(&c, c.left >= 2 ? take16(&c) : 0);
    while (!exts.bad && exts.left >= 4) {
        unsigned type = take16(&exts);
        struct cursor e = sub(&exts, take16(&exts));
        if (e.bad)
            break;
        if (type == 0x0000) {
            parse_sni(e, h);
        } else if (type == 0x000d) {
            struct cursor list = sub(&e, take16(&e));
            h->has_sigalgs = true;
            while (!list.bad && list.left >= 2) {
                unsigned a = take16(&list);
                if (h->nsigalgs < sizeof(h->sigalgs) / sizeof(h->sigalgs[0]))
                    h->sigalgs[h->nsigalgs++] = (uint16_t)a;
            }
        } else if (type == 0x000a) {
            struct cursor list = sub(&e, take16(&e));
            h->has_groups = true;
            while (!list.bad && list.left >= 2) {
                unsigned g = take16(&list);
                if (h->ngroups < sizeof(h->groups) / sizeof(h->groups[0]))
                    h->groups[h->ngroups++] = (uint16_t)g;
            }
        } else if (type == 0x002b) {
            struct cursor list = sub(&e, take8(&e));
            while (!list.bad && list.left >= 2)
                if (take16(&list) == 0x0304)
                    h->tls13 = true;
        } else if (type == 0x0010) {
            parse_alpn(e, h);
        }
    }
    return !exts.bad;
}

/* What the first bytes of a connection are: not TLS (plain HTTP, a proxy's CONNECT, other
 * bytes: told apart as OpenSSL does), a ClientHello whose end has yet to come, one that is
 * all here (body and len set: its bytes after the handshake header, in *copy if it spans
 * records), or anything else, for wolfSSL to refuse. */
enum tls_first tls_first_scan(const unsigned char *p, size_t len, const unsigned char **body,
                              size_t *blen, unsigned char **copy)
{
    if (len < 5)
        return TLS_FIRST_MORE;
    if (!memcmp(p, "GET ", 4) || !memcmp(p, "POST ", 5) || !memcmp(p, "HEAD ", 5) ||
        !memcmp(p, "PUT ", 4))
        return TLS_FIRST_HTTP;
    if (!memcmp(p, "CONNE", 5))
        return TLS_FIRST_CONNECT;
    if (p[1] != 3)
        return TLS_FIRST_NOT_TLS;
    /* handshake records, until the first message (a ClientHello) is whole */
    size_t off = 0, have = 0, need = 0;
    while (off + 5 <= len) {
        size_t rlen = tls_get16(p + off + 3);
        if (p[off] != 22 || rlen == 0 || rlen > 16384)
            return TLS_FIRST_OTHER;
        if (off + 5 + rlen > len)
            return off + 5 + rlen > TLS_HELLO_MAX ? TLS_FIRST_OTHER : TLS_FIRST_MORE;
        if (off == 0) {
            if (rlen < 4 || p[5] != 1)
                return TLS_FIRST_OTHER;
            need = 4 + ((size_t)p[6] << 16 | (size_t)p[7] << 8 | p[8]);
            if (need > TLS_HELLO_MAX)
                return TLS_FIRST_OTHER;
        }
        have += rlen;
        off += 5 + rlen;
        if (have < need)
            continue;
        if (off == 5 + rlen) { /* in the first record */
            *body = p + 9;
            *blen = need - 4;
            return TLS_FIRST_HELLO;
        }
        unsigned char *b = dt_xmalloc(have);
        size_t at = 0;
        for (size_t o = 0; o < off; o += 5 + tls_get16(p + o + 3)) {
            memcpy(b + at, p + o + 5, tls_get16(p + o + 3));
            at += tls_get16(p + o + 3);
        }
        *copy = b;
        *body = b + 4;
        *blen = need - 4;
        return TLS_FIRST_HELLO;
    }
    return TLS_FIRST_MORE;
}

/* ---- what a TLS 1.3 ClientHello offers, for detour's own handshake (tls13.c) ---------- */

/* The extensions a TLS 1.3 handshake of ours reads, each allowed once. */
static int offer_slot(unsigned type)
{
    static const unsigned known[] = {0x0000, 0x000a, 0x000d, 0x0010, 0x002b,
                                     0x0033, 0x002d, 0x0029, 0x002a};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i] == type)
            return (int)i;
    return -1;
}

static void offer_key_share(struct cursor e, struct tls13_offer *o)
{
    struct cursor list = sub(&e, take16(&e));
    while (!list.bad && list.left > 0) {
        unsigned group = take16(&list);
        size_t len = take16(&list);
        const unsigned char *key = take(&list, len);
        if (key && group == 0x001d && len == 32 && !o->x25519)
            o->x25519 = key;
    }
    if (list.bad || e.left)
        o->ok = false;
}

static void offer_psk(struct cursor e, const unsigned char *body, struct tls13_offer *o)
{
    size_t ilen = take16(&e);
    o->identities = take(&e, ilen);
    o->identities_len = ilen;
    o->binders_at = e.p ? (size_t)(e.p - body) : 0;
    size_t blen = take16(&e);
    o->binders = take(&e, blen);
    o->binders_len = blen;
    if (e.bad || e.left || !ilen || !blen)
        o->ok = false;
}

bool tls13_offer_parse(const unsigned char *body, size_t len, struct tls13_offer *o)
{
    memset(o, 0, sizeof(*o));
    o->ok = true;
    struct cursor c = {.p = body, .left = len};
    take(&c, 2 + 32); /* legacy_version, random */
    o->sidlen = take8(&c);
    o->sid = take(&c, o->sidlen);
    if (o->sidlen > 32)
        o->ok = false;
    struct cursor suites = sub(&c, take16(&c));
    while (!suites.bad && suites.left >= 2) {
        unsigned s = take16(&suites);
        if (s >= 0x1301 && s <= 0x1303 && o->nsuites < 3)
            o->suites[o->nsuites++] = (uint16_t)s;
    }
    size_t ncomp = take8(&c);
    const unsigned char *comp = take(&c, ncomp);
    o->null_compression_only = comp && ncomp == 1 && comp[0] == 0;
    struct cursor exts = sub(&c, take16(&c));
    if (c.bad || c.left || suites.left)
        return o->ok = false;
    unsigned seen = 0;
    bool x25519_group = false;
    while (!exts.bad && exts.left > 0) {
        unsigned type = take16(&exts);
        struct cursor e = sub(&exts, take16(&exts));
        if (e.bad)
            break;
        int slot = offer_slot(type);
        if (slot >= 0 && (seen & 1u << slot))
            o->ok = false; /* twice: for the library to refuse */
        if (slot >= 0)
            seen |= 1u << slot;
        if (type == 0x0029) /* pre_shared_key: the last one (RFC 8446 4.2.11) */
            o->psk_last = exts.left == 0;
        switch (type) {
        case 0x0000: {
            struct tls_hello h;
            h.host[0] = '\0';
            parse_sni(e, &h);
            o->has_sni = true;
            memcpy(o->host, h.host, strlen(h.host) + 1);
            break;
        }
        case 0x000a: {
            struct cursor list = sub(&e, take16(&e));
            while (!list.bad && list.left >= 2)
                if (take16(&list) == 0x001d)
                    x25519_group = true;
            break;
        }
        case 0x000d: {
            struct cursor list = sub(&e, take16(&e));
            while (!list.bad && list.left >= 2)
                if (take16(&list) == 0x0403)
                    o->ecdsa_p256 = true;
            break;
        }
        case 0x0010: {
            struct tls_hello h;
            h.has_alpn = h.alpn_h2 = h.alpn_http11 = h.alpn_acme = false;
            parse_alpn(e, &h);
            o->has_alpn = true;
            o->alpn_h2 = h.alpn_h2;
            o->alpn_http11 = h.alpn_http11;
            o->alpn_acme = h.alpn_acme;
            break;
        }
        case 0x002b: {
            struct cursor list = sub(&e, take8(&e));
            while (!list.bad && list.left >= 2)
                if (take16(&list) == 0x0304)
                    o->v13 = true;
            break;
        }
        case 0x0033:
            offer_key_share(e, o);
            break;
        case 0x002d: {
            struct cursor list = sub(&e, take8(&e));
            while (!list.bad && list.left >= 1)
                if (take8(&list) == 1)
                    o->psk_dhe = true;
            break;
        }
        case 0x0029:
            offer_psk(e, body, o);
            break;
        case 0x002a:
            o->early_data = true;
            break;
        }
    }
    if (exts.bad || !x25519_group)
        o->x25519 = NULL;
    if (exts.bad)
        o->ok = false;
    if (o->identities && !o->psk_last)
        o->ok = false;
    return o->ok;
}

int tls_read_more(int fd, unsigned char **in, size_t *len)
{
    /* 4 KiB holds most ClientHellos; a larger one grows the buffer */
    size_t cap = *len < 4096 ? 4096 : TLS_HELLO_MAX;
    if (!*in || *len == 4096)
        *in = dt_xrealloc(*in, cap);
    for (;;) {
        ssize_t r = recv(fd, *in + *len, cap - *len, 0);
        if (r > 0) {
            *len += (size_t)r;
            return 1;
        }
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? DT_TLS_WANT_READ : DT_TLS_ERROR;
    }
}
