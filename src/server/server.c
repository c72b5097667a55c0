/* server: the control thread. It loads the rules, opens the listeners, starts the workers,
 * then waits for signals: SIGHUP rebuilds the table and publishes it with one atomic swap
 * (the old one is freed once every worker has passed a quiescent point, S5); SIGTERM and
 * SIGINT stop accepting and let the workers finish what is in flight. */
#include "server/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define LINGER_MS 5000 /* a lingering close waits this long for the client's EOF */

void dt_server_config_init(struct dt_server_config *c)
{
    memset(c, 0, sizeof(*c));
    c->workers = 0; /* one per core */
    c->limits = (struct dt_http_limits)DT_HTTP_LIMITS_DEFAULT;
    c->header_timeout_ms = 10 * 1000;
    c->idle_timeout_ms = 60 * 1000;
    c->shutdown_timeout_ms = 4 * 1000;
    c->backlog = 4096;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void describe_files(const struct dt_server_config *c, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->nrules && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", c->rules[i].path);
    if (!c->nrules)
        snprintf(out, len, "no rule files");
}

struct dt_table *dt_server_load_rules(const struct dt_server_config *c)
{
    struct dt_table *t = dt_table_new();
    struct dt_errors errs;
    dt_errors_init(&errs);
    int failed = 0;
    for (size_t i = 0; i < c->nrules; i++)
        if (dt_table_load_file_as(t, c->rules[i].path, c->rules[i].format, 0, &errs) != 0)
            failed = 1;
    if (failed) {
        /* One log line per bad line, each naming file, line and column. */
        const char *p = errs.text.ptr;
        while (p && *p) {
            const char *nl = strchr(p, '\n');
            dt_log(DT_LOG_ERROR, "%.*s", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
            p = nl ? nl + 1 : NULL;
        }
        dt_errors_dispose(&errs);
        dt_table_free(t);
        return NULL;
    }
    dt_errors_dispose(&errs);
    dt_table_finish(t);
    return t;
}

/* Waits until every worker has passed a quiescent point since the caller published a new
 * table: no worker can then hold the old one. */
static void wait_quiescent(struct dt_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        uint64_t seen = atomic_load(&s->workers[i].qs);
        if (seen & 1)
            continue;
        while (atomic_load(&s->workers[i].qs) == seen) {
            struct timespec ms = {0, 1000 * 1000};
            nanosleep(&ms, NULL);
        }
    }
}

static unsigned cpu_count(void);

const uint32_t dt_latency_bounds_us[DT_LATENCY_BUCKETS] = {1,  2,   5,   10,   25,
                                                           50, 100, 250, 1000, 10000};

void dt_server_get_stats(struct dt_server *s, struct dt_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct dt_server_stats *w = &s->workers[i].stats;
        for (int k = 0; k < DT_ST_COUNT; k++)
            out->status[k] += __atomic_load_n(&w->status[k], __ATOMIC_RELAXED);
        for (int k = 0; k < DT_SRC_COUNT; k++)
            out->source[k] += __atomic_load_n(&w->source[k], __ATOMIC_RELAXED);
        for (int k = 0; k <= DT_LATENCY_BUCKETS; k++)
            out->latency[k] += __atomic_load_n(&w->latency[k], __ATOMIC_RELAXED);
        out->latency_sum_ns += __atomic_load_n(&w->latency_sum_ns, __ATOMIC_RELAXED);
        out->connections += __atomic_load_n(&w->connections, __ATOMIC_RELAXED);
        out->refused_max += __atomic_load_n(&w->refused_max, __ATOMIC_RELAXED);
        out->refused_per_ip += __atomic_load_n(&w->refused_per_ip, __ATOMIC_RELAXED);
        out->refused_fds += __atomic_load_n(&w->refused_fds, __ATOMIC_RELAXED);
        out->refused_proxy += __atomic_load_n(&w->refused_proxy, __ATOMIC_RELAXED);
        out->requests_h1 += __atomic_load_n(&w->requests_h1, __ATOMIC_RELAXED);
        out->requests_h2 += __atomic_load_n(&w->requests_h2, __ATOMIC_RELAXED);
        out->connections_h2 += __atomic_load_n(&w->connections_h2, __ATOMIC_RELAXED);
        out->requests_tls += __atomic_load_n(&w->requests_tls, __ATOMIC_RELAXED);
        out->handshakes_full += __atomic_load_n(&w->handshakes_full, __ATOMIC_RELAXED);
        out->handshakes_resumed += __atomic_load_n(&w->handshakes_resumed, __ATOMIC_RELAXED);
        out->handshakes_library += __atomic_load_n(&w->handshakes_library, __ATOMIC_RELAXED);
        for (int k = 0; k < DT_TLS_FAIL_COUNT; k++)
            out->handshakes_failed[k] +=
                __atomic_load_n(&w->handshakes_failed[k], __ATOMIC_RELAXED);
    }
}

