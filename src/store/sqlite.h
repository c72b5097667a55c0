/* sqlite: what the SQLite backend's files share (sqlite.c: schema, statements, opening,
 * writes, reads; bulk.c: bulk writes, settling their rows, rollback, the pending walk):
 * the handle, its cached statements and the helpers both use. Private to src/store/. */
#ifndef DT_STORE_SQLITE_H
#define DT_STORE_SQLITE_H

#include "store/record.h"
#include "store/store.h"

#include <sqlite3.h>

#define WAL_CHECKPOINT_PAGES                                                                       \
    1000 /* SQLite's default: a commit past this many WAL pages checkpoints */

/* The columns of a rule row, in the order read_rule expects. */
#define COLS "rid, source, target, status, options, note, created, updated, since, v_from, row_id"
#define O_COLS                                                                                     \
    "o.rid, o.source, o.target, o.status, o.options, o.note, o.created, o.updated, o.since, "      \
    "o.v_from, o.row_id"
#define N_COLS                                                                                     \
    "n.rid, n.source, n.target, n.status, n.options, n.note, n.created, n.updated, n.since, "      \
    "n.v_from, n.row_id"
#define NO_COLS "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
enum {
    C_RID,
    C_SOURCE,
    C_TARGET,
    C_STATUS,
    C_OPTIONS,
    C_NOTE,
    C_CREATED,
    C_UPDATED,
    C_SINCE,
    C_FROM,
    C_ROW,
    C_N
};

enum {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_MAX_VERSION,
    ST_VERSION_EXISTS,
    ST_RID_GET,
    ST_RID_SET,
    ST_COUNT,
    ST_INSERT,
    ST_CLOSE,
    ST_DELETE,
    ST_REOPEN,
    ST_GET,
    ST_FIND,
    ST_PREV,
    ST_BY_ROW,
    ST_CURRENT,
    ST_AT,
    ST_WRITTEN,
    ST_CLOSED,
    ST_WRITTEN_RIDS,
    ST_CLOSED_RIDS,
    ST_VERSION_ADD,
    ST_VERSIONS,
    ST_RULE_HISTORY,
    ST_BULK_ANY,
    ST_BULK_ADD,
    ST_BULK_NEXT,
    ST_BULK_DONE,
    ST_VERSION_AT,
    ST_N
};

/* The filters of dt_store_list, as bits of the index of its cached statements. */
enum { F_TEXT = 1, F_HOST = 2, F_STATUS = 4, F_OLDER = 8, F_N = 16 };

struct sq_store {
    struct dt_store base; /* first: the backend-independent handle (store.h) */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[ST_N]; /* prepared on first use, kept until close */
    sqlite3_stmt *page[F_N];  /* dt_store_list: a page, by filters */
    sqlite3_stmt *total[F_N]; /* dt_store_list: the count, by filters */
    int walking;              /* > 0 while a callback runs (see store.h) */
    /* The open write transaction. */
    bool in_txn;
    bool broken;         /* a write failed half-way: only abort is left */
    bool closed_rows;    /* it has closed rows of the last version */
    int64_t txn_version; /* the version it becomes */
    int64_t now;
    int64_t next_rid, first_rid; /* meta's next_rid now and at begin */
    char *actor, *comment;
    bool wrote;        /* a write was made (or tried) */
    bool bulk;         /* it is a bulk write: no other write, counts from bulk_n */
    int64_t bulk_n[3]; /* a bulk write's added, changed, removed */
    bool unsettled;    /* bulk_pending has records to write (see store.h) */
    /* Scratch space, reused. */
    struct dt_buf host, pattern, copy;
    struct dt_buf error; /* the message of the last failure */
};

/* What a write knows of the row the open transaction closed for the rule, if any: the rule
 * as of the last version. */
struct prev {
    enum { PREV_NONE, PREV_KNOWN, PREV_LOOKUP } kind; /* none, known and differs, unknown */
    int status;
    int64_t since;
};

int dt_sql_fail_sql(struct sq_store *s, struct dt_buf *err, const char *what);
int dt_sql_broke(struct sq_store *s, int rc);
sqlite3_stmt *dt_sql_stmt(struct sq_store *s, int id, struct dt_buf *err);
int dt_sql_step(struct sq_store *s, sqlite3_stmt *st, struct dt_buf *err);
int dt_sql_run(struct sq_store *s, sqlite3_stmt *st, struct dt_buf *err);
int dt_sql_run_id(struct sq_store *s, int id, int64_t a, int64_t b, struct dt_buf *err);
int dt_sql_query_int(struct sq_store *s, int id, int64_t a, int64_t *out, struct dt_buf *err);
const char *dt_sql_column_text(sqlite3_stmt *st, int col);
bool dt_sql_read_rule(sqlite3_stmt *st, int col, struct dt_store_rule *r);
const char *dt_sql_or_empty(const char *p);
int dt_sql_not_walking(struct sq_store *s, const char *fn, struct dt_buf *err);
int dt_sql_need_txn(struct sq_store *s, const char *fn, struct dt_buf *err);
int dt_sql_check_rule(struct sq_store *s, const struct dt_store_rule *r, struct dt_buf *err);
int dt_sql_exec(struct sq_store *s, const char *sql, struct dt_buf *err);
int dt_sql_each_row(struct sq_store *s, sqlite3_stmt *st, dt_store_rule_fn fn, void *ctx);
int dt_sql_insert_row(struct sq_store *s, int64_t rid, const struct dt_store_rule *r,
                      int64_t created, int64_t since);
