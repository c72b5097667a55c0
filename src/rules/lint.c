/* lint: static analysis of a rule table before it goes live: loops and chains (through a
 * sample request for each rule, following where its answer leads), duplicates and
 * conflicts, rules that can never answer, targets a request can steer, windows that are
 * over, and temporary redirects left in place too long (S10). */
#include "rules/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define MAX_CHAIN 20             /* hops followed from one rule */
#define LINT_HOST "lint.invalid" /* the host of a request to a rule for any host */

void dt_lint_add(struct dt_lint_report *r, int severity, const char *kind, const char *file,
                 uint32_t line, const char *fmt, ...)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->findings = dt_xrealloc(r->findings, r->cap * sizeof(*r->findings));
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct dt_lint_finding *f = &r->findings[r->n++];
    f->severity = (uint8_t)severity;
    f->kind = kind;
    f->file = file;
    f->line = line;
    f->message = dt_xstrndup(msg, strlen(msg));
    if (severity == DT_LINT_ERROR)
        r->errors++;
    else
        r->warnings++;
}

void dt_lint_report_dispose(struct dt_lint_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->findings[i].message);
    free(r->findings);
    memset(r, 0, sizeof(*r));
}

static int cmp_finding(const void *a, const void *b)
{
    const struct dt_lint_finding *x = a, *y = b;
    int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->message, y->message);
}

/* Two findings say the same thing: the same kind for the same line of a file (a rule for a
 * host and its subdomains, .example.com, is two rules of one line), or the same text. */
static bool same_finding(const struct dt_lint_finding *x, const struct dt_lint_finding *y)
{
    if (strcmp(x->kind, y->kind) != 0)
        return false;
    if (x->file && y->file && x->line && !strcmp(x->file, y->file) && x->line == y->line)
        return true;
    return !cmp_finding(x, y);
}

void dt_lint_sort(struct dt_lint_report *r)
{
    if (!r->n)
        return;
    qsort(r->findings, r->n, sizeof(*r->findings), cmp_finding);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (k && same_finding(&r->findings[k - 1], &r->findings[i])) {
            if (r->findings[i].severity == DT_LINT_ERROR)
                r->errors--;
            else
                r->warnings--;
            free(r->findings[i].message);
            continue;
        }
        r->findings[k++] = r->findings[i];
    }
    r->n = k;
}

/* ---- helpers ------------------------------------------------------------------------------ */

struct ctx {
    const struct dt_table *t;
    const struct dt_lint_options *o;
    struct dt_lint_report *r;
    struct dt_buf scratch;
};

static struct dt_rule_origin where(const struct ctx *c, const struct dt_rule *r)
{
    return dt_rule_origin(c->t, r);
}

static const char *describe(struct ctx *c, const struct dt_rule *r, struct dt_buf *b)
{
    b->len = 0;
    dt_rule_source(c->t, r, b);
    dt_buf_terminate(b);
    return b->ptr;
}

static bool has_window(const struct dt_table *t, const struct dt_rule *r)
{
    time_t from, until;
    return dt_rule_window(t, r, &from, &until);
}

/* The key that makes two rules the same source: section, kind, scheme, conditions and the
 * source with placeholder names left out (/users/:id and /users/:name are one source). */
static void source_key(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *k)
{
    k->len = 0;
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    dt_buf_appendf(k, "%u|%d|%u|", r->_section, (int)dt_rules_kind(r), dt_rules_scheme(r));
    if (dt_rules_kind(r) == DT_RULE_PATTERN) {
        for (unsigned i = 0; i < e->nsegs; i++) {
            const struct seg *s = &e->segs[i];
            if (s->name >= 0)
                dt_buf_append(k, "/:", 2);
            else
                dt_buf_appendf(k, "/%.*s", (int)s->len, t->blob.ptr + s->off);
        }
        if (e->splat)
            dt_buf_append(k, "/*", 2);
    } else {
        dt_buf_append(k, t->blob.ptr + r->_src, r->_src_len);
    }
    for (unsigned i = 0; e && i < e->nconds; i++) {
        const struct qcond *q = &e->conds[i];
        dt_buf_appendf(k, "|%.*s", (int)q->key.len, q->key.ptr);
        if (q->name >= 0)
            dt_buf_append(k, "=:", 2);
        else if (q->has_value)
            dt_buf_appendf(k, "=%.*s", (int)q->value.len, q->value.ptr);
    }
}