/* ---- certificates ------------------------------------------------------------------------ */

/* A session ticket key encrypts this long, then decrypts twice as long. */
#define TICKET_PERIOD (12 * 3600)

static bool has_tls_listener(const struct dt_server_config *c)
{
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen[i].tls)
            return true;
    for (size_t i = 0; i < c->nadmin; i++)
        if (c->admin[i].tls)
            return true;
    return false;
}

/* Reads the certificates of c; logs why not and returns NULL when they do not load. */
/* A name whose certificate has expired, or expires within this, is logged at each load. */
#define CERT_WARN_DAYS 14

static void warn_expiry(void *ctx, const char *name, time_t not_after)
{
    time_t now = *(const time_t *)ctx;
    if (not_after <= now)
        dt_log(DT_LOG_ERROR, "certificates: the certificate for %s expired %lld days ago", name,
               (long long)((now - not_after) / 86400));
    else if (not_after - now < CERT_WARN_DAYS * 86400)
        dt_log(DT_LOG_WARN, "certificates: the certificate for %s expires in %lld days", name,
               (long long)((not_after - now) / 86400));
}

/* Reads the certificates of c; logs why not and returns NULL when they do not load, and
 * which names have expired or expire soon as of now when they do. */
static struct dt_tls_set *load_certs(const struct dt_server_config *c, time_t now)
{
    struct dt_buf err;
    dt_buf_init(&err);
    const char *dirs[] = {c->cert_dir, c->acme_storage}; /* the given ones first */
    struct dt_tls_set *set = dt_tls_load(c->certs, c->ncerts, dirs, 2, true, &err);
    if (!set)
        dt_log(DT_LOG_ERROR, "certificates: %.*s", (int)err.len, err.ptr);
    else
        dt_tls_set_each_name(set, warn_expiry, &now);
    dt_buf_dispose(&err);
    return set;
}

/* SIGHUP: the certificates again; a set that does not load keeps the one in use. */
static void reload_certs(struct dt_server *s)
{
    const struct dt_server_config *c = s->cfg;
    if (!c->ncerts && !c->cert_dir && !c->acme_storage)
        return;
    struct dt_tls_set *set = load_certs(c, dt_wall_now());
    if (!set) {
        dt_log(DT_LOG_ERROR, "reload: keeping the certificates in use");
        return;
    }
    pthread_mutex_lock(&s->tls_lock);
    struct dt_tls_set *old = atomic_exchange(&s->tls, set);
    pthread_mutex_unlock(&s->tls_lock);
    wait_quiescent(s); /* no worker is between reading the pointer and taking a reference */
    dt_tls_set_unref(old);
    dt_log(DT_LOG_INFO, "reloaded %zu certificates", dt_tls_set_count(set));
}

void dt_server_reload_certs(struct dt_server *s)
{
    reload_certs(s);
}

void dt_server_each_cert(struct dt_server *s,
                         void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx)
{
    pthread_mutex_lock(&s->tls_lock);
    struct dt_tls_set *set = atomic_load(&s->tls);
    if (set)
        dt_tls_set_each_name(set, fn, ctx);
    pthread_mutex_unlock(&s->tls_lock);
}

/* The certificates and the HSTS field (written into hsts_line) of a starting server.
 * False, after logging why, when they do not load. */
