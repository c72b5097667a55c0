/* tls: certificates, contexts, SNI, session tickets and non-blocking connections, with
 * OpenSSL. The settings are Mozilla's "intermediate" profile: TLS 1.2 and 1.3, AEAD
 * ciphers with forward secrecy, X25519/P-256/P-384; no compression, no renegotiation, no
 * early data (a redirected POST must not be replayable). */
#include "tls/tls13.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

/* TLS 1.2's suites of the intermediate profile, without the DHE ones (they need
 * parameters of their own and are slower than ECDHE for every client that has DHE). */
#define CIPHERS_TLS12                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CIPHERS_TLS13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256:P-384"

const char *const dt_tls_failure_names[DT_TLS_FAIL_COUNT] = {"protocol", "cipher",     "closed",
                                                             "timeout",  "plain_http", "other"};

struct dt_tls_set {
    _Atomic unsigned refs;
    bool h2;
    SSL_CTX **ctxs;
    char **ctx_keys;          /* a context's names, sorted and joined: certificates with the same
                                 names (an RSA and an ECDSA one) share it */
    unsigned *ctx_types;      /* the key types a context has: 1 RSA, 2 EC, 4 other */
    struct tls13_cert **fast; /* a context's ECDSA P-256 certificate for tls13.c, or NULL */
    size_t nctx;
    struct tls_names names; /* each with its context's index */
    size_t ncerts;
};

/* ---- session ticket keys ------------------------------------------------------------------ */

static void fill_random(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        dt_oom(); /* no randomness: nothing safe to go on with */
}

void dt_tls_rotate_tickets(time_t now, time_t period)
{
    tls_tickets_rotate(now, period, fill_random);
}

static int set_mac_key(EVP_MAC_CTX *h, unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    return EVP_MAC_CTX_set_params(h, params);
}

/* OpenSSL's ticket callback: 1 a ticket made, 2 one read (the client gets a new one: TLS 1.3
 * clients use a ticket once, as browsers do, so a resumption without a new ticket would
 * make the next connection a full handshake), 0 an unknown key (a full handshake), -1
 * error. */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    struct tls_ticket_key k;
    int rc = -1;
    if (enc) {
        /* the secret's first half is the AES-256 key, its second the HMAC-SHA256 key */
        if (!tls_tickets_current(&k))
            rc = 0;
        else if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
                 EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.secret, iv) == 1 &&
                 set_mac_key(hctx, k.secret + 32) == 1) {
            memcpy(name, k.name, 16);
            rc = 1;
        }
    } else if (!tls_tickets_find(name, &k)) {
        rc = 0;
    } else {
        rc = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.secret, iv) == 1 &&
                     set_mac_key(hctx, k.secret + 32) == 1
                 ? 2
                 : -1;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---- names and SNI ------------------------------------------------------------------------ */

bool dt_tls_set_covers(const struct dt_tls_set *s, struct dt_str host)
{
    return s && tls_names_find(&s->names, host) >= 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct dt_tls_set *s = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!host)
        return SSL_TLSEXT_ERR_NOACK;
    long i = tls_names_find(&s->names, dt_str_make(host, strlen(host)));
    if (i > 0) /* 0 is the context the connection started with */
        SSL_set_SSL_CTX(ssl, s->ctxs[i]);
    return SSL_TLSEXT_ERR_OK;
}

static bool h2_allowed(const struct dt_tls_conn *c);

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    const struct dt_tls_set *s = arg;
    const struct dt_tls_conn *c = SSL_get_app_data(ssl);
    bool h2 = c ? h2_allowed(c) : s->h2;
    static const unsigned char with_h2[] = "\x02h2\x08http/1.1";
    static const unsigned char h1[] = "\x08http/1.1";
    const unsigned char *ours = h2 ? with_h2 : h1;
    unsigned ourlen = h2 ? sizeof(with_h2) - 1 : sizeof(h1) - 1;
    /* our preference first: h2, then http/1.1 */
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, ourlen, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301 3.2: no_application_protocol */
}

