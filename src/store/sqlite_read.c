/* sqlite_read: the SQLite backend's reads: a rule, every rule of a version, a page of
 * rules with filters, the versions and the history. */
#include "store/sqlite.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- reading ----------------------------------------------------------------------------- */

/* Calls fn with the row of cached statement id (bound to text or to n); DT_ENOENT if none. */
static int get_one(struct sq_store *s, int id, const char *text, int64_t n, dt_store_rule_fn fn,
                   void *ctx)
{
    int rc = dt_sql_settled(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = dt_sql_stmt(s, id, NULL);
    if (!st)
        return DT_EIO;
    /* Called again from its own callback: the rule the outer call shows lives in st. */
    if (sqlite3_stmt_busy(st))
        return dt_sql_fail(s, NULL, DT_EINVAL, "%s called from its own callback",
                           id == ST_GET ? "dt_store_get" : "dt_store_find");
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, n);
    rc = dt_sql_step(s, st, NULL);
    if (rc == 1) {
        struct dt_store_rule r;
        dt_sql_read_rule(st, 0, &r);
        s->walking++;
        rc = fn(ctx, &r);
        s->walking--;
    } else if (rc == 0) {
        rc = DT_ENOENT;
    }
    sqlite3_reset(st);
    return rc;
}

int dt_sqlite_get(struct dt_store *store, int64_t id, dt_store_rule_fn fn, void *ctx)
{
    struct sq_store *s = sq(store);
    return get_one(s, ST_GET, NULL, id, fn, ctx);
}

int dt_sqlite_find(struct dt_store *store, const char *source, dt_store_rule_fn fn, void *ctx)
{
    struct sq_store *s = sq(store);
    if (!source)
        return DT_ENOENT;
    return get_one(s, ST_FIND, source, 0, fn, ctx);
}

int dt_sqlite_each(struct dt_store *store, int64_t version, dt_store_rule_fn fn, void *ctx)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_each", NULL);
    if (rc || (rc = dt_sql_settled(s)) != 0)
        return rc;
    bool started;
    if ((rc = dt_sql_read_begin(s, &started)) != 0)
        return rc;
    int64_t one = 0;
    if (version < 0 ||
        (version > 0 && (rc = dt_sql_query_int(s, ST_VERSION_EXISTS, version, &one, NULL)) == 0)) {
        rc = dt_sql_fail(s, NULL, DT_ENOENT, "no version %lld", (long long)version);
        goto done;
    }
    if (rc < 0)
        goto done;
    sqlite3_stmt *st = dt_sql_stmt(s, version == 0 ? ST_CURRENT : ST_AT, NULL);
    if (!st) {
        rc = DT_EIO;
        goto done;
    }
    if (version > 0)
        sqlite3_bind_int64(st, 1, version);
    rc = dt_sql_each_row(s, st, fn, ctx);
done:
    dt_sql_read_end(s, started);
    return rc;
}

/* The cached statement of dt_store_list for a set of filters: a page (total false) or the
 * count of all matches. Each set of filters has its own SQL so that the planner sees which
 * apply (the host filter has an index). */
sqlite3_stmt *dt_sql_list_stmt(struct sq_store *s, unsigned filters, bool total)
{
    sqlite3_stmt **slot = total ? &s->total[filters] : &s->page[filters];
    if (*slot)
        return *slot;
    struct dt_buf sql;
    dt_buf_init(&sql);
    dt_buf_appendf(&sql, "SELECT %s FROM rules WHERE v_to IS NULL", total ? "count(*)" : COLS);
    if (filters & F_TEXT)
        dt_buf_appendf(&sql, " AND (source LIKE :text ESCAPE '\\' OR target LIKE :text ESCAPE"
                             " '\\' OR note LIKE :text ESCAPE '\\')");
    if (filters & F_HOST)
        dt_buf_appendf(&sql, " AND host = :host");
    if (filters & F_STATUS)
        dt_buf_appendf(&sql, " AND status = :status");
    if (filters & F_OLDER)
        dt_buf_appendf(&sql, " AND status = 307 AND since > 0 AND since < :older");
    if (!total)
        dt_buf_appendf(&sql, " AND rid > :after ORDER BY rid LIMIT :limit");
    dt_buf_terminate(&sql);
    *slot = dt_sql_prepare(s, sql.ptr, NULL);
    dt_buf_dispose(&sql);
    return *slot;
}

static void bind_named_int(sqlite3_stmt *st, const char *name, int64_t v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0)
        sqlite3_bind_int64(st, i, v);
}

static void bind_named_text(sqlite3_stmt *st, const char *name, const struct dt_buf *b)
{
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0)
        sqlite3_bind_text(st, i, b->ptr, (int)b->len, SQLITE_STATIC);
}

