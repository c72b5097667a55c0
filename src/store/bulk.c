/* bulk: the SQLite backend's bulk writes (a large import decided in memory, committed as one
 * record, its rows written afterwards: dt_store_bulk, dt_store_settle), rollback, and the
 * walk of a version's changes (dt_store_pending). */
#include "store/sqlite.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- bulk writes ------------------------------------------------------------------------ */

#define BULK_CHUNK (4u << 20) /* the size of a bulk record's chunks (rows of bulk_pending) */

/* Writes the record's chunk as a row of bulk_pending, and starts the next. */
static int flush_chunk(struct sq_store *s, struct dt_record *rec, struct dt_buf *err)
{
    struct dt_buf *b = &rec->buf;
    for (int k = 0; k < 4; k++)
        rec->prev[k].len = 0;
    if (!b->len)
        return 0;
    sqlite3_stmt *st = dt_sql_stmt(s, ST_BULK_ADD, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, s->txn_version);
    sqlite3_bind_int64(st, 2, (int64_t)rec->n);
    sqlite3_bind_blob(st, 3, b->ptr, (int)b->len, SQLITE_STATIC);
    int rc = dt_sql_run(s, st, err);
    sqlite3_clear_bindings(st);
    b->len = 0;
    rec->n = 0;
    return rc;
}

/* The rules of the open transaction's view, in memory (r, in order of id; room is left
 * after them for the new rules of a bulk write), found by source with a hash table built on
 * demand: a slot holds k + 1 for the rule r[k] (k < n) or for the bulk write's new source
 * number k - n. */
struct current_set {
    struct dt_store_rule *r;
    size_t n, cap;
    uint64_t *slot; /* open addressing: the hash's top 32 bits, then k + 1; 0 for empty */
    size_t nslots;
    struct dt_arena mem; /* the strings of r */
};

static uint64_t hash_text(const char *t)
{
    return dt_hash_bytes(t, strlen(t));
}

/* The slot of source: where it is, or the empty slot where it would go. */
/* The slot of source: where it is, or the empty slot where it would go (*tag is what the
 * slot's top half holds for source). A slot whose tag differs is passed over without
 * reading its rule. */
static size_t find_slot(const struct current_set *c, const struct dt_store_rule *in,
                        const int64_t *first, const char *source, uint64_t *tag)
{
    uint64_t h = hash_text(source);
    size_t mask = c->nslots - 1, i = (size_t)h & mask;
    *tag = h & 0xffffffff00000000u;
    for (; c->slot[i]; i = (i + 1) & mask) {
        if ((c->slot[i] & 0xffffffff00000000u) != *tag)
            continue;
        size_t k = (size_t)(c->slot[i] & 0xffffffffu) - 1;
        if (!strcmp(k < c->n ? c->r[k].source : in[first[k - c->n]].source, source))
            break;
    }
    return i;
}

/* Keeps a copy of a current rule (the row's strings live until the next step). */
static int read_all(void *ctx, const struct dt_store_rule *r)
{
    struct current_set *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->r = dt_xrealloc(c->r, c->cap * sizeof(*c->r));
    }
    struct dt_store_rule *k = &c->r[c->n++];
    *k = *r;
    size_t ls = strlen(r->source) + 1, lt = strlen(r->target) + 1;
    size_t lo = strlen(r->options) + 1, ln = strlen(r->note) + 1;
    char *p = dt_arena_alloc(&c->mem, ls + lt + lo + ln);
    k->source = memcpy(p, r->source, ls);
    k->target = memcpy(p + ls, r->target, lt);
    k->options = memcpy(p + ls + lt, r->options, lo);
    k->note = memcpy(p + ls + lt + lo, r->note, ln);
    return 0;
}

void dt_store_bulk_dispose(struct dt_store_bulk *b)
{
    if (!b)
        return;
    free(b->rules);
    free(b->from);
    if (b->_mem) {
        dt_arena_dispose(b->_mem);
        free(b->_mem);
    }
    memset(b, 0, sizeof(*b));
}

