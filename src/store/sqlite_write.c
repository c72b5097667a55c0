/* sqlite_write: the SQLite backend's writes: a rule's rows closed and replaced, one
 * transaction one version (begin, commit, abort, add, replace, put, remove). */
#include "store/sqlite.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- writing ----------------------------------------------------------------------------- */

/* The host of a source, lower-cased into s->host, as the opener's host_of says (the store
 * knows no rule grammar). false for a source for any host. */
static bool source_host(struct sq_store *s, const char *source)
{
    char host[256];
    size_t n = s->base.host_of ? s->base.host_of(source, host, sizeof(host)) : 0;
    if (n == 0)
        return false;
    s->host.len = 0;
    dt_buf_append(&s->host, host, n);
    dt_buf_terminate(&s->host);
    return true;
}

/* Inserts a row of rule rid written by the open transaction. Returns SQLite's result code. */
int dt_sql_insert_row(struct sq_store *s, int64_t rid, const struct dt_store_rule *r,
                      int64_t created, int64_t since)
{
    sqlite3_stmt *st = dt_sql_stmt(s, ST_INSERT, NULL);
    if (!st)
        return SQLITE_ERROR;
    int rc = sqlite3_bind_int64(st, 1, rid);
    rc |= sqlite3_bind_text(st, 2, r->source, -1, SQLITE_STATIC);
    if (source_host(s, r->source))
        rc |= sqlite3_bind_text(st, 3, s->host.ptr, (int)s->host.len, SQLITE_STATIC);
    else
        rc |= sqlite3_bind_null(st, 3);
    rc |= sqlite3_bind_text(st, 4, r->target, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int(st, 5, r->status);
    rc |= sqlite3_bind_text(st, 6, dt_sql_or_empty(r->options), -1, SQLITE_STATIC);
    rc |= sqlite3_bind_text(st, 7, dt_sql_or_empty(r->note), -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, 8, created);
    rc |= sqlite3_bind_int64(st, 9, s->now);
    rc |= sqlite3_bind_int64(st, 10, since);
    rc |= sqlite3_bind_int64(st, 11, s->txn_version);
    if (rc != SQLITE_OK)
        return SQLITE_ERROR;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

/* The message for a source that another current rule has. */
static int source_taken(struct sq_store *s, const char *source, struct dt_buf *err)
{
    int64_t other = 0;
    sqlite3_stmt *st = dt_sql_stmt(s, ST_FIND, err);
    if (st) {
        sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        if (dt_sql_step(s, st, NULL) == 1)
            other = sqlite3_column_int64(st, C_RID);
        sqlite3_reset(st);
    }
    return dt_sql_fail(s, err, DT_EEXIST, "rule %lld already has the source %s", (long long)other,
                       source);
}

/* Ends the life of a current row in the open transaction. A row that the transaction itself
 * wrote was never part of a version, so it goes; any other is closed. */
int dt_sql_close_row(struct sq_store *s, int64_t row, int64_t v_from, struct dt_buf *err)
{
    if (v_from == s->txn_version)
        return dt_sql_run_id(s, ST_DELETE, row, 0, err);
    s->closed_rows = true;
    return dt_sql_run_id(s, ST_CLOSE, row, s->txn_version, err);
}

/* Makes r the current row of rule rid, which has none at the moment; created is the rule's.
 *
 * The row this transaction closed for rid (the rule as of the last version) decides since
 * (S10: kept while the rule stays 307, now when it becomes 307, 0 otherwise). If it says what
 * r says, it is reopened instead, so that undoing a change inside a transaction leaves no
 * change behind. */
int dt_sql_write_current(struct sq_store *s, int64_t rid, const struct dt_store_rule *r,
                         int64_t created, struct prev p, struct dt_buf *err)
{
    bool had = p.kind == PREV_KNOWN;
    int prev_status = p.status;
    int64_t prev_since = p.since;
    if (p.kind == PREV_LOOKUP) {
        sqlite3_stmt *st = dt_sql_stmt(s, ST_PREV, err);
        if (!st)
            return DT_EIO;
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_int64(st, 2, s->txn_version);
        int rc = dt_sql_step(s, st, err);
        if (rc < 0)
            return rc;
        if (rc == 1 && dt_sql_same_content(st, r)) {
            int64_t row = sqlite3_column_int64(st, C_ROW);
            sqlite3_reset(st);
            return dt_sql_run_id(s, ST_REOPEN, row, 0, err);
        }
        if (rc == 1) {
            had = true;
            prev_status = sqlite3_column_int(st, C_STATUS);
            prev_since = sqlite3_column_int64(st, C_SINCE);
        }
        sqlite3_reset(st);
    }
    int64_t since = 0;
    if (r->status == 307)
        since = had && prev_status == 307 && prev_since > 0 ? prev_since : s->now;
    int rc = dt_sql_insert_row(s, rid, r, created, since);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return source_taken(s, r->source, err);
    return dt_sql_fail_sql(s, err, "cannot write a rule");
}

int dt_sqlite_begin(struct dt_store *store, int64_t now, const char *actor, const char *comment,
                    struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_begin", err);
    if (rc)
        return rc;
    if (s->in_txn)
        return dt_sql_fail(s, err, DT_EINVAL, "dt_store_begin: a transaction is already open");
    if (s->unsettled && (rc = dt_sqlite_settle(&s->base, err)) != 0)
        return rc;
    actor = dt_sql_or_empty(actor);
    comment = dt_sql_or_empty(comment);
    if (strlen(actor) > DT_STORE_TEXT_MAX || strlen(comment) > DT_STORE_TEXT_MAX)
        return dt_sql_fail(s, err, DT_ELIMIT, "an actor or a comment is longer than %d bytes",
                           DT_STORE_TEXT_MAX);
    sqlite3_stmt *st = dt_sql_stmt(s, ST_BEGIN, err);
    if (!st)
        return DT_EIO;
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = dt_sql_fail_sql(s, err, "cannot start a transaction");
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    int64_t current = 0, next_rid = 0;
    if (dt_sql_query_int(s, ST_MAX_VERSION, 0, &current, err) < 0 ||
        (rc = dt_sql_query_int(s, ST_RID_GET, 0, &next_rid, err)) < 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return DT_EIO;
    }
    if (rc == 0 || next_rid < 1) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return dt_sql_fail(s, err, DT_EIO, "%s: the next rule id is missing from meta", s->path);
    }
    s->in_txn = true;
    s->broken = false;
    s->closed_rows = false;
    s->txn_version = current + 1;
    s->now = now;
    s->next_rid = s->first_rid = next_rid;
    s->actor = dt_xstrndup(actor, strlen(actor));
    s->comment = dt_xstrndup(comment, strlen(comment));
    return 0;
}

/* Counts the changes of the open transaction: rules with a written row and no closed one are
 * added, with both changed, with a closed row only removed. Both lists come in order of id
 * straight from their indexes, so this is one merge. */
static int count_changes(struct sq_store *s, int64_t n[3], struct dt_buf *err)
{
    sqlite3_stmt *w = dt_sql_stmt(s, ST_WRITTEN_RIDS, err),
                 *c = dt_sql_stmt(s, ST_CLOSED_RIDS, err);
    if (!w || !c)
        return DT_EIO;
    sqlite3_bind_int64(w, 1, s->txn_version);
    sqlite3_bind_int64(c, 1, s->txn_version);
    n[0] = n[1] = n[2] = 0;
    int rw = dt_sql_step(s, w, err), rc = rw < 0 ? rw : dt_sql_step(s, c, err);
    while ((rw == 1 || rc == 1) && rw >= 0 && rc >= 0) {
        int64_t a = rw == 1 ? sqlite3_column_int64(w, 0) : INT64_MAX;
        int64_t b = rc == 1 ? sqlite3_column_int64(c, 0) : INT64_MAX;
        n[a == b ? 1 : a < b ? 0 : 2]++;
        if (a <= b)
            rw = dt_sql_step(s, w, err);
        if (b <= a)
            rc = dt_sql_step(s, c, err);
    }
    sqlite3_reset(w);
    sqlite3_reset(c);
    return rw < 0 ? rw : rc < 0 ? rc : 0;
}

int dt_sqlite_commit(struct dt_store *store, int64_t *version, struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_not_walking(s, "dt_store_commit", err);
    if (rc)
        return rc;
    if (!s->in_txn)
        return dt_sql_fail(s, err, DT_EINVAL, "dt_store_commit: no transaction is open");
    if (s->broken || sqlite3_get_autocommit(s->db)) {
        dt_sql_fail(s, err, DT_EIO,
                    "%s: an earlier error left the transaction incomplete: nothing "
                    "was committed",
                    s->path);
        rc = DT_EIO;
        goto fail;
    }
    if (s->next_rid != s->first_rid &&
        (rc = dt_sql_run_id(s, ST_RID_SET, s->next_rid, 0, err)) != 0)
        goto fail;
    int64_t n[3] = {s->bulk_n[0], s->bulk_n[1], s->bulk_n[2]};
    if (!s->bulk && (rc = count_changes(s, n, err)) != 0)
        goto fail;
    bool changed = n[0] + n[1] + n[2] > 0;
    if (changed) {
        sqlite3_stmt *st = dt_sql_stmt(s, ST_VERSION_ADD, err);
        if (!st) {
            rc = DT_EIO;
            goto fail;
        }
        sqlite3_bind_int64(st, 1, s->txn_version);
        sqlite3_bind_int64(st, 2, s->now);
        sqlite3_bind_text(st, 3, s->actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, s->comment, -1, SQLITE_STATIC);
        for (int i = 0; i < 3; i++)
            sqlite3_bind_int64(st, 5 + i, n[i]);
        if ((rc = dt_sql_run(s, st, err)) != 0)
            goto fail;
    }
    /* The version is durable once COMMIT returns (WAL, synchronous=FULL). A bulk write's
     * commit does not also copy the WAL into the database (a checkpoint): the next commit,
     * its rows', does. */
    sqlite3_stmt *st = dt_sql_stmt(s, ST_COMMIT, err);
    if (!st) {
        rc = DT_EIO;
        goto fail;
    }
    if (s->bulk)
        sqlite3_wal_autocheckpoint(s->db, 0);
    int done = sqlite3_step(st);
    if (s->bulk)
        sqlite3_wal_autocheckpoint(s->db, WAL_CHECKPOINT_PAGES);
    if (done != SQLITE_DONE) {
        rc = dt_sql_fail_sql(s, err, "commit failed");
        sqlite3_reset(st);
        goto fail;
    }
    sqlite3_reset(st);
    if (version)
        *version = changed ? s->txn_version : s->txn_version - 1;
    if (s->bulk && changed)
        s->unsettled = true;
    dt_sql_end_txn(s);
    return 0;
fail:
    dt_sqlite_abort(&s->base);
    return rc;
}

int dt_sqlite_add(struct dt_store *store, const struct dt_store_rule *r, int64_t *id,
                  struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_need_txn(s, "dt_store_add", err);
    if (rc || (rc = dt_sql_check_rule(s, r, err)) != 0)
        return rc;
    /* One statement: a failure (a source that exists) leaves the transaction as it was. */
    rc = dt_sql_write_current(s, s->next_rid, r, s->now, (struct prev){PREV_NONE, 0, 0}, err);
    if (rc)
        return rc;
    if (id)
        *id = s->next_rid;
    s->next_rid++;
    return 0;
}

/* The current row of a rule, as a replace needs it: read from st (positioned on it). */
struct current {
    int64_t row, v_from, created;
    struct prev prev; /* a row of the last version becomes the closed one, and it differs
                       * from the new rule; a row this transaction wrote goes, and the
                       * closed one (if any) is looked up */
};

static struct current read_current(struct sq_store *s, sqlite3_stmt *st)
{
    struct current c = {sqlite3_column_int64(st, C_ROW),
                        sqlite3_column_int64(st, C_FROM),
                        sqlite3_column_int64(st, C_CREATED),
                        {PREV_LOOKUP, 0, 0}};
    if (c.v_from != s->txn_version)
        c.prev = (struct prev){PREV_KNOWN, sqlite3_column_int(st, C_STATUS),
                               sqlite3_column_int64(st, C_SINCE)};
    return c;
}

/* Makes r rule rid's current row in place of c. */
static int rewrite(struct sq_store *s, int64_t rid, const struct dt_store_rule *r, struct current c,
                   struct dt_buf *err)
{
    int rc = dt_sql_close_row(s, c.row, c.v_from, err);
    if (rc == 0)
        rc = dt_sql_write_current(s, rid, r, c.created, c.prev, err);
    return dt_sql_broke(s, rc);
}

/* Steps *st to the current row of rule id (reset it when done). Returns 0, DT_ENOENT when
 * there is none, or another error. */
static int current_row(struct sq_store *s, int64_t id, sqlite3_stmt **st, struct dt_buf *err)
{
    *st = dt_sql_stmt(s, ST_GET, err);
    if (!*st)
        return DT_EIO;
    sqlite3_bind_int64(*st, 1, id);
    int rc = dt_sql_step(s, *st, err);
    if (rc > 0)
        return 0;
    sqlite3_reset(*st);
    return rc < 0 ? rc : dt_sql_fail(s, err, DT_ENOENT, "no rule %lld", (long long)id);
}

int dt_sqlite_replace(struct dt_store *store, int64_t id, const struct dt_store_rule *r,
                      struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_need_txn(s, "dt_store_replace", err);
    if (rc || (rc = dt_sql_check_rule(s, r, err)) != 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = current_row(s, id, &st, err)) != 0)
        return rc;
    if (dt_sql_same_content(st, r)) {
        sqlite3_reset(st);
        return 0;
    }
    struct current cur = read_current(s, st);
    bool moved = strcmp(dt_sql_column_text(st, C_SOURCE), r->source) != 0;
    sqlite3_reset(st);
    if (moved) {
        int64_t other = 0;
        sqlite3_stmt *f = dt_sql_stmt(s, ST_FIND, err);
        if (!f)
            return DT_EIO;
        sqlite3_bind_text(f, 1, r->source, -1, SQLITE_STATIC);
        rc = dt_sql_step(s, f, err);
        if (rc == 1)
            other = sqlite3_column_int64(f, C_RID);
        sqlite3_reset(f);
        if (rc < 0)
            return rc;
        if (rc == 1 && other != id)
            return dt_sql_fail(s, err, DT_EEXIST, "rule %lld already has the source %s",
                               (long long)other, r->source);
    }
    return rewrite(s, id, r, cur, err);
}

