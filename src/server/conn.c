/* conn: one client connection: read, parse, hand each request to the listener's handler,
 * send, keep alive or close. conn knows no handler.
 *
 * The hot path reads into the connection's buffer, parses in place, and the handler writes
 * the whole answer into the worker's batch buffer; a batch of pipelined answers goes out in
 * one send. Nothing is allocated per request. */
#include "server/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IN_INITIAL 4096           /* a connection's own input buffer, at least */
#define PENDING_HIGH (256 * 1024) /* unsent output beyond which reading pauses */
#define BATCH_FLUSH (64 * 1024)   /* a batch this large is sent before parsing on */

static bool conn_read(struct conn *c);

struct conn *conn_new(struct worker *w, int fd, const struct handler *h, struct dt_tls_set *tls)
{
    struct conn *c = w->free_conns;
    if (c) {
        w->free_conns = c->tnext;
    } else {
        c = dt_xcalloc(1, sizeof(*c));
        dt_buf_init(&c->pending);
    }
    c->tag = TAG_CONN;
    c->tlist = TL_NONE;
    c->registered = c->close_after = c->dirty_close = c->lingering = c->head_timer = false;
    c->read_blocked = c->eof = c->want_out = false;
    c->fd = fd;
    c->served = 0;
    c->w = w;
    c->tprev = c->tnext = NULL;
    c->in_len = 0;
    c->pending.len = 0;
    c->pending_off = 0;
    c->peer[0] = '\0';
    c->awaiting = false;
    c->tls_ready = c->tls_read_out = c->h2_answering = false;
    c->h2 = NULL;
    c->counted = false;
    c->in_borrowed = c->await_proxy = false;
    c->ip_key = 0;
    c->tls = tls ? dt_tls_accept(tls, fd) : NULL;
    if (c->tls && !h->h2)
        dt_tls_no_h2(c->tls);
    dt_http_parser_init(&c->parser, w->limits);
    if (c->h != h && c->h && c->h->release)
        c->h->release(c, true); /* the struct served another handler */
    c->h = h;
    if (h->init)
        h->init(c);
    w->nconns++;
    return c;
}

/* A handshake that did not finish, counted once by why. */
static void tls_failed(struct conn *c, enum dt_tls_failure why)
{
    if (c->tls && !c->tls_ready) {
        c->tls_ready = true; /* counted */
        STAT_ADD(c->w->stats.handshakes_failed[why], 1);
    }
}

void conn_close(struct conn *c)
{
    struct worker *w = c->w;
    timer_unlink(c);
    limits_give(w->srv, c);
    dt_h2_free(c);
    if (c->tls) {
        /* close_notify first: a client that sees the connection end without it takes it
         * for a truncation, and OpenSSL's clients drop the session (no resumption) */
        if (c->tls_ready && !c->lingering)
            dt_tls_close_notify(c->tls);
        tls_failed(c, DT_TLS_FAIL_CLOSED);
        dt_tls_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    w->nconns--;
    /* Keep the output buffer for the next connection unless a slow reader made it grow;
     * an input buffer of its own only held an unfinished request. */
    if (!c->in_borrowed)
        free(c->in);
    c->in = NULL;
    c->in_cap = c->in_len = 0;
    c->in_borrowed = false;
    if (c->pending.cap > 64 * 1024)
        dt_buf_dispose(&c->pending);
    if (c->h->release)
        c->h->release(c, false);
    c->tag = 0;
    c->tnext = w->free_conns;
    w->free_conns = c;
}

static size_t unsent(const struct conn *c)
{
    return c->pending.len - c->pending_off;
}

struct dt_buf *conn_out(struct conn *c)
{
    if (c->h2_answering)
        return &c->w->h2out;
    return unsent(c) ? &c->pending : &c->w->out;
}

static bool arm_output(struct conn *c);

/* The answer to plain HTTP sent to a TLS port (as nginx's), sent as it is and the
 * connection closed. */
static void answer_plain_http(struct conn *c)
{
    static const char page[] = "<p>This port speaks HTTPS: use an https:// URL.</p>\n";
    char head[160];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     sizeof(page) - 1);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)page, sizeof(page) - 1}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    (void)sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* The handshake is done: count it. */
