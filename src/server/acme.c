/* acme: automatic certificates (docs/acme.md). A thread of its own gets a certificate from
 * the ACME CA for every host the rules name (one order a name), keeps it in the storage
 * directory (NAME.pem the chain, NAME.key its key, mode 600; written whole or not at all)
 * and has the server load it, with no restart; HTTP-01 challenges are answered on the plain
 * listeners (acme_http01, from the redirect handler, before any rule). Until a name has its
 * own certificate, its handshakes get the storage's self-signed placeholder (or a given
 * --cert). A failed order is tried again later, the delay doubling (with jitter) from 30 s
 * to 6 h; the server keeps serving with what it has. */
#include "acme/acme.h"
#include "server/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLACEHOLDER "_placeholder.pem"
#define PLACEHOLDER_NAME "placeholder.detour.invalid"
#define RETRY_FIRST_S 30
#define RETRY_MAX_S (6 * 3600)
#define TOKENS_MAX 64 /* challenges open at once (one order at a time: a few) */

struct token {
    char *token, *key_authorization;
};

/* A name's state, the ACME thread's own. */
struct name_state {
    char *name;
    time_t next_try; /* after a failure */
    unsigned failures;
};

struct acme_mgr {
    struct dt_server *srv;
    pthread_t thread;
    bool running;
    atomic_bool stopping; /* an order in progress ends */
    pthread_mutex_t lock; /* what follows */
    pthread_cond_t wake;
    bool stop;
    char **names; /* the hosts the rules name, as acme_rules last saw them */
    size_t nnames;
    bool changed;
    struct token tokens[TOKENS_MAX];
    size_t ntokens;
};

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(dt_xmalloc(n), s, n);
}

/* ---- storage ------------------------------------------------------------------------------ */

/* Writes n bytes to path, whole or not at all (a temporary file, fsync, rename, the
 * directory fsync'd), with mode. */
static bool write_whole(const char *dir, const char *path, const void *p, size_t n, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return false;
    bool ok = fchmod(fd, mode) == 0;
    for (size_t done = 0; ok && done < n;) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        done += ok ? (size_t)w : 0;
    }
    ok = ok && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        unlink(tmp);
        return false;
    }
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
    return true;
}

bool acme_prepare_storage(const struct dt_server_config *c)
{
    const char *dir = c->acme_storage;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        dt_log(DT_LOG_ERROR, "acme: cannot make %s: %s", dir, strerror(errno));
        return false;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        dt_log(DT_LOG_ERROR, "acme: %s is not a directory", dir);
        return false;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0) {
        dt_log(DT_LOG_ERROR, "acme: cannot make %s mode 700: %s", dir, strerror(errno));
        return false;
    }
    char pem[4096], key[4096];
    snprintf(pem, sizeof(pem), "%s/" PLACEHOLDER, dir);
    snprintf(key, sizeof(key), "%s/_placeholder.key", dir);
    if (access(pem, R_OK) == 0 && access(key, R_OK) == 0)
        return true;
    struct dt_acme_cert cert;
    dt_buf_init(&cert.chain);
    dt_buf_init(&cert.key);
    bool ok = dt_acme_self_signed(PLACEHOLDER_NAME, 3650, &cert) &&
              write_whole(dir, key, cert.key.ptr, cert.key.len, 0600) &&
              write_whole(dir, pem, cert.chain.ptr, cert.chain.len, 0644);
    if (!ok)
        dt_log(DT_LOG_ERROR, "acme: cannot write the placeholder certificate in %s", dir);
    dt_buf_dispose(&cert.chain);
    dt_buf_dispose(&cert.key);
    return ok;
}

/* True when path holds a certificate valid at now for more than a third of its lifetime
 * to come (it is renewed at two thirds). */
static bool fresh(const char *path, time_t now)
{
    time_t nb, na;
    if (!dt_acme_cert_times(path, &nb, &na))
        return false;
    return na > now && (na - now) * 3 > (na - nb);
}

/* ---- challenges ------------------------------------------------------------------------- */

static void publish(void *ctx, const char *token, const char *ka)
{
    struct acme_mgr *m = ctx;
    pthread_mutex_lock(&m->lock);
    if (m->ntokens < TOKENS_MAX) {
        m->tokens[m->ntokens].token = xstrdup(token);
        m->tokens[m->ntokens].key_authorization = xstrdup(ka);
        m->ntokens++;
    }
    pthread_mutex_unlock(&m->lock);
}

