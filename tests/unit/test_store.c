/* Unit tests for src/store's SQLite backend: the store's contract (store_contract.h, every
 * backend's), then what is SQLite's own: the connection's pragmas and query plans, two
 * writers on one file, a lost transaction, durability across a kill (rows and bulk records),
 * damaged bulk records, migrations, and refusal of foreign files. Includes the .c to reach
 * the connection. */
#include "store/sqlite.c"
#include "store_contract.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[200];

/* A path in the test's directory (one of four static buffers). */
static const char *in_dir(const char *name)
{
    static char paths[4][300];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(in_dir(e->d_name));
    closedir(d);
    rmdir(dir);
}

/* A PRAGMA's value on the store's own connection, as text. */
static const char *pragma(struct dt_store *s, const char *name)
{
    static char out[64];
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA %s", name);
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(sq(s)->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

/* The rows of a query on the store's connection as "a|b|c; ..." (the fixture's sql). */
static const char *sqlite_rows(struct dt_store *s, const char *sql)
{
    static struct dt_buf out;
    out.len = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(sq(s)->db, sql, -1, &st, NULL) != SQLITE_OK) {
        dt_buf_appendf(&out, "SQL ERROR %s", sqlite3_errmsg(sq(s)->db));
    } else {
        int rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (rows++)
                dt_buf_append(&out, "; ", 2);
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const char *t = (const char *)sqlite3_column_text(st, i);
                dt_buf_appendf(&out, "%s%s", i ? "|" : "", t ? t : "NULL");
            }
        }
    }
    sqlite3_finalize(st);
    dt_buf_terminate(&out);
    return out.ptr;
}

/* True when the query plan of sql mentions what; prints the plan if that is unexpected. */
static bool plan_has(struct dt_store *s, const char *sql, const char *what, bool expected)
{
    char q[4096];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    const char *plan = sqlite_rows(s, q);
    bool found = strstr(plan, what) != NULL;
    if (found != expected)
        printf("# plan of %s:\n#   %s\n", sql, plan);
    return found;
}

static bool plan_uses(struct dt_store *s, const char *sql, const char *what)
{
    return plan_has(s, sql, what, true);
}

