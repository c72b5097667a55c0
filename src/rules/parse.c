/* parse: the rule-file syntax (SOURCE TARGET [STATUS] [KEY=VALUE]...), line by line, with
 * errors that name file, line and column. */
#include "rules/import.h"
#include "rules/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ERRORS 50               /* errors reported per load before giving up */
#define MAX_LINE (16 * 1024)        /* longest rule line */
#define MAX_FILE (4ULL << 30)       /* largest rule file (offsets are 32-bit) */

void dt_rule_spec_init(struct dt_rule_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->status = 307;
    s->max_age = -1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int bad(struct dt_diag *d, struct dt_str line, const char *at, const char *fmt,
               struct dt_str what)
{
    dt_diag_set(d, (size_t)(at - line.ptr), fmt, (int)what.len, what.ptr);
    return DT_ESYNTAX;
}

int dt_rule_parse_age(struct dt_str age, int64_t *seconds)
{
    /* a number and a unit: s, m, h or d (90d) */
    char u = age.len ? age.ptr[age.len - 1] : 0;
    int64_t mult = u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : u == 'd' ? 86400 : 0;
    int64_t n;
    if (!mult || dt_parse_int(dt_str_make(age.ptr, age.len - 1), 1, 100LL * 365 * 86400, &n) != 0 ||
        n > 100LL * 365 * 86400 / mult)
        return DT_EINVAL;
    *seconds = n * mult;
    return 0;
}

static int option(struct dt_rule_spec *s, struct dt_str field, struct dt_str line,
                  unsigned *seen, struct dt_diag *d)
{
    const char *eq = memchr(field.ptr, '=', field.len);
    if (!eq)
        return bad(d, line, field.ptr,
                   "expected STATUS or KEY=VALUE, got '%.*s' (a comment starts with '#')",
                   field);
    struct dt_str key = {field.ptr, (size_t)(eq - field.ptr)};
    struct dt_str val = {eq + 1, field.len - key.len - 1};
    static const char *const keys[] = {"query", "cache", "from", "until", "since",
                                       "promote-after"};
    unsigned k = 0;
    while (k < DT_ARRAY_LEN(keys) && !dt_str_eq(key, dt_str_make(keys[k], strlen(keys[k]))))
        k++;
    if (k == DT_ARRAY_LEN(keys))
        return bad(d, line, key.ptr,
                   "unknown option '%.*s' (known: query=keep|drop, cache=SECONDS, from=TIME, "
                   "until=TIME, since=TIME, promote-after=AGE)",
                   key);
    if (*seen & (1u << k))
        return bad(d, line, key.ptr, "option '%.*s' given twice", key);
    *seen |= 1u << k;
    int64_t n;
    switch (k) {
    case 0:
        if (dt_str_eq(val, DT_STR("keep")))
            s->query_drop = false;
        else if (dt_str_eq(val, DT_STR("drop")))
            s->query_drop = true;
        else
            return bad(d, line, val.ptr, "query= takes keep or drop, not '%.*s'", val);
        break;
    case 1:
        if (dt_parse_int(val, 0, INT32_MAX, &n) != 0)
            return bad(d, line, val.ptr,
                       "cache= takes a number of seconds from 0 to 2147483647, not '%.*s'", val);
        s->max_age = n;
        break;
    case 5:
        if (dt_rule_parse_age(val, &s->promote_after) != 0)
            return bad(d, line, val.ptr,
                       "promote-after= takes an age such as 90d, 12h, 30m or 45s, not '%.*s'",
                       val);
        s->promote_at = (uint32_t)(key.ptr - line.ptr);
        break;
    case 2:
    case 3:
    case 4: {
        time_t t;
        if (dt_parse_rfc3339(val, &t) != 0)
            return bad(d, line, val.ptr,
                       "expected an RFC 3339 time such as 2026-12-01T06:00:00Z, not '%.*s'", val);
        if (k == 2) {
            s->has_from = true;
            s->from = t;
        } else if (k == 3) {
            s->has_until = true;
            s->until = t;
        } else {
            s->has_since = true;
            s->since = t;
            break;
        }
        if (s->has_from && s->has_until && s->from >= s->until)
            return bad(d, line, val.ptr, "the window is empty: from= must come before until=%.*s",
                       DT_STR(""));
        break;
    }
    }
    return 0;
}

int dt_rule_parse_line(struct dt_str line, struct dt_rule_spec *s, struct dt_diag *d)
{
    dt_rule_spec_init(s);
    s->line = line;
    if (line.len && line.ptr[line.len - 1] == '\r')
        line.len--; /* CRLF files */
    unsigned nfields = 0, seen = 0;
    bool have_status = false;
    size_t i = 0;
    for (;;) {
        while (i < line.len && is_space(line.ptr[i]))
            i++;
        if (i == line.len || line.ptr[i] == '#')
            break;
        size_t start = i;
        while (i < line.len && !is_space(line.ptr[i])) {
            unsigned char c = (unsigned char)line.ptr[i];
            if (c < 0x20 || c == 0x7f)
                return bad(d, line, line.ptr + i, "control character in a rule%.*s", DT_STR(""));
            i++;
        }
        struct dt_str field = {line.ptr + start, i - start};
        switch (nfields++) {
        case 0:
            s->source = field;
            break;
        case 1:
            s->target = field;
            break;
        default:
            if (field.ptr[0] >= '0' && field.ptr[0] <= '9') {
                int64_t st;
                if (have_status || nfields != 3)
                    return bad(d, line, field.ptr,
                               "the status must follow the target, once: '%.*s'", field);
                if (dt_parse_int(field, 0, 999, &st) != 0 || !dt_http_is_redirect(st))
                    return bad(d, line, field.ptr,
                               "unknown status %.*s (expected 301, 302, 303, 307 or 308)", field);
                s->status = (int)st;
                have_status = true;
            } else {
                int rc = option(s, field, line, &seen, d);
                if (rc)
                    return rc;
            }
        }
    }
    if (nfields == 0)
        return 0;
    if (nfields == 1)
        return bad(d, line, line.ptr + i, "missing target after the source '%.*s'", s->source);
    return 1;
}

int dt_rule_parse_options(struct dt_str text, struct dt_rule_spec *s, struct dt_diag *d)
{
    unsigned seen = 0;
    size_t i = 0;
    for (;;) {
        while (i < text.len && is_space(text.ptr[i]))
            i++;
        if (i == text.len)
            return 0;
        size_t start = i;
        while (i < text.len && !is_space(text.ptr[i])) {
            unsigned char c = (unsigned char)text.ptr[i];
            if (c < 0x20 || c == 0x7f)
                return bad(d, text, text.ptr + i, "control character in a rule%.*s", DT_STR(""));
            i++;
        }
        int rc = option(s, dt_str_make(text.ptr + start, i - start), text, &seen, d);
        if (rc)
            return rc;
    }
}

size_t dt_rule_format_age(char out[24], int64_t seconds)
{
    static const struct {
        int64_t unit;
        char name;
    } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    size_t k = 0;
    while (k + 1 < DT_ARRAY_LEN(units) && seconds % units[k].unit != 0)
        k++;
    size_t n = dt_fmt_u64(out, (uint64_t)(seconds / units[k].unit));
    out[n++] = units[k].name;
    out[n] = '\0';
    return n;
}

/* Appends one option: a space first unless it is the first one (written from start). */
static void put_key(struct dt_buf *out, size_t start, const char *key)
{
    if (out->len > start)
        dt_buf_append(out, " ", 1);
    dt_buf_append(out, key, strlen(key));
}

static void put_time(struct dt_buf *out, size_t start, const char *key, time_t t)
{
    char stamp[21];
    dt_fmt_rfc3339(stamp, t);
    put_key(out, start, key);
    dt_buf_append(out, stamp, strlen(stamp));
}

void dt_rule_format_options(struct dt_buf *out, const struct dt_rule_spec *s, unsigned flags)
{
    /* built with copies, not printf: a store's rule set of a million is formatted at once */
    size_t start = out->len;
    char digits[24];
    if (s->query_drop)
        put_key(out, start, "query=drop");
    if (s->max_age >= 0) {
        put_key(out, start, "cache=");
        dt_buf_append(out, digits, dt_fmt_u64(digits, (uint64_t)s->max_age));
    }
    if (s->has_from)
        put_time(out, start, "from=", s->from);
    if (s->has_until)
        put_time(out, start, "until=", s->until);
    if (s->has_since && (flags & DT_RULE_OPT_SINCE))
        put_time(out, start, "since=", s->since);
    if (s->promote_after > 0) {
        put_key(out, start, "promote-after=");
        dt_buf_append(out, digits, dt_rule_format_age(digits, s->promote_after));
    }
}

void dt_rule_format(struct dt_buf *out, const struct dt_rule_spec *s)
{
    char digits[24];
    dt_buf_append_str(out, s->source);
    dt_buf_append(out, " ", 1);
    dt_buf_append_str(out, s->target);
    dt_buf_append(out, " ", 1);
    dt_buf_append(out, digits, dt_fmt_u64(digits, (uint64_t)s->status));
    dt_buf_append(out, " ", 1);
    size_t before = out->len;
    dt_rule_format_options(out, s, DT_RULE_OPT_SINCE);
    if (out->len == before)
        out->len--; /* no option: no space */
}

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

/* Reads one line of a rule file into t, reporting a bad one to errs. */
static void load_line(struct dt_table *t, int file, const char *name, uint32_t lineno,
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
        load_line(t, file, name, *lineno, dt_str_make(text + pos, end - pos), errs);
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
    for (size_t i = 0; i < im.n; i++) {
        struct dt_str line = {im.lines[i].text, strlen(im.lines[i].text)};
        struct dt_rule_spec spec;
        struct dt_diag diag;
        int r = dt_rule_parse_line(line, &spec, &diag);
        if (r == 1)
            r = dt_table_add(t, &spec, file, im.lines[i].line, &diag);
        if (r < 0)
            dt_errors_add_at(errs, path, im.lines[i].line, 0, "%s (as the detour rule '%s')",
                             diag.msg, im.lines[i].text);
    }
    dt_import_dispose(&im);
    if (rc && rc != DT_ESYNTAX)
        return rc;
    return errs->count > before ? DT_ESYNTAX : 0;
}
