/* import: converts CSV bulk-redirect lists, nginx map blocks and Netlify _redirects files into
 * detour rule lines, one entry at a time, reporting every entry it cannot convert with its
 * file, line and column. The mapping of each format is described in docs/import.md. */
#include "rules/import.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_SHOWN 80       /* bytes of an offending value quoted in a message */
#define CSV_MAX_COLUMNS 16 /* columns a CSV header may name */
#define NGX_MAX_WORDS 4    /* words of an nginx statement that are kept (a map entry has 2) */

/* ---- format names ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum dt_rule_format format;
} format_names[] = {
    {"detour", DT_FORMAT_DETOUR},   {"csv", DT_FORMAT_CSV},
    {"nginx", DT_FORMAT_NGINX_MAP}, {"nginx-map", DT_FORMAT_NGINX_MAP},
    {"netlify", DT_FORMAT_NETLIFY}, {"_redirects", DT_FORMAT_NETLIFY},
};

int dt_rule_format_parse(const char *name, enum dt_rule_format *out)
{
    if (!name)
        return DT_EINVAL;
    struct dt_str s = dt_str_make(name, strlen(name));
    for (size_t i = 0; i < DT_ARRAY_LEN(format_names); i++) {
        if (dt_str_ieq(s, format_names[i].name)) {
            *out = format_names[i].format;
            return 0;
        }
    }
    return DT_EINVAL;
}

/* True when s ends with suffix, ignoring ASCII case. */
static bool ends_with(struct dt_str s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && dt_str_ieq(dt_str_make(s.ptr + s.len - n, n), suffix);
}

enum dt_rule_format dt_rule_format_guess(const char *path)
{
    if (!path)
        return DT_FORMAT_DETOUR;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    struct dt_str b = dt_str_make(base, strlen(base));
    if (ends_with(b, ".csv"))
        return DT_FORMAT_CSV;
    if (ends_with(b, ".map") || ends_with(b, ".nginx"))
        return DT_FORMAT_NGINX_MAP;
    if (dt_str_ieq(b, "_redirects") || ends_with(b, ".redirects"))
        return DT_FORMAT_NETLIFY;
    return DT_FORMAT_DETOUR;
}

const char *dt_rule_format_name(enum dt_rule_format f)
{
    switch (f) {
    case DT_FORMAT_DETOUR:
        return "detour";
    case DT_FORMAT_CSV:
        return "csv";
    case DT_FORMAT_NGINX_MAP:
        return "nginx";
    case DT_FORMAT_NETLIFY:
        return "netlify";
    }
    return "unknown";
}

/* ---- the list of converted lines --------------------------------------------------------- */

void dt_import_init(struct dt_import *im)
{
    im->lines = NULL;
    im->n = 0;
    im->cap = 0;
}

void dt_import_dispose(struct dt_import *im)
{
    for (size_t i = 0; i < im->n; i++)
        free(im->lines[i].text);
    free(im->lines);
    dt_import_init(im);
}

/* ---- what every format shares ------------------------------------------------------------ */

/* One conversion: the input, where converted rules and errors go, and the rule being written. */
struct conv {
    const char *name;
    struct dt_str text;
    int status; /* the status of entries that carry none */
    struct dt_import *out;
    struct dt_errors *errs;
    struct dt_buf rule; /* the rule line being written */
    struct dt_buf aux;  /* scratch space of a format's entry */
    /* Where locate() last stopped: entries come in order, so finding lines stays linear. */
    size_t seen_off, seen_line_start;
    uint32_t seen_line;
};

/* The 1-based line of a byte offset of the text and, when col is not NULL, its 1-based
 * column in characters (UTF-8 continuation bytes do not count). */
static uint32_t locate(struct conv *c, size_t off, size_t *col)
{
    const char *t = c->text.ptr;
    if (off > c->text.len)
        off = c->text.len;
    if (off < c->seen_off) {
        c->seen_off = 0;
        c->seen_line_start = 0;
        c->seen_line = 1;
    }
    for (size_t i = c->seen_off; i < off; i++) {
        if (t[i] == '\n') {
            c->seen_line++;
            c->seen_line_start = i + 1;
        }
    }
    c->seen_off = off;
    if (col) {
        size_t n = 1;
        for (size_t i = c->seen_line_start; i < off; i++)
            if (((unsigned char)t[i] & 0xC0) != 0x80)
                n++;
        *col = n;
    }
    return c->seen_line;
}

static void fail(struct conv *c, size_t off, const char *fmt, ...) DT_PRINTF(3, 4);

/* Reports an entry that cannot be converted, at a byte offset of the text. */
static void fail(struct conv *c, size_t off, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t col;
    uint32_t line = locate(c, off, &col);
    dt_errors_add_at(c->errs, c->name, line, col, "%s", msg);
}

/* The offset in the text of a pointer into it. */
static size_t offset_of(const struct conv *c, const char *p)
{
    return (size_t)(p - c->text.ptr);
}

/* How many bytes of v a message quotes: at most MAX_SHOWN, cut at a character boundary.
 * Used as: "'%.*s'", shown(v), v.ptr. */
