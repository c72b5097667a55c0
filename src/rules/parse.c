/* parse: the rule codec: one line of a rule file (SOURCE TARGET [STATUS] [KEY=VALUE]...) to
 * a rule's fields and back, with errors that name the column. Loading files is load.c's. */
#include "rules/rules.h"

#include <stdio.h>

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

size_t dt_rule_source_host(const char *source, char *out, size_t cap)
{
    if (source[0] == '/' || source[0] == '~' || source[0] == '\0')
        return 0;
    const char *p = source;
    const char *sep = strstr(p, "://");
    size_t first_slash = strcspn(p, "/");
    if (sep && (size_t)(sep - p) < first_slash)
        p = sep + 3;
    size_t n = strcspn(p, "/");
    if (n == 0 || n > cap)
        return 0;
    memcpy(out, p, n);
    dt_ascii_lower(out, n);
    return n;
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

/* The options' keys, in the order dt_rule_format_options writes them. */
static const char *const keys[] = {"query", "cache", "from", "until", "since", "promote-after"};

/* Which options s has already (one bit a key of keys[]): they count as given. */
static unsigned options_set(const struct dt_rule_spec *s)
{
    return (s->query_set || s->query_drop ? 1u : 0) | (s->max_age >= 0 ? 2u : 0) |
           (s->has_from ? 4u : 0) | (s->has_until ? 8u : 0) | (s->has_since ? 16u : 0) |
           (s->promote_after > 0 ? 32u : 0);
}

/* One KEY=VALUE into s; in_line: a field of a rule line (where a status may stand too). */
static int option(struct dt_rule_spec *s, struct dt_str field, struct dt_str line, bool in_line,
                  struct dt_diag *d)
{
    const char *eq = memchr(field.ptr, '=', field.len);
    if (!eq)
        return bad(d, line, field.ptr,
                   in_line ? "expected STATUS or KEY=VALUE, got '%.*s' (a comment starts with '#')"
                           : "expected an option KEY=VALUE, not '%.*s'",
                   field);
    struct dt_str key = {field.ptr, (size_t)(eq - field.ptr)};
    struct dt_str val = {eq + 1, field.len - key.len - 1};
    unsigned k = 0;
    while (k < DT_ARRAY_LEN(keys) && !dt_str_eq(key, dt_str_make(keys[k], strlen(keys[k]))))
        k++;
    if (k == DT_ARRAY_LEN(keys))
        return bad(d, line, key.ptr,
                   "unknown option '%.*s' (known: query=keep|drop, cache=SECONDS, from=TIME, "
                   "until=TIME, since=TIME, promote-after=AGE)",
                   key);
    if (options_set(s) & (1u << k))
        return bad(d, line, key.ptr, "option '%.*s' given twice", key);
    int64_t n;
    switch (k) {
    case 0:
        if (dt_str_eq(val, DT_STR("keep")))
            s->query_drop = false;
        else if (dt_str_eq(val, DT_STR("drop")))
            s->query_drop = true;
        else
            return bad(d, line, val.ptr, "query= takes keep or drop, not '%.*s'", val);
        s->query_set = true;
        break;
    case 1:
        if (dt_parse_int(val, 0, INT32_MAX, &n) != 0)
            return bad(d, line, val.ptr, "cache= takes a number of seconds, not '%.*s'", val);
        s->max_age = n;
        break;
    case 5:
        if (dt_rule_parse_age(val, &s->promote_after) != 0)
            return bad(d, line, val.ptr,
                       "promote-after= takes an age such as 90d, 12h, 30m or 45s, not '%.*s'", val);
        s->promote_at = (uint32_t)(key.ptr - line.ptr);
        break;
    case 2:
    case 3:
    case 4: {
        time_t t;
        if (dt_parse_rfc3339(val, &t) != 0) {
            dt_diag_set(d, (size_t)(val.ptr - line.ptr),
                        "%s= takes an RFC 3339 time such as 2026-12-01T06:00:00Z, not '%.*s'",
                        keys[k], (int)val.len, val.ptr);
            return DT_ESYNTAX;
        }
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

/* The next blank-separated field of line from *i (a '#' where a field would start ends the
 * line when comments): 1 with field, 0 at the end, or DT_ESYNTAX for a control character. */
static int next_field(struct dt_str line, size_t *i, bool comments, struct dt_str *field,
                      struct dt_diag *d)
{
    size_t k = *i;
    while (k < line.len && is_space(line.ptr[k]))
        k++;
    if (k == line.len || (comments && line.ptr[k] == '#')) {
        *i = k;
        return 0;
    }
    size_t start = k;
    while (k < line.len && !is_space(line.ptr[k])) {
        unsigned char c = (unsigned char)line.ptr[k];
        if (c < 0x20 || c == 0x7f)
            return bad(d, line, line.ptr + k, "control character in a rule%.*s", DT_STR(""));
        k++;
    }
    *field = dt_str_make(line.ptr + start, k - start);
    *i = k;
    return 1;
}

int dt_rule_parse_line(struct dt_str line, struct dt_rule_spec *s, struct dt_diag *d)
{
    dt_rule_spec_init(s);
    s->line = line;
    if (line.len && line.ptr[line.len - 1] == '\r')
        line.len--; /* CRLF files */
    unsigned nfields = 0;
    bool have_status = false;
    size_t i = 0;
    struct dt_str field;
    int more;
    while ((more = next_field(line, &i, true, &field, d)) > 0) {
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
                int rc = option(s, field, line, true, d);
                if (rc)
                    return rc;
            }
        }
    }
    if (more < 0)
        return more;
    if (nfields == 0)
        return 0;
    if (nfields == 1)
        return bad(d, line, line.ptr + i, "missing target after the source '%.*s'", s->source);
    return 1;
}

int dt_rule_parse_options(struct dt_str text, struct dt_rule_spec *s, struct dt_diag *d)
{
    size_t i = 0;
    struct dt_str field;
    int more;
    while ((more = next_field(text, &i, false, &field, d)) > 0) {
        int rc = option(s, field, text, false, d);
        if (rc)
            return rc;
    }
    return more;
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
    if (s->query_drop || s->query_set)
        put_key(out, start, s->query_drop ? "query=drop" : "query=keep");
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
