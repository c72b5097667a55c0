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
#define TOKENS_MAX 64      /* challenges open at once (one order at a time: a few) */
#define ON_DEMAND_MAX 1000 /* names ordered on demand, at most */

struct token {
    char *token, *key_authorization;
};

/* What ACME knows of a name (under the manager's lock). */
struct name_state {
    char *name;
    time_t not_before, not_after; /* of its stored certificate; 0: none */
    char issuer[128];
    time_t last_attempt, next_try; /* next_try: after a failure, not before */
    unsigned failures;             /* in a row */
    bool force;                    /* a renewal asked for */
    time_t ari_at;                 /* RFC 9773: when within the CA's window to renew; 0 none */
    time_t ari_check;              /* when to ask the CA for its window again */
    char last_error[512];
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
    char **on_demand; /* names asked for in ClientHellos that host rules answer */
    size_t non_demand;
    bool on_demand_full_logged;
    bool changed;
    struct token tokens[TOKENS_MAX];
    size_t ntokens;
    struct name_state *states;
    size_t nstates;
    struct dt_tls_set *given; /* --cert and --cert-dir as at start: their names are theirs */
    uint64_t orders_ok, orders_failed;
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

/* ---- challenges ------------------------------------------------------------------------- */

static bool publish(void *ctx, const struct dt_acme_challenge *ch)
{
    struct acme_mgr *m = ctx;
    if (strcmp(ch->type, "tls-alpn-01") == 0) {
        struct dt_acme_cert cert;
        dt_buf_init(&cert.chain);
        dt_buf_init(&cert.key);
        bool ok = dt_acme_tls_alpn_cert(ch->name, ch->key_authorization, &cert);
        dt_buf_terminate(&cert.chain);
        dt_buf_terminate(&cert.key);
        ok = ok && dt_tls_alpn_challenge_set(ch->name, cert.chain.ptr, cert.key.ptr);
        dt_buf_dispose(&cert.chain);
        dt_buf_dispose(&cert.key);
        return ok;
    }
    bool ok = false;
    pthread_mutex_lock(&m->lock);
    if (m->ntokens < TOKENS_MAX) {
        m->tokens[m->ntokens].token = xstrdup(ch->token);
        m->tokens[m->ntokens].key_authorization = xstrdup(ch->key_authorization);
        m->ntokens++;
        ok = true;
    }
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static void unpublish(void *ctx, const struct dt_acme_challenge *ch)
{
    struct acme_mgr *m = ctx;
    const char *token = ch->token;
    if (strcmp(ch->type, "tls-alpn-01") == 0) {
        dt_tls_alpn_challenge_clear(ch->name);
        return;
    }
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
    const struct dt_tls_set *given; /* names it covers are not collected */
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
    if (!orderable(host) || dt_tls_set_covers(c->given, host))
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
    struct collect c = {.given = m->given};
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

/* The state of name, made if new (lock held). */
static struct name_state *state_of(struct acme_mgr *m, const char *name)
{
    for (size_t i = 0; i < m->nstates; i++)
        if (strcmp(m->states[i].name, name) == 0)
            return &m->states[i];
    m->states = dt_xrealloc(m->states, (m->nstates + 1) * sizeof(*m->states));
    m->states[m->nstates] = (struct name_state){.name = xstrdup(name)};
    return &m->states[m->nstates++];
}

/* The stored certificate's validity and issuer into st (lock held). */
static void read_stored(struct acme_mgr *m, struct name_state *st)
{
    char pem[4096];
    snprintf(pem, sizeof(pem), "%s/%s.pem", m->srv->cfg->acme_storage, st->name);
    if (!dt_acme_cert_info(pem, &st->not_before, &st->not_after, st->issuer, sizeof(st->issuer)))
        st->not_before = st->not_after = 0;
}

/* When a stored certificate is due for renewal: two thirds into its lifetime. */
static time_t renew_at(const struct name_state *st)
{
    return st->not_after - (st->not_after - st->not_before) / 3;
}

/* Orders name's certificate and stores it: true when stored, else why in err. */
static bool order(struct acme_mgr *m, struct dt_acme *client, const char *name, struct dt_buf *err)
{
    const char *dir = m->srv->cfg->acme_storage;
    struct dt_acme_cert cert;
    dt_buf_init(&cert.chain);
    dt_buf_init(&cert.key);
    uint64_t t0 = dt_now_ms();
    char pem[4096], key[4096];
    snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    bool ok = dt_acme_order(client, &name, 1, &cert, err);
    /* the key first: a chain is never there without its key */
    if (ok && !(write_whole(dir, key, cert.key.ptr, cert.key.len, 0600) &&
                write_whole(dir, pem, cert.chain.ptr, cert.chain.len, 0644))) {
        dt_buf_appendf(err, "cannot write %s: %s", pem, strerror(errno));
        ok = false;
    }
    if (ok)
        dt_log(DT_LOG_INFO, "acme: a certificate for %s, issued in %llu ms", name,
               (unsigned long long)(dt_now_ms() - t0));
    else
        dt_log(DT_LOG_ERROR, "acme: no certificate for %s: %.*s", name, (int)err->len, err->ptr);
    dt_buf_dispose(&cert.chain);
    dt_buf_dispose(&cert.key);
    return ok;
}

/* Whether c has a TLS (tls) or plain listener. */
static bool has_listener(const struct dt_server_config *c, bool tls)
{
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen[i].tls == tls)
            return true;
    return false;
}

static bool cancelled(void *ctx)
{
    struct acme_mgr *m = ctx;
    return atomic_load(&m->stopping);
}

/* The next name to order at now (lock held): its index, or -1 with *next the earliest time
 * one comes due. */
static const char *managed(const struct acme_mgr *m, size_t i)
{
    return i < m->nnames ? m->names[i] : m->on_demand[i - m->nnames];
}

static long due(struct acme_mgr *m, time_t now, time_t *next)
{
    *next = now + 3600; /* at least hourly */
    for (size_t i = 0; i < m->nnames + m->non_demand; i++) {
        struct name_state *st = state_of(m, managed(m, i));
        if (!st->last_attempt && !st->not_after)
            read_stored(m, st); /* at start: what the storage holds */
        time_t when = st->not_after ? renew_at(st) : now;
        if (st->not_after && st->ari_at && st->ari_at < when)
            when = st->ari_at; /* earlier when the CA says so */
        if (st->next_try > when)
            when = st->next_try;
        if (st->force)
            when = now;
        if (when <= now)
            return (long)i;
        if (when < *next)
            *next = when;
    }
    return -1;
}

/* A name with a certificate whose renewal window is due to be asked for (lock held):
 * its state, or NULL. */
static struct name_state *ari_due(struct acme_mgr *m, time_t now)
{
    for (size_t i = 0; i < m->nnames + m->non_demand; i++) {
        struct name_state *st = state_of(m, managed(m, i));
        if (st->not_after && st->ari_check <= now)
            return st;
    }
    return NULL;
}

/* Asks the CA for name's renewal window (RFC 9773) and picks a moment in it at random
 * (lock not held); what it found goes in *at (0: none) and *check (when to ask again). */
static void ask_window(struct acme_mgr *m, struct dt_acme *client, const char *name, unsigned *seed,
                       time_t *at, time_t *check)
{
    char pem[4096];
    snprintf(pem, sizeof(pem), "%s/%s.pem", m->srv->cfg->acme_storage, name);
    struct dt_buf chain, err;
    dt_buf_init(&chain);
    dt_buf_init(&err);
    FILE *f = fopen(pem, "r");
    char buf[4096];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        dt_buf_append(&chain, buf, n);
    if (f)
        fclose(f);
    dt_buf_terminate(&chain);
    time_t start, end, now = dt_wall_now();
    int rc = chain.len ? dt_acme_renewal_window(client, chain.ptr, &start, &end, &err) : -1;
    *at = 0;
    *check = now + 6 * 3600; /* RFC 9773 4.3: a few times a day */
    if (rc > 0) {
        *at = start + (time_t)((double)rand_r(seed) / RAND_MAX * (double)(end - start));
        if (*at < now)
            *at = now;
    } else if (rc == 0) {
        *check = now + 24 * 3600; /* the CA has none (today) */
    } else {
        dt_log(DT_LOG_WARN, "acme: no renewal window for %s: %.*s", name, (int)err.len, err.ptr);
    }
    dt_buf_dispose(&chain);
    dt_buf_dispose(&err);
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
                                .http01 = has_listener(c, false),
                                .tls_alpn01 = has_listener(c, true),
                                .publish = publish,
                                .unpublish = unpublish,
                                .cancelled = cancelled,
                                .ctx = m};
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_acme *client = dt_acme_new(&ac, &err);
    if (!client)
        dt_log(DT_LOG_ERROR, "acme: %.*s", (int)err.len, err.ptr);
    unsigned seed = (unsigned)dt_now_ms();
    pthread_mutex_lock(&m->lock);
    while (client && !m->stop) {
        m->changed = false;
        time_t now = dt_wall_now(), next;
        struct name_state *ask = ari_due(m, now);
        if (ask) {
            char *name = xstrdup(ask->name);
            ask->ari_check = now + 60; /* not again at once, whatever happens */
            pthread_mutex_unlock(&m->lock);
            time_t at, check;
            ask_window(m, client, name, &seed, &at, &check);
            pthread_mutex_lock(&m->lock);
            ask = state_of(m, name);
            ask->ari_at = at;
            ask->ari_check = check;
            free(name);
            continue;
        }
        long i = due(m, now, &next);
        if (i >= 0) {
            char *name = xstrdup(managed(m, (size_t)i));
            struct name_state *st = state_of(m, name);
            st->force = false;
            st->last_attempt = now;
            pthread_mutex_unlock(&m->lock);
            err.len = 0;
            bool ok = order(m, client, name, &err);
            if (ok)
                dt_server_reload_certs(m->srv);
            pthread_mutex_lock(&m->lock);
            st = state_of(m, name); /* (the array may have moved) */
            if (ok) {
                m->orders_ok++;
                st->failures = 0;
                st->next_try = 0;
                st->ari_at = st->ari_check = 0; /* a new certificate: its own window */
                st->last_error[0] = '\0';
                read_stored(m, st);
            } else if (!m->stop) {
                /* 30 s, doubling to 6 h, and up to a quarter more at random */
                m->orders_failed++;
                time_t d = RETRY_FIRST_S;
                for (unsigned k = 0; k < st->failures && d < RETRY_MAX_S; k++)
                    d *= 2;
                d = d > RETRY_MAX_S ? RETRY_MAX_S : d;
                d += (time_t)(rand_r(&seed) % (unsigned)(d / 4 + 1));
                st->failures++;
                st->next_try = dt_wall_now() + d;
                snprintf(st->last_error, sizeof(st->last_error), "%.*s", (int)err.len, err.ptr);
            }
            free(name);
            continue;
        }
        time_t wait_s = next > now ? next - now : 1;
        struct timespec until; /* on the monotonic clock: a step of the wall clock moves nothing */
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_s;
        while (!m->stop && !m->changed &&
               pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    dt_buf_dispose(&err);
    dt_acme_free(client);
    return NULL;
}

bool dt_server_acme_each(struct dt_server *s,
                         void (*fn)(void *ctx, const struct dt_acme_status *st), void *ctx)
{
    struct acme_mgr *m = s->acme;
    if (!m)
        return false;
    time_t now = dt_wall_now();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nnames + m->non_demand; i++) {
        struct name_state *st = state_of(m, managed(m, i));
        if (!st->last_attempt && !st->not_after)
            read_stored(m, st);
        struct dt_acme_status out = {
            .name = st->name,
            .state = st->not_after > now && !st->failures ? "valid"
                     : st->failures                       ? "failing"
                                                          : "pending",
            .not_before = st->not_before,
            .not_after = st->not_after,
            .issuer = st->issuer,
            .last_error = st->last_error,
            .last_attempt = st->last_attempt,
            .next_try = st->next_try,
            .failures = st->failures,
        };
        fn(ctx, &out);
    }
    pthread_mutex_unlock(&m->lock);
    return true;
}

bool dt_server_acme_renew(struct dt_server *s, const char *name)
{
    struct acme_mgr *m = s->acme;
    bool found = false;
    if (!m)
        return false;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nnames + m->non_demand && !found; i++) {
        if (strcmp(managed(m, i), name) != 0)
            continue;
        struct name_state *st = state_of(m, name);
        st->force = true;
        st->next_try = 0;
        found = true;
        m->changed = true;
        pthread_cond_signal(&m->wake);
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}

bool dt_server_acme_counts(struct dt_server *s, uint64_t *ok, uint64_t *failed)
{
    struct acme_mgr *m = s->acme;
    if (!m)
        return false;
    pthread_mutex_lock(&m->lock);
    *ok = m->orders_ok;
    *failed = m->orders_failed;
    pthread_mutex_unlock(&m->lock);
    return true;
}

/* True when host rules of rs answer host (a worker's, or the main thread's at start). */
static bool rules_answer(const struct dt_ruleset *rs, const char *host)
{
    struct dt_str h = dt_str_make(host, strlen(host));
    return rs && (dt_table_has_host(rs->files, h) || dt_table_has_host(rs->store, h) ||
                  dt_table_has_host(rs->overlay, h) || dt_table_has_host(rs->recent, h));
}

/* Adds name to the on-demand names (lock held), unless there or full. */
static void add_on_demand(struct acme_mgr *m, const char *name)
{
    for (size_t i = 0; i < m->non_demand; i++)
        if (strcmp(m->on_demand[i], name) == 0)
            return;
    for (size_t i = 0; i < m->nnames; i++)
        if (strcmp(m->names[i], name) == 0)
            return;
    if (m->non_demand == ON_DEMAND_MAX) {
        if (!m->on_demand_full_logged)
            dt_log(DT_LOG_WARN, "acme: %d names ordered on demand: no more", ON_DEMAND_MAX);
        m->on_demand_full_logged = true;
        return;
    }
    m->on_demand = dt_xrealloc(m->on_demand, (m->non_demand + 1) * sizeof(*m->on_demand));
    m->on_demand[m->non_demand++] = xstrdup(name);
    m->changed = true;
    pthread_cond_signal(&m->wake);
}

/* A ClientHello named host, which no certificate covers (a worker, in a handshake): an
 * order when host rules answer it, never for a name only a rule for any host would. */
static void unknown_name(void *ctx, const char *host)
{
    struct dt_server *s = ctx;
    struct acme_mgr *m = s->acme;
    if (!m || !orderable(dt_str_make(host, strlen(host))) ||
        dt_tls_set_covers(m->given, dt_str_make(host, strlen(host))) ||
        !rules_answer(atomic_load_explicit(&s->rules, memory_order_acquire), host))
        return;
    pthread_mutex_lock(&m->lock);
    add_on_demand(m, host);
    pthread_mutex_unlock(&m->lock);
}

/* At start, the names ordered on demand before: those of the storage that host rules
 * answer (the main thread, before the admin API can publish). */
static void stored_on_demand(struct acme_mgr *m, const struct dt_ruleset *rs)
{
    DIR *d = opendir(m->srv->cfg->acme_storage);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || n > 257 || strcmp(e->d_name + n - 4, ".pem") != 0 || e->d_name[0] == '_')
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 4), e->d_name);
        if (orderable(dt_str_make(name, strlen(name))) && rules_answer(rs, name))
            add_on_demand(m, name);
    }
    if (d)
        closedir(d);
}

