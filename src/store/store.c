/* store: the store interface (store.h): opening picks a backend, every call dispatches to
 * it. The SQLite backend (sqlite.c, bulk.c) is the embedded default. */
#include "store/store.h"
#include "store/sqlite.h"

#include <string.h>

struct dt_store *dt_store_open(const char *path, dt_store_host_fn host_of, struct dt_buf *err)
{
    if (path && !strncmp(path, "postgresql://", 13)) {
        if (err) {
            dt_buf_appendf(err,
                           "%s: this detour has no PostgreSQL store yet (a SQLite file "
                           "path is needed)",
                           path);
            dt_buf_terminate(err);
        }
        return NULL;
    }
    struct dt_store *s = dt_sqlite_open(path, err);
    if (s)
        s->host_of = host_of;
    return s;
}

int dt_store_backup(const char *path, const char *dest, int64_t *version, struct dt_buf *err)
{
    if (path && !strncmp(path, "postgresql://", 13)) {
        /* (the URL is not repeated: it may hold a password) */
        if (err) {
            dt_buf_appendf(err, "a PostgreSQL store is backed up with PostgreSQL's own tools "
                                "(pg_dump); this copies a SQLite file");
            dt_buf_terminate(err);
        }
        return DT_EINVAL;
    }
    return dt_sqlite_backup(path, dest, version, err);
}

const char *dt_store_backend_name(const struct dt_store *s)
{
    return s->backend->name;
}

void dt_store_close(struct dt_store *s)
{
    if (s)
        s->backend->close(s);
}

const char *dt_store_error(const struct dt_store *s)
{
    return s->backend->error(s);
}

int64_t dt_store_version(struct dt_store *s)
{
    return s->backend->version(s);
}

int64_t dt_store_count(struct dt_store *s)
{
    return s->backend->count(s);
}

int dt_store_wait(struct dt_store *s, int64_t after, int timeout_ms, int64_t *version)
{
    return s->backend->wait(s, after, timeout_ms, version);
}

int dt_store_begin(struct dt_store *s, int64_t now, const char *actor, const char *comment,
                   struct dt_buf *err)
{
    return s->backend->begin(s, now, actor, comment, err);
}

int dt_store_commit(struct dt_store *s, int64_t *version, struct dt_buf *err)
{
    return s->backend->commit(s, version, err);
}

void dt_store_abort(struct dt_store *s)
{
    s->backend->abort(s);
}

int dt_store_add(struct dt_store *s, const struct dt_store_rule *r, int64_t *id, struct dt_buf *err)
{
    return s->backend->add(s, r, id, err);
}

int dt_store_replace(struct dt_store *s, int64_t id, const struct dt_store_rule *r,
                     struct dt_buf *err)
{
    return s->backend->replace(s, id, r, err);
}

int dt_store_put(struct dt_store *s, const struct dt_store_rule *r, int64_t *id, bool *again,
                 struct dt_buf *err)
{
    return s->backend->put(s, r, id, again, err);
}

int dt_store_remove(struct dt_store *s, int64_t id, struct dt_buf *err)
{
    return s->backend->remove(s, id, err);
}

int dt_store_rollback(struct dt_store *s, int64_t version, struct dt_buf *err)
{
    return s->backend->rollback(s, version, err);
}

int dt_store_pending(struct dt_store *s, dt_store_change_fn fn, void *ctx)
{
    return s->backend->pending(s, fn, ctx);
}

int dt_store_bulk(struct dt_store *s, const struct dt_store_rule *rules, size_t n, bool replace,
                  struct dt_store_bulk *out, struct dt_buf *err)
{
    return s->backend->bulk(s, rules, n, replace, out, err);
}

int dt_store_settle(struct dt_store *s, struct dt_buf *err)
{
    return s->backend->settle(s, err);
}

bool dt_store_unsettled(const struct dt_store *s)
{
    return s->backend->unsettled(s);
}

int dt_store_get(struct dt_store *s, int64_t id, dt_store_rule_fn fn, void *ctx)
{
    return s->backend->get(s, id, fn, ctx);
}

int dt_store_find(struct dt_store *s, const char *source, dt_store_rule_fn fn, void *ctx)
{
    return s->backend->find(s, source, fn, ctx);
}

int dt_store_each(struct dt_store *s, int64_t version, dt_store_rule_fn fn, void *ctx)
{
    return s->backend->each(s, version, fn, ctx);
}

int dt_store_list(struct dt_store *s, const struct dt_store_query *q, dt_store_rule_fn fn,
                  void *ctx, int64_t *total)
{
    return s->backend->list(s, q, fn, ctx, total);
}

int dt_store_versions(struct dt_store *s, int64_t before, size_t limit, dt_store_version_fn fn,
                      void *ctx)
{
    return s->backend->versions(s, before, limit, fn, ctx);
}

int dt_store_history(struct dt_store *s, int64_t id, int64_t before, size_t limit,
                     dt_store_change_fn fn, void *ctx)
{
    return s->backend->history(s, id, before, limit, fn, ctx);
}
