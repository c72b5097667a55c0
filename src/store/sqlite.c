/* store/sqlite.c: the rule store in SQLite: the schema and its migrations, one numbered version
 * per write transaction, rule rows that are closed and replaced rather than updated, and the
 * reads of any version, of the history and of a transaction's pending changes. */
#include "store/sqlite.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#define BUSY_TIMEOUT_MS 5000 /* how long a write waits for another writer of the file */
/* SQLite's page cache, at most (it grows with use): a million adds took 4.2 s with SQLite's
 * default of 2 MiB, 3.7 s with this. */
#define CACHE_KIB 65536
#define WAL_KEEP_BYTES (64 << 20) /* the WAL file is truncated to this after a checkpoint */

/* ---- schema ------------------------------------------------------------------------------ */

/* The migrations: step i brings a database from user_version i to i + 1. Steps are only ever
 * appended; a database whose user_version is beyond the last step was written by a newer
 * detour and is refused.
 *
 * Step 1, the schema. A rule (rid) is a run of rows in `rules`: each row holds the rule as one
 * transaction wrote it, alive from version v_from up to but not including v_to (NULL: still
 * current). A change never updates a row's content: it closes the current row (v_to = the new
 * version) and inserts a new one (v_from = the new version). The rules of version V are thus
 * the rows with v_from <= V AND (v_to IS NULL OR v_to > V). Every write transaction that
 * changed something is a row of `versions` (when, who, why, and how many rules it added,
 * changed and removed), so `versions` and `rules` together are the audit trail; the `audit`
 * view reads them as one list of changes with old and new values. Rule ids come from `meta`
 * (next_rid), never from the rows, so an id is never given twice, not even after the rule was
 * removed or rolled away. `host` is derived from `source` when a row is written, for the
 * host filter of listings. */
static const char *const migrations[] = {
    "CREATE TABLE versions (\n"
    "    version INTEGER PRIMARY KEY,\n"
    "    at      INTEGER NOT NULL,\n"
    "    actor   TEXT NOT NULL,\n"
    "    comment TEXT NOT NULL DEFAULT '',\n"
    "    added   INTEGER NOT NULL,\n"
    "    changed INTEGER NOT NULL,\n"
    "    removed INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE rules (\n"
    "    row_id  INTEGER PRIMARY KEY,\n"
    "    rid     INTEGER NOT NULL CHECK (rid > 0),\n"
    "    source  TEXT NOT NULL,\n"
    "    host    TEXT,\n"
    "    target  TEXT NOT NULL,\n"
    "    status  INTEGER NOT NULL,\n"
    "    options TEXT NOT NULL,\n"
    "    note    TEXT NOT NULL,\n"
    "    created INTEGER NOT NULL,\n"
    "    updated INTEGER NOT NULL,\n"
    "    since   INTEGER NOT NULL,\n"
    /* Deferred: the version's row is written at commit, after its rule rows. v_to has no
     * such key: it made closing a row a fifth dearer (a million replaces: 7.3 s -> 8.9 s),
     * and a closed row always counts in its version's row, so commit writes that. */
    "    v_from  INTEGER NOT NULL REFERENCES versions (version) DEFERRABLE INITIALLY DEFERRED,\n"
    "    v_to    INTEGER,\n"
    "    CHECK (v_to IS NULL OR v_to > v_from)\n"
    ");\n"
    /* The current rule set: one row per source and per id. */
    "CREATE UNIQUE INDEX rules_current_source ON rules (source) WHERE v_to IS NULL;\n"
    "CREATE UNIQUE INDEX rules_current_rid ON rules (rid) WHERE v_to IS NULL;\n"
    "CREATE INDEX rules_current_host ON rules (host, rid)\n"
    "    WHERE v_to IS NULL AND host IS NOT NULL;\n"
    /* A rule's history, and the rules of any version in order of id. */
    "CREATE INDEX rules_rid ON rules (rid, v_from);\n"
    /* The changes of a version: the rows it wrote and the rows it closed. */
    "CREATE INDEX rules_written ON rules (v_from, rid);\n"
    "CREATE INDEX rules_closed ON rules (v_to, rid) WHERE v_to IS NOT NULL;\n"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;\n"
    "INSERT INTO meta (key, value) VALUES ('next_rid', 1);\n"
    /* One line per change: a row written by a version is an "added" (no row of the same
     * rule closed by it) or a "changed"; a row closed by a version with no new row is a
     * "removed". */
    "CREATE VIEW audit (version, at, actor, comment, kind, rid,\n"
    "                   old_source, old_target, old_status, old_options, old_note,\n"
    "                   new_source, new_target, new_status, new_options, new_note) AS\n"
    "SELECT v.version, v.at, v.actor, v.comment,\n"
    "       CASE WHEN o.row_id IS NULL THEN 'added' ELSE 'changed' END, n.rid,\n"
    "       o.source, o.target, o.status, o.options, o.note,\n"
    "       n.source, n.target, n.status, n.options, n.note\n"
    "  FROM versions AS v\n"
    "  JOIN rules AS n ON n.v_from = v.version\n"
    "  LEFT JOIN rules AS o ON o.v_to = v.version AND o.rid = n.rid\n"
    "UNION ALL\n"
    "SELECT v.version, v.at, v.actor, v.comment, 'removed', o.rid,\n"
    "       o.source, o.target, o.status, o.options, o.note, NULL, NULL, NULL, NULL, NULL\n"
    "  FROM versions AS v\n"
    "  JOIN rules AS o ON o.v_to = v.version\n"
    " WHERE NOT EXISTS (SELECT 1 FROM rules AS n WHERE n.v_from = v.version AND n.rid = o.rid);\n",
    /* Step 2: the records of bulk writes whose rows are still to be written (see store.h):
     * the changes of version `version`, encoded (see put_change), in chunks read in order
     * of `chunk`, each of `entries` changes (a chunk cut short is seen). Empty but right
     * after a bulk write's commit. */
    "CREATE TABLE bulk_pending (\n"
    "    chunk   INTEGER PRIMARY KEY,\n"
    "    version INTEGER NOT NULL,\n"
    "    entries INTEGER NOT NULL,\n"
    "    body    BLOB NOT NULL\n"
    ");\n",
};

