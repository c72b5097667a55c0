/* h2: HTTP/2 (RFC 9113) on a connection, with nghttp2: by ALPN on TLS listeners and by
 * prior knowledge (the connection preface) on plain ones.
 *
 * Each request is answered when its header block is whole, by the listener's handler, as
 * over HTTP/1.1: the handler writes its HTTP/1.1 answer into a scratch buffer, and this
 * file sends the same status, fields and content as HTTP/2 frames (dropping the
 * connection-specific fields RFC 9113 8.2.2 forbids). One answer, two framings. Request
 * content is read and dropped, and credited back by flow control; content beyond
 * --max-body ends the stream with RST_STREAM(NO_ERROR) once it is answered.
 *
 * Protections: at most MAX_STREAMS open streams; header blocks within --max-header-size
 * (decoded: an HPACK bomb meets the same limit); and per connection a budget of resets,
 * SETTINGS, PINGs and empty frames per second: a client that spends it (rapid reset,
 * CVE-2023-44487; floods) gets GOAWAY(ENHANCE_YOUR_CALM) and is closed. CONTINUATION floods
 * (CVE-2024-27316) end at the header limit; nghttp2 also caps their number. */
#include "server/internal.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>

#define MAX_STREAMS 100 /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define BUDGET 1000     /* resets, SETTINGS, PINGs and empty frames a second */
#define MAX_CONTINUATIONS 6

const char dt_h2_preface[DT_H2_PREFACE_LEN] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* One request stream: its fields as they arrive, then its answer's content. */
struct stream {
    struct stream *prev, *next; /* the connection's open streams (freed with it) */
    int32_t id;
    struct dt_buf fields; /* method, path, authority, host, user-agent, referer */
    uint32_t at[6], len[6];
    uint32_t have; /* bit k: field k was given */
    size_t header_bytes;
    uint32_t nfields;
    bool too_big; /* the header block passed --max-header-size: 431, fields not kept */
    uint64_t body_bytes;
    bool answered, ended; /* the answer was submitted; the client's side is closed */
    char *content;        /* the answer's content, sent by content_read */
    size_t content_len, content_off;
};

enum { F_METHOD, F_PATH, F_AUTHORITY, F_HOST, F_UA, F_REFERER, F_COUNT };

struct h2 {
    nghttp2_session *session;
    struct conn *c;
    uint64_t window_ms; /* the second the budget counts in */
    unsigned spent;
    bool calm;              /* GOAWAY(ENHANCE_YOUR_CALM) sent */
    bool goaway;            /* GOAWAY(NO_ERROR) sent: the server stops */
    unsigned continuations; /* CONTINUATION frames of the header block being read */
    struct stream *streams; /* open ones: nghttp2 does not close them when it is deleted */
};

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static struct dt_str field(const struct stream *s, int k)
{
    return (s->have & (1u << k)) ? dt_str_make(s->fields.ptr + s->at[k], s->len[k])
                                 : dt_str_make("", 0);
}