int dt_sqlite_list(struct dt_store *store, const struct dt_store_query *q, dt_store_rule_fn fn,
                   void *ctx, int64_t *total)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_list", NULL);
    if (rc || (rc = dt_sql_settled(s)) != 0)
        return rc;
    static const struct dt_store_query all = {0};
    if (!q)
        q = &all;
    unsigned filters = 0;
    if (q->text && q->text[0]) {
        filters |= F_TEXT;
        if (strlen(q->text) > DT_STORE_TEXT_MAX)
            return dt_sql_fail(s, NULL, DT_ELIMIT, "a search text is longer than %d bytes",
                               DT_STORE_TEXT_MAX);
        /* LIKE: '%' and '_' in the text are literal; ASCII case is ignored. */
        s->pattern.len = 0;
        dt_buf_append(&s->pattern, "%", 1);
        for (const char *p = q->text; *p; p++) {
            if (*p == '%' || *p == '_' || *p == '\\')
                dt_buf_append(&s->pattern, "\\", 1);
            dt_buf_append(&s->pattern, p, 1);
        }
        dt_buf_append(&s->pattern, "%", 1);
    }
    if (q->host && q->host[0]) {
        filters |= F_HOST;
        if (strlen(q->host) > DT_STORE_TEXT_MAX)
            return dt_sql_fail(s, NULL, DT_ELIMIT, "a host is longer than %d bytes",
                               DT_STORE_TEXT_MAX);
        s->host.len = 0;
        dt_buf_append(&s->host, q->host, strlen(q->host));
        dt_ascii_lower(s->host.ptr, s->host.len);
    }
    if (q->status)
        filters |= F_STATUS;
    if (q->older_than)
        filters |= F_OLDER;

    bool started;
    if ((rc = dt_sql_read_begin(s, &started)) != 0)
        return rc;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        bool count = pass == 1;
        if (count && !total)
            break;
        sqlite3_stmt *st = dt_sql_list_stmt(s, filters, count);
        if (!st) {
            rc = DT_EIO;
            break;
        }
        bind_named_text(st, ":text", &s->pattern);
        bind_named_text(st, ":host", &s->host);
        bind_named_int(st, ":status", q->status);
        bind_named_int(st, ":older", q->older_than);
        bind_named_int(st, ":after", q->after_id);
        bind_named_int(st, ":limit",
                       q->limit == 0 || q->limit > INT64_MAX ? -1 : (int64_t)q->limit);
        if (!count) {
            rc = dt_sql_each_row(s, st, fn, ctx);
        } else {
            rc = dt_sql_step(s, st, NULL);
            if (rc == 1) {
                *total = sqlite3_column_int64(st, 0);
                rc = 0;
            }
            sqlite3_reset(st);
        }
    }
    dt_sql_read_end(s, started);
    return rc;
}

int dt_sqlite_versions(struct dt_store *store, int64_t before, size_t limit, dt_store_version_fn fn,
                       void *ctx)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_versions", NULL);
    if (rc)
        return rc;
    sqlite3_stmt *st = dt_sql_stmt(s, ST_VERSIONS, NULL);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
    while ((rc = dt_sql_step(s, st, NULL)) == 1) {
        struct dt_store_version v = {
            .version = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .actor = dt_sql_column_text(st, 2),
            .comment = dt_sql_column_text(st, 3),
            .added = sqlite3_column_int64(st, 4),
            .changed = sqlite3_column_int64(st, 5),
            .removed = sqlite3_column_int64(st, 6),
        };
        s->walking++;
        rc = fn(ctx, &v);
        s->walking--;
        if (rc)
            break;
    }
    sqlite3_reset(st);
    return rc;
}

/* The history of one rule, from ST_RULE_HISTORY. */
static int rule_history(struct sq_store *s, int64_t id, int64_t before, size_t limit,
                        dt_store_change_fn fn, void *ctx)
{
    sqlite3_stmt *st = dt_sql_stmt(s, ST_RULE_HISTORY, NULL);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_int64(st, 3, limit == SIZE_MAX || limit > INT64_MAX ? -1 : (int64_t)limit);
    int rc;
    while ((rc = dt_sql_step(s, st, NULL)) == 1) {
        struct dt_store_rule old_rule, new_rule;
        struct dt_store_change ch = {
            .version = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .actor = dt_sql_column_text(st, 2),
        };
        ch.old_rule = dt_sql_read_rule(st, 3, &old_rule) ? &old_rule : NULL;
        ch.new_rule = dt_sql_read_rule(st, 3 + C_N, &new_rule) ? &new_rule : NULL;
        ch.kind = !ch.old_rule ? "added" : !ch.new_rule ? "removed" : "changed";
        s->walking++;
        rc = fn(ctx, &ch);
        s->walking--;
        if (rc)
            break;
    }
    sqlite3_reset(st);
    return rc;
}

int dt_sqlite_history(struct dt_store *store, int64_t id, int64_t before, size_t limit,
                      dt_store_change_fn fn, void *ctx)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_history", NULL);
    if (rc || (rc = dt_sql_settled(s)) != 0)
        return rc;
    if (id < 0)
        return dt_sql_fail(s, NULL, DT_EINVAL, "dt_store_history: rule id %lld", (long long)id);
    if (before <= 0)
        before = INT64_MAX;
    size_t left = limit ? limit : SIZE_MAX;
    bool started;
    if ((rc = dt_sql_read_begin(s, &started)) != 0)
        return rc;
    if (id > 0) {
        rc = rule_history(s, id, before, left, fn, ctx);
        goto done;
    }
    /* Version by version, newest first, each in order of rule id; both lists come from
     * indexes, so a page of the newest changes costs only what it returns. */
    sqlite3_stmt *vs = dt_sql_stmt(s, ST_VERSIONS, NULL);
    if (!vs) {
        rc = DT_EIO;
        goto done;
    }
    sqlite3_bind_int64(vs, 1, before);
    sqlite3_bind_int64(vs, 2, -1);
    while (left > 0 && (rc = dt_sql_step(s, vs, NULL)) == 1) {
        rc = dt_sql_walk_version(s, sqlite3_column_int64(vs, 0), sqlite3_column_int64(vs, 1),
                                 dt_sql_column_text(vs, 2), &left, fn, ctx);
        if (rc)
            break;
    }
    sqlite3_reset(vs);
done:
    dt_sql_read_end(s, started);
    return rc;
}