static void tls_established(struct conn *c)
{
    c->tls_ready = true;
    if (dt_tls_resumed(c->tls))
        STAT_ADD(c->w->stats.handshakes_resumed, 1);
    else
        STAT_ADD(c->w->stats.handshakes_full, 1);
    if (strcmp(dt_tls_engine(c->tls), "detour") != 0)
        STAT_ADD(c->w->stats.handshakes_library, 1);
    if (dt_tls_h2(c->tls) && !dt_h2_start(c))
        c->close_after = true; /* out of memory */
}

/* Reads from the client, through TLS on a TLS connection: > 0 bytes, 0 at its end, or -1
 * with errno (EAGAIN: wait for the socket). */
static ssize_t conn_recv(struct conn *c, void *buf, size_t n)
{
    if (!c->tls)
        return recv(c->fd, buf, n, 0);
    ssize_t r = dt_tls_read(c->tls, buf, n);
    if (!c->tls_ready && dt_tls_established(c->tls))
        tls_established(c);
    c->tls_read_out = false;
    if (r >= 0)
        return r;
    errno = EAGAIN;
    if (r == DT_TLS_WANT_READ)
        return -1;
    if (r == DT_TLS_WANT_WRITE) {
        c->tls_read_out = true; /* the handshake has more to send first */
        return arm_output(c) ? -1 : (errno = EPROTO, -1);
    }
    tls_failed(c, dt_tls_failure(c->tls));
    if (r == DT_TLS_PLAIN_HTTP) {
        /* answered as it is; then a lingering close, so that the request left unread does
         * not reset the connection before the client has read the answer */
        answer_plain_http(c);
        c->close_after = c->dirty_close = true;
        return -1;
    }
    errno = EPROTO;
    return -1;
}

/* Sends to the client, through TLS on a TLS connection: the bytes written (maybe fewer),
 * or -1 with errno (EAGAIN: wait; a retry starts with the same bytes). */
static ssize_t conn_send(struct conn *c, const void *buf, size_t n)
{
    if (!c->tls)
        return send(c->fd, buf, n, MSG_NOSIGNAL);
    /* TLS writes a record at a time: write on until all is out or the socket is full, so
     * that fewer bytes than asked means what it means for send (EPOLLOUT will come) */
    size_t done = 0;
    while (done < n) {
        ssize_t r = dt_tls_write(c->tls, (const char *)buf + done, n - done);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (done)
            break;
        errno = r == DT_TLS_ERROR ? EPIPE : EAGAIN;
        return -1;
    }
    return (ssize_t)done;
}

static bool arm_output(struct conn *c)
{
    if (c->want_out)
        return true;
    c->want_out = true;
    if (!c->registered)
        return true; /* conn_start registers with EPOLLOUT */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    return epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0;
}

/* Sends what is waiting. Returns false if the connection failed (and is closed). */
static bool flush(struct conn *c)
{
    struct worker *w = c->w;
    if (unsent(c)) {
        ssize_t n = conn_send(c, c->pending.ptr + c->pending_off, unsent(c));
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            w->out.len = 0;
            conn_close(c);
            return false;
        }
        if (n > 0)
            c->pending_off += (size_t)n;
        if (!unsent(c)) {
            c->pending.len = 0;
            c->pending_off = 0;
        } else if (!arm_output(c)) {
            conn_close(c);
            return false;
        }
        return true;
    }
    if (!w->out.len)
        return true;
    ssize_t n = conn_send(c, w->out.ptr, w->out.len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        w->out.len = 0;
        conn_close(c);
        return false;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (sent < w->out.len) {
        dt_buf_append(&c->pending, w->out.ptr + sent, w->out.len - sent);
        if (!arm_output(c)) {
            w->out.len = 0;
            conn_close(c);
            return false;
        }
    }
    w->out.len = 0;
    return true;
}

static void answer_error(struct conn *c, int status, const char *reason)
{
    struct worker *w = c->w;
    if (c->h->metrics)
        STAT_ADD(w->stats.status[status >= 500 ? DT_ST_5XX : DT_ST_4XX], 1);
    /* RFC 9110 9.3.2: an answer to HEAD has no content, errors included. */
    struct dt_http_reply r = {.date = w->date,
                              .close = true,
                              .max_age = -1,
                              .head = dt_http_parser_head(&c->parser),
                              .extra = c->tls ? w->srv->hsts : (struct dt_str){0}};
    dt_http_write_page(conn_out(c), status, &r, "", dt_str_make(reason, strlen(reason)), "");
    c->close_after = true;
    c->dirty_close = true;
}

