/* worker: one thread's event loop: its own epoll, its own listeners (SO_REUSEPORT), its
 * connections, expiring their timers (timer.c). Workers share nothing but the published
 * rule table. */
#include "server/internal.h"

#include <arpa/inet.h>
#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define ACCEPTS_PER_WAKE 64 /* then other connections get their turn */
#define ACCEPT_PAUSE_MS 100 /* out of file descriptors: try accepting again after this */

static void clock_update(struct worker *w)
{
    w->now_ms = dt_now_ms();
    w->now_s = dt_wall_now();
    if (w->now_s != w->date_s) {
        dt_http_date(w->date, w->now_s);
        w->date_s = w->now_s;
    }
}

/* Milliseconds until the next deadline, or -1 for none. */
static int next_timeout(const struct worker *w)
{
    uint64_t next = timer_earliest(w);
    if (w->accept_resume_ms && w->accept_resume_ms < next)
        next = w->accept_resume_ms;
    if (w->stopping && w->stop_deadline_ms < next)
        next = w->stop_deadline_ms;
    if (w->alog.len && w->now_ms + 1000 < next)
        next = w->now_ms + 1000; /* buffered access log lines go out within a second */
    if (w->admin && w->srv->cfg->hooks.tick && w->now_ms + 1000 < next)
        next = w->now_ms + 1000; /* the admin thread ticks about once a second */
    if (next == UINT64_MAX)
        return -1;
    if (next <= w->now_ms)
        return 0;
    uint64_t ms = next - w->now_ms;
    /* the coarse clock may lag a tick: wake a little late rather than spin early */
    return ms > INT32_MAX ? INT32_MAX : (int)ms + 1;
}

static void expire(struct worker *w)
{
    for (int i = TL_HEADER; i < TL_COUNT; i++) {
        struct conn *c;
        while ((c = w->timers[i].head) && c->deadline <= w->now_ms) {
            timer_unlink(c);
            conn_expire(c, i);
        }
    }
}

static void listener_interest(struct worker *w, struct listener *l, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = l};
    if (!l->shared) {
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, l->fd, &ev);
        return;
    }
    /* EPOLLEXCLUSIVE cannot be modified: taken out, and added again */
    if (events) {
        ev.events |= EPOLLEXCLUSIVE;
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &ev);
    } else {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL);
    }
}

void worker_peer_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
    out[0] = '\0';
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
    else
        snprintf(out, len, "unix");
}

void worker_refuse(int fd, bool tls)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Length: 0\r\nRetry-After: 1\r\n"
                               "Connection: close\r\n\r\n";
    if (tls)
        return;
    /* what arrived already is read first: closing on unread bytes would reset the
     * connection, and the answer with it */
    char sink[4096];
    for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), 0) > 0; i++)
        ;
    (void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void worker_refuse_conn(struct conn *c, bool tls, int over)
{
    worker_refuse(c->fd, tls);
    if (over == 1)
        STAT_ADD(c->w->stats.refused_max, 1);
    else
        STAT_ADD(c->w->stats.refused_per_ip, 1);
    if (c->tls) {
        dt_tls_free(c->tls); /* no close_notify: nothing was said */
        c->tls = NULL;
    }
    conn_close(c);
}

/* Out of file descriptors: the spare one is closed to accept the next connection, which is
 * refused and closed, and the spare taken again; so the queue is shed (clients are told
 * at once) while the connections in hand are served. Returns 1 when one was shed, 0 when
 * the queue is empty, -1 when there is no spare (the caller pauses accepting instead). */
static int shed_one(struct worker *w, struct listener *l)
{
    if (w->spare_fd < 0)
        return -1;
    close(w->spare_fd);
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int rc = fd >= 0 ? 1 : errno == EAGAIN ? 0 : -1;
    if (fd >= 0) {
        worker_refuse(fd, l->tls);
        close(fd);
        STAT_ADD(w->stats.refused_fds, 1);
    }
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return rc;
}

static void accept_some(struct worker *w, struct listener *l)
{
    for (int k = 0; k < ACCEPTS_PER_WAKE; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        const struct dt_server_config *cfg = w->srv->cfg;
        bool limited = l->handler == &dt_handler_redirect &&
                       (cfg->max_connections || cfg->max_connections_per_ip);
        bool want_peer =
            w->srv->alog != NULL || (limited && cfg->max_connections_per_ip) || l->proxy;
        int fd = accept4(l->fd, want_peer ? (struct sockaddr *)&ss : NULL, want_peer ? &sl : NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            STAT_ADD(w->stats.connections, 1);
            if (l->proxy && !dt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, &ss)) {
                /* a PROXY listener takes connections from its balancers only: anyone else
                 * could say they are whoever they like */
                STAT_ADD(w->stats.refused_proxy, 1);
                close(fd);
                continue;
            }
            struct dt_tls_set *tls =
                l->tls ? atomic_load_explicit(&w->srv->tls, memory_order_acquire) : NULL;
            struct conn *c = conn_new(w, fd, l->handler, tls);
            /* behind a balancer, the limits count the client's address, once its header
             * says it (conn_proxy_header) */
            int over = limited && !l->proxy ? limits_take(w->srv, c, want_peer ? &ss : NULL) : 0;
            if (over) {
                worker_refuse_conn(c, l->tls, over);
                continue;
            }
            if (tls && !c->tls) {
                conn_close(c); /* out of memory for its TLS state */
                continue;
            }
            if (want_peer)
                worker_peer_name(&ss, c->peer, sizeof(c->peer));
            c->await_proxy = l->proxy;
            conn_start(c);
            continue;
        }
        if (errno == EAGAIN || errno == EINTR)
            return;
        if (errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            int why = errno;
            int shed = why == EMFILE || why == ENFILE ? shed_one(w, l) : -1;
            if (shed > 0)
                continue;
            if (shed == 0)
                return; /* the queue is empty */
            /* Keep serving the connections we have; stop listening for a moment rather
             * than spinning on a queue we cannot take from. */
            dt_log(DT_LOG_ERROR, "accept: %s; pausing new connections for %d ms (%zu open)",
                   strerror(why), ACCEPT_PAUSE_MS, w->nconns);
            listener_interest(w, l, 0);
            l->paused = true;
            w->accept_resume_ms = w->now_ms + ACCEPT_PAUSE_MS;
            return;
        }
        dt_log(DT_LOG_ERROR, "accept: %s", strerror(errno));
        return;
    }
}