/* ---- duplicates and conflicts ------------------------------------------------------------ */

static void duplicates(struct ctx *c)
{
    const struct dt_table *t = c->t;
    size_t size = 16;
    while (size < t->nrules * 2)
        size *= 2;
    uint32_t *slots = dt_xcalloc(size, sizeof(uint32_t)); /* rule index + 1 */
    uint64_t *hashes = dt_xcalloc(size, sizeof(uint64_t));
    struct dt_buf key, other, d1, d2;
    dt_buf_init(&key);
    dt_buf_init(&other);
    dt_buf_init(&d1);
    dt_buf_init(&d2);
    for (size_t i = 0; i < t->nrules; i++) {
        const struct dt_rule *r = &t->rules[i];
        source_key(t, r, &key);
        uint64_t h = dt_hash_bytes(key.ptr, key.len);
        size_t s = h & (size - 1);
        for (; slots[s]; s = (s + 1) & (size - 1)) {
            if (hashes[s] != h)
                continue;
            const struct dt_rule *first = &t->rules[slots[s] - 1];
            source_key(t, first, &other);
            if (!dt_str_eq(dt_str_make(key.ptr, key.len), dt_str_make(other.ptr, other.len)))
                continue;
            if (has_window(t, first))
                continue; /* the earlier rule is not always there: this one stands in */
            /* Same target and status: a copy; anything else: a conflict, and the file says
             * one thing while the server does another. */
            d1.len = d2.len = 0;
            dt_rule_target(t, r, &d1);
            dt_rule_target(t, first, &d2);
            struct dt_rule_origin a = where(c, r), b = where(c, first);
            bool same = d1.len == d2.len && !memcmp(d1.ptr, d2.ptr, d1.len) &&
                        dt_rule_status(r) == dt_rule_status(first);
            if (same)
                dt_lint_add(c->r, DT_LINT_WARNING, "duplicate", a.file, a.line,
                            "duplicate of %s:%u: this rule never answers; remove it",
                            b.file ? b.file : "(api)", b.line);
            else
                dt_lint_add(c->r, DT_LINT_ERROR, "conflict", a.file, a.line,
                            "same source as %s:%u, which answers %d %.*s first: this rule "
                            "(%d %.*s) never answers",
                            b.file ? b.file : "(api)", b.line, dt_rule_status(first), (int)d2.len,
                            d2.ptr, dt_rule_status(r), (int)d1.len, d1.ptr);
            goto next;
        }
        slots[s] = (uint32_t)i + 1;
        hashes[s] = h;
    next:;
    }
    free(slots);
    free(hashes);
    dt_buf_dispose(&key);
    dt_buf_dispose(&other);
    dt_buf_dispose(&d1);
    dt_buf_dispose(&d2);
}

/* ---- shadowing ---------------------------------------------------------------------------- */

/* The literal text every path a pattern or regex matches starts with. */
static struct dt_str literal_prefix(const struct dt_table *t, const struct dt_rule *r, char *buf,
                                    size_t cap)
{
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    if (dt_rules_kind(r) == DT_RULE_REGEX)
        return dt_rules_regex_prefix(dt_str_make(t->blob.ptr + r->_src, r->_src_len), buf, cap);
    /* a pattern: up to the slash before its first placeholder */
    size_t n = 0;
    for (unsigned i = 0; i < e->nsegs && n + e->segs[i].len + 2 < cap; i++) {
        buf[n++] = '/';
        if (e->segs[i].name >= 0)
            break;
        memcpy(buf + n, t->blob.ptr + e->segs[i].off, e->segs[i].len);
        n += e->segs[i].len;
    }
    return dt_str_make(buf, n);
}

/* Patterns and regexes come after every prefix rule of their host: an unconditional prefix
 * that covers all they can match leaves them nothing. */