/* ---- statements -------------------------------------------------------------------------- */

static const char *const statement_sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_MAX_VERSION] = "SELECT coalesce(max(version), 0) FROM versions",
    [ST_VERSION_EXISTS] = "SELECT 1 FROM versions WHERE version = ?1",
    [ST_RID_GET] = "SELECT value FROM meta WHERE key = 'next_rid'",
    [ST_RID_SET] = "UPDATE meta SET value = ?1 WHERE key = 'next_rid'",
    [ST_COUNT] = "SELECT count(*) FROM rules WHERE v_to IS NULL",
    [ST_INSERT] = "INSERT INTO rules (rid, source, host, target, status, options, note, created,"
                  " updated, since, v_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_CLOSE] = "UPDATE rules SET v_to = ?2 WHERE row_id = ?1",
    [ST_DELETE] = "DELETE FROM rules WHERE row_id = ?1",
    [ST_REOPEN] = "UPDATE rules SET v_to = NULL WHERE row_id = ?1",
    [ST_GET] = "SELECT " COLS " FROM rules WHERE rid = ?1 AND v_to IS NULL",
    [ST_FIND] = "SELECT " COLS " FROM rules WHERE source = ?1 AND v_to IS NULL",
    [ST_PREV] = "SELECT " COLS " FROM rules WHERE v_to = ?2 AND rid = ?1",
    [ST_BY_ROW] = "SELECT " COLS " FROM rules WHERE row_id = ?1",
    [ST_CURRENT] = "SELECT " COLS " FROM rules WHERE v_to IS NULL ORDER BY rid",
    /* In order of id without a sort: the rows of each rule are next to each other there. */
    [ST_AT] = "SELECT " COLS " FROM rules INDEXED BY rules_rid"
              " WHERE v_from <= ?1 AND (v_to IS NULL OR v_to > ?1) ORDER BY rid",
    [ST_WRITTEN] = "SELECT " COLS " FROM rules WHERE v_from = ?1 ORDER BY rid",
    [ST_CLOSED] = "SELECT " COLS " FROM rules WHERE v_to = ?1 ORDER BY rid",
    [ST_WRITTEN_RIDS] = "SELECT rid FROM rules WHERE v_from = ?1 ORDER BY rid",
    [ST_CLOSED_RIDS] = "SELECT rid FROM rules WHERE v_to = ?1 ORDER BY rid",
    [ST_VERSION_ADD] = "INSERT INTO versions (version, at, actor, comment, added, changed,"
                       " removed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_VERSIONS] = "SELECT version, at, actor, comment, added, changed, removed FROM versions"
                    " WHERE version < ?1 ORDER BY version DESC LIMIT ?2",
    /* One rule's changes, as the audit view has them, newest first: columns version, at,
     * actor, then the old row (NULLs for an "added"), then the new row (NULLs for a
     * "removed"). Only committed versions (joined with versions). */
    [ST_RULE_HISTORY] =
        "SELECT n.v_from, v.at, v.actor, " O_COLS ", " N_COLS
        "  FROM rules AS n JOIN versions AS v ON v.version = n.v_from"
        "  LEFT JOIN rules AS o ON o.v_to = n.v_from AND o.rid = n.rid"
        " WHERE n.rid = ?1 AND n.v_from < ?2"
        " UNION ALL "
        "SELECT o.v_to, v.at, v.actor, " O_COLS ", " NO_COLS
        "  FROM rules AS o JOIN versions AS v ON v.version = o.v_to"
        " WHERE o.rid = ?1 AND o.v_to < ?2"
        "   AND NOT EXISTS (SELECT 1 FROM rules AS n WHERE n.rid = o.rid AND n.v_from = o.v_to)"
        " ORDER BY 1 DESC LIMIT ?3",
    [ST_BULK_ANY] = "SELECT 1 FROM bulk_pending LIMIT 1",
    [ST_BULK_ADD] = "INSERT INTO bulk_pending (version, entries, body) VALUES (?1, ?2, ?3)",
    [ST_BULK_NEXT] = "SELECT chunk, version, body, entries FROM bulk_pending"
                     " ORDER BY chunk LIMIT 1",
    [ST_BULK_DONE] = "DELETE FROM bulk_pending WHERE chunk = ?1",
    [ST_VERSION_AT] = "SELECT at FROM versions WHERE version = ?1",
};