/* ---- loading ------------------------------------------------------------------------------ */

static void ssl_error(struct dt_buf *err, const char *path, const char *what)
{
    unsigned long e = ERR_get_error();
    char msg[256] = "";
    if (e)
        ERR_error_string_n(e, msg, sizeof(msg));
    ERR_clear_error();
    dt_buf_appendf(err, "%s: %s%s%s", path, what, e ? ": " : "", msg);
}

static SSL_CTX *new_ctx(struct dt_tls_set *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, CIPHERS_TLS13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* the chain is the file's: no chain built from a store at every handshake */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    /* One recv for as many records as have arrived, not two a record (header, body); the
     * connection reads until the library wants more, so nothing waits in its buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Resumption by tickets alone: no server-side cache to share between workers. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* two tickets after a full handshake (OpenSSL's default): a client opening connections
     * side by side has one for each; one after a resumption */
    SSL_CTX_set_num_tickets(ctx, 2);
    SSL_CTX_set_max_early_data(ctx, 0);
    SSL_CTX_set_recv_max_early_data(ctx, 0);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    return ctx;
}

/* One certificate file, read. */
struct loaded {
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    struct tls_cert_names names;
    time_t not_after;
};

static void loaded_free(struct loaded *l)
{
    X509_free(l->leaf);
    sk_X509_pop_free(l->chain, X509_free);
    EVP_PKEY_free(l->key);
    tls_cert_names_dispose(&l->names);
}

/* The certificate's DNS names (subjectAltName), or its common name when it has none. */
static void read_names(struct loaded *l)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(l->leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            tls_cert_names_add(&l->names, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                               (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (l->names.n)
        return;
    X509_NAME *subject = X509_get_subject_name(l->leaf);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        tls_cert_names_add(&l->names, (const char *)ASN1_STRING_get0_data(cn),
                           (size_t)ASN1_STRING_length(cn));
    }
}

static EVP_PKEY *read_key(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b)
        return NULL;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

static bool load_file(const char *path, struct loaded *l, struct dt_buf *err)
{
    memset(l, 0, sizeof(*l));
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        dt_buf_appendf(err, "%s: cannot open: %s", path, strerror(errno));
        ERR_clear_error();
        return false;
    }
    l->leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!l->leaf) {
        BIO_free(b);
        ERR_clear_error();
        dt_buf_appendf(err, "%s: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
                       path);
        return false;
    }
    l->chain = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(l->chain, x);
    ERR_clear_error();
    BIO_free(b);
    l->key = read_key(path);
    ERR_clear_error();
    char beside[4096];
    if (!l->key && tls_key_beside(path, beside, sizeof(beside))) {
        l->key = read_key(beside);
        ERR_clear_error();
    }
    if (!l->key) {
        tls_no_key(err, path, beside);
        return false;
    }
    if (X509_check_private_key(l->leaf, l->key) != 1) {
        ERR_clear_error();
        dt_buf_appendf(err, "%s: the private key does not match the certificate", path);
        return false;
    }
    read_names(l);
    if (!l->names.n) {
        dt_buf_appendf(err, "%s: the certificate names no host (no DNS subjectAltName)", path);
        return false;
    }
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(l->leaf), &tm) != 1) {
        dt_buf_appendf(err, "%s: unreadable notAfter date", path);
        return false;
    }
    l->not_after = timegm(&tm);
    return true;
}

static unsigned key_type(EVP_PKEY *k)
{
    int id = EVP_PKEY_get_base_id(k);
    return id == EVP_PKEY_RSA ? 1 : id == EVP_PKEY_EC ? 2 : 4;
}

/* Adds a loaded certificate: into the context of the same names that lacks its key type,
 * or a new one. */