static void unpublish(void *ctx, const char *token)
{
    struct acme_mgr *m = ctx;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->ntokens; i++) {
        if (strcmp(m->tokens[i].token, token) != 0)
            continue;
        free(m->tokens[i].token);
        free(m->tokens[i].key_authorization);
        m->tokens[i] = m->tokens[--m->ntokens];
        break;
    }
    pthread_mutex_unlock(&m->lock);
}

bool acme_http01(struct dt_server *s, struct dt_str token, struct dt_buf *out)
{
    struct acme_mgr *m = s->acme;
    bool found = false;
    if (!m)
        return false;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->ntokens && !found; i++) {
        if (strlen(m->tokens[i].token) == token.len &&
            memcmp(m->tokens[i].token, token.ptr, token.len) == 0) {
            dt_buf_append(out, m->tokens[i].key_authorization,
                          strlen(m->tokens[i].key_authorization));
            found = true;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}

/* ---- the names -------------------------------------------------------------------------- */

struct collect {
    char **v;
    size_t n, cap;
    size_t wildcards;
};

/* A host a certificate can be ordered for: a DNS name of letters, digits, '-' and '.',
 * with a dot, not an IP address. */
static bool orderable(struct dt_str h)
{
    bool dot = false, alpha = false;
    if (h.len == 0 || h.len > 253 || h.ptr[0] == '.' || h.ptr[h.len - 1] == '.')
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.ptr[i];
        if (c == '.')
            dot = true;
        else if ((c >= 'a' && c <= 'z') || c == '-')
            alpha = true;
        else if (!(c >= '0' && c <= '9'))
            return false;
    }
    return dot && alpha;
}

static void collect_host(void *ctx, struct dt_str host, bool wildcard)
{
    struct collect *c = ctx;
    if (wildcard) {
        c->wildcards++;
        return;
    }
    if (!orderable(host))
        return;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->v[i]) == host.len && memcmp(c->v[i], host.ptr, host.len) == 0)
            return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = dt_xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    char *s = dt_xmalloc(host.len + 1);
    memcpy(s, host.ptr, host.len);
    s[host.len] = '\0';
    c->v[c->n++] = s;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void acme_rules(struct dt_server *s, const struct dt_ruleset *rs)
{
    struct acme_mgr *m = s->acme;
    if (!m || !rs)
        return;
    struct collect c = {0};
    dt_table_each_host(rs->files, collect_host, &c);
    dt_table_each_host(rs->store, collect_host, &c);
    dt_table_each_host(rs->overlay, collect_host, &c);
    dt_table_each_host(rs->recent, collect_host, &c);
    pthread_mutex_lock(&m->lock);
    bool same = c.n == m->nnames;
    for (size_t i = 0; same && i < c.n; i++)
        same = strcmp(c.v[i], m->names[i]) == 0;
    if (!same) {
        free_names(m->names, m->nnames);
        m->names = c.v;
        m->nnames = c.n;
        m->changed = true;
        pthread_cond_signal(&m->wake);
    }
    pthread_mutex_unlock(&m->lock);
    if (same)
        free_names(c.v, c.n);
    if (!same && c.wildcards)
        dt_log(DT_LOG_INFO, "acme: %zu wildcard hosts skipped (they need DNS-01)", c.wildcards);
}

/* ---- the thread ------------------------------------------------------------------------- */

static struct name_state *state_of(struct name_state **v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, name) == 0)
            return &(*v)[i];
    *v = dt_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (struct name_state){.name = xstrdup(name)};
    return &(*v)[(*n)++];
}

/* Orders name's certificate and stores it: true when stored. */
static bool order(struct acme_mgr *m, struct dt_acme *client, const char *name)
{
    const char *dir = m->srv->cfg->acme_storage;
    struct dt_acme_cert cert;
    dt_buf_init(&cert.chain);
    dt_buf_init(&cert.key);
    struct dt_buf err;
    dt_buf_init(&err);
    uint64_t t0 = dt_now_ms();
    char pem[4096], key[4096];
    snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    bool ok = dt_acme_order(client, &name, 1, &cert, &err);
    /* the key first: a chain is never there without its key */
    if (ok && !(write_whole(dir, key, cert.key.ptr, cert.key.len, 0600) &&
                write_whole(dir, pem, cert.chain.ptr, cert.chain.len, 0644))) {
        dt_buf_appendf(&err, "cannot write %s: %s", pem, strerror(errno));
        ok = false;
    }
    if (ok)
        dt_log(DT_LOG_INFO, "acme: a certificate for %s, issued in %llu ms", name,
               (unsigned long long)(dt_now_ms() - t0));
    else
        dt_log(DT_LOG_ERROR, "acme: no certificate for %s: %.*s", name, (int)err.len, err.ptr);
    dt_buf_dispose(&cert.chain);
    dt_buf_dispose(&cert.key);
    dt_buf_dispose(&err);
    return ok;
}