/* ---- errors ------------------------------------------------------------------------------ */

/* Records a message for the failure (in s->error, and appended to err when given) and
 * returns code. */
int dt_sql_fail(struct sq_store *s, struct dt_buf *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s->error.len = 0;
    if (n >= 0) {
        dt_buf_reserve(&s->error, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s->error.ptr, (size_t)n + 1, fmt, ap);
        va_end(ap);
        s->error.len = (size_t)n;
    }
    dt_buf_terminate(&s->error);
    if (err) {
        dt_buf_append(err, s->error.ptr, s->error.len);
        dt_buf_terminate(err);
    }
    return code;
}

/* A failure of SQLite itself: DT_EIO with the path and SQLite's message. */
int dt_sql_fail_sql(struct sq_store *s, struct dt_buf *err, const char *what)
{
    return dt_sql_fail(s, err, DT_EIO, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* Fails a write that has already changed something: the transaction can only be aborted. */
int dt_sql_broke(struct sq_store *s, int rc)
{
    if (rc < 0)
        s->broken = true;
    return rc;
}

/* ---- statements -------------------------------------------------------------------------- */

sqlite3_stmt *dt_sql_prepare(struct sq_store *s, const char *sql, struct dt_buf *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        dt_sql_fail_sql(s, err, "preparing a statement");
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* The cached statement id, prepared on first use; NULL (with the message set) on failure. */
sqlite3_stmt *dt_sql_stmt(struct sq_store *s, int id, struct dt_buf *err)
{
    if (!s->stmt[id])
        s->stmt[id] = dt_sql_prepare(s, statement_sql[id], err);
    return s->stmt[id];
}

/* Steps st: 1 for a row, 0 when done, DT_EIO (message set, st reset) on failure. */
int dt_sql_step(struct sq_store *s, sqlite3_stmt *st, struct dt_buf *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    dt_sql_fail_sql(s, err, "query failed");
    sqlite3_reset(st);
    return DT_EIO;
}

/* Runs a statement that returns no rows (or whose rows do not matter). */
int dt_sql_run(struct sq_store *s, sqlite3_stmt *st, struct dt_buf *err)
{
    int rc = dt_sql_step(s, st, err);
    sqlite3_reset(st);
    return rc < 0 ? rc : 0;
}

/* Runs cached statement id with up to two integer parameters. */
int dt_sql_run_id(struct sq_store *s, int id, int64_t a, int64_t b, struct dt_buf *err)
{
    sqlite3_stmt *st = dt_sql_stmt(s, id, err);
    if (!st)
        return DT_EIO;
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 1)
        sqlite3_bind_int64(st, 1, a);
    if (n >= 2)
        sqlite3_bind_int64(st, 2, b);
    return dt_sql_run(s, st, err);
}

/* The first column of the single row of cached statement id (bound to a, if it has a
 * parameter) in *out: 1 if there was a row, 0 if none, DT_EIO. */
int dt_sql_query_int(struct sq_store *s, int id, int64_t a, int64_t *out, struct dt_buf *err)
{
    sqlite3_stmt *st = dt_sql_stmt(s, id, err);
    if (!st)
        return DT_EIO;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, a);
    int rc = dt_sql_step(s, st, err);
    if (rc == 1)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc;
}

const char *dt_sql_column_text(sqlite3_stmt *st, int col)
{
    const char *p = (const char *)sqlite3_column_text(st, col);
    return p ? p : "";
}

/* Reads the rule row at columns col.. of st into r (strings owned by st until its next step);
 * false when the row is NULL (the missing side of a change). */
bool dt_sql_read_rule(sqlite3_stmt *st, int col, struct dt_store_rule *r)
{
    if (sqlite3_column_type(st, col + C_RID) == SQLITE_NULL)
        return false;
    r->id = sqlite3_column_int64(st, col + C_RID);
    r->source = dt_sql_column_text(st, col + C_SOURCE);
    r->target = dt_sql_column_text(st, col + C_TARGET);
    r->status = sqlite3_column_int(st, col + C_STATUS);
    r->options = dt_sql_column_text(st, col + C_OPTIONS);
    r->note = dt_sql_column_text(st, col + C_NOTE);
    r->created = sqlite3_column_int64(st, col + C_CREATED);
    r->updated = sqlite3_column_int64(st, col + C_UPDATED);
    r->since = sqlite3_column_int64(st, col + C_SINCE);
    r->version = sqlite3_column_int64(st, col + C_FROM);
    return true;
}

const char *dt_sql_or_empty(const char *p)
{
    return p ? p : "";
}

/* True when the row at column 0 of st says what r says: the fields that make a change. */
bool dt_sql_same_content(sqlite3_stmt *st, const struct dt_store_rule *r)
{
    return sqlite3_column_int(st, C_STATUS) == r->status &&
           strcmp(dt_sql_column_text(st, C_SOURCE), r->source) == 0 &&
           strcmp(dt_sql_column_text(st, C_TARGET), r->target) == 0 &&
           strcmp(dt_sql_column_text(st, C_OPTIONS), dt_sql_or_empty(r->options)) == 0 &&
           strcmp(dt_sql_column_text(st, C_NOTE), dt_sql_or_empty(r->note)) == 0;
}

/* ---- guards ------------------------------------------------------------------------------ */

int dt_sql_not_walking(struct sq_store *s, const char *fn, struct dt_buf *err)
{
    if (s->walking)
        return dt_sql_fail(s, err, DT_EINVAL, "%s called from a callback of the store", fn);
    return 0;
}

/* A write must be inside an open transaction that no earlier failure broke. */
int dt_sql_need_txn(struct sq_store *s, const char *fn, struct dt_buf *err)
{
    int rc = dt_sql_not_walking(s, fn, err);
    if (rc)
        return rc;
    if (!s->in_txn)
        return dt_sql_fail(s, err, DT_EINVAL, "%s: no transaction is open (dt_store_begin first)",
                           fn);
    if (s->broken || sqlite3_get_autocommit(s->db))
        return dt_sql_fail(s, err, DT_EIO,
                           "%s: an earlier error left the transaction incomplete: abort it", fn);
    if (s->bulk)
        return dt_sql_fail(s, err, DT_EINVAL,
                           "%s: the transaction is a bulk write's: commit it first", fn);
    s->wrote = true;
    return 0;
}

/* Before a read or a write of rules: the rows of committed bulk writes are written first. */
int dt_sql_settled(struct sq_store *s)
{
    if (!s->unsettled || s->in_txn || s->walking)
        return 0;
    return dt_sqlite_settle(&s->base, NULL);
}

/* The store does not parse rules (the caller has), but it keeps its rows well-formed. */
int dt_sql_check_rule(struct sq_store *s, const struct dt_store_rule *r, struct dt_buf *err)
{
    if (!r || !r->source || !r->source[0] || !r->target)
        return dt_sql_fail(s, err, DT_EINVAL, "a rule needs a source and a target");
    if (r->status != 301 && r->status != 302 && r->status != 303 && r->status != 307 &&
        r->status != 308)
        return dt_sql_fail(s, err, DT_EINVAL, "rule %s: status %d is not 301, 302, 303, 307 or 308",
                           r->source, r->status);
    const char *field[] = {r->source, r->target, dt_sql_or_empty(r->options),
                           dt_sql_or_empty(r->note)};
    static const char *const name[] = {"source", "target", "options", "note"};
    for (size_t i = 0; i < DT_ARRAY_LEN(field); i++)
        if (strlen(field[i]) > DT_STORE_TEXT_MAX)
            return dt_sql_fail(s, err, DT_ELIMIT, "a rule's %s is longer than %d bytes", name[i],
                               DT_STORE_TEXT_MAX);
    return 0;
}

/* ---- opening ----------------------------------------------------------------------------- */

int dt_sql_exec(struct sq_store *s, const char *sql, struct dt_buf *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int code = sqlite3_errcode(s->db);
    if (code == SQLITE_NOTADB)
        dt_sql_fail(s, err, DT_EIO, "%s: not a SQLite database", s->path);
    else
        dt_sql_fail(s, err, DT_EIO, "%s: %s", s->path, msg ? msg : sqlite3_errstr(code));
    sqlite3_free(msg);
    return DT_EIO;
}

/* Reads the schema version (user_version) into *have and refuses one this code does not
 * know. The first read of the file: one that is not a database fails here. */
static int schema_version(struct sq_store *s, int64_t *have, struct dt_buf *err)
{
    const int64_t newest = (int64_t)DT_ARRAY_LEN(migrations);
    sqlite3_stmt *st = dt_sql_prepare(s, "PRAGMA user_version", NULL);
    int rc = st ? dt_sql_step(s, st, NULL) : DT_EIO;
    *have = rc == 1 ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc < 0 && sqlite3_errcode(s->db) == SQLITE_NOTADB)
        return dt_sql_fail(s, err, DT_EIO, "%s: not a SQLite database", s->path);
    if (rc < 0)
        return dt_sql_fail_sql(s, err, "cannot read the schema version");
    if (*have < 0)
        return dt_sql_fail(s, err, DT_EINVAL, "%s: unknown schema version %lld", s->path,
                           (long long)*have);
    if (*have > newest)
        return dt_sql_fail(s, err, DT_EINVAL,
                           "%s: schema version %lld is newer than this detour knows (%lld): use a "
                           "newer detour or another database",
                           s->path, (long long)*have, (long long)newest);
    return 0;
}

