/* table: compiled rules and the indexes that find the one answering a request.
 *
 * Layout, chosen so a million rules fit in about 100 MB and a lookup touches few cache
 * lines: every string lives in one blob addressed by 32-bit offsets; a rule is 28 bytes;
 * exact and prefix sources live in two open-addressing tables of 64-bit slots (32-bit hash
 * tag, 32-bit rule index). Rules with the same key stay in the probe sequence in the order
 * they were inserted, which is their priority order, so no chain pointers are needed.
 * Prefixes are found by hashing the request path once, keeping the running hash at each
 * length some prefix of that host section has, and probing from the longest. */
#include "rules/rules.h"

#include <stdio.h>
#include <stdlib.h>

#define NONE UINT32_MAX
#define MAX_SOURCE_PATH 8192 /* as long as a request line may be */
#define MAX_HOST 255
#define STACK_LENS 256 /* prefix lengths hashed in one pass; more falls back to rehashing */

enum {
    RF_SCHEME = 3,      /* enum dt_scheme */
    RF_QUERY_DROP = 4,  /* query=drop */
    RF_WINDOW = 8,      /* from= or until= */
    RF_TGT_ABS = 16,    /* the target is an absolute URL */
    RF_TGT_QUERY = 32,  /* the target has its own query */
    RF_TGT_HOLES = 64,  /* the target has :splat or other holes */
};

/* Options few rules have, kept out of the 28-byte rule. */
struct rule_ext {
    const struct dt_tpl_part *parts;
    uint16_t nparts;
    int64_t max_age;
    int64_t from, until;
};

struct section {
    uint32_t host; /* exact host, or the suffix of a wildcard host, in the blob */
    uint16_t host_len;
    bool wildcard;
    uint16_t *plens; /* distinct prefix lengths, ascending (after finish) */
    uint32_t nplens, cap_plens;
};

/* A growable open-addressing map from a host name to a section index. */
struct host_map {
    uint64_t *slots;
    size_t mask, count;
};

struct dt_table {
    struct dt_buf blob;
    struct dt_rule *rules;
    size_t nrules, cap_rules;
    struct rule_ext *ext;
    size_t next, cap_ext;
    struct section *sections;
    size_t nsections, cap_sections;
    struct host_map hosts, wild;
    uint64_t *exact, *prefix;
    size_t exact_mask, prefix_mask;
    size_t nexact, nprefix;
    struct dt_arena arena;
    char **files;
    uint32_t *file_first; /* index of the first rule of each file */
    size_t nfiles;
    bool has_windows, finished;
};

/* ---- hashing ---------------------------------------------------------------------------- */

#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t hash_seed(uint32_t section)
{
    return 0xcbf29ce484222325ULL ^ ((uint64_t)section * 0x9E3779B97F4A7C15ULL);
}

static inline uint64_t hash_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * FNV_PRIME;
}

static inline uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = hash_step(h, (unsigned char)p[i]);
    return h;
}

/* ---- host maps -------------------------------------------------------------------------- */

static const char *blob_at(const struct dt_table *t, uint32_t off)
{
    return t->blob.ptr + off;
}

static uint32_t host_map_get(const struct dt_table *t, const struct host_map *m,
                             struct dt_str host)
{
    if (!m->count)
        return NONE;
    uint64_t h = hash_mix(hash_bytes(hash_seed(0), host.ptr, host.len));
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t slot = m->slots[i];
        if (!slot)
            return NONE;
        if ((uint32_t)(slot >> 32) != tag)
            continue;
        uint32_t idx = (uint32_t)slot - 1;
        const struct section *s = &t->sections[idx];
        if (s->host_len == host.len && memcmp(blob_at(t, s->host), host.ptr, host.len) == 0)
            return idx;
    }
}

static void host_map_insert_slot(struct host_map *m, uint64_t h, uint32_t idx)
{
    size_t i = h & m->mask;
    while (m->slots[i])
        i = (i + 1) & m->mask;
    m->slots[i] = ((h >> 32) << 32) | (uint64_t)(idx + 1);
    m->count++;
}