static bool start_tls(struct dt_server *s, char hsts_line[DT_HTTP_EXTRA_MAX])
{
    const struct dt_server_config *c = s->cfg;
    if (c->acme_storage && !acme_prepare_storage(c))
        return false;
    if (c->ncerts || c->cert_dir || c->acme_storage) {
        struct dt_tls_set *certs = load_certs(c, dt_wall_now());
        if (!certs)
            return false;
        atomic_store(&s->tls, certs);
        dt_tls_rotate_tickets(dt_wall_now(), TICKET_PERIOD);
    } else if (has_tls_listener(c)) {
        dt_log(DT_LOG_ERROR, "a TLS listener needs a certificate: --cert or --cert-dir");
        return false;
    }
    if (c->hsts) {
        int n =
            snprintf(hsts_line, DT_HTTP_EXTRA_MAX, "Strict-Transport-Security: %s\r\n", c->hsts);
        s->hsts = dt_str_make(hsts_line, n > 0 && n < DT_HTTP_EXTRA_MAX ? (size_t)n : 0);
    }
    return true;
}

/* The port of the first TLS listener, as a Location to https writes it. */
static void set_https_port(struct dt_server *s, const struct dt_listen_addr *addrs)
{
    const struct dt_server_config *c = s->cfg;
    for (size_t i = 0; i < c->nlisten; i++) {
        if (!addrs[i].tls)
            continue;
        const struct sockaddr_storage *ss = &addrs[i].ss;
        unsigned port =
            ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                            : ((const struct sockaddr_in *)ss)->sin_port);
        if (port != 443)
            snprintf(s->https_port, sizeof(s->https_port), ":%u", port);
        return;
    }
}

unsigned dt_server_worker_count(const struct dt_server_config *c)
{
    return c->workers ? c->workers : cpu_count();
}

const struct dt_ruleset *dt_server_publish(struct dt_server *s, const struct dt_ruleset *rs)
{
    const struct dt_ruleset *old = atomic_exchange(&s->rules, rs);
    acme_rules(s, rs);
    wait_quiescent(s);
    return old;
}

/* SIGHUP: the reload hook, or without one the rule files again as the server's own
 * ruleset. */
static void reload(struct dt_server *s)
{
    const struct dt_server_config *c = s->cfg;
    reload_certs(s);
    if (c->hooks.reload) {
        c->hooks.reload(c->hooks.ctx, s);
        return;
    }
    char files[512];
    describe_files(c, files, sizeof(files));
    uint64_t t0 = mono_ms();
    struct dt_table *t = dt_server_load_rules(c);
    const struct dt_ruleset *cur = atomic_load(&s->rules);
    if (!t) {
        dt_log(DT_LOG_ERROR, "reload failed: keeping the %zu rules in use",
               dt_table_size(cur->files));
        return;
    }
    size_t before = dt_table_size(cur->files);
    struct dt_ruleset *rs = dt_xcalloc(1, sizeof(*rs));
    rs->files = t;
    const struct dt_ruleset *old = dt_server_publish(s, rs);
    dt_table_free((struct dt_table *)old->files);
    free((void *)old);
    dt_log(DT_LOG_INFO, "reloaded %zu rules (was %zu) from %s in %llu ms", dt_table_size(t), before,
           files, (unsigned long long)(mono_ms() - t0));
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static unsigned cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static int add_to_epoll(int epfd, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Opens a worker's listeners, one per address. The first worker's sockets learn the ports
 * the kernel chose for port 0, so that every other worker binds the same. Returns 0, or -1
 * after logging. */
static int open_worker_listeners(struct worker *w, const struct handler *h,
                                 const struct dt_listen_addr *given, struct dt_listen_addr *addrs,
                                 size_t n, bool first, char *names, size_t names_len, size_t *used)
{
    const struct dt_server_config *c = w->srv->cfg;
    w->listeners = dt_xcalloc(n ? n : 1, sizeof(*w->listeners));
    w->nlisteners = n;
    for (size_t i = 0; i < n; i++) {
        struct listener *l = &w->listeners[i];
        l->tag = TAG_LISTENER;
        l->handler = h;
        l->tls = addrs[i].tls;
        l->proxy = addrs[i].proxy;
        /* a socket systemd passed: the first worker takes it, the others a duplicate
         * (one queue, woken one worker at a time: EPOLLEXCLUSIVE) */
        if (first)
            addrs[i].inherited = dt_listen_take(&addrs[i]) + 1;
        if (addrs[i].inherited > 0) {
            l->shared = true;
            l->fd =
                first ? addrs[i].inherited - 1 : fcntl(addrs[i].inherited - 1, F_DUPFD_CLOEXEC, 3);
            if (l->fd < 0)
                l->fd = -errno;
        } else {
            l->fd = dt_listen_open(&addrs[i], c->backlog);
        }
        if (l->fd < 0) {
            dt_log(DT_LOG_ERROR, "cannot listen on %s: %s", given[i].text, strerror(-l->fd));
            return -1;
        }
        if (!first)
            continue;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&addrs[i].ss)->sin_port =
                    ((struct sockaddr_in *)&ss)->sin_port;
            else if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&addrs[i].ss)->sin6_port =
                    ((struct sockaddr_in6 *)&ss)->sin6_port;
        }
        char name[120];
        dt_listen_name(l->fd, name, sizeof(name));
        *used += (size_t)snprintf(names + *used, names_len - *used, "%s%s%s", *used ? " " : "",
                                  l->tls ? "tls:" : "", name);
        if (*used >= names_len)
            *used = names_len - 1;
    }
    return 0;
}

