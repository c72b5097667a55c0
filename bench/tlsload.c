/* tlsload: the TLS benchmark's client (bench/tls). One thread, non-blocking sockets, epoll.
 *
 * usage: detour-tlsload [OPTIONS] PORT
 *   -c N      connections in flight (default 64)
 *   -d SECS   how long to start new connections (default 8); in --hold mode, the longest
 *             time to keep the connections open
 *   -r        resume: every connection offers the newest session ticket the server gave
 *             (one connection is made first, outside the count, to get one). A TLS 1.3
 *             ticket is offered once, as browsers and OpenSSL's client do (RFC 8446 C.4):
 *             a server that sends no new ticket on a resumed connection gets a full
 *             handshake on the next one
 *   -R        as -r, but a TLS 1.3 ticket is offered again and again until a newer one comes
 *   -p PATH   the request's path (default /old/url/x)
 *   -n NAME   the server name sent by SNI (default localhost)
 *   -2        TLS 1.2 only (default: TLS 1.3, or 1.2 if the server has no 1.3)
 *   -P        plain HTTP: no TLS at all (the same modes, for the plain benchmarks)
 *   -H N      hold: open N connections (at most -c handshakes at a time), make one keep-alive
 *             request on each, print "held=..." once all are open, then keep them open and
 *             idle until standard input closes or -d seconds pass
 *
 * Without -H, each connection is: TCP connect to 127.0.0.1:PORT, TLS handshake (X25519 the
 * only group offered, ALPN http/1.1), one GET with "Connection: close", its response read
 * until the server closes. The moment one ends the next starts in its place. When the time
 * is up no new one starts, those in flight finish (up to 5 s more), and one line of
 * key=value pairs says how many completed, how many of them resumed a session, how many
 * failed and how. A connection taking longer than 5 s is abandoned as a timeout. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_TIMEOUT 5.0 /* seconds for one connection, handshake to close */
#define DRAIN_TIMEOUT 5.0
#define RESP_MAX 16384

enum state { IDLE, CONNECTING, HANDSHAKE, WRITING, READING, HELD };

struct slot {
    int fd;
    enum state st;
    SSL *ssl;
    double started;
    size_t req_off;
    size_t resp_len;
    long body_need; /* bytes of body still expected, -1 while the header is incomplete */
    int head_done;
    int status;
    unsigned events; /* what epoll is asked for now */
    char resp[RESP_MAX];
};

static struct {
    unsigned long long done, resumed, err_connect, err_handshake, err_io, err_timeout, bad_status,
        closed_while_held;
} count;

static SSL_CTX *ctx;
static SSL_SESSION *latest; /* the newest session the server gave (with -r) */
static int resume;          /* 1: each TLS 1.3 ticket once, 2: a ticket again and again */
static int hold_mode;
static int plain; /* -P */
static int port;
static int ep;
static char request[1024];
static size_t request_len;
static const char *sni = "localhost";
static char first_info[256];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (!resume)
        return 0;
    if (latest)
        SSL_SESSION_free(latest);
    latest = sess;
    return 1; /* we keep the reference */
}

