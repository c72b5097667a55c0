/* load: rule files (and rules held in memory) into a table, every bad line reported with
 * its file, line and column; foreign formats through the import converters. */
#include "rules/import.h"
#include "rules/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ERRORS 50         /* errors reported per load before giving up */
#define MAX_LINE (16 * 1024)  /* longest rule line */
#define MAX_FILE (4ULL << 30) /* largest rule file (offsets are 32-bit) */

void dt_errors_init(struct dt_errors *e)
{
    memset(e, 0, sizeof(*e));
    dt_buf_init(&e->text);
}

void dt_errors_dispose(struct dt_errors *e)
{
    for (unsigned i = 0; i < e->count; i++) {
        free(e->items[i].file);
        free(e->items[i].message);
    }
    free(e->items);
    dt_buf_dispose(&e->text);
    memset(e, 0, sizeof(*e));
}

void dt_errors_add_at(struct dt_errors *e, const char *file, uint32_t line, size_t column,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->count == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->items = dt_xrealloc(e->items, e->cap * sizeof(*e->items));
    }
    struct dt_error *it = &e->items[e->count++];
    it->file = file ? dt_xstrndup(file, strlen(file)) : NULL;
    it->line = line;
    it->column = (uint32_t)column;
    it->message = dt_xstrndup(msg, strlen(msg));
    if (file && line)
        dt_buf_appendf(&e->text, "%s:%u:%zu: %s\n", file, line, column, msg);
    else if (file)
        dt_buf_appendf(&e->text, "%s: %s\n", file, msg);
    else
        dt_buf_appendf(&e->text, "%s\n", msg);
    dt_buf_terminate(&e->text);
}

/* Column of a byte offset, counting UTF-8 characters so editors agree with us. */
static size_t column(struct dt_str line, size_t offset)
{
    size_t col = 1;
    for (size_t i = 0; i < offset && i < line.len; i++)
        if (((unsigned char)line.ptr[i] & 0xC0) != 0x80)
            col++;
    return col;
}

void dt_table_load_line(struct dt_table *t, int file, const char *name, uint32_t lineno,
                        struct dt_str line, struct dt_errors *errs)
{
    if (line.len > MAX_LINE) {
        dt_errors_add_at(errs, name, lineno, MAX_LINE + 1, "line longer than %d bytes", MAX_LINE);
        return;
    }
    const char *nul = memchr(line.ptr, '\0', line.len);
    if (nul) {
        dt_errors_add_at(errs, name, lineno, column(line, (size_t)(nul - line.ptr)),
                         "NUL byte in a rule file");
        return;
    }
    struct dt_rule_spec spec;
    struct dt_diag diag;
    int rc = dt_rule_parse_line(line, &spec, &diag);
    if (rc == 1)
        rc = dt_table_add(t, &spec, file, lineno, &diag);
    if (rc < 0)
        dt_errors_add_at(errs, name, lineno, column(line, diag.offset), "%s", diag.msg);
}

/* Reads the complete lines of text[0, len); returns the bytes used (a last line without a
 * newline is left unless final). */
static size_t load_lines(struct dt_table *t, int file, const char *name, const char *text,
                         size_t len, bool final, uint32_t *lineno, unsigned before,
                         struct dt_errors *errs)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl && !final)
            break;
        size_t end = nl ? (size_t)(nl - text) : len;
        ++*lineno;
        dt_table_load_line(t, file, name, *lineno, dt_str_make(text + pos, end - pos), errs);
        pos = end + 1;
        if (errs->count - before >= MAX_ERRORS)
            return len;
    }
    return pos > len ? len : pos;
}

int dt_table_load_text(struct dt_table *t, const char *name, struct dt_str text,
                       struct dt_errors *errs)
{
    int file = dt_table_add_file(t, name);
    unsigned before = errs->count;
    uint32_t lineno = 0;
    load_lines(t, file, name, text.ptr, text.len, true, &lineno, before, errs);
    if (errs->count - before >= MAX_ERRORS)
        dt_errors_add_at(errs, name, 0, 0, "too many errors, stopped at line %u", lineno);
    return errs->count > before ? DT_ESYNTAX : 0;
}

