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

static inline uint64_t hash_seed(uint32_t section)
{
    return 0x2545F4914F6CDD1DULL ^ ((uint64_t)section * 0x9E3779B97F4A7C15ULL);
}

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}

/* The hash of the first n bytes, given the state after their whole words. */
static inline uint64_t hash_finish(uint64_t h, const char *p, size_t n)
{
    size_t tail = n & 7;
    uint64_t w = 0;
    if (tail)
        memcpy(&w, p + (n & ~(size_t)7), tail);
    h = hash_word(h, w ^ ((uint64_t)n << 56));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed;
    for (size_t i = 0; i + 8 <= n; i += 8)
        h = hash_word(h, load64(p + i));
    return hash_finish(h, p, n);
}

/* Index of a 64-bit hash in a table of size slots (any size: multiply and shift). */
static inline size_t slot_of(uint64_t h, size_t size)
{
    return (size_t)(((unsigned __int128)(uint32_t)h * size) >> 32);
}

/* ---- blob and string maps ----------------------------------------------------------------- */

static const char *blob_at(const struct dt_table *t, uint32_t off)
{
    return t->blob.ptr + off;
}

static uint32_t blob_put(struct dt_table *t, const char *p, size_t n)
{
    if (t->blob.len + n > UINT32_MAX)
        dt_oom(); /* 4 GiB of rule text: no table this large is supported */
    uint32_t off = (uint32_t)t->blob.len;
    dt_buf_append(&t->blob, p, n);
    return off;
}

typedef struct dt_str (*key_of_fn)(const struct dt_table *t, uint32_t idx);

static struct dt_str section_key(const struct dt_table *t, uint32_t idx)
{
    const struct section *s = &t->sections[idx];
    return dt_str_make(blob_at(t, s->host), s->host_len);
}

static struct dt_str origin_key(const struct dt_table *t, uint32_t idx)
{
    return dt_str_make(blob_at(t, t->origins[idx].off), t->origins[idx].len);
}

static uint32_t map_get(const struct dt_table *t, const struct str_map *m, key_of_fn key_of,
                        struct dt_str k)
{
    if (!m->count)
        return NONE;
    uint64_t h = hash_bytes(hash_seed(0), k.ptr, k.len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t slot = m->slots[i];
        if (!slot)
            return NONE;
        if ((uint32_t)(slot >> 32) == tag && dt_str_eq(key_of(t, (uint32_t)slot - 1), k))
            return (uint32_t)slot - 1;
    }
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
            map_slot(&grown, hash_bytes(hash_seed(0), ok.ptr, ok.len), old);
        }
        free(m->slots);
        *m = grown;
    }
    map_slot(m, hash_bytes(hash_seed(0), k.ptr, k.len), idx);
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
    uint32_t idx = map_get(t, m, section_key, host);
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
    map_put(t, m, section_key, host, idx);
    return idx;
}

/* Interns "scheme://authority"; returns its id, or 0 when the table of origins is full. */
static uint16_t origin_for(struct dt_table *t, struct dt_str o)
{
    uint32_t idx = map_get(t, &t->origin_map, origin_key, o);
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
static struct dt_str regex_prefix(struct dt_str re, char *buf, size_t cap)
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

/* ---- finishing ---------------------------------------------------------------------------- */

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->rule < y->rule ? -1 : x->rule > y->rule;
}

static uint16_t sort_unique(uint16_t *v, uint32_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u16);
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] != v[k - 1])
            v[k++] = v[i];
    return (uint16_t)k;
}

static inline enum dt_rule_kind kind_of(const struct dt_rule *r)
{
    return (enum dt_rule_kind)((r->_bits >> B_KIND_SHIFT) & 3);
}

static inline unsigned scheme_of(const struct dt_rule *r)
{
    return (r->_bits >> B_SCHEME_SHIFT) & 3;
}

static const struct rule_ext *ext_of(const struct dt_table *t, const struct dt_rule *r)
{
    if (!(r->_bits & B_EXT))
        return NULL;
    uint32_t idx = (uint32_t)(r - t->rules);
    size_t lo = 0, hi = t->next;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->ext[mid].rule < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->next && t->ext[lo].rule == idx ? &t->ext[lo] : NULL;
}

static uint64_t rule_hash(const struct dt_table *t, const struct dt_rule *r)
{
    return hash_bytes(hash_seed(r->_section), blob_at(t, r->_src), r->_src_len);
}

static bool same_key(const struct dt_table *t, const struct dt_rule *a, const struct dt_rule *b)
{
    return a->_section == b->_section && a->_src_len == b->_src_len &&
           memcmp(blob_at(t, a->_src), blob_at(t, b->_src), a->_src_len) == 0;
}

/* Puts rule idx after every rule of the same key; counts (and logs the first ten) rules that
 * can never answer because an earlier one with the same key always does. */
