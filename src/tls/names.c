/* names: the TLS backends' library-independent parts: certificate names, the names of a set
 * and SNI's look-up in them, --cert-dir's files, the key beside a certificate, and the ring
 * of session ticket keys. */
#include "tls/internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '*' || ch == '_';
}

void tls_cert_names_add(struct tls_cert_names *c, const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return;
    for (size_t i = 0; i < len; i++) /* a host name, or a wildcard: nothing else matches */
        if (!host_char(s[i]))
            return;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->v[i]) == len && !strncasecmp(c->v[i], s, len))
            return;
    c->v = dt_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
    char *copy = dt_xstrndup(s, len);
    dt_ascii_lower(copy, len);
    c->v[c->n++] = copy;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tls_cert_names_key(const struct tls_cert_names *c)
{
    char **sorted = dt_xmalloc((c->n ? c->n : 1) * sizeof(*sorted));
    memcpy(sorted, c->v, c->n * sizeof(*sorted));
    if (c->n > 1)
        qsort(sorted, c->n, sizeof(*sorted), str_cmp);
    struct dt_buf b;
    dt_buf_init(&b);
    for (size_t i = 0; i < c->n; i++)
        dt_buf_appendf(&b, "%s%s", i ? " " : "", sorted[i]);
    free(sorted);
    dt_buf_terminate(&b);
    return b.ptr;
}

void tls_cert_names_dispose(struct tls_cert_names *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

/* ---- the names of a set ------------------------------------------------------------------ */

void tls_names_add(struct tls_names *t, const struct tls_cert_names *c, size_t index,
                   time_t not_after)
{
    t->v = dt_xrealloc(t->v, (t->n + c->n) * sizeof(*t->v));
    for (size_t k = 0; k < c->n; k++)
        t->v[t->n++] = (struct tls_name){
            .name = dt_xstrndup(c->v[k], strlen(c->v[k])), .index = index, .not_after = not_after};
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tls_name *)a)->name, ((const struct tls_name *)b)->name);
}

void tls_names_finish(struct tls_names *t)
{
    if (t->n > 1)
        qsort(t->v, t->n, sizeof(*t->v), name_cmp);
    size_t w = 0;
    for (size_t r = 0; r < t->n; r++) {
        if (w && !strcmp(t->v[w - 1].name, t->v[r].name)) {
            if (t->v[r].index < t->v[w - 1].index)
                t->v[w - 1] = (struct tls_name){t->v[w - 1].name, t->v[r].index, t->v[r].not_after};
            free(t->v[r].name);
            continue;
        }
        t->v[w++] = t->v[r];
    }
    t->n = w;
}

static const struct tls_name *find(const struct tls_names *t, const char *host)
{
    struct tls_name key = {.name = (char *)host};
    return t->n ? bsearch(&key, t->v, t->n, sizeof(*t->v), name_cmp) : NULL;
}

long tls_names_find(const struct tls_names *t, struct dt_str host)
{
    char buf[256];
    if (host.len == 0 || host.len + 2 >= sizeof(buf))
        return -1;
    memcpy(buf, host.ptr, host.len);
    buf[host.len] = '\0';
    dt_ascii_lower(buf, host.len);
    const struct tls_name *n = find(t, buf);
    if (n)
        return (long)n->index;
    const char *dot = memchr(buf, '.', host.len);
    if (!dot || dot == buf)
        return -1;
    char wild[258];
    snprintf(wild, sizeof(wild), "*%s", dot);
    n = find(t, wild);
    return n ? (long)n->index : -1;
}

void tls_names_each(const struct tls_names *t,
                    void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx)
{
    for (size_t i = 0; i < t->n; i++)
        fn(ctx, t->v[i].name, t->v[i].not_after);
}

void tls_names_dispose(struct tls_names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* ---- files -------------------------------------------------------------------------------- */

static long dir_files(const char *dir, char ***files, struct dt_buf *err)
{
    *files = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        dt_buf_appendf(err, "%s: cannot open the directory: %s", dir, strerror(errno));
        return -1;
    }
    size_t n = 0, dl = strlen(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && e->d_name[0] != '.' && !strcmp(e->d_name + len - 4, ".pem")) {
            *files = dt_xrealloc(*files, (n + 1) * sizeof(**files));
            struct dt_buf p;
            dt_buf_init(&p);
            dt_buf_appendf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
            (*files)[n++] = p.ptr;
        }
    }
    closedir(d);
    if (n > 1)
        qsort(*files, n, sizeof(**files), str_cmp); /* a stable order: the first is the default */
    if (n == 0)
        dt_buf_appendf(err, "%s: no *.pem file in the directory", dir);
    return n ? (long)n : -1;
}