/* Brings the schema to the newest version in one transaction, so that a failed migration
 * leaves the database as it was. */
static int migrate(struct sq_store *s, struct dt_buf *err)
{
    const int64_t newest = (int64_t)DT_ARRAY_LEN(migrations);
    int rc = dt_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    /* Again, inside the transaction: another process may have migrated meanwhile. */
    int64_t have;
    if ((rc = schema_version(s, &have, err)) != 0)
        goto fail;
    for (int64_t v = have; v < newest; v++) {
        if ((rc = dt_sql_exec(s, migrations[v], err)) != 0)
            goto fail;
    }
    if (have < newest) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)newest);
        if ((rc = dt_sql_exec(s, sql, err)) != 0)
            goto fail;
    }
    return dt_sql_exec(s, "COMMIT", err);
fail:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc ? rc : DT_EIO;
}

static pthread_once_t configured = PTHREAD_ONCE_INIT;

/* Before SQLite's first use: no memory statistics (they take a global mutex around every
 * allocation, a sixth of the time of a large write). Too late (SQLite already in use by
 * someone else in the process) is harmless. */
static void configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

struct dt_store *dt_sqlite_open(const char *path, struct dt_buf *err)
{
    if (!path || !path[0]) {
        if (err) {
            dt_buf_appendf(err, "no path for the store");
            dt_buf_terminate(err);
        }
        return NULL;
    }
    pthread_once(&configured, configure);
    struct sq_store *s = dt_xcalloc(1, sizeof(*s));
    s->base.backend = &dt_sqlite_backend;
    s->path = dt_xstrndup(path, strlen(path));
    /* NOMUTEX: a connection is only ever used by one thread at a time (the admin thread's,
     * the merge thread's), so SQLite need not lock around every call. */
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (s->db)
            dt_sql_fail(s, err, DT_EIO, "%s: cannot open: %s", path, sqlite3_errmsg(s->db));
        else
            dt_sql_fail(s, err, DT_EIO, "%s: cannot open: %s", path, sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* A file that is not a database, or the database of a newer detour, is refused before
     * anything is written to it. */
    int64_t have;
    if (schema_version(s, &have, err) != 0)
        goto fail;
    /* WAL with synchronous=FULL syncs the WAL on every commit, which is what makes
     * dt_store_commit durable. */
    sqlite3_stmt *st = dt_sql_prepare(s, "PRAGMA journal_mode = WAL", NULL);
    if (!st) {
        dt_sql_fail_sql(s, err, "cannot set the WAL journal");
        goto fail;
    }
    rc = dt_sql_step(s, st, NULL);
    bool wal = rc == 1 && (strcmp(dt_sql_column_text(st, 0), "wal") == 0 ||
                           strcmp(dt_sql_column_text(st, 0), "memory") == 0);
    char mode[16];
    snprintf(mode, sizeof(mode), "%s", rc == 1 ? dt_sql_column_text(st, 0) : "");
    sqlite3_finalize(st);
    if (rc < 0) {
        dt_sql_fail_sql(s, err, "cannot set the WAL journal");
        goto fail;
    }
    if (!wal) {
        dt_sql_fail(s, err, DT_EIO, "%s: the WAL journal is not available (journal mode '%s')",
                    path, mode);
        goto fail;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -%d;"
             " PRAGMA journal_size_limit = %d; PRAGMA temp_store = MEMORY;",
             CACHE_KIB, WAL_KEEP_BYTES);
    if (dt_sql_exec(s, pragmas, err) != 0 || migrate(s, err) != 0)
        goto fail;
    /* A bulk write committed before a crash (or a stop) gets its rows now. */
    int64_t one = 0;
    if ((rc = dt_sql_query_int(s, ST_BULK_ANY, 0, &one, err)) < 0)
        goto fail;
    s->unsettled = rc == 1;
    if (s->unsettled && dt_sqlite_settle(&s->base, err) != 0)
        goto fail;
    return &s->base;
fail:
    dt_sqlite_close(&s->base);
    return NULL;
}

void dt_sql_end_txn(struct sq_store *s)
{
    s->in_txn = false;
    s->broken = false;
    s->wrote = false;
    s->bulk = false;
    free(s->actor);
    free(s->comment);
    s->actor = s->comment = NULL;
}

void dt_sqlite_abort(struct dt_store *store)
{
    struct sq_store *s = sq(store);
    if (!s || !s->in_txn || s->walking)
        return;
    if (!sqlite3_get_autocommit(s->db) && dt_sql_run_id(s, ST_ROLLBACK, 0, 0, NULL) != 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    dt_sql_end_txn(s);
}

void dt_sqlite_close(struct dt_store *store)
{
    struct sq_store *s = sq(store);
    if (!s)
        return;
    s->walking = 0;
    dt_sqlite_abort(&s->base);
    for (int i = 0; i < ST_N; i++)
        sqlite3_finalize(s->stmt[i]);
    for (int i = 0; i < F_N; i++) {
        sqlite3_finalize(s->page[i]);
        sqlite3_finalize(s->total[i]);
    }
    sqlite3_close(s->db);
    dt_buf_dispose(&s->host);
    dt_buf_dispose(&s->pattern);
    dt_buf_dispose(&s->copy);
    dt_buf_dispose(&s->error);
    free(s->path);
    free(s);
}

const char *dt_sqlite_error(const struct dt_store *store)
{
    const struct sq_store *s = sq_c(store);
    return s->error.ptr ? s->error.ptr : "";
}

int64_t dt_sqlite_version(struct dt_store *store)
{
    struct sq_store *s = sq(store);
    int64_t v = 0;
    int rc = dt_sql_query_int(s, ST_MAX_VERSION, 0, &v, NULL);
    return rc < 0 ? rc : v;
}

/* SQLite tells no one of a commit: the newest version is read again every WAIT_POLL_MS (a
 * read of the versions table's last row; WAL readers do not block the writer). */
#define WAIT_POLL_MS 20

int dt_sqlite_wait(struct dt_store *store, int64_t after, int timeout_ms, int64_t *version)
{
    struct sq_store *s = sq(store);
    if (s->in_txn)
        return dt_sql_fail(s, NULL, DT_EINVAL, "dt_store_wait inside a transaction");
    uint64_t deadline = dt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t v = dt_sqlite_version(store);
        if (v < 0)
            return (int)v;
        if (v > after) {
            *version = v;
            return 1;
        }
        uint64_t now = dt_now_ms();
        if (now >= deadline)
            return 0;
        uint64_t ms = deadline - now < WAIT_POLL_MS ? deadline - now : WAIT_POLL_MS;
        struct timespec ts = {0, (long)ms * 1000000};
        nanosleep(&ts, NULL);
    }
}

int64_t dt_sqlite_count(struct dt_store *store)
{
    struct sq_store *s = sq(store);
    int64_t n = 0;
    int rc = dt_sql_settled(s);
    if (rc == 0)
        rc = dt_sql_query_int(s, ST_COUNT, 0, &n, NULL);
    return rc < 0 ? rc : n;
}

/* ---- reads that span several statements ------------------------------------------------- */

/* Outside a write transaction, a read of several statements runs in a read transaction so
 * that it sees one version throughout. */
int dt_sql_read_begin(struct sq_store *s, bool *started)
{
    *started = false;
    if (s->in_txn || !sqlite3_get_autocommit(s->db))
        return 0;
    int rc = dt_sql_run_id(s, ST_BEGIN_READ, 0, 0, NULL);
    *started = rc == 0;
    return rc;
}

void dt_sql_read_end(struct sq_store *s, bool started)
{
    if (started && !sqlite3_get_autocommit(s->db) && dt_sql_run_id(s, ST_COMMIT, 0, 0, NULL) != 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Calls fn with the rules of the rows of st (bound, not yet stepped), then resets st. */
int dt_sql_each_row(struct sq_store *s, sqlite3_stmt *st, dt_store_rule_fn fn, void *ctx)
{
    int rc;
    while ((rc = dt_sql_step(s, st, NULL)) == 1) {
        struct dt_store_rule r;
        dt_sql_read_rule(st, 0, &r);
        s->walking++;
        rc = fn(ctx, &r);
        s->walking--;
        if (rc)
            break;
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- the backend ------------------------------------------------------------------------- */

const struct dt_store_backend dt_sqlite_backend = {
    .name = "sqlite",
    .close = dt_sqlite_close,
    .error = dt_sqlite_error,
    .version = dt_sqlite_version,
    .count = dt_sqlite_count,
    .wait = dt_sqlite_wait,
    .begin = dt_sqlite_begin,
    .commit = dt_sqlite_commit,
    .abort = dt_sqlite_abort,
    .add = dt_sqlite_add,
    .replace = dt_sqlite_replace,
    .put = dt_sqlite_put,
    .remove = dt_sqlite_remove,
    .rollback = dt_sqlite_rollback,
    .pending = dt_sqlite_pending,
    .bulk = dt_sqlite_bulk,
    .settle = dt_sqlite_settle,
    .unsettled = dt_sqlite_unsettled,
    .get = dt_sqlite_get,
    .find = dt_sqlite_find,
    .each = dt_sqlite_each,
    .list = dt_sqlite_list,
    .versions = dt_sqlite_versions,
    .history = dt_sqlite_history,
};