static void shadowed(struct ctx *c)
{
    const struct dt_table *t = c->t;
    char buf[1024];
    for (size_t i = 0; i < t->nrules; i++) {
        const struct dt_rule *r = &t->rules[i];
        enum dt_rule_kind k = dt_rules_kind(r);
        if (k != DT_RULE_PATTERN && k != DT_RULE_REGEX)
            continue;
        struct dt_str lit = literal_prefix(t, r, buf, sizeof(buf));
        const struct dt_rule *p = dt_rules_longest_prefix(t, r->_section, lit);
        if (!p)
            continue;
        struct dt_rule_origin a = where(c, r), b = where(c, p);
        dt_lint_add(c->r, DT_LINT_WARNING, "shadowed", a.file, a.line,
                    "never answers: every path it matches starts with '%.*s', which the prefix "
                    "rule %s:%u answers first (prefixes come before %s)",
                    (int)lit.len, lit.ptr, b.file ? b.file : "(api)", b.line,
                    k == DT_RULE_PATTERN ? "placeholder patterns" : "regular expressions");
    }
}

/* ---- the redirect graph ------------------------------------------------------------------ */

bool dt_rule_sample(const struct dt_table *t, const struct dt_rule *r, const char *any_host,
                    struct dt_buf *host, struct dt_buf *path, struct dt_buf *query)
{
    host->len = path->len = query->len = 0;
    const struct section *s = dt_rules_section(t, r);
    /* appends, not printf: an import's check makes a million of these */
    if (s->host_len) {
        if (s->wildcard)
            dt_buf_append(host, "x.", 2);
        dt_buf_append(host, t->blob.ptr + s->host, s->host_len);
    } else {
        dt_buf_append(host, any_host, strlen(any_host));
    }
    dt_buf_terminate(host);
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    switch (dt_rules_kind(r)) {
    case DT_RULE_EXACT:
        dt_buf_append(path, t->blob.ptr + r->_src, r->_src_len);
        break;
    case DT_RULE_PREFIX:
        dt_buf_append(path, t->blob.ptr + r->_src, r->_src_len);
        dt_buf_append(path, "x", 1);
        break;
    case DT_RULE_PATTERN:
        for (unsigned i = 0; i < e->nsegs; i++) {
            if (e->segs[i].name >= 0)
                dt_buf_append(path, "/x", 2);
            else
                dt_buf_appendf(path, "/%.*s", (int)e->segs[i].len, t->blob.ptr + e->segs[i].off);
        }
        if (e->splat)
            dt_buf_append(path, "/x", 2);
        break;
    case DT_RULE_REGEX: {
        char buf[1024];
        struct dt_str lit = dt_rules_regex_prefix(dt_str_make(t->blob.ptr + r->_src, r->_src_len),
                                                  buf, sizeof(buf));
        static const char *const tails[] = {"", "x", "1", "x/x", "x.html", "1/x"};
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(e->re, NULL);
        bool found = false;
        for (size_t k = 0; k < DT_ARRAY_LEN(tails) && !found; k++) {
            path->len = 0;
            if (!lit.len || lit.ptr[0] != '/')
                dt_buf_append(path, "/", 1);
            dt_buf_append(path, lit.ptr, lit.len);
            dt_buf_append(path, tails[k], strlen(tails[k]));
            found = pcre2_match(e->re, (PCRE2_SPTR)path->ptr, path->len, 0, 0, md, NULL) > 0;
        }
        pcre2_match_data_free(md);
        if (!found)
            return false;
        break;
    }
    }
    for (unsigned i = 0; e && i < e->nconds; i++) {
        const struct qcond *q = &e->conds[i];
        dt_buf_appendf(query, "%s%.*s", i ? "&" : "", (int)q->key.len, q->key.ptr);
        if (q->name >= 0)
            dt_buf_append(query, "=x", 2);
        else if (q->has_value)
            dt_buf_appendf(query, "=%.*s", (int)q->value.len, q->value.ptr);
    }
    dt_buf_terminate(host);
    dt_buf_terminate(path);
    dt_buf_terminate(query);
    return true;
}

/* The sample request of a rule, for any host LINT_HOST. */
static bool sample(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *host,
                   struct dt_buf *path, struct dt_buf *query)
{
    return dt_rule_sample(t, r, LINT_HOST, host, path, query);
}

/* Where rule r sends its sample request, and which rule answers there (NONE if none). The
 * Location is left in loc. */
/* The request that the rule matched in m (of table t) sends the request scheme://host
 * path?query to: its Location into loc, then the next request's scheme, host (lower-cased),
 * path and query in place of the given ones, and whether the host stays the same. false
 * (nothing replaced) when the Location does not resolve to an http(s) URL. */
