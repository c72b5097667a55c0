/* import_csv: CSV bulk-redirect lists (RFC 4180): Cloudflare's exports and others with a
 * header naming their columns, or source,target[,status] without one. */
#include "rules/convert.h"

#include <stdio.h>
#include <stdlib.h>

#define CSV_MAX_COLUMNS 16 /* columns a CSV header may name */

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
    /* What earlier records taught, kept between the pieces of a stream: */
    bool started;       /* a header or a data row has been read */
    bool by_name;       /* a header named the columns */
    bool dead;          /* the header makes rows unreadable */
    bool stopped;       /* dead, and a row came: nothing more is read */
    bool cloudflare;    /* this headerless row is Cloudflare's */
    unsigned ncols;     /* columns the header named */
    int col[COL_COUNT]; /* each column's field, or -1 */
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

/* True at a line break: LF or CR LF. */
static bool csv_eol(const struct conv *c, size_t i)
{
    const char *t = c->text.ptr;
    return t[i] == '\n' || (t[i] == '\r' && i + 1 < c->text.len && t[i + 1] == '\n');
}

/* What csv_read found. */
enum csv_read {
    CSV_END,     /* no record before the end of the text */
    CSV_RECORD,  /* a record, in cv */
    CSV_BAD,     /* a malformed record (reported): *pos is past the line where it failed */
    CSV_UNCLOSED /* a quoted field without its closing quote (reported): it ran to the end */
};

/* Reads the record at *pos into cv, skipping blank and comment lines before it (RFC 4180:
 * fields separated by commas, quoted fields may hold commas, line breaks and doubled quotes;
 * here also blanks around fields are dropped). At CSV_END, *pos is where the skipped lines
 * stop being whole: the end of the text, or the start of its last line when that one has no
 * line break. */
static enum csv_read csv_read(struct csv *cv, size_t *pos)
{
    struct conv *c = cv->c;
    const char *t = c->text.ptr;
    size_t len = c->text.len, i = *pos;
    for (;;) {
        size_t j = i;
        while (j < len && is_blank(t[j]))
            j++;
        if (j == len) {
            *pos = i;
            return CSV_END;
        }
        if (!csv_eol(c, j) && t[j] != '#')
            break;
        size_t next = dt_import_next_line(c, j);
        if (t[next - 1] != '\n') {
            *pos = i; /* a comment without a line break ends the text */
            return CSV_END;
        }
        i = next;
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
                    dt_import_fail(c, open, "unterminated quoted field (it needs a closing '\"')");
                    *pos = len;
                    return CSV_UNCLOSED;
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
                dt_import_fail(
                    c, i,
                    "text after the closing quote of a field (inside quotes, write a quote "
                    "as \"\")");
                *pos = dt_import_next_line(c, i);
                return CSV_BAD;
            }
        } else {
            size_t start = i;
            while (i < len && t[i] != ',' && !csv_eol(c, i)) {
                if (t[i] == '"') {
                    dt_import_fail(c, i,
                                   "a quote inside an unquoted field (quote the whole field and "
                                   "double the quote: \"a\"\"b\")");
                    *pos = dt_import_next_line(c, i);
                    return CSV_BAD;
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
        return CSV_RECORD;
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
        dt_import_fail(c, cv->fields[CSV_MAX_COLUMNS].start,
                       "too many columns in the header (at most %d)", CSV_MAX_COLUMNS);
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
                dt_import_fail(c, cv->fields[i].start,
                               "unknown column '%.*s' (known: source, target, status, options, "
                               "preserve_query_string, include_subdomains, subpath_matching, "
                               "preserve_path_suffix)",
                               dt_import_shown(name), name.ptr);
            reported = true;
            continue;
        }
        enum csv_col col = csv_names[k].col;
        if (cv->col[col] >= 0) {
            if (!reported)
                dt_import_fail(c, cv->fields[i].start, "column '%.*s' given twice",
                               dt_import_shown(name), name.ptr);
            reported = true;
            continue;
        }
        cv->col[col] = (int)i;
    }
    if (cv->col[COL_TARGET] < 0) {
        if (!reported)
            dt_import_fail(c, cv->fields[0].start,
                           "the header has no target column (target or target_url)");
        cv->dead = true;
    }
}