/* Ends the connection for misbehaving: GOAWAY(ENHANCE_YOUR_CALM), once. */
static void calm_down(struct h2 *h)
{
    if (!h->calm) {
        h->calm = true;
        nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* Spends one of the connection's budget; false (and GOAWAY) when it is spent. */
static bool spend(struct h2 *h)
{
    uint64_t now = h->c->w->now_ms;
    if (now - h->window_ms >= 1000) {
        h->window_ms = now;
        h->spent = 0;
    }
    if (++h->spent <= BUDGET)
        return true;
    calm_down(h);
    return false;
}

/* CVE-2024-27316: a header block is one HEADERS and a few CONTINUATION frames at most (our
 * header limit fits in 2 of the smallest frame size); more is a flood. */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    (void)session;
    struct h2 *h = user;
    if (hd->type == NGHTTP2_HEADERS)
        h->continuations = 0;
    else if (hd->type == NGHTTP2_CONTINUATION && ++h->continuations > MAX_CONTINUATIONS)
        calm_down(h);
    return 0;
}

static void stream_free(struct h2 *h, struct stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    dt_buf_dispose(&s->fields);
    free(s->content);
    free(s);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2 *h = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = dt_xcalloc(1, sizeof(*s));
    s->id = frame->hd.stream_id;
    dt_buf_init(&s->fields);
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    if (nghttp2_session_set_stream_user_data(session, s->id, s) != 0)
        stream_free(h, s); /* a stream nghttp2 did not open (refused) */
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    struct h2 *h = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* RFC 9113 6.5.2's measure: name, value and 32 bytes of each field */
    s->header_bytes += namelen + valuelen + 32;
    s->nfields++;
    if (s->header_bytes > h->c->w->limits->max_header_bytes)
        s->too_big = true; /* counted on (the block is decoded anyway), kept no more */
    if (s->too_big)
        return 0;
    static const struct {
        const char *name;
        size_t len;
    } known[F_COUNT] = {{":method", 7}, {":path", 5},       {":authority", 10},
                        {"host", 4},    {"user-agent", 10}, {"referer", 7}};
    for (int k = 0; k < F_COUNT; k++) {
        if (namelen != known[k].len || memcmp(name, known[k].name, namelen) != 0)
            continue;
        if (s->have & (1u << k))
            return 0; /* nghttp2 refuses a second pseudo-header; a second Host is ignored */
        s->at[k] = (uint32_t)s->fields.len;
        s->len[k] = (uint32_t)valuelen;
        s->have |= 1u << k;
        dt_buf_append(&s->fields, (const char *)value, valuelen);
        return 0;
    }
    return 0;
}

/* ---- answering ---------------------------------------------------------------------------- */

static ssize_t content_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)id;
    (void)user;
    struct stream *s = source->ptr;
    size_t n = s->content_len - s->content_off;
    if (n > length)
        n = length;
    memcpy(buf, s->content + s->content_off, n);
    s->content_off += n;
    if (s->content_off == s->content_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Submits the HTTP/1.1 answer in out (status line, fields, content) as HTTP/2. */
static void submit(struct h2 *h, struct stream *s, const struct dt_buf *out, bool head)
{
    const char *p = out->ptr, *end = out->ptr + out->len;
    nghttp2_nv nv[24];
    size_t n = 0;
    char lower[24][40];
    const char *line = out->len >= 12 ? memchr(p, '\n', out->len) : NULL;
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)p + 9, 7, 3, NGHTTP2_NV_FLAG_NONE};
    /* one pass over the fields, to the blank line that ends them */
    while (line && ++line < end && *line != '\r') {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *colon = nl ? memchr(line, ':', (size_t)(nl - line)) : NULL;
        if (!colon) {
            line = NULL;
            break;
        }
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        size_t vlen = (size_t)(nl - 1 - v); /* before "\r\n" */
        if (n < DT_ARRAY_LEN(nv) && nlen < sizeof(lower[0]) &&
            !dt_str_ieq(dt_str_make(line, nlen), "connection") &&
            !dt_str_ieq(dt_str_make(line, nlen), "keep-alive")) {
            memcpy(lower[n], line, nlen);
            dt_ascii_lower(lower[n], nlen);
            nv[n] =
                (nghttp2_nv){(uint8_t *)lower[n], (uint8_t *)v, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
            n++;
        }
        line = nl;
    }
    if (!line || end - line < 2) { /* not an answer the handlers write */
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    const char *content = line + 2;
    size_t clen = (size_t)(end - content);
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = content_read};
    if (clen && !head) {
        s->content = dt_xmalloc(clen);
        memcpy(s->content, content, clen);
        s->content_len = clen;
    }
    nghttp2_submit_response(h->session, s->id, nv, n, s->content_len ? &prd : NULL);
    s->answered = true;
}