static void place(struct dt_table *t, uint64_t *tab, size_t size, uint64_t h, uint32_t idx,
                  unsigned *warned)
{
    const struct dt_rule *r = &t->rules[idx];
    bool reported = false;
    size_t i = slot_of(h, size);
    for (; tab[i]; i = i + 1 == size ? 0 : i + 1) {
        if ((uint32_t)(tab[i] >> 32) != (uint32_t)(h >> 32))
            continue;
        const struct dt_rule *o = &t->rules[(uint32_t)tab[i] - 1];
        if (!reported && same_key(t, o, r) && scheme_of(o) == scheme_of(r) &&
            !(o->_bits & (B_WINDOW | B_CONDS)) && !(r->_bits & B_CONDS)) {
            reported = true;
            if ((*warned)++ < 10) {
                struct dt_rule_origin a = dt_rule_origin(t, r), b = dt_rule_origin(t, o);
                dt_log(DT_LOG_WARN, "%s:%u: duplicate source, never used: %s:%u answers first",
                       a.file ? a.file : "(api)", a.line, b.file ? b.file : "(api)", b.line);
            }
        }
    }
    tab[i] = ((h >> 32) << 32) | (uint64_t)(idx + 1);
}

static uint64_t *make_index(size_t n, size_t *size)
{
    /* a load factor of at most 0.7 */
    *size = n < 12 ? 16 : n + n / 7 * 3 + 1;
    return dt_xcalloc(*size, sizeof(uint64_t));
}

/* The priority of a rule among rules with the same key: query conditions first, then a
 * scheme of its own, then the others. */
static unsigned rank(const struct dt_rule *r)
{
    return (r->_bits & B_CONDS ? 0 : 2) + (scheme_of(r) ? 0 : 1);
}

static void place_rule(struct dt_table *t, uint64_t h, uint32_t idx, unsigned *warned)
{
    if (kind_of(&t->rules[idx]) == DT_RULE_EXACT)
        place(t, t->exact, t->exact_size, h, idx, warned);
    else
        place(t, t->prefix, t->prefix_size, h, idx, warned);
}

static void build_hash_indexes(struct dt_table *t)
{
    enum { AHEAD = 8 };
    unsigned warned = 0;
    t->exact = make_index(t->nexact, &t->exact_size);
    t->prefix = make_index(t->nprefix, &t->prefix_size);
    for (unsigned pass = 0; pass < 4; pass++) {
        /* Inserts are random accesses into a table of many megabytes: hash a few rules
         * ahead and prefetch their slots, placing them in order (a FIFO keeps priority). */
        uint64_t ring_h[AHEAD];
        uint32_t ring_i[AHEAD];
        unsigned head = 0, n = 0;
        for (size_t i = 0; i < t->nrules; i++) {
            const struct dt_rule *r = &t->rules[i];
            enum dt_rule_kind k = kind_of(r);
            if ((k != DT_RULE_EXACT && k != DT_RULE_PREFIX) || rank(r) != pass)
                continue;
            uint64_t h = rule_hash(t, r);
            if (k == DT_RULE_EXACT)
                __builtin_prefetch(&t->exact[slot_of(h, t->exact_size)], 1);
            else
                __builtin_prefetch(&t->prefix[slot_of(h, t->prefix_size)], 1);
            if (n == AHEAD) {
                place_rule(t, ring_h[head], ring_i[head], &warned);
                head = (head + 1) % AHEAD;
                n--;
            }
            ring_h[(head + n) % AHEAD] = h;
            ring_i[(head + n) % AHEAD] = (uint32_t)i;
            n++;
        }
        for (; n; n--, head = (head + 1) % AHEAD)
            place_rule(t, ring_h[head], ring_i[head], &warned);
    }
    if (warned > 10)
        dt_log(DT_LOG_WARN, "%u more duplicate sources not shown (detour lint lists them all)",
               warned - 10);
}

static void build_section(struct dt_table *t, struct section *s)
{
    s->nplens = sort_unique(s->plens, s->nplens);
    if (s->npatterns) {
        s->pat_first = dt_xcalloc(s->npatterns, sizeof(*s->pat_first));
        s->pat_any = dt_xcalloc(s->npatterns, sizeof(*s->pat_any));
        for (uint32_t i = 0; i < s->npatterns; i++) {
            const struct dt_rule *r = &t->rules[s->patterns[i]];
            const struct rule_ext *e = ext_of(t, r);
            if (e->nsegs && e->segs[0].name < 0)
                s->pat_first[s->npat_first++] = (struct keyed){
                    hash_bytes(hash_seed(0), blob_at(t, e->segs[0].off), e->segs[0].len),
                    s->patterns[i]};
            else
                s->pat_any[s->npat_any++] = s->patterns[i];
        }
        qsort(s->pat_first, s->npat_first, sizeof(*s->pat_first), cmp_keyed);
    }
    if (s->nregexes) {
        s->re_prefix = dt_xcalloc(s->nregexes, sizeof(*s->re_prefix));
        s->re_any = dt_xcalloc(s->nregexes, sizeof(*s->re_any));
        uint16_t *lens = dt_xcalloc(s->nregexes, sizeof(*lens));
        uint32_t nlens = 0;
        char buf[512];
        for (uint32_t i = 0; i < s->nregexes; i++) {
            const struct dt_rule *r = &t->rules[s->regexes[i]];
            struct dt_str p =
                regex_prefix(dt_str_make(blob_at(t, r->_src), r->_src_len), buf, sizeof(buf));
            if (p.len) {
                s->re_prefix[s->nre_prefix++] = (struct keyed){
                    ((uint64_t)p.len << 48) | (hash_bytes(hash_seed(0), p.ptr, p.len) >> 16),
                    s->regexes[i]};
                lens[nlens++] = (uint16_t)p.len;
            } else {
                s->re_any[s->nre_any++] = s->regexes[i];
            }
        }
        qsort(s->re_prefix, s->nre_prefix, sizeof(*s->re_prefix), cmp_keyed);
        s->rlens = lens;
        s->nrlens = sort_unique(lens, nlens);
    }
}