static void resume_accepting(struct worker *w)
{
    w->accept_resume_ms = 0;
    if (w->spare_fd < 0)
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].paused && w->listeners[i].fd >= 0) {
            w->listeners[i].paused = false;
            listener_interest(w, &w->listeners[i], EPOLLIN);
        }
    }
}

/* Calls fn on every connection (each is on exactly one timer list, or is lingering on
 * one); fn may close the connection it is given. */
static void each_conn(struct worker *w, void (*fn)(struct conn *))
{
    for (int i = TL_HEADER; i < TL_COUNT; i++) {
        struct conn *c = w->timers[i].head;
        while (c) {
            struct conn *next = c->tnext;
            fn(c);
            c = next;
        }
    }
}

static void begin_stop(struct worker *w)
{
    w->stopping = true;
    w->stop_deadline_ms = w->now_ms + w->srv->cfg->shutdown_timeout_ms;
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].fd >= 0) {
            close(w->listeners[i].fd);
            w->listeners[i].fd = -1;
        }
    }
    each_conn(w, conn_shutdown_idle);
}

static void force_close(struct conn *c)
{
    c->w->out.len = 0;
    conn_close(c);
}

void *dt_worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    clock_update(w);
    for (;;) {
        int timeout = next_timeout(w);
        atomic_fetch_add(&w->qs, 1); /* odd: quiescent, holding no table */
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout);
        atomic_fetch_add(&w->qs, 1); /* even: may load the table */
        clock_update(w);
        if (n < 0 && errno != EINTR) {
            dt_log(DT_LOG_ERROR, "epoll_wait: %s", strerror(errno));
            break;
        }
        bool wake = false;
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            switch (*(uint8_t *)p) {
            case TAG_LISTENER:
                accept_some(w, p);
                break;
            case TAG_WAKE:
                wake = true;
                break;
            case TAG_CONN:
                conn_event(p, events[i].events);
                break;
            }
        }
        /* Stopping closes other connections, so it waits until no event of this batch
         * still points at one. */
        if (wake && !w->stopping) {
            uint64_t v;
            ssize_t r = read(w->wakefd, &v, sizeof(v));
            (void)r;
            if (atomic_load(&w->srv->stopping))
                begin_stop(w);
        }
        if (w->accept_resume_ms && w->now_ms >= w->accept_resume_ms)
            resume_accepting(w);
        expire(w);
        if (w->alog.len && w->now_s != w->alog_flushed_s)
            dt_alog_flush(w); /* lines wait at most about a second */
        if (w->admin && w->now_s != w->tick_s && w->srv->cfg->hooks.tick && !w->stopping) {
            w->tick_s = w->now_s;
            w->srv->cfg->hooks.tick(w->srv->cfg->hooks.ctx, w->now_s);
        }
        if (w->stopping && (w->nconns == 0 || w->now_ms >= w->stop_deadline_ms))
            break;
    }
    each_conn(w, force_close);
    if (w->srv->alog)
        dt_alog_flush(w);
    atomic_fetch_add(&w->qs, 1); /* quiescent for good */
    return NULL;
}
