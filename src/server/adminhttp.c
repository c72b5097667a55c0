/* adminhttp: the admin API's handler: a request is answered once its content is whole, by
 * the admin hook (hooks.admin), on the admin thread. */
#include "server/internal.h"

#include <stdlib.h>

/* An admin request being received: its head copied out of the input buffer, its content
 * gathered by the parser. */
struct admin_req {
    struct dt_buf head; /* method, target, authorization, one after the other */
    size_t method_len, target_len, auth_len, path_len, query_len;
    struct dt_buf body;
    bool close, keep_alive_10, is_head, too_large;
};

static void admin_init(struct conn *c)
{
    struct admin_req *a = c->hstate;
    if (!a) {
        a = c->hstate = dt_xcalloc(1, sizeof(*a));
        dt_buf_init(&a->head);
        dt_buf_init(&a->body);
    }
    a->head.len = a->body.len = 0;
    c->parser.body = &a->body;
}

static void admin_release(struct conn *c, bool all)
{
    struct admin_req *a = c->hstate;
    if (!a)
        return;
    if (all) {
        dt_buf_dispose(&a->head);
        dt_buf_dispose(&a->body);
        free(a);
        c->hstate = NULL;
    } else if (a->body.cap > 64 * 1024) {
        dt_buf_dispose(&a->body);
    }
}

/* The admin thread: a request head arrived. Its head is copied (the input buffer moves as
 * the content arrives) and the answer waits for the whole content. */
static void admin_head(struct conn *c, const struct dt_request *req)
{
    struct admin_req *a = c->hstate;
    struct worker *w = c->w;
    a->head.len = a->body.len = 0;
    dt_buf_append_str(&a->head, req->method);
    dt_buf_append_str(&a->head, req->target);
    dt_buf_append_str(&a->head, req->authorization);
    a->method_len = req->method.len;
    a->target_len = req->target.len;
    a->auth_len = req->authorization.len;
    dt_buf_append_str(&a->head, req->path);
    dt_buf_append_str(&a->head, req->query);
    a->path_len = req->path.len;
    a->query_len = req->query.len;
    a->is_head = req->head;
    a->too_large = req->body_too_large;
    a->close = !req->keep_alive || req->body_too_large || w->stopping;
    a->keep_alive_10 = !a->close && req->version_minor == 0;
    c->awaiting = true;
    if (req->body_too_large) {
        /* Content-Length over the limit: answer at once and close, unread. */
        c->awaiting = false;
        struct dt_http_reply r = {.date = w->date, .close = true, .head = req->head, .max_age = -1};
        static const char msg[] = "{\"error\":\"the request content is over the limit\"}\n";
        dt_http_write_response(conn_out(c), 413, &r, "application/json", DT_STR_NULL,
                               dt_str_make(msg, sizeof(msg) - 1));
        c->close_after = c->dirty_close = true;
        return;
    }
    if (req->expect_continue && req->has_body && req->version_minor == 1)
        dt_buf_append(conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/* The client's address, for the admin API's throttle of failed tokens: named at the first
 * request of a connection (the admin listener's accept does not ask for it). */
static const char *peer_of(struct conn *c)
{
    if (!c->peer[0]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
            worker_peer_name(&ss, c->peer, sizeof(c->peer));
    }
    return c->peer;
}

/* The admin thread: the content is complete; the hook answers. */
static void admin_dispatch(struct conn *c)
{
    struct admin_req *a = c->hstate;
    struct worker *w = c->w;
    const char *h = a->head.ptr;
    struct dt_admin_request req = {
        .method = dt_str_make(h, a->method_len),
        .target = dt_str_make(h + a->method_len, a->target_len),
        .authorization = dt_str_make(h + a->method_len + a->target_len, a->auth_len),
        .body = dt_str_make(a->body.ptr ? a->body.ptr : "", a->body.len),
        .head = a->is_head,
        .now = w->now_s,
        .now_ms = w->now_ms,
        .peer = peer_of(c),
    };
    size_t off = a->method_len + a->target_len + a->auth_len;
    req.path = dt_str_make(h + off, a->path_len);
    req.query = dt_str_make(h + off + a->path_len, a->query_len);
    struct dt_admin_reply rep = {.status = 500, .content_type = NULL};
    dt_buf_init(&rep.headers);
    dt_buf_init(&rep.body);
    const struct dt_server_hooks *hk = &w->srv->cfg->hooks;
    if (hk->admin)
        hk->admin(hk->ctx, &req, &rep);
    struct dt_http_reply r = {.date = w->date,
                              .close = a->close || w->stopping,
                              .keep_alive_10 = a->keep_alive_10,
                              .head = a->is_head,
                              .max_age = -1};
    dt_http_write_response(conn_out(c), rep.status, &r, rep.content_type,
                           dt_str_make(rep.headers.ptr ? rep.headers.ptr : "", rep.headers.len),
                           dt_str_make(rep.body.ptr ? rep.body.ptr : "", rep.body.len));
    dt_buf_dispose(&rep.headers);
    dt_buf_dispose(&rep.body);
    c->served++;
    if (r.close)
        c->close_after = true;
    a->body.len = 0;
    if (a->body.cap > 64 * 1024)
        dt_buf_dispose(&a->body); /* a large upload's buffer does not stay with the connection */
}

const struct handler dt_handler_admin = {
    .name = "admin",
    .metrics = false,
    .init = admin_init,
    .release = admin_release,
    .head = admin_head,
    .done = admin_dispatch,
};