void dt_table_finish(struct dt_table *t)
{
    if (t->finished)
        return;
    build_hash_indexes(t);
    for (size_t i = 0; i < t->nsections; i++)
        build_section(t, &t->sections[i]);
    t->finished = true;
}

size_t dt_table_size(const struct dt_table *t)
{
    return t ? t->nrules : 0;
}

bool dt_table_has_windows(const struct dt_table *t)
{
    return t->has_windows;
}

const struct dt_rule *dt_table_rule(const struct dt_table *t, size_t i)
{
    return i < t->nrules ? &t->rules[i] : NULL;
}

size_t dt_table_memory(const struct dt_table *t)
{
    size_t n = t->blob.cap + t->cap_rules * sizeof(struct dt_rule) +
               t->cap_ext * sizeof(struct rule_ext) + (t->exact_size + t->prefix_size) * 8 +
               t->arena.total + t->nsections * sizeof(struct section);
    return n;
}

int dt_rule_status(const struct dt_rule *r)
{
    return statuses[r->_bits & B_STATUS];
}

bool dt_rule_promotion(const struct dt_table *t, const struct dt_rule *r, time_t *at, int *to)
{
    if (!(r->_bits & B_PROMOTE))
        return false;
    const struct rule_ext *e = ext_of(t, r);
    *at = (time_t)(e->since + e->promote_after);
    *to = dt_rule_status(r) == 307 ? 308 : 301;
    return true;
}

int dt_rule_status_at(const struct dt_table *t, const struct dt_rule *r, time_t now)
{
    int status = statuses[r->_bits & B_STATUS];
    if (DT_UNLIKELY(r->_bits & B_PROMOTE)) {
        const struct rule_ext *e = ext_of(t, r);
        if ((int64_t)now >= e->since + e->promote_after)
            return status == 307 ? 308 : 301;
    }
    return status;
}

enum dt_rule_kind dt_rule_kind(const struct dt_rule *r)
{
    return kind_of(r);
}

/* ---- matching ------------------------------------------------------------------------------ */

/* Finds a query parameter; returns its raw value (empty if it has none). */
static bool query_param(struct dt_str query, struct dt_str key, struct dt_str *value)
{
    size_t i = 0;
    while (i <= query.len) {
        size_t start = i;
        while (i < query.len && query.ptr[i] != '&')
            i++;
        struct dt_str part = {query.ptr + start, i - start};
        const char *eq = memchr(part.ptr, '=', part.len);
        struct dt_str k = {part.ptr, eq ? (size_t)(eq - part.ptr) : part.len};
        if (dt_str_eq(k, key)) {
            *value = eq ? dt_str_make(eq + 1, part.len - k.len - 1) : dt_str_make(part.ptr, 0);
            return true;
        }
        i++;
    }
    return false;
}

/* Checks scheme, window and query conditions; fills query captures into m. */
static bool active(const struct dt_table *t, const struct dt_rule *r, enum dt_scheme scheme,
                   struct dt_str query, time_t now, struct dt_match *m)
{
    unsigned want = scheme_of(r);
    if (want && want != (unsigned)scheme)
        return false;
    if (DT_UNLIKELY(m->_hidden)) {
        size_t i = (size_t)(r - t->rules);
        if (m->_hidden[i / 64] >> (i % 64) & 1)
            return false;
    }
    if (!(r->_bits & (B_WINDOW | B_CONDS)))
        return true;
    const struct rule_ext *e = ext_of(t, r);
    if ((r->_bits & B_WINDOW) && ((int64_t)now < e->from || (int64_t)now >= e->until))
        return false;
    for (unsigned i = 0; i < e->nconds; i++) {
        const struct qcond *c = &e->conds[i];
        struct dt_str v;
        if (!query.len || !query_param(query, c->key, &v))
            return false;
        if (c->name >= 0) {
            if (!v.len)
                return false; /* a placeholder takes a value */
            m->named[c->name] = v;
        } else if (c->has_value && !dt_str_eq(v, c->value)) {
            return false;
        }
    }
    return true;
}