/* True when s starts with "http://" or "https://" (ASCII case ignored). */
static bool is_http_url(struct dt_str s)
{
    return (s.len >= 7 && !strncasecmp(s.ptr, "http://", 7)) ||
           (s.len >= 8 && !strncasecmp(s.ptr, "https://", 8));
}

static bool next_request(const struct dt_table *t, const struct dt_match *m, enum dt_scheme *scheme,
                         struct dt_buf *host, struct dt_buf *path, struct dt_buf *query,
                         struct dt_buf *loc, struct dt_buf *base, struct dt_buf *to,
                         bool *same_host)
{
    struct dt_str q = dt_str_make(query->ptr, query->len);
    loc->len = 0;
    dt_buf_reserve(loc, dt_table_location_max(t, m, q) + 1);
    loc->len = dt_table_location(t, m, q, loc->ptr);
    dt_buf_terminate(loc);
    base->len = to->len = 0;
    struct dt_url u;
    struct dt_str l = dt_str_make(loc->ptr, loc->len);
    bool ok;
    if (is_http_url(l) && !memmem(l.ptr, l.len, "/.", 2)) {
        /* an absolute http(s) URL without dot segments resolves to itself (RFC 3986 5.2.2):
         * a bulk import's check makes a million of these */
        ok = dt_url_parse(l, &u, NULL) == 0 && u.host.len < 256;
    } else {
        const char *sch = *scheme == DT_SCHEME_HTTPS ? "https://" : "http://";
        dt_buf_append(base, sch, strlen(sch));
        dt_buf_append(base, host->ptr, host->len);
        dt_buf_append(base, path->ptr, path->len);
        if (query->len) {
            dt_buf_append(base, "?", 1);
            dt_buf_append(base, query->ptr, query->len);
        }
        dt_buf_terminate(base);
        ok = dt_url_resolve(dt_str_make(base->ptr, base->len), l, to, NULL) == 0 &&
             dt_url_parse(dt_str_make(to->ptr, to->len), &u, NULL) == 0 && u.host.len < 256;
    }
    if (ok) {
        char h[256];
        memcpy(h, u.host.ptr, u.host.len);
        dt_ascii_lower(h, u.host.len);
        *same_host = u.host.len == host->len && !memcmp(h, host->ptr, host->len);
        *scheme = dt_str_ieq(u.scheme, "https") ? DT_SCHEME_HTTPS : DT_SCHEME_HTTP;
        host->len = path->len = query->len = 0;
        dt_buf_append(host, h, u.host.len);
        dt_buf_append_str(path, u.path.len ? u.path : DT_STR("/"));
        dt_buf_append_str(query, u.query);
        dt_buf_terminate(host);
        dt_buf_terminate(path);
        dt_buf_terminate(query);
    }
    return ok;
}

static uint32_t follow(struct ctx *c, const struct dt_rule *r, struct dt_buf *loc)
{
    const struct dt_table *t = c->t;
    struct dt_buf host, path, query, base, to;
    dt_buf_init(&host);
    dt_buf_init(&path);
    dt_buf_init(&query);
    dt_buf_init(&base);
    dt_buf_init(&to);
    uint32_t next = NONE;
    loc->len = 0;
    if (!sample(t, r, &host, &path, &query))
        goto out;
    enum dt_scheme scheme =
        dt_rules_scheme(r) ? (enum dt_scheme)dt_rules_scheme(r) : DT_SCHEME_HTTP;
    struct dt_match m;
    struct dt_str q = dt_str_make(query.ptr, query.len);
    const struct dt_rule *got = dt_table_match(t, scheme, dt_str_make(host.ptr, host.len),
                                               dt_str_make(path.ptr, path.len), q, c->o->now, &m);
    if (got != r)
        goto out; /* the sample is answered by another rule (or none): nothing to follow */
    bool same_host;
    if (!next_request(t, &m, &scheme, &host, &path, &query, loc, &base, &to, &same_host))
        goto out;
    /* On the same host every rule may answer; another host is only known to come here if
     * some rule names it (a catch-all to https://new.example/ is no loop). */
    struct dt_str nh = dt_str_make(host.ptr, host.len), np = dt_str_make(path.ptr, path.len),
                  nq = dt_str_make(query.ptr, query.len);
    const struct dt_rule *n = same_host ? dt_table_match(t, scheme, nh, np, nq, c->o->now, &m)
                                        : dt_rules_match_host(t, scheme, nh, np, nq, c->o->now, &m);
    if (n)
        next = (uint32_t)(n - t->rules);
out:
    dt_buf_dispose(&host);
    dt_buf_dispose(&path);
    dt_buf_dispose(&query);
    dt_buf_dispose(&base);
    dt_buf_dispose(&to);
    return next;
}

