/* redirect: the redirect listeners' handler: a request head is answered at once from the
 * rule set by the one answer function, and written as HTTP/1.1 (the admin API's /api/match
 * writes the same bytes with dt_server_write_answer). */
#include "server/internal.h"

void dt_server_write_answer(struct dt_buf *out, const struct dt_answer *a,
                            const struct dt_answer_query *q, struct dt_http_reply *r)
{
    r->max_age = a->max_age;
    if (!a->rule) {
        dt_http_write_page(out, 404, r, "No redirect is configured for <code>", q->path,
                           "</code>.");
        return;
    }
    char *loc = dt_http_redirect_begin(out, a->status, dt_answer_location_max(a, q));
    size_t n = dt_answer_location(a, q, loc);
    dt_http_redirect_end(out, a->status, n, r);
}

/* --redirect-to-https: a plain request for a host a certificate names gets 308 to the same
 * URL with https (and the TLS listener's port unless 443). Returns true if it answered. */
static bool to_https(struct conn *c, const struct dt_request *req, struct dt_buf *ob,
                     const struct dt_http_reply *r)
{
    struct dt_server *s = c->w->srv;
    if (c->tls || !s->cfg->redirect_to_https || !req->host.len ||
        !dt_tls_set_covers(atomic_load_explicit(&s->tls, memory_order_acquire), req->host))
        return false;
    size_t port = strlen(s->https_port);
    size_t max = 8 + req->host.len + port + req->path.len + 1 + req->query.len;
    char *loc = dt_http_redirect_begin(ob, 308, max);
    char *o = loc;
    memcpy(o, "https://", 8);
    o += 8;
    memcpy(o, req->host.ptr, req->host.len);
    o += req->host.len;
    memcpy(o, s->https_port, port);
    o += port;
    memcpy(o, req->path.ptr, req->path.len);
    o += req->path.len;
    if (req->query.len) {
        *o++ = '?';
        memcpy(o, req->query.ptr, req->query.len);
        o += req->query.len;
    }
    dt_http_redirect_end(ob, 308, (size_t)(o - loc), r);
    return true;
}

/* HTTP-01 (RFC 8555 8.3): on a plain listener, /.well-known/acme-challenge/TOKEN gets the
 * key authorization the ACME thread published for TOKEN (200), or 404; before any rule.
 * Returns the status it answered with, or 0 when the path is not one. */
static int acme_challenge(struct conn *c, const struct dt_request *req, struct dt_buf *ob,
                          const struct dt_http_reply *r)
{
    static const char prefix[] = "/.well-known/acme-challenge/";
    struct dt_server *s = c->w->srv;
    size_t n = sizeof(prefix) - 1;
    if (c->tls || !s->acme || req->path.len <= n || memcmp(req->path.ptr, prefix, n) != 0)
        return 0;
    struct dt_str token = dt_str_make(req->path.ptr + n, req->path.len - n);
    struct dt_buf ka;
    dt_buf_init(&ka);
    int status = 200;
    if (acme_http01(s, token, &ka))
        dt_http_write_response(ob, 200, r, "application/octet-stream", (struct dt_str){0},
                               dt_str_make(ka.ptr, ka.len));
    else
        dt_http_write_page(ob, status = 404, r, "No ACME challenge <code>", token, "</code>.");
    dt_buf_dispose(&ka);
    return status;
}

/* Answers one request head: the rule's redirect, or 404. */
static void redirect_head(struct conn *c, const struct dt_request *req)
{
    struct worker *w = c->w;
    struct dt_buf *ob = conn_out(c);
    /* RFC 9110 10.1.1: with Expect: 100-continue the client may or may not send the
     * content after a final answer; closing keeps the connection from going out of step. */
    bool close = !req->keep_alive || req->body_too_large ||
                 (req->expect_continue && req->has_body) || w->stopping;
    struct dt_http_reply r = {
        .date = w->date,
        /* S3, RFC 9110 9.3.2: HEAD gets the headers GET would, so the note it does not
         * send is GET's, and Content-Length is that note's length. */
        .method = req->head ? DT_STR("GET") : req->method,
        .head = req->head,
        .close = close,
        .keep_alive_10 = !close && req->version_minor == 0,
        .had_body = req->has_body,
        .max_age = -1,
        .extra = c->tls ? w->srv->hsts : (struct dt_str){0},
    };
    size_t start = ob->len;
    if (c->h2)
        STAT_ADD(w->stats.requests_h2, 1);
    else
        STAT_ADD(w->stats.requests_h1, 1);
    if (c->tls)
        STAT_ADD(w->stats.requests_tls, 1);
    const struct dt_ruleset *rs = atomic_load_explicit(&w->srv->rules, memory_order_acquire);
    struct dt_answer_query q = {c->tls ? DT_SCHEME_HTTPS : DT_SCHEME_HTTP, req->host, req->path,
                                req->query, w->now_s};
    struct dt_answer a;
    int answered;
    if ((answered = acme_challenge(c, req, ob, &r)) != 0) {
        STAT_ADD(w->stats.source[DT_SRC_NONE], 1);
    } else if (to_https(c, req, ob, &r)) {
        answered = 308;
        STAT_ADD(w->stats.status[DT_ST_308], 1);
    } else if ((answered = dt_answer_find(rs, &q, &a)), a.rule) {
        STAT_ADD(w->stats.source[a.layer == DT_LAYER_FILES ? DT_SRC_FILES : DT_SRC_STORE], 1);
        STAT_ADD(w->stats.status[answered == 301   ? DT_ST_301
                                 : answered == 302 ? DT_ST_302
                                 : answered == 303 ? DT_ST_303
                                 : answered == 307 ? DT_ST_307
                                                   : DT_ST_308],
                 1);
        dt_answer_count(rs, &a, w->id, w->now_s);
        dt_server_write_answer(ob, &a, &q, &r);
    } else {
        STAT_ADD(w->stats.source[DT_SRC_NONE], 1);
        STAT_ADD(w->stats.status[DT_ST_404], 1);
        dt_server_write_answer(ob, &a, &q, &r);
    }
    if (w->srv->alog)
        dt_alog_line(w, c, req, answered, ob->len - start);
    c->served++;
    if (close) {
        c->close_after = true;
        if (req->has_body)
            c->dirty_close = true; /* the content may still be arriving */
    }
}

const struct handler dt_handler_redirect = {
    .name = "redirect",
    .metrics = true,
    .head = redirect_head,
    .h2 = true,
};