/* Finds the first active rule whose key is (section, path[0, len)), or with dir set,
 * (section, path[0, len) + "/"). */
static const struct dt_rule *probe(const struct dt_table *t, const uint64_t *tab, size_t size,
                                   uint64_t h, uint32_t section, const char *path, size_t len,
                                   bool dir, enum dt_scheme scheme, struct dt_str query, time_t now,
                                   struct dt_match *m)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t klen = len + dir;
    for (size_t i = slot_of(h, size);; i = i + 1 == size ? 0 : i + 1) {
        uint64_t slot = tab[i];
        if (!slot)
            return NULL;
        if ((uint32_t)(slot >> 32) != tag)
            continue;
        const struct dt_rule *r = &t->rules[(uint32_t)slot - 1];
        if (r->_section != section || r->_src_len != klen)
            continue;
        const char *src = blob_at(t, r->_src);
        if (memcmp(src, path, len) != 0 || (dir && src[len] != '/'))
            continue;
        if (active(t, r, scheme, query, now, m))
            return r;
    }
}

/* Matches a placeholder pattern against path; fills names and splat. */
static bool pattern_matches(const struct dt_table *t, const struct rule_ext *e, struct dt_str path,
                            struct dt_match *m)
{
    size_t i = 0;
    for (unsigned k = 0; k < e->nsegs; k++) {
        if (i >= path.len || path.ptr[i] != '/')
            return false;
        size_t start = ++i;
        while (i < path.len && path.ptr[i] != '/')
            i++;
        const struct seg *s = &e->segs[k];
        struct dt_str v = {path.ptr + start, i - start};
        if (s->name >= 0) {
            if (!v.len)
                return false;
            m->named[s->name] = v;
        } else if (!dt_str_eq(v, dt_str_make(blob_at(t, s->off), s->len))) {
            return false;
        }
    }
    if (e->splat) {
        /* a pattern ending in a star: the rest after the slash, or nothing (like a prefix) */
        if (i == path.len) {
            m->splat = dt_str_make(path.ptr + i, 0);
            return true;
        }
        if (path.ptr[i] != '/')
            return false;
        m->splat = dt_str_make(path.ptr + i + 1, path.len - i - 1);
        return true;
    }
    return i == path.len;
}

struct regex_tls {
    pcre2_match_data *md;
    pcre2_match_context *mc;
};

static pthread_key_t regex_key;
static pthread_once_t regex_once = PTHREAD_ONCE_INIT;

static void regex_tls_free(void *p)
{
    struct regex_tls *x = p;
    pcre2_match_data_free(x->md);
    pcre2_match_context_free(x->mc);
    free(x);
}

static void regex_key_init(void)
{
    pthread_key_create(&regex_key, regex_tls_free);
}

/* The calling thread's match data: created once per thread, never per request. */
static struct regex_tls *regex_tls(void)
{
    pthread_once(&regex_once, regex_key_init);
    struct regex_tls *x = pthread_getspecific(regex_key);
    if (!x) {
        x = dt_xcalloc(1, sizeof(*x));
        x->md = pcre2_match_data_create(DT_MAX_CAPTURES + 1, NULL);
        x->mc = pcre2_match_context_create(NULL);
        if (!x->md || !x->mc)
            dt_oom();
        /* A regex that backtracks this much is taken as not matching, so that no request
         * can make a worker spin. */
        pcre2_set_match_limit(x->mc, REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(x->mc, REGEX_MATCH_LIMIT);
        pthread_setspecific(regex_key, x);
    }
    return x;
}

static bool regex_matches(const struct rule_ext *e, struct dt_str path, struct dt_match *m)
{
    struct regex_tls *x = regex_tls();
    int rc = pcre2_match(e->re, (PCRE2_SPTR)path.ptr, path.len, 0, 0, x->md, x->mc);
    if (rc <= 0)
        return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->md);
    unsigned n = e->ncaptures + 1;
    for (unsigned k = 0; k < n && k < DT_MAX_CAPTURES; k++) {
        if ((int)k < rc && ov[2 * k] != PCRE2_UNSET)
            m->captures[k] = dt_str_make(path.ptr + ov[2 * k], ov[2 * k + 1] - ov[2 * k]);
        else
            m->captures[k] = dt_str_make(path.ptr, 0);
    }
    m->ncaptures = (uint8_t)n;
    return true;
}

/* Tries one pattern or regex rule. */
static bool try_rule(const struct dt_table *t, uint32_t idx, enum dt_scheme scheme,
                     struct dt_str path, struct dt_str query, time_t now, struct dt_match *m)
{
    const struct dt_rule *r = &t->rules[idx];
    const struct rule_ext *e = ext_of(t, r);
    bool hit =
        kind_of(r) == DT_RULE_PATTERN ? pattern_matches(t, e, path, m) : regex_matches(e, path, m);
    return hit && active(t, r, scheme, query, now, m);
}

