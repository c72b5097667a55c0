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
#define WAL_CHECKPOINT_PAGES                                                                       \
    1000 /* SQLite's default: a commit past this many WAL pages checkpoints */

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

static sqlite3_stmt *prepare(struct sq_store *s, const char *sql, struct dt_buf *err)
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
        s->stmt[id] = prepare(s, statement_sql[id], err);
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
static bool same_content(sqlite3_stmt *st, const struct dt_store_rule *r)
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
static int settled(struct sq_store *s)
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
    sqlite3_stmt *st = prepare(s, "PRAGMA user_version", NULL);
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
    sqlite3_stmt *st = prepare(s, "PRAGMA journal_mode = WAL", NULL);
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

static void end_txn(struct sq_store *s)
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
    end_txn(s);
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
    int rc = settled(s);
    if (rc == 0)
        rc = dt_sql_query_int(s, ST_COUNT, 0, &n, NULL);
    return rc < 0 ? rc : n;
}

/* ---- reads that span several statements ------------------------------------------------- */

/* Outside a write transaction, a read of several statements runs in a read transaction so
 * that it sees one version throughout. */
static int read_begin(struct sq_store *s, bool *started)
{
    *started = false;
    if (s->in_txn || !sqlite3_get_autocommit(s->db))
        return 0;
    int rc = dt_sql_run_id(s, ST_BEGIN_READ, 0, 0, NULL);
    *started = rc == 0;
    return rc;
}

static void read_end(struct sq_store *s, bool started)
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
        if (rc == 1 && same_content(st, r)) {
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
    end_txn(s);
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

int dt_sqlite_replace(struct dt_store *store, int64_t id, const struct dt_store_rule *r,
                      struct dt_buf *err)
{
    struct sq_store *s = sq(store);
    int rc = dt_sql_need_txn(s, "dt_store_replace", err);
    if (rc || (rc = dt_sql_check_rule(s, r, err)) != 0)
        return rc;
    sqlite3_stmt *st = dt_sql_stmt(s, ST_GET, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, id);
    if ((rc = dt_sql_step(s, st, err)) <= 0) {
        sqlite3_reset(st);
        return rc < 0 ? rc : dt_sql_fail(s, err, DT_ENOENT, "no rule %lld", (long long)id);
    }
    if (same_content(st, r)) {
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
    if (same_content(st, &nr)) {
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
    sqlite3_stmt *st = dt_sql_stmt(s, ST_GET, err);
    if (!st)
        return DT_EIO;
    sqlite3_bind_int64(st, 1, id);
    if ((rc = dt_sql_step(s, st, err)) <= 0) {
        sqlite3_reset(st);
        return rc < 0 ? rc : dt_sql_fail(s, err, DT_ENOENT, "no rule %lld", (long long)id);
    }
    int64_t row = sqlite3_column_int64(st, C_ROW), v_from = sqlite3_column_int64(st, C_FROM);
    sqlite3_reset(st);
    return dt_sql_broke(s, dt_sql_close_row(s, row, v_from, err));
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Calls fn with the row of cached statement id (bound to text or to n); DT_ENOENT if none. */
static int get_one(struct sq_store *s, int id, const char *text, int64_t n, dt_store_rule_fn fn,
                   void *ctx)
{
    int rc = settled(s);
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
    if (rc || (rc = settled(s)) != 0)
        return rc;
    bool started;
    if ((rc = read_begin(s, &started)) != 0)
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
    read_end(s, started);
    return rc;
}

/* The cached statement of dt_store_list for a set of filters: a page (total false) or the
 * count of all matches. Each set of filters has its own SQL so that the planner sees which
 * apply (the host filter has an index). */
static sqlite3_stmt *list_stmt(struct sq_store *s, unsigned filters, bool total)
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
    *slot = prepare(s, sql.ptr, NULL);
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
    if (rc || (rc = settled(s)) != 0)
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
    if ((rc = read_begin(s, &started)) != 0)
        return rc;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        bool count = pass == 1;
        if (count && !total)
            break;
        sqlite3_stmt *st = list_stmt(s, filters, count);
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
    read_end(s, started);
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
    if (rc || (rc = settled(s)) != 0)
        return rc;
    if (id < 0)
        return dt_sql_fail(s, NULL, DT_EINVAL, "dt_store_history: rule id %lld", (long long)id);
    if (before <= 0)
        before = INT64_MAX;
    size_t left = limit ? limit : SIZE_MAX;
    bool started;
    if ((rc = read_begin(s, &started)) != 0)
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
    read_end(s, started);
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