#define UNKNOWN (NONE - 1) /* a successor not looked for yet */

static bool focused(const struct ctx *c, size_t i)
{
    return !c->o->focus || c->o->focus(c->o->focus_ctx, c->t, i);
}

static void graph(struct ctx *c)
{
    const struct dt_table *t = c->t;
    size_t n = t->nrules;
    uint32_t *next = dt_xmalloc((n ? n : 1) * sizeof(*next));
    struct dt_buf loc, d1, d2;
    dt_buf_init(&loc);
    dt_buf_init(&d1);
    dt_buf_init(&d2);
    /* With a focus, a rule's successor is found only when a walk needs it. */
    for (size_t i = 0; i < n; i++)
        next[i] = c->o->focus ? UNKNOWN : follow(c, &t->rules[i], &loc);
#define NEXT(v) (next[v] == UNKNOWN ? (next[v] = follow(c, &t->rules[v], &loc)) : next[v])

    /* Loops: each rule has at most one successor, so walking from every rule, a walk that
     * meets itself has found a cycle. */
    uint8_t *state = dt_xcalloc(n ? n : 1, 1); /* 0 new, 1 on this walk, 2 done, 3 on a loop */
    uint32_t *walk = dt_xmalloc((n ? n : 1) * sizeof(*walk));
    for (size_t i = 0; i < n; i++) {
        if (state[i] || !focused(c, i))
            continue;
        size_t len = 0;
        uint32_t v = (uint32_t)i;
        while (v != NONE && !state[v]) {
            state[v] = 1;
            walk[len++] = v;
            v = NEXT(v);
        }
        if (v != NONE && state[v] == 1) {
            /* the cycle is the part of the walk from v on */
            size_t start = 0;
            while (walk[start] != v)
                start++;
            struct dt_buf cyc;
            dt_buf_init(&cyc);
            for (size_t k = start; k < len; k++) {
                struct dt_rule_origin o = where(c, &t->rules[walk[k]]);
                dt_buf_appendf(&cyc, "%s -> ", describe(c, &t->rules[walk[k]], &d1));
                (void)o;
            }
            dt_buf_appendf(&cyc, "%s", describe(c, &t->rules[v], &d1));
            dt_buf_terminate(&cyc);
            for (size_t k = start; k < len; k++) {
                const struct dt_rule *r = &t->rules[walk[k]];
                struct dt_rule_origin o = where(c, r);
                const struct dt_rule *nx = &t->rules[next[walk[k]]];
                struct dt_rule_origin no = where(c, nx);
                dt_lint_add(c->r, DT_LINT_ERROR, "loop", o.file, o.line,
                            "redirect loop: %s (this rule sends to %s:%u)", cyc.ptr,
                            no.file ? no.file : "(api)", no.line);
            }
            dt_buf_dispose(&cyc);
            for (size_t k = start; k < len; k++)
                state[walk[k]] = 3; /* on a loop */
        }
        for (size_t k = 0; k < len; k++)
            if (state[walk[k]] == 1)
                state[walk[k]] = 2;
    }
    /* Chains: a rule whose target another rule answers (A -> B -> C): send A to where the
     * chain ends. Loops were reported above. */
    for (size_t i = 0; i < n; i++) {
        if (!focused(c, i))
            continue;
        uint32_t j = NEXT(i);
        if (j == NONE || j == i)
            continue;
        uint32_t v = j, hops = 2;
        bool loops = false;
        while (NEXT(v) != NONE && hops <= MAX_CHAIN) {
            v = next[v];
            hops++;
            if (v == i || v == j || state[v] == 3) {
                loops = true;
                break;
            }
        }
        if (loops || NEXT(v) != NONE)
            continue;
        const struct dt_rule *r = &t->rules[i];
        follow(c, &t->rules[v], &loc);
        struct dt_rule_origin o = where(c, r), jo = where(c, &t->rules[j]);
        dt_lint_add(c->r, DT_LINT_WARNING, "chain", o.file, o.line,
                    "redirect chain of %u hops (on to %s:%u): send %s straight to %s", hops,
                    jo.file ? jo.file : "(api)", jo.line, describe(c, r, &d1), loc.ptr);
    }
#undef NEXT
    free(walk);
    free(state);
    free(next);
    dt_buf_dispose(&loc);
    dt_buf_dispose(&d1);
    dt_buf_dispose(&d2);
}