static int open_listeners(struct dt_server *s, struct dt_listen_addr *addrs, char *names,
                          size_t names_len)
{
    const struct dt_server_config *c = s->cfg;
    size_t used = 0;
    names[0] = '\0';
    for (unsigned wi = 0; wi < s->nworkers; wi++)
        if (open_worker_listeners(&s->workers[wi], &dt_handler_redirect, c->listen, addrs,
                                  c->nlisten, wi == 0, names, names_len, &used) != 0)
            return -1;
    return 0;
}

static int start_worker(struct worker *w)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->wakefd < 0) {
        dt_log(DT_LOG_ERROR, "cannot create worker %u: %s", w->id, strerror(errno));
        return -1;
    }
    /* one descriptor in reserve: out of them, it is closed to accept a connection and
     * close it at once (worker.c), so the queue is shed rather than left waiting */
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->wake_tag = TAG_WAKE;
    add_to_epoll(w->epfd, w->wakefd, EPOLLIN, &w->wake_tag);
    for (size_t k = 0; k < w->nlisteners; k++)
        add_to_epoll(w->epfd, w->listeners[k].fd,
                     EPOLLIN | (w->listeners[k].shared ? EPOLLEXCLUSIVE : 0u), &w->listeners[k]);
    int rc = pthread_create(&w->thread, NULL, dt_worker_main, w);
    if (rc != 0) {
        dt_log(DT_LOG_ERROR, "cannot start worker %u: %s", w->id, strerror(rc));
        return -1;
    }
    return 0;
}

/* Starts the worker threads; returns how many started (all of them on success). */
static unsigned start_workers(struct dt_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        if (start_worker(&s->workers[i]) != 0)
            return i;
    return s->nworkers;
}

static void wake(struct worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wakefd, &one, sizeof(one));
    (void)r;
}

static void stop_workers(struct dt_server *s, unsigned started)
{
    atomic_store(&s->stopping, true);
    for (unsigned i = 0; i < started; i++)
        wake(&s->workers[i]);
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
}

static void free_worker(struct worker *w)
{
    for (size_t k = 0; k < w->nlisteners; k++)
        if (w->listeners[k].fd > 0)
            close(w->listeners[k].fd);
    free(w->listeners);
    if (w->epfd > 0)
        close(w->epfd);
    if (w->wakefd > 0)
        close(w->wakefd);
    if (w->spare_fd > 0)
        close(w->spare_fd);
    dt_buf_dispose(&w->out);
    dt_buf_dispose(&w->h2out);
    free(w->rbuf);
    dt_buf_dispose(&w->alog);
    while (w->free_conns) {
        struct conn *c = w->free_conns;
        w->free_conns = c->tnext;
        free(c->in);
        dt_buf_dispose(&c->pending);
        if (c->h && c->h->release)
            c->h->release(c, true);
        free(c);
    }
}

