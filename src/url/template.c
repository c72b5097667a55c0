/* template: compiling redirect targets with holes (:splat, :name, $N) and filling them in. */
#include "url/url.h"

static bool name_start(unsigned char c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of a hole starting at text[i] (":name" or "$N"), or 0 if none starts there. */
static size_t hole_len(struct dt_str text, size_t i)
{
    if (i + 1 >= text.len)
        return 0;
    unsigned char next = (unsigned char)text.ptr[i + 1];
    if (text.ptr[i] == '$')
        return next >= '0' && next <= '9' ? 2 : 0;
    if (text.ptr[i] != ':' || !name_start(next))
        return 0;
    size_t k = i + 1;
    while (k < text.len && name_char((unsigned char)text.ptr[k]))
        k++;
    return k - i;
}

int dt_template_compile(struct dt_str text, const struct dt_tpl_source *src, struct dt_arena *arena,
                        struct dt_template *t, struct dt_diag *diag)
{
    memset(t, 0, sizeof(*t));
    if (text.len == 0) {
        dt_diag_set(diag, 0, "empty target");
        return DT_ESYNTAX;
    }
    if (text.len > DT_TPL_MAX_LEN) {
        dt_diag_set(diag, DT_TPL_MAX_LEN, "target longer than %d bytes", DT_TPL_MAX_LEN);
        return DT_ESYNTAX;
    }
    struct dt_url u;
    if (dt_url_parse(text, &u, diag) != 0)
        return DT_ESYNTAX;
    size_t holes_from; /* holes may only stand from here on: after the authority */
    if (u.scheme.len) {
        if (!dt_str_ieq(u.scheme, "http") && !dt_str_ieq(u.scheme, "https")) {
            dt_diag_set(diag, 0, "target scheme must be http or https, not '%.*s'",
                        (int)u.scheme.len, u.scheme.ptr);
            return DT_ESYNTAX;
        }
        if (!u.has_authority || u.host.len == 0) {
            dt_diag_set(diag, u.scheme.len + 1, "an absolute target needs a host");
            return DT_ESYNTAX;
        }
        t->absolute = true;
        holes_from = (size_t)(u.path.ptr - text.ptr);
    } else {
        if (u.has_authority) {
            dt_diag_set(diag, 0,
                        "a target may not start with '//' (write the scheme: https://HOST/...)");
            return DT_ESYNTAX;
        }
        if (u.path.len == 0 || u.path.ptr[0] != '/') {
            dt_diag_set(diag, 0, "a target is a path starting with '/' or an http(s) URL");
            return DT_ESYNTAX;
        }
        holes_from = 1;
    }
    t->fragment = (uint32_t)(u.has_fragment ? (size_t)(u.fragment.ptr - text.ptr) - 1 : text.len);
    t->has_query = u.has_query;

    /* a literal before each hole, and one after the last */
    struct dt_tpl_part parts[2 * DT_TPL_MAX_HOLES + 1];
    size_t nparts = 0, nholes = 0, lit = 0;
    for (size_t i = 0; i < text.len; i++) {
        size_t hl = hole_len(text, i);
        if (!hl)
            continue;
        if (i < holes_from) {
            dt_diag_set(diag, i,
                        "a placeholder may not stand in the scheme or host of a target "
                        "(a request could steer the redirect off-site)");
            return DT_ESYNTAX;
        }
        struct dt_tpl_part hole = {.off = (uint32_t)i, .len = (uint16_t)hl};
        struct dt_str name = {text.ptr + i + 1, hl - 1};
        if (text.ptr[i] == '$') {
            unsigned n = (unsigned)(text.ptr[i + 1] - '0');
            if (!src->regex) {
                dt_diag_set(diag, i, "$%u needs a regular-expression source (~REGEX)", n);
                return DT_ESYNTAX;
            }
            if (n > src->ncaptures) {
                dt_diag_set(diag, i, "$%u: the regular expression has only %u group%s", n,
                            src->ncaptures, src->ncaptures == 1 ? "" : "s");
                return DT_ESYNTAX;
            }
            hole.kind = DT_TPL_CAPTURE;
            hole.index = (uint8_t)n;
        } else if (dt_str_eq(name, DT_STR("splat"))) {
            if (!src->splat) {
                dt_diag_set(diag, i, ":splat needs a source ending in '*'");
                return DT_ESYNTAX;
            }
            hole.kind = DT_TPL_SPLAT;
        } else {
            size_t k = 0;
            while (k < src->nnames && !dt_str_eq(src->names[k], name))
                k++;
            if (k == src->nnames) {
                dt_diag_set(diag, i, "unknown placeholder ':%.*s' (the source has no :%.*s)",
                            (int)name.len, name.ptr, (int)name.len, name.ptr);
                return DT_ESYNTAX;
            }
            hole.kind = DT_TPL_NAMED;
            hole.index = (uint8_t)k;
        }
        if (nholes == DT_TPL_MAX_HOLES) {
            dt_diag_set(diag, i, "too many placeholders in one target (at most %d)",
                        DT_TPL_MAX_HOLES);
            return DT_ESYNTAX;
        }
        nholes++;
        if (i > lit)
            parts[nparts++] =
                (struct dt_tpl_part){DT_TPL_LITERAL, 0, (uint16_t)(i - lit), (uint32_t)lit};
        parts[nparts++] = hole;
        lit = i + hl;
        i += hl - 1;
    }
    t->text = text.ptr;
    t->len = (uint32_t)text.len;
    if (nparts) {
        if (lit < text.len)
            parts[nparts++] =
                (struct dt_tpl_part){DT_TPL_LITERAL, 0, (uint16_t)(text.len - lit), (uint32_t)lit};
        struct dt_tpl_part *p = dt_arena_alloc(arena, nparts * sizeof(*p));
        memcpy(p, parts, nparts * sizeof(*p));
        t->parts = p;
        t->nparts = (uint16_t)nparts;
    }
    return 0;
}

static struct dt_str hole_value(const struct dt_tpl_part *p, const struct dt_tpl_values *v)
{
    switch (p->kind) {
    case DT_TPL_SPLAT:
        return v->splat;
    case DT_TPL_NAMED:
        return v->named ? v->named[p->index] : DT_STR_NULL;
    case DT_TPL_CAPTURE:
        return p->index < v->ncaptures && v->captures ? v->captures[p->index] : DT_STR_NULL;
    }
    return DT_STR_NULL;
}

size_t dt_template_max_len(const struct dt_template *t, const struct dt_tpl_values *v)
{
    size_t n = t->len + 1 + 3 * v->query.len;
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i].kind != DT_TPL_LITERAL)
            n += 3 * hole_value(&t->parts[i], v).len;
    return n;
}