static bool cancelled(void *ctx)
{
    struct acme_mgr *m = ctx;
    return atomic_load(&m->stopping);
}

static void *acme_main(void *arg)
{
    struct acme_mgr *m = arg;
    const struct dt_server_config *c = m->srv->cfg;
    char account[4096];
    snprintf(account, sizeof(account), "%s/account.key", c->acme_storage);
    struct dt_acme_config ac = {.directory = c->acme_directory,
                                .ca_file = c->acme_ca,
                                .email = c->acme_email,
                                .account_key = account,
                                .publish = publish,
                                .unpublish = unpublish,
                                .cancelled = cancelled,
                                .ctx = m};
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_acme *client = dt_acme_new(&ac, &err);
    if (!client)
        dt_log(DT_LOG_ERROR, "acme: %.*s", (int)err.len, err.ptr);
    dt_buf_dispose(&err);
    struct name_state *states = NULL;
    size_t nstates = 0;
    unsigned seed = (unsigned)dt_now_ms();
    pthread_mutex_lock(&m->lock);
    while (client && !m->stop) {
        char **names = dt_xcalloc(m->nnames + 1, sizeof(*names));
        size_t n = m->nnames;
        for (size_t i = 0; i < n; i++)
            names[i] = xstrdup(m->names[i]);
        m->changed = false;
        pthread_mutex_unlock(&m->lock);

        time_t now = dt_wall_now();
        time_t next = now + 3600; /* at least hourly: renewals come due */
        bool issued = false;
        for (size_t i = 0; i < n; i++) {
            char pem[4096];
            snprintf(pem, sizeof(pem), "%s/%s.pem", c->acme_storage, names[i]);
            if (fresh(pem, now))
                continue;
            struct name_state *st = state_of(&states, &nstates, names[i]);
            if (st->next_try > now) {
                next = st->next_try < next ? st->next_try : next;
                continue;
            }
            pthread_mutex_lock(&m->lock);
            bool stop = m->stop;
            pthread_mutex_unlock(&m->lock);
            if (stop)
                break;
            if (order(m, client, names[i])) {
                st->failures = 0;
                st->next_try = 0;
                issued = true;
            } else {
                /* 30 s, doubling to 6 h, and up to a quarter more at random */
                time_t d = RETRY_FIRST_S;
                for (unsigned k = 0; k < st->failures && d < RETRY_MAX_S; k++)
                    d *= 2;
                d = d > RETRY_MAX_S ? RETRY_MAX_S : d;
                d += (time_t)(rand_r(&seed) % (unsigned)(d / 4 + 1));
                st->failures++;
                st->next_try = dt_wall_now() + d;
                next = st->next_try < next ? st->next_try : next;
            }
            now = dt_wall_now();
        }
        free_names(names, n);
        if (issued)
            dt_server_reload_certs(m->srv);

        pthread_mutex_lock(&m->lock);
        if (m->stop || m->changed)
            continue;
        time_t wait_s = next > dt_wall_now() ? next - dt_wall_now() : 1;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_s;
        while (!m->stop && !m->changed &&
               pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < nstates; i++)
        free(states[i].name);
    free(states);
    dt_acme_free(client);
    return NULL;
}

bool acme_start(struct dt_server *s)
{
    struct acme_mgr *m = dt_xcalloc(1, sizeof(*m));
    m->srv = s;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    s->acme = m;
    if (pthread_create(&m->thread, NULL, acme_main, m) != 0) {
        dt_log(DT_LOG_ERROR, "acme: cannot start its thread");
        return false;
    }
    m->running = true;
    return true;
}

void acme_stop(struct dt_server *s)
{
    struct acme_mgr *m = s->acme;
    if (!m)
        return;
    atomic_store(&m->stopping, true);
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->running)
        pthread_join(m->thread, NULL);
    s->acme = NULL;
    free_names(m->names, m->nnames);
    for (size_t i = 0; i < m->ntokens; i++) {
        free(m->tokens[i].token);
        free(m->tokens[i].key_authorization);
    }
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
