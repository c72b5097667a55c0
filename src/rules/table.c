/* table: compiled rules and the indexes that find the one answering a request.
 *
 * Layout, chosen so that a million rules fit in well under 100 MB and a lookup touches few
 * cache lines: every string lives in one blob addressed by 32-bit offsets (a rule's source,
 * then its target); a rule is 20 bytes; the scheme and authority of absolute targets are
 * interned; options few rules have (windows, cache, placeholders, regexes, query conditions)
 * live in a side array. Exact and prefix sources live in two open-addressing tables of 64-bit
 * slots (32-bit tag, 32-bit rule index); rules with the same key stay in the probe sequence
 * in insertion order, which is their priority, so no chains are needed. Prefixes are found
 * by hashing the request path once, word by word, and finishing the hash at each length
 * some prefix of the host section has. Placeholder patterns are indexed by their first
 * segment, regular expressions by their literal prefix, both tried in rule order. */
#include "rules/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static const uint16_t statuses[] = {301, 302, 303, 307, 308};

/* ---- hashing: word at a time, with a finish at any length --------------------------------- */

/* ---- blob and string maps ----------------------------------------------------------------- */

static uint32_t blob_put(struct dt_table *t, const char *p, size_t n)
{
    if (t->blob.len + n > UINT32_MAX)
        dt_oom(); /* 4 GiB of rule text: no table this large is supported */
    uint32_t off = (uint32_t)t->blob.len;
    dt_buf_append(&t->blob, p, n);
    return off;
}

static struct dt_str origin_key(const struct dt_table *t, uint32_t idx)
{
    return dt_str_make(dt_rules_blob_at(t, t->origins[idx].off), t->origins[idx].len);
}

static void map_slot(struct str_map *m, uint64_t h, uint32_t idx)
{
    size_t i = h & m->mask;
    while (m->slots[i])
        i = (i + 1) & m->mask;
    m->slots[i] = ((h >> 32) << 32) | (uint64_t)(idx + 1);
    m->count++;
}

static void map_put(const struct dt_table *t, struct str_map *m, key_of_fn key_of, struct dt_str k,
                    uint32_t idx)
{
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) {
        size_t size = m->slots ? (m->mask + 1) * 2 : 16;
        struct str_map grown = {dt_xcalloc(size, sizeof(uint64_t)), size - 1, 0};
        for (size_t i = 0; m->slots && i <= m->mask; i++) {
            if (!m->slots[i])
                continue;
            uint32_t old = (uint32_t)m->slots[i] - 1;
            struct dt_str ok = key_of(t, old);
            map_slot(&grown, dt_rules_hash_bytes(dt_rules_hash_seed(0), ok.ptr, ok.len), old);
        }
        free(m->slots);
        *m = grown;
    }
    map_slot(m, dt_rules_hash_bytes(dt_rules_hash_seed(0), k.ptr, k.len), idx);
}

/* ---- building ----------------------------------------------------------------------------- */

struct dt_table *dt_table_new(void)
{
    struct dt_table *t = dt_xcalloc(1, sizeof(*t));
    dt_buf_init(&t->blob);
    dt_arena_init(&t->arena, 64 * 1024);
    t->sections = dt_xcalloc(8, sizeof(*t->sections));
    t->cap_sections = 8;
    t->nsections = 1; /* section 0 holds the rules for any host */
    t->origins = dt_xcalloc(16, sizeof(*t->origins));
    t->cap_origins = 16;
    t->norigins = 1; /* origin 0 means none */
    dt_buf_append(&t->blob, "", 1);
    return t;
}

void dt_table_free(struct dt_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->next; i++)
        if (t->ext[i].re)
            pcre2_code_free(t->ext[i].re);
    for (size_t i = 0; i < t->nsections; i++) {
        struct section *s = &t->sections[i];
        free(s->plens);
        free(s->patterns);
        free(s->regexes);
        free(s->pat_first);
        free(s->pat_any);
        free(s->re_prefix);
        free(s->rlens);
        free(s->re_any);
    }
    dt_buf_dispose(&t->blob);
    free(t->rules);
    free(t->ext);
    free(t->sections);
    free(t->hosts.slots);
    free(t->wild.slots);
    free(t->origin_map.slots);
    free(t->origins);
    free(t->exact);
    free(t->prefix);
    dt_arena_dispose(&t->arena);
    for (size_t i = 0; i < t->nfiles; i++)
        free(t->files[i]);
    free(t->files);
    free(t->file_first);
    free(t);
}