static void set_events(struct slot *s, unsigned events)
{
    if (s->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(ep, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &ev);
    s->events = events;
}

static void fail(struct slot *s, unsigned long long *counter);

/* After a TLS call (or, with -P, a send or recv) that did not complete (r): wait for what
 * it wants, or count a failure. */
static void wait_or_fail(struct slot *s, int r, unsigned long long *counter)
{
    if (plain) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            set_events(s, s->st == WRITING ? EPOLLOUT : EPOLLIN);
        else
            fail(s, counter);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        set_events(s, EPOLLIN);
    else if (e == SSL_ERROR_WANT_WRITE)
        set_events(s, EPOLLOUT);
    else
        fail(s, counter);
}

static void finish(struct slot *s)
{
    if (s->ssl) {
        /* Marked as shut down, so that OpenSSL does not count the session as bad. */
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd); /* also removes it from epoll */
    s->fd = -1;
    s->events = 0;
    s->st = IDLE;
}

static void fail(struct slot *s, unsigned long long *counter)
{
    (*counter)++;
    ERR_clear_error();
    finish(s);
}

static int start(struct slot *s)
{
    memset(s, 0, offsetof(struct slot, resp));
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        s->st = IDLE;
        count.err_connect++;
        return -1;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->started = now();
    s->body_need = -1;
    if (plain)
        goto connect;
    s->ssl = SSL_new(ctx);
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_tlsext_host_name(s->ssl, sni);
    if (resume == 1 && latest) {
        /* OpenSSL's client marks a TLS 1.3 session not resumable once a handshake used it */
        SSL_set_session(s->ssl, latest);
    } else if (resume == 2 && latest) {
        SSL_SESSION *copy = SSL_SESSION_dup(latest); /* the copy is the one marked */
        SSL_set_session(s->ssl, copy ? copy : latest);
        SSL_SESSION_free(copy);
    }
connect:
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        s->st = HANDSHAKE;
        return 0;
    }
    if (errno != EINPROGRESS) {
        fail(s, &count.err_connect);
        return -1;
    }
    s->st = CONNECTING;
    set_events(s, EPOLLOUT);
    return 0;
}

/* Takes in what has been read: header (status, Content-Length) and how much body is left. */
static void parse(struct slot *s)
{
    if (!s->head_done) {
        char *end = memmem(s->resp, s->resp_len, "\r\n\r\n", 4);
        if (!end)
            return;
        s->head_done = 1;
        size_t head = (size_t)(end - s->resp) + 4;
        if (s->resp_len > 12 && memcmp(s->resp, "HTTP/1.", 7) == 0)
            s->status = atoi(s->resp + 9);
        long length = -1;
        for (char *p = s->resp; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
            p += *p == '\n';
            if (strncasecmp(p, "content-length:", 15) == 0)
                length = strtol(p + 15, NULL, 10);
        }
        s->body_need = length < 0 ? -1 : length - (long)(s->resp_len - head);
        s->resp_len = 0; /* the body is not kept */
        return;
    }
    if (s->body_need >= 0)
        s->body_need -= (long)s->resp_len;
    s->resp_len = 0;
}

static int response_complete(const struct slot *s)
{
    return s->head_done && s->body_need <= 0;
}

static void ended(struct slot *s)
{
    if (s->status < 300 || s->status > 399) {
        fail(s, &count.bad_status);
        return;
    }
    count.done++;
    if (s->ssl && SSL_session_reused(s->ssl))
        count.resumed++;
    finish(s);
}

