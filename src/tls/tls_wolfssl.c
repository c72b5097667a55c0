/* tls: the interface of tls.h with wolfSSL's own API (cmake -DDETOUR_TLS=wolfssl; tls.c is
 * the OpenSSL one and the default, docs/tls-library.md says why). The same settings as
 * tls.c: TLS 1.2 and 1.3, Mozilla's "intermediate" AEAD suites without DHE, X25519/P-256/
 * P-384, no compression, no renegotiation, no early data, tickets under our own keys and no
 * session cache, ALPN h2 then http/1.1.
 *
 * wolfSSL holds one certificate per context, so a group of certificates for the same names
 * (an RSA and an ECDSA one) is a context per key type here, and a connection reads the
 * ClientHello itself before wolfSSL does: its server name, signature algorithms, suites and
 * ALPN protocols pick the context and the protocol, then wolfSSL is made on that context and
 * reads the same bytes from this file's receive function (which also reads ahead: one recv
 * for as many records as have arrived). */
#include "tls/internal.h"

#include <wolfssl/options.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* wolfSSL's names; TLS 1.3's suites first, as OpenSSL offers them */
#define CIPHERS                                                                                    \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* OpenSSL's default session lifetime, which bounds its tickets' */
#define SESSION_TIMEOUT 7200

const char *const dt_tls_failure_names[DT_TLS_FAIL_COUNT] = {"protocol", "cipher",     "closed",
                                                             "timeout",  "plain_http", "other"};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#ifdef FP_ECC
/* wolfSSL built with FP_ECC (Debian's is) keeps tables of precomputed points for each
 * thread that signs or derives with ECC: given back when the thread ends. */
static pthread_key_t ecc_thread;
static _Thread_local bool ecc_noted;

static void ecc_thread_done(void *unused)
{
    (void)unused;
    wc_ecc_fp_free();
}

static void note_ecc_thread(void)
{
    if (!ecc_noted) {
        ecc_noted = true;
        pthread_setspecific(ecc_thread, &ecc_noted);
    }
}
#else
static void note_ecc_thread(void)
{
}
#endif

static void init_library(void)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        dt_oom();
#ifdef FP_ECC
    if (pthread_key_create(&ecc_thread, ecc_thread_done) != 0)
        dt_oom();
#endif
}

/* ---- certificate sets --------------------------------------------------------------------- */

/* Key types: a group has a context for each (RSA, EC, other: Ed25519, RSA-PSS...). */
enum { KEY_RSA = TLS_KEY_RSA, KEY_EC = TLS_KEY_EC, KEY_OTHER, KEY_TYPES };

/* Certificates with the same names, a context for each key type it has. */
struct group {
    char *key; /* the names, sorted and joined */
    WOLFSSL_CTX *ctx[KEY_TYPES];
    unsigned ec_scheme; /* the TLS 1.3 signature scheme of the EC certificate's curve */
};

struct dt_tls_set {
    _Atomic unsigned refs;
    bool h2;
    struct group *groups;
    size_t ngroups;
    struct tls_names names; /* each with its group's index */
    size_t ncerts;
};

/* ---- session ticket keys ------------------------------------------------------------------ */

static void random_bytes(unsigned char *p, size_t n)
{
    if (wolfSSL_RAND_bytes(p, (int)n) != WOLFSSL_SUCCESS)
        dt_oom(); /* no randomness: nothing safe to go on with */
}

void dt_tls_rotate_tickets(time_t now, time_t period)
{
    pthread_once(&init_once, init_library);
    tls_tickets_rotate(now, period, random_bytes);
}

