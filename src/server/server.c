/* server: the control thread. It loads the rules, opens the listeners, starts the workers,
 * then waits for signals: SIGHUP rebuilds the table and publishes it with one atomic swap
 * (the old one is freed once every worker has passed a quiescent point, S5); SIGTERM and
 * SIGINT stop accepting and let the workers finish what is in flight. */
#include "server/internal.h"

#include <errno.h>
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

static void publish(struct dt_server *s, struct dt_table *t)
{
    struct dt_table *old = atomic_exchange(&s->table, t);
    wait_quiescent(s);
    dt_table_free(old);
}

static void reload(struct dt_server *s)
{
    const struct dt_server_config *c = s->cfg;
    char files[512];
    describe_files(c, files, sizeof(files));
    uint64_t t0 = mono_ms();
    struct dt_table *t = dt_server_load_rules(c);
    struct dt_table *cur = atomic_load(&s->table);
    if (!t) {
        dt_log(DT_LOG_ERROR, "reload failed: keeping the %zu rules in use", dt_table_size(cur));
        return;
    }
    size_t before = dt_table_size(cur);
    publish(s, t);
    dt_log(DT_LOG_INFO, "reloaded %zu rules (was %zu) from %s in %llu ms", dt_table_size(t),
           before, files, (unsigned long long)(mono_ms() - t0));
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

/* Opens every worker's listeners. With port 0 the first socket picks the port and the
 * others (and other workers) bind the same one. Returns 0, or -1 after logging. */
static int open_listeners(struct dt_server *s, struct dt_listen_addr *addrs, char *names,
                          size_t names_len)
{
    const struct dt_server_config *c = s->cfg;
    size_t used = 0;
    names[0] = '\0';
    for (unsigned wi = 0; wi < s->nworkers; wi++) {
        struct worker *w = &s->workers[wi];
        w->listeners = dt_xcalloc(c->nlisten, sizeof(*w->listeners));
        w->nlisteners = c->nlisten;
        for (size_t i = 0; i < c->nlisten; i++) {
            struct listener *l = &w->listeners[i];
            l->tag = TAG_LISTENER;
            l->fd = dt_listen_open(&addrs[i], c->backlog);
            if (l->fd < 0) {
                dt_log(DT_LOG_ERROR, "cannot listen on %s: %s", c->listen[i].text,
                       strerror(-l->fd));
                return -1;
            }
            if (wi == 0) {
                /* Learn the port the kernel chose so every worker shares it. */
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
                char name[96];
                dt_listen_name(l->fd, name, sizeof(name));
                used += (size_t)snprintf(names + used, names_len - used, "%s%s",
                                         used ? " " : "", name);
                if (used >= names_len)
                    used = names_len - 1;
            }
        }
    }
    return 0;
}

/* Starts the worker threads; returns how many started (all of them on success). */
static unsigned start_workers(struct dt_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->epfd < 0 || w->wakefd < 0) {
            dt_log(DT_LOG_ERROR, "cannot create worker %u: %s", i, strerror(errno));
            return i;
        }
        w->wake_tag = TAG_WAKE;
        add_to_epoll(w->epfd, w->wakefd, EPOLLIN, &w->wake_tag);
        for (size_t k = 0; k < w->nlisteners; k++)
            add_to_epoll(w->epfd, w->listeners[k].fd, EPOLLIN, &w->listeners[k]);
        int rc = pthread_create(&w->thread, NULL, dt_worker_main, w);
        if (rc != 0) {
            dt_log(DT_LOG_ERROR, "cannot start worker %u: %s", i, strerror(rc));
            return i;
        }
    }
    return s->nworkers;
}

static void stop_workers(struct dt_server *s, unsigned started)
{
    atomic_store(&s->stopping, true);
    for (unsigned i = 0; i < started; i++) {
        uint64_t one = 1;
        ssize_t r = write(s->workers[i].wakefd, &one, sizeof(one));
        (void)r;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
}

static void free_workers(struct dt_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        for (size_t k = 0; k < w->nlisteners; k++)
            if (w->listeners[k].fd > 0)
                close(w->listeners[k].fd);
        free(w->listeners);
        if (w->epfd > 0)
            close(w->epfd);
        if (w->wakefd > 0)
            close(w->wakefd);
        dt_buf_dispose(&w->out);
        while (w->free_conns) {
            struct conn *c = w->free_conns;
            w->free_conns = c->tnext;
            free(c->in);
            dt_buf_dispose(&c->pending);
            free(c);
        }
    }
    free(s->workers);
}

int dt_server_run(const struct dt_server_config *c)
{
    char files[512];
    describe_files(c, files, sizeof(files));
    uint64_t t0 = mono_ms();
    struct dt_table *table = dt_server_load_rules(c);
    if (!table)
        return 2;
    uint64_t load_ms = mono_ms() - t0;

    /* Signals go to this thread only: block them before any worker starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct dt_server s = {.cfg = c};
    atomic_init(&s.table, table);
    atomic_init(&s.stopping, false);
    s.nworkers = c->workers ? c->workers : cpu_count();
    s.workers = dt_xcalloc(s.nworkers, sizeof(*s.workers));
    for (unsigned i = 0; i < s.nworkers; i++) {
        struct worker *w = &s.workers[i];
        w->id = i;
        w->srv = &s;
        w->epfd = w->wakefd = -1;
        dt_buf_init(&w->out);
        dt_buf_reserve(&w->out, 128 * 1024);
        w->timeout_ms[TL_HEADER] = c->header_timeout_ms;
        w->timeout_ms[TL_IDLE] = c->idle_timeout_ms;
        w->timeout_ms[TL_LINGER] = LINGER_MS;
    }
    struct dt_listen_addr *addrs = dt_xcalloc(c->nlisten, sizeof(*addrs));
    memcpy(addrs, c->listen, c->nlisten * sizeof(*addrs));
    char names[512];
    int status = 0;
    if (open_listeners(&s, addrs, names, sizeof(names)) != 0) {
        status = 1;
        goto out;
    }
    unsigned started = start_workers(&s);
    if (started != s.nworkers) {
        status = 1;
        stop_workers(&s, started);
        goto out;
    }
    dt_log(DT_LOG_INFO,
           "detour " DETOUR_VERSION " started: %zu rules from %s loaded in %llu ms; "
           "listening on %s; %u workers",
           dt_table_size(table), files, (unsigned long long)load_ms, names, s.nworkers);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            dt_log(DT_LOG_ERROR, "sigwaitinfo: %s", strerror(errno));
            break;
        }
        if (sig == SIGHUP) {
            reload(&s);
            continue;
        }
        dt_log(DT_LOG_INFO, "%s: stopping; finishing requests in flight",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    stop_workers(&s, s.nworkers);
    dt_log(DT_LOG_INFO, "stopped");
out:
    free_workers(&s);
    free(addrs);
    dt_table_free(atomic_load(&s.table));
    return status;
}