static bool add_cert(struct dt_tls_set *s, const char *path, struct loaded *l, struct dt_buf *err)
{
    char *key = tls_cert_names_key(&l->names);
    unsigned type = key_type(l->key);
    size_t i = 0;
    while (i < s->nctx && !(strcmp(s->ctx_keys[i], key) == 0 && !(s->ctx_types[i] & type)))
        i++;
    if (i == s->nctx) {
        SSL_CTX *ctx = new_ctx(s);
        if (!ctx) {
            free(key);
            ssl_error(err, path, "cannot make a TLS context");
            return false;
        }
        s->ctxs = dt_xrealloc(s->ctxs, (s->nctx + 1) * sizeof(*s->ctxs));
        s->ctx_keys = dt_xrealloc(s->ctx_keys, (s->nctx + 1) * sizeof(*s->ctx_keys));
        s->ctx_types = dt_xrealloc(s->ctx_types, (s->nctx + 1) * sizeof(*s->ctx_types));
        s->fast = dt_xrealloc(s->fast, (s->nctx + 1) * sizeof(*s->fast));
        s->fast[i] = NULL;
        s->ctxs[i] = ctx;
        s->ctx_keys[i] = key;
        s->ctx_types[i] = 0;
        s->nctx++;
    } else {
        free(key);
    }
    if (SSL_CTX_use_cert_and_key(s->ctxs[i], l->leaf, l->key, l->chain, 1) != 1) {
        ssl_error(err, path, "the certificate cannot be used");
        return false;
    }
    s->ctx_types[i] |= type;
    if (!s->fast[i])
        s->fast[i] = tls13_cert_new(l->leaf, l->chain, l->key);
    s->ncerts++;
    tls_names_add(&s->names, &l->names, i, l->not_after);
    return true;
}

static bool load_path(void *set, const char *path, struct dt_buf *err)
{
    struct dt_tls_set *s = set;
    struct loaded l;
    bool ok = load_file(path, &l, err) && add_cert(s, path, &l, err);
    loaded_free(&l);
    return ok;
}

struct dt_tls_set *dt_tls_load(const char *const *paths, size_t npaths, const char *const *dirs,
                               size_t ndirs, bool alpn_h2, struct dt_buf *err)
{
    struct dt_tls_set *s = dt_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->h2 = alpn_h2;
    bool ok = tls_load_all(paths, npaths, dirs, ndirs, load_path, s, err);
    if (!ok) {
        dt_tls_set_unref(s);
        return NULL;
    }
    tls_names_finish(&s->names); /* the first certificate to name a host answers it */
    if (!tls_tickets_any())
        dt_tls_rotate_tickets(0, 1);
    return s;
}

void dt_tls_set_ref(struct dt_tls_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void dt_tls_set_unref(struct dt_tls_set *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->nctx; i++) {
        SSL_CTX_free(s->ctxs[i]);
        tls13_cert_free(s->fast[i]);
        free(s->ctx_keys[i]);
    }
    tls_names_dispose(&s->names);
    free(s->ctxs);
    free(s->ctx_keys);
    free(s->ctx_types);
    free(s->fast);
    free(s);
}

size_t dt_tls_set_count(const struct dt_tls_set *s)
{
    return s->ncerts;
}

void dt_tls_set_each_name(const struct dt_tls_set *s,
                          void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx)
{
    tls_names_each(&s->names, fn, ctx);
}

/* ---- connections -------------------------------------------------------------------------- */

/* A connection starts by reading the ClientHello itself: one that tls13.c answers goes
 * there; any other, and bytes that are not one, go to OpenSSL, which reads them first
 * through a socket BIO of ours (below) and the socket after. */
struct dt_tls_conn {
    SSL *ssl;           /* OpenSSL's connection, or NULL */
    struct tls13 *fast; /* tls13.c's, or NULL */
    struct dt_tls_set *set;
    int fd;
    enum dt_tls_failure failure;
    bool no_h2;        /* dt_tls_no_h2 */
    unsigned char *in; /* the first bytes, read to tell which; OpenSSL reads them first */
    size_t in_len, in_off;
};