/* wolfSSL's ticket callback: the ticket's contents are sealed in place with
 * ChaCha20-Poly1305 under the key named by name, the first 12 bytes of iv its nonce, the
 * name and iv its associated data, the tag in the first 16 bytes of mac. Decrypting: CREATE
 * (use it, and send a new one: as tls.c, since TLS 1.3 clients use a ticket once), or
 * REJECT (a full handshake) for an unknown key or a forgery. */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int inlen, int *outlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    int rc = enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    struct tls_ticket_key k; /* the secret's first 32 bytes are the ChaCha20-Poly1305 key */
    if (inlen <= 0)
        return rc;
    if (enc && tls_tickets_current(&k)) {
        random_bytes(iv, WOLFSSL_TICKET_IV_SZ);
        memcpy(name, k.name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (wc_ChaCha20Poly1305_Encrypt(k.secret, iv, aad, sizeof(aad), ticket, (word32)inlen,
                                        ticket, mac) == 0) {
            *outlen = inlen;
            rc = WOLFSSL_TICKET_RET_OK;
        }
    } else if (!enc && tls_tickets_find(name, &k)) {
        memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
        if (wc_ChaCha20Poly1305_Decrypt(k.secret, iv, aad, sizeof(aad), ticket, (word32)inlen, mac,
                                        ticket) == 0) {
            *outlen = inlen;
            rc = WOLFSSL_TICKET_RET_CREATE;
        }
    }
    explicit_bzero(&k, sizeof(k));
    return rc;
}

/* ---- names -------------------------------------------------------------------------------- */

bool dt_tls_set_covers(const struct dt_tls_set *s, struct dt_str host)
{
    return s && tls_names_find(&s->names, host) >= 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* The library's last error, appended to "path: what". */
static void lib_error(struct dt_buf *err, const char *path, const char *what)
{
    unsigned long e = wolfSSL_ERR_get_error();
    char msg[WOLFSSL_MAX_ERROR_SZ] = "";
    if (e)
        wolfSSL_ERR_error_string_n(e, msg, sizeof(msg));
    wolfSSL_ERR_clear_error();
    dt_buf_appendf(err, "%s: %s%s%s", path, what, e ? ": " : "", msg);
}

static WOLFSSL_CTX *new_ctx(void)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx)
        return NULL;
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, CIPHERS) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(ctx, groups, 3) != WOLFSSL_SUCCESS ||
        /* as OpenSSL by default: the client's order of suites (0 is success here) */
        wolfSSL_CTX_UseClientSuites(ctx) != 0 ||
        wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketHint(ctx, SESSION_TIMEOUT) != WOLFSSL_SUCCESS ||
        /* as tls.c: two TLS 1.3 tickets after a full handshake, one after a resumption */
        wolfSSL_CTX_set_num_tickets(ctx, 2) != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    (void)wolfSSL_CTX_set_timeout(ctx, SESSION_TIMEOUT); /* returns the previous one */
    /* one mode a call: wolfSSL takes them one at a time */
    wolfSSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    /* Resumption by tickets alone: no server-side cache to share between workers. */
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    return ctx;
}

/* A whole file, NUL-terminated; NULL with errno. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct dt_buf b;
    dt_buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dt_buf_append(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        dt_buf_dispose(&b);
        errno = EIO;
        return NULL;
    }
    dt_buf_terminate(&b);
    *len = b.len;
    return b.ptr;
}

/* One certificate file, read into its own context. */
struct loaded {
    WOLFSSL_CTX *ctx;
    WOLFSSL_X509 *leaf;
    unsigned type;
    unsigned ec_scheme;
    struct tls_cert_names names;
    time_t not_after;
};

static void loaded_free(struct loaded *l)
{
    wolfSSL_CTX_free(l->ctx);
    wolfSSL_X509_free(l->leaf);
    tls_cert_names_dispose(&l->names);
}

static void add_string_name(struct loaded *l, WOLFSSL_ASN1_STRING *s)
{
    int len = s ? wolfSSL_ASN1_STRING_length(s) : 0;
    const unsigned char *p = len > 0 ? wolfSSL_ASN1_STRING_get0_data(s) : NULL;
    if (p)
        tls_cert_names_add(&l->names, (const char *)p, (size_t)len);
}