bool acme_start(struct dt_server *s)
{
    struct acme_mgr *m = dt_xcalloc(1, sizeof(*m));
    m->srv = s;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
    const struct dt_server_config *c = s->cfg;
    if (c->ncerts || c->cert_dir) {
        struct dt_buf err;
        dt_buf_init(&err);
        m->given = dt_tls_load(c->certs, c->ncerts, &c->cert_dir, 1, false, &err);
        dt_buf_dispose(&err); /* they loaded a moment ago: the server's own load says why not */
    }
    s->acme = m;
    if (s->cfg->acme_on_demand) {
        acme_rules(s, atomic_load(&s->rules)); /* the names of rules first */
        pthread_mutex_lock(&m->lock);
        stored_on_demand(m, atomic_load(&s->rules));
        pthread_mutex_unlock(&m->lock);
        dt_tls_on_unknown_name(unknown_name, s);
    }
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
    m->running = false;
}

void acme_free(struct dt_server *s)
{
    struct acme_mgr *m = s->acme;
    if (!m)
        return;
    acme_stop(s);
    dt_tls_on_unknown_name(NULL, NULL);
    s->acme = NULL;
    free_names(m->names, m->nnames);
    free_names(m->on_demand, m->non_demand);
    dt_tls_set_unref(m->given);
    for (size_t i = 0; i < m->nstates; i++)
        free(m->states[i].name);
    free(m->states);
    for (size_t i = 0; i < m->ntokens; i++) {
        free(m->tokens[i].token);
        free(m->tokens[i].key_authorization);
    }
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