/* Tries, in rule order, the union of two lists sorted by rule index: a (a keyed range or
 * plain indexes, whichever is given) and b. */
static const struct dt_rule *try_in_order(const struct dt_table *t, const struct keyed *ka,
                                          const uint32_t *a, size_t na, const uint32_t *b,
                                          size_t nb, enum dt_scheme scheme, struct dt_str path,
                                          struct dt_str query, time_t now, struct dt_match *m)
{
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        uint32_t ai = i < na ? (ka ? ka[i].rule : a[i]) : NONE;
        uint32_t idx;
        if (j >= nb || ai < b[j]) {
            idx = ai;
            i++;
        } else {
            idx = b[j++];
        }
        if (try_rule(t, idx, scheme, path, query, now, m))
            return &t->rules[idx];
    }
    return NULL;
}

/* The entries of a sorted keyed array whose key is k; returns their count. */
static size_t keyed_range(const struct keyed *v, size_t n, uint64_t k, const struct keyed **out)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].key < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < n && v[end].key == k)
        end++;
    *out = v + lo;
    return end - lo;
}

static const struct dt_rule *match_patterns(const struct dt_table *t, const struct section *s,
                                            enum dt_scheme scheme, struct dt_str path,
                                            struct dt_str query, time_t now, struct dt_match *m)
{
    /* Candidates: the patterns whose first segment is the path's (sorted by rule within one
     * key), and those that start with a placeholder. */
    size_t i = 1;
    while (i < path.len && path.ptr[i] != '/')
        i++;
    const struct keyed *first = NULL;
    size_t nfirst = 0;
    if (path.len && s->npat_first)
        nfirst = keyed_range(s->pat_first, s->npat_first,
                             hash_bytes(hash_seed(0), path.ptr + 1, i - 1), &first);
    return try_in_order(t, first, NULL, nfirst, s->pat_any, s->npat_any, scheme, path, query, now,
                        m);
}

static const struct dt_rule *match_regexes(const struct dt_table *t, const struct section *s,
                                           enum dt_scheme scheme, struct dt_str path,
                                           struct dt_str query, time_t now, struct dt_match *m)
{
    /* candidates: regexes whose literal prefix the path starts with, and those without one;
     * merged in rule order */
    uint32_t cand[256];
    size_t nc = 0;
    for (uint32_t k = 0; k < s->nrlens && s->rlens[k] <= path.len; k++) {
        uint64_t key =
            ((uint64_t)s->rlens[k] << 48) | (hash_bytes(hash_seed(0), path.ptr, s->rlens[k]) >> 16);
        const struct keyed *v;
        size_t n = keyed_range(s->re_prefix, s->nre_prefix, key, &v);
        for (size_t j = 0; j < n && nc < DT_ARRAY_LEN(cand); j++)
            cand[nc++] = v[j].rule;
    }
    if (nc == DT_ARRAY_LEN(cand)) {
        /* too many candidates to sort here: try every regex in order */
        return try_in_order(t, NULL, s->regexes, s->nregexes, NULL, 0, scheme, path, query, now, m);
    }
    /* sort the candidates (a few) by rule index */
    for (size_t a = 1; a < nc; a++) {
        uint32_t x = cand[a];
        size_t b = a;
        while (b > 0 && cand[b - 1] > x) {
            cand[b] = cand[b - 1];
            b--;
        }
        cand[b] = x;
    }
    return try_in_order(t, NULL, cand, nc, s->re_any, s->nre_any, scheme, path, query, now, m);
}