/* The request's head is whole: answer it with the listener's handler. */
static void answer(struct h2 *h, struct stream *s, bool ended)
{
    struct conn *c = h->c;
    struct worker *w = c->w;
    struct dt_request req;
    memset(&req, 0, sizeof(req));
    req.method = field(s, F_METHOD);
    req.target = field(s, F_PATH);
    req.user_agent = field(s, F_UA);
    req.referer = field(s, F_REFERER);
    req.version_minor = 1;
    req.keep_alive = true;
    req.head = dt_str_eq(req.method, DT_STR("HEAD"));
    req.has_body = !ended;
    /* RFC 9113 8.3.1: :authority, else Host; the same host rules as HTTP/1.1 */
    struct dt_str auth = field(s, F_AUTHORITY);
    if (!auth.len)
        auth = field(s, F_HOST);
    bool bad = auth.len && !dt_http_authority_host((char *)auth.ptr, auth.len, &req.host);
    for (size_t i = 0; i < req.target.len && !bad; i++)
        bad = (unsigned char)req.target.ptr[i] <= ' ' || req.target.ptr[i] == 0x7f;
    if (!bad && dt_str_eq(req.method, DT_STR("CONNECT"))) {
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    const char *q = memchr(req.target.ptr, '?', req.target.len);
    req.path = q ? dt_str_make(req.target.ptr, (size_t)(q - req.target.ptr)) : req.target;
    req.query = q ? dt_str_make(q + 1, req.target.len - req.path.len - 1) : dt_str_make("", 0);
    struct dt_buf *out = &w->h2out;
    out->len = 0;
    c->h2_answering = true;
    bool close_after = c->close_after, dirty = c->dirty_close;
    /* the limits of HTTP/1.1, with the same statuses */
    const struct dt_http_limits *lim = w->limits;
    int refuse = s->too_big || s->nfields > lim->max_header_fields    ? 431
                 : req.target.len > lim->max_request_line             ? 414
                 : bad || !req.target.len || req.target.ptr[0] != '/' ? 400
                                                                      : 0;
    if (refuse) {
        struct dt_http_reply r = {.date = w->date,
                                  .max_age = -1,
                                  .head = req.head,
                                  .extra = c->tls ? w->srv->hsts : (struct dt_str){0}};
        dt_http_write_page(out, refuse, &r, "",
                           refuse == 431   ? DT_STR("The header section is too large")
                           : refuse == 414 ? DT_STR("The request target is too long")
                                           : DT_STR("Bad request: its host or path"),
                           "");
        if (c->h->metrics)
            STAT_ADD(w->stats.status[DT_ST_4XX], 1);
    } else {
        c->h->head(c, &req);
    }
    c->close_after = close_after;
    c->dirty_close = dirty;
    c->h2_answering = false;
    submit(h, s, out, req.head);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2 *h = user;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
        struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        bool ended = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
        if (s && !s->answered && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            answer(h, s, ended);
        if (s && ended)
            s->ended = true;
        break;
    }
    case NGHTTP2_DATA: {
        struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            s->ended = true;
        if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !spend(h))
            return 0;
        break;
    }
    case NGHTTP2_RST_STREAM:
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
    case NGHTTP2_PRIORITY:
        spend(h);
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)data;
    struct h2 *h = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    s->body_bytes += len;
    if (s->body_bytes > h->c->w->limits->max_body && s->answered && !s->ended) {
        /* RFC 9113 8.1: answered; the client may stop sending */
        s->ended = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    (void)code;
    struct stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_free(user, s);
    return 0;
}

static void setup(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_option_new(&options);
    /* Our own budget (BUDGET a second) answers floods with GOAWAY first; nghttp2's limits,
     * set beyond ours, stay as a second line. */
    nghttp2_option_set_max_outbound_ack(options, 4 * BUDGET);
    nghttp2_option_set_max_settings(options, 32);
    nghttp2_option_set_max_continuations(options, 4 * MAX_CONTINUATIONS);
    nghttp2_option_set_stream_reset_rate_limit(options, 4 * BUDGET, BUDGET);
}

/* ---- the connection's side ---------------------------------------------------------------- */

bool dt_h2_start(struct conn *c)
{
    pthread_once(&once, setup);
    struct h2 *h = dt_xcalloc(1, sizeof(*h));
    h->c = c;
    h->window_ms = c->w->now_ms;
    if (nghttp2_session_server_new2(&h->session, callbacks, h, options) != 0) {
        free(h);
        return false;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->w->limits->max_header_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        /* RFC 9218: no RFC 7540 priority tree (answers are a few hundred bytes each, sent
         * as they come): nghttp2 keeps no tree and no closed streams for it */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, DT_ARRAY_LEN(iv));
    c->h2 = h;
    STAT_ADD(c->w->stats.connections_h2, 1);
    return true;
}

void dt_h2_free(struct conn *c)
{
    if (!c->h2)
        return;
    nghttp2_session_del(c->h2->session);
    while (c->h2->streams)
        stream_free(c->h2, c->h2->streams);
    free(c->h2);
    c->h2 = NULL;
}

/* Writes what nghttp2 has to send into the connection's output. */
static bool send_frames(struct conn *c)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2->session, &data);
        if (n < 0)
            return false;
        if (n == 0)
            return true;
        dt_buf_append(conn_out(c), (const char *)data, (size_t)n);
    }
}

void dt_h2_input(struct conn *c)
{
    struct h2 *h = c->h2;
    if (c->in_len) {
        ssize_t n = nghttp2_session_mem_recv(h->session, (const uint8_t *)c->in, c->in_len);
        c->in_len = 0;
        if (n < 0) {
            /* a protocol error: nghttp2 has queued its GOAWAY; send it, then close */
            c->close_after = true;
        }
    }
    if (c->w->stopping && !h->goaway) {
        /* stopping: what is open was answered already; say so and end */
        h->goaway = true;
        nghttp2_session_terminate_session(h->session, NGHTTP2_NO_ERROR);
    }
    if (!send_frames(c) || h->calm)
        c->close_after = true;
    if (!nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session))
        c->close_after = true;
}