int dt_table_load_file(struct dt_table *t, const char *path, struct dt_errors *errs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dt_errors_add_at(errs, path, 0, 0, "cannot open: %s", strerror(errno));
        return DT_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dt_errors_add_at(errs, path, 0, 0, "not a regular file");
        close(fd);
        return DT_EIO;
    }
    if ((uint64_t)st.st_size > MAX_FILE) {
        dt_errors_add_at(errs, path, 0, 0, "larger than 4 GiB");
        close(fd);
        return DT_EIO;
    }
    /* Streamed in chunks: a rule file of any size needs only this much memory beside the
     * table it fills. */
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK + MAX_LINE + 1);
    if (!buf) {
        dt_errors_add_at(errs, path, 0, 0, "out of memory");
        close(fd);
        return DT_EIO;
    }
    int file = dt_table_add_file(t, path);
    unsigned before = errs->count;
    uint32_t lineno = 0;
    size_t have = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, CHUNK + MAX_LINE + 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            dt_errors_add_at(errs, path, 0, 0, "read error: %s", strerror(errno));
            rc = DT_EIO;
            break;
        }
        have += (size_t)n;
        bool final = n == 0;
        size_t used = load_lines(t, file, path, buf, have, final, &lineno, before, errs);
        if (errs->count - before >= MAX_ERRORS) {
            dt_errors_add_at(errs, path, 0, 0, "too many errors, stopped at line %u", lineno);
            break;
        }
        if (final)
            break;
        if (used == 0 && have == CHUNK + MAX_LINE + 1) {
            /* a line longer than the buffer: report it and skip to its end */
            dt_errors_add_at(errs, path, lineno + 1, MAX_LINE + 1, "line longer than %d bytes",
                             MAX_LINE);
            rc = DT_ESYNTAX;
            break;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    free(buf);
    close(fd);
    if (rc)
        return rc;
    return errs->count > before ? DT_ESYNTAX : 0;
}

void dt_table_load_converted(struct dt_table *t, int file, const char *name,
                             const struct dt_import_line *l, struct dt_errors *errs)
{
    struct dt_str line = {l->text, strlen(l->text)};
    struct dt_rule_spec spec;
    struct dt_diag diag;
    int r = dt_rule_parse_line(line, &spec, &diag);
    if (r == 1)
        r = dt_table_add(t, &spec, file, l->line, &diag);
    if (r < 0)
        dt_errors_add_at(errs, name, l->line, 0, "%s (as the detour rule '%s')", diag.msg, l->text);
}

int dt_table_load_file_as(struct dt_table *t, const char *path, int format, int default_status,
                          struct dt_errors *errs)
{
    if (format == DT_FORMAT_DETOUR)
        return dt_table_load_file(t, path, errs);
    /* A foreign format: converted whole, then each rule read with the line it came from. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dt_errors_add_at(errs, path, 0, 0, "cannot open: %s",
                         fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return DT_EIO;
    }
    size_t size = (size_t)st.st_size;
    char *text = malloc(size ? size : 1);
    size_t got = 0;
    while (text && got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!text || got != size) {
        dt_errors_add_at(errs, path, 0, 0, "read error: %s", text ? strerror(errno) : "no memory");
        free(text);
        return DT_EIO;
    }
    struct dt_import im;
    dt_import_init(&im);
    unsigned before = errs->count;
    int rc = dt_import_convert((enum dt_rule_format)format, path, dt_str_make(text, size),
                               default_status, &im, errs);
    free(text);
    int file = dt_table_add_file(t, path);
    for (size_t i = 0; i < im.n; i++)
        dt_table_load_converted(t, file, path, &im.lines[i], errs);
    dt_import_dispose(&im);
    if (rc && rc != DT_ESYNTAX)
        return rc;
    return errs->count > before ? DT_ESYNTAX : 0;
}