/* Writes the part of the template that lies in [from, to) of its text. */
static char *render_range(const struct dt_template *t, const struct dt_tpl_values *v, size_t from,
                          size_t to, char *o)
{
    if (t->nparts == 0) {
        memcpy(o, t->text + from, to - from);
        return o + (to - from);
    }
    for (size_t i = 0; i < t->nparts; i++) {
        const struct dt_tpl_part *p = &t->parts[i];
        size_t a = p->off, b = p->off + p->len;
        if (b <= from || a >= to)
            continue;
        if (p->kind == DT_TPL_LITERAL) {
            if (a < from)
                a = from;
            if (b > to)
                b = to;
            memcpy(o, t->text + a, b - a);
            o += b - a;
        } else {
            o += dt_url_encode_path(o, hole_value(p, v));
        }
    }
    return o;
}

/* The kind of dot segment seg is: 0 none, 1 ".", 2 "..", counting the percent-encoded
 * spellings browsers treat alike ("%2e", ".%2E", ...). */
static int dots(const char *seg, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n;) {
        if (seg[i] == '.') {
            i++;
        } else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
                   (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        if (++count > 2)
            return 0;
    }
    return count;
}

/* Removes dot segments from the path p[0, n) in place (RFC 3986 5.2.4, with the encoded
 * spellings); returns the new length. The path starts with '/'. */
static size_t canonical_path(char *p, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n) {
        size_t start = i + 1; /* p[i] == '/' */
        size_t end = start;
        while (end < n && p[end] != '/')
            end++;
        int d = dots(p + start, end - start);
        bool last = end == n;
        if (d == 2) {
            while (o > 0 && p[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the previous segment and its slash */
        }
        if (d) {
            if (last)
                p[o++] = '/';
        } else {
            memmove(p + o, p + i, end - i);
            o += end - i;
        }
        i = end;
    }
    if (o == 0)
        p[o++] = '/';
    return o;
}

size_t dt_template_render(const struct dt_template *t, const struct dt_tpl_values *v, char *out)
{
    char *o = render_range(t, v, 0, t->fragment, out);
    if (v->keep_query && !t->has_query && v->query.len) {
        *o++ = '?';
        o += dt_url_encode_query(o, v->query);
    }
    if (t->fragment < t->len)
        o = render_range(t, v, t->fragment, t->len, o);
    size_t n = (size_t)(o - out);
    if (!t->absolute && t->nparts) {
        /* What a request filled in may hold dot segments ("/docs/../../x"): resolve them
         * here, so that the Location as sent is already what a client would make of it and
         * no step of that can reach another host. */
        size_t path_end = 0;
        while (path_end < n && out[path_end] != '?' && out[path_end] != '#')
            path_end++;
        size_t m = canonical_path(out, path_end);
        memmove(out + m, out + path_end, n - path_end);
        n -= path_end - m;
    }
    if (!t->absolute && n >= 2 && out[1] == '/') {
        /* "/:splat" filled with "/evil.com" would read as a network-path reference to
         * another host: keep one leading slash. */
        size_t k = 1;
        while (k < n && out[k] == '/')
            k++;
        memmove(out + 1, out + k, n - k);
        n -= k - 1;
    }
    return n;
}