int dt_sql_close_row(struct sq_store *s, int64_t row, int64_t v_from, struct dt_buf *err);
int dt_sql_write_current(struct sq_store *s, int64_t rid, const struct dt_store_rule *r,
                         int64_t created, struct prev p, struct dt_buf *err);
int dt_sql_walk_version(struct sq_store *s, int64_t v, int64_t at, const char *actor, size_t *left,
                        dt_store_change_fn fn, void *ctx);
/* Records a message for the failure (in s->error, and appended to err when given) and
 * returns code. */
int dt_sql_fail(struct sq_store *s, struct dt_buf *err, int code, const char *fmt, ...)
    DT_PRINTF(4, 5);

static inline struct sq_store *sq(struct dt_store *store)
{
    return (struct sq_store *)store; /* base is its first member */
}

static inline const struct sq_store *sq_c(const struct dt_store *store)
{
    return (const struct sq_store *)store;
}

/* The SQLite backend of store.h (its functions, as the backend table names them). */
extern const struct dt_store_backend dt_sqlite_backend;
struct dt_store *dt_sqlite_open(const char *path, struct dt_buf *err);
/* dt_store_backup of a SQLite file (backup.c). */
int dt_sqlite_backup(const char *path, const char *dest, int64_t *version, struct dt_buf *err);
void dt_sqlite_abort(struct dt_store *store);
void dt_sqlite_close(struct dt_store *store);
const char *dt_sqlite_error(const struct dt_store *store);
int64_t dt_sqlite_version(struct dt_store *store);
int64_t dt_sqlite_count(struct dt_store *store);
int dt_sqlite_wait(struct dt_store *store, int64_t after, int timeout_ms, int64_t *version);
int dt_sqlite_begin(struct dt_store *store, int64_t now, const char *actor, const char *comment,
                    struct dt_buf *err);
int dt_sqlite_commit(struct dt_store *store, int64_t *version, struct dt_buf *err);
int dt_sqlite_add(struct dt_store *store, const struct dt_store_rule *r, int64_t *id,
                  struct dt_buf *err);
int dt_sqlite_replace(struct dt_store *store, int64_t id, const struct dt_store_rule *r,
                      struct dt_buf *err);
int dt_sqlite_put(struct dt_store *store, const struct dt_store_rule *r, int64_t *id, bool *again,
                  struct dt_buf *err);
int dt_sqlite_remove(struct dt_store *store, int64_t id, struct dt_buf *err);
int dt_sqlite_get(struct dt_store *store, int64_t id, dt_store_rule_fn fn, void *ctx);
int dt_sqlite_find(struct dt_store *store, const char *source, dt_store_rule_fn fn, void *ctx);
int dt_sqlite_each(struct dt_store *store, int64_t version, dt_store_rule_fn fn, void *ctx);
int dt_sqlite_list(struct dt_store *store, const struct dt_store_query *q, dt_store_rule_fn fn,
                   void *ctx, int64_t *total);
int dt_sqlite_versions(struct dt_store *store, int64_t before, size_t limit, dt_store_version_fn fn,
                       void *ctx);
int dt_sqlite_history(struct dt_store *store, int64_t id, int64_t before, size_t limit,
                      dt_store_change_fn fn, void *ctx);
int dt_sqlite_bulk(struct dt_store *store, const struct dt_store_rule *rules, size_t n,
                   bool replace, struct dt_store_bulk *out, struct dt_buf *err);
int dt_sqlite_settle(struct dt_store *store, struct dt_buf *err);
bool dt_sqlite_unsettled(const struct dt_store *store);
int dt_sqlite_rollback(struct dt_store *store, int64_t version, struct dt_buf *err);
int dt_sqlite_pending(struct dt_store *store, dt_store_change_fn fn, void *ctx);

/* sqlite.c: statements, transactions for reading, what a write shares */
sqlite3_stmt *dt_sql_prepare(struct sq_store *s, const char *sql, struct dt_buf *err);
bool dt_sql_same_content(sqlite3_stmt *st, const struct dt_store_rule *r);
int dt_sql_settled(struct sq_store *s);
void dt_sql_end_txn(struct sq_store *s);
int dt_sql_read_begin(struct sq_store *s, bool *started);
void dt_sql_read_end(struct sq_store *s, bool started);

/* sqlite_read.c: the cached statement of a dt_store_list page (or its count), by filters */
sqlite3_stmt *dt_sql_list_stmt(struct sq_store *s, unsigned filters, bool total);

#endif