static bool plan_lacks(struct dt_store *s, const char *sql, const char *what)
{
    return !plan_has(s, sql, what, false);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_new_store(void)
{
    struct dt_store *s = open_store("new.db");
    ok(s != NULL, "open creates a new store");
    if (!s)
        return;
    ok(access(in_dir("new.db"), F_OK) == 0, "the file exists");
    is_str(dt_store_backend_name(s), "sqlite", "issue 10: a file path opens the SQLite backend");
    struct dt_buf perr;
    dt_buf_init(&perr);
    ok(dt_store_open("postgresql://db.example/detour", host_of, &perr) == NULL && perr.ptr &&
           strstr(perr.ptr, "postgresql://db.example/detour: this detour has no PostgreSQL"),
       "a postgresql:// store is refused with a message naming it (no backend yet)");
    dt_buf_dispose(&perr);
    is_int(dt_store_version(s), 0, "a new store is at version 0");
    is_int(dt_store_count(s), 0, "with no rules");
    is_str(rules_at(s, 0), "", "each(0): nothing");
    is_str(rules_at(s, 1), "ERR -5", "each(1): DT_ENOENT, version 1 does not exist");
    is_str(rules_at(s, -1), "ERR -5", "each(-1): DT_ENOENT");
    is_str(versions(s, 0, 0), "", "no versions");
    is_str(history(s, 0, 0, 0), "", "no history");
    is_str(pragma(s, "journal_mode"), "wal", "journal_mode=WAL");
    is_str(pragma(s, "synchronous"), "2", "synchronous=FULL");
    is_str(pragma(s, "foreign_keys"), "1", "foreign_keys=ON");
    ok(strtol(pragma(s, "busy_timeout"), NULL, 10) > 0, "a busy timeout");
    is_str(pragma(s, "user_version"), "2", "schema version 2 (user_version)");
    is_str(sql_rows(s, "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
                       " ORDER BY type, name"),
           "index|rules_closed; index|rules_current_host; index|rules_current_rid; "
           "index|rules_current_source; index|rules_rid; index|rules_written; "
           "table|bulk_pending; table|meta; table|rules; table|versions; view|audit",
           "schema: tables, indexes and the audit view");
    is_str(sql_rows(s, "SELECT key, value FROM meta"), "next_rid|1", "meta: next_rid");
    /* The planner uses the indexes meant for each read. */
    ok(plan_uses(s, statement_sql[ST_FIND], "INDEX rules_current_source (source=?)"),
       "find uses the current-source index");
    ok(plan_uses(s, statement_sql[ST_GET], "INDEX rules_current_rid (rid=?)"),
       "get uses the current-rid index");
    ok(plan_uses(s, statement_sql[ST_CURRENT], "INDEX rules_current_rid"),
       "the newest rules come in order of id from the current-rid index");
    ok(plan_uses(s, statement_sql[ST_AT], "INDEX rules_rid"),
       "a version's rules come in order of id from rules_rid");
    ok(plan_lacks(s, statement_sql[ST_AT], "TEMP B-TREE"), "without a sort");
    ok(plan_uses(s, statement_sql[ST_WRITTEN], "INDEX rules_written (v_from=?)"),
       "a version's written rows come from rules_written");
    ok(plan_uses(s, statement_sql[ST_CLOSED], "INDEX rules_closed (v_to=?)"),
       "a version's closed rows come from rules_closed");
    ok(plan_uses(s, statement_sql[ST_PREV], "INDEX rules_closed (v_to=? AND rid=?)"),
       "the row a transaction closed, from rules_closed");
    ok(plan_uses(s, statement_sql[ST_RULE_HISTORY], "INDEX rules_rid (rid=?)"),
       "a rule's history comes from rules_rid");
    sqlite3_stmt *host_page = dt_sql_list_stmt(sq(s), F_HOST, false);
    ok(host_page &&
           plan_uses(s, sqlite3_sql(host_page), "INDEX rules_current_host (host=? AND rid>?)"),
       "the host filter uses rules_current_host");
    ok(host_page && plan_lacks(s, sqlite3_sql(host_page), "TEMP B-TREE"), "without a sort");
    dt_store_close(s);

    s = open_store("new.db");
    ok(s != NULL, "a store opens again");
    is_str(pragma(s, "user_version"), "2", "and is not migrated twice");
    dt_store_close(s);
    dt_store_close(NULL);
}

/* Two stores on one file: one writer at a time, readers see what is committed. */
static void test_two_writers(void)
{
    struct dt_store *s = open_store("two.db"), *t = open_store("two.db");
    if (!ok(s && t, "open one file twice")) {
        dt_store_close(s);
        dt_store_close(t);
        return;
    }
    sqlite3_busy_timeout(sq(t)->db, 100); /* not the 5 s a writer waits */
    begin(s, 1);
    add(s, "/a", "/b", 307);
    err.len = 0;
    is_int(dt_store_begin(t, 2, "other", "", &err), DT_EIO,
           "a second writer waits, then fails with DT_EIO");
    ok(strstr(errtext(), "locked") != NULL, "the message says the database is locked");
    printf("# %s\n", errtext());
    is_int(dt_store_count(t), 0, "the other store does not see uncommitted rules");
    is_int(commit(s), 1, "the first writer commits");
    is_int(dt_store_count(t), 1, "now the other store sees them");
    is_int(dt_store_version(t), 1, "and the version");
    begin(t, 3);
    is_int(add(t, "/c", "/d", 307), 2, "the second writer goes on from the committed ids");
    is_int(commit(t), 2, "and commits version 2");
    is_int(dt_store_version(s), 2, "which the first store sees");
    dt_store_close(s);
    dt_store_close(t);
}

/* A transaction that SQLite dropped under the store (as it does after some I/O errors) can
 * only be aborted. */
static void test_lost_transaction(void)
{
    struct dt_store *s = open_store("lost.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 1);
    add(s, "/a", "/b", 307);
    is_int(sqlite3_exec(sq(s)->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK,
           "the transaction is rolled back behind the store");
    struct dt_store_rule r = rule("/c", "/d", 307);
    err.len = 0;
    is_int(dt_store_add(s, &r, NULL, &err), DT_EIO, "a write then fails with DT_EIO");
    ok(strstr(errtext(), "abort") != NULL, "saying to abort");
    int64_t v = -1;
    err.len = 0;
    is_int(dt_store_commit(s, &v, &err), DT_EIO, "commit fails with DT_EIO");
    ok(strstr(errtext(), "nothing was committed") != NULL, "saying nothing was committed");
    is_int(v, -1, "and sets no version");
    is_str(pending(s), "ERR -2", "the transaction is over");
    is_int(dt_store_version(s), 0, "nothing was committed");
    begin(s, 2);
    is_int(add(s, "/a", "/b", 307), 1, "a new transaction works");
    is_int(commit(s), 1, "and commits");
    dt_store_close(s);
}

/* Data committed is there after the writer dies without closing, and data not committed is
 * not. */
static void test_kill(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct dt_buf e;
        dt_buf_init(&e);
        struct dt_store *s = dt_store_open(in_dir("kill.db"), host_of, &e);
        if (!s || dt_store_begin(s, 10, "child", "", &e) != 0)
            _exit(2);
        char src[32];
        for (int i = 0; i < 1000; i++) {
            snprintf(src, sizeof(src), "/k%d", i);
            struct dt_store_rule r = rule(src, "/t", 307);
            if (dt_store_add(s, &r, NULL, &e) != 0)
                _exit(3);
        }
        int64_t v;
        if (dt_store_commit(s, &v, &e) != 0 || dt_store_begin(s, 20, "child", "", &e) != 0)
            _exit(4);
        struct dt_store_rule r = rule("/uncommitted", "/t", 307);
        if (dt_store_add(s, &r, NULL, &e) != 0 || dt_store_remove(s, 1, &e) != 0)
            _exit(5);
        raise(SIGKILL);
        _exit(6);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed after commit");
    struct dt_store *s = open_store("kill.db");
    if (!ok(s != NULL, "reopen after the kill"))
        return;
    is_int(dt_store_version(s), 1, "the committed version is there");
    is_int(dt_store_count(s), 1000, "with its 1000 rules");
    is_str(get_rule(s, 1), "1 /k0>/t 307", "rule 1 was not removed: that was not committed");
    is_int(dt_store_find(s, "/uncommitted", see_rule, &seen), DT_ENOENT,
           "the uncommitted rule is not there");
    begin(s, 30);
    is_int(add(s, "/after", "/t", 307), 1001, "ids go on from the committed ones");
    is_int(commit(s), 2, "the store goes on");
    dt_store_close(s);
}

static void test_refused(void)
{
    /* A database written by a newer detour. */
    struct dt_store *s = open_store("newer.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 1);
    add(s, "/a", "/b", 307);
    commit(s);
    is_str(sql_rows(s, "PRAGMA user_version = 99"), "", "pretend a newer schema");
    dt_store_close(s);
    err.len = 0;
    s = dt_store_open(in_dir("newer.db"), host_of, &err);
    ok(s == NULL, "a newer schema version is refused");
    ok(strstr(errtext(), in_dir("newer.db")) != NULL, "the message names the path");
    ok(strstr(errtext(), "99") != NULL, "and the version");
    printf("# %s\n", errtext());
    dt_store_close(s);

    /* A database of a newer detour that uses another journal: refused untouched. */
    sqlite3 *raw = NULL;
    ok(sqlite3_open(in_dir("future.db"), &raw) == SQLITE_OK &&
           sqlite3_exec(raw, "CREATE TABLE future (x); PRAGMA user_version = 3;", NULL, NULL,
                        NULL) == SQLITE_OK,
       "a database at schema version 3 in rollback-journal mode");
    sqlite3_close(raw);
    err.len = 0;
    s = dt_store_open(in_dir("future.db"), host_of, &err);
    ok(s == NULL, "schema version 3 is refused");
    ok(strstr(errtext(), "schema version 3 is newer") != NULL, "saying why");
    dt_store_close(s);
    unsigned char header[20] = {0};
    int hfd = open(in_dir("future.db"), O_RDONLY);
    ok(hfd >= 0 && read(hfd, header, sizeof(header)) == (ssize_t)sizeof(header), "read its header");
    close(hfd);
    is_int(header[18], 1, "its journal was not switched to WAL");
    ok(access(in_dir("future.db-wal"), F_OK) != 0, "no WAL file was made");

    /* A file that is not a database. */
    const char *path = in_dir("text.db");
    char text[4096];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "not a database\n"[i % 15];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ok(fd >= 0 && write(fd, text, sizeof(text)) == (ssize_t)sizeof(text), "write a text file");
    close(fd);
    err.len = 0;
    s = dt_store_open(path, host_of, &err);
    ok(s == NULL, "a file that is not a database is refused");
    ok(strstr(errtext(), path) != NULL, "the message names the path");
    ok(strstr(errtext(), "not a SQLite database") != NULL, "and says what is wrong");
    printf("# %s\n", errtext());
    dt_store_close(s);
    char back[4096 + 1];
    fd = open(path, O_RDONLY);
    ok(fd >= 0 && read(fd, back, sizeof(back)) == (ssize_t)sizeof(text) &&
           memcmp(back, text, sizeof(text)) == 0,
       "the file is left as it was");
    close(fd);
    ok(access(in_dir("text.db-wal"), F_OK) != 0, "no WAL file is made for it");

    /* An empty file is an empty database: it gets the schema. */
    fd = open(in_dir("empty.db"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    s = open_store("empty.db");
    ok(s != NULL, "an empty file is taken as a new store");
    if (s)
        is_str(pragma(s, "user_version"), "2", "and migrated");
    dt_store_close(s);

    err.len = 0;
    ok(dt_store_open("", host_of, &err) == NULL, "an empty path is refused");
    ok(err.len > 0, "with a message");

    /* A path that cannot be created. */
    err.len = 0;
    s = dt_store_open(in_dir("no/such/dir.db"), host_of, &err);
    ok(s == NULL, "a path in a missing directory fails");
    ok(strstr(errtext(), "no/such/dir.db") != NULL, "the message names the path");
    dt_store_close(s);
}

/* A damaged bulk record (cut short, or a byte changed) is refused with a message, never read
 * past its end (ASan checks), and the store will not open with it. */
static void test_bulk_damaged(void)
{
    int refused = 0, tries = 0, whole = 0, reopen_refused = 0, shorts = 0, short_refused = 0;
    for (int cut = 0; cut < 120; cut += 3) {
        char name[64];
        snprintf(name, sizeof(name), "damaged%d.db", cut);
        struct dt_store *s = open_store(name);
        if (!s)
            return;
        begin(s, 10);
        struct dt_store_rule in[3] = {rule("/d1", "https://x.example/1", 307),
                                      rule("/d2", "https://x.example/22", 301),
                                      rule("/d3", "/t", 308)};
        in[1].options = "query=drop";
        in[2].note = "n";
        struct dt_store_bulk out;
        if (dt_store_bulk(s, in, 3, true, &out, &err) == 0)
            dt_store_bulk_dispose(&out);
        commit(s);
        /* cut short at cut bytes, or (odd steps) one byte made 0xff there */
        int len = atoi(sql_rows(s, "SELECT length(body) FROM bulk_pending"));
        bool cut_short = cut % 2 == 0 && cut < len;
        char sql[200];
        if (cut % 2)
            snprintf(sql, sizeof(sql),
                     "UPDATE bulk_pending SET body = substr(body, 1, %d) || "
                     "x'ff' || substr(body, %d)",
                     cut, cut + 2);
        else
            snprintf(sql, sizeof(sql), "UPDATE bulk_pending SET body = substr(body, 1, %d)", cut);
        sql_rows(s, sql);
        shorts += cut_short;
        err.len = 0;
        int rc = dt_store_settle(s, &err);
        tries++;
        if (rc == DT_EIO && strstr(errtext(), "damaged")) {
            refused++;
            short_refused += cut_short;
            bool still = dt_store_unsettled(s) && dt_store_count(s) == DT_EIO;
            dt_store_close(s);
            err.len = 0;
            struct dt_store *again = dt_store_open(in_dir(name), host_of, &err);
            reopen_refused += still && !again && strstr(errtext(), "damaged") != NULL;
            dt_store_close(again);
            continue;
        }
        whole += rc == 0; /* the cut fell past the end, or the changed byte was in a text */
        dt_store_close(s);
    }
    ok(refused > 10, "bulk: damaged records are refused");
    printf("# %d of %d damaged records refused, the others read whole\n", refused, tries);
    is_int(short_refused, shorts, "bulk: every record cut short is refused");
    ok(shorts >= 10, "bulk: (cut at 10 places or more)");
    is_int(refused + whole, tries, "bulk: every other one read whole");
    is_int(reopen_refused, refused, "bulk: a damaged record stops reads and the next open");
}

/* A store of the first schema (before bulk writes) is migrated, its rules kept. */
static void test_migrate_v1(void)
{
    sqlite3 *raw = NULL;
    ok(sqlite3_open(in_dir("v1.db"), &raw) == SQLITE_OK &&
           sqlite3_exec(raw, migrations[0], NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_exec(raw,
                        "INSERT INTO versions VALUES (1, 5, 'api', '', 1, 0, 0);"
                        "INSERT INTO rules (rid, source, target, status, options, note, created,"
                        " updated, since, v_from) VALUES (1, '/old', '/new', 307, '', '', 5, 5,"
                        " 5, 1);"
                        "UPDATE meta SET value = 2 WHERE key = 'next_rid';"
                        "PRAGMA user_version = 1;",
                        NULL, NULL, NULL) == SQLITE_OK,
       "a store of schema version 1 with a rule");
    sqlite3_close(raw);
    struct dt_store *s = open_store("v1.db");
    if (!ok(s != NULL, "opened"))
        return;
    is_str(pragma(s, "user_version"), "2", "migrated to version 2");
    is_str(rules_at(s, 0), "1 /old>/new 307", "its rule kept");
    is_str(sql_rows(s, "SELECT count(*) FROM bulk_pending"), "0", "with the bulk table");
    begin(s, 10);
    struct dt_store_rule in[1] = {rule("/b", "/c", 308)};
    struct dt_store_bulk out;
    is_int(dt_store_bulk(s, in, 1, false, &out, &err), 0, "a bulk write on it");
    dt_store_bulk_dispose(&out);
    is_int(commit(s), 2, "version 2");
    is_str(rules_at(s, 0), "1 /old>/new 307, 2 /b>/c 308", "both rules");
    dt_store_close(s);
}

/* A bulk write acknowledged, then the process killed before its rows are written: the next
 * open writes them. */
static void test_bulk_kill(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct dt_buf e;
        dt_buf_init(&e);
        struct dt_store *s = dt_store_open(in_dir("bulk_kill.db"), host_of, &e);
        if (!s || dt_store_begin(s, 10, "child", "", &e) != 0)
            _exit(2);
        static char src[3000][16];
        struct dt_store_rule in[3000];
        for (int i = 0; i < 3000; i++) {
            snprintf(src[i], sizeof(src[i]), "/k%d", i);
            in[i] = rule(src[i], "/t", i % 2 ? 307 : 301);
        }
        struct dt_store_bulk out;
        int64_t v;
        if (dt_store_bulk(s, in, 3000, false, &out, &e) != 0 || dt_store_commit(s, &v, &e) != 0)
            _exit(3);
        raise(SIGKILL);
        _exit(6);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
       "bulk: the writer was killed after the commit");
    struct dt_store *s = open_store("bulk_kill.db");
    if (!ok(s != NULL, "bulk: reopen after the kill"))
        return;
    ok(!dt_store_unsettled(s), "bulk: the open wrote the rows");
    is_str(sql_rows(s, "SELECT count(*), min(v_from), max(v_from) FROM rules"), "3000|1|1",
           "bulk: all 3000 rows of version 1");
    is_str(get_rule(s, 2), "2 /k1>/t 307", "bulk: rule 2");
    is_int(seen.last.since, 10, "bulk: its since");
    is_str(sql_rows(s, "SELECT count(*) FROM bulk_pending"), "0", "bulk: the record is gone");
    dt_store_close(s);
}

/* The SQLite backend: a store is a file of the test's directory. */
static struct dt_store *sqlite_open(const char *name, dt_store_host_fn host, struct dt_buf *e)
{
    return dt_store_open(in_dir(name), host, e);
}

static const struct store_fixture sqlite_fixture = {.open = sqlite_open, .sql = sqlite_rows};

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/detour-store-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    dt_buf_init(&err);
    store_contract(&sqlite_fixture);
    test_new_store();
    test_bulk_kill();
    test_migrate_v1();
    test_bulk_damaged();
    test_two_writers();
    test_lost_transaction();
    test_kill();
    test_refused();
    remove_dir();
    dt_buf_dispose(&err);
    dt_buf_dispose(&seen.text);
    dt_buf_dispose(&changes.text);
    dt_buf_dispose(&versions_text);
    return done_testing();
}
