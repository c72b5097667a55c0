/* fetch: the chain of hops. Each turn: a remembered permanent redirect (C5) or an HSTS
 * upgrade (C7) may answer without the network; otherwise one transfer; a redirect is then
 * resolved (C6), judged by policy (C1-C4, security) and followed or not. Every hop is
 * recorded with why. */
#include "client/internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_REPLAY_LIMIT (16u * 1024 * 1024)

void dt_client_policy_init(struct dt_client_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->max_redirs = 20;
    p->replay_limit = DEFAULT_REPLAY_LIMIT;
    p->user_agent = "detour/" DETOUR_VERSION;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void dt_client_global_init(void)
{
    pthread_once(&curl_once, curl_init);
}

/* ---- small helpers ----------------------------------------------------------------------- */

static int strings_add(struct strings *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return DT_CLIENT_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c)
        return DT_CLIENT_ENOMEM;
    memcpy(c, p, len);
    c[len] = '\0';
    s->v[s->n++] = c;
    return 0;
}

static void strings_remove(struct strings *s, size_t i)
{
    free(s->v[i]);
    memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
    s->n--;
}

static void strings_free(struct strings *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static bool has_header(const struct strings *h, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (!strncasecmp(h->v[i], name, n) && (h->v[i][n] == ':' || h->v[i][n] == ';'))
            return true;
    return false;
}

static size_t base64(char *out, const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes %XX in place (for user:password taken from a URL). */
static void pct_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '%' && dt_hexval((unsigned char)p[1]) >= 0 &&
            dt_hexval((unsigned char)p[2]) >= 0) {
            *o++ = (char)(dt_hexval((unsigned char)p[1]) * 16 + dt_hexval((unsigned char)p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* ---- the chain --------------------------------------------------------------------------- */

static int fail(struct chain *c, int code, const char *fmt, ...) DT_PRINTF(3, 4);
static int fail(struct chain *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res->error, sizeof(c->res->error), fmt, ap);
    va_end(ap);
    return code;
}

static void note(struct chain *c, const char *fmt, ...) DT_PRINTF(2, 3);
static void note(struct chain *c, const char *fmt, ...)
{
    if (!c->p->trace)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->p->trace(c->p->trace_ud, '*', line,
                n < 0                      ? 0
                : (size_t)n < sizeof(line) ? (size_t)n
                                           : sizeof(line) - 1);
}

static struct dt_client_hop *add_hop(struct chain *c, enum dt_client_hop_kind kind, int status)
{
    struct dt_client_result *r = c->res;
    struct dt_client_hop *h = realloc(r->hops, (r->nhops + 1) * sizeof(*h));
    if (!h)
        return NULL;
    r->hops = h;
    h = &r->hops[r->nhops++];
    memset(h, 0, sizeof(*h));
    h->kind = kind;
    h->status = status;
    h->method = strdup(c->method);
    h->url = strdup(c->url.ptr);
    h->body_len = c->has_body ? body_length(&c->body) : 0;
    return h;
}

static void set_url(struct chain *c, const char *url)
{
    c->url.len = 0;
    dt_buf_append(&c->url, url, strlen(url));
    dt_buf_terminate(&c->url);
}

/* Applies a plan to the request: method, body, headers, credentials. */
static void apply(struct chain *c, const struct plan *pl)
{
    if (pl->method != c->method)
        snprintf(c->method, sizeof(c->method), "%s", pl->method);
    if (!pl->keep_body)
        c->has_body = false;
    for (size_t i = c->headers.n; i-- > 0;) {
        struct dt_str line = {c->headers.v[i], strlen(c->headers.v[i])};
        if ((pl->drop_body_headers && dt_client_header_is_body(line)) ||
            (pl->origin_changed && dt_client_header_is_sensitive(line)))
            strings_remove(&c->headers, i);
    }
    if (pl->origin_changed && c->authorization) {
        /* Credentials stay with the origin they were given for, also if the chain comes
         * back to it later (the Go CVE-2024-45336 case). */
        free(c->authorization);
        c->authorization = NULL;
    }
}

/* The key that makes two requests the same for loop detection. */
static int remember(struct chain *c, bool *again)
{
    struct dt_buf key;
    dt_buf_init(&key);
    /* the fragment is never sent: /a#x and /a#y are one request */
    const char *hash = strchr(c->url.ptr, '#');
    int ulen = hash ? (int)(hash - c->url.ptr) : (int)c->url.len;
    dt_buf_appendf(&key, "%s %.*s\n", c->method, ulen, c->url.ptr);
    for (size_t i = 0; i < c->headers.n; i++)
        dt_buf_appendf(&key, "%s\n", c->headers.v[i]);
    dt_buf_appendf(&key, "%s|%d", c->authorization ? c->authorization : "", c->has_body);
    *again = false;
    for (size_t i = 0; i < c->seen.n; i++)
        if (!strcmp(c->seen.v[i], key.ptr ? key.ptr : ""))
            *again = true;
    int rc = *again ? 0 : strings_add(&c->seen, key.ptr, key.len);
    dt_buf_dispose(&key);
    return rc;
}

static struct curl_slist *header_list(const struct chain *c)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < c->headers.n; i++)
        l = curl_slist_append(l, c->headers.v[i]);
    if (c->authorization)
        l = curl_slist_append(l, c->authorization);
    /* Send exactly what the request says: no waiting for 100 Continue, no content type
     * libcurl would invent for a body. */
    if (!has_header(&c->headers, "expect"))
        l = curl_slist_append(l, "Expect:");
    if (c->has_body && !has_header(&c->headers, "content-type"))
        l = curl_slist_append(l, "Content-Type:");
    return l;
}

/* The https:// form of an http:// URL (RFC 6797 8.3: port 80 becomes 443, others stay). */
static int upgraded(const char *url, struct dt_buf *out)
{
    struct dt_url u;
    struct dt_str s = {url, strlen(url)};
    if (dt_url_parse(s, &u, NULL) != 0)
        return DT_CLIENT_EINVAL;
    dt_buf_appendf(out, "https://%.*s", (int)u.host.len, u.host.ptr);
    if (u.has_port && !dt_str_eq(u.port, DT_STR("80")) && u.port.len)
        dt_buf_appendf(out, ":%.*s", (int)u.port.len, u.port.ptr);
    const char *rest = u.path.ptr;
    dt_buf_append(out, rest, (size_t)(url + strlen(url) - rest));
    dt_buf_terminate(out);
    return 0;
}

bool dt_client_url_host(const char *url, char *host, size_t cap)
{
    struct dt_url u;
    if (dt_url_parse(dt_str_make(url, strlen(url)), &u, NULL) != 0 || u.host.len >= cap)
        return false;
    memcpy(host, u.host.ptr, u.host.len);
    host[u.host.len] = '\0';
    dt_ascii_lower(host, u.host.len);
    return true;
}

bool dt_client_scheme_is(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return url && !strncasecmp(url, scheme, n) && url[n] == ':';
}

/* Asks (or not) before an unsafe request is sent again (C4). True to go on. */
static bool confirmed(struct chain *c, unsigned hop, int status, const char *to)
{
    const struct dt_client_policy *p = c->p;
    if (p->assume_yes)
        return true;
    if (!p->confirm)
        return false;
    struct dt_client_confirm q = {
        .hop = hop,
        .status = status,
        .method = c->method,
        .from = c->url.ptr,
        .to = to,
        .body_len = c->has_body ? body_length(&c->body) : 0,
    };
    return p->confirm(p->confirm_ud, &q);
}

static int copy_final(struct chain *c, struct xfer_response *x)
{
    struct dt_client_result *r = c->res;
    r->status = x->status;
    r->url = strdup(c->url.ptr);
    r->headers = x->headers;
    r->nheaders = x->nheaders;
    x->headers = NULL; /* now the result's */
    x->nheaders = x->cap_headers = 0;
    return r->url ? 0 : DT_CLIENT_ENOMEM;
}

/* Ends the chain at this answer, with a note for the hop and (code != 0) an error. */
static bool stop(struct decision *d, int code, const char *note, const char *fmt, ...)
    DT_PRINTF(4, 5);
static bool stop(struct decision *d, int code, const char *note, const char *fmt, ...)
{
    d->follow = false;
    d->code = code;
    snprintf(d->note, sizeof(d->note), "%s", note);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->error, sizeof(d->error), fmt, ap);
        va_end(ap);
    }
    return true; /* the body is the final body */
}