static void host_map_put(struct dt_table *t, struct host_map *m, struct dt_str host, uint32_t idx)
{
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) {
        size_t size = m->slots ? (m->mask + 1) * 2 : 16;
        struct host_map grown = {dt_xcalloc(size, sizeof(uint64_t)), size - 1, 0};
        for (size_t i = 0; m->slots && i <= m->mask; i++) {
            if (!m->slots[i])
                continue;
            uint32_t k = (uint32_t)m->slots[i] - 1;
            const struct section *s = &t->sections[k];
            uint64_t h = hash_mix(hash_bytes(hash_seed(0), blob_at(t, s->host), s->host_len));
            host_map_insert_slot(&grown, h, k);
        }
        free(m->slots);
        *m = grown;
    }
    host_map_insert_slot(m, hash_mix(hash_bytes(hash_seed(0), host.ptr, host.len)), idx);
}

/* ---- building ----------------------------------------------------------------------------- */

struct dt_table *dt_table_new(void)
{
    struct dt_table *t = dt_xcalloc(1, sizeof(*t));
    dt_buf_init(&t->blob);
    dt_arena_init(&t->arena, 64 * 1024);
    /* Section 0 holds the rules for any host. */
    t->sections = dt_xcalloc(8, sizeof(*t->sections));
    t->cap_sections = 8;
    t->nsections = 1;
    /* Offset 0 of the blob is never a string, so 0 can mean "none" in debug output. */
    dt_buf_append(&t->blob, "", 1);
    return t;
}