/* The certificate's DNS names (subjectAltName), or its common name when it has none. */
static void read_names(struct loaded *l)
{
    WOLFSSL_STACK *sans = wolfSSL_X509_get_ext_d2i(l->leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < wolfSSL_sk_GENERAL_NAME_num(sans); i++) {
        WOLFSSL_GENERAL_NAME *g = wolfSSL_sk_GENERAL_NAME_value(sans, i);
        if (g && g->type == ASN_DNS_TYPE)
            add_string_name(l, g->d.dNSName);
    }
    wolfSSL_GENERAL_NAMES_free(sans);
    wolfSSL_ERR_clear_error();
    if (l->names.n)
        return;
    WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(l->leaf);
    int at = subject ? wolfSSL_X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (at >= 0)
        add_string_name(l,
                        wolfSSL_X509_NAME_ENTRY_get_data(wolfSSL_X509_NAME_get_entry(subject, at)));
}

/* The key type of the certificate, and for EC the signature scheme of its curve. */
static void read_key_type(struct loaded *l)
{
    int t = wolfSSL_X509_get_pubkey_type(l->leaf);
    l->type = t == RSAk ? KEY_RSA : t == ECDSAk ? KEY_EC : KEY_OTHER;
    if (l->type != KEY_EC)
        return;
    WOLFSSL_EVP_PKEY *k = wolfSSL_X509_get_pubkey(l->leaf);
    int bits = k ? wolfSSL_EVP_PKEY_bits(k) : 0;
    wolfSSL_EVP_PKEY_free(k);
    l->ec_scheme = bits == 384 ? 0x0503 : bits == 521 ? 0x0603 : 0x0403;
}

/* Loads the private key of the PEM text into ctx. */
static bool use_key(WOLFSSL_CTX *ctx, const char *pem, size_t len)
{
    bool ok = pem && wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)pem, (long)len,
                                                       WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS;
    wolfSSL_ERR_clear_error();
    return ok;
}

/* Whether the private key of the PEM text is the certificate's: a signature made with it
 * verifies with the certificate's key (wolfSSL_CTX_check_private_key of wolfSSL 5.5 passes
 * any EC key). Ed25519 and other keys: as wolfSSL_CTX_check_private_key says. */
