/* parse: what an ACME CA sends, read (internal.h): response headers, the directory, problem
 * documents (RFC 7807), authorizations, orders and renewal information (RFC 9773). Nothing
 * here sends, signs or waits: every input is bytes the CA chose. */
#include "acme/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

/* ---- responses ---------------------------------------------------------------------------- */

void dt_acme_response_init(struct acme_response *r)
{
    memset(r, 0, sizeof(*r));
    dt_buf_init(&r->body);
    r->retry_after_ms = -1;
}

void dt_acme_response_dispose(struct acme_response *r)
{
    dt_buf_dispose(&r->body);
    free(r->nonce);
    free(r->location);
    free(r->content_type);
}

/* A header's value, trimmed, when line is "name: value". */
static char *header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char *s = dt_xmalloc((size_t)(end - v) + 1);
    memcpy(s, v, (size_t)(end - v));
    s[end - v] = '\0';
    return s;
}

size_t dt_acme_on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct acme_response *r = userdata;
    size_t len = size * n;
    char *v;
    if ((v = header_value(p, len, "Replay-Nonce")) != NULL) {
        free(r->nonce);
        r->nonce = v;
    } else if ((v = header_value(p, len, "Location")) != NULL) {
        free(r->location);
        r->location = v;
    } else if ((v = header_value(p, len, "Content-Type")) != NULL) {
        free(r->content_type);
        r->content_type = v;
    } else if ((v = header_value(p, len, "Retry-After")) != NULL) {
        /* seconds (an HTTP-date is taken as "soon") */
        char *end;
        long s = strtol(v, &end, 10);
        r->retry_after_ms = end != v && *end == '\0' && s >= 0 && s < 86400 ? s * 1000 : 1000;
        free(v);
    }
    return len;
}