struct dt_tls_conn *dt_tls_accept(struct dt_tls_set *s, int fd)
{
    struct dt_tls_conn *c = dt_xcalloc(1, sizeof(*c));
    c->set = s;
    c->fd = fd;
    c->failure = DT_TLS_FAIL_OTHER;
    dt_tls_set_ref(s);
    return c;
}

void dt_tls_no_h2(struct dt_tls_conn *c)
{
    c->no_h2 = true;
}

/* Whether c may speak HTTP/2 (its set offers it, and it was not told otherwise). */
static bool h2_allowed(const struct dt_tls_conn *c)
{
    return c->set->h2 && !c->no_h2;
}

void dt_tls_free(struct dt_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    tls13_free(c->fast);
    free(c->in);
    dt_tls_set_unref(c->set);
    free(c);
}

/* ---- the socket BIO: the bytes read already, then the socket ---------------------------- */

static int bio_read(BIO *b, char *out, int len)
{
    struct dt_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (c->in_off < c->in_len) {
        size_t n = c->in_len - c->in_off < (size_t)len ? c->in_len - c->in_off : (size_t)len;
        memcpy(out, c->in + c->in_off, n);
        c->in_off += n;
        if (c->in_off == c->in_len) {
            free(c->in);
            c->in = NULL;
            c->in_off = c->in_len = 0;
        }
        return (int)n;
    }
    ssize_t r;
    do
        r = recv(c->fd, out, (size_t)len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)r;
}

static int bio_write(BIO *b, const char *p, int len)
{
    struct dt_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = send(c->fd, p, (size_t)len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "detour socket");
    if (m && BIO_meth_set_read(m, bio_read) == 1 && BIO_meth_set_write(m, bio_write) == 1 &&
        BIO_meth_set_ctrl(m, bio_ctrl) == 1 && BIO_meth_set_create(m, bio_create) == 1)
        bio_method = m;
}

/* OpenSSL's connection on ctx (NULL: the set's first), reading c->in first: 1, or
 * DT_TLS_ERROR. */
static ssize_t start_ssl_on(struct dt_tls_conn *c, SSL_CTX *ctx)
{
    pthread_once(&bio_once, make_bio_method);
    BIO *b = bio_method ? BIO_new(bio_method) : NULL;
    c->ssl = b ? SSL_new(ctx ? ctx : c->set->ctxs[0]) : NULL;
    if (!c->ssl) {
        BIO_free(b);
        return DT_TLS_ERROR;
    }
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_app_data(c->ssl, c);
    SSL_set_accept_state(c->ssl);
    return 1;
}

static ssize_t start_ssl(struct dt_tls_conn *c)
{
    return start_ssl_on(c, NULL);
}

/* ---- TLS-ALPN-01: a context per name being validated ---------------------------------- */

struct challenge {
    char *name;
    SSL_CTX *ctx;
};
static struct challenge *challenges;
static size_t nchallenges;
static pthread_mutex_t challenges_lock = PTHREAD_MUTEX_INITIALIZER;

static int acme_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                        const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char acme[] = "\x0a"
                                        "acme-tls/1";
    if (SSL_select_next_proto((unsigned char **)out, outlen, acme, sizeof(acme) - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *challenge_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    bool ok = ctx && x && k && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
              SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, acme_alpn_cb, NULL);
    return ctx;
}

bool dt_tls_alpn_challenge_set(const char *name, const char *cert, const char *key)
{
    SSL_CTX *ctx = challenge_ctx(cert, key);
    if (!ctx)
        return false;
    size_t n = strlen(name) + 1;
    char *copy = memcpy(dt_xmalloc(n), name, n);
    pthread_mutex_lock(&challenges_lock);
    challenges = dt_xrealloc(challenges, (nchallenges + 1) * sizeof(*challenges));
    challenges[nchallenges++] = (struct challenge){copy, ctx};
    pthread_mutex_unlock(&challenges_lock);
    return true;
}