int dt_sqlite_put(struct dt_store *store, const struct dt_store_rule *r, int64_t *id, bool *again,
                  struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    if (again)
        *again = false;
    int rc = dt_sql_need_txn(s, "dt_store_put", err);
    if (rc || (rc = dt_sql_check_rule(s, r, err)) != 0)
        return rc;
    /* one lookup by source gives all a replace needs */
    sqlite3_stmt *st = dt_sql_stmt(s, ST_FIND, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_text(st, 1, r->source, -1, SQLITE_STATIC);
    if ((rc = dt_sql_step(s, st, err)) <= 0) {
        sqlite3_reset(st);
        if (rc < 0)
            return rc;
        struct dt_store_rule a = *r;
        a.note = dt_sql_or_empty(r->note);
        return dt_sqlite_add(&s->base, &a, id, err);
    }
    int64_t rid = sqlite3_column_int64(st, C_RID);
    if (id)
        *id = rid;
    if (again)
        *again = sqlite3_column_int64(st, C_FROM) == s->txn_version;
    struct dt_store_rule nr = *r;
    char *note = NULL;
    if (!r->note) {
        /* the current rule's note stays: copied, as the row is read no further */
        const char *old = dt_sql_column_text(st, C_NOTE);
        nr.note = old[0] ? (note = dt_xstrndup(old, strlen(old))) : "";
    }
    if (dt_sql_same_content(st, &nr)) {
        sqlite3_reset(st);
        free(note);
        return 0;
    }
    struct current cur = read_current(s, st);
    sqlite3_reset(st);
    rc = rewrite(s, rid, &nr, cur, err);
    free(note);
    return rc;
}

int dt_sqlite_remove(struct dt_store *store, int64_t id, struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_need_txn(s, "dt_store_remove", err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if ((rc = current_row(s, id, &st, err)) != 0)
        return rc;
    int64_t row = sqlite3_column_int64(st, C_ROW), v_from = sqlite3_column_int64(st, C_FROM);
    sqlite3_reset(st);
    return dt_sql_broke(s, dt_sql_close_row(s, row, v_from, err));
}
