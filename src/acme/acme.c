/* acme: the ACME client (acme.h). Requests are JWS (RFC 7515) signed with ES256: the
 * account's JWK until the account is known, its URL ("kid") after. Every POST carries a
 * fresh nonce from the CA (the last response's Replay-Nonce, or newNonce); a badNonce error
 * is retried with the nonce it came with (RFC 8555 6.5), a few times. */
#include "acme/internal.h"

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    NONCE_RETRIES = 20,     /* badNonce: sent again this many times at most (a CA that
                               rejects half the nonces fails one request in 2^21) */
    BODY_MAX = 1024 * 1024, /* a response's body (a chain is a few KB) */
    REQUEST_TIMEOUT_MS = 30000,
    POLL_DEFAULT_MS = 1000, /* between polls when the CA says nothing */
    POLL_MAX_MS = 10000,    /* at most, whatever Retry-After says */
};

struct dt_acme {
    char *directory, *ca_file, *email;
    bool http01, tls_alpn01;
    bool (*publish)(void *ctx, const struct dt_acme_challenge *ch);
    void (*unpublish)(void *ctx, const struct dt_acme_challenge *ch);
    void *ctx;
    bool (*cancelled)(void *ctx);
    long poll_limit_ms;
    EVP_PKEY *key;
    char *jwk;        /* the account key's JWK, members in RFC 7638's order */
    char *thumbprint; /* its SHA-256 thumbprint, base64url */
    char *kid;        /* the account's URL, once known */
    char *new_nonce, *new_account, *new_order; /* from the directory */
    char *renewal_info;                        /* RFC 9773, or NULL: the CA has none */
    char *nonce;                               /* the next request's */
    CURL *curl;
    unsigned long bad_nonces;
    bool failed; /* the last order failed: the next one starts from the directory again */
};

/* ---- encodings -------------------------------------------------------------------------- */

void dt_acme_b64url(struct dt_buf *out, const unsigned char *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {a[v >> 18 & 63], a[v >> 12 & 63], a[v >> 6 & 63], a[v & 63]};
        dt_buf_append(out, q, i + 2 < n ? 4 : i + 1 < n ? 3 : 2);
    }
}

static void b64url_str(struct dt_buf *out, const char *s)
{
    dt_acme_b64url(out, (const unsigned char *)s, strlen(s));
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(dt_xmalloc(n), s, n);
}

static char *xstrdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* ---- the account key ---------------------------------------------------------------------- */

/* Reads the key at path, or makes one and writes it there (mode 600, whole or not at all). */
static EVP_PKEY *account_key(const char *path, struct dt_buf *err)
{
    FILE *f = fopen(path, "r");
    if (f) {
        EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        ERR_clear_error();
        if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC) {
            EVP_PKEY_free(k);
            dt_buf_appendf(err, "%s: not an ECDSA private key in PEM", path);
            return NULL;
        }
        return k;
    }
    if (errno != ENOENT) {
        dt_buf_appendf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = EVP_EC_gen("P-256");
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = n > 0 && (size_t)n < sizeof(tmp) ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    bool ok = k && out && PEM_write_PrivateKey(out, k, NULL, NULL, 0, NULL, NULL) == 1 &&
              fflush(out) == 0 && fsync(fd) == 0;
    if (out)
        ok = fclose(out) == 0 && ok;
    else if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, path) != 0)
        ok = false;
    ERR_clear_error();
    if (!ok) {
        dt_buf_appendf(err, "%s: cannot write the account key: %s", path, strerror(errno));
        unlink(tmp);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* The JWK of an EC P-256 key (RFC 7518 6.2.1), members in lexicographic order so that it
 * is also the thumbprint's input (RFC 7638 3). */
static char *jwk_of(EVP_PKEY *k)
{
    unsigned char pub[65];
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len) != 1 ||
        len != 65 || pub[0] != 4)
        return NULL;
    struct dt_buf b;
    dt_buf_init(&b);
    dt_buf_appendf(&b, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"");
    dt_acme_b64url(&b, pub + 1, 32);
    dt_buf_appendf(&b, "\",\"y\":\"");
    dt_acme_b64url(&b, pub + 33, 32);
    dt_buf_appendf(&b, "\"}");
    dt_buf_terminate(&b);
    return b.ptr;
}

