/* import_netlify: Netlify _redirects files: FROM TO [STATUS], with :placeholders, splats and
 * query conditions. */
#include "rules/convert.h"

#include <stdio.h>
#include <stdlib.h>

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
    size_t at = dt_import_offset_of(c, from.ptr);
    struct source s;
    if (!dt_import_split_source(from, false, &s, &d)) {
        dt_import_fail(c, at + d.offset, "%s", d.msg);
        return;
    }
    const char *star = memchr(s.path.ptr, '*', s.path.len);
    if (star && star != s.path.ptr + s.path.len - 1) {
        dt_import_fail(c, dt_import_offset_of(c, star),
                       "'*' may only stand at the end of the source");
        return;
    }
    /* Query parameters between FROM and TO become query conditions. */
    struct dt_buf *query = &c->aux;
    query->len = 0;
    struct dt_str last = from;
    for (;;) {
        if (!next_word(c, end, &i, &w)) {
            dt_import_fail(c, dt_import_offset_of(c, last.ptr) + last.len,
                           "missing target after '%.*s'", dt_import_shown(last), last.ptr);
            return;
        }
        if (w.ptr[0] == '/' || dt_import_http_scheme_len(w)) {
            to = w;
            break;
        }
        const char *eq = memchr(w.ptr, '=', w.len);
        if (!eq || eq == w.ptr) {
            dt_import_fail(c, dt_import_offset_of(c, w.ptr),
                           "expected a query parameter KEY=VALUE or the target, not '%.*s'",
                           dt_import_shown(w), w.ptr);
            return;
        }
        if (!dt_import_check_chars(w, "query parameter", &d)) {
            dt_import_fail(c, dt_import_offset_of(c, w.ptr) + d.offset, "%s", d.msg);
            return;
        }
        if (query->len)
            dt_buf_append(query, "&", 1);
        dt_buf_append_str(query, w);
        last = w;
    }
    if (!dt_import_check_target(to, &d)) {
        dt_import_fail(c, dt_import_offset_of(c, to.ptr) + d.offset, "%s", d.msg);
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
            dt_import_fail(c, dt_import_offset_of(c, w.ptr), "'%.*s' is not a status",
                           dt_import_shown(w), w.ptr);
            return;
        }
        if (!dt_http_is_redirect(n)) {
            if (n >= 300 && n < 400)
                dt_import_fail(c, dt_import_offset_of(c, w.ptr),
                               "status %d is not a redirect status (301, 302, 303, 307 or 308)",
                               (int)n);
            else
                dt_import_fail(c, dt_import_offset_of(c, w.ptr),
                               "Netlify rewrites (200) and custom pages (404, "
                               "410, ...) are not redirects");
            return;
        }
        status = (int)n;
        more = next_word(c, end, &i, &w);
    }
    if (more) {
        if (memchr(w.ptr, '=', w.len))
            dt_import_fail(c, dt_import_offset_of(c, w.ptr), "conditions are not supported: '%.*s'",
                           dt_import_shown(w), w.ptr);
        else
            dt_import_fail(c, dt_import_offset_of(c, w.ptr),
                           "unexpected '%.*s' at the end of the rule", dt_import_shown(w), w.ptr);
        return;
    }
    dt_import_begin(c);
    dt_import_put_source(c, &s, false);
    if (query->len) {
        dt_import_put_cstr(c, memchr(s.path.ptr, '?', s.path.len) ? "&" : "?");
        dt_import_put(c, dt_str_make(query->ptr, query->len));
    }
    dt_import_begin_target(c);
    dt_import_put_target(c, to);
    c->spec.status = status;
    dt_import_emit(c, at);
}

void dt_import_netlify(struct conv *c)
{
    size_t pos = 0;
    while (pos < c->text.len) {
        const char *nl = memchr(c->text.ptr + pos, '\n', c->text.len - pos);
        size_t end = nl ? dt_import_offset_of(c, nl) : c->text.len;
        size_t start = pos;
        pos = end + 1;
        if (end > start && c->text.ptr[end - 1] == '\r')
            end--;
        netlify_line(c, start, end);
    }
}