static int shown(struct dt_str v)
{
    size_t n = v.len;
    if (n > MAX_SHOWN) {
        n = MAX_SHOWN;
        while (n > 0 && ((unsigned char)v.ptr[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

/* Adds the rule written in c->rule to the output, as coming from the line of offset at. */
static void emit(struct conv *c, size_t at)
{
    if (c->rule.len > DT_IMPORT_MAX_LINE) {
        fail(c, at, "the converted rule is longer than %d bytes", DT_IMPORT_MAX_LINE);
        return;
    }
    struct dt_import *im = c->out;
    if (im->n == im->cap) {
        im->cap = im->cap ? im->cap * 2 : 64;
        im->lines = dt_xrealloc(im->lines, im->cap * sizeof(*im->lines));
    }
    im->lines[im->n].text = dt_xstrndup(c->rule.ptr, c->rule.len);
    im->lines[im->n].line = locate(c, at, NULL);
    im->n++;
}

static void put(struct conv *c, struct dt_str s)
{
    dt_buf_append_str(&c->rule, s);
}

static void put_cstr(struct conv *c, const char *s)
{
    dt_buf_append(&c->rule, s, strlen(s));
}

/* Writes s lower-cased (host names and schemes). */
static void put_lower(struct conv *c, struct dt_str s)
{
    if (s.len == 0)
        return;
    size_t at = c->rule.len;
    put(c, s);
    dt_ascii_lower(c->rule.ptr + at, s.len);
}

/* Writes " STATUS". */
static void put_status(struct conv *c, int status)
{
    char digits[24];
    size_t n = dt_fmt_u64(digits + 1, (uint64_t)status);
    digits[0] = ' ';
    dt_buf_append(&c->rule, digits, n + 1);
}

/* Writes s with its bytes above 127 percent-encoded, as clients send them (RFC 3986 2.1). */
static void put_encoded(struct conv *c, struct dt_str s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch < 0x80)
            continue;
        put(c, dt_str_make(s.ptr + run, i - run));
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        dt_buf_append(&c->rule, enc, 3);
        run = i + 1;
    }
    put(c, dt_str_make(s.ptr + run, s.len - run));
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* The first character of a placeholder name, [A-Za-z_], and the others, [A-Za-z0-9_]. */
static bool name_start(unsigned char ch)
{
    return ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || ch == '_';
}

static bool name_char(unsigned char ch)
{
    return name_start(ch) || is_digit((char)ch);
}

/* Rejects whitespace and control characters in a URL-like field (what names it). */
static bool check_chars(struct dt_str v, const char *what, struct dt_diag *d)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            dt_diag_set(d, i, "whitespace inside the %s (write %%20)", what);
            return false;
        }
        if (ch < 0x20 || ch == 0x7f) {
            dt_diag_set(d, i, "control character inside the %s", what);
            return false;
        }
    }
    return true;
}

/* The length of an "http://" or "https://" prefix (any case), or 0. */
static size_t http_scheme_len(struct dt_str v)
{
    if (v.len >= 7 && dt_str_ieq(dt_str_make(v.ptr, 7), "http://"))
        return 7;
    if (v.len >= 8 && dt_str_ieq(dt_str_make(v.ptr, 8), "https://"))
        return 8;
    return 0;
}

static bool ends_authority(char ch)
{
    return ch == '/' || ch == '?' || ch == '#';
}

/* Where the path of a URL or path v starts: after "http(s)://HOST", or 0. */
static size_t authority_end(struct dt_str v)
{
    size_t i = http_scheme_len(v);
    if (i)
        while (i < v.len && !ends_authority(v.ptr[i]))
            i++;
    return i;
}

/* Writes a checked target: its scheme and host as they are, the rest with put_encoded. */
static void put_target(struct conv *c, struct dt_str t)
{
    size_t a = authority_end(t);
    put(c, dt_str_make(t.ptr, a));
    put_encoded(c, dt_str_make(t.ptr + a, t.len - a));
}

/* Checks a target: a path starting with '/' or an absolute http(s) URL with a host, with no
 * whitespace or control characters. d->offset is relative to v. */
static bool check_target(struct dt_str v, struct dt_diag *d)
{
    if (v.len == 0) {
        dt_diag_set(d, 0, "missing target");
        return false;
    }
    if (!check_chars(v, "target", d))
        return false;
    if (v.ptr[0] == '/') {
        if (v.len > 1 && v.ptr[1] == '/') {
            dt_diag_set(d, 0, "the target '%.*s' starts with '//' (write its scheme: https://)",
                        shown(v), v.ptr);
            return false;
        }
        return true;
    }
    size_t n = http_scheme_len(v);
    if (n == 0) {
        dt_diag_set(d, 0,
                    "the target must be a path starting with '/' or an http(s) URL, not '%.*s'",
                    shown(v), v.ptr);
        return false;
    }
    if (n == v.len || ends_authority(v.ptr[n])) {
        dt_diag_set(d, 0, "the target '%.*s' has no host", shown(v), v.ptr);
        return false;
    }
    return true;
}

/* A source taken apart: [SCHEME://][HOST]PATH. */
struct source {
    struct dt_str scheme; /* "http" or "https" (any case), or empty */
    struct dt_str host;   /* empty for a path that applies to any host */
    struct dt_str path;   /* from the first '/' or '?' on; may be empty after a host */
};

/* Host names as a source may write them: letters, digits, '-', '_' and '.', optionally after
 * "*." (subdomains) or "." (the host and its subdomains). */
static bool host_ok(struct dt_str h)
{
    size_t i = 0;
    if (h.len >= 2 && h.ptr[0] == '*' && h.ptr[1] == '.')
        i = 2;
    else if (h.len >= 1 && h.ptr[0] == '.')
        i = 1;
    if (i == h.len)
        return false;
    for (; i < h.len; i++) {
        unsigned char ch = (unsigned char)h.ptr[i];
        if (!name_char(ch) && ch != '-' && ch != '.')
            return false;
    }
    return true;
}

/* Splits a source written as a path, an http(s) URL, or (when bare_host) HOST/path. d->offset
 * is relative to v. */
static bool split_source(struct dt_str v, bool bare_host, struct source *s, struct dt_diag *d)
{
    memset(s, 0, sizeof(*s));
    if (v.len == 0) {
        dt_diag_set(d, 0, "missing source");
        return false;
    }
    if (!check_chars(v, "source", d))
        return false;
    if (v.ptr[0] == '/') {
        s->path = v;
        const char *hash = memchr(v.ptr, '#', v.len);
        if (hash) {
            dt_diag_set(d, (size_t)(hash - v.ptr), "a source may not hold a fragment ('#')");
            return false;
        }
        return true;
    }
    size_t n = http_scheme_len(v);
    if (n == 0) {
        size_t i = 0;
        while (i < v.len && v.ptr[i] != '/' && v.ptr[i] != ':')
            i++;
        if (i + 2 < v.len && v.ptr[i] == ':' && v.ptr[i + 1] == '/' && v.ptr[i + 2] == '/') {
            dt_diag_set(d, 0, "the source's scheme must be http or https, not '%.*s'", (int)i,
                        v.ptr);
            return false;
        }
        if (!bare_host) {
            dt_diag_set(d, 0,
                        "the source must be a path starting with '/' or an http(s) URL, not "
                        "'%.*s'",
                        shown(v), v.ptr);
            return false;
        }
    }
    size_t i = n;
    while (i < v.len && !ends_authority(v.ptr[i]))
        i++;
    s->scheme = dt_str_make(v.ptr, n ? n - 3 : 0);
    s->host = dt_str_make(v.ptr + n, i - n);
    s->path = dt_str_make(v.ptr + i, v.len - i);
    if (n && s->host.len == 0) {
        dt_diag_set(d, 0, "the source '%.*s' has no host", shown(v), v.ptr);
        return false;
    }
    if (!n && !memchr(s->host.ptr, '.', s->host.len)) {
        dt_diag_set(d, 0,
                    "the source must be a path starting with '/', HOST/path or an http(s) URL, "
                    "not '%.*s'",
                    shown(v), v.ptr);
        return false;
    }
    if (!host_ok(s->host)) {
        dt_diag_set(d, n,
                    "bad host name '%.*s' in the source (letters, digits, '-' and '.'; no port; "
                    "xn-- for international names)",
                    shown(s->host), s->host.ptr);
        return false;
    }
    const char *hash = memchr(s->path.ptr, '#', s->path.len);
    if (hash) {
        dt_diag_set(d, (size_t)(hash - v.ptr), "a source may not hold a fragment ('#')");
        return false;
    }
    return true;
}

/* Writes a source; with subdomains, its host as ".HOST" (the host and its subdomains). */
static void put_source(struct conv *c, const struct source *s, bool subdomains)
{
    if (s->scheme.len) {
        put_lower(c, s->scheme);
        put_cstr(c, "://");
    }
    struct dt_str host = s->host;
    if (host.len && subdomains) {
        if (host.ptr[0] == '*')
            host = dt_str_make(host.ptr + 1, host.len - 1); /* "*.x": now ".x" */
        else if (host.ptr[0] != '.')
            put_cstr(c, ".");
    }
    put_lower(c, host);
    if (s->path.len == 0 || s->path.ptr[0] != '/')
        put_cstr(c, "/");
    put_encoded(c, s->path);
}

/* ---- detour's own format ----------------------------------------------------------------- */

/* Copies rule lines as they are, without blank lines, comments and surrounding blanks; only
 * control characters are reported here (the output is NUL-terminated text), the rest is the
 * rule loader's to check. */
static void convert_detour(struct conv *c)
{
    const char *t = c->text.ptr;
    size_t pos = 0;
    while (pos < c->text.len) {
        const char *nl = memchr(t + pos, '\n', c->text.len - pos);
        size_t end = nl ? offset_of(c, nl) : c->text.len;
        size_t s = pos, e = end;
        pos = end + 1;
        while (s < e && is_blank(t[s]))
            s++;
        while (e > s && (is_blank(t[e - 1]) || t[e - 1] == '\r'))
            e--;
        if (s == e || t[s] == '#')
            continue;
        size_t k = s;
        while (k < e && ((unsigned char)t[k] >= 0x20 || t[k] == '\t') && t[k] != 0x7f)
            k++;
        if (k < e) {
            fail(c, k, "control character in a rule");
            continue;
        }
        c->rule.len = 0;
        put(c, dt_str_make(t + s, e - s));
        emit(c, s);
    }
}

/* ---- CSV (RFC 4180) ---------------------------------------------------------------------- */

enum csv_col {
    COL_SOURCE,
    COL_TARGET,
    COL_STATUS,
    COL_OPTIONS,
    COL_PRESERVE_QUERY,
    COL_SUBDOMAINS,
    COL_SUBPATH,
    COL_SUFFIX,
    COL_COUNT
};

static const struct {
    const char *name;
    enum csv_col col;
} csv_names[] = {
    {"source", COL_SOURCE},
    {"source_url", COL_SOURCE},
    {"target", COL_TARGET},
    {"target_url", COL_TARGET},
    {"status", COL_STATUS},
    {"status_code", COL_STATUS},
    {"options", COL_OPTIONS},
    {"preserve_query_string", COL_PRESERVE_QUERY},
    {"include_subdomains", COL_SUBDOMAINS},
    {"subpath_matching", COL_SUBPATH},
    {"preserve_path_suffix", COL_SUFFIX},
};

/* One field of a record. Its value is kept in the record's buffer, unquoted. */
struct csv_field {
    size_t val, len; /* the value in csv.values */
    size_t start;    /* offset in the text where the field starts (its opening quote) */
    size_t at;       /* offset in the text of the value's first byte (after an opening quote) */
    size_t end;      /* offset just past the value (before a closing quote) */
    bool quoted;
};

struct csv {
    struct conv *c;
    struct dt_buf values;                         /* the values of the record being read */
    struct csv_field fields[CSV_MAX_COLUMNS + 1]; /* its first fields */
    unsigned n;                                   /* its fields, kept or not */
    bool started;                                 /* a header or a data row has been read */
    bool by_name;                                 /* a header named the columns */
    bool dead;                                    /* the header makes rows unreadable */
    bool cloudflare;                              /* this headerless row is Cloudflare's */
    unsigned ncols;                               /* columns the header named */
    int col[COL_COUNT];                           /* each column's field, or -1 */
};

static struct dt_str csv_value(const struct csv *cv, int i)
{
    if (i < 0)
        return DT_STR("");
    const struct csv_field *f = &cv->fields[i];
    return dt_str_make(f->len ? cv->values.ptr + f->val : "", f->len);
}

/* The offset in the text of byte k of field i's value (a doubled quote is one byte). */
static size_t csv_offset(const struct csv *cv, int i, size_t k)
{
    const struct csv_field *f = &cv->fields[i];
    if (!f->quoted)
        return f->at + k;
    size_t off = f->at;
    for (size_t j = 0; j < k && off < f->end; j++)
        off += cv->c->text.ptr[off] == '"' ? 2 : 1;
    return off;
}

/* The offset just past the line that holds offset i (after its '\n'). */
static size_t next_line(const struct conv *c, size_t i)
{
    const char *nl = memchr(c->text.ptr + i, '\n', c->text.len - i);
    return nl ? offset_of(c, nl) + 1 : c->text.len;
}

/* True at a line break: LF or CR LF. */
static bool csv_eol(const struct conv *c, size_t i)
{
    const char *t = c->text.ptr;
    return t[i] == '\n' || (t[i] == '\r' && i + 1 < c->text.len && t[i + 1] == '\n');
}

/* Reads the record at *pos into cv, skipping blank and comment lines before it (RFC 4180:
 * fields separated by commas, quoted fields may hold commas, line breaks and doubled quotes;
 * here also blanks around fields are dropped). Returns 1 for a record, 0 at the end of the
 * text, or -1 for a malformed record (reported; *pos then is past the line where it failed). */
static int csv_read(struct csv *cv, size_t *pos)
{
    struct conv *c = cv->c;
    const char *t = c->text.ptr;
    size_t len = c->text.len, i = *pos;
    for (;;) {
        size_t j = i;
        while (j < len && is_blank(t[j]))
            j++;
        if (j == len) {
            *pos = len;
            return 0;
        }
        if (!csv_eol(c, j) && t[j] != '#')
            break;
        i = next_line(c, j);
    }
    cv->n = 0;
    cv->values.len = 0;
    for (;;) {
        while (i < len && is_blank(t[i]))
            i++;
        struct csv_field f = {.val = cv->values.len, .start = i, .at = i};
        if (i < len && t[i] == '"') {
            size_t open = i++;
            f.quoted = true;
            f.at = i;
            for (;;) {
                if (i >= len) {
                    fail(c, open, "unterminated quoted field (it needs a closing '\"')");
                    *pos = len;
                    return -1;
                }
                if (t[i] == '"') {
                    if (i + 1 < len && t[i + 1] == '"') {
                        dt_buf_append(&cv->values, "\"", 1);
                        i += 2;
                        continue;
                    }
                    break;
                }
                size_t run = i;
                while (i < len && t[i] != '"')
                    i++;
                dt_buf_append(&cv->values, t + run, i - run);
            }
            f.end = i++;
            while (i < len && is_blank(t[i]))
                i++;
            if (i < len && t[i] != ',' && !csv_eol(c, i)) {
                fail(c, i,
                     "text after the closing quote of a field (inside quotes, write a quote "
                     "as \"\")");
                *pos = next_line(c, i);
                return -1;
            }
        } else {
            size_t start = i;
            while (i < len && t[i] != ',' && !csv_eol(c, i)) {
                if (t[i] == '"') {
                    fail(c, i,
                         "a quote inside an unquoted field (quote the whole field and "
                         "double the quote: \"a\"\"b\")");
                    *pos = next_line(c, i);
                    return -1;
                }
                i++;
            }
            size_t end = i;
            while (end > start && is_blank(t[end - 1]))
                end--;
            dt_buf_append(&cv->values, t + start, end - start);
            f.end = end;
        }
        f.len = cv->values.len - f.val;
        if (cv->n < DT_ARRAY_LEN(cv->fields))
            cv->fields[cv->n] = f;
        cv->n++;
        if (i < len && t[i] == ',') {
            i++;
            continue;
        }
        if (i < len)
            i += t[i] == '\r' ? 2 : 1;
        *pos = i;
        return 1;
    }
}

/* The last kept field of the record. */
static int csv_last(const struct csv *cv)
{
    return (int)(cv->n < DT_ARRAY_LEN(cv->fields) ? cv->n : DT_ARRAY_LEN(cv->fields)) - 1;
}

/* Reads a header row: the columns it names, in order. */
static void csv_header(struct csv *cv)
{
    struct conv *c = cv->c;
    bool reported = false;
    cv->by_name = true;
    cv->ncols = cv->n;
    for (int k = 0; k < COL_COUNT; k++)
        cv->col[k] = -1;
    if (cv->n > CSV_MAX_COLUMNS) {
        fail(c, cv->fields[CSV_MAX_COLUMNS].start, "too many columns in the header (at most %d)",
             CSV_MAX_COLUMNS);
        cv->dead = true;
        return;
    }
    for (unsigned i = 0; i < cv->n; i++) {
        struct dt_str name = csv_value(cv, (int)i);
        size_t k = 0;
        while (k < DT_ARRAY_LEN(csv_names) && !dt_str_ieq(name, csv_names[k].name))
            k++;
        if (k == DT_ARRAY_LEN(csv_names)) {
            if (!reported)
                fail(c, cv->fields[i].start,
                     "unknown column '%.*s' (known: source, target, status, options, "
                     "preserve_query_string, include_subdomains, subpath_matching, "
                     "preserve_path_suffix)",
                     shown(name), name.ptr);
            reported = true;
            continue;
        }
        enum csv_col col = csv_names[k].col;
        if (cv->col[col] >= 0) {
            if (!reported)
                fail(c, cv->fields[i].start, "column '%.*s' given twice", shown(name), name.ptr);
            reported = true;
            continue;
        }
        cv->col[col] = (int)i;
    }
    if (cv->col[COL_TARGET] < 0) {
        if (!reported)
            fail(c, cv->fields[0].start, "the header has no target column (target or target_url)");
        cv->dead = true;
    }
}

/* Reports a problem found at byte diag->offset of field i. */
static void csv_fail(struct csv *cv, int i, const struct dt_diag *d)
{
    fail(cv->c, csv_offset(cv, i, d->offset), "%s", d->msg);
}

/* Reads a TRUE/FALSE column (any case; empty is FALSE, as in Cloudflare's lists). */
static bool csv_bool(struct csv *cv, enum csv_col col, const char *name, bool *out)
{
    *out = false;
    struct dt_str v = csv_value(cv, cv->col[col]);
    if (v.len == 0 || dt_str_ieq(v, "false"))
        return true;
    if (dt_str_ieq(v, "true")) {
        *out = true;
        return true;
    }
    fail(cv->c, cv->fields[cv->col[col]].start, "%s takes TRUE or FALSE, not '%.*s'", name,
         shown(v), v.ptr);
    return false;
}

static const char *const option_keys[] = {"query", "cache", "from", "until", "since"};

/* Checks one detour option KEY=VALUE; seen holds a bit for each key already given. */
static bool check_option(struct dt_str opt, unsigned *seen, struct dt_diag *d)
{
    const char *eq = memchr(opt.ptr, '=', opt.len);
    if (!eq) {
        dt_diag_set(d, 0, "expected an option KEY=VALUE, not '%.*s'", shown(opt), opt.ptr);
        return false;
    }
    struct dt_str key = dt_str_make(opt.ptr, (size_t)(eq - opt.ptr));
    struct dt_str val = dt_str_make(eq + 1, opt.len - key.len - 1);
    size_t k = 0;
    while (k < DT_ARRAY_LEN(option_keys) &&
           !dt_str_eq(key, dt_str_make(option_keys[k], strlen(option_keys[k]))))
        k++;
    if (k == DT_ARRAY_LEN(option_keys)) {
        dt_diag_set(d, 0, "unknown option '%.*s' (known: query, cache, from, until, since)",
                    shown(key), key.ptr);
        return false;
    }
    if (*seen & (1u << k)) {
        dt_diag_set(d, 0, "option '%s' given twice", option_keys[k]);
        return false;
    }
    *seen |= 1u << k;
    size_t at = key.len + 1;
    int64_t n;
    time_t when;
    if (k == 0 && !dt_str_eq(val, DT_STR("keep")) && !dt_str_eq(val, DT_STR("drop"))) {
        dt_diag_set(d, at, "query= takes keep or drop, not '%.*s'", shown(val), val.ptr);
        return false;
    }
    if (k == 1 && dt_parse_int(val, 0, INT32_MAX, &n) != 0) {
        dt_diag_set(d, at, "cache= takes a number of seconds, not '%.*s'", shown(val), val.ptr);
        return false;
    }
    if (k >= 2 && dt_parse_rfc3339(val, &when) != 0) {
        dt_diag_set(d, at, "%s= takes an RFC 3339 time such as 2026-12-01T06:00:00Z, not '%.*s'",
                    option_keys[k], shown(val), val.ptr);
        return false;
    }
    return true;
}

static bool is_option_sep(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';';
}

/* Writes the options of field i (separated by blanks or ';'), checking each. */
static bool csv_options(struct csv *cv, int i, unsigned seen)
{
    struct dt_str v = csv_value(cv, i);
    size_t k = 0;
    while (k < v.len) {
        while (k < v.len && is_option_sep(v.ptr[k]))
            k++;
        if (k == v.len)
            break;
        size_t start = k;
        while (k < v.len && !is_option_sep(v.ptr[k]))
            k++;
        struct dt_str opt = dt_str_make(v.ptr + start, k - start);
        struct dt_diag d;
        if (!check_option(opt, &seen, &d)) {
            fail(cv->c, csv_offset(cv, i, start + d.offset), "%s", d.msg);
            return false;
        }
        put_cstr(cv->c, " ");
        put(cv->c, opt);
    }
    return true;
}

/* Writes a target with ":splat" added to the end of its path (after a '/'), unless it
 * already has one. */
static void put_target_splat(struct conv *c, struct dt_str t)
{
    static const char splat[] = ":splat";
    for (size_t i = 0; i + sizeof(splat) - 1 <= t.len; i++) {
        if (!memcmp(t.ptr + i, splat, sizeof(splat) - 1)) {
            put_target(c, t);
            return;
        }
    }
    size_t cut = authority_end(t);
    while (cut < t.len && t.ptr[cut] != '?' && t.ptr[cut] != '#')
        cut++;
    put_target(c, dt_str_make(t.ptr, cut));
    if (cut == 0 || t.ptr[cut - 1] != '/')
        put_cstr(c, "/");
    put_cstr(c, splat);
    put_encoded(c, dt_str_make(t.ptr + cut, t.len - cut));
}

/* True for the words of a TRUE/FALSE column (any case). */
static bool is_bool_word(struct dt_str v)
{
    return dt_str_ieq(v, "true") || dt_str_ieq(v, "false");
}

static void csv_convert_row(struct csv *cv);

/* Converts one data row. Without a header, columns are source,target,status,options; a
 * row of more than four columns, or whose fourth is TRUE or FALSE, is in the order of
 * Cloudflare's bulk-redirect exports: source_url,target_url,status_code,
 * preserve_query_string,include_subdomains,subpath_matching,preserve_path_suffix. */
static void csv_row(struct csv *cv)
{
    if (cv->by_name || cv->n < 4 || (cv->n == 4 && !is_bool_word(csv_value(cv, 3)))) {
        csv_convert_row(cv);
        return;
    }
    int saved[COL_COUNT];
    memcpy(saved, cv->col, sizeof(saved));
    cv->col[COL_OPTIONS] = -1;
    for (int k = 0; k < 4; k++)
        cv->col[COL_PRESERVE_QUERY + k] = 3 + k < (int)cv->n ? 3 + k : -1;
    cv->cloudflare = true;
    csv_convert_row(cv);
    cv->cloudflare = false;
    memcpy(cv->col, saved, sizeof(saved));
}

static void csv_convert_row(struct csv *cv)
{
    struct conv *c = cv->c;
    unsigned want_min = cv->by_name ? cv->ncols : 2;
    unsigned want_max = cv->by_name ? cv->ncols : cv->cloudflare ? 7 : 4;
    if (cv->n < want_min) {
        const struct csv_field *last = &cv->fields[csv_last(cv)];
        size_t at = last->end + last->quoted; /* after a closing quote */
        if (cv->by_name)
            fail(c, at, "too few columns (%u; the header has %u)", cv->n, cv->ncols);
        else
            fail(c, at, "too few columns: expected source,target[,status[,options]]");
        return;
    }
    if (cv->n > want_max) {
        size_t at = cv->fields[want_max].start;
        if (cv->by_name)
            fail(c, at, "too many columns (%u; the header has %u)", cv->n, cv->ncols);
        else
            fail(c, at,
                 "too many columns (%u): expected source,target[,status[,options]], or "
                 "Cloudflare's source,target,status,preserve_query_string,include_subdomains,"
                 "subpath_matching,preserve_path_suffix",
                 cv->n);
        return;
    }
    bool keep_query, subdomains, subpath, suffix;
    if (!csv_bool(cv, COL_PRESERVE_QUERY, "preserve_query_string", &keep_query) ||
        !csv_bool(cv, COL_SUBDOMAINS, "include_subdomains", &subdomains) ||
        !csv_bool(cv, COL_SUBPATH, "subpath_matching", &subpath) ||
        !csv_bool(cv, COL_SUFFIX, "preserve_path_suffix", &suffix))
        return;

    int si = cv->col[COL_SOURCE], ti = cv->col[COL_TARGET];
    struct dt_str src = csv_value(cv, si), tgt = csv_value(cv, ti);
    struct dt_diag d;
    c->rule.len = 0;
    if (src.len && src.ptr[0] == '~') {
        if (!check_chars(src, "source", &d)) {
            csv_fail(cv, si, &d);
            return;
        }
        if (subdomains || subpath) {
            fail(c, cv->fields[si].start, "%s does not apply to a regular expression",
                 subdomains ? "include_subdomains" : "subpath_matching");
            return;
        }
        put(c, src);
    } else {
        struct source s;
        if (!split_source(src, true, &s, &d)) {
            csv_fail(cv, si, &d);
            return;
        }
        if (subdomains && s.host.len == 0) {
            fail(c, cv->fields[si].start,
                 "include_subdomains needs a host in the source, not '%.*s'", shown(src), src.ptr);
            return;
        }
        if (subpath && memchr(s.path.ptr, '?', s.path.len)) {
            fail(c, cv->fields[si].start,
                 "subpath_matching cannot be used with a query in the source");
            return;
        }
        put_source(c, &s, subdomains);
        /* Cloudflare matches subpaths by whole segments: /a covers /a and /a/b, not /ab.
         * detour's "/a/" plus "*" does the same, and its splat holds no leading '/'. */
        if (subpath && c->rule.ptr[c->rule.len - 1] != '*')
            put_cstr(c, c->rule.ptr[c->rule.len - 1] == '/' ? "*" : "/*");
    }
    if (!check_target(tgt, &d)) {
        if (tgt.len == 0)
            fail(c, cv->fields[ti].start, "missing target");
        else
            csv_fail(cv, ti, &d);
        return;
    }
    put_cstr(c, " ");
    if (subpath && suffix)
        put_target_splat(c, tgt);
    else
        put_target(c, tgt);

    int status = c->status;
    struct dt_str st = csv_value(cv, cv->col[COL_STATUS]);
    if (st.len) {
        int64_t n;
        if (dt_parse_int(st, 0, 999, &n) != 0 || !dt_http_is_redirect(n)) {
            fail(c, cv->fields[cv->col[COL_STATUS]].start,
                 "status '%.*s' is not a redirect status (301, 302, 303, 307 or 308)", shown(st),
                 st.ptr);
            return;
        }
        status = (int)n;
    }
    put_status(c, status);

    unsigned seen = 0;
    if (cv->col[COL_PRESERVE_QUERY] >= 0) {
        put_cstr(c, keep_query ? " query=keep" : " query=drop");
        seen |= 1u; /* the bit of "query" in option_keys */
    }
    if (cv->col[COL_OPTIONS] >= 0 && !csv_options(cv, cv->col[COL_OPTIONS], seen))
        return;
    emit(c, cv->fields[0].start);
}

static void convert_csv(struct conv *c)
{
    struct csv cv;
    memset(&cv, 0, sizeof(cv));
    cv.c = c;
    dt_buf_init(&cv.values);
    for (int k = 0; k < COL_COUNT; k++)
        cv.col[k] = k <= COL_OPTIONS ? k : -1;
    size_t pos = 0;
    int rc;
    while ((rc = csv_read(&cv, &pos)) != 0) {
        if (rc < 0) {
            cv.started = true;
            continue;
        }
        bool empty = true;
        for (int i = 0; i <= csv_last(&cv) && empty; i++)
            empty = cv.fields[i].len == 0;
        if (empty)
            continue; /* ",,," rows that spreadsheets write for empty lines */
        struct dt_str first = csv_value(&cv, 0);
        if (!cv.started && (dt_str_ieq(first, "source") || dt_str_ieq(first, "source_url"))) {
            cv.started = true;
            csv_header(&cv);
            continue;
        }
        cv.started = true;
        if (cv.dead)
            break;
        /* Positional rows name no column beyond the ones they have. */
        if (!cv.by_name)
            for (int k = COL_STATUS; k <= COL_OPTIONS; k++)
                cv.col[k] = (unsigned)k < cv.n ? k : -1;
        csv_row(&cv);
    }
    dt_buf_dispose(&cv.values);
}

/* ---- nginx map blocks -------------------------------------------------------------------- */

/* A word of nginx's configuration, unquoted and unescaped into ngx.words_text. */
struct ngx_word {
    size_t val, len; /* the value in ngx.words_text */
    size_t at;       /* offset in the text where the word starts (its quote, if quoted) */
};

enum ngx_token { TOK_WORD, TOK_SEMI, TOK_OPEN, TOK_CLOSE, TOK_END, TOK_BAD };

/* What a map's source variable holds. */
enum ngx_source { SRC_URI, SRC_REQUEST_URI };

struct ngx {
    struct conv *c;
    struct dt_buf words_text;             /* the values of the statement's words */
    struct ngx_word words[NGX_MAX_WORDS]; /* its first words */
    unsigned n;                           /* its words, kept or not */
    int depth;                            /* blocks open */
    int map_depth;                        /* depth of the map being read, or -1 */
    bool map_skip;                        /* its header was bad: entries are not read */
    enum ngx_source source;               /* what its keys are matched against */
    size_t map_at;                        /* where its "map" word is */
};

static struct dt_str ngx_value(const struct ngx *x, unsigned i)
{
    const struct ngx_word *w = &x->words[i];
    return dt_str_make(w->len ? x->words_text.ptr + w->val : "", w->len);
}

static bool ngx_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Appends the escape "\<next>" as nginx reads it: \" \' \\ stand for the character, \t \r
 * \n for the control character, and any other pair stays as written (so that regular
 * expressions keep their \d and \.). */
static void ngx_unescape(char next, struct dt_buf *out)
{
    switch (next) {
    case '"':
    case '\'':
    case '\\':
        dt_buf_append(out, &next, 1);
        return;
    case 't':
        dt_buf_append(out, "\t", 1);
        return;
    case 'r':
        dt_buf_append(out, "\r", 1);
        return;
    case 'n':
        dt_buf_append(out, "\n", 1);
        return;
    }
    dt_buf_append(out, "\\", 1);
    dt_buf_append(out, &next, 1);
}

/* Reads the next token from *pos. A word's value is kept only when keep (so that long
 * statements outside maps cost nothing). Returns TOK_BAD after reporting an unterminated
 * string. */
static enum ngx_token ngx_next(struct ngx *x, size_t *pos, bool keep, struct ngx_word *w)
{
    struct conv *c = x->c;
    const char *t = c->text.ptr;
    size_t len = c->text.len, i = *pos;
    for (;;) {
        while (i < len && ngx_space(t[i]))
            i++;
        if (i < len && t[i] == '#') {
            i = next_line(c, i);
            continue;
        }
        break;
    }
    w->at = i;
    if (i == len) {
        *pos = len;
        return TOK_END;
    }
    switch (t[i]) {
    case ';':
        *pos = i + 1;
        return TOK_SEMI;
    case '{':
        *pos = i + 1;
        return TOK_OPEN;
    case '}':
        *pos = i + 1;
        return TOK_CLOSE;
    }
    /* The scratch buffer holds the value whether kept or not; an unkept value is dropped. */
    struct dt_buf *out = &x->words_text;
    size_t mark = out->len;
    w->val = out->len;
    char quote = t[i];
    if (quote == '"' || quote == '\'') {
        for (i++;; i++) {
            if (i >= len) {
                fail(c, w->at, "unterminated string (it needs a closing %c)", quote);
                *pos = len;
                return TOK_BAD;
            }
            if (t[i] == quote)
                break;
            if (t[i] == '\\' && i + 1 < len)
                ngx_unescape(t[++i], out);
            else
                dt_buf_append(out, t + i, 1);
        }
        i++;
    } else {
        while (i < len && !ngx_space(t[i]) && t[i] != ';' && t[i] != '}') {
            if (t[i] == '{') {
                if (i == w->at || t[i - 1] != '$')
                    break;
                /* "${name}" */
                size_t close = i;
                while (close < len && t[close] != '}' && !ngx_space(t[close]))
                    close++;
                if (close < len && t[close] == '}')
                    close++;
                dt_buf_append(out, t + i, close - i);
                i = close;
                continue;
            }
            if (t[i] == '\\' && i + 1 < len) {
                ngx_unescape(t[i + 1], out);
                i += 2;
                continue;
            }
            dt_buf_append(out, t + i, 1);
            i++;
        }
    }
    w->len = out->len - w->val;
    if (!keep)
        out->len = mark;
    *pos = i;
    return TOK_WORD;
}

/* Starts reading a map block whose header is the statement's words. */
static void ngx_map_open(struct ngx *x)
{
    x->map_skip = true;
    x->map_at = x->words[0].at;
    if (x->n != 3) {
        fail(x->c, x->words[0].at, "expected 'map $uri $variable {'");
        return;
    }
    struct dt_str src = ngx_value(x, 1);
    if (dt_str_eq(src, DT_STR("$uri")) || dt_str_eq(src, DT_STR("$document_uri"))) {
        x->source = SRC_URI;
    } else if (dt_str_eq(src, DT_STR("$request_uri"))) {
        x->source = SRC_REQUEST_URI;
    } else {
        fail(x->c, x->words[1].at,
             "a map on %.*s cannot be converted (only $uri, $request_uri and $document_uri)",
             shown(src), src.ptr);
        return;
    }
    x->map_skip = false;
}

/* Characters a decoded path ($uri) may hold as they are in a request (RFC 3986 3.3 pchar
 * and '/'); the others were percent-encoded by the client. */
static bool path_char(unsigned char ch)
{
    return name_char(ch) || (ch && strchr("-.~!$&'()*+,;=:@/", ch));
}

/* True when a literal path would mean more in detour's syntax: a trailing '*' (a prefix) or
 * a segment ":name" (a placeholder). */
static bool needs_regex(struct dt_str p)
{
    if (p.len && p.ptr[p.len - 1] == '*')
        return true;
    for (size_t i = 0; i + 2 < p.len; i++)
        if (p.ptr[i] == '/' && p.ptr[i + 1] == ':' && name_start((unsigned char)p.ptr[i + 2]))
            return true;
    return false;
}

/* Writes a literal path as an anchored regular expression (bytes above 127 encoded). */
static void put_regex_literal(struct conv *c, struct dt_str p)
{
    put_cstr(c, "~^");
    for (size_t i = 0; i < p.len; i++) {
        if (p.ptr[i] && strchr("\\^$.|?*+()[]{}", p.ptr[i]))
            put_cstr(c, "\\");
        put_encoded(c, dt_str_make(p.ptr + i, 1));
    }
    put_cstr(c, "$");
}

/* Writes a map key as a source; false (with d) when it cannot be converted. */
static bool ngx_key(struct ngx *x, struct dt_str key, bool *regex, struct dt_diag *d)
{
    struct conv *c = x->c;
    *regex = false;
    if (key.len == 0) {
        dt_diag_set(d, 0, "empty key");
        return false;
    }
    if (key.ptr[0] == '~') {
        bool caseless = key.len > 1 && key.ptr[1] == '*';
        struct dt_str re = dt_str_make(key.ptr + 1 + caseless, key.len - 1 - caseless);
        if (re.len == 0) {
            dt_diag_set(d, 0, "empty regular expression");
            return false;
        }
        if (!check_chars(re, "regular expression", d)) {
            dt_diag_set(d, 0,
                        "whitespace or a control character inside the regular expression "
                        "'%.*s' cannot be converted",
                        shown(re), re.ptr);
            return false;
        }
        /* detour matches regular expressions against the path only. */
        if (x->source == SRC_REQUEST_URI && memmem(re.ptr, re.len, "\\?", 2)) {
            dt_diag_set(d, 0,
                        "the regular expression '%.*s' matches the query ('\\?'), but "
                        "detour matches regular expressions against the path only",
                        shown(re), re.ptr);
            return false;
        }
        put_cstr(c, caseless ? "~(?i)" : "~");
        put(c, re);
        *regex = true;
        return true;
    }
    if (key.ptr[0] != '/') {
        dt_diag_set(d, 0,
                    "the key '%.*s' is neither a path (starting with '/') nor a regular "
                    "expression (~ or ~*)",
                    shown(key), key.ptr);
        return false;
    }
    if (x->source == SRC_URI) {
        /* $uri is decoded: write the path as a client sends it. */
        struct dt_buf *p = &c->aux;
        p->len = 0;
        for (size_t i = 0; i < key.len; i++) {
            unsigned char ch = (unsigned char)key.ptr[i];
            if (path_char(ch)) {
                dt_buf_append(p, &key.ptr[i], 1);
            } else {
                static const char hex[] = "0123456789ABCDEF";
                char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
                dt_buf_append(p, enc, 3);
            }
        }
        struct dt_str path = dt_str_make(p->ptr, p->len);
        if (needs_regex(path))
            put_regex_literal(c, path);
        else
            put(c, path);
        return true;
    }
    /* $request_uri is the request's target as sent: a path and maybe a query. */
    if (!check_chars(key, "key", d))
        return false;
    if (memchr(key.ptr, '#', key.len)) {
        dt_diag_set(d, 0, "a key may not hold a fragment ('#'): clients do not send it");
        return false;
    }
    const char *q = memchr(key.ptr, '?', key.len);
    struct dt_str path = dt_str_make(key.ptr, q ? (size_t)(q - key.ptr) : key.len);
    struct dt_str query = q ? dt_str_make(q + 1, key.len - path.len - 1) : DT_STR("");
    if (needs_regex(path)) {
        if (query.len) {
            dt_diag_set(d, 0,
                        "a key with a literal '*' or ':name' and a query cannot be "
                        "converted");
            return false;
        }
        put_regex_literal(c, path);
        return true;
    }
    put_encoded(c, path);
    if (query.len) {
        put_cstr(c, "?");
        put_encoded(c, query);
    }
    return true;
}

/* Writes a map value as a target; false (with d) when it cannot be converted. */
static bool ngx_target(struct ngx *x, struct dt_str v, bool regex, struct dt_diag *d)
{
    struct conv *c = x->c;
    struct dt_buf *out = &c->aux;
    out->len = 0;
    for (size_t i = 0; i < v.len;) {
        char ch = v.ptr[i];
        if (ch == '$' && i + 1 < v.len) {
            size_t s = i + 1, e, next;
            if (v.ptr[s] == '{') {
                s++;
                e = s;
                while (e < v.len && v.ptr[e] != '}')
                    e++;
                next = e < v.len ? e + 1 : e;
            } else if (is_digit(v.ptr[s])) {
                e = next = s + 1;
            } else {
                e = s;
                while (e < v.len && name_char((unsigned char)v.ptr[e]))
                    e++;
                next = e;
            }
            struct dt_str var = dt_str_make(v.ptr + s, e - s);
            if (var.len == 1 && is_digit(var.ptr[0])) {
                if (!regex) {
                    dt_diag_set(d, 0,
                                "$%c refers to a capture, but the key is not a regular "
                                "expression",
                                var.ptr[0]);
                    return false;
                }
                dt_buf_append(out, "$", 1);
                dt_buf_append(out, var.ptr, 1);
                i = next;
                continue;
            }
            if (var.len) {
                dt_diag_set(d, 0,
                            "the nginx variable $%.*s cannot be converted (only $1..$9 after "
                            "a regular expression key)",
                            shown(var), var.ptr);
                return false;
            }
        }
        if (ch == ':' && i + 1 < v.len && name_start((unsigned char)v.ptr[i + 1])) {
            dt_buf_append(out, "%3A", 3); /* else it would read as a placeholder */
            i++;
            continue;
        }
        dt_buf_append(out, &ch, 1);
        i++;
    }
    struct dt_str t = dt_str_make(out->ptr, out->len);
    if (!check_target(t, d))
        return false;
    put_target(c, t);
    return true;
}

/* Converts the statement just read inside a map block. */
static void ngx_entry(struct ngx *x)
{
    struct conv *c = x->c;
    if (x->map_skip || x->n == 0)
        return;
    struct dt_str key = ngx_value(x, 0);
    size_t at = x->words[0].at;
    if (dt_str_eq(key, DT_STR("include"))) {
        fail(c, at, "include is not supported: inline the included file");
        return;
    }
    if (x->n == 1) {
        if (dt_str_eq(key, DT_STR("hostnames")) || dt_str_eq(key, DT_STR("volatile")))
            return;
        fail(c, at, "expected 'KEY VALUE;', got '%.*s' alone", shown(key), key.ptr);
        return;
    }
    if (x->n != 2) {
        fail(c, at, "expected 'KEY VALUE;', got %u words", x->n);
        return;
    }
    if (dt_str_eq(key, DT_STR("default")))
        return;
    struct dt_str value = ngx_value(x, 1);
    if (value.len == 0)
        return; /* an empty value is nginx's "no redirect" */
    struct dt_diag d;
    bool regex;
    c->rule.len = 0;
    if (!ngx_key(x, key, &regex, &d)) {
        fail(c, at, "%s", d.msg);
        return;
    }
    put_cstr(c, " ");
    if (!ngx_target(x, value, regex, &d)) {
        fail(c, at, "%s", d.msg);
        return;
    }
    put_status(c, c->status);
    emit(c, at);
}

static void convert_nginx(struct conv *c)
{
    struct ngx x;
    memset(&x, 0, sizeof(x));
    x.c = c;
    x.map_depth = -1;
    dt_buf_init(&x.words_text);
    size_t pos = 0;
    for (;;) {
        struct ngx_word w;
        bool keep = x.n < NGX_MAX_WORDS;
        enum ngx_token tok = ngx_next(&x, &pos, keep, &w);
        if (tok == TOK_BAD)
            break;
        if (tok == TOK_WORD) {
            if (keep)
                x.words[x.n] = w;
            x.n++;
            continue;
        }
        bool in_map = x.map_depth >= 0 && x.depth == x.map_depth;
        if (tok == TOK_END) {
            if (x.map_depth >= 0)
                fail(c, x.map_at, "the map block is not closed (a '}' is missing)");
            break;
        }
        if (tok == TOK_SEMI && in_map) {
            ngx_entry(&x);
        } else if (tok == TOK_OPEN) {
            if (x.map_depth < 0 && x.n > 0 && dt_str_eq(ngx_value(&x, 0), DT_STR("map"))) {
                ngx_map_open(&x);
                x.map_depth = x.depth + 1;
            } else if (in_map) {
                fail(c, w.at, "unexpected '{' inside a map block");
            }
            x.depth++;
        } else if (tok == TOK_CLOSE) {
            if (in_map && x.n > 0 && !x.map_skip)
                fail(c, x.words[0].at, "missing ';' at the end of the entry");
            if (x.depth > 0)
                x.depth--;
            if (x.map_depth >= 0 && x.depth < x.map_depth)
                x.map_depth = -1;
        }
        x.n = 0;
        x.words_text.len = 0;
    }
    dt_buf_dispose(&x.words_text);
}

/* ---- Netlify _redirects ------------------------------------------------------------------ */

/* The next blank-separated word of the line ending at end; false at its end or a comment. */
static bool next_word(const struct conv *c, size_t end, size_t *i, struct dt_str *w)
{
    const char *t = c->text.ptr;
    size_t k = *i;
    while (k < end && is_blank(t[k]))
        k++;
    if (k == end || t[k] == '#') {
        *i = end;
        return false;
    }
    size_t start = k;
    while (k < end && !is_blank(t[k]))
        k++;
    *w = dt_str_make(t + start, k - start);
    *i = k;
    return true;
}

/* Converts "FROM [KEY=VALUE...] TO [STATUS[!]] [CONDITIONS]" on the line [start, end). */
static void netlify_line(struct conv *c, size_t start, size_t end)
{
    size_t i = start;
    struct dt_str from, to, w;
    struct dt_diag d;
    if (!next_word(c, end, &i, &from))
        return;
    size_t at = offset_of(c, from.ptr);
    struct source s;
    if (!split_source(from, false, &s, &d)) {
        fail(c, at + d.offset, "%s", d.msg);
        return;
    }
    const char *star = memchr(s.path.ptr, '*', s.path.len);
    if (star && star != s.path.ptr + s.path.len - 1) {
        fail(c, offset_of(c, star), "'*' may only stand at the end of the source");
        return;
    }
    /* Query parameters between FROM and TO become query conditions. */
    struct dt_buf *query = &c->aux;
    query->len = 0;
    struct dt_str last = from;
    for (;;) {
        if (!next_word(c, end, &i, &w)) {
            fail(c, offset_of(c, last.ptr) + last.len, "missing target after '%.*s'", shown(last),
                 last.ptr);
            return;
        }
        if (w.ptr[0] == '/' || http_scheme_len(w)) {
            to = w;
            break;
        }
        const char *eq = memchr(w.ptr, '=', w.len);
        if (!eq || eq == w.ptr) {
            fail(c, offset_of(c, w.ptr),
                 "expected a query parameter KEY=VALUE or the target, not '%.*s'", shown(w), w.ptr);
            return;
        }
        if (!check_chars(w, "query parameter", &d)) {
            fail(c, offset_of(c, w.ptr) + d.offset, "%s", d.msg);
            return;
        }
        if (query->len)
            dt_buf_append(query, "&", 1);
        dt_buf_append_str(query, w);
        last = w;
    }
    if (!check_target(to, &d)) {
        fail(c, offset_of(c, to.ptr) + d.offset, "%s", d.msg);
        return;
    }
    int status = c->status;
    bool more = next_word(c, end, &i, &w);
    if (more && is_digit(w.ptr[0])) {
        struct dt_str num = w;
        if (num.len > 1 && num.ptr[num.len - 1] == '!')
            num.len--; /* "force": detour always applies its rules */
        int64_t n;
        if (dt_parse_int(num, 0, 999, &n) != 0) {
            fail(c, offset_of(c, w.ptr), "'%.*s' is not a status", shown(w), w.ptr);
            return;
        }
        if (!dt_http_is_redirect(n)) {
            if (n >= 300 && n < 400)
                fail(c, offset_of(c, w.ptr),
                     "status %d is not a redirect status (301, 302, 303, 307 or 308)", (int)n);
            else
                fail(c, offset_of(c, w.ptr),
                     "Netlify rewrites (200) and custom pages (404, "
                     "410, ...) are not redirects");
            return;
        }
        status = (int)n;
        more = next_word(c, end, &i, &w);
    }
    if (more) {
        if (memchr(w.ptr, '=', w.len))
            fail(c, offset_of(c, w.ptr), "conditions are not supported: '%.*s'", shown(w), w.ptr);
        else
            fail(c, offset_of(c, w.ptr), "unexpected '%.*s' at the end of the rule", shown(w),
                 w.ptr);
        return;
    }
    c->rule.len = 0;
    put_source(c, &s, false);
    if (query->len) {
        put_cstr(c, memchr(s.path.ptr, '?', s.path.len) ? "&" : "?");
        put(c, dt_str_make(query->ptr, query->len));
    }
    put_cstr(c, " ");
    put_target(c, to);
    put_status(c, status);
    emit(c, at);
}

static void convert_netlify(struct conv *c)
{
    size_t pos = 0;
    while (pos < c->text.len) {
        const char *nl = memchr(c->text.ptr + pos, '\n', c->text.len - pos);
        size_t end = nl ? offset_of(c, nl) : c->text.len;
        size_t start = pos;
        pos = end + 1;
        if (end > start && c->text.ptr[end - 1] == '\r')
            end--;
        netlify_line(c, start, end);
    }
}

/* ---- entry point ------------------------------------------------------------------------- */

int dt_import_convert(enum dt_rule_format f, const char *name, struct dt_str text,
                      int default_status, struct dt_import *out, struct dt_errors *errs)
{
    if ((int)f < (int)DT_FORMAT_DETOUR || (int)f > (int)DT_FORMAT_NETLIFY)
        return DT_EINVAL;
    if (default_status != 0 && !dt_http_is_redirect(default_status))
        return DT_EINVAL;
    if (!name)
        name = "-";
    if (text.len > DT_IMPORT_MAX_TEXT) {
        dt_errors_add_at(errs, name, 0, 0, "larger than %zu bytes", DT_IMPORT_MAX_TEXT);
        return DT_ELIMIT;
    }
    if (text.len == 0)
        text.ptr = "";
    /* A byte order mark, as spreadsheets write at the start of a UTF-8 CSV file. */
    if (text.len >= 3 && !memcmp(text.ptr, "\xEF\xBB\xBF", 3)) {
        text.ptr += 3;
        text.len -= 3;
    }
    struct conv c = {
        .name = name,
        .text = text,
        .status = default_status           ? default_status
                  : f == DT_FORMAT_NETLIFY ? 301
                                           : 307,
        .out = out,
        .errs = errs,
        .seen_line = 1,
    };
    dt_buf_init(&c.rule);
    dt_buf_init(&c.aux);
    unsigned before = errs->count;
    switch (f) {
    case DT_FORMAT_DETOUR:
        convert_detour(&c);
        break;
    case DT_FORMAT_CSV:
        convert_csv(&c);
        break;
    case DT_FORMAT_NGINX_MAP:
        convert_nginx(&c);
        break;
    case DT_FORMAT_NETLIFY:
        convert_netlify(&c);
        break;
    }
    dt_buf_dispose(&c.rule);
    dt_buf_dispose(&c.aux);
    return errs->count > before ? DT_ESYNTAX : 0;
}