/* ES256 over in: the JWS signature, r and s of 32 bytes each (RFC 7518 3.4). */
static bool es256(EVP_PKEY *k, const struct dt_buf *in, struct dt_buf *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t dlen = sizeof(der);
    bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestSign(md, der, &dlen, (const unsigned char *)in->ptr, in->len) == 1;
    EVP_MD_CTX_free(md);
    const unsigned char *p = der;
    ECDSA_SIG *sig = ok ? d2i_ECDSA_SIG(NULL, &p, (long)dlen) : NULL;
    unsigned char raw[64];
    ok = sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    ERR_clear_error();
    if (ok)
        dt_acme_b64url(out, raw, 64);
    return ok;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct acme_response *r = userdata;
    if (r->body.len + size * n > BODY_MAX)
        return 0; /* too long: the transfer fails */
    dt_buf_append(&r->body, p, size * n);
    return size * n;
}

static bool cancelled(const struct dt_acme *a)
{
    return a->cancelled && a->cancelled(a->ctx);
}

static int on_progress(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return cancelled(p) ? 1 : 0; /* non-zero: the transfer is aborted */
}

/* One request: GET (body NULL, head false), HEAD (head), or POST of body as JOSE JSON. */
static bool http(struct dt_acme *a, const char *url, const struct dt_buf *body, bool head,
                 struct acme_response *r, struct dt_buf *err)
{
    CURL *c = a->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "detour-acme/" DETOUR_VERSION);
    if (a->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, dt_acme_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (a->cancelled) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    struct curl_slist *h = NULL;
    if (head) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (body) {
        h = curl_slist_append(h, "Content-Type: application/jose+json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->ptr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        dt_buf_appendf(err, "%s: %s", url, curl_easy_strerror(rc));
        return false;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    dt_buf_terminate(&r->body);
    if (r->nonce) { /* every response's nonce is the next request's */
        free(a->nonce);
        a->nonce = r->nonce;
        r->nonce = NULL;
    }
    return true;
}

static bool fresh_nonce(struct dt_acme *a, struct dt_buf *err)
{
    if (a->nonce)
        return true;
    struct acme_response r;
    dt_acme_response_init(&r);
    bool ok = http(a, a->new_nonce, NULL, true, &r, err);
    if (ok && !a->nonce) {
        dt_buf_appendf(err, "%s: no Replay-Nonce", a->new_nonce);
        ok = false;
    }
    dt_acme_response_dispose(&r);
    return ok;
}

/* A signed POST of payload (NULL: POST-as-GET, an empty payload) to url: true with the
 * response in r (any status), after badNonce retries. */
static bool post(struct dt_acme *a, const char *url, const char *payload, struct acme_response *r,
                 struct dt_buf *err)
{
    for (int attempt = 0;; attempt++) {
        if (!fresh_nonce(a, err))
            return false;
        struct dt_buf prot, jws;
        dt_buf_init(&prot);
        dt_buf_init(&jws);
        json_t *ph = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", a->nonce, "url", url);
        if (a->kid)
            json_object_set_new(ph, "kid", json_string(a->kid));
        else
            json_object_set_new(ph, "jwk", json_loads(a->jwk, 0, NULL));
        char *phs = json_dumps(ph, JSON_COMPACT);
        json_decref(ph);
        free(a->nonce); /* used */
        a->nonce = NULL;
        b64url_str(&prot, phs);
        free(phs);
        struct dt_buf input;
        dt_buf_init(&input);
        dt_buf_append(&input, prot.ptr, prot.len);
        dt_buf_append(&input, ".", 1);
        size_t payload_at = input.len;
        if (payload)
            b64url_str(&input, payload);
        dt_buf_appendf(&jws, "{\"protected\":\"%.*s\",\"payload\":\"%.*s\",\"signature\":\"",
                       (int)prot.len, prot.ptr, (int)(input.len - payload_at),
                       input.ptr + payload_at);
        bool ok = es256(a->key, &input, &jws);
        dt_buf_append(&jws, "\"}", 2);
        dt_buf_dispose(&input);
        dt_buf_dispose(&prot);
        if (!ok) {
            dt_buf_dispose(&jws);
            dt_buf_appendf(err, "cannot sign a request with the account key");
            return false;
        }
        dt_acme_response_dispose(r);
        dt_acme_response_init(r);
        ok = http(a, url, &jws, false, r, err);
        dt_buf_dispose(&jws);
        if (!ok)
            return false;
        if (!dt_acme_is_bad_nonce(r) || attempt == NONCE_RETRIES)
            return true;
        a->bad_nonces++;
    }
}

/* ---- the directory and the account ---------------------------------------------------- */

static bool directory(struct dt_acme *a, struct dt_buf *err)
{
    if (a->new_order)
        return true;
    struct acme_response r;
    dt_acme_response_init(&r);
    struct acme_directory d;
    bool ok = http(a, a->directory, NULL, false, &r, err) &&
              dt_acme_read_directory(&r, a->directory, &d, err);
    if (ok) {
        a->new_nonce = d.new_nonce;
        a->new_account = d.new_account;
        a->new_order = d.new_order;
        a->renewal_info = d.renewal_info;
    }
    dt_acme_response_dispose(&r);
    return ok;
}

static bool account(struct dt_acme *a, struct dt_buf *err)
{
    if (a->kid)
        return true;
    json_t *p = json_pack("{s:b}", "termsOfServiceAgreed", 1);
    if (a->email) {
        char contact[512];
        snprintf(contact, sizeof(contact), "mailto:%s", a->email);
        json_object_set_new(p, "contact", json_pack("[s]", contact));
    }
    char *payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct acme_response r;
    dt_acme_response_init(&r);
    bool ok = post(a, a->new_account, payload, &r, err);
    free(payload);
    if (ok && (r.status != 200 && r.status != 201)) {
        dt_acme_problem(&r, "newAccount", err);
        ok = false;
    } else if (ok && !r.location) {
        dt_buf_appendf(err, "newAccount: no Location for the account");
        ok = false;
    }
    if (ok) {
        a->kid = r.location;
        r.location = NULL;
    }
    dt_acme_response_dispose(&r);
    return ok;
}

struct dt_acme *dt_acme_new(const struct dt_acme_config *c, struct dt_buf *err)
{
    EVP_PKEY *k = account_key(c->account_key, err);
    if (!k)
        return NULL;
    char *jwk = jwk_of(k);
    CURL *curl = curl_easy_init();
    if (!jwk || !curl) {
        dt_buf_appendf(err, "%s: cannot use the account key", c->account_key);
        free(jwk);
        curl_easy_cleanup(curl);
        EVP_PKEY_free(k);
        return NULL;
    }
    struct dt_acme *a = dt_xcalloc(1, sizeof(*a));
    a->directory = xstrdup(c->directory);
    a->ca_file = xstrdup_or_null(c->ca_file);
    a->email = xstrdup_or_null(c->email);
    a->http01 = c->http01;
    a->tls_alpn01 = c->tls_alpn01;
    a->publish = c->publish;
    a->unpublish = c->unpublish;
    a->cancelled = c->cancelled;
    a->ctx = c->ctx;
    a->poll_limit_ms = c->poll_limit_ms > 0 ? c->poll_limit_ms : 120000;
    a->key = k;
    a->jwk = jwk;
    a->curl = curl;
    unsigned char d[32];
    unsigned dlen = 0;
    EVP_Digest(jwk, strlen(jwk), d, &dlen, EVP_sha256(), NULL);
    struct dt_buf t;
    dt_buf_init(&t);
    dt_acme_b64url(&t, d, dlen);
    dt_buf_terminate(&t);
    a->thumbprint = t.ptr;
    return a;
}

void dt_acme_free(struct dt_acme *a)
{
    if (!a)
        return;
    free(a->directory);
    free(a->ca_file);
    free(a->email);
    EVP_PKEY_free(a->key);
    free(a->jwk);
    free(a->thumbprint);
    free(a->kid);
    free(a->new_nonce);
    free(a->new_account);
    free(a->new_order);
    free(a->renewal_info);
    free(a->nonce);
    curl_easy_cleanup(a->curl);
    free(a);
}

unsigned long dt_acme_bad_nonces(const struct dt_acme *a)
{
    return a->bad_nonces;
}

/* ---- orders --------------------------------------------------------------------------- */

/* Waits ms, in steps of 100 ms so that a cancellation is seen: false if cancelled. */
static bool pause_ms(const struct dt_acme *a, long ms)
{
    for (long left = ms; left > 0; left -= 100) {
        if (cancelled(a))
            return false;
        long step = left < 100 ? left : 100;
        struct timespec ts = {0, step * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return !cancelled(a);
}

/* POST-as-GET url until its "status" is not one of the waiting ones (honouring Retry-After,
 * up to the poll limit): the object, or NULL with why. */
static json_t *poll_until(struct dt_acme *a, const char *url, const char *const *waiting,
                          const char *what, struct dt_buf *err)
{
    uint64_t start = dt_now_ms();
    for (;;) {
        struct acme_response r;
        dt_acme_response_init(&r);
        if (!post(a, url, NULL, &r, err)) {
            dt_acme_response_dispose(&r);
            return NULL;
        }
        json_t *j = r.status == 200 ? dt_acme_body_json(&r) : NULL;
        if (!j) {
            dt_acme_problem(&r, what, err);
            dt_acme_response_dispose(&r);
            return NULL;
        }
        const char *status = json_string_value(json_object_get(j, "status"));
        bool wait = false;
        for (size_t i = 0; status && waiting[i]; i++)
            wait = wait || strcmp(status, waiting[i]) == 0;
        long ms = r.retry_after_ms >= 0 ? r.retry_after_ms : POLL_DEFAULT_MS;
        dt_acme_response_dispose(&r);
        if (!wait)
            return j;
        json_decref(j);
        if (dt_now_ms() - start > (uint64_t)a->poll_limit_ms) {
            dt_buf_appendf(err, "%s: still %s after %ld s", what, status, a->poll_limit_ms / 1000);
            return NULL;
        }
        if (!pause_ms(a, ms < 100 ? 100 : ms > POLL_MAX_MS ? POLL_MAX_MS : ms)) {
            dt_buf_appendf(err, "%s: cancelled", what);
            return NULL;
        }
    }
}

/* One authorization: valid already, or by its HTTP-01 challenge. */
static bool authorize(struct dt_acme *a, const char *url, struct dt_buf *err)
{
    static const char *const pending[] = {"pending", NULL};
    struct acme_response r;
    dt_acme_response_init(&r);
    bool ok = post(a, url, NULL, &r, err);
    json_t *j = ok && r.status == 200 ? dt_acme_body_json(&r) : NULL;
    if (ok && !j)
        dt_acme_problem(&r, "authorization", err);
    dt_acme_response_dispose(&r);
    if (!j)
        return false;
    struct acme_authz az;
    int rc = dt_acme_read_authz(j, a->http01, a->tls_alpn01, &az, err);
    if (rc != 0) {
        json_decref(j);
        return rc == 1;
    }
    const char *kind = az.kind;
    char *tok = xstrdup(az.token), *chal_url = xstrdup(az.url);
    char *name = xstrdup(az.host ? az.host : "?");
    json_decref(j);
    struct dt_buf ka;
    dt_buf_init(&ka);
    dt_buf_appendf(&ka, "%s.%s", tok, a->thumbprint);
    dt_buf_terminate(&ka);
    struct dt_acme_challenge ch = {kind, name, tok, ka.ptr};
    ok = !a->publish || a->publish(a->ctx, &ch);
    if (!ok)
        dt_buf_appendf(err, "%s: cannot answer its %s challenge", name, kind);
    dt_acme_response_init(&r);
    ok = ok && post(a, chal_url, "{}", &r, err);
    if (ok && r.status != 200) {
        dt_acme_problem(&r, name, err);
        ok = false;
    }
    dt_acme_response_dispose(&r);
    if (ok) {
        j = poll_until(a, url, pending, name, err);
        ok = j && strcmp(dt_acme_jstr(j, "status"), "valid") == 0;
        if (j && !ok)
            dt_acme_object_error(j, name, err);
        json_decref(j);
    }
    if (a->unpublish)
        a->unpublish(a->ctx, &ch);
    dt_buf_dispose(&ka);
    free(tok);
    free(chal_url);
    free(name);
    return ok;
}

/* A CSR for names with key, DER and base64url into out. */
static bool csr(EVP_PKEY *key, const char *const *names, size_t n, struct dt_buf *out)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *subject = X509_NAME_new();
    struct dt_buf san;
    dt_buf_init(&san);
    for (size_t i = 0; i < n; i++)
        dt_buf_appendf(&san, "%sDNS:%s", i ? "," : "", names[i]);
    dt_buf_terminate(&san);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san.ptr);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    bool ok = req && subject && ext && exts &&
              X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                         (const unsigned char *)names[0], -1, -1, 0) == 1 &&
              X509_REQ_set_subject_name(req, subject) == 1 && X509_REQ_set_pubkey(req, key) == 1 &&
              sk_X509_EXTENSION_push(exts, ext) > 0 && X509_REQ_add_extensions(req, exts) == 1 &&
              X509_REQ_sign(req, key, EVP_sha256()) > 0;
    if (exts)
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    else
        X509_EXTENSION_free(ext);
    unsigned char *der = NULL;
    int len = ok ? i2d_X509_REQ(req, &der) : -1;
    if (len > 0)
        dt_acme_b64url(out, der, (size_t)len);
    OPENSSL_free(der);
    X509_NAME_free(subject);
    X509_REQ_free(req);
    dt_buf_dispose(&san);
    ERR_clear_error();
    return len > 0;
}

/* The chain's first certificate has key's public key, and names every name. */
static bool chain_fits(const struct dt_buf *chain, EVP_PKEY *key, const char *const *names,
                       size_t n, struct dt_buf *err)
{
    BIO *b = BIO_new_mem_buf(chain->ptr, (int)chain->len);
    X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    bool ok = leaf && X509_check_private_key(leaf, key) == 1;
    if (leaf && !ok)
        dt_buf_appendf(err, "the certificate's key is not the order's");
    else if (!leaf)
        dt_buf_appendf(err, "the certificate is not PEM");
    for (size_t i = 0; ok && i < n; i++)
        if (X509_check_host(leaf, names[i], 0, 0, NULL) != 1) {
            dt_buf_appendf(err, "the certificate does not name %s", names[i]);
            ok = false;
        }
    X509_free(leaf);
    ERR_clear_error();
    return ok;
}

static bool order_names(struct dt_acme *a, const char *const *names, size_t n,
                        struct dt_acme_cert *out, struct dt_buf *err);

bool dt_acme_order(struct dt_acme *a, const char *const *names, size_t n, struct dt_acme_cert *out,
                   struct dt_buf *err)
{
    if (n == 0) {
        dt_buf_appendf(err, "an order needs a name");
        return false;
    }
    if (a->failed) {
        /* the CA may have changed since (moved its endpoints, lost the account): its
         * directory, a nonce and the account again */
        free(a->new_nonce);
        free(a->new_account);
        free(a->new_order);
        free(a->nonce);
        free(a->kid);
        free(a->renewal_info);
        a->new_nonce = a->new_account = a->new_order = a->nonce = a->kid = NULL;
        a->renewal_info = NULL;
        a->failed = false;
    }
    bool ok = order_names(a, names, n, out, err);
    a->failed = !ok;
    return ok;
}

static bool order_names(struct dt_acme *a, const char *const *names, size_t n,
                        struct dt_acme_cert *out, struct dt_buf *err)
{
    static const char *const finalizing[] = {"processing", NULL};
    if (!directory(a, err) || !account(a, err))
        return false;
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", names[i]));
    json_t *p = json_pack("{s:o}", "identifiers", ids);
    char *payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct acme_response r;
    dt_acme_response_init(&r);
    bool ok = post(a, a->new_order, payload, &r, err);
    free(payload);
    json_t *order = ok && r.status == 201 ? dt_acme_body_json(&r) : NULL;
    char *order_url = r.location ? xstrdup(r.location) : NULL;
    if (ok && (!order || !order_url)) {
        dt_acme_problem(&r, "newOrder", err);
        ok = false;
    }
    dt_acme_response_dispose(&r);
    EVP_PKEY *key = NULL;
    char *finalize = NULL, *cert_url = NULL;
    if (!ok)
        goto done;
    const char **authzs = NULL; /* (strings of order) */
    size_t nauthz = 0;
    ok = dt_acme_order_authzs(order, &authzs, &nauthz, err);
    for (size_t i = 0; ok && i < nauthz; i++)
        ok = authorize(a, authzs[i], err);
    free(authzs);
    const char *fin = json_string_value(json_object_get(order, "finalize"));
    if (!ok || !fin) {
        if (ok)
            dt_buf_appendf(err, "newOrder: no finalize URL");
        ok = false;
        goto done;
    }
    finalize = xstrdup(fin);
    /* every authorization valid: the order becomes "ready" */
    json_decref(order);
    order = poll_until(a, order_url, (const char *const[]){"pending", NULL}, "order", err);
    if (!order || strcmp(dt_acme_jstr(order, "status"), "ready") != 0) {
        if (order)
            dt_acme_object_error(order, "order", err);
        ok = false;
        goto done;
    }
    key = EVP_EC_gen("P-256");
    struct dt_buf c;
    dt_buf_init(&c);
    dt_buf_appendf(&c, "{\"csr\":\"");
    ok = key && csr(key, names, n, &c);
    dt_buf_appendf(&c, "\"}");
    dt_buf_terminate(&c);
    if (!ok) {
        dt_buf_appendf(err, "cannot make a CSR");
        dt_buf_dispose(&c);
        goto done;
    }
    dt_acme_response_init(&r);
    ok = post(a, finalize, c.ptr, &r, err);
    dt_buf_dispose(&c);
    if (ok && r.status != 200) {
        dt_acme_problem(&r, "finalize", err);
        ok = false;
    }
    dt_acme_response_dispose(&r);
    if (!ok)
        goto done;
    json_decref(order);
    order = poll_until(a, order_url, finalizing, "order", err);
    const char *cu = order ? json_string_value(json_object_get(order, "certificate")) : NULL;
    if (!order || strcmp(dt_acme_jstr(order, "status"), "valid") != 0 || !cu) {
        if (order)
            dt_acme_object_error(order, "order", err);
        ok = false;
        goto done;
    }
    cert_url = xstrdup(cu);
    dt_acme_response_init(&r);
    ok = post(a, cert_url, NULL, &r, err);
    if (ok && r.status != 200) {
        dt_acme_problem(&r, "certificate", err);
        ok = false;
    }
    if (ok && !chain_fits(&r.body, key, names, n, err))
        ok = false;
    if (ok) {
        dt_buf_append(&out->chain, r.body.ptr, r.body.len);
        BIO *b = BIO_new(BIO_s_mem());
        char *kp = NULL;
        long klen = 0;
        ok = b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1 &&
             (klen = BIO_get_mem_data(b, &kp)) > 0;
        if (ok)
            dt_buf_append(&out->key, kp, (size_t)klen);
        BIO_free(b);
        ERR_clear_error();
    }
    dt_acme_response_dispose(&r);
done:
    json_decref(order);
    free(order_url);
    free(finalize);
    free(cert_url);
    EVP_PKEY_free(key);
    return ok;
}

/* A self-signed certificate for name, valid days, with the critical acmeIdentifier
 * extension holding digest when it is not NULL (32 bytes). */
static bool self_signed(const char *name, long days, const unsigned char *digest,
                        struct dt_acme_cert *out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *subject = X509_NAME_new();
    struct dt_buf san;
    dt_buf_init(&san);
    dt_buf_appendf(&san, "DNS:%s", name);
    dt_buf_terminate(&san);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = x ? X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san.ptr) : NULL;
    unsigned char serial[16];
    BIGNUM *bn = RAND_bytes(serial, sizeof(serial)) == 1 ? BN_bin2bn(serial, 16, NULL) : NULL;
    bool ok = key && x && subject && ext && bn && X509_set_version(x, 2) == 1 &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)name,
                                         -1, -1, 0) == 1 &&
              X509_set_subject_name(x, subject) == 1 && X509_set_issuer_name(x, subject) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
              X509_gmtime_adj(X509_getm_notAfter(x), days * 86400) &&
              X509_set_pubkey(x, key) == 1 && X509_add_ext(x, ext, -1) == 1;
    if (ok && digest) {
        /* id-pe-acmeIdentifier (RFC 8737 6.1): extnValue is the DER of an OCTET STRING */
        unsigned char der[34] = {0x04, 32};
        memcpy(der + 2, digest, 32);
        ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
        ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
        X509_EXTENSION *acme = NULL;
        ok = oid && v && ASN1_OCTET_STRING_set(v, der, sizeof(der)) == 1 &&
             (acme = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, v)) != NULL &&
             X509_add_ext(x, acme, -1) == 1;
        X509_EXTENSION_free(acme);
        ASN1_OCTET_STRING_free(v);
        ASN1_OBJECT_free(oid);
    }
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    if (ok) {
        BIO *b = BIO_new(BIO_s_mem());
        char *p = NULL;
        long n = 0;
        ok = b && PEM_write_bio_X509(b, x) == 1 && (n = BIO_get_mem_data(b, &p)) > 0;
        if (ok)
            dt_buf_append(&out->chain, p, (size_t)n);
        BIO_free(b);
        b = BIO_new(BIO_s_mem());
        ok = ok && b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1 &&
             (n = BIO_get_mem_data(b, &p)) > 0;
        if (ok)
            dt_buf_append(&out->key, p, (size_t)n);
        BIO_free(b);
    }
    BN_free(bn);
    X509_EXTENSION_free(ext);
    X509_NAME_free(subject);
    X509_free(x);
    EVP_PKEY_free(key);
    dt_buf_dispose(&san);
    ERR_clear_error();
    return ok;
}