/* Reports a problem found at byte diag->offset of field i. */
static void csv_fail(struct csv *cv, int i, const struct dt_diag *d)
{
    dt_import_fail(cv->c, csv_offset(cv, i, d->offset), "%s", d->msg);
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
    dt_import_fail(cv->c, cv->fields[cv->col[col]].start, "%s takes TRUE or FALSE, not '%.*s'",
                   name, dt_import_shown(v), v.ptr);
    return false;
}

/* Reads the options of field i (separated by blanks or ';') into the rule, with the rule
 * codec: the options of a rule line, each at most once. */
static bool csv_options(struct csv *cv, int i)
{
    struct dt_str v = csv_value(cv, i);
    struct dt_buf *b = &cv->c->aux;
    b->len = 0;
    dt_buf_append_str(b, v);
    for (size_t k = 0; k < b->len; k++)
        if (b->ptr[k] == ';' || b->ptr[k] == '\r' || b->ptr[k] == '\n')
            b->ptr[k] = ' ';
    struct dt_diag d;
    if (dt_rule_parse_options(dt_str_make(b->ptr, b->len), &cv->c->spec, &d) != 0) {
        dt_import_fail(cv->c, csv_offset(cv, i, d.offset), "%s", d.msg);
        return false;
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
            dt_import_put_target(c, t);
            return;
        }
    }
    size_t cut = dt_import_authority_end(t);
    while (cut < t.len && t.ptr[cut] != '?' && t.ptr[cut] != '#')
        cut++;
    dt_import_put_target(c, dt_str_make(t.ptr, cut));
    if (cut == 0 || t.ptr[cut - 1] != '/')
        dt_import_put_cstr(c, "/");
    dt_import_put_cstr(c, splat);
    dt_import_put_encoded(c, dt_str_make(t.ptr + cut, t.len - cut));
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
            dt_import_fail(c, at, "too few columns (%u; the header has %u)", cv->n, cv->ncols);
        else
            dt_import_fail(c, at, "too few columns: expected source,target[,status[,options]]");
        return;
    }
    if (cv->n > want_max) {
        size_t at = cv->fields[want_max].start;
        if (cv->by_name)
            dt_import_fail(c, at, "too many columns (%u; the header has %u)", cv->n, cv->ncols);
        else
            dt_import_fail(
                c, at,
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
    dt_import_begin(c);
    if (src.len && src.ptr[0] == '~') {
        if (!dt_import_check_chars(src, "source", &d)) {
            csv_fail(cv, si, &d);
            return;
        }
        if (subdomains || subpath) {
            dt_import_fail(c, cv->fields[si].start, "%s does not apply to a regular expression",
                           subdomains ? "include_subdomains" : "subpath_matching");
            return;
        }
        dt_import_put(c, src);
    } else {
        struct source s;
        if (!dt_import_split_source(src, true, &s, &d)) {
            csv_fail(cv, si, &d);
            return;
        }
        if (subdomains && s.host.len == 0) {
            dt_import_fail(c, cv->fields[si].start,
                           "include_subdomains needs a host in the source, not '%.*s'",
                           dt_import_shown(src), src.ptr);
            return;
        }
        if (subpath && memchr(s.path.ptr, '?', s.path.len)) {
            dt_import_fail(c, cv->fields[si].start,
                           "subpath_matching cannot be used with a query in the source");
            return;
        }
        dt_import_put_source(c, &s, subdomains);
        /* Cloudflare matches subpaths by whole segments: /a covers /a and /a/b, not /ab.
         * detour's "/a/" plus "*" does the same, and its splat holds no leading '/'. */
        if (subpath && c->rule.ptr[c->rule.len - 1] != '*')
            dt_import_put_cstr(c, c->rule.ptr[c->rule.len - 1] == '/' ? "*" : "/*");
    }
    if (!dt_import_check_target(tgt, &d)) {
        if (tgt.len == 0)
            dt_import_fail(c, cv->fields[ti].start, "missing target");
        else
            csv_fail(cv, ti, &d);
        return;
    }
    dt_import_begin_target(c);
    if (subpath && suffix)
        put_target_splat(c, tgt);
    else
        dt_import_put_target(c, tgt);

    int status = c->status;
    struct dt_str st = csv_value(cv, cv->col[COL_STATUS]);
    if (st.len) {
        int64_t n;
        if (dt_parse_int(st, 0, 999, &n) != 0 || !dt_http_is_redirect(n)) {
            dt_import_fail(c, cv->fields[cv->col[COL_STATUS]].start,
                           "status '%.*s' is not a redirect status (301, 302, 303, 307 or 308)",
                           dt_import_shown(st), st.ptr);
            return;
        }
        status = (int)n;
    }
    c->spec.status = status;
    if (cv->col[COL_PRESERVE_QUERY] >= 0) {
        c->spec.query_set = true;
        c->spec.query_drop = !keep_query;
    }
    if (cv->col[COL_OPTIONS] >= 0 && !csv_options(cv, cv->col[COL_OPTIONS]))
        return;
    dt_import_emit(c, cv->fields[0].start);
}

struct csv *dt_import_csv_new(void)
{
    struct csv *cv = dt_xcalloc(1, sizeof(*cv));
    dt_buf_init(&cv->values);
    for (int k = 0; k < COL_COUNT; k++)
        cv->col[k] = k <= COL_OPTIONS ? k : -1;
    return cv;
}

void dt_import_csv_free(struct csv *cv)
{
    if (!cv)
        return;
    dt_buf_dispose(&cv->values);
    free(cv);
}

/* Converts the records of c->text, going on from what cv learnt from earlier pieces. */
void dt_import_csv(struct csv *cv, struct conv *c)
{
    cv->c = c;
    size_t pos = 0;
    enum csv_read rc;
    while (!cv->stopped && (rc = csv_read(cv, &pos)) != CSV_END) {
        if (rc != CSV_RECORD) {
            cv->started = true;
            continue;
        }
        bool empty = true;
        for (int i = 0; i <= csv_last(cv) && empty; i++)
            empty = cv->fields[i].len == 0;
        if (empty)
            continue; /* ",,," rows that spreadsheets write for empty lines */
        struct dt_str first = csv_value(cv, 0);
        if (!cv->started && (dt_str_ieq(first, "source") || dt_str_ieq(first, "source_url"))) {
            cv->started = true;
            csv_header(cv);
            continue;
        }
        cv->started = true;
        if (cv->dead) {
            cv->stopped = true;
            break;
        }
        /* Positional rows name no column beyond the ones they have. */
        if (!cv->by_name)
            for (int k = COL_STATUS; k <= COL_OPTIONS; k++)
                cv->col[k] = (unsigned)k < cv->n ? k : -1;
        csv_row(cv);
    }
    cv->c = NULL;
}

/* How many bytes at the start of text are whole records: csv_read itself walks them, without
 * reporting anything, and a record counts once its line break is read (a line break inside
 * a quoted field is not one; a CR is one only with its LF). */
size_t dt_import_csv_whole(struct dt_str text, bool at_eof)
{
    if (at_eof || text.len == 0)
        return text.len;
    struct conv c = {.text = text}; /* no errs: nothing is reported */
    struct csv cv = {.c = &c};
    dt_buf_init(&cv.values);
    size_t pos = 0, whole = 0;
    for (;;) {
        enum csv_read rc = csv_read(&cv, &pos);
        if (rc == CSV_END) {
            whole = pos;
            break;
        }
        if (rc == CSV_UNCLOSED || text.ptr[pos - 1] != '\n')
            break; /* the record may go on in the text that follows */
        whole = pos;
    }
    dt_buf_dispose(&cv.values);
    return whole;
}