/* ---- targets, windows, ages -------------------------------------------------------------- */

static void per_rule(struct ctx *c)
{
    const struct dt_table *t = c->t;
    struct dt_buf tgt;
    dt_buf_init(&tgt);
    char date[21];
    for (size_t i = 0; i < t->nrules; i++) {
        if (!focused(c, i))
            continue;
        const struct dt_rule *r = &t->rules[i];
        struct dt_rule_origin o = where(c, r);
        const struct rule_ext *e = dt_rules_ext_of(t, r);
        if (e && e->nparts) {
            tgt.len = 0;
            dt_rule_target(t, r, &tgt);
            dt_buf_terminate(&tgt);
            /* Targets with holes keep their whole text (no interned origin), so the holes'
             * offsets are offsets in tgt. */
            const char *q = memchr(tgt.ptr, '?', tgt.len);
            size_t qoff = q ? (size_t)(q - tgt.ptr) : tgt.len;
            bool in_query = false;
            for (unsigned k = 0; k < e->nparts; k++)
                if (e->parts[k].kind != DT_TPL_LITERAL && e->parts[k].off > qoff)
                    in_query = true;
            /* "/:splat", "/$1": a path target whose path is all request */
            if (!(r->_bits & B_TGT_ABS) && e->nparts > 1 && e->parts[0].kind == DT_TPL_LITERAL &&
                e->parts[0].len == 1 && e->parts[1].kind != DT_TPL_LITERAL)
                dt_lint_add(c->r, DT_LINT_WARNING, "steerable", o.file, o.line,
                            "the request chooses the whole path of the target %s (detour "
                            "never lets it become another host, but any path on this one)",
                            tgt.ptr);
            if (in_query)
                dt_lint_add(c->r, DT_LINT_WARNING, "open-redirect", o.file, o.line,
                            "a value from the request goes into the query of %s: if that page "
                            "forwards to it, this is an open redirect",
                            tgt.ptr);
        }
        time_t from, until;
        if (dt_rule_window(t, r, &from, &until) && until <= c->o->now && until != INT64_MAX) {
            dt_fmt_rfc3339(date, until);
            dt_lint_add(c->r, DT_LINT_WARNING, "expired", o.file, o.line,
                        "its window ended at %s: it never answers again; remove it", date);
        }
        time_t since;
        if (c->o->max_temporary_age >= 0 && dt_rule_status_at(t, r, c->o->now) == 307 &&
            dt_rule_since(t, r, &since) && c->o->now - since > c->o->max_temporary_age) {
            dt_fmt_rfc3339(date, since);
            dt_lint_add(c->r, DT_LINT_WARNING, "old-temporary", o.file, o.line,
                        "a 307 in place since %s (%lld days): search engines may take it as "
                        "permanent (S10); make it 308 if it is, or remove it",
                        date, (long long)((c->o->now - since) / 86400));
        }
    }
    dt_buf_dispose(&tgt);
}

void dt_lint_scratch_dispose(struct dt_lint_scratch *sc)
{
    struct dt_buf *b[] = {&sc->host, &sc->path, &sc->query, &sc->loc,
                          &sc->text, &sc->base, &sc->to};
    for (size_t i = 0; i < DT_ARRAY_LEN(b); i++)
        dt_buf_dispose(b[i]);
}