bool dt_acme_self_signed(const char *name, long days, struct dt_acme_cert *out)
{
    return self_signed(name, days, NULL, out);
}

bool dt_acme_tls_alpn_cert(const char *name, const char *key_authorization,
                           struct dt_acme_cert *out)
{
    unsigned char d[32];
    unsigned dlen = 0;
    if (EVP_Digest(key_authorization, strlen(key_authorization), d, &dlen, EVP_sha256(), NULL) !=
            1 ||
        dlen != 32)
        return false;
    return self_signed(name, 7, d, out);
}

bool dt_acme_cert_info(const char *path, time_t *not_before, time_t *not_after, char *issuer,
                       size_t cap)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    struct tm a, b;
    bool ok = x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &a) == 1 &&
              ASN1_TIME_to_tm(X509_get0_notAfter(x), &b) == 1;
    if (ok) {
        *not_before = timegm(&a);
        *not_after = timegm(&b);
        issuer[0] = '\0';
        X509_NAME *in = X509_get_issuer_name(x);
        int at = X509_NAME_get_index_by_NID(in, NID_commonName, -1);
        ASN1_STRING *cn = at >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(in, at)) : NULL;
        if (cn)
            snprintf(issuer, cap, "%.*s", ASN1_STRING_length(cn),
                     (const char *)ASN1_STRING_get0_data(cn));
    }
    X509_free(x);
    ERR_clear_error();
    return ok;
}