void dt_tls_alpn_challenge_clear(const char *name)
{
    pthread_mutex_lock(&challenges_lock);
    for (size_t i = 0; i < nchallenges; i++) {
        if (strcasecmp(challenges[i].name, name) != 0)
            continue;
        free(challenges[i].name);
        SSL_CTX_free(challenges[i].ctx); /* a handshake in flight holds its own reference */
        challenges[i--] = challenges[--nchallenges];
    }
    if (!nchallenges) {
        free(challenges);
        challenges = NULL;
    }
    pthread_mutex_unlock(&challenges_lock);
}

/* The context validating host, with a reference for the caller, or NULL. */
static SSL_CTX *challenge_for(const char *host)
{
    SSL_CTX *ctx = NULL;
    pthread_mutex_lock(&challenges_lock);
    for (size_t i = 0; i < nchallenges && !ctx; i++)
        if (strcasecmp(challenges[i].name, host) == 0 && SSL_CTX_up_ref(challenges[i].ctx) == 1)
            ctx = challenges[i].ctx;
    pthread_mutex_unlock(&challenges_lock);
    return ctx;
}

/* The bytes of records at p that carry the ClientHello's need bytes. */
static size_t hello_records(const unsigned char *p, size_t need)
{
    size_t off = 0, have = 0;
    while (have < need) {
        have += tls_get16(p + off + 3);
        off += 5 + tls_get16(p + off + 3);
    }
    return off;
}

/* The ClientHello at body (blen bytes after its header), whole in c->in: tls13.c's when it
 * can answer it with the certificate SNI picks, else OpenSSL's. 1, or DT_TLS_ERROR. */
static ssize_t start(struct dt_tls_conn *c, const unsigned char *body, size_t blen)
{
    struct tls13_offer o;
    bool parsed = tls13_offer_parse(body, blen, &o);
    if (parsed && o.alpn_acme && o.host[0]) { /* a CA validating a name (RFC 8737) */
        SSL_CTX *ctx = challenge_for(o.host);
        if (ctx) {
            ssize_t r = start_ssl_on(c, ctx);
            SSL_CTX_free(ctx); /* the connection holds its own reference */
            return r;
        }
    }
    /* the name's certificate, looked up once: for tls13.c and for the unknown-name hook */
    long i = parsed && o.host[0]
                 ? tls_names_find(&c->set->names, dt_str_make(o.host, strlen(o.host)))
                 : -1;
    if (parsed && o.host[0] && i < 0)
        tls_unknown_name(o.host);
    if (!parsed || !tls13_can(&o, h2_allowed(c)))
        return start_ssl(c);
    const struct tls13_cert *cert = c->set->fast[i > 0 ? i : 0];
    if (!cert)
        return start_ssl(c);
    size_t used = hello_records(c->in, blen + 4);
    c->fast = tls13_start(c->fd, &o, body - 4, blen + 4, cert, o.host[0] != '\0', h2_allowed(c),
                          c->in + used, c->in_len - used);
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    return 1;
}

/* Reads the first bytes until they tell what they are, then starts the connection: 1 when
 * it has started, else what dt_tls_read returns. */
static ssize_t read_hello(struct dt_tls_conn *c)
{
    for (;;) {
        const unsigned char *body = NULL;
        unsigned char *copy = NULL;
        size_t blen = 0;
        enum tls_first what = tls_first_scan(c->in, c->in_len, &body, &blen, &copy);
        if (what == TLS_FIRST_HTTP) {
            c->failure = DT_TLS_FAIL_HTTP;
            return DT_TLS_PLAIN_HTTP;
        }
        if (what == TLS_FIRST_HELLO) {
            ssize_t r = start(c, body, blen);
            free(copy);
            return r;
        }
        if (what != TLS_FIRST_MORE || c->in_len == TLS_HELLO_MAX)
            return start_ssl(c); /* OpenSSL refuses it, with its alert */
        int r = tls_read_more(c->fd, &c->in, &c->in_len);
        if (r == DT_TLS_ERROR)
            c->failure = DT_TLS_FAIL_CLOSED;
        if (r != 1)
            return r;
    }
}