static bool key_matches(const struct loaded *l, const char *pem, size_t len)
{
    if (l->type == KEY_OTHER)
        return wolfSSL_CTX_check_private_key(l->ctx) == WOLFSSL_SUCCESS;
    WOLFSSL_BIO *b = wolfSSL_BIO_new_mem_buf(pem, (int)len);
    WOLFSSL_EVP_PKEY *priv = b ? wolfSSL_PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    WOLFSSL_EVP_PKEY *pub = wolfSSL_X509_get_pubkey(l->leaf);
    WOLFSSL_EVP_MD_CTX *md = wolfSSL_EVP_MD_CTX_new();
    static const char probe[] = "detour: does the key match the certificate?";
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    bool ok = priv && pub && md &&
              wolfSSL_EVP_DigestSignInit(md, NULL, wolfSSL_EVP_sha256(), NULL, priv) == 1 &&
              wolfSSL_EVP_DigestSignUpdate(md, probe, sizeof(probe)) == 1 &&
              wolfSSL_EVP_DigestSignFinal(md, sig, &siglen) == 1;
    wolfSSL_EVP_MD_CTX_free(md);
    md = ok ? wolfSSL_EVP_MD_CTX_new() : NULL;
    ok = md && wolfSSL_EVP_DigestVerifyInit(md, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
         wolfSSL_EVP_DigestVerifyUpdate(md, probe, sizeof(probe)) == 1 &&
         wolfSSL_EVP_DigestVerifyFinal(md, sig, siglen) == 1;
    wolfSSL_EVP_MD_CTX_free(md);
    wolfSSL_EVP_PKEY_free(priv);
    wolfSSL_EVP_PKEY_free(pub);
    wolfSSL_BIO_free(b);
    wolfSSL_ERR_clear_error();
    return ok;
}

static bool load_file(const char *path, struct loaded *l, struct dt_buf *err)
{
    memset(l, 0, sizeof(*l));
    size_t len;
    char *pem = read_file(path, &len);
    if (!pem) {
        dt_buf_appendf(err, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    l->leaf = wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem, (int)len,
                                                   WOLFSSL_FILETYPE_PEM);
    wolfSSL_ERR_clear_error();
    if (!l->leaf) {
        free(pem);
        dt_buf_appendf(err, "%s: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
                       path);
        return false;
    }
    l->ctx = new_ctx();
    if (!l->ctx) {
        free(pem);
        lib_error(err, path, "cannot make a TLS context");
        return false;
    }
    /* the leaf, then the rest of the chain */
    if (wolfSSL_CTX_use_certificate_chain_buffer(l->ctx, (const unsigned char *)pem, (long)len) !=
        WOLFSSL_SUCCESS) {
        free(pem);
        lib_error(err, path, "the certificate cannot be used");
        return false;
    }
    /* the key: in the file, else in NAME.key beside NAME.pem */
    char *keypem = pem;
    size_t keylen = len;
    bool have_key = use_key(l->ctx, keypem, keylen);
    char beside[4096];
    if (!have_key && tls_key_beside(path, beside, sizeof(beside))) {
        keypem = read_file(beside, &keylen);
        have_key = use_key(l->ctx, keypem, keylen);
    }
    if (!have_key) {
        if (keypem != pem)
            free(keypem);
        free(pem);
        tls_no_key(err, path, beside);
        return false;
    }
    read_key_type(l);
    bool matches = key_matches(l, keypem, keylen);
    if (keypem != pem)
        free(keypem);
    free(pem);
    if (!matches) {
        dt_buf_appendf(err, "%s: the private key does not match the certificate", path);
        return false;
    }
    read_names(l);
    if (!l->names.n) {
        dt_buf_appendf(err, "%s: the certificate names no host (no DNS subjectAltName)", path);
        return false;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (wolfSSL_ASN1_TIME_to_tm(wolfSSL_X509_get_notAfter(l->leaf), &tm) != WOLFSSL_SUCCESS) {
        wolfSSL_ERR_clear_error();
        dt_buf_appendf(err, "%s: unreadable notAfter date", path);
        return false;
    }
    l->not_after = timegm(&tm);
    return true;
}

/* Adds a loaded certificate (taking its context): into the group of the same names that
 * lacks its key type, or a new one. */
static void add_cert(struct dt_tls_set *s, struct loaded *l)
{
    char *key = tls_cert_names_key(&l->names);
    size_t i = 0;
    while (i < s->ngroups && !(strcmp(s->groups[i].key, key) == 0 && !s->groups[i].ctx[l->type]))
        i++;
    if (i == s->ngroups) {
        s->groups = dt_xrealloc(s->groups, (s->ngroups + 1) * sizeof(*s->groups));
        memset(&s->groups[i], 0, sizeof(s->groups[i]));
        s->groups[i].key = key;
        s->ngroups++;
    } else {
        free(key);
    }
    s->groups[i].ctx[l->type] = l->ctx;
    l->ctx = NULL;
    if (l->type == KEY_EC)
        s->groups[i].ec_scheme = l->ec_scheme;
    s->ncerts++;
    tls_names_add(&s->names, &l->names, i, l->not_after);
}

static bool load_path(void *set, const char *path, struct dt_buf *err)
{
    struct dt_tls_set *s = set;
    struct loaded l;
    bool ok = load_file(path, &l, err);
    if (ok)
        add_cert(s, &l);
    loaded_free(&l);
    return ok;
}

struct dt_tls_set *dt_tls_load(const char *const *paths, size_t npaths, const char *const *dirs,
                               size_t ndirs, bool alpn_h2, struct dt_buf *err)
{
    pthread_once(&init_once, init_library);
    struct dt_tls_set *s = dt_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->h2 = alpn_h2;
    bool ok = tls_load_all(paths, npaths, dirs, ndirs, load_path, s, err);
#ifdef FP_ECC
    wc_ecc_fp_free(); /* this thread's tables from checking the keys */
#endif
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
    for (size_t i = 0; i < s->ngroups; i++) {
        for (int t = 0; t < KEY_TYPES; t++)
            wolfSSL_CTX_free(s->groups[i].ctx[t]);
        free(s->groups[i].key);
    }
    tls_names_dispose(&s->names);
    free(s->groups);
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

/* ---- the ClientHello, read before wolfSSL --------------------------------------------------- */

static bool offers_group(const struct tls_hello *h, unsigned group)
{
    for (size_t i = 0; i < h->ngroups; i++)
        if (h->groups[i] == group)
            return true;
    return false;
}

/* The supported group of an EC certificate's curve, from its TLS 1.3 signature scheme. */
static unsigned ec_group(unsigned scheme)
{
    return scheme == 0x0503 ? 0x0018 : scheme == 0x0603 ? 0x0019 : 0x0017;
}

/* TLS 1.2: whether the client's signature algorithms (if it says) take a key of type t. */
static bool signs12(const struct tls_hello *h, unsigned t)
{
    if (!h->has_sigalgs)
        return t != KEY_OTHER;
    for (size_t i = 0; i < h->nsigalgs; i++) {
        unsigned a = h->sigalgs[i], hash = a >> 8, sig = a & 0xff;
        if (t == KEY_EC && sig == 3 && hash >= 2 && hash <= 6)
            return true;
        if (t == KEY_RSA && ((sig == 1 && hash >= 2 && hash <= 6) || (a >= 0x0804 && a <= 0x0806)))
            return true;
        if (t == KEY_OTHER && a >= 0x0807 && a <= 0x080b)
            return true;
    }
    return false;
}

/* The key type a TLS 1.3 signature scheme signs with in group g, or -1. */
static int scheme_type(const struct group *g, unsigned a)
{
    if (g->ctx[KEY_EC] && a == g->ec_scheme)
        return KEY_EC;
    if (g->ctx[KEY_RSA] && a >= 0x0804 && a <= 0x0806)
        return KEY_RSA;
    if (g->ctx[KEY_OTHER] && a >= 0x0807 && a <= 0x080b)
        return KEY_OTHER;
    return -1;
}

/* The context of group g for the client, as OpenSSL chooses a certificate: TLS 1.3, by the
 * first of the client's signature schemes that a certificate signs with; TLS 1.2, by the
 * first of the client's suites that a certificate serves (an ECDSA one only on a curve the
 * client names). None: any, and the handshake fails in wolfSSL as it would in OpenSSL. */
static WOLFSSL_CTX *pick_type(const struct group *g, const struct tls_hello *h)
{
    if (h && h->tls13) {
        for (size_t i = 0; i < h->nsigalgs; i++) {
            int t = scheme_type(g, h->sigalgs[i]);
            if (t >= 0)
                return g->ctx[t];
        }
    } else if (h) {
        for (size_t i = 0; i < h->nsuites; i++) {
            int want = tls_suite_type(h->suites[i]);
            if (want == KEY_RSA && g->ctx[KEY_RSA] && signs12(h, KEY_RSA))
                return g->ctx[KEY_RSA];
            if (want == KEY_EC && g->ctx[KEY_EC] && signs12(h, KEY_EC) &&
                (!h->has_groups || offers_group(h, ec_group(g->ec_scheme))))
                return g->ctx[KEY_EC];
            if (want == KEY_EC && g->ctx[KEY_OTHER] && signs12(h, KEY_OTHER))
                return g->ctx[KEY_OTHER];
        }
    }
    static const unsigned order[] = {KEY_EC, KEY_RSA, KEY_OTHER};
    for (int i = 0; i < KEY_TYPES; i++)
        if (g->ctx[order[i]])
            return g->ctx[order[i]];
    return NULL;
}

/* The context for a client: its server name's group, else the first certificate's. */
static WOLFSSL_CTX *pick_ctx(const struct dt_tls_set *s, const struct tls_hello *h)
{
    long gi =
        h && h->host[0] ? tls_names_find(&s->names, dt_str_make(h->host, strlen(h->host))) : -1;
    if (h && h->host[0] && gi < 0)
        tls_unknown_name(h->host);
    return pick_type(&s->groups[gi > 0 ? gi : 0], h);
}

/* TLS 1.2's key exchange group: the client's first of ours (X25519, P-256, P-384), any of
 * them if it names none, 0 if it names only others. */
static unsigned group12(const struct tls_hello *h)
{
    if (!h->has_groups)
        return WOLFSSL_ECC_X25519;
    for (size_t i = 0; i < h->ngroups; i++)
        if (h->groups[i] == WOLFSSL_ECC_X25519 || h->groups[i] == WOLFSSL_ECC_SECP256R1 ||
            h->groups[i] == WOLFSSL_ECC_SECP384R1)
            return h->groups[i];
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

struct dt_tls_conn {
    WOLFSSL *ssl; /* NULL until the ClientHello is read */
    struct dt_tls_set *set;
    int fd;
    enum dt_tls_failure failure;
    bool eof;          /* the client closed or reset the connection */
    bool no_alpn;      /* ALPN offered nothing we speak */
    bool no_h2;        /* dt_tls_no_h2 */
    bool est;          /* the handshake is done */
    unsigned char *in; /* bytes read from the socket that wolfSSL has yet to read */
    size_t in_off, in_len;
};

struct dt_tls_conn *dt_tls_accept(struct dt_tls_set *s, int fd)
{
    struct dt_tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
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

void dt_tls_free(struct dt_tls_conn *c)
{
    if (!c)
        return;
    wolfSSL_free(c->ssl);
    free(c->in);
    dt_tls_set_unref(c->set);
    free(c);
}

/* Reads ahead: what a small read of wolfSSL's (a record's header) gets from the socket, the
 * rest of it kept in c->in for the next. */
#define READ_AHEAD (16384 + 2048 + 5)
static _Thread_local unsigned char ahead[READ_AHEAD];

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct dt_tls_conn *c = arg;
    size_t want = (size_t)sz;
    if (c->in_off < c->in_len) {
        size_t n = c->in_len - c->in_off < want ? c->in_len - c->in_off : want;
        memcpy(buf, c->in + c->in_off, n);
        c->in_off += n;
        if (c->in_off == c->in_len) {
            free(c->in);
            c->in = NULL;
            c->in_off = c->in_len = 0;
        }
        return (int)n;
    }
    bool small = want < READ_AHEAD / 2;
    ssize_t r = recv(c->fd, small ? (char *)ahead : buf, small ? READ_AHEAD : want, 0);
    if (r > 0) {
        if (!small)
            return (int)r;
        size_t n = (size_t)r < want ? (size_t)r : want;
        memcpy(buf, ahead, n);
        if ((size_t)r > n) {
            c->in = malloc((size_t)r - n);
            if (!c->in)
                return WOLFSSL_CBIO_ERR_GENERAL;
            memcpy(c->in, ahead + n, (size_t)r - n);
            c->in_off = 0;
            c->in_len = (size_t)r - n;
        }
        return (int)n;
    }
    if (r == 0) {
        c->eof = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    switch (errno) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return WOLFSSL_CBIO_ERR_WANT_READ;
    case EINTR:
        return WOLFSSL_CBIO_ERR_ISR;
    case ECONNRESET:
        c->eof = true;
        return WOLFSSL_CBIO_ERR_CONN_RST;
    }
    return WOLFSSL_CBIO_ERR_GENERAL;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct dt_tls_conn *c = arg;
    ssize_t r = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
    if (r >= 0)
        return (int)r;
    switch (errno) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    case EINTR:
        return WOLFSSL_CBIO_ERR_ISR;
    case EPIPE:
    case ECONNRESET:
        c->eof = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    return WOLFSSL_CBIO_ERR_GENERAL;
}

/* Makes the wolfSSL connection on the context the ClientHello picks (h NULL: the first
 * certificate's), with the ALPN protocol and TLS 1.2 group it picks: 1, or DT_TLS_ERROR. */
static ssize_t start_ssl(struct dt_tls_conn *c, const struct tls_hello *h)
{
    unsigned group = h && !h->tls13 ? group12(h) : 0;
    if (h && !h->tls13 && !group) {
        /* TLS 1.2 with no group of ours: no ECDHE suite can be, as OpenSSL says (wolfSSL
         * would take any curve it knows) */
        static const unsigned char handshake_failure[] = {21, 3, 3, 0, 2, 2, 40};
        (void)send(c->fd, handshake_failure, sizeof(handshake_failure), MSG_NOSIGNAL);
        c->failure = DT_TLS_FAIL_CIPHER;
        return DT_TLS_ERROR;
    }
    WOLFSSL_CTX *ctx = pick_ctx(c->set, h);
    note_ecc_thread();
    c->ssl = ctx ? wolfSSL_new(ctx) : NULL;
    if (!c->ssl)
        return DT_TLS_ERROR;
    wolfSSL_SSLSetIORecv(c->ssl, io_recv);
    wolfSSL_SSLSetIOSend(c->ssl, io_send);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (group && wolfSSL_UseSupportedCurve(c->ssl, (word16)group) != WOLFSSL_SUCCESS)
        return DT_TLS_ERROR;
    /* the server name acknowledged, as OpenSSL does (wolfSSL answers a name it was given) */
    if (h && h->host[0] &&
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, h->host, (unsigned short)strlen(h->host)) !=
            WOLFSSL_SUCCESS)
        return DT_TLS_ERROR;
    /* ALPN: ours first, h2 then http/1.1; no overlap, a no_application_protocol alert */
    bool h2 = c->set->h2 && !c->no_h2;
    const char *ours = h2 ? "h2,http/1.1" : "http/1.1";
    const char *pick = ours;
    if (h && h->has_alpn) {
        pick = h2 && h->alpn_h2 ? "h2" : h->alpn_http11 ? "http/1.1" : NULL;
        c->no_alpn = !pick;
        if (!pick)
            pick = ours;
    }
    if ((!h || h->has_alpn) && wolfSSL_UseALPN(c->ssl, (char *)pick, (unsigned)strlen(pick),
                                               WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS)
        return DT_TLS_ERROR;
    return 1;
}

/* Reads the ClientHello into c->in, then starts wolfSSL on it: 1 when it has started, else
 * what dt_tls_read returns. */
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
        if (what == TLS_FIRST_CONNECT || what == TLS_FIRST_NOT_TLS) {
            c->failure = what == TLS_FIRST_CONNECT ? DT_TLS_FAIL_OTHER : DT_TLS_FAIL_PROTOCOL;
            return DT_TLS_ERROR;
        }
        if (what == TLS_FIRST_HELLO || what == TLS_FIRST_OTHER) {
            struct tls_hello h;
            bool parsed = what == TLS_FIRST_HELLO && tls_hello_parse(body, blen, &h);
            free(copy);
            return start_ssl(c, parsed ? &h : NULL);
        }
        if (c->in_len == TLS_HELLO_MAX)
            return start_ssl(c, NULL);
        int r = tls_read_more(c->fd, &c->in, &c->in_len);
        if (r == DT_TLS_ERROR) {
            c->eof = true;
            c->failure = DT_TLS_FAIL_CLOSED;
        }
        if (r != 1)
            return r;
    }
}

/* Why the handshake failed, from wolfSSL's error and the alerts. */
static enum dt_tls_failure classify(struct dt_tls_conn *c, int err)
{
    if (c->eof || err == WOLFSSL_ERROR_SYSCALL || err == SOCKET_PEER_CLOSED_E)
        return DT_TLS_FAIL_CLOSED;
    if (c->no_alpn || err == UNKNOWN_ALPN_PROTOCOL_NAME_E)
        return DT_TLS_FAIL_CIPHER;
    switch (err) {
    case VERSION_ERROR:
    case UNSUPPORTED_PROTO_VERSION:
        return DT_TLS_FAIL_PROTOCOL;
    case MATCH_SUITE_ERROR:
    case UNSUPPORTED_SUITE:
    case KEY_SHARE_ERROR:
    case BAD_KEY_SHARE_DATA:
    case ECC_CURVE_ERROR:
    case SUITES_ERROR:
        return DT_TLS_FAIL_CIPHER;
    }
    WOLFSSL_ALERT_HISTORY alerts;
    if (wolfSSL_get_alert_history(c->ssl, &alerts) == WOLFSSL_SUCCESS &&
        alerts.last_rx.level == alert_fatal && alerts.last_rx.code == protocol_version)
        return DT_TLS_FAIL_PROTOCOL;
    return DT_TLS_FAIL_OTHER;
}

static ssize_t outcome(struct dt_tls_conn *c, int n)
{
    int err = wolfSSL_get_error(c->ssl, n);
    switch (err) {
    case WOLFSSL_ERROR_WANT_READ:
        return DT_TLS_WANT_READ;
    case WOLFSSL_ERROR_WANT_WRITE:
        return DT_TLS_WANT_WRITE;
    case WOLFSSL_ERROR_ZERO_RETURN:
        wolfSSL_ERR_clear_error();
        return 0;
    }
    bool before = !wolfSSL_is_init_finished(c->ssl);
    enum dt_tls_failure f = classify(c, err);
    wolfSSL_ERR_clear_error();
    if (before)
        c->failure = f;
    /* a client that closes without close_notify ends the stream: as EOF */
    return f == DT_TLS_FAIL_CLOSED && !before ? 0 : DT_TLS_ERROR;
}

ssize_t dt_tls_read(struct dt_tls_conn *c, void *buf, size_t n)
{
    if (!c->ssl) {
        ssize_t r = read_hello(c);
        if (r <= 0)
            return r;
    }
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = wolfSSL_read(c->ssl, buf, len);
    if (!c->est && wolfSSL_is_init_finished(c->ssl)) {
        /* the handshake's secrets and randoms are not needed any more: 5 KiB less an idle
         * connection holds */
        c->est = true;
        wolfSSL_FreeArrays(c->ssl);
    }
    return r > 0 ? r : outcome(c, r);
}

ssize_t dt_tls_write(struct dt_tls_conn *c, const void *buf, size_t n)
{
    if (!c->ssl)
        return DT_TLS_WANT_READ; /* the handshake has not begun */
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    int r = wolfSSL_write(c->ssl, buf, len);
    if (r > 0)
        return r;
    ssize_t o = outcome(c, r);
    return o == 0 ? DT_TLS_ERROR : o;
}

void dt_tls_close_notify(struct dt_tls_conn *c)
{
    if (c->ssl && wolfSSL_is_init_finished(c->ssl))
        (void)wolfSSL_shutdown(c->ssl);
    wolfSSL_ERR_clear_error();
}

bool dt_tls_established(const struct dt_tls_conn *c)
{
    return c->ssl && wolfSSL_is_init_finished(c->ssl);
}

bool dt_tls_resumed(const struct dt_tls_conn *c)
{
    return c->ssl && wolfSSL_session_reused(c->ssl);
}

bool dt_tls_h2(const struct dt_tls_conn *c)
{
    char *p = NULL;
    unsigned short len = 0;
    if (!c->ssl || wolfSSL_ALPN_GetProtocol(c->ssl, &p, &len) != WOLFSSL_SUCCESS)
        return false;
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

enum dt_tls_failure dt_tls_failure(const struct dt_tls_conn *c)
{
    return c->failure;
}

const char *dt_tls_version(const struct dt_tls_conn *c)
{
    return c->ssl ? wolfSSL_get_version(c->ssl) : "TLSv1.3"; /* as OpenSSL says before */
}

void dt_tls_closing(struct dt_tls_conn *c)
{
    (void)c; /* wolfSSL sends its close_notify on its own */
}

const char *dt_tls_engine(const struct dt_tls_conn *c)
{
    return c->ssl ? "wolfssl" : "";
}

bool dt_tls_alpn_challenge_set(const char *name, const char *cert, const char *key)
{
    (void)name;
    (void)cert;
    (void)key;
    return false; /* TLS-ALPN-01 is the OpenSSL build's (docs/acme.md) */
}

void dt_tls_alpn_challenge_clear(const char *name)
{
    (void)name;
}