static const struct dt_rule *match_section(const struct dt_table *t, uint32_t sec,
                                           enum dt_scheme scheme, struct dt_str path,
                                           struct dt_str query, time_t now, struct dt_match *m)
{
    const struct section *s = &t->sections[sec];
    const struct dt_rule *r;
    uint64_t seed = hash_seed(sec);
    uint64_t at_len[STACK_LENS];
    size_t nat = 0;
    uint32_t j = 0;
    bool one_pass = s->nplens <= STACK_LENS;
    /* One pass over the path's words: the state at each word boundary is finished at every
     * prefix length this section has. */
    uint64_t h = seed;
    size_t w = 0; /* bytes hashed into h, a multiple of 8 */
    if (one_pass) {
        for (; j < s->nplens && s->plens[j] <= path.len; j++) {
            size_t len = s->plens[j];
            for (; w + 8 <= len; w += 8)
                h = hash_word(h, load64(path.ptr + w));
            at_len[nat++] = hash_finish(h, path.ptr, len);
        }
    }
    for (; w + 8 <= path.len; w += 8)
        h = hash_word(h, load64(path.ptr + w));
    if (t->nexact) {
        r = probe(t, t->exact, t->exact_size, hash_finish(h, path.ptr, path.len), sec, path.ptr,
                  path.len, false, scheme, query, now, m);
        if (r) {
            m->splat = DT_STR_NULL;
            return r;
        }
    }
    if (s->nplens) {
        /* A prefix rule for "/dir/" also answers "/dir" itself, with an empty splat. */
        if (path.len && path.ptr[path.len - 1] != '/' && path.len + 1 <= MAX_SOURCE_PATH &&
            bsearch(&(uint16_t){(uint16_t)(path.len + 1)}, s->plens, s->nplens, sizeof(uint16_t),
                    cmp_u16)) {
            char dir[MAX_SOURCE_PATH + 1];
            memcpy(dir, path.ptr, path.len);
            dir[path.len] = '/';
            r = probe(t, t->prefix, t->prefix_size, hash_bytes(seed, dir, path.len + 1), sec,
                      path.ptr, path.len, true, scheme, query, now, m);
            if (r) {
                m->splat = dt_str_make(path.ptr + path.len, 0);
                return r;
            }
        }
        if (one_pass) {
            while (nat--) {
                size_t len = s->plens[nat];
                r = probe(t, t->prefix, t->prefix_size, at_len[nat], sec, path.ptr, len, false,
                          scheme, query, now, m);
                if (r) {
                    m->splat = dt_str_make(path.ptr + len, path.len - len);
                    return r;
                }
            }
        } else {
            for (size_t k = s->nplens; k--;) {
                size_t len = s->plens[k];
                if (len > path.len)
                    continue;
                r = probe(t, t->prefix, t->prefix_size, hash_bytes(seed, path.ptr, len), sec,
                          path.ptr, len, false, scheme, query, now, m);
                if (r) {
                    m->splat = dt_str_make(path.ptr + len, path.len - len);
                    return r;
                }
            }
        }
    }
    if (s->npatterns && (r = match_patterns(t, s, scheme, path, query, now, m)))
        return r;
    if (s->nregexes && (r = match_regexes(t, s, scheme, path, query, now, m)))
        return r;
    return NULL;
}

static const struct dt_rule *match(const struct dt_table *t, enum dt_scheme scheme,
                                   struct dt_str host, struct dt_str path, struct dt_str query,
                                   time_t now, struct dt_match *m, bool any_host);

const struct dt_rule *dt_table_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, struct dt_str query,
                                     time_t now, struct dt_match *m)
{
    m->_hidden = NULL;
    return match(t, scheme, host, path, query, now, m, true);
}

const struct dt_rule *dt_rules_match_host(const struct dt_table *t, enum dt_scheme scheme,
                                          struct dt_str host, struct dt_str path,
                                          struct dt_str query, time_t now, struct dt_match *m)
{
    m->_hidden = NULL;
    return match(t, scheme, host, path, query, now, m, false);
}

static const struct dt_rule *match(const struct dt_table *t, enum dt_scheme scheme,
                                   struct dt_str host, struct dt_str path, struct dt_str query,
                                   time_t now, struct dt_match *m, bool any_host)
{
    const struct dt_rule *r;
    m->rule = NULL;
    m->ncaptures = 0;
    if (host.len && t->hosts.count) {
        uint32_t sec = map_get(t, &t->hosts, section_key, host);
        if (sec != NONE && (r = match_section(t, sec, scheme, path, query, now, m)))
            return m->rule = r;
    }
    if (host.len && t->wild.count) {
        /* a.b.example.com: try *.b.example.com, then *.example.com, then *.com */
        for (size_t i = 0; i < host.len; i++) {
            if (host.ptr[i] != '.')
                continue;
            struct dt_str suffix = {host.ptr + i + 1, host.len - i - 1};
            uint32_t sec = map_get(t, &t->wild, section_key, suffix);
            if (sec != NONE && (r = match_section(t, sec, scheme, path, query, now, m)))
                return m->rule = r;
        }
    }
    r = any_host ? match_section(t, 0, scheme, path, query, now, m) : NULL;
    return m->rule = r;
}

/* ---- live rule sets ------------------------------------------------------------------------ */

/* Where a matched rule stands in the order match() tries rules, as a key to compare rules of
 * different tables: the section (the host's own, then wildcards from the longest suffix, then
 * any host), the kind, a prefix's length (longest first), the rank among rules with the same
 * key, then the order of the rules (store rules by id before file rules by index). */
struct prec {
    uint32_t section, kind, len, rank;
    uint64_t order;
};

static struct prec prec_of(const struct dt_table *t, const struct dt_rule *r, struct dt_str host,
                           bool store)
{
    const struct section *s = &t->sections[r->_section];
    enum dt_rule_kind k = kind_of(r);
    struct prec p = {
        .section = r->_section == 0 ? UINT32_MAX
                   : !s->wildcard   ? 0
                                    : 1 + (uint32_t)(host.len - s->host_len),
        .kind = (uint32_t)k,
        .len = k == DT_RULE_PREFIX ? UINT16_MAX - r->_src_len : 0,
        .rank = k == DT_RULE_EXACT || k == DT_RULE_PREFIX ? rank(r) : 0,
        .order = store ? r->line : ((uint64_t)1 << 32) + (uint64_t)(r - t->rules),
    };
    return p;
}