json_t *dt_acme_body_json(const struct acme_response *r)
{
    json_t *j = json_loadb(r->body.ptr ? r->body.ptr : "", r->body.len, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

const char *dt_acme_jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

void dt_acme_problem(const struct acme_response *r, const char *what, struct dt_buf *err)
{
    json_t *j = json_loadb(r->body.ptr ? r->body.ptr : "", r->body.len, 0, NULL);
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
    dt_buf_appendf(err, "%s: HTTP %ld", what, r->status);
    if (type)
        dt_buf_appendf(err, " %s", type);
    if (detail)
        dt_buf_appendf(err, ": %s", detail);
    json_decref(j);
}

bool dt_acme_is_bad_nonce(const struct acme_response *r)
{
    if (r->status != 400)
        return false;
    json_t *j = json_loadb(r->body.ptr ? r->body.ptr : "", r->body.len, 0, NULL);
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    bool bad = type && strcmp(type, "urn:ietf:params:acme:error:badNonce") == 0;
    json_decref(j);
    return bad;
}

/* ---- the directory ------------------------------------------------------------------------ */

static char *dup_str(const char *s)
{
    return dt_xstrndup(s, strlen(s));
}

bool dt_acme_read_directory(const struct acme_response *r, const char *url,
                            struct acme_directory *d, struct dt_buf *err)
{
    json_t *j = dt_acme_body_json(r);
    const char *nn = j ? json_string_value(json_object_get(j, "newNonce")) : NULL;
    const char *na = j ? json_string_value(json_object_get(j, "newAccount")) : NULL;
    const char *no = j ? json_string_value(json_object_get(j, "newOrder")) : NULL;
    bool ok = r->status == 200 && nn && na && no;
    if (!ok) {
        dt_buf_appendf(err, "%s: not an ACME directory (HTTP %ld)", url, r->status);
    } else {
        d->new_nonce = dup_str(nn);
        d->new_account = dup_str(na);
        d->new_order = dup_str(no);
        const char *ri = json_string_value(json_object_get(j, "renewalInfo"));
        d->renewal_info = ri ? dup_str(ri) : NULL;
    }
    json_decref(j);
    return ok;
}

/* ---- authorizations and orders ---------------------------------------------------------- */

void dt_acme_object_error(json_t *j, const char *what, struct dt_buf *err)
{
    json_t *e = json_object_get(j, "error");
    json_t *chs = json_object_get(j, "challenges");
    for (size_t i = 0; !e && i < json_array_size(chs); i++)
        e = json_object_get(json_array_get(chs, i), "error");
    const char *type = e ? json_string_value(json_object_get(e, "type")) : NULL;
    const char *detail = e ? json_string_value(json_object_get(e, "detail")) : NULL;
    const char *status = dt_acme_jstr(j, "status");
    dt_buf_appendf(err, "%s: %s", what, *status ? status : "no status");
    if (type)
        dt_buf_appendf(err, " (%s)", type);
    if (detail)
        dt_buf_appendf(err, ": %s", detail);
}

int dt_acme_read_authz(json_t *j, bool http01, bool tls_alpn01, struct acme_authz *out,
                       struct dt_buf *err)
{
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *host =
        json_string_value(json_object_get(json_object_get(j, "identifier"), "value"));
    memset(out, 0, sizeof(*out));
    out->host = host;
    if (status && strcmp(status, "valid") == 0)
        return 1;
    /* the challenge: HTTP-01 when the caller answers it, else TLS-ALPN-01 */
    const char *token = NULL, *chal = NULL, *kind = NULL;
    json_t *chs = json_object_get(j, "challenges");
    for (int pass = 0; pass < 2 && !token; pass++) {
        const char *want = pass == 0 ? "http-01" : "tls-alpn-01";
        if (pass == 0 ? !http01 : !tls_alpn01)
            continue;
        for (size_t i = 0; i < json_array_size(chs) && !token; i++) {
            json_t *ch = json_array_get(chs, i);
            const char *type = json_string_value(json_object_get(ch, "type"));
            if (type && strcmp(type, want) == 0) {
                token = json_string_value(json_object_get(ch, "token"));
                chal = json_string_value(json_object_get(ch, "url"));
                kind = want;
            }
        }
    }
    if (!status || strcmp(status, "pending") != 0 || !token || !chal ||
        strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            strlen(token)) {
        dt_acme_object_error(j, host ? host : "authorization", err);
        if (status && strcmp(status, "pending") == 0)
            dt_buf_appendf(err, " (no challenge this server can answer)");
        return -1;
    }
    out->kind = kind;
    out->token = token;
    out->url = chal;
    return 0;
}

bool dt_acme_order_authzs(json_t *order, const char ***urls, size_t *n, struct dt_buf *err)
{
    json_t *authzs = json_object_get(order, "authorizations");
    size_t count = json_array_size(authzs);
    const char **list = dt_xcalloc(count ? count : 1, sizeof(*list));
    for (size_t i = 0; i < count; i++) {
        list[i] = json_string_value(json_array_get(authzs, i));
        if (!list[i]) {
            dt_buf_appendf(err, "newOrder: authorization %zu is not a URL", i + 1);
            free(list);
            return false;
        }
    }
    *urls = list;
    *n = count;
    return true;
}

/* ---- renewal information (RFC 9773) -------------------------------------------------------- */

bool dt_acme_rfc3339(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long off = 0;
    if (*p == '+' || *p == '-') {
        /* RFC 3339 5.6: time-numoffset = ("+" / "-") time-hour ":" time-minute, two digits
         * each; read a byte at a time, so that a short one stops at the string's end */
        const char *o = p + 1;
        if (!isdigit((unsigned char)o[0]) || !isdigit((unsigned char)o[1]) || o[2] != ':' ||
            !isdigit((unsigned char)o[3]) || !isdigit((unsigned char)o[4]))
            return false;
        int h = (o[0] - '0') * 10 + (o[1] - '0'), m = (o[3] - '0') * 10 + (o[4] - '0');
        if (h > 23 || m > 59)
            return false;
        off = (*p == '+' ? 1 : -1) * (h * 3600L + m * 60L);
        p = o + 5;
    } else if (*p == 'Z' || *p == 'z') {
        p++;
    } else {
        return false;
    }
    if (*p)
        return false;
    *out = timegm(&tm) - off;
    return true;
}

bool dt_acme_read_window(json_t *j, time_t *start, time_t *end)
{
    json_t *w = j ? json_object_get(j, "suggestedWindow") : NULL;
    const char *s = w ? json_string_value(json_object_get(w, "start")) : NULL;
    const char *e = w ? json_string_value(json_object_get(w, "end")) : NULL;
    return s && e && dt_acme_rfc3339(s, start) && dt_acme_rfc3339(e, end) && *start <= *end;
}