/* Reads the rules as they are into c (room left for n more). Returns 0 or an error. */
static int read_current_set(struct sq_store *s, struct current_set *c, size_t n, struct dt_buf *err)
{
    int64_t count = 0;
    int rc = dt_sql_query_int(s, ST_COUNT, 0, &count, err);
    if (rc < 0)
        return rc;
    if ((uint64_t)count + n >= UINT32_MAX / 2)
        return dt_sql_fail(s, err, DT_ELIMIT, "dt_store_bulk: too many rules (%zu)", n);
    c->cap = (size_t)count + n + 1;
    c->r = dt_xmalloc(c->cap * sizeof(*c->r));
    sqlite3_stmt *st = dt_sql_stmt(s, ST_CURRENT, err);
    rc = st ? dt_sql_each_row(s, st, read_all, c) : DT_EIO;
    if (rc) {
        if (rc > 0 || !err || !err->len)
            dt_sql_fail(s, err, DT_EIO, "%s: cannot read the rules: %s", s->path,
                        sqlite3_errmsg(s->db));
        return DT_EIO;
    }
    if (c->cap < c->n + n + 1) {
        c->cap = c->n + n + 1;
        c->r = dt_xrealloc(c->r, c->cap * sizeof(*c->r));
    }
    return 0;
}

/* Which rule each of rules puts: last[k] is the last of rules to put rule k (k < ncur:
 * c->r[k]; else the k - ncur-th new source), noted[k] the last of them with a note, -1 for
 * none; first[j] the first of rules to give the j-th new source. An import of the rules as
 * exported (in order of id, each once) is seen without a lookup; any other order looks each
 * source up. Returns the number of new sources. */
static size_t match_sources(struct current_set *c, size_t ncur, const struct dt_store_rule *rules,
                            size_t n, int64_t *last, int64_t *noted, int64_t *first)
{
    size_t nnew = 0;
    for (size_t k = 0; k < ncur + n + 1; k++)
        last[k] = noted[k] = -1;
    size_t same = 0;
    while (same < n && same < ncur && !strcmp(rules[same].source, c->r[same].source))
        same++;
    if (same == n) {
        for (size_t i = 0; i < n; i++) {
            last[i] = (int64_t)i;
            noted[i] = rules[i].note ? (int64_t)i : -1;
        }
        return 0;
    }
    for (c->nslots = 1024; c->nslots < 2 * (ncur + n); c->nslots *= 2)
        ;
    c->slot = dt_xcalloc(c->nslots, sizeof(*c->slot));
    uint64_t tag;
    for (size_t k = 0; k < ncur; k++) {
        size_t at = find_slot(c, rules, first, c->r[k].source, &tag);
        c->slot[at] = tag | (k + 1);
    }
    for (size_t i = 0; i < n; i++) {
        size_t at = find_slot(c, rules, first, rules[i].source, &tag);
        if (!c->slot[at]) {
            first[nnew] = (int64_t)i;
            c->slot[at] = tag | (ncur + nnew++ + 1);
        }
        size_t k = (size_t)(c->slot[at] & 0xffffffffu) - 1;
        last[k] = (int64_t)i;
        if (rules[i].note)
            noted[k] = (int64_t)i;
    }
    free(c->slot);
    c->slot = NULL;
    return nnew;
}