static bool prec_before(struct prec a, struct prec b)
{
    if (a.section != b.section)
        return a.section < b.section;
    if (a.kind != b.kind)
        return a.kind < b.kind;
    if (a.len != b.len)
        return a.len < b.len;
    if (a.rank != b.rank)
        return a.rank < b.rank;
    return a.order < b.order;
}

const struct dt_rule *dt_ruleset_match(const struct dt_ruleset *rs, enum dt_scheme scheme,
                                       struct dt_str host, struct dt_str path, struct dt_str query,
                                       time_t now, struct dt_match *m,
                                       const struct dt_table **table)
{
    return dt_rules_ruleset_match(rs, scheme, host, path, query, now, m, table, true);
}

const struct dt_rule *dt_rules_ruleset_match(const struct dt_ruleset *rs, enum dt_scheme scheme,
                                             struct dt_str host, struct dt_str path,
                                             struct dt_str query, time_t now, struct dt_match *m,
                                             const struct dt_table **table, bool any_host)
{
    /* The common cases, one table holding rules, take one lookup. */
    const struct dt_table *tabs[4] = {rs->recent, rs->overlay, rs->store, rs->files};
    const uint64_t *hidden[4] = {NULL, rs->hidden_overlay, rs->hidden, NULL};
    const struct dt_rule *best = NULL;
    const struct dt_table *best_t = NULL;
    struct prec best_p = {0};
    struct dt_match tmp;
    for (int i = 0; i < 4; i++) {
        const struct dt_table *t = tabs[i];
        if (!t || !t->nrules)
            continue;
        /* The first candidate is matched straight into m; later ones into tmp. */
        struct dt_match *mm = best ? &tmp : m;
        mm->_hidden = hidden[i];
        const struct dt_rule *r = match(t, scheme, host, path, query, now, mm, any_host);
        if (!r)
            continue;
        struct prec p = prec_of(t, r, host, i < 3);
        if (best && !prec_before(p, best_p))
            continue;
        if (best)
            *m = tmp;
        best = r;
        best_t = t;
        best_p = p;
    }
    m->rule = best;
    *table = best_t;
    return best;
}

struct dt_hits *dt_hits_new(size_t nrules, unsigned nworkers)
{
    struct dt_hits *h = dt_xcalloc(1, sizeof(*h));
    h->nrules = nrules;
    h->nworkers = nworkers ? nworkers : 1;
    /* calloc: pages of rules never hit stay untouched, so they cost no memory */
    h->count = dt_xcalloc((size_t)h->nworkers * (nrules ? nrules : 1), sizeof(uint64_t));
    h->last = dt_xcalloc(nrules ? nrules : 1, sizeof(uint32_t));
    return h;
}

void dt_hits_free(struct dt_hits *h)
{
    if (!h)
        return;
    free(h->count);
    free(h->last);
    free(h);
}

uint64_t dt_hits_get(const struct dt_hits *h, size_t i, uint32_t *last)
{
    uint64_t n = 0;
    for (unsigned w = 0; w < h->nworkers; w++)
        n += __atomic_load_n(&h->count[(size_t)w * h->nrules + i], __ATOMIC_RELAXED);
    if (last)
        *last = __atomic_load_n(&h->last[i], __ATOMIC_RELAXED);
    return n;
}

size_t dt_table_find_source(const struct dt_table *t, const struct dt_table *rt,
                            const struct dt_rule *r, void (*fn)(void *ctx, size_t idx), void *ctx)
{
    const struct section *rs = &rt->sections[r->_section];
    uint32_t sec = 0;
    if (rs->host_len) {
        struct dt_str host = dt_str_make(blob_at(rt, rs->host), rs->host_len);
        sec = map_get(t, rs->wildcard ? &t->wild : &t->hosts, section_key, host);
        if (sec == NONE)
            return 0;
    }
    struct dt_buf want, have;
    dt_buf_init(&want);
    dt_buf_init(&have);
    dt_rule_source(rt, r, &want);
    size_t found = 0;
    enum dt_rule_kind k = kind_of(r);
    const struct section *s = &t->sections[sec];
    /* Candidates: the rules of the same key (exact, prefix) or of the section (others). */
    const uint64_t *tab = k == DT_RULE_EXACT ? t->exact : t->prefix;
    size_t size = k == DT_RULE_EXACT ? t->exact_size : t->prefix_size;
    const uint32_t *list = k == DT_RULE_PATTERN ? s->patterns : s->regexes;
    size_t n = k == DT_RULE_PATTERN ? s->npatterns : k == DT_RULE_REGEX ? s->nregexes : 0;
    size_t start = 0;
    uint64_t h = 0;
    if (k == DT_RULE_EXACT || k == DT_RULE_PREFIX) {
        if (!size)
            n = 0;
        else {
            h = hash_bytes(hash_seed(sec), blob_at(rt, r->_src), r->_src_len);
            start = slot_of(h, size);
            n = size;
        }
    }
    for (size_t j = 0; j < n; j++) {
        uint32_t idx;
        if (k == DT_RULE_EXACT || k == DT_RULE_PREFIX) {
            uint64_t slot = tab[(start + j) % size];
            if (!slot)
                break;
            if ((uint32_t)(slot >> 32) != (uint32_t)(h >> 32))
                continue;
            idx = (uint32_t)slot - 1;
        } else {
            idx = list[j];
        }
        const struct dt_rule *o = &t->rules[idx];
        if (o->_section != sec || o->_src_len != r->_src_len || kind_of(o) != k ||
            memcmp(blob_at(t, o->_src), blob_at(rt, r->_src), r->_src_len) != 0)
            continue;
        have.len = 0;
        dt_rule_source(t, o, &have);
        if (have.len == want.len && !memcmp(have.ptr, want.ptr, want.len)) {
            fn(ctx, idx);
            found++;
        }
    }
    dt_buf_dispose(&want);
    dt_buf_dispose(&have);
    return found;
}