bool tls_load_all(const char *const *paths, size_t npaths, const char *const *dirs, size_t ndirs,
                  bool (*load)(void *set, const char *path, struct dt_buf *err), void *set,
                  struct dt_buf *err)
{
    size_t loaded = 0;
    for (size_t i = 0; i < npaths; i++, loaded++)
        if (!load(set, paths[i], err))
            return false;
    for (size_t d = 0; d < ndirs; d++) {
        const char *dir = dirs[d];
        if (!dir)
            continue;
        char **files;
        long n = dir_files(dir, &files, err);
        bool ok = n > 0;
        for (long i = 0; i < n; i++) {
            if (ok && !load(set, files[i], err))
                ok = false;
            free(files[i]);
            loaded++;
        }
        free(files);
        if (!ok)
            return false;
    }
    if (!loaded)
        dt_buf_appendf(err, "no certificate given");
    return loaded > 0;
}

bool tls_key_beside(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path);
    out[0] = '\0';
    if (n <= 4 || n >= cap || strcmp(path + n - 4, ".pem") != 0)
        return false;
    snprintf(out, cap, "%.*s.key", (int)(n - 4), path);
    return true;
}

void tls_no_key(struct dt_buf *err, const char *path, const char *beside)
{
    if (beside[0])
        dt_buf_appendf(err, "%s: no private key in it nor in %s", path, beside);
    else
        dt_buf_appendf(err,
                       "%s: no private key in it (and its name does not end in .pem: no "
                       "NAME.key beside it is looked for)",
                       path);
}

/* ---- session ticket keys ------------------------------------------------------------------ */

static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct tls_ticket_key keys[3]; /* [0] encrypts; all three decrypt */
static unsigned nkeys;
static time_t keys_made;

void tls_tickets_rotate(time_t now, time_t period, void (*fill)(unsigned char *p, size_t n))
{
    pthread_rwlock_wrlock(&keys_lock);
    if (nkeys == 0 || now - keys_made >= period || now < keys_made) {
        memmove(&keys[1], &keys[0], sizeof(keys[0]) * 2);
        fill(keys[0].name, sizeof(keys[0].name));
        fill(keys[0].secret, sizeof(keys[0].secret));
        if (nkeys < 3)
            nkeys++;
        keys_made = now;
    }
    pthread_rwlock_unlock(&keys_lock);
}

bool tls_tickets_any(void)
{
    pthread_rwlock_rdlock(&keys_lock);
    bool any = nkeys > 0;
    pthread_rwlock_unlock(&keys_lock);
    return any;
}

bool tls_tickets_current(struct tls_ticket_key *out)
{
    pthread_rwlock_rdlock(&keys_lock);
    bool any = nkeys > 0;
    if (any)
        *out = keys[0];
    pthread_rwlock_unlock(&keys_lock);
    return any;
}

bool tls_tickets_find(const unsigned char name[16], struct tls_ticket_key *out)
{
    bool found = false;
    pthread_rwlock_rdlock(&keys_lock);
    for (unsigned i = 0; i < nkeys && !found; i++) {
        if (memcmp(name, keys[i].name, 16) == 0) {
            *out = keys[i];
            found = true;
        }
    }
    pthread_rwlock_unlock(&keys_lock);
    return found;
}

static void (*unknown_fn)(void *ctx, const char *host);
static void *unknown_ctx;

void dt_tls_on_unknown_name(void (*fn)(void *ctx, const char *host), void *ctx)
{
    unknown_fn = fn;
    unknown_ctx = ctx;
}

void tls_unknown_name(const char *host)
{
    size_t n = strlen(host);
    if (!unknown_fn || n == 0 || n > 253)
        return;
    char lower[254];
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
    unknown_fn(unknown_ctx, lower);
}
