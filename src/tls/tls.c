/* tls: certificates, contexts, SNI, session tickets and non-blocking connections, with
 * OpenSSL. The settings are Mozilla's "intermediate" profile: TLS 1.2 and 1.3, AEAD
 * ciphers with forward secrecy, X25519/P-256/P-384; no compression, no renegotiation, no
 * early data (a redirected POST must not be replayable). */
#include "tls/tls.h"

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

/* TLS 1.2's suites of the intermediate profile, without the DHE ones (they need
 * parameters of their own and are slower than ECDHE for every client that has DHE). */
#define CIPHERS_TLS12                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CIPHERS_TLS13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256:P-384"

const char *const dt_tls_failure_names[DT_TLS_FAIL_COUNT] = {"protocol", "cipher",     "closed",
                                                             "timeout",  "plain_http", "other"};

/* A name of a certificate and the context that answers it ("*.example.com" for a
 * wildcard). */
struct name {
    char *name;
    size_t ctx;
    time_t not_after;
};

struct dt_tls_set {
    _Atomic unsigned refs;
    bool h2;
    SSL_CTX **ctxs;
    char **ctx_keys;     /* a context's names, sorted and joined: certificates with the same
                            names (an RSA and an ECDSA one) share it */
    unsigned *ctx_types; /* the key types a context has: 1 RSA, 2 EC, 4 other */
    size_t nctx;
    struct name *names; /* sorted by name */
    size_t nnames;
    size_t ncerts;
};

/* ---- session ticket keys ------------------------------------------------------------------ */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct ticket_key keys[3]; /* [0] encrypts; all three decrypt */
static unsigned nkeys;
static time_t keys_made;

static void new_key(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        dt_oom(); /* no randomness: nothing safe to go on with */
}

void dt_tls_rotate_tickets(time_t now, time_t period)
{
    pthread_rwlock_wrlock(&keys_lock);
    if (nkeys == 0 || now - keys_made >= period || now < keys_made) {
        memmove(&keys[1], &keys[0], sizeof(keys[0]) * 2);
        new_key(&keys[0]);
        if (nkeys < 3)
            nkeys++;
        keys_made = now;
    }
    pthread_rwlock_unlock(&keys_lock);
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
    int rc = -1;
    pthread_rwlock_rdlock(&keys_lock);
    if (nkeys == 0) {
        rc = 0;
    } else if (enc) {
        struct ticket_key *k = &keys[0];
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
            set_mac_key(hctx, k->hmac) == 1) {
            memcpy(name, k->name, 16);
            rc = 1;
        }
    } else {
        rc = 0;
        for (unsigned i = 0; i < nkeys; i++) {
            struct ticket_key *k = &keys[i];
            if (memcmp(name, k->name, 16) != 0)
                continue;
            rc = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
                         set_mac_key(hctx, k->hmac) == 1
                     ? 2
                     : -1;
            break;
        }
    }
    pthread_rwlock_unlock(&keys_lock);
    return rc;
}

/* ---- names and SNI ------------------------------------------------------------------------ */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct name *)a)->name, ((const struct name *)b)->name);
}

static const struct name *find_name(const struct dt_tls_set *s, const char *host)
{
    struct name key = {.name = (char *)host};
    return bsearch(&key, s->names, s->nnames, sizeof(*s->names), name_cmp);
}

/* The context for host: its exact name, else a wildcard for its first label, else -1. */
static long ctx_for(const struct dt_tls_set *s, struct dt_str host)
{
    char buf[256];
    if (host.len == 0 || host.len + 2 >= sizeof(buf))
        return -1;
    memcpy(buf, host.ptr, host.len);
    buf[host.len] = '\0';
    dt_ascii_lower(buf, host.len);
    const struct name *n = find_name(s, buf);
    if (n)
        return (long)n->ctx;
    const char *dot = memchr(buf, '.', host.len);
    if (!dot || dot == buf)
        return -1;
    char wild[258];
    snprintf(wild, sizeof(wild), "*%s", dot);
    n = find_name(s, wild);
    return n ? (long)n->ctx : -1;
}