/* ---- answers -------------------------------------------------------------------------------- */

/* The template of a rule's target (without its interned origin, which origin gets). */
static void template_of(const struct dt_table *t, const struct dt_rule *r, struct dt_template *tpl,
                        struct dt_str *origin)
{
    tpl->text = blob_at(t, r->_src + r->_src_len);
    tpl->len = r->_tgt_len;
    const char *hash = memchr(tpl->text, '#', tpl->len);
    tpl->fragment = hash ? (uint32_t)(hash - tpl->text) : tpl->len;
    tpl->absolute = (r->_bits & B_TGT_ABS) != 0;
    tpl->has_query = (r->_bits & B_TGT_QUERY) != 0;
    tpl->parts = NULL;
    tpl->nparts = 0;
    if (r->_bits & B_HOLES) {
        const struct rule_ext *e = ext_of(t, r);
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
    const struct rule_ext *e = ext_of(t, r);
    return e ? e->max_age : -1;
}

bool dt_rule_since(const struct dt_table *t, const struct dt_rule *r, time_t *since)
{
    const struct rule_ext *e = ext_of(t, r);
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
    const struct rule_ext *e = ext_of(t, r);
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
    const struct rule_ext *e = ext_of(t, r);
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
    if (kind_of(r) == DT_RULE_REGEX) {
        dt_buf_append(out, "~", 1);
        dt_buf_append(out, blob_at(t, r->_src), r->_src_len);
        return;
    }
    unsigned scheme = scheme_of(r);
    if (scheme)
        dt_buf_appendf(out, "%s://", scheme == DT_SCHEME_HTTP ? "http" : "https");
    const struct section *s = &t->sections[r->_section];
    if (s->host_len)
        dt_buf_appendf(out, "%s%.*s", s->wildcard ? "*." : "", (int)s->host_len,
                       blob_at(t, s->host));
    dt_buf_append(out, blob_at(t, r->_src), r->_src_len);
    if (kind_of(r) == DT_RULE_PREFIX || (kind_of(r) == DT_RULE_PATTERN && ext_of(t, r)->splat))
        dt_buf_append(out, "*", 1);
    const struct rule_ext *e = ext_of(t, r);
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
    dt_buf_append(out, blob_at(t, r->_src + r->_src_len), r->_tgt_len);
}

const struct rule_ext *dt_rules_ext(const struct dt_table *t, const struct dt_rule *r)
{
    return ext_of(t, r);
}

const struct section *dt_rules_section(const struct dt_table *t, const struct dt_rule *r)
{
    return &t->sections[r->_section];
}

struct dt_str dt_rules_regex_prefix(struct dt_str re, char *buf, size_t cap)
{
    return regex_prefix(re, buf, cap);
}

const struct dt_rule *dt_rules_longest_prefix(const struct dt_table *t, uint32_t sec,
                                              struct dt_str path)
{
    const struct section *s = &t->sections[sec];
    for (size_t k = s->nplens; k--;) {
        size_t len = s->plens[k];
        if (len > path.len)
            continue;
        uint64_t h = hash_bytes(hash_seed(sec), path.ptr, len);
        uint32_t tag = (uint32_t)(h >> 32);
        for (size_t i = slot_of(h, t->prefix_size); t->prefix[i];
             i = i + 1 == t->prefix_size ? 0 : i + 1) {
            const struct dt_rule *r = &t->rules[(uint32_t)t->prefix[i] - 1];
            if ((uint32_t)(t->prefix[i] >> 32) == tag && r->_section == sec && r->_src_len == len &&
                !memcmp(blob_at(t, r->_src), path.ptr, len) && !(r->_bits & (B_WINDOW | B_CONDS)) &&
                !scheme_of(r))
                return r;
        }
    }
    return NULL;
}
