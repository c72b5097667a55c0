/* store/backup.c: a consistent copy of a SQLite store that a server may be writing to, by
 * SQLite's online backup, written beside its destination and renamed over it whole. */
#include "store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKUP_BUSY_MS 5000 /* how long the copy waits for a lock on the store */
#define BACKUP_STEP_PAGES 1024

static int fail(struct dt_buf *err, int code, const char *fmt, ...) DT_PRINTF(3, 4);

static int fail(struct dt_buf *err, int code, const char *fmt, ...)
{
    if (err) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        dt_buf_appendf(err, "%s", msg);
        dt_buf_terminate(err);
    }
    return code;
}

/* Makes a rename into dest's directory durable: the directory's entry is synced too. */
static int sync_dir_of(const char *dest)
{
    char *copy = dt_xstrndup(dest, strlen(dest));
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Refuses a destination that is the store itself (the rename would put the copy in place of
 * the live file under the server), one that is not a regular file, and one beside which a
 * -wal or -shm file lies: a database in use there, or one not closed cleanly, whose old
 * journal SQLite would apply to the new copy when it is next opened. */
static int check_dest(const char *path, const struct stat *src, const char *dest,
                      struct dt_buf *err)
{
    struct stat st;
    if (stat(dest, &st) == 0) {
        if (st.st_dev == src->st_dev && st.st_ino == src->st_ino)
            return fail(err, DT_EINVAL, "%s is the store itself (%s): back it up to another file",
                        dest, path);
        if (!S_ISREG(st.st_mode))
            return fail(err, DT_EINVAL, "%s exists and is not a regular file", dest);
    }
    static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < DT_ARRAY_LEN(suffixes); i++) {
        char side[4200];
        if ((size_t)snprintf(side, sizeof(side), "%s%s", dest, suffixes[i]) >= sizeof(side))
            return fail(err, DT_ELIMIT, "%s: the path is too long", dest);
        if (access(side, F_OK) == 0)
            return fail(err, DT_EEXIST,
                        "%s exists: %s is a database in use (a server running on it?) or one "
                        "not closed cleanly; back up to another file, or remove it first",
                        side, dest);
    }
    return 0;
}

/* Copies src (in its read transaction) into the database file at tmp, page after page. */
static int copy_pages(sqlite3 *src, const char *tmp, const char *dest, struct dt_buf *err)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = fail(err, DT_EIO, "%s: cannot write: %s", dest,
                  dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    /* The file is new and renamed into place only once whole and synced: a journal of its
     * own would protect nothing. */
    if (sqlite3_exec(dst, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF", NULL, NULL,
                     NULL) != SQLITE_OK) {
        rc = fail(err, DT_EIO, "%s: %s", dest, sqlite3_errmsg(dst));
        goto out;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        rc = fail(err, DT_EIO, "%s: cannot start the copy: %s", dest, sqlite3_errmsg(dst));
        goto out;
    }
    int step;
    unsigned busy_ms = 0;
    while ((step = sqlite3_backup_step(b, BACKUP_STEP_PAGES)) != SQLITE_DONE) {
        if ((step == SQLITE_BUSY || step == SQLITE_LOCKED) && busy_ms < BACKUP_BUSY_MS) {
            sqlite3_sleep(50);
            busy_ms += 50;
            continue;
        }
        if (step != SQLITE_OK)
            break;
    }
    sqlite3_backup_finish(b);
    if (step != SQLITE_DONE) {
        rc = fail(err, DT_EIO, "%s: the copy failed: %s", dest, sqlite3_errstr(step));
        goto out;
    }
    rc = 0;
out:
    if (dst && sqlite3_close(dst) != SQLITE_OK && rc == 0)
        rc = fail(err, DT_EIO, "%s: cannot close the copy", dest);
    return rc;
}

int dt_sqlite_backup(const char *path, const char *dest, int64_t *version, struct dt_buf *err)
{
    if (!path || !path[0] || !strcmp(path, ":memory:"))
        return fail(err, DT_EINVAL, "'%s': a store in a file is needed (:memory: keeps nothing)",
                    path ? path : "");
    struct stat src_st;
    if (stat(path, &src_st) != 0)
        return fail(err, errno == ENOENT ? DT_ENOENT : DT_EIO, "%s: %s", path, strerror(errno));
    int rc = check_dest(path, &src_st, dest, err);
    if (rc)
        return rc;

    sqlite3 *src = NULL;
    char tmp[4200];
    int tmp_fd = -1;
    bool in_txn = false;
    tmp[0] = '\0';
    /* Read-only, with a busy timeout: a server writing to the store goes on (in WAL mode,
     * which a detour store always is, readers never block the writer). */
    rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = fail(err, DT_EIO, "%s: cannot open: %s", path,
                  src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_busy_timeout(src, BACKUP_BUSY_MS);
    /* One read transaction around the whole copy: every step reads the same snapshot, one
     * committed version. (Without it, each step would take a snapshot of its own, and a
     * commit by the server between two steps would restart the copy from the first page:
     * under steady writes it might never end.) The version read is the copy's. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(err, DT_EIO, "%s: %s", path, sqlite3_errmsg(src));
        goto out;
    }
    in_txn = true;
    if (sqlite3_prepare_v2(src, "SELECT coalesce(max(version), 0) FROM versions", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = fail(err, DT_EINVAL, "%s: not a detour store (%s)", path, sqlite3_errmsg(src));
        sqlite3_finalize(st);
        goto out;
    }
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.backup-XXXXXX", dest) >= sizeof(tmp)) {
        tmp[0] = '\0';
        rc = fail(err, DT_ELIMIT, "%s: the path is too long", dest);
        goto out;
    }
    tmp_fd = mkostemp(tmp, O_CLOEXEC);
    if (tmp_fd < 0) {
        rc = fail(err, DT_EIO, "%s: cannot create %s: %s", dest, tmp, strerror(errno));
        tmp[0] = '\0';
        goto out;
    }
    if ((rc = copy_pages(src, tmp, dest, err)) != 0)
        goto out;
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    in_txn = false;
    /* The copy is as readable as the store (mkostemp made it its owner's only); then on
     * disk before it takes dest's name, and the name on disk after. */
    if (fchmod(tmp_fd, src_st.st_mode & 0666) != 0 || fsync(tmp_fd) != 0) {
        rc = fail(err, DT_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, dest) != 0) {
        rc = fail(err, DT_EIO, "%s: cannot rename %s to it: %s", dest, tmp, strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    if (sync_dir_of(dest) != 0) {
        rc = fail(err, DT_EIO, "%s: written, but its directory could not be synced: %s", dest,
                  strerror(errno));
        goto out;
    }
    if (version)
        *version = v;
    rc = 0;
out:
    if (in_txn)
        sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    if (src)
        sqlite3_close(src);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (tmp[0])
        unlink(tmp);
    return rc;
}