/* Advances s as far as it goes without blocking. */
static void step(struct slot *s)
{
    int r;
    switch (s->st) {
    case CONNECTING: {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail(s, &count.err_connect);
            return;
        }
        s->st = HANDSHAKE;
    }
        /* fall through */
    case HANDSHAKE:
        if (plain) {
            s->st = WRITING;
            goto writing;
        }
        r = SSL_connect(s->ssl);
        if (r != 1) {
            wait_or_fail(s, r, &count.err_handshake);
            return;
        }
        if (!first_info[0]) {
            const unsigned char *alpn = NULL;
            unsigned alpn_len = 0;
            SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
            int group = SSL_get_negotiated_group(s->ssl);
            snprintf(first_info, sizeof(first_info), "%s,%s,%s,alpn:%.*s", SSL_get_version(s->ssl),
                     SSL_get_cipher_name(s->ssl), group ? OBJ_nid2sn(group) : "none", (int)alpn_len,
                     alpn ? (const char *)alpn : "");
        }
        s->st = WRITING;
        /* fall through */
    case WRITING:
    writing:
        r = plain ? (int)send(s->fd, request + s->req_off, request_len - s->req_off, MSG_NOSIGNAL)
                  : SSL_write(s->ssl, request + s->req_off, (int)(request_len - s->req_off));
        if (r <= 0) {
            wait_or_fail(s, r, &count.err_io);
            return;
        }
        s->req_off += (size_t)r;
        if (s->req_off < request_len) {
            set_events(s, EPOLLOUT);
            return;
        }
        s->st = READING;
        /* fall through */
    case READING:
    case HELD:
        for (;;) {
            r = plain ? (int)recv(s->fd, s->resp + s->resp_len, RESP_MAX - s->resp_len, 0)
                      : SSL_read(s->ssl, s->resp + s->resp_len, (int)(RESP_MAX - s->resp_len));
            if (r > 0) {
                if (s->st == HELD)
                    continue; /* nothing is expected; dropped */
                s->resp_len += (size_t)r;
                parse(s);
                if (!s->head_done && s->resp_len == RESP_MAX) {
                    fail(s, &count.err_io);
                    return;
                }
                if (hold_mode && response_complete(s)) {
                    if (s->status < 300 || s->status > 399) {
                        fail(s, &count.bad_status);
                        return;
                    }
                    count.done++;
                    s->st = HELD;
                }
                continue;
            }
            int e = plain ? (r < 0 && (errno == EAGAIN || errno == EINTR) ? SSL_ERROR_WANT_READ
                                                                          : SSL_ERROR_SYSCALL)
                          : SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                set_events(s, EPOLLIN);
                return;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                set_events(s, EPOLLOUT);
                return;
            }
            /* The server closed (cleanly or not) or reset the connection. */
            if (s->st == HELD)
                fail(s, &count.closed_while_held);
            else if (s->head_done && (s->body_need <= 0 || s->body_need == -1) && !hold_mode)
                ended(s);
            else
                fail(s, &count.err_io);
            return;
        }
    case IDLE:
        return;
    }
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-c N] [-d SECS] [-r|-R] [-p PATH] [-n NAME] [-2] [-P] [-H N] PORT\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int conns = 64, tls12 = 0;
    long hold = 0;
    double seconds = 8;
    const char *path = "/old/url/x";
    int opt;
    while ((opt = getopt(argc, argv, "c:d:rRp:n:2PH:")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'r':
            resume = 1;
            break;
        case 'R':
            resume = 2;
            break;
        case 'p':
            path = optarg;
            break;
        case 'n':
            sni = optarg;
            break;
        case '2':
            tls12 = 1;
            break;
        case 'P':
            plain = 1;
            break;
        case 'H':
            hold = atol(optarg);
            break;
        default:
            usage(argv[0]);
        }
    }
    if (optind != argc - 1 || conns < 1 || seconds <= 0 || hold < 0)
        usage(argv[0]);
    port = atoi(argv[optind]);
    hold_mode = hold > 0;
    signal(SIGPIPE, SIG_IGN);

    /* Enough descriptors for every connection held (root may raise the hard limit too). */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)(hold > conns ? hold : conns) + 64;
    if (rl.rlim_cur < want) {
        struct rlimit more = {want, rl.rlim_max > want ? rl.rlim_max : want};
        if (setrlimit(RLIMIT_NOFILE, &more) != 0) {
            more.rlim_max = rl.rlim_max;
            more.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &more);
        }
    }

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1 ||
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);

    request_len =
        (size_t)snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", path,
                         sni, port, hold_mode ? "" : "Connection: close\r\n");
    if (request_len >= sizeof(request))
        usage(argv[0]);

    ep = epoll_create1(0);
    size_t nslots = hold_mode ? (size_t)hold : (size_t)conns;
    struct slot *slots = calloc(nslots, sizeof(*slots));
    if (!slots) {
        perror("calloc");
        return 1;
    }
    for (size_t i = 0; i < nslots; i++)
        slots[i].fd = -1;
    struct epoll_event evs[512];

    /* With -r, one connection first to get a ticket; it is not counted. */
    if (resume && !hold_mode) {
        double give_up = now() + CONN_TIMEOUT;
        for (int tries = 0; !latest && tries < 3 && now() < give_up; tries++) {
            if (start(&slots[0]) == 0)
                step(&slots[0]);
            while (slots[0].st != IDLE && now() < give_up) {
                int n = epoll_wait(ep, evs, 512, 100);
                for (int i = 0; i < n; i++)
                    step(evs[i].data.ptr);
            }
            if (slots[0].st != IDLE)
                finish(&slots[0]);
        }
        memset(&count, 0, sizeof(count));
        if (!latest)
            fprintf(stderr, "tlsload: the server gave no session ticket\n");
    }

    double t0 = now(), stop_at = t0 + seconds, end_at = 0;
    size_t opened = 0, active = 0;
    int starting = 1;
    for (;;) {
        double t = now();
        if (starting && !hold_mode && t >= stop_at)
            starting = 0;
        /* Count the slots in flight, abandon the late ones, start new ones. */
        active = 0;
        size_t in_handshake = 0;
        for (size_t i = 0; i < nslots; i++) {
            struct slot *s = &slots[i];
            if (s->st != IDLE && s->st != HELD && t - s->started > CONN_TIMEOUT)
                fail(s, &count.err_timeout);
            if (s->st != IDLE && s->st != HELD)
                in_handshake++;
            if (s->st != IDLE)
                active++;
        }
        if (hold_mode) {
            for (size_t i = 0; i < nslots && in_handshake < (size_t)conns && opened < nslots; i++) {
                if (slots[i].st != IDLE)
                    continue;
                if (opened < nslots) {
                    opened++;
                    if (start(&slots[i]) == 0) {
                        in_handshake++;
                        step(&slots[i]);
                    }
                }
            }
            if (opened == nslots && in_handshake == 0)
                break;
            if (t - t0 > seconds + 60) /* never wait forever */
                break;
        } else if (starting) {
            for (size_t i = 0; i < nslots; i++)
                if (slots[i].st == IDLE && start(&slots[i]) == 0)
                    step(&slots[i]);
        } else {
            if (!end_at)
                end_at = t + DRAIN_TIMEOUT;
            if (active == 0 || t >= end_at)
                break;
        }
        int n = epoll_wait(ep, evs, 512, 50);
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr);
    }
    double elapsed = now() - t0;

    if (hold_mode) {
        size_t held = 0;
        for (size_t i = 0; i < nslots; i++)
            held += slots[i].st == HELD;
        printf("held=%zu errors=%llu connect_errors=%llu handshake_errors=%llu io_errors=%llu "
               "timeouts=%llu bad_status=%llu seconds=%.3f tls=%s\n",
               held,
               count.err_connect + count.err_handshake + count.err_io + count.err_timeout +
                   count.bad_status,
               count.err_connect, count.err_handshake, count.err_io, count.err_timeout,
               count.bad_status, elapsed, first_info[0] ? first_info : "none");
        fflush(stdout);
        /* Idle until standard input closes (or the time is up), answering only closes. */
        double until = now() + seconds;
        struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in); /* fails if stdin is not a pipe: then the time */
        int done = 0;
        while (!done && now() < until) {
            int n = epoll_wait(ep, evs, 512, 200);
            for (int i = 0; i < n; i++) {
                if (evs[i].data.ptr == NULL) {
                    char b[256];
                    if (read(0, b, sizeof(b)) <= 0)
                        done = 1;
                    continue;
                }
                step(evs[i].data.ptr);
            }
        }
        size_t still = 0;
        for (size_t i = 0; i < nslots; i++)
            still += slots[i].st == HELD;
        printf("still_held=%zu closed_by_server=%llu\n", still, count.closed_while_held);
        fflush(stdout);
        return 0;
    }

    for (size_t i = 0; i < nslots; i++)
        if (slots[i].st != IDLE)
            fail(&slots[i], &count.err_timeout);
    printf("connections=%llu resumed=%llu errors=%llu connect_errors=%llu "
           "handshake_errors=%llu io_errors=%llu timeouts=%llu bad_status=%llu seconds=%.3f "
           "rate=%.1f tls=%s\n",
           count.done, count.resumed,
           count.err_connect + count.err_handshake + count.err_io + count.err_timeout +
               count.bad_status,
           count.err_connect, count.err_handshake, count.err_io, count.err_timeout,
           count.bad_status, elapsed, elapsed > 0 ? (double)count.done / elapsed : 0.0,
           first_info[0] ? first_info : "none");
    return 0;
}