/* ---- renewal information (RFC 9773) -------------------------------------------------------- */

bool dt_acme_cert_id(const char *chain, struct dt_buf *out)
{
    BIO *b = BIO_new_mem_buf(chain, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    const ASN1_OCTET_STRING *aki = x ? X509_get0_authority_key_id(x) : NULL;
    const ASN1_INTEGER *serial = x ? X509_get0_serialNumber(x) : NULL;
    unsigned char *der = NULL;
    int len = serial ? i2d_ASN1_INTEGER(serial, &der) : -1;
    /* the serial's DER without its tag and length: its content octets */
    size_t head = len > 2 && (der[1] & 0x80) ? 2 + (der[1] & 0x7f) : 2;
    bool ok = aki && len > (int)head;
    if (ok) {
        dt_acme_b64url(out, ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
        dt_buf_append(out, ".", 1);
        dt_acme_b64url(out, der + head, (size_t)len - head);
    }
    OPENSSL_free(der);
    X509_free(x);
    ERR_clear_error();
    return ok;
}

int dt_acme_renewal_window(struct dt_acme *a, const char *chain, time_t *start, time_t *end,
                           struct dt_buf *err)
{
    if (!directory(a, err))
        return -1;
    if (!a->renewal_info)
        return 0;
    struct dt_buf url;
    dt_buf_init(&url);
    dt_buf_appendf(&url, "%s%s", a->renewal_info,
                   a->renewal_info[strlen(a->renewal_info) - 1] == '/' ? "" : "/");
    if (!dt_acme_cert_id(chain, &url)) {
        dt_buf_dispose(&url);
        dt_buf_appendf(err, "the certificate has no authority key identifier");
        return -1;
    }
    dt_buf_terminate(&url);
    struct acme_response r;
    dt_acme_response_init(&r);
    int rc = http(a, url.ptr, NULL, false, &r, err) ? 1 : -1;
    json_t *j = rc > 0 && r.status == 200 ? dt_acme_body_json(&r) : NULL;
    if (rc > 0 && !dt_acme_read_window(j, start, end)) {
        if (r.status != 200)
            dt_acme_problem(&r, "renewalInfo", err);
        else
            dt_buf_appendf(err, "renewalInfo: no suggestedWindow with start <= end");
        rc = -1;
    }
    json_decref(j);
    dt_acme_response_dispose(&r);
    dt_buf_dispose(&url);
    return rc;
}
