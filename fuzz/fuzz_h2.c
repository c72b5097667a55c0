/* fuzz_h2: any bytes after the HTTP/2 preface, fed to a connection's HTTP/2 layer (h2.c
 * over nghttp2) in two pieces the input picks, must never crash or leak; every request that
 * reaches the handler has a method, an origin-form path and a host that is a valid key;
 * what the layer writes is whole frames. The handler answers as the redirect one does. */
#include "server/internal.h"

#include <stdlib.h>

static struct worker w;
static struct dt_server srv;
static struct dt_server_config cfg;
static unsigned requests;

static void head(struct conn *c, const struct dt_request *req)
{
    if (!req->method.len || !req->path.len || req->path.ptr[0] != '/')
        abort();
    for (size_t i = 0; i < req->host.len; i++)
        if (req->host.ptr[i] >= 'A' && req->host.ptr[i] <= 'Z')
            abort(); /* a host key is lower-cased */
    requests++;
    struct dt_http_reply r = {.date = "Tue, 24 Nov 2026 13:00:00 GMT",
                              .method = req->method,
                              .head = req->head,
                              .had_body = req->has_body,
                              .max_age = -1};
    char *loc = dt_http_redirect_begin(conn_out(c), 307, req->path.len + 1);
    memcpy(loc, req->path.ptr, req->path.len);
    dt_http_redirect_end(conn_out(c), 307, req->path.len, &r);
}

static const struct handler handler = {.name = "fuzz", .head = head, .h2 = true};

/* The output is a sequence of whole frames (after nothing: the server has no preface). */
static void check_frames(const struct dt_buf *out)
{
    size_t i = 0;
    while (i + 9 <= out->len) {
        const unsigned char *p = (const unsigned char *)out->ptr + i;
        size_t n = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        i += 9 + n;
    }
    if (i != out->len)
        abort();
}

static void feed(struct conn *c, const uint8_t *data, size_t n)
{
    if (c->in_cap < n) {
        c->in = realloc(c->in, n);
        c->in_cap = (uint32_t)n;
    }
    memcpy(c->in, data, n);
    c->in_len = (uint32_t)n;
    dt_h2_input(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dt_http_limits lim = {8192, 4096, 50, 65536};
    w.limits = &lim;
    w.srv = &srv;
    w.now_ms = 1000;
    srv.cfg = &cfg;
    dt_buf_init(&w.out);
    dt_buf_init(&w.h2out);
    struct conn c;
    memset(&c, 0, sizeof(c));
    c.w = &w;
    c.h = &handler;
    dt_buf_init(&c.pending);
    if (!dt_h2_start(&c))
        abort();
    size_t split = size ? data[0] % (size + 1) : 0;
    uint8_t *all = malloc(DT_H2_PREFACE_LEN + size);
    memcpy(all, dt_h2_preface, DT_H2_PREFACE_LEN);
    memcpy(all + DT_H2_PREFACE_LEN, data, size);
    feed(&c, all, DT_H2_PREFACE_LEN + split);
    if (!c.close_after) {
        w.now_ms += 10;
        feed(&c, all + DT_H2_PREFACE_LEN + split, size - split);
    }
    check_frames(&w.out);
    dt_h2_free(&c);
    free(all);
    free(c.in);
    dt_buf_dispose(&c.pending);
    dt_buf_dispose(&w.out);
    dt_buf_dispose(&w.h2out);
    return 0;
}