bool dt_tls_set_covers(const struct dt_tls_set *s, struct dt_str host)
{
    return s && ctx_for(s, host) >= 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct dt_tls_set *s = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!host)
        return SSL_TLSEXT_ERR_NOACK;
    long i = ctx_for(s, dt_str_make(host, strlen(host)));
    if (i > 0) /* 0 is the context the connection started with */
        SSL_set_SSL_CTX(ssl, s->ctxs[i]);
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    const struct dt_tls_set *s = arg;
    static const unsigned char with_h2[] = "\x02h2\x08http/1.1";
    static const unsigned char h1[] = "\x08http/1.1";
    const unsigned char *ours = s->h2 ? with_h2 : h1;
    unsigned ourlen = s->h2 ? sizeof(with_h2) - 1 : sizeof(h1) - 1;
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
    char **names;
    size_t nnames;
    time_t not_after;
};

static void loaded_free(struct loaded *l)
{
    X509_free(l->leaf);
    sk_X509_pop_free(l->chain, X509_free);
    EVP_PKEY_free(l->key);
    for (size_t i = 0; i < l->nnames; i++)
        free(l->names[i]);
    free(l->names);
}

static void add_name(struct loaded *l, const char *n, size_t len)
{
    if (len == 0 || len > 253)
        return;
    for (size_t i = 0; i < len; i++) /* a host name, or a wildcard: nothing else matches */
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '.' || n[i] == '*' ||
              n[i] == '_'))
            return;
    for (size_t i = 0; i < l->nnames; i++)
        if (strlen(l->names[i]) == len && !strncasecmp(l->names[i], n, len))
            return;
    l->names = dt_xrealloc(l->names, (l->nnames + 1) * sizeof(*l->names));
    char *copy = dt_xstrndup(n, len);
    dt_ascii_lower(copy, len);
    l->names[l->nnames++] = copy;
}

/* The certificate's DNS names (subjectAltName), or its common name when it has none. */
static void read_names(struct loaded *l)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(l->leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            add_name(l, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                     (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (l->nnames)
        return;
    X509_NAME *subject = X509_get_subject_name(l->leaf);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        add_name(l, (const char *)ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn));
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
    char keypath[4096];
    size_t n = strlen(path);
    if (!l->key && n > 4 && n < sizeof(keypath) && !strcmp(path + n - 4, ".pem")) {
        snprintf(keypath, sizeof(keypath), "%.*s.key", (int)(n - 4), path);
        l->key = read_key(keypath);
        ERR_clear_error();
    }
    if (!l->key) {
        dt_buf_appendf(err, "%s: no private key in it%s%s", path, n > 4 ? " nor in " : "",
                       n > 4 ? keypath : "");
        return false;
    }
    if (X509_check_private_key(l->leaf, l->key) != 1) {
        ERR_clear_error();
        dt_buf_appendf(err, "%s: the private key does not match the certificate", path);
        return false;
    }
    read_names(l);
    if (!l->nnames) {
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

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of l sorted and joined: the key of the context it goes to. */
static char *names_key(const struct loaded *l)
{
    char **sorted = dt_xmalloc(l->nnames * sizeof(*sorted));
    memcpy(sorted, l->names, l->nnames * sizeof(*sorted));
    qsort(sorted, l->nnames, sizeof(*sorted), str_cmp);
    struct dt_buf b;
    dt_buf_init(&b);
    for (size_t i = 0; i < l->nnames; i++)
        dt_buf_appendf(&b, "%s%s", i ? " " : "", sorted[i]);
    free(sorted);
    dt_buf_terminate(&b);
    return b.ptr;
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
    char *key = names_key(l);
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
    s->ncerts++;
    for (size_t k = 0; k < l->nnames; k++) {
        s->names = dt_xrealloc(s->names, (s->nnames + 1) * sizeof(*s->names));
        s->names[s->nnames++] = (struct name){.name = dt_xstrndup(l->names[k], strlen(l->names[k])),
                                              .ctx = i,
                                              .not_after = l->not_after};
    }
    return true;
}

static bool load_path(struct dt_tls_set *s, const char *path, struct dt_buf *err)
{
    struct loaded l;
    bool ok = load_file(path, &l, err) && add_cert(s, path, &l, err);
    loaded_free(&l);
    return ok;
}

static bool load_dir(struct dt_tls_set *s, const char *dir, struct dt_buf *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        dt_buf_appendf(err, "%s: cannot open the directory: %s", dir, strerror(errno));
        return false;
    }
    char **files = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && e->d_name[0] != '.' && !strcmp(e->d_name + len - 4, ".pem")) {
            files = dt_xrealloc(files, (n + 1) * sizeof(*files));
            struct dt_buf p;
            dt_buf_init(&p);
            size_t dl = strlen(dir);
            dt_buf_appendf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
            files[n++] = p.ptr;
        }
    }
    closedir(d);
    if (n > 1)
        qsort(files, n, sizeof(*files), str_cmp); /* a stable order: the first is the default */
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (ok && !load_path(s, files[i], err))
            ok = false;
        free(files[i]);
    }
    free(files);
    if (ok && n == 0) {
        dt_buf_appendf(err, "%s: no *.pem file in the directory", dir);
        ok = false;
    }
    return ok;
}