int dt_table_add_file(struct dt_table *t, const char *name)
{
    t->files = dt_xrealloc(t->files, (t->nfiles + 1) * sizeof(*t->files));
    t->file_first = dt_xrealloc(t->file_first, (t->nfiles + 1) * sizeof(*t->file_first));
    t->files[t->nfiles] = dt_xstrndup(name, strlen(name));
    t->file_first[t->nfiles] = (uint32_t)t->nrules;
    return (int)t->nfiles++;
}

static uint32_t section_for(struct dt_table *t, struct dt_str host, bool wildcard)
{
    if (host.len == 0)
        return 0;
    struct str_map *m = wildcard ? &t->wild : &t->hosts;
    uint32_t idx = dt_rules_map_get(t, m, dt_rules_section_key, host);
    if (idx != NONE)
        return idx;
    if (t->nsections == t->cap_sections) {
        t->cap_sections *= 2;
        t->sections = dt_xrealloc(t->sections, t->cap_sections * sizeof(*t->sections));
    }
    idx = (uint32_t)t->nsections++;
    struct section *s = &t->sections[idx];
    memset(s, 0, sizeof(*s));
    s->host = blob_put(t, host.ptr, host.len);
    s->host_len = (uint16_t)host.len;
    s->wildcard = wildcard;
    map_put(t, m, dt_rules_section_key, host, idx);
    return idx;
}

/* Interns "scheme://authority"; returns its id, or 0 when the table of origins is full. */
static uint16_t origin_for(struct dt_table *t, struct dt_str o)
{
    uint32_t idx = dt_rules_map_get(t, &t->origin_map, origin_key, o);
    if (idx != NONE)
        return (uint16_t)idx;
    if (t->norigins > MAX_ORIGINS)
        return 0;
    if (t->norigins == t->cap_origins) {
        t->cap_origins *= 2;
        t->origins = dt_xrealloc(t->origins, t->cap_origins * sizeof(*t->origins));
    }
    idx = (uint32_t)t->norigins++;
    t->origins[idx] = (struct span32){blob_put(t, o.ptr, o.len), (uint32_t)o.len};
    map_put(t, &t->origin_map, origin_key, o, idx);
    return (uint16_t)idx;
}