int dt_sqlite_bulk(struct dt_store *store, const struct dt_store_rule *rules, size_t n,
                   bool replace, struct dt_store_bulk *out, struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    memset(out, 0, sizeof(*out));
    if (s->in_txn && (s->wrote || s->bulk))
        return dt_sql_fail(s, err, DT_EINVAL, "dt_store_bulk: the transaction has written already");
    int rc = dt_sql_need_txn(s, "dt_store_bulk", err);
    if (rc)
        return rc;
    s->wrote = false; /* not yet: a bad rule leaves the transaction as it was */
    for (size_t i = 0; i < n; i++)
        if ((rc = dt_sql_check_rule(s, &rules[i], err)) != 0)
            return rc;

    /* The rules as they are. */
    struct current_set c = {0};
    dt_arena_init(&c.mem, 1 << 20);
    if ((rc = read_current_set(s, &c, n, err)) != 0)
        goto fail;
    size_t ncur = c.n;
    int64_t *last = dt_xmalloc((ncur + n + 1) * sizeof(*last));
    int64_t *noted = dt_xmalloc((ncur + n + 1) * sizeof(*noted));
    int64_t *first = dt_xmalloc((n + 1) * sizeof(*first)); /* a new source's first giver */
    size_t nnew = match_sources(&c, ncur, rules, n, last, noted, first);

    /* The new rule set, in c.r's place (rule k is read before slot w <= k is written), and the
     * record of its changes. */
    out->from = dt_xmalloc((ncur + nnew + 1) * sizeof(*out->from));
    struct dt_record rec;
    memset(&rec, 0, sizeof(rec));
    size_t w = 0;
    for (size_t k = 0; k < ncur + nnew && rc == 0; k++) {
        struct dt_store_rule old = k < ncur ? c.r[k] : (struct dt_store_rule){0};
        bool had = k < ncur;
        if (had && last[k] < 0) {
            if (replace) {
                dt_record_put(&rec, old.id, NULL);
                out->removed++;
            } else {
                out->from[w] = -1;
                c.r[w++] = old;
            }
        } else {
            struct dt_store_rule r = rules[last[k]];
            /* as successive puts: a NULL note keeps the one an earlier put gave */
            r.note = noted[k] >= 0 ? rules[noted[k]].note : had ? old.note : "";
            r.options = dt_sql_or_empty(r.options);
            if (had && old.status == r.status && !strcmp(old.target, r.target) &&
                !strcmp(old.options, r.options) && !strcmp(old.note, r.note)) {
                out->from[w] = -1;
                c.r[w++] = old;
                continue;
            }
            /* as write_current: since kept while it stays 307 */
            r.id = had ? old.id : s->next_rid++;
            r.created = had ? old.created : s->now;
            r.updated = s->now;
            r.since = r.status != 307                             ? 0
                      : had && old.status == 307 && old.since > 0 ? old.since
                                                                  : s->now;
            r.version = s->txn_version;
            dt_record_put(&rec, r.id, &r);
            out->from[w] = last[k];
            c.r[w++] = r;
            if (had)
                out->changed_count++;
            else
                out->added++;
        }
        if (rec.buf.len >= BULK_CHUNK)
            rc = flush_chunk(s, &rec, err);
    }
    if (rc == 0)
        rc = flush_chunk(s, &rec, err);
    dt_buf_dispose(&rec.buf);
    for (int k = 0; k < 4; k++)
        dt_buf_dispose(&rec.prev[k]);
    free(last);
    free(noted);
    free(first);
    out->rules = c.r;
    out->n = w;
    out->_mem = dt_xmalloc(sizeof(struct dt_arena));
    memcpy(out->_mem, &c.mem, sizeof(c.mem));
    if (rc) {
        dt_store_bulk_dispose(out);
        return dt_sql_broke(s, rc);
    }
    s->wrote = s->bulk = true;
    s->bulk_n[0] = out->added;
    s->bulk_n[1] = out->changed_count;
    s->bulk_n[2] = out->removed;
    return 0;
fail:
    free(c.r);
    dt_arena_dispose(&c.mem);
    return rc;
}