int dt_lint_rule_in(const struct dt_ruleset *rs, const struct dt_table *t, const struct dt_rule *r,
                    time_t now, struct dt_buf *msg, struct dt_lint_scratch *scratch)
{
    struct dt_lint_scratch own;
    memset(&own, 0, sizeof(own));
    struct dt_lint_scratch *sc = scratch ? scratch : &own;
    struct dt_buf *host = &sc->host, *path = &sc->path, *query = &sc->query, *loc = &sc->loc,
                  *d = &sc->text;
    struct {
        const struct dt_table *t;
        const struct dt_rule *r;
    } seen[MAX_CHAIN + 1];
    unsigned nseen = 0;
    int found = DT_LINT_RULE_OK;
    size_t idx = (size_t)(r - t->rules);
    const uint64_t *hidden = t == rs->store     ? rs->hidden
                             : t == rs->overlay ? rs->hidden_overlay
                                                : NULL;
    if (hidden && (hidden[idx / 64] >> (idx % 64) & 1))
        goto out; /* changed or removed since: it answers nothing */
    if (!sample(t, r, host, path, query))
        goto out;
    enum dt_scheme scheme =
        dt_rules_scheme(r) ? (enum dt_scheme)dt_rules_scheme(r) : DT_SCHEME_HTTP;
    /* the sample must reach r itself in the whole rule set (else r never answers it) */
    struct dt_match m;
    const struct dt_table *mt = NULL;
    struct dt_str q = dt_str_make(query->ptr, query->len);
    const struct dt_rule *cur =
        dt_rules_ruleset_match(rs, scheme, dt_str_make(host->ptr, host->len),
                               dt_str_make(path->ptr, path->len), q, now, &m, &mt, true);
    if (cur != r) {
        /* Another rule answers r's own request first: with the same source, r never
         * answers (lint's conflict, when the targets differ). */
        struct dt_buf a, b;
        dt_buf_init(&a);
        dt_buf_init(&b);
        if (cur) {
            dt_rule_source(t, r, &a);
            dt_rule_source(mt, cur, &b);
        }
        if (cur && a.len == b.len && !memcmp(a.ptr, b.ptr, a.len)) {
            a.len = b.len = 0;
            dt_rule_target(t, r, &a);
            dt_rule_target(mt, cur, &b);
            if (a.len != b.len || memcmp(a.ptr, b.ptr, a.len) ||
                dt_rule_status(r) != dt_rule_status(cur)) {
                found = DT_LINT_RULE_CONFLICT;
                dt_buf_appendf(msg,
                               "same source as a rule that answers %d %.*s first: "
                               "this rule (%d %.*s) never answers",
                               dt_rule_status(cur), (int)b.len, b.ptr, dt_rule_status(r),
                               (int)a.len, a.ptr);
            }
        }
        dt_buf_dispose(&a);
        dt_buf_dispose(&b);
        goto out;
    }
    while (cur && nseen <= MAX_CHAIN) {
        for (unsigned k = 0; k < nseen; k++) {
            if (seen[k].r == cur && seen[k].t == mt) {
                /* only a loop through r itself is r's finding; a chain that runs into
                 * a loop of other rules is theirs */
                if (k != 0)
                    goto out;
                found = DT_LINT_RULE_LOOP;
                dt_buf_appendf(msg, "redirect loop: ");
                for (unsigned j = k; j < nseen; j++) {
                    d->len = 0;
                    dt_rule_source(seen[j].t, seen[j].r, d);
                    dt_buf_appendf(msg, "%.*s -> ", (int)d->len, d->ptr);
                }
                d->len = 0;
                dt_rule_source(mt, cur, d);
                dt_buf_appendf(msg, "%.*s", (int)d->len, d->ptr);
                goto out;
            }
        }
        seen[nseen].t = mt;
        seen[nseen].r = cur;
        nseen++;
        /* where cur sends the request it answered */
        bool same_host;
        if (!next_request(mt, &m, &scheme, host, path, query, loc, &sc->base, &sc->to, &same_host))
            break;
        /* another host is only known to come here if some rule names it */
        cur = dt_rules_ruleset_match(rs, scheme, dt_str_make(host->ptr, host->len),
                                     dt_str_make(path->ptr, path->len),
                                     dt_str_make(query->ptr, query->len), now, &m, &mt, same_host);
    }
out:
    if (!scratch)
        dt_lint_scratch_dispose(&own);
    return found;
}

void dt_lint_run(const struct dt_table *t, const struct dt_lint_options *o,
                 struct dt_lint_report *r)
{
    struct ctx c = {t, o, r, {0}};
    duplicates(&c);
    shadowed(&c);
    graph(&c);
    per_rule(&c);
    dt_lint_sort(r);
}