static bool process_requests(struct conn *c);

/* Parses and answers every complete request in the buffer. Returns false if the
 * connection was closed. */
static void count_latency(struct worker *w, uint64_t t0, uint32_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - t0;
    unsigned b = 0;
    while (b < DT_LATENCY_BUCKETS && ns > (uint64_t)dt_latency_bounds_us[b] * 1000)
        b++;
    STAT_ADD(w->stats.latency[b], n);
    STAT_ADD(w->stats.latency_sum_ns, ns * n);
}

static bool process(struct conn *c)
{
    struct worker *w = c->w;
    /* Every request answered in this call waited for the whole call. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint32_t before = c->served;
    bool alive = process_requests(c);
    if (c->h->metrics && c->served != before)
        count_latency(w, t0, c->served - before);
    return alive;
}

/* The HTTP/2 connection preface on a plain connection's first bytes (prior knowledge,
 * RFC 9113 3.3): 1 it is there, 0 it is not, -1 too few bytes to tell. */
static int h2_preface(const struct conn *c)
{
    if (c->tls || c->served || !c->h->h2 || !dt_http_parser_idle(&c->parser))
        return 0;
    size_t n = c->in_len < DT_H2_PREFACE_LEN ? c->in_len : DT_H2_PREFACE_LEN;
    if (memcmp(c->in, dt_h2_preface, n) != 0)
        return 0;
    return n == DT_H2_PREFACE_LEN ? 1 : -1;
}

static bool process_requests(struct conn *c)
{
    struct worker *w = c->w;
    if (!c->h2 && c->in_len > c->parser.off) {
        int pre = h2_preface(c);
        if (pre < 0)
            return true; /* wait for the rest of the preface */
        if (pre > 0 && !dt_h2_start(c)) {
            c->close_after = true;
            return true;
        }
    }
    if (c->h2) {
        dt_h2_input(c);
        return true;
    }
    while (!c->close_after) {
        if (unsent(c) > PENDING_HIGH) {
            c->read_blocked = true; /* the client is not reading: stop parsing for it */
            break;
        }
        if (w->out.len > BATCH_FLUSH && !flush(c))
            return false;
        struct dt_request req;
        enum dt_http_event ev = dt_http_parse(&c->parser, c->in, c->in_len, &req);
        if (ev == DT_HTTP_NEED_MORE)
            break;
        if (ev == DT_HTTP_HEAD) {
            c->h->head(c, &req);
        } else if (ev == DT_HTTP_DONE && c->awaiting) {
            c->awaiting = false;
            c->h->done(c);
        } else if (ev == DT_HTTP_ERROR) {
            answer_error(c, c->parser.status, c->parser.reason);
        } else if (ev == DT_HTTP_ABORT) {
            if (c->awaiting) {
                /* the handler waited for the content, which broke: answer the error */
                c->awaiting = false;
                answer_error(c, c->parser.status, c->parser.reason);
            }
            c->close_after = c->dirty_close = true;
        }
    }
    size_t done = dt_http_parser_discardable(&c->parser);
    if (done == c->in_len && done) {
        c->in_len = 0;
        dt_http_parser_shift(&c->parser, done);
    }
    return true;
}

/* Before a read: with nothing buffered, the connection reads into its worker's buffer. */
static void ensure_input(struct conn *c)
{
    if (!c->in) {
        c->in = c->w->rbuf;
        c->in_cap = DT_SERVER_RBUF;
        c->in_borrowed = true;
    }
}

/* Drops the input the parser is done with (the rest moves to the start). */
static void drop_done(struct conn *c)
{
    size_t done = dt_http_parser_discardable(&c->parser);
    if (done) {
        memmove(c->in, c->in + done, c->in_len - done);
        c->in_len -= (uint32_t)done;
        dt_http_parser_shift(&c->parser, done);
    }
}

/* After the reads of an event: a connection keeps no buffer while nothing is buffered (the
 * worker's goes back, its own is freed), and moves what is left of an unfinished request
 * out of the worker's into one of its own (the parser's offsets still hold: the bytes it
 * is done with are dropped first, and the rest keeps its place from the start). */
static void settle_input(struct conn *c)
{
    if (!c->in)
        return;
    if (c->in_len == 0 || c->lingering) { /* a lingering connection reads only to drop */
        c->in_len = 0;
        if (!c->in_borrowed)
            free(c->in);
        c->in = NULL;
        c->in_cap = 0;
        c->in_borrowed = false;
        return;
    }
    if (!c->in_borrowed)
        return;
    drop_done(c);
    uint32_t cap = IN_INITIAL;
    while (cap < c->in_len)
        cap *= 2;
    char *own = dt_xmalloc(cap);
    memcpy(own, c->in, c->in_len);
    c->in = own;
    c->in_cap = cap;
    c->in_borrowed = false;
}

/* Makes room in the input buffer: drops what the parser is done with, then grows up to
 * the limits (the parser answers 414/431 before a head outgrows them); the worker's
 * buffer, full, becomes the connection's own at twice the size. */
static void make_room(struct conn *c)
{
    drop_done(c);
    if (c->in_len < c->in_cap)
        return;
    c->in_cap *= 2;
    if (c->in_borrowed) {
        char *own = dt_xmalloc(c->in_cap);
        memcpy(own, c->in, c->in_len);
        c->in = own;
        c->in_borrowed = false;
    } else {
        c->in = dt_xrealloc(c->in, c->in_cap);
    }
}

/* Lingering close: the answer is out and our side is shut; read and drop what the client
 * still sends, so that closing with unread data does not reset the connection before the
 * client has read the answer. */
static bool linger_read(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->w->rbuf, DT_SERVER_RBUF, 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        conn_close(c);
        return false;
    }
}