/* One change of a bulk record: rule id's current row closed, r (if any) its new one. */
static int settle_one(struct sq_store *s, int64_t id, const struct dt_store_rule *r,
                      struct dt_buf *err)
{
    sqlite3_stmt *st = dt_sql_stmt(s, ST_GET, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = dt_sql_step(s, st, err);
    int64_t row = rc == 1 ? sqlite3_column_int64(st, C_ROW) : 0;
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    if (rc == 1 && (rc = dt_sql_run_id(s, ST_CLOSE, row, s->txn_version, err)) != 0)
        return rc;
    if (r && dt_sql_insert_row(s, id, r, r->created, r->since) != SQLITE_DONE)
        return dt_sql_fail_sql(s, err, "cannot write a rule of a bulk version");
    return 0;
}

/* Writes the rows of one chunk of a bulk record (of the version the transaction stands
 * for): closes each changed rule's current row and writes its new one. */
static int settle_chunk(struct sq_store *s, const unsigned char *p, size_t len, int64_t entries,
                        struct dt_buf *err)
{
    const unsigned char *end = p + len;
    int64_t n = 0;
    struct dt_buf texts[4];
    for (int k = 0; k < 4; k++) {
        dt_buf_init(&texts[k]);
        dt_buf_terminate(&texts[k]);
    }
    int rc = 0;
    while (p < end && rc == 0) {
        int64_t id;
        bool removed;
        struct dt_store_rule r = {0};
        if (!dt_record_get(&p, end, &id, &r, &removed, texts)) {
            rc = dt_sql_fail(s, err, DT_EIO, "%s: the record of bulk version %lld is damaged",
                             s->path, (long long)s->txn_version);
            break;
        }
        rc = settle_one(s, id, removed ? NULL : &r, err);
        n++;
    }
    if (rc == 0 && n != entries)
        rc = dt_sql_fail(s, err, DT_EIO,
                         "%s: the record of bulk version %lld is damaged (%lld changes "
                         "of %lld)",
                         s->path, (long long)s->txn_version, (long long)n, (long long)entries);
    for (int k = 0; k < 4; k++)
        dt_buf_dispose(&texts[k]);
    return rc;
}

int dt_sqlite_settle(struct dt_store *store, struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_settle", err);
    if (rc)
        return rc;
    if (s->in_txn)
        return dt_sql_fail(s, err, DT_EINVAL, "dt_store_settle: a transaction is open");
    /* another connection's bulk write is this one's to settle too */
    int64_t one = 0;
    if (!s->unsettled && (rc = dt_sql_query_int(s, ST_BULK_ANY, 0, &one, err)) <= 0)
        return rc;
    if ((rc = dt_sql_exec(s, "BEGIN IMMEDIATE", err)) != 0)
        return rc;
    struct dt_buf body;
    dt_buf_init(&body);
    for (;;) {
        sqlite3_stmt *st = dt_sql_stmt(s, ST_BULK_NEXT, err);
        if (!st) {
            rc = DT_EIO;
            break;
        }
        if ((rc = dt_sql_step(s, st, err)) <= 0)
            break; /* done, or failed */
        int64_t chunk = sqlite3_column_int64(st, 0);
        s->txn_version = sqlite3_column_int64(st, 1);
        int64_t entries = sqlite3_column_int64(st, 3);
        body.len = 0;
        dt_buf_append(&body, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
        sqlite3_reset(st);
        if ((rc = dt_sql_query_int(s, ST_VERSION_AT, s->txn_version, &s->now, err)) <= 0) {
            if (rc == 0)
                rc = dt_sql_fail(s, err, DT_EIO, "%s: bulk version %lld has no versions row",
                                 s->path, (long long)s->txn_version);
            break;
        }
        const char *bytes = body.ptr ? body.ptr : ""; /* an empty chunk (damaged) has none */
        if ((rc = settle_chunk(s, (const unsigned char *)bytes, body.len, entries, err)) != 0 ||
            (rc = dt_sql_run_id(s, ST_BULK_DONE, chunk, 0, err)) != 0)
            break;
    }
    dt_buf_dispose(&body);
    if (rc == 0 && (rc = dt_sql_exec(s, "COMMIT", err)) == 0)
        s->unsettled = false;
    if (rc && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

bool dt_sqlite_unsettled(const struct dt_store *store)
{
    const struct sq_store *s = sq_c(store);
    return s->unsettled;
}

/* A rollback's list of rows to close or to bring back. */
struct rows {
    struct row_step {
        int64_t row, v_from; /* the row, and the version that wrote it */
        struct prev prev;    /* for a row to bring back */
    } * item;
    size_t n, cap;
};

static void rows_push(struct rows *l, int64_t row, int64_t v_from, struct prev prev)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->item = dt_xrealloc(l->item, l->cap * sizeof(*l->item));
    }
    l->item[l->n++] = (struct row_step){row, v_from, prev};
}

/* True when the rows at column 0 of a and b say the same (source, target, status, options,
 * note). */
static bool same_rows(sqlite3_stmt *a, sqlite3_stmt *b)
{
    static const int text[] = {C_SOURCE, C_TARGET, C_OPTIONS, C_NOTE};
    if (sqlite3_column_int(a, C_STATUS) != sqlite3_column_int(b, C_STATUS))
        return false;
    for (size_t i = 0; i < DT_ARRAY_LEN(text); i++)
        if (strcmp(dt_sql_column_text(a, text[i]), dt_sql_column_text(b, text[i])) != 0)
            return false;
    return true;
}

/* Writes the rule of an old row (row) as the current row of its id. */
static int restore_row(struct sq_store *s, int64_t row, struct prev prev, struct dt_buf *err)
{
    sqlite3_stmt *st = dt_sql_stmt(s, ST_BY_ROW, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, row);
    int rc = dt_sql_step(s, st, err);
    if (rc <= 0) {
        sqlite3_reset(st);
        return rc < 0
                   ? rc
                   : dt_sql_fail(s, err, DT_EIO, "%s: row %lld vanished", s->path, (long long)row);
    }
    /* The strings are copied: the statement is reset before the table is written. */
    struct dt_store_rule r;
    dt_sql_read_rule(st, 0, &r);
    const char *field[] = {r.source, r.target, r.options, r.note};
    size_t at[4];
    s->copy.len = 0;
    for (int i = 0; i < 4; i++) {
        at[i] = s->copy.len;
        dt_buf_append(&s->copy, field[i], strlen(field[i]) + 1);
    }
    sqlite3_reset(st);
    r.source = s->copy.ptr + at[0];
    r.target = s->copy.ptr + at[1];
    r.options = s->copy.ptr + at[2];
    r.note = s->copy.ptr + at[3];
    return dt_sql_write_current(s, r.id, &r, r.created, prev, err);
}

int dt_sqlite_rollback(struct dt_store *store, int64_t version, struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_need_txn(s, "dt_store_rollback", err);
    if (rc)
        return rc;
    int64_t one = 0;
    if (version < 0 ||
        (version > 0 && (rc = dt_sql_query_int(s, ST_VERSION_EXISTS, version, &one, err)) == 0))
        return dt_sql_fail(s, err, DT_ENOENT, "no version %lld", (long long)version);
    if (rc < 0)
        return rc;

    /* Compare the rules now with those of the version, both in order of id, and list what
     * must go and what must come back. The table is only written once both lists are
     * complete, and everything that goes goes first: the sources of the version's rules
     * are then free, whatever moved between the two. */
    struct rows gone = {0}, back = {0};
    /* Before this, has the transaction closed rows whose rules could come back? */
    bool closed = s->closed_rows;
    sqlite3_stmt *cur = dt_sql_stmt(s, ST_CURRENT, err), *old = dt_sql_stmt(s, ST_AT, err);
    if (!cur || !old)
        return DT_EIO;
    sqlite3_bind_int64(old, 1, version);
    int rn = dt_sql_step(s, cur, err), ro = rn < 0 ? rn : dt_sql_step(s, old, err);
    while ((rn == 1 || ro == 1) && rn >= 0 && ro >= 0) {
        int64_t a = rn == 1 ? sqlite3_column_int64(cur, C_RID) : INT64_MAX;
        int64_t b = ro == 1 ? sqlite3_column_int64(old, C_RID) : INT64_MAX;
        if (a == b && same_rows(cur, old)) {
            /* unchanged */
        } else {
            int64_t v_from = a <= b ? sqlite3_column_int64(cur, C_FROM) : 0;
            if (a <= b)
                rows_push(&gone, sqlite3_column_int64(cur, C_ROW), v_from,
                          (struct prev){PREV_NONE, 0, 0});
            /* As in dt_store_replace: a current row of the last version is the one that
             * will be closed, and it differs. */
            struct prev p = {closed ? PREV_LOOKUP : PREV_NONE, 0, 0};
            if (a == b)
                p = v_from != s->txn_version
                        ? (struct prev){PREV_KNOWN, sqlite3_column_int(cur, C_STATUS),
                                        sqlite3_column_int64(cur, C_SINCE)}
                        : (struct prev){PREV_LOOKUP, 0, 0};
            if (b <= a)
                rows_push(&back, sqlite3_column_int64(old, C_ROW), 0, p);
        }
        if (a <= b)
            rn = dt_sql_step(s, cur, err);
        if (b <= a)
            ro = dt_sql_step(s, old, err);
    }
    sqlite3_reset(cur);
    sqlite3_reset(old);
    rc = rn < 0 ? rn : ro < 0 ? ro : 0;
    for (size_t i = 0; rc == 0 && i < gone.n; i++)
        rc = dt_sql_broke(s, dt_sql_close_row(s, gone.item[i].row, gone.item[i].v_from, err));
    for (size_t i = 0; rc == 0 && i < back.n; i++)
        rc = dt_sql_broke(s, restore_row(s, back.item[i].row, back.item[i].prev, err));
    free(gone.item);
    free(back.item);
    return rc;
}

/* Calls fn with the changes of version v in order of rule id: the rows it wrote merged with
 * the rows it closed. *left is the number of changes still wanted (SIZE_MAX: all), counted
 * down. Returns 0, DT_EIO, or fn's non-zero value. */
int dt_sql_walk_version(struct sq_store *s, int64_t v, int64_t at, const char *actor, size_t *left,
                        dt_store_change_fn fn, void *ctx)
{
    sqlite3_stmt *w = dt_sql_stmt(s, ST_WRITTEN, NULL), *c = dt_sql_stmt(s, ST_CLOSED, NULL);
    if (!w || !c)
        return DT_EIO;
    sqlite3_bind_int64(w, 1, v);
    sqlite3_bind_int64(c, 1, v);
    int rw = dt_sql_step(s, w, NULL), rc = rw < 0 ? rw : dt_sql_step(s, c, NULL), stop = 0;
    while ((rw == 1 || rc == 1) && rw >= 0 && rc >= 0 && *left > 0) {
        int64_t a = rw == 1 ? sqlite3_column_int64(w, C_RID) : INT64_MAX;
        int64_t b = rc == 1 ? sqlite3_column_int64(c, C_RID) : INT64_MAX;
        struct dt_store_rule old_rule, new_rule;
        struct dt_store_change ch = {v, at, actor, NULL, NULL, NULL};
        if (a <= b)
            ch.new_rule = dt_sql_read_rule(w, 0, &new_rule) ? &new_rule : NULL;
        if (b <= a)
            ch.old_rule = dt_sql_read_rule(c, 0, &old_rule) ? &old_rule : NULL;
        ch.kind = a == b ? "changed" : a < b ? "added" : "removed";
        (*left)--;
        s->walking++;
        stop = fn(ctx, &ch);
        s->walking--;
        if (stop)
            break;
        if (a <= b)
            rw = dt_sql_step(s, w, NULL);
        if (b <= a)
            rc = dt_sql_step(s, c, NULL);
    }
    sqlite3_reset(w);
    sqlite3_reset(c);
    if (stop)
        return stop;
    return rw < 0 ? rw : rc < 0 ? rc : 0;
}

int dt_sqlite_pending(struct dt_store *store, dt_store_change_fn fn, void *ctx)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_pending", NULL);
    if (rc)
        return rc;
    if (!s->in_txn)
        return dt_sql_fail(s, NULL, DT_EINVAL, "dt_store_pending: no transaction is open");
    if (s->bulk)
        return dt_sql_fail(s, NULL, DT_EINVAL,
                           "dt_store_pending: a bulk write's changes are in its "
                           "result");
    size_t left = SIZE_MAX;
    return dt_sql_walk_version(s, s->txn_version, s->now, s->actor, &left, fn, ctx);
}