/* Writes p (n bytes) for a note: printable ASCII as it is, other bytes as \xHH, cut short
 * with "..." past cap. */
static void shown(char *out, size_t cap, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        bool plain = ch >= 0x20 && ch < 0x7f;
        if (o + (plain ? 1 : 4) + 4 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* The Location as the hop shows it: as received, or with its NUL bytes (and every other
 * control byte) written \xHH when it has any, since the hop's text is a C string. */
static char *location_text(const struct xfer_response *x)
{
    bool nul = memchr(x->location, '\0', x->location_len) != NULL;
    size_t cap = (nul ? 4 : 1) * x->location_len + 8;
    char *t = malloc(cap);
    if (t && nul)
        shown(t, cap, x->location, x->location_len);
    else if (t) {
        memcpy(t, x->location, x->location_len);
        t[x->location_len] = '\0';
    }
    return t;
}

/* Puts in out the https:// URL that url becomes when its host is known for HSTS (C7, RFC
 * 6797 8.3); false when it stays as it is. */
static bool hsts_target(const struct chain *c, const char *url, struct dt_buf *out)
{
    const struct dt_client_policy *p = c->p;
    char host[256];
    return p->hsts && dt_client_scheme_is(url, "http") &&
           dt_client_url_host(url, host, sizeof(host)) &&
           dt_client_hsts_known(p->hsts, host, p->now) && upgraded(url, out) == 0;
}

/* C7: learns from a Strict-Transport-Security field, only over verified https. */
static void learn_sts(const struct chain *c, const struct xfer_response *x)
{
    const struct dt_client_policy *p = c->p;
    char host[256];
    if (x->sts && p->hsts && dt_client_scheme_is(c->url.ptr, "https") && !p->insecure &&
        dt_client_url_host(c->url.ptr, host, sizeof(host)))
        dt_client_hsts_learn(p->hsts, host, x->sts, p->now);
}

/* Called by the transfer when an answer's head is complete: resolves and judges a redirect
 * (C6, C1-C4, C7, security), so that the body of an answer that ends the chain reaches the
 * caller whole and the body of one that is followed is dropped as it arrives. Returns true
 * when the answer is final. */
static bool decide(void *ud, struct xfer_response *x)
{
    struct chain *c = ud;
    const struct dt_client_policy *p = c->p;
    struct decision *d = &c->d;
    d->made = true;
    d->next.len = 0;
    d->upgraded.len = 0;
    d->error[0] = '\0';
    /* C7: what this answer says of HSTS counts before its Location is judged (RFC 6797 8.3:
     * an http:// Location of a known host is an https:// one) */
    learn_sts(c, x);
    /* C6: only the redirect statuses with a Location go on */
    if (!dt_http_is_redirect(x->status) || !x->location)
        return stop(d, 0, x->location ? "final (not a redirect status)" : "final", NULL);
    char why[700], a[240], b[240];
    shown(a, sizeof(a), x->location, x->location_len);
    if (x->location_other) {
        /* RFC 9110 10.2.2: a recovered value "is not interoperable"; Fetch and browsers
         * make it a network error */
        shown(b, sizeof(b), x->location_other, x->location_other_len);
        snprintf(why, sizeof(why),
                 "not followed: two Location fields with different values, '%s' and '%s' "
                 "(which one is meant cannot be known)",
                 a, b);
        return stop(d, DT_CLIENT_EREFUSED, why, "%d from %s: %s", x->status, c->url.ptr, why);
    }
    struct dt_str loc = {x->location, x->location_len};
    if (memchr(loc.ptr, '\0', loc.len) || memchr(loc.ptr, '\r', loc.len) ||
        memchr(loc.ptr, '\n', loc.len)) {
        /* RFC 9110 5.5: CR, LF and NUL make a field value invalid and dangerous */
        snprintf(why, sizeof(why), "not followed: the Location '%s' has a NUL, CR or LF byte", a);
        return stop(d, DT_CLIENT_EREFUSED, why, "%d from %s: %s", x->status, c->url.ptr, why);
    }
    /* as browsers' URL parser: spaces and controls around the value are not part of it */
    while (loc.len && (unsigned char)loc.ptr[0] <= ' ')
        loc.ptr++, loc.len--;
    while (loc.len && (unsigned char)loc.ptr[loc.len - 1] <= ' ')
        loc.len--;
    if (memchr(loc.ptr, '\\', loc.len)) {
        snprintf(why, sizeof(why),
                 "not followed: the Location '%s' has a backslash, which browsers read as '/' "
                 "(so '/\\host' names another host) and RFC 3986 does not allow",
                 a);
        return stop(d, DT_CLIENT_EREFUSED, why, "%d from %s: %s", x->status, c->url.ptr, why);
    }
    struct dt_str base = dt_str_make(c->url.ptr, c->url.len);
    struct dt_diag diag;
    bool encoded = false;
    if (dt_url_resolve(base, loc, &d->next, &diag) != 0) {
        /* spaces and raw UTF-8 are percent-encoded, as browsers and curl do, and the chain
         * shows the URL that was requested */
        struct dt_buf enc;
        dt_buf_init(&enc);
        d->next.len = 0;
        encoded = dt_url_encode_reference(&enc, loc) != 0 &&
                  dt_url_resolve(base, dt_str_make(enc.ptr, enc.len), &d->next, NULL) == 0;
        dt_buf_dispose(&enc);
        if (!encoded) {
            snprintf(why, sizeof(why), "not followed: Location '%s' is not a valid URI (%s)", a,
                     diag.msg);
            return stop(d, DT_CLIENT_EREFUSED, why, "%d from %s: %s", x->status, c->url.ptr, why);
        }
    }
    /* C7: a known host's http:// is planned as the https:// it becomes (the internal 307
     * that upgrades it is the next hop), so it is no downgrade */
    const char *to = hsts_target(c, d->next.ptr, &d->upgraded) ? d->upgraded.ptr : d->next.ptr;
    struct plan *pl = &d->plan;
    dt_client_plan(x->status, c->method, c->has_body, base, dt_str_make(to, strlen(to)), p, pl);
    if (!pl->follow)
        return stop(d, DT_CLIENT_EREFUSED, pl->refusal, "%d from %s: %s", x->status, c->url.ptr,
                    pl->refusal);
    if (c->redirects + 1 > p->max_redirs)
        return stop(d, DT_CLIENT_ETOOMANY, "not followed: too many redirects",
                    "more than %u redirects (--max-redirs)", p->max_redirs);
    if (pl->keep_body && c->body.overflow)
        return stop(d, DT_CLIENT_EREPLAY, "not followed: the body cannot be sent again",
                    "hop %u: %d from %s asks for the same %s body again at its new address, "
                    "but the body was read from a stream and was larger than the %zu bytes "
                    "kept to send it again (use a file: -d @FILE)",
                    c->redirects + 1, x->status, c->url.ptr, c->method, p->replay_limit);
    if (pl->needs_confirm && !confirmed(c, c->redirects + 1, x->status, to)) {
        snprintf(why, sizeof(why),
                 "not followed: %s is not a safe method, and sending it again needs "
                 "confirmation (--yes allows it)",
                 c->method);
        return stop(d, DT_CLIENT_EREFUSED, why, "%d from %s: %s", x->status, c->url.ptr, why);
    }
    d->follow = true;
    d->code = 0;
    snprintf(d->note, sizeof(d->note), "%s%s%s", pl->note,
             pl->origin_changed && (c->authorization || has_header(&c->headers, "authorization") ||
                                    has_header(&c->headers, "cookie") ||
                                    has_header(&c->headers, "proxy-authorization"))
                 ? "; credentials dropped (new origin)"
                 : "",
             encoded ? "; Location percent-encoded, as browsers do" : "");
    return false;
}

/* Follows a remembered permanent redirect for the current URL, if any (C5). Returns 1 if
 * it did, 0 if there is none to follow, or an error. */
static int from_cache(struct chain *c)
{
    const struct dt_client_policy *p = c->p;
    const char *cached = NULL;
    int status = dt_client_cache_lookup(p->cache, c->url.ptr, &cached);
    if (!status)
        return 0;
    struct plan pl;
    struct dt_buf up;
    dt_buf_init(&up);
    const char *to = hsts_target(c, cached, &up) ? up.ptr : cached;
    dt_client_plan(status, c->method, c->has_body, dt_str_make(c->url.ptr, c->url.len),
                   dt_str_make(to, strlen(to)), p, &pl);
    bool go = pl.follow && (!pl.needs_confirm || confirmed(c, c->redirects + 1, status, to));
    dt_buf_dispose(&up);
    if (!go)
        return 0; /* ask the network instead: it may say something else now */
    if (++c->redirects > p->max_redirs)
        return fail(c, DT_CLIENT_ETOOMANY, "more than %u redirects", p->max_redirs);
    struct dt_client_hop *hop = add_hop(c, DT_HOP_CACHE, status);
    if (!hop)
        return DT_CLIENT_ENOMEM;
    char why[256];
    snprintf(why, sizeof(why), "remembered %d, nothing sent; %s", status, pl.note);
    hop->followed = true;
    hop->location = strdup(cached);
    hop->next_url = strdup(cached);
    hop->next_method = strdup(pl.method);
    hop->note = strdup(why);
    char *target = strdup(cached); /* apply may not touch the cache, but be safe */
    if (!target)
        return DT_CLIENT_ENOMEM;
    apply(c, &pl);
    set_url(c, target);
    free(target);
    return 1;
}

/* Upgrades the current http:// URL to https:// if its host is known for HSTS (C7), as an
 * internal 307 that sends nothing. Returns 0 or an error. */
static int hsts_upgrade(struct chain *c)
{
    struct dt_buf up;
    dt_buf_init(&up);
    int rc = 0;
    if (hsts_target(c, c->url.ptr, &up)) {
        struct dt_client_hop *hop = add_hop(c, DT_HOP_HSTS, 307);
        if (!hop) {
            rc = DT_CLIENT_ENOMEM;
        } else {
            hop->followed = true;
            hop->next_url = strdup(up.ptr);
            hop->next_method = strdup(c->method);
            hop->note = strdup("internal HSTS upgrade, nothing sent");
            char host[256];
            if (dt_client_url_host(up.ptr, host, sizeof(host)))
                note(c, "HSTS: %s is known, using https", host);
            set_url(c, up.ptr);
        }
    }
    dt_buf_dispose(&up);
    return rc;
}

/* Ends the chain with rc (its error text already set where there is one). Returns 0, as
 * dt_chain_next and dt_chain_answered do at the end. */
static int end(struct chain *c, int rc)
{
    c->rc = rc;
    return 0;
}

int dt_chain_next(struct chain *c)
{
    int rc;
    while ((rc = from_cache(c)) == 1)
        ;
    if (rc || (rc = hsts_upgrade(c)) != 0)
        return end(c, rc);
    bool again;
    if ((rc = remember(c, &again)) != 0)
        return end(c, rc);
    if (again)
        return end(c, fail(c, DT_CLIENT_ELOOP,
                           "redirect loop: %s %s was already requested in this chain, unchanged",
                           c->method, c->url.ptr));
    if (c->has_body) {
        char why[400];
        if ((rc = body_begin(&c->body, why, sizeof(why))) != 0)
            return end(c, fail(c, rc, "hop %u: %s", c->redirects, why));
    }
    curl_slist_free_all(c->sent);
    c->sent = header_list(c);
    c->xr = (struct xfer_request){
        .method = c->method,
        .url = c->url.ptr,
        .headers = c->sent,
        .body = c->has_body ? &c->body : NULL,
        .resolve = c->resolve,
        .connect_to = c->connect_to,
    };
    if (!add_hop(c, DT_HOP_NETWORK, 0))
        return end(c, DT_CLIENT_ENOMEM);
    c->hop_index = c->res->nhops - 1;
    c->d.made = false;
    return 1;
}

int dt_chain_answered(struct chain *c, int rc)
{
    struct xfer_response *x = &c->x;
    struct dt_client_hop *hop = &c->res->hops[c->hop_index];
    if (c->has_body)
        body_end(&c->body);
    hop->time_us = x->time_us;
    if (rc) {
        if (rc == DT_CLIENT_ETRANSFER)
            fail(c, rc, "%s %s: %s", c->method, c->url.ptr, x->error);
        return end(c, rc);
    }
    hop->status = x->status;
    hop->hsts = x->sts != NULL;
    snprintf(hop->protocol, sizeof(hop->protocol), "%s",
             x->http_version == CURL_HTTP_VERSION_2_0   ? "HTTP/2"
             : x->http_version == CURL_HTTP_VERSION_1_0 ? "HTTP/1.0"
             : x->http_version == CURL_HTTP_VERSION_1_1 ? "HTTP/1.1"
                                                        : "");
    if (x->location)
        hop->location = location_text(x);
    struct decision *d = &c->d;
    if (!d->made || !d->follow) {
        hop->note = strdup(d->made ? d->note : "final");
        rc = copy_final(c, x);
        if (!rc && d->made && d->code)
            rc = fail(c, d->code, "%s", d->error);
        return end(c, rc);
    }
    c->redirects++;
    hop->followed = true;
    hop->next_url = strdup(d->next.ptr);
    hop->next_method = strdup(d->plan.method);
    hop->note = strdup(d->note);
    dt_client_cache_store(c->p->cache, c->url.ptr, x->status, d->next.ptr);
    apply(c, &d->plan);
    set_url(c, d->next.ptr);
    return 1;
}

void dt_client_policy_fill(struct dt_client_policy *p)
{
    if (!p->user_agent)
        p->user_agent = "detour/" DETOUR_VERSION;
    if (!p->replay_limit)
        p->replay_limit = DEFAULT_REPLAY_LIMIT;
    if (!p->now)
        p->now = dt_wall_now();
}

/* curl's own list of a policy's HOST:PORT:... entries. */
static int slist_of(const char *const *v, size_t n, struct curl_slist **out)
{
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *l = curl_slist_append(*out, v[i]);
        if (!l)
            return DT_CLIENT_ENOMEM;
        *out = l;
    }
    return 0;
}

int dt_chain_begin(struct chain *c, const struct dt_client_request *req,
                   const struct dt_client_policy *p, dt_client_write_fn write, void *write_ud,
                   struct dt_client_result *res)
{
    memset(res, 0, sizeof(*res));
    memset(c, 0, sizeof(*c));
    c->p = p;
    c->res = res;
    dt_buf_init(&c->url);
    dt_buf_init(&c->d.next);
    dt_buf_init(&c->d.upgraded);
    c->x.write = write;
    c->x.write_ud = write_ud;
    c->x.decide = decide;
    c->x.decide_ud = c;
    static const struct dt_client_body none = {.kind = DT_BODY_NONE};
    body_init(&c->body, req->body.kind != DT_BODY_NONE ? &req->body : &none, p->replay_limit);
    c->has_body = req->body.kind != DT_BODY_NONE;

    if (!req->url)
        return fail(c, DT_CLIENT_EINVAL, "no URL");
    struct dt_url u;
    struct dt_diag d;
    struct dt_str url = {req->url, strlen(req->url)};
    if (dt_url_parse(url, &u, &d) != 0)
        return fail(c, DT_CLIENT_EINVAL, "%s: %s (at byte %zu)", req->url, d.msg, d.offset + 1);
    if ((!dt_str_ieq(u.scheme, "http") && !dt_str_ieq(u.scheme, "https")) || !u.host.len)
        return fail(c, DT_CLIENT_EINVAL, "%s: only http:// and https:// URLs", req->url);
    const char *method = req->method ? req->method : c->has_body ? "POST" : "GET";
    for (const char *m = method; *m; m++)
        if (!dt_tchar[(unsigned char)*m] || m - method >= (ptrdiff_t)sizeof(c->method) - 1)
            return fail(c, DT_CLIENT_EINVAL, "'%s' is not a method token", method);
    if (!*method)
        return fail(c, DT_CLIENT_EINVAL, "empty method");
    snprintf(c->method, sizeof(c->method), "%s", method);

    /* user:password@ in the URL is taken out and treated as given credentials. */
    char *creds = NULL;
    if (u.has_userinfo) {
        creds = dt_xstrndup(u.userinfo.ptr, u.userinfo.len);
        pct_decode(creds);
        dt_buf_append(&c->url, req->url, (size_t)(u.userinfo.ptr - req->url));
        const char *after = u.userinfo.ptr + u.userinfo.len + 1;
        dt_buf_append(&c->url, after, strlen(after));
    } else {
        dt_buf_append(&c->url, req->url, url.len);
        if (req->credentials)
            creds = dt_xstrndup(req->credentials, strlen(req->credentials));
    }
    dt_buf_terminate(&c->url);
    if (creds) {
        size_t n = strlen(creds);
        char *line = malloc(32 + 4 * (n / 3 + 1));
        if (!line) {
            free(creds);
            return DT_CLIENT_ENOMEM;
        }
        memcpy(line, "Authorization: Basic ", 21);
        base64(line + 21, (const unsigned char *)creds, n);
        c->authorization = line;
        free(creds);
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *hline = req->headers[i];
        const char *colon = strchr(hline, ':');
        if (!colon || colon == hline || strpbrk(hline, "\r\n"))
            return fail(c, DT_CLIENT_EINVAL, "'%s' is not a header line (Name: value)", hline);
        int rc = strings_add(&c->headers, hline, strlen(hline));
        if (rc)
            return rc;
    }
    int rc = slist_of(p->resolve, p->nresolve, &c->resolve);
    if (!rc)
        rc = slist_of(p->connect_to, p->nconnect_to, &c->connect_to);
    return rc;
}

void dt_chain_dispose(struct chain *c)
{
    if (c->rc && !c->res->error[0])
        snprintf(c->res->error, sizeof(c->res->error), "%s", dt_client_strerror(c->rc));
    dt_buf_dispose(&c->d.next);
    dt_buf_dispose(&c->d.upgraded);
    dt_xfer_response_dispose(&c->x);
    dt_buf_dispose(&c->url);
    strings_free(&c->headers);
    strings_free(&c->seen);
    free(c->authorization);
    body_dispose(&c->body);
    curl_slist_free_all(c->sent);
    curl_slist_free_all(c->resolve);
    curl_slist_free_all(c->connect_to);
    c->sent = c->resolve = c->connect_to = NULL;
}

int dt_client_fetch(const struct dt_client_request *req, const struct dt_client_policy *pol,
                    dt_client_write_fn write, void *write_ud, struct dt_client_result *res)
{
    struct dt_client_policy p;
    if (pol)
        p = *pol;
    else
        dt_client_policy_init(&p);
    dt_client_policy_fill(&p);
    struct chain c;
    int rc = dt_chain_begin(&c, req, &p, write, write_ud, res);
    if (!rc) {
        dt_client_global_init();
        CURL *h = curl_easy_init();
        if (!h) {
            rc = fail(&c, DT_CLIENT_ENOMEM, "cannot start libcurl");
        } else {
            while (dt_chain_next(&c) == 1)
                if (dt_chain_answered(&c, dt_xfer_perform(h, &c.xr, &p, &c.x)) == 0)
                    break;
            rc = c.rc;
            curl_easy_cleanup(h);
        }
    }
    c.rc = rc;
    dt_chain_dispose(&c);
    return rc;
}

void dt_client_result_free(struct dt_client_result *res)
{
    for (size_t i = 0; i < res->nhops; i++) {
        struct dt_client_hop *h = &res->hops[i];
        free(h->method);
        free(h->url);
        free(h->location);
        free(h->next_url);
        free(h->next_method);
        free(h->note);
    }
    free(res->hops);
    for (size_t i = 0; i < res->nheaders; i++) {
        free(res->headers[i].name);
        free(res->headers[i].value);
    }
    free(res->headers);
    free(res->url);
    memset(res, 0, sizeof(*res));
}