struct dt_tls_set *dt_tls_load(const char *const *paths, size_t npaths, const char *dir,
                               bool alpn_h2, struct dt_buf *err)
{
    struct dt_tls_set *s = dt_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->h2 = alpn_h2;
    bool ok = true;
    for (size_t i = 0; ok && i < npaths; i++)
        ok = load_path(s, paths[i], err);
    if (ok && dir)
        ok = load_dir(s, dir, err);
    if (ok && s->nctx == 0) {
        dt_buf_appendf(err, "no certificate given");
        ok = false;
    }
    if (!ok) {
        dt_tls_set_unref(s);
        return NULL;
    }
    /* the first certificate to name a host answers it */
    qsort(s->names, s->nnames, sizeof(*s->names), name_cmp);
    size_t w = 0;
    for (size_t r = 0; r < s->nnames; r++) {
        if (w && !strcmp(s->names[w - 1].name, s->names[r].name)) {
            if (s->names[r].ctx < s->names[w - 1].ctx)
                s->names[w - 1].ctx = s->names[r].ctx;
            free(s->names[r].name);
            continue;
        }
        s->names[w++] = s->names[r];
    }
    s->nnames = w;
    pthread_rwlock_rdlock(&keys_lock);
    bool have_keys = nkeys > 0;
    pthread_rwlock_unlock(&keys_lock);
    if (!have_keys)
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
        free(s->ctx_keys[i]);
    }
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    free(s->ctxs);
    free(s->ctx_keys);
    free(s->ctx_types);
    free(s->names);
    free(s);
}

size_t dt_tls_set_count(const struct dt_tls_set *s)
{
    return s->ncerts;
}

void dt_tls_set_each_name(const struct dt_tls_set *s,
                          void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx)
{
    for (size_t i = 0; i < s->nnames; i++)
        fn(ctx, s->names[i].name, s->names[i].not_after);
}

/* ---- connections -------------------------------------------------------------------------- */

struct dt_tls_conn {
    SSL *ssl;
    struct dt_tls_set *set;
    enum dt_tls_failure failure;
};

struct dt_tls_conn *dt_tls_accept(struct dt_tls_set *s, int fd)
{
    SSL *ssl = SSL_new(s->ctxs[0]);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    struct dt_tls_conn *c = dt_xcalloc(1, sizeof(*c));
    c->ssl = ssl;
    c->set = s;
    c->failure = DT_TLS_FAIL_OTHER;
    dt_tls_set_ref(s);
    return c;
}

void dt_tls_free(struct dt_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    dt_tls_set_unref(c->set);
    free(c);
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
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = SSL_read(c->ssl, buf, len);
    return r > 0 ? r : outcome(c, r);
}

ssize_t dt_tls_write(struct dt_tls_conn *c, const void *buf, size_t n)
{
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = SSL_write(c->ssl, buf, len);
    if (r > 0)
        return r;
    ssize_t o = outcome(c, r);
    return o == 0 ? DT_TLS_ERROR : o;
}

void dt_tls_close_notify(struct dt_tls_conn *c)
{
    if (SSL_is_init_finished(c->ssl))
        (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

bool dt_tls_established(const struct dt_tls_conn *c)
{
    return SSL_is_init_finished(c->ssl);
}

bool dt_tls_resumed(const struct dt_tls_conn *c)
{
    return SSL_session_reused(c->ssl);
}

bool dt_tls_h2(const struct dt_tls_conn *c)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

enum dt_tls_failure dt_tls_failure(const struct dt_tls_conn *c)
{
    return c->failure;
}

const char *dt_tls_version(const struct dt_tls_conn *c)
{
    return SSL_get_version(c->ssl);
}
