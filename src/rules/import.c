/* import: converts CSV bulk-redirect lists (import_csv.c), nginx map blocks
 * (import_nginx.c) and Netlify _redirects files (import_netlify.c) into detour rule lines,
 * one entry at a time, reporting every entry it cannot convert with its file, line and
 * column; here, what the formats share and the entry points: a whole text, or a stream fed
 * piece by piece (which the whole text goes through as one piece). The mapping of each
 * format is described in docs/import.md. */
#include "rules/convert.h"

#include <stdio.h>
#include <stdlib.h>

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
        c->seen_line = c->first_line;
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

/* Reports an entry that cannot be converted, at a byte offset of the text. */
void dt_import_fail(struct conv *c, size_t off, const char *fmt, ...)
{
    if (!c->errs)
        return; /* measuring records only */
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
size_t dt_import_offset_of(const struct conv *c, const char *p)
{
    return (size_t)(p - c->text.ptr);
}

/* How many bytes of v a message quotes: at most MAX_SHOWN, cut at a character boundary.
 * Used as: "'%.*s'", dt_import_shown(v), v.ptr. */
int dt_import_shown(struct dt_str v)
{
    size_t n = v.len;
    if (n > MAX_SHOWN) {
        n = MAX_SHOWN;
        while (n > 0 && ((unsigned char)v.ptr[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

/* Starts a converted rule: an empty source, and the status of entries that carry none. */
void dt_import_begin(struct conv *c)
{
    c->rule.len = 0;
    c->target_at = SIZE_MAX;
    dt_rule_spec_init(&c->spec);
    c->spec.status = c->status;
}

/* Ends the rule's source: what is written from now on is its target. */
void dt_import_begin_target(struct conv *c)
{
    c->target_at = c->rule.len;
}

/* Adds the rule to the output, as coming from the line of offset at: the source and target
 * written in c->rule with c->spec's status and options, as the rule codec writes a line. */
void dt_import_emit(struct conv *c, size_t at)
{
    if (c->target_at != SIZE_MAX) {
        c->spec.source = dt_str_make(c->rule.ptr, c->target_at);
        c->spec.target = dt_str_make(c->rule.ptr + c->target_at, c->rule.len - c->target_at);
        c->line.len = 0;
        dt_rule_format(&c->line, &c->spec);
        struct dt_buf t = c->rule;
        c->rule = c->line;
        c->line = t;
    }
    if (c->rule.len > DT_IMPORT_MAX_LINE) {
        dt_import_fail(c, at, "the converted rule is longer than %d bytes", DT_IMPORT_MAX_LINE);
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

void dt_import_put(struct conv *c, struct dt_str s)
{
    dt_buf_append_str(&c->rule, s);
}

void dt_import_put_cstr(struct conv *c, const char *s)
{
    dt_buf_append(&c->rule, s, strlen(s));
}

/* Writes s lower-cased (host names and schemes). */
static void put_lower(struct conv *c, struct dt_str s)
{
    if (s.len == 0)
        return;
    size_t at = c->rule.len;
    dt_import_put(c, s);
    dt_ascii_lower(c->rule.ptr + at, s.len);
}

/* Writes s with its bytes above 127 percent-encoded, as clients send them (RFC 3986 2.1). */
void dt_import_put_encoded(struct conv *c, struct dt_str s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch < 0x80)
            continue;
        dt_import_put(c, dt_str_make(s.ptr + run, i - run));
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        dt_buf_append(&c->rule, enc, 3);
        run = i + 1;
    }
    dt_import_put(c, dt_str_make(s.ptr + run, s.len - run));
}

/* Rejects whitespace and control characters in a URL-like field (what names it). */
bool dt_import_check_chars(struct dt_str v, const char *what, struct dt_diag *d)
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
size_t dt_import_http_scheme_len(struct dt_str v)
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
size_t dt_import_authority_end(struct dt_str v)
{
    size_t i = dt_import_http_scheme_len(v);
    if (i)
        while (i < v.len && !ends_authority(v.ptr[i]))
            i++;
    return i;
}

/* Writes a checked target: its scheme and host as they are, the rest with put_encoded. */
void dt_import_put_target(struct conv *c, struct dt_str t)
{
    size_t a = dt_import_authority_end(t);
    dt_import_put(c, dt_str_make(t.ptr, a));
    dt_import_put_encoded(c, dt_str_make(t.ptr + a, t.len - a));
}

/* Checks a target: a path starting with '/' or an absolute http(s) URL with a host, with no
 * whitespace or control characters. d->offset is relative to v. */
bool dt_import_check_target(struct dt_str v, struct dt_diag *d)
{
    if (v.len == 0) {
        dt_diag_set(d, 0, "missing target");
        return false;
    }
    if (!dt_import_check_chars(v, "target", d))
        return false;
    if (v.ptr[0] == '/') {
        if (v.len > 1 && v.ptr[1] == '/') {
            dt_diag_set(d, 0, "the target '%.*s' starts with '//' (write its scheme: https://)",
                        dt_import_shown(v), v.ptr);
            return false;
        }
        return true;
    }
    size_t n = dt_import_http_scheme_len(v);
    if (n == 0) {
        dt_diag_set(d, 0,
                    "the target must be a path starting with '/' or an http(s) URL, not '%.*s'",
                    dt_import_shown(v), v.ptr);
        return false;
    }
    if (n == v.len || ends_authority(v.ptr[n])) {
        dt_diag_set(d, 0, "the target '%.*s' has no host", dt_import_shown(v), v.ptr);
        return false;
    }
    return true;
}

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
bool dt_import_split_source(struct dt_str v, bool bare_host, struct source *s, struct dt_diag *d)
{
    memset(s, 0, sizeof(*s));
    if (v.len == 0) {
        dt_diag_set(d, 0, "missing source");
        return false;
    }
    if (!dt_import_check_chars(v, "source", d))
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
    size_t n = dt_import_http_scheme_len(v);
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
                        dt_import_shown(v), v.ptr);
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
        dt_diag_set(d, 0, "the source '%.*s' has no host", dt_import_shown(v), v.ptr);
        return false;
    }
    if (!n && !memchr(s->host.ptr, '.', s->host.len)) {
        dt_diag_set(d, 0,
                    "the source must be a path starting with '/', HOST/path or an http(s) URL, "
                    "not '%.*s'",
                    dt_import_shown(v), v.ptr);
        return false;
    }
    if (!host_ok(s->host)) {
        dt_diag_set(d, n,
                    "bad host name '%.*s' in the source (letters, digits, '-' and '.'; no port; "
                    "xn-- for international names)",
                    dt_import_shown(s->host), s->host.ptr);
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
void dt_import_put_source(struct conv *c, const struct source *s, bool subdomains)
{
    if (s->scheme.len) {
        put_lower(c, s->scheme);
        dt_import_put_cstr(c, "://");
    }
    struct dt_str host = s->host;
    if (host.len && subdomains) {
        if (host.ptr[0] == '*')
            host = dt_str_make(host.ptr + 1, host.len - 1); /* "*.x": now ".x" */
        else if (host.ptr[0] != '.')
            dt_import_put_cstr(c, ".");
    }
    put_lower(c, host);
    if (s->path.len == 0 || s->path.ptr[0] != '/')
        dt_import_put_cstr(c, "/");
    dt_import_put_encoded(c, s->path);
}

/* The offset just past the line that holds offset i (after its '\n'). */
size_t dt_import_next_line(const struct conv *c, size_t i)
{
    const char *nl = memchr(c->text.ptr + i, '\n', c->text.len - i);
    return nl ? dt_import_offset_of(c, nl) + 1 : c->text.len;
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
        size_t end = nl ? dt_import_offset_of(c, nl) : c->text.len;
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
            dt_import_fail(c, k, "control character in a rule");
            continue;
        }
        dt_import_begin(c);
        dt_import_put(c, dt_str_make(t + s, e - s));
        dt_import_emit(c, s);
    }
}

/* ---- streams and the entry point ------------------------------------------------------- */

struct dt_import_stream {
    enum dt_rule_format format;
    struct conv c;   /* its name, status and buffers live as long as the stream */
    struct csv *csv; /* CSV: the header's columns and what else earlier rows taught */
    size_t fed;      /* bytes of the input fed so far (the BOM is only at 0) */
    bool over;       /* fed more than DT_IMPORT_MAX_TEXT: reported, nothing more converted */
};

struct dt_import_stream *dt_import_stream_new(enum dt_rule_format f, const char *name,
                                              int default_status)
{
    if ((int)f < (int)DT_FORMAT_DETOUR || (int)f > (int)DT_FORMAT_NETLIFY)
        return NULL;
    if (default_status != 0 && !dt_http_is_redirect(default_status))
        return NULL;
    struct dt_import_stream *s = dt_xcalloc(1, sizeof(*s));
    s->format = f;
    s->c.name = name ? name : "-";
    s->c.status = default_status ? default_status : f == DT_FORMAT_NETLIFY ? 301 : 307;
    dt_buf_init(&s->c.rule);
    dt_buf_init(&s->c.line);
    dt_buf_init(&s->c.aux);
    if (f == DT_FORMAT_CSV)
        s->csv = dt_import_csv_new();
    return s;
}

void dt_import_stream_free(struct dt_import_stream *s)
{
    if (!s)
        return;
    dt_buf_dispose(&s->c.rule);
    dt_buf_dispose(&s->c.line);
    dt_buf_dispose(&s->c.aux);
    dt_import_csv_free(s->csv);
    free(s);
}

/* The byte order mark that spreadsheets write at the start of a UTF-8 CSV file. */
static bool has_bom(struct dt_str text)
{
    return text.len >= 3 && !memcmp(text.ptr, "\xEF\xBB\xBF", 3);
}

size_t dt_import_stream_whole(const struct dt_import_stream *s, struct dt_str text, bool at_eof)
{
    if (at_eof || text.len == 0)
        return text.len;
    switch (s->format) {
    case DT_FORMAT_DETOUR:
    case DT_FORMAT_NETLIFY:
        /* Lines: up to the last LF (so never between a CR and its LF). */
        for (size_t n = text.len; n > 0; n--)
            if (text.ptr[n - 1] == '\n')
                return n;
        return 0;
    case DT_FORMAT_CSV: {
        /* The mark is no part of the first record (it could hide an opening quote). */
        size_t bom = s->fed == 0 && has_bom(text) ? 3 : 0;
        size_t n = dt_import_csv_whole(dt_str_make(text.ptr + bom, text.len - bom), false);
        return n ? bom + n : 0;
    }
    case DT_FORMAT_NGINX_MAP:
        return 0; /* a map block spans lines: the file is converted whole */
    }
    return 0;
}

int dt_import_stream_feed(struct dt_import_stream *s, struct dt_str text, uint32_t first_line,
                          struct dt_import *out, struct dt_errors *errs)
{
    struct conv *c = &s->c;
    if (s->over)
        return DT_ELIMIT;
    if (text.len > DT_IMPORT_MAX_TEXT - s->fed) {
        dt_errors_add_at(errs, c->name, 0, 0, "larger than %zu bytes", DT_IMPORT_MAX_TEXT);
        s->over = true;
        return DT_ELIMIT;
    }
    if (text.len == 0)
        text.ptr = "";
    if (s->fed == 0 && has_bom(text)) {
        text.ptr += 3;
        text.len -= 3;
        s->fed = 3;
    }
    s->fed += text.len;
    c->text = text;
    c->first_line = first_line;
    c->out = out;
    c->errs = errs;
    c->seen_off = 0;
    c->seen_line_start = 0;
    c->seen_line = first_line;
    unsigned before = errs->count;
    switch (s->format) {
    case DT_FORMAT_DETOUR:
        convert_detour(c);
        break;
    case DT_FORMAT_CSV:
        dt_import_csv(s->csv, c);
        break;
    case DT_FORMAT_NGINX_MAP:
        dt_import_nginx(c);
        break;
    case DT_FORMAT_NETLIFY:
        dt_import_netlify(c);
        break;
    }
    c->out = NULL;
    c->errs = NULL;
    return errs->count > before ? DT_ESYNTAX : 0;
}

int dt_import_convert(enum dt_rule_format f, const char *name, struct dt_str text,
                      int default_status, struct dt_import *out, struct dt_errors *errs)
{
    struct dt_import_stream *s = dt_import_stream_new(f, name, default_status);
    if (!s)
        return DT_EINVAL;
    int rc = dt_import_stream_feed(s, text, 1, out, errs);
    dt_import_stream_free(s);
    return rc;
}
