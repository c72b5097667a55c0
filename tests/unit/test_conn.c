/* test_conn: a connection's input buffer (src/server/conn.c) over a socket pair, with a
 * handler of the test's own: a connection waiting for its next request holds no buffer;
 * what a read leaves of an unfinished request is kept, in a buffer of the connection's
 * own, and the request completes from it; pipelined and large requests. */
#include "server/internal.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char last_path[256];
static unsigned heads;

static void test_head(struct conn *c, const struct dt_request *req)
{
    heads++;
    size_t n = req->path.len < sizeof(last_path) - 1 ? req->path.len : sizeof(last_path) - 1;
    memcpy(last_path, req->path.ptr, n);
    last_path[n] = '\0';
    dt_buf_append(conn_out(c), "HTTP/1.1 204 No Content\r\n\r\n", 27);
    c->served++;
}

static const struct handler test_handler = {.name = "test", .head = test_head};

static struct worker w;
static struct dt_server srv;
static const struct dt_http_limits limits = DT_HTTP_LIMITS_DEFAULT;

static void setup(void)
{
    w.epfd = epoll_create1(EPOLL_CLOEXEC);
    w.srv = &srv;
    w.limits = &limits;
    w.rbuf = dt_xmalloc(DT_SERVER_RBUF);
    dt_buf_init(&w.out);
    dt_buf_init(&w.h2out);
    for (int i = 0; i < TL_COUNT; i++)
        w.timeout_ms[i] = 10000;
    memcpy(w.date, "Sat, 05 Dec 2026 00:00:00 GMT", 29);
}

/* Writes s to the client's end, then lets the connection read it. */
static void feed(struct conn *c, int peer, const char *s, size_t n)
{
    ok(write(peer, s, n) == (ssize_t)n, "the client writes");
    conn_event(c, EPOLLIN);
}

/* Reads what the server sent so far (non-blocking), appended to got. */
static size_t drain(int peer, char *got, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(peer, got + len, cap - 1 - len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    got[len] = '\0';
    return len;
}

static unsigned count(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static struct conn *open_conn(int *peer)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    *peer = sv[1];
    struct conn *c = conn_new(&w, sv[0], &test_handler, NULL);
    conn_start(c);
    return c;
}

static void idle_holds_nothing(void)
{
    int peer;
    struct conn *c = open_conn(&peer);
    ok(c->in == NULL, "a new connection holds no input buffer");
    char got[4096];

    static const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    feed(c, peer, req, sizeof(req) - 1);
    drain(peer, got, sizeof(got));
    is_int(count(got, "204 No Content"), 1, "the request is answered");
    ok(c->in == NULL && c->in_len == 0, "answered and waiting: no input buffer held");
    ok(!c->in_borrowed, "the worker's buffer is not kept");

    /* half a request: kept in a buffer of the connection's own */
    static const char part1[] = "GET /second HTTP/1.1\r\nHo";
    feed(c, peer, part1, sizeof(part1) - 1);
    ok(drain(peer, got, sizeof(got)) == 0, "half a request: no answer yet");
    ok(c->in != NULL && c->in != w.rbuf && !c->in_borrowed,
       "the unfinished request is in the connection's own buffer");
    /* the worker's buffer is used by another connection meanwhile */
    memset(w.rbuf, 'Z', DT_SERVER_RBUF);
    static const char part2[] = "st: x\r\n\r\n";
    feed(c, peer, part2, sizeof(part2) - 1);
    drain(peer, got, sizeof(got));
    is_int(count(got, "204 No Content"), 1, "the rest arrives: answered");
    is_str(last_path, "/second", "from the bytes kept across reads");
    ok(c->in == NULL, "and the buffer is given back");

    /* two and a half pipelined requests in one read */
    static const char pipe3[] = "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /p2 HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /p3 HTTP/1.1\r\nHo";
    feed(c, peer, pipe3, sizeof(pipe3) - 1);
    drain(peer, got, sizeof(got));
    is_int(count(got, "204 No Content"), 2, "two whole pipelined requests answered");
    ok(c->in != NULL && !c->in_borrowed, "the third's start kept");
    ok(c->in_len - dt_http_parser_discardable(&c->parser) <= sizeof("GET /p3 HTTP/1.1\r\nHo"),
       "only the unfinished request is kept");
    memset(w.rbuf, 0, DT_SERVER_RBUF);
    feed(c, peer, "st: x\r\n\r\n", 9);
    drain(peer, got, sizeof(got));
    is_int(count(got, "204 No Content"), 1, "the third answered");
    is_str(last_path, "/p3", "the third's path");
    ok(c->in == NULL, "nothing held after it");
    conn_close(c);
    close(peer);
}

/* A head larger than the worker's buffer: the buffer grows into the connection's own and
 * the request is answered. */
static void large_head(void)
{
    int peer;
    struct conn *c = open_conn(&peer);
    size_t cookie = DT_SERVER_RBUF + 5000;
    char *req = dt_xmalloc(cookie + 100);
    int n = snprintf(req, 100, "GET /large HTTP/1.1\r\nHost: x\r\nCookie: ");
    memset(req + n, 'c', cookie);
    memcpy(req + n + cookie, "\r\n\r\n", 4);
    size_t len = (size_t)n + cookie + 4;
    size_t off = 0;
    char got[4096];
    while (off < len) {
        ssize_t k = write(peer, req + off, len - off);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno != EAGAIN)
            break;
        conn_event(c, EPOLLIN);
    }
    drain(peer, got, sizeof(got));
    is_int(count(got, "204 No Content"), 1, "a head larger than the worker's buffer is answered");
    is_str(last_path, "/large", "its path");
    ok(c->in == NULL, "and the grown buffer is given back");
    free(req);
    conn_close(c);
    close(peer);
}

/* A connection closed mid-request gives its own buffer back (ASan sees a leak otherwise),
 * and one closed while reading into the worker's does not free that. */
static void close_mid_request(void)
{
    int peer;
    struct conn *c = open_conn(&peer);
    feed(c, peer, "GET /x HTTP/1.1\r\n", 17);
    ok(c->in != NULL && !c->in_borrowed, "an unfinished request held");
    conn_close(c);
    close(peer);
    c = open_conn(&peer);
    close(peer); /* end of input: closed during the read, while borrowing */
    conn_event(c, EPOLLIN | EPOLLRDHUP);
    ok(w.rbuf != NULL, "the worker's buffer is still the worker's");
    is_int((int)w.nconns, 0, "every connection closed");
}

int main(void)
{
    setup();
    idle_holds_nothing();
    large_head();
    close_mid_request();
    while (w.free_conns) {
        struct conn *c = w.free_conns;
        w.free_conns = c->tnext;
        free(c->in);
        dt_buf_dispose(&c->pending);
        free(c);
    }
    free(w.rbuf);
    dt_buf_dispose(&w.out);
    dt_buf_dispose(&w.h2out);
    close(w.epfd);
    return done_testing();
}