/* Why the last call failed, from OpenSSL's error queue (which it empties). */
static enum dt_tls_failure classify(int err)
{
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN || !e)
        return DT_TLS_FAIL_CLOSED;
    int reason = ERR_GET_REASON(e);
    switch (reason) {
    case SSL_R_HTTP_REQUEST:
        return DT_TLS_FAIL_HTTP;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING: /* OpenSSL 3's name for a peer gone */
        return DT_TLS_FAIL_CLOSED;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return DT_TLS_FAIL_PROTOCOL;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return DT_TLS_FAIL_CIPHER;
    }
    return DT_TLS_FAIL_OTHER;
}

static ssize_t outcome(struct dt_tls_conn *c, int n)
{
    int err = SSL_get_error(c->ssl, n);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return DT_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return DT_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    }
    bool before = !SSL_is_init_finished(c->ssl);
    enum dt_tls_failure f = classify(err);
    if (before)
        c->failure = f;
    if (before && f == DT_TLS_FAIL_HTTP)
        return DT_TLS_PLAIN_HTTP;
    /* a client that closes without close_notify ends the stream: as EOF */
    return err == SSL_ERROR_SYSCALL && !before ? 0 : DT_TLS_ERROR;
}

ssize_t dt_tls_read(struct dt_tls_conn *c, void *buf, size_t n)
{
    if (!c->ssl && !c->fast) {
        ssize_t r = read_hello(c);
        if (r != 1)
            return r;
    }
    if (c->fast)
        return tls13_read(c->fast, buf, n);
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = SSL_read(c->ssl, buf, len);
    return r > 0 ? r : outcome(c, r);
}

ssize_t dt_tls_write(struct dt_tls_conn *c, const void *buf, size_t n)
{
    if (c->fast)
        return tls13_write(c->fast, buf, n);
    if (!c->ssl)
        return DT_TLS_WANT_READ;
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = SSL_write(c->ssl, buf, len);
    if (r > 0)
        return r;
    ssize_t o = outcome(c, r);
    return o == 0 ? DT_TLS_ERROR : o;
}

void dt_tls_close_notify(struct dt_tls_conn *c)
{
    if (c->fast) {
        tls13_close_notify(c->fast);
        return;
    }
    if (c->ssl && SSL_is_init_finished(c->ssl))
        (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

void dt_tls_closing(struct dt_tls_conn *c)
{
    if (c->fast)
        tls13_closing(c->fast);
}

bool dt_tls_established(const struct dt_tls_conn *c)
{
    if (c->fast)
        return tls13_established(c->fast);
    return c->ssl && SSL_is_init_finished(c->ssl);
}

bool dt_tls_resumed(const struct dt_tls_conn *c)
{
    if (c->fast)
        return tls13_resumed(c->fast);
    return c->ssl && SSL_session_reused(c->ssl);
}

bool dt_tls_h2(const struct dt_tls_conn *c)
{
    if (c->fast)
        return tls13_h2(c->fast);
    if (!c->ssl)
        return false;
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

enum dt_tls_failure dt_tls_failure(const struct dt_tls_conn *c)
{
    if (c->fast)
        return tls13_failure(c->fast);
    return c->failure;
}

const char *dt_tls_version(const struct dt_tls_conn *c)
{
    if (c->fast)
        return "TLSv1.3";
    return c->ssl ? SSL_get_version(c->ssl) : "";
}

const char *dt_tls_engine(const struct dt_tls_conn *c)
{
    return c->fast ? "detour" : c->ssl ? "openssl" : "";
}
