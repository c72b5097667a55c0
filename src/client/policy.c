/* policy: what a redirect does to the next request (RFC 9110 15.4, SPEC C1-C4) and what
 * may cross to another origin. Pure functions, tested without a network. */
#include "client/internal.h"

#include <stdio.h>
#include <strings.h>

const char *dt_client_reason(int status)
{
    return dt_http_reason(status).ptr;
}

const char *dt_client_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case DT_CLIENT_ENOMEM:
        return "out of memory";
    case DT_CLIENT_EINVAL:
        return "invalid argument";
    case DT_CLIENT_ETRANSFER:
        return "transfer failed";
    case DT_CLIENT_EREFUSED:
        return "redirect refused by policy";
    case DT_CLIENT_ELOOP:
        return "redirect loop";
    case DT_CLIENT_ETOOMANY:
        return "too many redirects";
    case DT_CLIENT_EREPLAY:
        return "the request body cannot be sent again";
    case DT_CLIENT_EIO:
        return "input/output error";
    }
    return "unknown error";
}

bool dt_client_method_safe(const char *method)
{
    /* RFC 9110 9.2.1 (and RFC 2616 10.3.8's errata): only methods known to be safe may be
     * redirected without the user's confirmation. Method names are case-sensitive. */
    return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS") ||
           !strcmp(method, "TRACE");
}

int dt_client_origin(struct dt_str url, struct origin *o)
{
    struct dt_url u;
    memset(o, 0, sizeof(*o));
    if (dt_url_parse(url, &u, NULL) != 0 || !u.has_authority || u.host.len == 0 ||
        u.host.len >= sizeof(o->host))
        return DT_EINVAL;
    if (dt_str_ieq(u.scheme, "http")) {
        memcpy(o->scheme, "http", 5);
        o->port = 80;
    } else if (dt_str_ieq(u.scheme, "https")) {
        memcpy(o->scheme, "https", 6);
        o->port = 443;
    } else {
        return DT_EINVAL;
    }
    memcpy(o->host, u.host.ptr, u.host.len);
    dt_ascii_lower(o->host, u.host.len);
    if (u.host.len > 1 && o->host[u.host.len - 1] == '.')
        o->host[u.host.len - 1] = '\0';
    int64_t port;
    if (u.has_port && u.port.len) {
        if (dt_parse_int(u.port, 0, 65535, &port) != 0)
            return DT_EINVAL;
        o->port = (unsigned)port;
    }
    return 0;
}

bool dt_client_same_origin(const struct origin *a, const struct origin *b)
{
    return !strcmp(a->scheme, b->scheme) && !strcmp(a->host, b->host) && a->port == b->port;
}

static bool scheme_is(struct dt_str url, const char *scheme)
{
    size_t n = strlen(scheme);
    return url.len > n && url.ptr[n] == ':' && dt_str_ieq(dt_str_make(url.ptr, n), scheme);
}

void dt_client_plan(int status, const char *method, bool has_body, struct dt_str from,
                    struct dt_str to, const struct dt_client_policy *p, struct plan *out)
{
    memset(out, 0, sizeof(*out));
    out->method = method;
    struct dt_url u;
    if (!scheme_is(to, "http") && !scheme_is(to, "https")) {
        out->refusal = "not followed: only http and https redirects are followed";
        return;
    }
    if (dt_url_parse(to, &u, NULL) != 0 || !u.has_authority || !u.host.len) {
        out->refusal = "not followed: the Location is not a valid http(s) URL";
        return;
    }
    if (u.has_userinfo) {
        out->refusal = "not followed: a redirect may not carry credentials (user@host)";
        return;
    }
    if (scheme_is(from, "https") && scheme_is(to, "http") && !p->allow_downgrade) {
        out->refusal = "not followed: https to http would expose the request "
                       "(--allow-downgrade to follow)";
        return;
    }
    out->follow = true;
    switch (status) {
    case 307:
    case 308:
        /* C1: same method, same body */
        out->keep_body = has_body;
        out->note = has_body ? "method and body kept" : "method kept";
        break;
    case 303:
        /* C2: GET (HEAD stays HEAD), no body, no body headers */
        out->method = !strcmp(method, "HEAD") ? "HEAD" : "GET";
        out->drop_body_headers = true;
        if (has_body || strcmp(out->method, method) != 0)
            out->note = !strcmp(out->method, "HEAD") ? "303: HEAD kept, body dropped"
                                                     : "303: method changed to GET, body dropped";
        else
            out->note = "303: GET kept";
        break;
    default: /* 301, 302 */
        if (!strcmp(method, "POST") && !p->keep_method) {
            /* C3: as browsers do (RFC 9110 15.4.2, 15.4.3) */
            out->method = "GET";
            out->drop_body_headers = true;
            out->note = "POST changed to GET, body dropped (--keep-method keeps them)";
        } else {
            out->keep_body = has_body;
            out->note = has_body ? "method and body kept" : "method kept";
        }
        break;
    }
    out->needs_confirm = !dt_client_method_safe(out->method);
    struct origin a, b;
    out->origin_changed = dt_client_origin(from, &a) != 0 || dt_client_origin(to, &b) != 0 ||
                          !dt_client_same_origin(&a, &b);
}

static struct dt_str header_name(struct dt_str line)
{
    const char *colon = memchr(line.ptr, ':', line.len);
    struct dt_str n = {line.ptr, colon ? (size_t)(colon - line.ptr) : line.len};
    while (n.len && (n.ptr[n.len - 1] == ' ' || n.ptr[n.len - 1] == '\t'))
        n.len--;
    return n;
}

bool dt_client_header_is_sensitive(struct dt_str line)
{
    struct dt_str n = header_name(line);
    return dt_str_ieq(n, "authorization") || dt_str_ieq(n, "cookie") ||
           dt_str_ieq(n, "proxy-authorization") || dt_str_ieq(n, "host");
}

bool dt_client_header_is_body(struct dt_str line)
{
    struct dt_str n = header_name(line);
    return dt_str_ieq(n, "content-type") || dt_str_ieq(n, "content-length") ||
           dt_str_ieq(n, "content-encoding") || dt_str_ieq(n, "content-language") ||
           dt_str_ieq(n, "content-location") || dt_str_ieq(n, "transfer-encoding") ||
           dt_str_ieq(n, "expect") || dt_str_ieq(n, "digest") || dt_str_ieq(n, "content-digest");
}
