/* fuzz_acme: any bytes as what an ACME CA answers (src/acme/parse.c): response header lines,
 * the directory, a problem document, an authorization, an order, renewal information and
 * its RFC 3339 times. Each is read or refused with a message, never a crash: a challenge
 * chosen has a kind the client answers, a base64url token and a URL; a directory read has
 * its three URLs; every refusal says why. The first byte picks the document (and the
 * response's status, and the challenges the client answers). */
#include "acme/internal.h"

#include <stdlib.h>

static void headers(const char *p, size_t n)
{
    struct acme_response r;
    dt_acme_response_init(&r);
    /* one line at a time, each with its LF, as libcurl hands them over */
    while (n) {
        const char *lf = memchr(p, '\n', n);
        size_t len = lf ? (size_t)(lf - p) + 1 : n;
        char *line = dt_xmalloc(len); /* exactly the line: no terminator to lean on */
        memcpy(line, p, len);
        if (dt_acme_on_header(line, 1, len, &r) != len)
            abort();
        free(line);
        p += len;
        n -= len;
    }
    if (r.retry_after_ms != -1 && (r.retry_after_ms < 0 || r.retry_after_ms >= 86400L * 1000))
        abort();
    dt_acme_response_dispose(&r);
}

static void directory(struct acme_response *r)
{
    struct acme_directory d;
    struct dt_buf err;
    dt_buf_init(&err);
    if (dt_acme_read_directory(r, "https://ca.example/dir", &d, &err)) {
        if (!d.new_nonce || !d.new_account || !d.new_order || err.len)
            abort();
        free(d.new_nonce);
        free(d.new_account);
        free(d.new_order);
        free(d.renewal_info);
    } else if (!err.len) {
        abort();
    }
    dt_buf_dispose(&err);
}

static void problem(struct acme_response *r)
{
    struct dt_buf err;
    dt_buf_init(&err);
    dt_acme_problem(r, "newOrder", &err);
    dt_buf_terminate(&err);
    if (strncmp(err.ptr, "newOrder: HTTP ", 15))
        abort();
    if (dt_acme_is_bad_nonce(r) && r->status != 400)
        abort();
    dt_buf_dispose(&err);
}

static void authz(struct acme_response *r, unsigned flags)
{
    json_t *j = dt_acme_body_json(r);
    if (!j)
        return;
    struct acme_authz az;
    struct dt_buf err;
    dt_buf_init(&err);
    bool http01 = flags & 1, alpn = flags & 2;
    int rc = dt_acme_read_authz(j, http01, alpn, &az, &err);
    if (rc == 0) {
        if (!az.kind || !az.token || !az.url || err.len)
            abort();
        if (!(http01 && !strcmp(az.kind, "http-01")) && !(alpn && !strcmp(az.kind, "tls-alpn-01")))
            abort(); /* only a challenge the client answers */
        if (strspn(az.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            strlen(az.token))
            abort(); /* the token goes into a URL path and a file name */
    } else if (rc == -1) {
        if (!err.len)
            abort();
    } else if (rc != 1) {
        abort();
    }
    dt_buf_dispose(&err);
    json_decref(j);
}

static void order(struct acme_response *r)
{
    json_t *j = dt_acme_body_json(r);
    if (!j)
        return;
    struct dt_buf err;
    dt_buf_init(&err);
    const char **urls = NULL;
    size_t n = 0;
    if (dt_acme_order_authzs(j, &urls, &n, &err)) {
        for (size_t i = 0; i < n; i++)
            if (!urls[i])
                abort();
        free(urls);
    } else if (!err.len) {
        abort();
    }
    err.len = 0;
    dt_acme_object_error(j, "order", &err);
    if (!err.len)
        abort();
    (void)dt_acme_jstr(j, "status");
    dt_buf_dispose(&err);
    json_decref(j);
}

static void renewal(struct acme_response *r, const char *p, size_t n)
{
    json_t *j = dt_acme_body_json(r);
    time_t start = 0, end = 0;
    if (dt_acme_read_window(j, &start, &end) && start > end)
        abort();
    json_decref(j);
    /* the bytes as one time, in a buffer of exactly their length and its NUL */
    char *s = dt_xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    time_t t;
    (void)dt_acme_rfc3339(s, &t);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const long statuses[] = {200, 201, 400, 403, 404, 429, 500, 503};
    unsigned pick = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct acme_response r;
    dt_acme_response_init(&r);
    r.status = statuses[(pick >> 3) % DT_ARRAY_LEN(statuses)];
    dt_buf_append(&r.body, p, n);
    switch (pick % 6) {
    case 0:
        headers(p, n);
        break;
    case 1:
        directory(&r);
        break;
    case 2:
        problem(&r);
        break;
    case 3:
        authz(&r, pick >> 3);
        break;
    case 4:
        order(&r);
        break;
    default:
        renewal(&r, p, n);
        break;
    }
    dt_acme_response_dispose(&r);
    return 0;
}