static void push_u16(uint16_t **v, uint32_t *n, uint32_t *cap, uint16_t x)
{
    if (*n && (*v)[*n - 1] == x)
        return; /* the common repeat */
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = dt_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

static void push_u32(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = dt_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

static size_t col_of(const struct dt_rule_spec *s, const char *p)
{
    if (s->line.ptr && p >= s->line.ptr && p <= s->line.ptr + s->line.len)
        return (size_t)(p - s->line.ptr);
    return 0;
}

static int src_error(struct dt_diag *d, const struct dt_rule_spec *s, const char *at,
                     const char *msg)
{
    dt_diag_set(d, col_of(s, at), "%s", msg);
    return DT_ESYNTAX;
}

static bool name_start(char c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* A parsed source. */
struct source {
    enum dt_scheme scheme;
    char host[MAX_HOST + 1];
    size_t host_len;
    bool wildcard, apex_too; /* *.host, or .host (the host and its subdomains) */
    struct dt_str path;      /* as written, without the trailing '*'; the regex for ~ */
    enum dt_rule_kind kind;
    struct dt_str query; /* conditions, after '?' */
    struct seg segs[64];
    unsigned nsegs;
    struct dt_str names[DT_TPL_MAX_NAMES];
    unsigned nnames;
    struct qcond conds[MAX_CONDS];
    unsigned nconds;
};

static int add_name(struct source *src, const struct dt_rule_spec *spec, struct dt_str name,
                    struct dt_diag *d)
{
    for (unsigned i = 0; i < src->nnames; i++)
        if (dt_str_eq(src->names[i], name))
            return src_error(d, spec, name.ptr, "a placeholder name is used twice in a source");
    if (src->nnames == DT_TPL_MAX_NAMES)
        return src_error(d, spec, name.ptr, "more than 16 placeholders in one source");
    src->names[src->nnames++] = name;
    return 0;
}

/* Splits a pattern path into segments; offsets relative to the path. A pattern ending in
 * a slash and a star ends with that slash here, which starts no segment. */
static int parse_pattern(struct source *src, const struct dt_rule_spec *spec, struct dt_diag *d)
{
    struct dt_str p = src->path;
    if (src->kind == DT_RULE_PREFIX && p.len && p.ptr[p.len - 1] == '/')
        p.len--;
    size_t i = 0;
    while (i < p.len) {
        /* p.ptr[i] == '/' */
        size_t start = ++i;
        while (i < p.len && p.ptr[i] != '/')
            i++;
        if (src->nsegs == DT_ARRAY_LEN(src->segs))
            return src_error(d, spec, p.ptr + start, "more than 64 segments in a pattern");
        struct seg *s = &src->segs[src->nsegs++];
        s->off = (uint32_t)start;
        s->len = (uint16_t)(i - start);
        s->name = -1;
        if (i > start && p.ptr[start] == ':' && i - start > 1 && name_start(p.ptr[start + 1])) {
            for (size_t k = start + 2; k < i; k++)
                if (!name_char(p.ptr[k]))
                    return src_error(d, spec, p.ptr + k,
                                     "a placeholder is a whole segment: /:name/ (write %3A for "
                                     "a literal colon)");
            int rc = add_name(src, spec, dt_str_make(p.ptr + start + 1, i - start - 1), d);
            if (rc)
                return rc;
            s->name = (int16_t)(src->nnames - 1);
        }
    }
    return 0;
}

static int parse_query(struct source *src, const struct dt_rule_spec *spec, struct dt_diag *d)
{
    struct dt_str q = src->query;
    size_t i = 0;
    while (i < q.len) {
        size_t start = i;
        while (i < q.len && q.ptr[i] != '&')
            i++;
        struct dt_str part = {q.ptr + start, i - start};
        i++;
        if (!part.len)
            continue;
        if (src->nconds == MAX_CONDS)
            return src_error(d, spec, part.ptr, "more than 8 query conditions");
        struct qcond *c = &src->conds[src->nconds];
        const char *eq = memchr(part.ptr, '=', part.len);
        c->key = dt_str_make(part.ptr, eq ? (size_t)(eq - part.ptr) : part.len);
        c->has_value = eq != NULL;
        c->value = eq ? dt_str_make(eq + 1, part.len - c->key.len - 1) : DT_STR_NULL;
        c->name = -1;
        if (!c->key.len)
            return src_error(d, spec, part.ptr, "a query condition needs a parameter name");
        for (unsigned k = 0; k < src->nconds; k++)
            if (dt_str_eq(src->conds[k].key, c->key))
                return src_error(d, spec, part.ptr, "a query parameter is named twice");
        if (c->value.len > 1 && c->value.ptr[0] == ':' && name_start(c->value.ptr[1])) {
            for (size_t k = 2; k < c->value.len; k++)
                if (!name_char(c->value.ptr[k]))
                    return src_error(d, spec, c->value.ptr + k, "invalid placeholder name");
            int rc = add_name(src, spec, dt_str_make(c->value.ptr + 1, c->value.len - 1), d);
            if (rc)
                return rc;
            c->name = (int16_t)(src->nnames - 1);
        }
        src->nconds++;
    }
    return 0;
}

static int parse_source(const struct dt_rule_spec *spec, struct source *src, struct dt_diag *d)
{
    struct dt_str s = spec->source;
    src->scheme = DT_SCHEME_ANY;
    src->host_len = 0;
    src->wildcard = src->apex_too = false;
    src->nsegs = src->nnames = src->nconds = 0;
    src->query = DT_STR_NULL;
    if (s.len && s.ptr[0] == '~') {
        if (s.len == 1)
            return src_error(d, spec, s.ptr, "an empty regular expression");
        src->kind = DT_RULE_REGEX;
        src->path = dt_str_make(s.ptr + 1, s.len - 1);
        return 0;
    }
    const char *rest = s.ptr;
    const char *end = s.ptr + s.len;
    const char *sep = NULL;
    for (const char *p = s.ptr; p + 2 < end; p++) {
        if (*p == '/')
            break;
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            sep = p;
            break;
        }
    }
    if (sep) {
        struct dt_str scheme = {s.ptr, (size_t)(sep - s.ptr)};
        if (dt_str_ieq(scheme, "http"))
            src->scheme = DT_SCHEME_HTTP;
        else if (dt_str_ieq(scheme, "https"))
            src->scheme = DT_SCHEME_HTTPS;
        else
            return src_error(d, spec, s.ptr, "a source scheme must be http or https");
        rest = sep + 3;
        if (rest == end || *rest == '/')
            return src_error(d, spec, rest, "SCHEME://HOST/path: the host is missing");
    }
    if (rest < end && *rest != '/') {
        const char *slash = memchr(rest, '/', (size_t)(end - rest));
        if (!slash)
            return src_error(d, spec, rest, "a source is a path starting with '/', or HOST/path");
        struct dt_str host = {rest, (size_t)(slash - rest)};
        if (host.len >= 2 && host.ptr[0] == '*' && host.ptr[1] == '.') {
            src->wildcard = true;
            host.ptr += 2;
            host.len -= 2;
        } else if (host.len >= 2 && host.ptr[0] == '.') {
            src->apex_too = true; /* .example.com: the host and every subdomain */
            host.ptr += 1;
            host.len -= 1;
        }
        if (host.len > 1 && host.ptr[host.len - 1] == '.')
            host.len--;
        if (host.len > MAX_HOST)
            return src_error(d, spec, rest, "host name longer than 255 bytes");
        if (memchr(host.ptr, '*', host.len))
            return src_error(d, spec, rest, "'*' in a host may only start it, as in *.example.com");
        if (host.len && host.ptr[0] != '[' && memchr(host.ptr, ':', host.len))
            return src_error(d, spec, rest,
                             "a source host has no port: rules match the host name alone");
        if (!dt_url_host_valid(host))
            return src_error(d, spec, rest, "invalid host name");
        memcpy(src->host, host.ptr, host.len);
        dt_ascii_lower(src->host, host.len);
        src->host_len = host.len;
        rest = slash;
    }
    if (rest == end || *rest != '/')
        return src_error(d, spec, rest, "a source is a path starting with '/', or HOST/path");
    struct dt_str path = {rest, (size_t)(end - rest)};
    const char *q = memchr(path.ptr, '?', path.len);
    if (q) {
        src->query = dt_str_make(q + 1, path.len - (size_t)(q - path.ptr) - 1);
        path.len = (size_t)(q - path.ptr);
        if (!src->query.len)
            return src_error(d, spec, q, "an empty query condition");
    }
    src->kind = DT_RULE_EXACT;
    if (path.len && path.ptr[path.len - 1] == '*') {
        src->kind = DT_RULE_PREFIX;
        path.len--;
    }
    bool placeholders = false;
    for (size_t i = 0; i < path.len; i++) {
        char c = path.ptr[i];
        if (c == '*')
            return src_error(d, spec, path.ptr + i,
                             "'*' may only end a source (a prefix rule): /old/*");
        if (c == '#')
            return src_error(d, spec, path.ptr + i, "a source may not hold a fragment ('#')");
        if (c == ':' && path.ptr[i - 1] == '/' && i + 1 < path.len && name_start(path.ptr[i + 1]))
            placeholders = true;
        if ((unsigned char)c >= 0x80)
            return src_error(d, spec, path.ptr + i,
                             "percent-encode non-ASCII characters in a source, as clients "
                             "send them (%C3%A9 for \xc3\xa9)");
    }
    if (path.len > MAX_SOURCE_PATH)
        return src_error(d, spec, path.ptr, "source path longer than 8192 bytes");
    src->path = path;
    if (placeholders) {
        if (src->kind == DT_RULE_PREFIX && (path.len == 0 || path.ptr[path.len - 1] != '/'))
            return src_error(d, spec, path.ptr + path.len,
                             "in a pattern, '*' must follow a '/': /users/:id/*");
        int rc = parse_pattern(src, spec, d);
        src->kind = DT_RULE_PATTERN;
        if (rc)
            return rc;
    }
    if (src->query.len) {
        int rc = parse_query(src, spec, d);
        if (rc)
            return rc;
    }
    return 0;
}

/* The literal prefix every match of an anchored regex starts with ("^/item/" -> "/item/"),
 * or an empty span when there is none it can be sure of. */
struct dt_str dt_rules_regex_prefix(struct dt_str re, char *buf, size_t cap)
{
    if (re.len < 2 || re.ptr[0] != '^' || memchr(re.ptr, '|', re.len))
        return DT_STR_NULL; /* unanchored, or an alternation could skip the prefix */
    size_t n = 0, i = 1;
    while (i < re.len && n < cap) {
        char c = re.ptr[i];
        if (c == '\\') {
            if (i + 1 >= re.len)
                break;
            char e = re.ptr[i + 1];
            if (name_char(e))
                break; /* \d, \w, \b, \1...: not a literal */
            buf[n++] = e;
            i += 2;
            continue;
        }
        if (strchr(".[]()*+?{}^$", c))
            break;
        buf[n++] = c;
        i++;
    }
    /* "ab*" or "ab?" or "ab{0,3}": the last literal may be absent */
    if (n && i < re.len && strchr("*?{", re.ptr[i]))
        n--;
    return dt_str_make(buf, n);
}

static int compile_regex(const struct dt_rule_spec *spec, struct source *src, pcre2_code **out,
                         unsigned *ncaptures, struct dt_diag *d)
{
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src->path.ptr, src->path.len, 0, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        dt_diag_set(d, col_of(spec, src->path.ptr) + at, "invalid regular expression: %s",
                    (const char *)msg);
        return DT_ESYNTAX;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if it fails */
    uint32_t count = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &count);
    *ncaptures = count > 9 ? 9 : count;
    *out = re;
    return 0;
}

static uint16_t bits_status(int status)
{
    for (uint16_t i = 0; i < DT_ARRAY_LEN(statuses); i++)
        if (statuses[i] == status)
            return i;
    return 3;
}

/* Adds one compiled rule for section sec. */
/* Keeps what a rule has beyond its 20 bytes (holes, a window, caching, since=, query
 * conditions, placeholders, a regex) in an extension of the table, and marks r as having
 * one. */
static void add_ext(struct dt_table *t, struct dt_rule *r, const struct dt_rule_spec *spec,
                    const struct source *src, const struct dt_template *tpl, pcre2_code *re,
                    unsigned ncaptures, bool splat, bool window)
{
    if (t->next == t->cap_ext) {
        t->cap_ext = t->cap_ext ? t->cap_ext * 2 : 64;
        t->ext = dt_xrealloc(t->ext, t->cap_ext * sizeof(*t->ext));
    }
    struct rule_ext *e = &t->ext[t->next++];
    memset(e, 0, sizeof(*e));
    e->rule = (uint32_t)t->nrules;
    e->parts = tpl->parts;
    e->nparts = tpl->nparts;
    e->max_age = spec->max_age;
    e->from = spec->has_from ? (int64_t)spec->from : INT64_MIN;
    e->until = spec->has_until ? (int64_t)spec->until : INT64_MAX;
    e->since = spec->has_since ? (int64_t)spec->since : INT64_MIN;
    e->promote_after = spec->promote_after;
    e->re = re;
    e->ncaptures = (uint8_t)ncaptures;
    e->splat = splat;
    if (src->nnames) {
        struct dt_str *names = dt_arena_alloc(&t->arena, src->nnames * sizeof(*names));
        for (unsigned i = 0; i < src->nnames; i++)
            names[i] =
                dt_str_make(dt_arena_strndup(&t->arena, src->names[i].ptr, src->names[i].len),
                            src->names[i].len);
        e->names = names;
        e->nnames = (uint8_t)src->nnames;
    }
    if (src->kind == DT_RULE_PATTERN) {
        struct seg *segs = dt_arena_alloc(&t->arena, src->nsegs * sizeof(*segs));
        for (unsigned i = 0; i < src->nsegs; i++) {
            segs[i] = src->segs[i];
            segs[i].off += r->_src; /* now blob offsets */
        }
        e->segs = segs;
        e->nsegs = (uint8_t)src->nsegs;
    }
    if (src->nconds) {
        struct qcond *conds = dt_arena_alloc(&t->arena, src->nconds * sizeof(*conds));
        for (unsigned i = 0; i < src->nconds; i++) {
            conds[i] = src->conds[i];
            conds[i].key = dt_str_make(
                dt_arena_strndup(&t->arena, conds[i].key.ptr, conds[i].key.len), conds[i].key.len);
            conds[i].value =
                dt_str_make(dt_arena_strndup(&t->arena, conds[i].value.ptr, conds[i].value.len),
                            conds[i].value.len);
        }
        e->conds = conds;
        e->nconds = (uint8_t)src->nconds;
        r->_bits |= B_CONDS;
    }
    r->_bits |= B_EXT;
    if (tpl->nparts)
        r->_bits |= B_HOLES;
    if (window) {
        r->_bits |= B_WINDOW;
        t->has_windows = true;
    }
}

static int add_one(struct dt_table *t, const struct dt_rule_spec *spec, struct source *src,
                   uint32_t sec, uint32_t line, struct dt_diag *d)
{
    if (t->nrules >= NONE - 1) {
        dt_diag_set(d, 0, "too many rules");
        return DT_ELIMIT;
    }
    unsigned ncaptures = 0;
    pcre2_code *re = NULL;
    if (src->kind == DT_RULE_REGEX) {
        int rc = compile_regex(spec, src, &re, &ncaptures, d);
        if (rc)
            return rc;
    }
    bool pattern_splat = false;
    if (src->kind == DT_RULE_PATTERN) {
        /* the source (before any query) ends in '*' */
        const char *q = memchr(spec->source.ptr, '?', spec->source.len);
        size_t n = q ? (size_t)(q - spec->source.ptr) : spec->source.len;
        pattern_splat = n && spec->source.ptr[n - 1] == '*';
    }
    struct dt_tpl_source tsrc = {
        .splat = src->kind == DT_RULE_PREFIX || pattern_splat,
        .regex = src->kind == DT_RULE_REGEX,
        .ncaptures = (uint8_t)ncaptures,
        .nnames = (uint8_t)src->nnames,
        .names = src->names,
    };
    struct dt_template tpl;
    int rc = dt_template_compile(spec->target, &tsrc, &t->arena, &tpl, d);
    if (rc) {
        d->offset += col_of(spec, spec->target.ptr);
        if (re)
            pcre2_code_free(re);
        return rc;
    }

    struct dt_rule r = {0};
    r._section = sec;
    r.line = line;
    /* Intern the scheme and authority of a literal absolute target: bulk redirects mostly
     * point at a few hosts. (First: a new origin goes into the blob, and the target must
     * follow the source there.) */
    struct dt_str tgt = spec->target;
    if (tpl.absolute && !tpl.nparts) {
        struct dt_url u;
        if (dt_url_parse(tgt, &u, NULL) == 0) {
            size_t olen = (size_t)(u.path.ptr - tgt.ptr);
            uint16_t o = origin_for(t, dt_str_make(tgt.ptr, olen));
            if (o) {
                r._origin = o;
                tgt.ptr += olen;
                tgt.len -= olen;
            }
        }
    }
    r._src = blob_put(t, src->path.ptr, src->path.len);
    r._src_len = (uint16_t)src->path.len;
    blob_put(t, tgt.ptr, tgt.len);
    r._tgt_len = (uint16_t)tgt.len;
    r._bits = (uint16_t)(bits_status(spec->status) | (src->kind << B_KIND_SHIFT) |
                         (src->scheme << B_SCHEME_SHIFT));
    if (spec->query_drop)
        r._bits |= B_QUERY_DROP;
    if (tpl.absolute)
        r._bits |= B_TGT_ABS;
    if (tpl.has_query)
        r._bits |= B_TGT_QUERY;
    bool window = spec->has_from || spec->has_until;
    if (spec->promote_after) {
        r._bits |= B_PROMOTE;
    }
    if (tpl.nparts || window || spec->max_age >= 0 || spec->has_since || src->nconds ||
        src->kind == DT_RULE_PATTERN || re || spec->promote_after)
        add_ext(t, &r, spec, src, &tpl, re, ncaptures, tsrc.splat, window);
    struct section *s = &t->sections[sec];
    uint32_t idx = (uint32_t)t->nrules;
    switch (src->kind) {
    case DT_RULE_EXACT:
        t->nexact++;
        break;
    case DT_RULE_PREFIX:
        push_u16(&s->plens, &s->nplens, &s->cap_plens, (uint16_t)src->path.len);
        t->nprefix++;
        break;
    case DT_RULE_PATTERN:
        push_u32(&s->patterns, &s->npatterns, &s->cap_patterns, idx);
        break;
    case DT_RULE_REGEX:
        push_u32(&s->regexes, &s->nregexes, &s->cap_regexes, idx);
        break;
    }
    if (t->nrules == t->cap_rules) {
        t->cap_rules = t->cap_rules ? t->cap_rules * 2 : 256;
        t->rules = dt_xrealloc(t->rules, t->cap_rules * sizeof(*t->rules));
    }
    t->rules[t->nrules++] = r;
    return 0;
}

int dt_table_add(struct dt_table *t, const struct dt_rule_spec *spec, int file, uint32_t line,
                 struct dt_diag *d)
{
    (void)file; /* rules of a file are contiguous: file_first says which file a rule is in */
    if (t->finished) {
        dt_diag_set(d, 0, "the table is already finished");
        return DT_EINVAL;
    }
    if (!dt_http_is_redirect(spec->status)) {
        dt_diag_set(d, 0, "unknown status %d (expected 301, 302, 303, 307 or 308)", spec->status);
        return DT_ESYNTAX;
    }
    if (spec->promote_after) {
        size_t at = spec->promote_at; /* where the parser found the option */
        if (spec->status != 302 && spec->status != 307) {
            dt_diag_set(d, at,
                        "promote-after= applies to 307 (which becomes 308) and 302 "
                        "(which becomes 301), not to %d",
                        spec->status);
            return DT_ESYNTAX;
        }
        if (!spec->has_since) {
            dt_diag_set(d, at,
                        "promote-after= counts from since=: give the time the rule "
                        "was put in place");
            return DT_ESYNTAX;
        }
    }
    struct source src;
    int rc = parse_source(spec, &src, d);
    if (rc)
        return rc;
    struct dt_str host = dt_str_make(src.host, src.host_len);
    rc = add_one(t, spec, &src, section_for(t, host, src.wildcard), line, d);
    if (rc == 0 && src.apex_too)
        rc = add_one(t, spec, &src, section_for(t, host, true), line, d);
    return rc;
}

int dt_rule_status(const struct dt_rule *r)
{
    return statuses[r->_bits & B_STATUS];
}

bool dt_rule_promotion(const struct dt_table *t, const struct dt_rule *r, time_t *at, int *to)
{
    if (!(r->_bits & B_PROMOTE))
        return false;
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    *at = (time_t)(e->since + e->promote_after);
    *to = dt_rule_status(r) == 307 ? 308 : 301;
    return true;
}

int dt_rule_status_at(const struct dt_table *t, const struct dt_rule *r, time_t now)
{
    int status = statuses[r->_bits & B_STATUS];
    if (DT_UNLIKELY(r->_bits & B_PROMOTE)) {
        const struct rule_ext *e = dt_rules_ext_of(t, r);
        if ((int64_t)now >= e->since + e->promote_after)
            return status == 307 ? 308 : 301;
    }
    return status;
}

/* ---- answers -------------------------------------------------------------------------------- */

/* The template of a rule's target (without its interned origin, which origin gets). */
static void template_of(const struct dt_table *t, const struct dt_rule *r, struct dt_template *tpl,
                        struct dt_str *origin)
{
    tpl->text = dt_rules_blob_at(t, r->_src + r->_src_len);
    tpl->len = r->_tgt_len;
    const char *hash = memchr(tpl->text, '#', tpl->len);
    tpl->fragment = hash ? (uint32_t)(hash - tpl->text) : tpl->len;
    tpl->absolute = (r->_bits & B_TGT_ABS) != 0;
    tpl->has_query = (r->_bits & B_TGT_QUERY) != 0;
    tpl->parts = NULL;
    tpl->nparts = 0;
    if (r->_bits & B_HOLES) {
        const struct rule_ext *e = dt_rules_ext_of(t, r);
        tpl->parts = e->parts;
        tpl->nparts = e->nparts;
    }
    *origin = r->_origin ? origin_key(t, r->_origin) : DT_STR_NULL;
}

static void values_of(const struct dt_rule *r, const struct dt_match *m, struct dt_str query,
                      struct dt_tpl_values *v)
{
    memset(v, 0, sizeof(*v));
    v->splat = m->splat;
    v->named = m->named;
    v->captures = m->captures;
    v->ncaptures = m->ncaptures;
    v->query = query;
    v->keep_query = !(r->_bits & B_QUERY_DROP);
}

size_t dt_table_location_max(const struct dt_table *t, const struct dt_match *m,
                             struct dt_str query)
{
    struct dt_template tpl;
    struct dt_tpl_values v;
    struct dt_str origin;
    template_of(t, m->rule, &tpl, &origin);
    values_of(m->rule, m, query, &v);
    return origin.len + dt_template_max_len(&tpl, &v);
}

size_t dt_table_location(const struct dt_table *t, const struct dt_match *m, struct dt_str query,
                         char *out)
{
    struct dt_template tpl;
    struct dt_tpl_values v;
    struct dt_str origin;
    template_of(t, m->rule, &tpl, &origin);
    values_of(m->rule, m, query, &v);
    if (origin.len)
        memcpy(out, origin.ptr, origin.len);
    return origin.len + dt_template_render(&tpl, &v, out + origin.len);
}

int64_t dt_rule_max_age(const struct dt_table *t, const struct dt_rule *r)
{
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    return e ? e->max_age : -1;
}

bool dt_rule_since(const struct dt_table *t, const struct dt_rule *r, time_t *since)
{
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    if (!e || e->since == INT64_MIN)
        return false;
    *since = (time_t)e->since;
    return true;
}

void dt_rule_spec_of(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *text,
                     struct dt_rule_spec *s)
{
    dt_rule_spec_init(s);
    text->len = 0;
    dt_rule_source(t, r, text);
    size_t src_len = text->len;
    dt_rule_target(t, r, text);
    s->source = dt_str_make(text->ptr, src_len);
    s->target = dt_str_make(text->ptr + src_len, text->len - src_len);
    s->status = dt_rule_status(r);
    s->query_drop = (r->_bits & B_QUERY_DROP) != 0;
    s->max_age = dt_rule_max_age(t, r);
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    if (e) {
        s->has_from = e->from != INT64_MIN;
        s->from = s->has_from ? (time_t)e->from : 0;
        s->has_until = e->until != INT64_MAX;
        s->until = s->has_until ? (time_t)e->until : 0;
        s->has_since = e->since != INT64_MIN;
        s->since = s->has_since ? (time_t)e->since : 0;
        s->promote_after = e->promote_after;
    }
}

bool dt_rule_window(const struct dt_table *t, const struct dt_rule *r, time_t *from, time_t *until)
{
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    if (!e || !(r->_bits & B_WINDOW))
        return false;
    *from = (time_t)e->from;
    *until = (time_t)e->until;
    return true;
}

struct dt_rule_origin dt_rule_origin(const struct dt_table *t, const struct dt_rule *r)
{
    struct dt_rule_origin o = {NULL, r->line};
    size_t idx = (size_t)(r - t->rules);
    size_t lo = 0, hi = t->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->file_first[mid] <= idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        o.file = t->files[lo - 1];
    return o;
}

void dt_rule_source(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *out)
{
    if (dt_rules_kind(r) == DT_RULE_REGEX) {
        dt_buf_append(out, "~", 1);
        dt_buf_append(out, dt_rules_blob_at(t, r->_src), r->_src_len);
        return;
    }
    unsigned scheme = dt_rules_scheme(r);
    if (scheme)
        dt_buf_appendf(out, "%s://", scheme == DT_SCHEME_HTTP ? "http" : "https");
    const struct section *s = &t->sections[r->_section];
    if (s->host_len)
        dt_buf_appendf(out, "%s%.*s", s->wildcard ? "*." : "", (int)s->host_len,
                       dt_rules_blob_at(t, s->host));
    dt_buf_append(out, dt_rules_blob_at(t, r->_src), r->_src_len);
    if (dt_rules_kind(r) == DT_RULE_PREFIX ||
        (dt_rules_kind(r) == DT_RULE_PATTERN && dt_rules_ext_of(t, r)->splat))
        dt_buf_append(out, "*", 1);
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    for (unsigned i = 0; e && i < e->nconds; i++) {
        const struct qcond *c = &e->conds[i];
        dt_buf_appendf(out, "%c%.*s", i ? '&' : '?', (int)c->key.len, c->key.ptr);
        if (c->has_value)
            dt_buf_appendf(out, "=%.*s", (int)c->value.len, c->value.ptr);
    }
}

void dt_rule_target(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *out)
{
    if (r->_origin)
        dt_buf_append_str(out, origin_key(t, r->_origin));
    dt_buf_append(out, dt_rules_blob_at(t, r->_src + r->_src_len), r->_tgt_len);
}

const struct section *dt_rules_section(const struct dt_table *t, const struct dt_rule *r)
{
    return &t->sections[r->_section];
}

const struct dt_rule *dt_rules_longest_prefix(const struct dt_table *t, uint32_t sec,
                                              struct dt_str path)
{
    const struct section *s = &t->sections[sec];
    for (size_t k = s->nplens; k--;) {
        size_t len = s->plens[k];
        if (len > path.len)
            continue;
        uint64_t h = dt_rules_hash_bytes(dt_rules_hash_seed(sec), path.ptr, len);
        uint32_t tag = (uint32_t)(h >> 32);
        for (size_t i = dt_rules_slot_of(h, t->prefix_size); t->prefix[i];
             i = i + 1 == t->prefix_size ? 0 : i + 1) {
            const struct dt_rule *r = &t->rules[(uint32_t)t->prefix[i] - 1];
            if ((uint32_t)(t->prefix[i] >> 32) == tag && r->_section == sec && r->_src_len == len &&
                !memcmp(dt_rules_blob_at(t, r->_src), path.ptr, len) &&
                !(r->_bits & (B_WINDOW | B_CONDS)) && !dt_rules_scheme(r))
                return r;
        }
    }
    return NULL;
}

void dt_table_each_host(const struct dt_table *t,
                        void (*fn)(void *ctx, struct dt_str host, bool wildcard), void *ctx)
{
    for (size_t i = 0; t && i < t->nsections; i++) {
        const struct section *s = &t->sections[i];
        if (s->host_len)
            fn(ctx, dt_str_make(dt_rules_blob_at(t, s->host), s->host_len), s->wildcard);
    }
}