static bool finish(struct conn *c)
{
    if (!c->dirty_close && c->in_len == c->parser.off) {
        conn_close(c);
        return false;
    }
    if (c->tls)
        dt_tls_close_notify(c->tls);
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    timer_set(c, TL_LINGER);
    return linger_read(c);
}

/* Parses what is buffered, then reads and parses until the socket is empty or answers
 * must wait. Returns false if the connection was closed. */
static bool read_some(struct conn *c)
{
    /* Input already buffered (pipelined behind a paused batch) comes first. */
    if (c->in_len > c->parser.off && !process(c))
        return false;
    ensure_input(c);
    while (!c->read_blocked && !c->close_after) {
        if (c->in_len == c->in_cap)
            make_room(c);
        size_t space = c->in_cap - c->in_len;
        ssize_t n = conn_recv(c, c->in + c->in_len, space);
        if (n > 0) {
            c->in_len += (uint32_t)n;
            if (!process(c))
                return false;
            /* A short read emptied the socket; with edge-triggered epoll the next byte to
             * arrive wakes us again, so there is no need to read until EAGAIN. Not so
             * through TLS: it reads a record at a time and may leave the next in the
             * socket. */
            if ((size_t)n < space && !c->tls)
                break;
            continue;
        }
        if (n == 0) {
            c->eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            break;
        c->w->out.len = 0;
        conn_close(c);
        return false;
    }
    return true;
}

enum next { CLOSED, WAIT, READ_AGAIN };

/* After reading or writing: send, then decide what the connection waits for next. */
static enum next after_io(struct conn *c)
{
    struct worker *w = c->w;
    if (c->close_after && c->tls && c->tls_ready && !c->lingering)
        dt_tls_closing(c->tls); /* its close_notify with the last answer */
    if (!flush(c))
        return CLOSED;
    if (unsent(c)) {
        timer_set(c, TL_IDLE); /* the client must keep reading */
        return WAIT;
    }
    if (c->close_after)
        return finish(c) ? WAIT : CLOSED;
    if (c->h2) {
        if (c->eof) {
            conn_close(c);
            return CLOSED;
        }
        if (c->read_blocked) {
            c->read_blocked = false;
            return READ_AGAIN;
        }
        timer_set(c, TL_IDLE); /* an HTTP/2 connection idles out as a kept-alive one */
        return WAIT;
    }
    bool idle = dt_http_parser_idle(&c->parser);
    if (c->eof || (w->stopping && idle)) {
        conn_close(c);
        return CLOSED;
    }
    if (c->read_blocked) {
        /* the output drained: parse what is buffered, then read again */
        c->read_blocked = false;
        return READ_AGAIN;
    }
    if (idle) {
        c->head_timer = false;
        if (c->served)
            timer_set(c, TL_IDLE);
    } else if (dt_http_parser_in_body(&c->parser)) {
        c->head_timer = false;
        timer_set(c, TL_IDLE);
    } else if (!c->head_timer) {
        /* The first bytes of a request: from now it has header_timeout to arrive whole.
         * Also on a new connection, whose silent-client timer started at accept (and
         * deferred accept may hand over a silent client late). */
        c->head_timer = true;
        timer_set(c, TL_HEADER);
    }
    return WAIT;
}

/* Reads until the socket is empty, answering as requests complete. Returns false if the
 * connection was closed. */
static bool conn_read(struct conn *c)
{
    if (c->lingering)
        return linger_read(c);
    if (c->await_proxy) {
        int got = conn_proxy_header(c);
        if (got <= 0)
            return got == 0;
    }
    enum next next;
    do {
        if (!c->read_blocked && !c->close_after && !read_some(c))
            return false;
        next = after_io(c);
    } while (next == READ_AGAIN);
    if (next == CLOSED)
        return false;
    settle_input(c);
    return true;
}

int conn_proxy_header(struct conn *c)
{
    struct worker *w = c->w;
    /* Looked at, not read, until it is whole: not one byte after it is taken, so that TLS
     * and HTTP start from the client's first byte. */
    ssize_t n = recv(c->fd, w->rbuf, DT_PROXY_MAX, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    struct dt_proxy_info pi;
    int len = n > 0 ? dt_proxy_parse(w->rbuf, (size_t)n, &pi) : -1;
    if (len == -2)
        return 0;
    if (len < 0 || recv(c->fd, w->rbuf, (size_t)len, 0) != len) {
        /* no header, a bad one, or the connection's end: closed with no answer, as the
         * balancer's protocol is broken (an HTTP answer would be read as the client's) */
        if (n != 0)
            STAT_ADD(w->stats.refused_proxy, 1);
        if (c->tls) {
            dt_tls_free(c->tls);
            c->tls = NULL;
        }
        w->out.len = 0;
        conn_close(c);
        return -1;
    }
    c->await_proxy = false;
    const struct sockaddr_storage *client = pi.local ? NULL : &pi.src;
    if (client && w->srv->alog)
        worker_peer_name(client, c->peer, sizeof(c->peer));
    const struct dt_server_config *cfg = w->srv->cfg;
    if (c->h == &dt_handler_redirect && (cfg->max_connections || cfg->max_connections_per_ip)) {
        struct sockaddr_storage own;
        socklen_t sl = sizeof(own);
        if (!client && getpeername(c->fd, (struct sockaddr *)&own, &sl) == 0)
            client = &own;
        int over = limits_take(w->srv, c, client);
        if (over) {
            worker_refuse_conn(c, c->tls != NULL, over);
            return -1;
        }
    }
    return 1;
}

void conn_start(struct conn *c)
{
    timer_set(c, TL_HEADER);
    /* With deferred accept the request is usually here already: read before registering,
     * and a connection answered and closed at once never touches epoll. */
    if (!conn_read(c))
        return;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | EPOLLET | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        dt_log(DT_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        conn_close(c);
        return;
    }
    c->registered = true;
}

void conn_event(struct conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if ((events & EPOLLOUT) && unsent(c)) {
        if (!flush(c))
            return;
        if (!unsent(c)) {
            /* drained: a paused reader resumes, a closing connection closes */
            conn_read(c);
            return;
        }
    }
    if ((events & EPOLLOUT) && c->tls_read_out)
        events |= EPOLLIN; /* the TLS read that waited to write goes on */
    if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
        conn_read(c);
}

void conn_expire(struct conn *c, int list)
{
    if (list == TL_HEADER && (c->served || c->in_len) && !c->lingering) {
        /* Part of a request came, not the rest: 408, then close. A connection that never
         * sent a byte (a browser's preconnect, say) is closed without an answer. */
        answer_error(c, 408, "the request did not arrive in time");
        (void)after_io(c);
        return;
    }
    if (list == TL_HEADER)
        tls_failed(c, DT_TLS_FAIL_TIMEOUT);
    c->w->out.len = 0;
    conn_close(c);
}

void conn_shutdown_idle(struct conn *c)
{
    if (c->h2 && !c->lingering) {
        dt_h2_input(c); /* GOAWAY, sent before closing */
        (void)after_io(c);
        return;
    }
    if (!c->lingering && !unsent(c) && dt_http_parser_idle(&c->parser) &&
        c->in_len == c->parser.off)
        conn_close(c);
}