static void free_workers(struct dt_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        free_worker(&s->workers[i]);
    free(s->workers);
    if (s->admin) {
        free_worker(s->admin);
        free(s->admin);
    }
}

static void init_worker(struct dt_server *s, struct worker *w, unsigned id)
{
    const struct dt_server_config *c = s->cfg;
    w->id = id;
    w->srv = s;
    w->epfd = w->wakefd = w->spare_fd = -1;
    w->limits = &c->limits;
    dt_buf_init(&w->out);
    dt_buf_init(&w->h2out);
    dt_buf_reserve(&w->out, 128 * 1024);
    w->rbuf = dt_xmalloc(DT_SERVER_RBUF);
    w->timeout_ms[TL_HEADER] = c->header_timeout_ms;
    w->timeout_ms[TL_IDLE] = c->idle_timeout_ms;
    w->timeout_ms[TL_LINGER] = LINGER_MS;
}

/* The rules of every table of rs. */
static size_t ruleset_size(const struct dt_ruleset *rs)
{
    return dt_table_size(rs->files) + dt_table_size(rs->store) + dt_table_size(rs->overlay) +
           dt_table_size(rs->recent);
}

/* The admin thread's loop and its listeners (their names into names). Returns 0 or -1. */
static int open_admin(struct dt_server *s, struct dt_listen_addr *addrs, char *names,
                      size_t names_len)
{
    const struct dt_server_config *c = s->cfg;
    s->admin = dt_xcalloc(1, sizeof(*s->admin));
    init_worker(s, s->admin, s->nworkers);
    s->admin->admin = true;
    s->admin->limits = &c->admin_limits;
    memcpy(addrs + c->nlisten, c->admin, c->nadmin * sizeof(*addrs));
    size_t used = 0;
    return open_worker_listeners(s->admin, &dt_handler_admin, c->admin, addrs + c->nlisten,
                                 c->nadmin, true, names, names_len, &used);
}

/* The control thread's wait: SIGHUP reloads, SIGUSR1 reopens the access log, SIGTERM and
 * SIGINT return (set: the signals blocked for every thread). */
static void wait_for_signals(struct dt_server *s, const sigset_t *set)
{
    for (;;) {
        siginfo_t si;
        struct timespec minute = {60, 0};
        int sig = sigtimedwait(set, &si, &minute);
        if (sig < 0) {
            if (errno == EAGAIN && atomic_load(&s->tls))
                dt_tls_rotate_tickets(dt_wall_now(), TICKET_PERIOD);
            if (errno == EINTR || errno == EAGAIN)
                continue;
            dt_log(DT_LOG_ERROR, "sigwaitinfo: %s", strerror(errno));
            return;
        }
        if (sig == SIGHUP) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            char state[64];
            snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)t.tv_sec * 1000000ULL +
                         (unsigned long long)t.tv_nsec / 1000);
            dt_server_notify(state);
            reload(s);
            dt_server_notify("READY=1");
            continue;
        }
        if (sig == SIGUSR1) {
            dt_alog_reopen(s->alog); /* logrotate moved the file */
            continue;
        }
        dt_log(DT_LOG_INFO, "%s: stopping; finishing requests in flight",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        dt_server_notify("STOPPING=1");
        return;
    }
}