void dt_table_free(struct dt_table *t)
{
    if (!t)
        return;
    dt_buf_dispose(&t->blob);
    free(t->rules);
    free(t->ext);
    for (size_t i = 0; i < t->nsections; i++)
        free(t->sections[i].plens);
    free(t->sections);
    free(t->hosts.slots);
    free(t->wild.slots);
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

static uint32_t blob_put(struct dt_table *t, const char *p, size_t n)
{
    if (t->blob.len + n > UINT32_MAX)
        dt_oom(); /* 4 GiB of rule text: no table this large is supported */
    uint32_t off = (uint32_t)t->blob.len;
    dt_buf_append(&t->blob, p, n);
    return off;
}

static uint32_t section_for(struct dt_table *t, struct dt_str host, bool wildcard)
{
    if (host.len == 0)
        return 0;
    struct host_map *m = wildcard ? &t->wild : &t->hosts;
    uint32_t idx = host_map_get(t, m, host);
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
    host_map_put(t, m, host, idx);
    return idx;
}

static void section_add_len(struct section *s, size_t len)
{
    /* Most sections have few distinct lengths: skip the common repeat cheaply. */
    if (s->nplens && s->plens[s->nplens - 1] == len)
        return;
    if (s->nplens == s->cap_plens) {
        s->cap_plens = s->cap_plens ? s->cap_plens * 2 : 8;
        s->plens = dt_xrealloc(s->plens, s->cap_plens * sizeof(*s->plens));
    }
    s->plens[s->nplens++] = (uint16_t)len;
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

/* A parsed source: scheme, host (lower-cased copy), path and kind. */
struct source {
    enum dt_scheme scheme;
    char host[MAX_HOST + 1];
    size_t host_len;
    bool wildcard;
    struct dt_str path; /* as written, without the trailing '*' */
    enum dt_rule_kind kind;
};

static int parse_source(const struct dt_rule_spec *spec, struct source *src, struct dt_diag *d)
{
    struct dt_str s = spec->source;
    memset(src, 0, sizeof(*src));
    if (s.len && s.ptr[0] == '~')
        return src_error(d, spec, s.ptr,
                         "regular-expression sources (~REGEX) are not supported by this version");
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
            return src_error(d, spec, rest,
                             "a source is a path starting with '/', or HOST/path");
        struct dt_str host = {rest, (size_t)(slash - rest)};
        if (host.len >= 2 && host.ptr[0] == '*' && host.ptr[1] == '.') {
            src->wildcard = true;
            host.ptr += 2;
            host.len -= 2;
        }
        if (host.len > 1 && host.ptr[host.len - 1] == '.')
            host.len--;
        if (host.len > MAX_HOST)
            return src_error(d, spec, rest, "host name longer than 255 bytes");
        if (memchr(host.ptr, '*', host.len))
            return src_error(d, spec, rest,
                             "'*' in a host may only start it, as in *.example.com");
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
    src->kind = DT_RULE_EXACT;
    if (path.ptr[path.len - 1] == '*') {
        src->kind = DT_RULE_PREFIX;
        path.len--;
    }
    for (size_t i = 0; i < path.len; i++) {
        char c = path.ptr[i];
        if (c == '*')
            return src_error(d, spec, path.ptr + i,
                             "'*' may only end a source (a prefix rule): /old/*");
        if (c == '?')
            return src_error(d, spec, path.ptr + i,
                             "a source matches the path only: remove the query");
        if (c == '#')
            return src_error(d, spec, path.ptr + i, "a source may not hold a fragment ('#')");
        if (c == ':' && i > 0 && path.ptr[i - 1] == '/' && i + 1 < path.len &&
            (((path.ptr[i + 1] | 0x20) >= 'a' && (path.ptr[i + 1] | 0x20) <= 'z') ||
             path.ptr[i + 1] == '_'))
            return src_error(d, spec, path.ptr + i,
                             "placeholders (/:name) are not supported by this version; "
                             "write %3A for a literal colon");
        if ((unsigned char)c >= 0x80)
            return src_error(d, spec, path.ptr + i,
                             "percent-encode non-ASCII characters in a source, as clients "
                             "send them (%C3%A9 for \xc3\xa9)");
    }
    if (path.len > MAX_SOURCE_PATH)
        return src_error(d, spec, path.ptr, "source path longer than 8192 bytes");
    src->path = path;
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
    if (t->nrules >= NONE - 1) {
        dt_diag_set(d, 0, "too many rules");
        return DT_ELIMIT;
    }
    struct source src;
    int rc = parse_source(spec, &src, d);
    if (rc)
        return rc;
    if (!(spec->status == 301 || spec->status == 302 || spec->status == 303 ||
          spec->status == 307 || spec->status == 308)) {
        dt_diag_set(d, 0, "unknown status %d (expected 301, 302, 303, 307 or 308)",
                    spec->status);
        return DT_ESYNTAX;
    }
    struct dt_tpl_source tsrc = {.splat = src.kind == DT_RULE_PREFIX};
    struct dt_template tpl;
    rc = dt_template_compile(spec->target, &tsrc, &t->arena, &tpl, d);
    if (rc) {
        d->offset += col_of(spec, spec->target.ptr);
        return rc;
    }

    struct dt_rule r = {0};
    r._section = section_for(t, dt_str_make(src.host, src.host_len), src.wildcard);
    r._src = blob_put(t, src.path.ptr, src.path.len);
    r._src_len = (uint16_t)src.path.len;
    r._tgt = blob_put(t, spec->target.ptr, spec->target.len);
    r._tgt_len = (uint16_t)spec->target.len;
    r.status = (uint16_t)spec->status;
    r.kind = (uint8_t)src.kind;
    r.line = line;
    r._flags = (uint8_t)src.scheme;
    if (spec->query_drop)
        r._flags |= RF_QUERY_DROP;
    if (tpl.absolute)
        r._flags |= RF_TGT_ABS;
    if (tpl.has_query)
        r._flags |= RF_TGT_QUERY;
    r._ext = NONE;
    bool window = spec->has_from || spec->has_until;
    if (tpl.nparts || window || spec->max_age >= 0) {
        if (t->next == t->cap_ext) {
            t->cap_ext = t->cap_ext ? t->cap_ext * 2 : 64;
            t->ext = dt_xrealloc(t->ext, t->cap_ext * sizeof(*t->ext));
        }
        struct rule_ext *e = &t->ext[t->next];
        e->parts = tpl.parts;
        e->nparts = tpl.nparts;
        e->max_age = spec->max_age;
        e->from = spec->has_from ? (int64_t)spec->from : INT64_MIN;
        e->until = spec->has_until ? (int64_t)spec->until : INT64_MAX;
        r._ext = (uint32_t)t->next++;
        if (tpl.nparts)
            r._flags |= RF_TGT_HOLES;
        if (window) {
            r._flags |= RF_WINDOW;
            t->has_windows = true;
        }
    }
    if (src.kind == DT_RULE_PREFIX) {
        section_add_len(&t->sections[r._section], src.path.len);
        t->nprefix++;
    } else {
        t->nexact++;
    }
    if (t->nrules == t->cap_rules) {
        t->cap_rules = t->cap_rules ? t->cap_rules * 2 : 256;
        t->rules = dt_xrealloc(t->rules, t->cap_rules * sizeof(*t->rules));
    }
    t->rules[t->nrules++] = r;
    return 0;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static uint64_t rule_hash(const struct dt_table *t, const struct dt_rule *r)
{
    return hash_mix(hash_bytes(hash_seed(r->_section), blob_at(t, r->_src), r->_src_len));
}

static bool same_key(const struct dt_table *t, const struct dt_rule *a, const struct dt_rule *b)
{
    return a->_section == b->_section && a->_src_len == b->_src_len &&
           memcmp(blob_at(t, a->_src), blob_at(t, b->_src), a->_src_len) == 0;
}

/* Inserts rule idx after every rule of the same key; counts (and logs the first ten)
 * rules that can never answer because an earlier one always does. */
static void insert(struct dt_table *t, uint64_t *tab, size_t mask, uint32_t idx,
                   unsigned *warned)
{
    const struct dt_rule *r = &t->rules[idx];
    uint64_t h = rule_hash(t, r);
    size_t i = h & mask;
    for (; tab[i]; i = (i + 1) & mask) {
        if ((uint32_t)(tab[i] >> 32) != (uint32_t)(h >> 32))
            continue;
        const struct dt_rule *o = &t->rules[(uint32_t)tab[i] - 1];
        if (same_key(t, o, r) && (o->_flags & RF_SCHEME) == (r->_flags & RF_SCHEME) &&
            !(o->_flags & RF_WINDOW) && (*warned)++ < 10) {
            struct dt_rule_origin a = dt_rule_origin(t, r), b = dt_rule_origin(t, o);
            dt_log(DT_LOG_WARN, "%s:%u: duplicate source, never used: %s:%u answers first",
                   a.file ? a.file : "(api)", a.line, b.file ? b.file : "(api)", b.line);
        }
    }
    tab[i] = ((h >> 32) << 32) | (uint64_t)(idx + 1);
}

static uint64_t *make_index(size_t n, size_t *mask)
{
    size_t size = 16;
    while (size < n * 2)
        size *= 2;
    *mask = size - 1;
    return dt_xcalloc(size, sizeof(uint64_t));
}

void dt_table_finish(struct dt_table *t)
{
    if (t->finished)
        return;
    unsigned warned = 0;
    t->exact = make_index(t->nexact, &t->exact_mask);
    t->prefix = make_index(t->nprefix, &t->prefix_mask);
    /* Within a key, rules for one scheme come before rules for any scheme, then file
     * order: insert in that order and the probe sequence keeps it. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->nrules; i++) {
            const struct dt_rule *r = &t->rules[i];
            if ((pass == 0) != ((r->_flags & RF_SCHEME) != 0))
                continue;
            if (r->kind == DT_RULE_EXACT)
                insert(t, t->exact, t->exact_mask, (uint32_t)i, &warned);
            else
                insert(t, t->prefix, t->prefix_mask, (uint32_t)i, &warned);
        }
    }
    if (warned > 10)
        dt_log(DT_LOG_WARN, "%u more duplicate sources not shown (detour lint lists them all)",
               warned - 10);
    for (size_t i = 0; i < t->nsections; i++) {
        struct section *s = &t->sections[i];
        if (!s->nplens)
            continue;
        qsort(s->plens, s->nplens, sizeof(*s->plens), cmp_u16);
        uint32_t n = 1;
        for (uint32_t k = 1; k < s->nplens; k++)
            if (s->plens[k] != s->plens[n - 1])
                s->plens[n++] = s->plens[k];
        s->nplens = n;
    }
    t->finished = true;
}

size_t dt_table_size(const struct dt_table *t)
{
    return t->nrules;
}

bool dt_table_has_windows(const struct dt_table *t)
{
    return t->has_windows;
}

/* ---- matching ------------------------------------------------------------------------------ */

static bool active(const struct dt_table *t, const struct dt_rule *r, enum dt_scheme scheme,
                   time_t now)
{
    unsigned want = r->_flags & RF_SCHEME;
    if (want && want != (unsigned)scheme)
        return false;
    if (r->_flags & RF_WINDOW) {
        const struct rule_ext *e = &t->ext[r->_ext];
        if ((int64_t)now < e->from || (int64_t)now >= e->until)
            return false;
    }
    return true;
}

/* Finds the first active rule whose key is (section, path[0, len)), or with dir set,
 * (section, path[0, len) + "/"). */
static const struct dt_rule *probe(const struct dt_table *t, const uint64_t *tab, size_t mask,
                                   uint64_t h, uint32_t section, const char *path, size_t len,
                                   bool dir, enum dt_scheme scheme, time_t now)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t klen = len + dir;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
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
        if (active(t, r, scheme, now))
            return r;
    }
}

static const struct dt_rule *match_section(const struct dt_table *t, uint32_t sec,
                                           enum dt_scheme scheme, struct dt_str path, time_t now,
                                           struct dt_match *m)
{
    const struct section *s = &t->sections[sec];
    uint64_t h = hash_seed(sec);
    uint64_t at_len[STACK_LENS];
    size_t nat = 0, j = 0;
    bool one_pass = s->nplens <= STACK_LENS;
    if (one_pass) {
        for (size_t i = 0; i < path.len; i++) {
            if (j < s->nplens && s->plens[j] == i) {
                at_len[nat++] = h;
                j++;
            }
            h = hash_step(h, (unsigned char)path.ptr[i]);
        }
        if (j < s->nplens && s->plens[j] == path.len) {
            at_len[nat++] = h;
            j++;
        }
    } else {
        h = hash_bytes(h, path.ptr, path.len);
    }
    const struct dt_rule *r;
    if (t->nexact) {
        r = probe(t, t->exact, t->exact_mask, hash_mix(h), sec, path.ptr, path.len, false,
                  scheme, now);
        if (r) {
            m->splat = DT_STR_NULL;
            return r;
        }
    }
    if (!s->nplens)
        return NULL;
    /* A prefix rule for "/dir/" also answers "/dir" itself, with an empty splat. */
    if (path.len && path.ptr[path.len - 1] != '/' &&
        (one_pass ? j < s->nplens && s->plens[j] == path.len + 1
                  : bsearch(&(uint16_t){(uint16_t)(path.len + 1)}, s->plens, s->nplens,
                            sizeof(uint16_t), cmp_u16) != NULL)) {
        r = probe(t, t->prefix, t->prefix_mask, hash_mix(hash_step(h, '/')), sec, path.ptr,
                  path.len, true, scheme, now);
        if (r) {
            m->splat = dt_str_make(path.ptr + path.len, 0);
            return r;
        }
    }
    if (one_pass) {
        while (nat--) {
            size_t len = s->plens[nat];
            r = probe(t, t->prefix, t->prefix_mask, hash_mix(at_len[nat]), sec, path.ptr, len,
                      false, scheme, now);
            if (r) {
                m->splat = dt_str_make(path.ptr + len, path.len - len);
                return r;
            }
        }
        return NULL;
    }
    for (size_t k = s->nplens; k--;) {
        size_t len = s->plens[k];
        if (len > path.len)
            continue;
        uint64_t hk = hash_bytes(hash_seed(sec), path.ptr, len);
        r = probe(t, t->prefix, t->prefix_mask, hash_mix(hk), sec, path.ptr, len, false, scheme,
                  now);
        if (r) {
            m->splat = dt_str_make(path.ptr + len, path.len - len);
            return r;
        }
    }
    return NULL;
}

const struct dt_rule *dt_table_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, time_t now,
                                     struct dt_match *m)
{
    const struct dt_rule *r;
    m->rule = NULL;
    if (host.len && t->hosts.count) {
        uint32_t sec = host_map_get(t, &t->hosts, host);
        if (sec != NONE && (r = match_section(t, sec, scheme, path, now, m)))
            return m->rule = r;
    }
    if (host.len && t->wild.count) {
        /* a.b.example.com: try *.b.example.com, then *.example.com, then *.com */
        for (size_t i = 0; i < host.len; i++) {
            if (host.ptr[i] != '.')
                continue;
            struct dt_str suffix = {host.ptr + i + 1, host.len - i - 1};
            uint32_t sec = host_map_get(t, &t->wild, suffix);
            if (sec != NONE && (r = match_section(t, sec, scheme, path, now, m)))
                return m->rule = r;
        }
    }
    r = match_section(t, 0, scheme, path, now, m);
    return m->rule = r;
}

/* ---- answers -------------------------------------------------------------------------------- */

static void template_of(const struct dt_table *t, const struct dt_rule *r, struct dt_template *tpl)
{
    tpl->text = blob_at(t, r->_tgt);
    tpl->len = r->_tgt_len;
    const char *hash = memchr(tpl->text, '#', tpl->len);
    tpl->fragment = hash ? (uint32_t)(hash - tpl->text) : tpl->len;
    tpl->absolute = (r->_flags & RF_TGT_ABS) != 0;
    tpl->has_query = (r->_flags & RF_TGT_QUERY) != 0;
    if (r->_flags & RF_TGT_HOLES) {
        tpl->parts = t->ext[r->_ext].parts;
        tpl->nparts = t->ext[r->_ext].nparts;
    } else {
        tpl->parts = NULL;
        tpl->nparts = 0;
    }
}

static void values_of(const struct dt_rule *r, const struct dt_match *m, struct dt_str query,
                      struct dt_tpl_values *v)
{
    memset(v, 0, sizeof(*v));
    v->splat = m->splat;
    v->query = query;
    v->keep_query = !(r->_flags & RF_QUERY_DROP);
}

size_t dt_table_location_max(const struct dt_table *t, const struct dt_match *m,
                             struct dt_str query)
{
    struct dt_template tpl;
    struct dt_tpl_values v;
    template_of(t, m->rule, &tpl);
    values_of(m->rule, m, query, &v);
    return dt_template_max_len(&tpl, &v);
}

size_t dt_table_location(const struct dt_table *t, const struct dt_match *m, struct dt_str query,
                         char *out)
{
    struct dt_template tpl;
    struct dt_tpl_values v;
    template_of(t, m->rule, &tpl);
    values_of(m->rule, m, query, &v);
    return dt_template_render(&tpl, &v, out);
}

int64_t dt_rule_max_age(const struct dt_table *t, const struct dt_rule *r)
{
    return r->_ext == NONE ? -1 : t->ext[r->_ext].max_age;
}

struct dt_rule_origin dt_rule_origin(const struct dt_table *t, const struct dt_rule *r)
{
    struct dt_rule_origin o = {NULL, r->line};
    size_t idx = (size_t)(r - t->rules);
    /* the last file whose first rule is at or before idx */
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

struct dt_str dt_rule_source_path(const struct dt_table *t, const struct dt_rule *r)
{
    return dt_str_make(blob_at(t, r->_src), r->_src_len);
}

struct dt_str dt_rule_target(const struct dt_table *t, const struct dt_rule *r)
{
    return dt_str_make(blob_at(t, r->_tgt), r->_tgt_len);
}