int dt_server_run(const struct dt_server_config *c)
{
    char files[512];
    describe_files(c, files, sizeof(files));
    uint64_t t0 = mono_ms();
    struct dt_ruleset *own = NULL;
    if (!c->initial) {
        struct dt_table *table = dt_server_load_rules(c);
        if (!table)
            return 2;
        own = dt_xcalloc(1, sizeof(*own));
        own->files = table;
    }
    const struct dt_ruleset *initial = c->initial ? c->initial : own;
    size_t nrules = ruleset_size(initial);
    uint64_t load_ms = mono_ms() - t0 + (c->initial ? c->initial_load_ms : 0);

    /* Signals go to this thread only: block them before any worker starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct dt_server s = {.cfg = c};
    pthread_mutex_init(&s.tls_lock, NULL);
    atomic_init(&s.tls, NULL);
    char hsts_line[DT_HTTP_EXTRA_MAX];
    if (!start_tls(&s, hsts_line)) {
        pthread_mutex_destroy(&s.tls_lock);
        if (own) {
            dt_table_free((struct dt_table *)own->files);
            free(own);
        }
        return 2;
    }
    if (c->access_log && !(s.alog = dt_alog_open(c->access_log))) {
        dt_tls_set_unref(atomic_load(&s.tls));
        pthread_mutex_destroy(&s.tls_lock);
        if (own) {
            dt_table_free((struct dt_table *)own->files);
            free(own);
        }
        return 1;
    }
    atomic_init(&s.rules, initial);
    atomic_init(&s.stopping, false);
    s.nworkers = dt_server_worker_count(c);
    s.workers = dt_xcalloc(s.nworkers, sizeof(*s.workers));
    for (unsigned i = 0; i < s.nworkers; i++)
        init_worker(&s, &s.workers[i], i);
    struct dt_listen_addr *addrs = dt_xcalloc(c->nlisten + c->nadmin + 1, sizeof(*addrs));
    memcpy(addrs, c->listen, c->nlisten * sizeof(*addrs));
    char names[512], admin_names[256] = "";
    int status = 0;
    unsigned started = 0;
    bool admin_started = false;
    char err[256];
    if (dt_listen_inherit(err, sizeof(err)) < 0) {
        dt_log(DT_LOG_ERROR, "%s", err);
        status = 1;
        goto out;
    }
    if (open_listeners(&s, addrs, names, sizeof(names)) != 0) {
        status = 1;
        goto out;
    }
    set_https_port(&s, addrs);
    if (c->nadmin && open_admin(&s, addrs, admin_names, sizeof(admin_names)) != 0) {
        status = 1;
        goto out;
    }
    if (dt_listen_untaken()) {
        status = 1;
        goto out;
    }
    started = start_workers(&s);
    if (started != s.nworkers) {
        status = 1;
        goto stop;
    }
    /* Before the admin thread runs: the hooks it calls may publish rulesets, and the server
     * they publish to must be known by then (else a ruleset the workers answer from was
     * freed as if nobody held it). */
    if (c->hooks.started)
        c->hooks.started(c->hooks.ctx, &s);
    if (c->acme_email) {
        if (!acme_start(&s)) {
            status = 1;
            goto stop;
        }
        acme_rules(&s, atomic_load(&s.rules));
    }
    if (s.admin) {
        if (start_worker(s.admin) != 0) {
            status = 1;
            goto stop;
        }
        admin_started = true;
    }
    dt_log(DT_LOG_INFO,
           "detour " DETOUR_VERSION " started: %zu rules from %s%s loaded in %llu ms; "
           "listening on %s; %u workers%s%s",
           nrules, files, c->initial ? " and the store" : "", (unsigned long long)load_ms, names,
           s.nworkers, s.admin ? "; admin API on " : "", admin_names);
    dt_server_notify("READY=1");

    wait_for_signals(&s, &set);
    if (c->hooks.stopping)
        c->hooks.stopping(c->hooks.ctx);
stop:
    acme_stop(&s);
    stop_workers(&s, started);
    if (admin_started) {
        wake(s.admin);
        pthread_join(s.admin->thread, NULL);
    }
    if (status == 0)
        dt_log(DT_LOG_INFO, "stopped");
out:
    acme_free(&s);
    limits_free(&s);
    free_workers(&s);
    free(addrs);
    dt_alog_close(s.alog);
    dt_tls_set_unref(atomic_load(&s.tls));
    pthread_mutex_destroy(&s.tls_lock);
    if (!c->initial) {
        const struct dt_ruleset *last = atomic_load(&s.rules);
        dt_table_free((struct dt_table *)last->files);
        free((void *)last);
    }
    return status;
}
