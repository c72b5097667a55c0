/* internal: the rule table's private layout, shared by table.c (which builds and matches)
 * and lint.c (which analyses a built table). Not part of any API. */
#ifndef DT_RULES_INTERNAL_H
#define DT_RULES_INTERNAL_H

#include "rules/rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define NONE UINT32_MAX
#define MAX_SOURCE_PATH 8192 /* as long as a request line may be */
#define MAX_HOST 255
#define MAX_ORIGINS 65535
#define MAX_CONDS 8
#define STACK_LENS 256 /* prefix lengths hashed in one pass; more falls back to rehashing */
#define REGEX_MATCH_LIMIT 100000 /* backtracking steps before a regex is said not to match */

/* _bits of a rule */
enum {
    B_STATUS = 0x7,     /* index into statuses[] */
    B_KIND_SHIFT = 3,   /* 2 bits: enum dt_rule_kind */
    B_SCHEME_SHIFT = 5, /* 2 bits: enum dt_scheme */
    B_QUERY_DROP = 1 << 7,
    B_EXT = 1 << 8,        /* has a rule_ext */
    B_WINDOW = 1 << 9,     /* from= or until= */
    B_HOLES = 1 << 10,     /* the target has :splat, :name or $N */
    B_TGT_ABS = 1 << 11,   /* the target is an absolute URL */
    B_TGT_QUERY = 1 << 12, /* the target has its own query */
    B_CONDS = 1 << 13,     /* query conditions */
    B_PROMOTE = 1 << 14,   /* promote-after= */
};

/* A segment of a placeholder pattern: literal text in the blob, or a placeholder. */
struct seg {
    uint32_t off;
    uint16_t len;
    int16_t name; /* -1: literal */
};

/* A query condition: the parameter must be there; with a value, equal to it, or captured. */
struct qcond {
    struct dt_str key;
    struct dt_str value;
    int16_t name; /* >= 0: the value is captured as names[name] */
    bool has_value;
};

/* Options few rules have, kept out of the 20-byte rule; sorted by rule index. */
struct rule_ext {
    uint32_t rule;
    uint16_t nparts;
    uint8_t nsegs, nnames, nconds, ncaptures;
    bool splat; /* a pattern ending in '*' */
    const struct dt_tpl_part *parts;
    int64_t max_age, from, until, since, promote_after;
    const struct seg *segs;
    const struct dt_str *names;
    const struct qcond *conds;
    pcre2_code *re;
};

/* A sorted (hash, rule) index over a section's patterns or regexes. */
struct keyed {
    uint64_t key;
    uint32_t rule;
};

struct section {
    uint32_t host; /* exact host, or the suffix of a wildcard host, in the blob */
    uint16_t host_len;
    bool wildcard;
    uint16_t *plens; /* distinct prefix lengths, ascending (after finish) */
    uint32_t nplens, cap_plens;
    uint32_t *patterns; /* pattern rules, in order */
    uint32_t npatterns, cap_patterns;
    uint32_t *regexes; /* regex rules, in order */
    uint32_t nregexes, cap_regexes;
    /* built by finish */
    struct keyed *pat_first; /* (hash of first literal segment, rule), sorted */
    uint32_t npat_first;
    uint32_t *pat_any; /* patterns starting with a placeholder, in order */
    uint32_t npat_any;
    struct keyed *re_prefix; /* (length << 48 | hash of literal prefix, rule), sorted */
    uint32_t nre_prefix;
    uint16_t *rlens; /* distinct literal-prefix lengths, ascending */
    uint32_t nrlens;
    uint32_t *re_any; /* regexes without a literal prefix, in order */
    uint32_t nre_any;
};

/* A string in the blob. */
struct span32 {
    uint32_t off, len;
};

/* A growable open-addressing map from a string in the blob to an index. */
struct str_map {
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
    struct str_map hosts, wild, origin_map;
    struct span32 *origins; /* interned target origins in the blob; index 0 unused */
    size_t norigins, cap_origins;
    uint64_t *exact, *prefix;
    size_t exact_size, prefix_size;
    size_t nexact, nprefix;
    struct dt_arena arena;
    char **files;
    uint32_t *file_first;
    size_t nfiles;
    bool has_windows, finished;
};

/* Helpers for lint.c (defined in table.c and match.c). */
const struct section *dt_rules_section(const struct dt_table *t, const struct dt_rule *r);
/* dt_table_match without the rules for any host: which rule a host's own rules (or
 * wildcards) give. */
const struct dt_rule *dt_rules_match_host(const struct dt_table *t, enum dt_scheme scheme,
                                          struct dt_str host, struct dt_str path,
                                          struct dt_str query, time_t now, struct dt_match *m);
/* dt_ruleset_match, with or without the rules for any host. */
const struct dt_rule *dt_rules_ruleset_match(const struct dt_ruleset *rs, enum dt_scheme scheme,
                                             struct dt_str host, struct dt_str path,
                                             struct dt_str query, time_t now, struct dt_match *m,
                                             const struct dt_table **table, bool any_host);
/* The longest prefix rule of section sec whose prefix starts path and that always answers
 * (no window, condition or scheme of its own), or NULL. */
const struct dt_rule *dt_rules_longest_prefix(const struct dt_table *t, uint32_t sec,
                                              struct dt_str path);
/* The literal prefix an anchored regex's matches start with (see table.c). */
struct dt_str dt_rules_regex_prefix(struct dt_str re, char *buf, size_t cap);

static inline enum dt_rule_kind dt_rules_kind(const struct dt_rule *r)
{
    return (enum dt_rule_kind)((r->_bits >> B_KIND_SHIFT) & 3);
}

static inline unsigned dt_rules_scheme(const struct dt_rule *r)
{
    return (r->_bits >> B_SCHEME_SHIFT) & 3;
}

/* ---- small helpers of the table's build and lookups (table.c, match.c, ruleset.c) ---- */

typedef struct dt_str (*key_of_fn)(const struct dt_table *t, uint32_t idx);

static inline uint64_t dt_rules_hash_seed(uint32_t section)
{
    return 0x2545F4914F6CDD1DULL ^ ((uint64_t)section * 0x9E3779B97F4A7C15ULL);
}

static inline uint64_t dt_rules_load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t dt_rules_hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}

/* The hash of the first n bytes, given the state after their whole words. */
static inline uint64_t dt_rules_hash_finish(uint64_t h, const char *p, size_t n)
{
    size_t tail = n & 7;
    uint64_t w = 0;
    if (tail)
        memcpy(&w, p + (n & ~(size_t)7), tail);
    h = dt_rules_hash_word(h, w ^ ((uint64_t)n << 56));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t dt_rules_hash_bytes(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed;
    for (size_t i = 0; i + 8 <= n; i += 8)
        h = dt_rules_hash_word(h, dt_rules_load64(p + i));
    return dt_rules_hash_finish(h, p, n);
}

/* Index of a 64-bit hash in a table of size slots (any size: multiply and shift). */
static inline size_t dt_rules_slot_of(uint64_t h, size_t size)
{
    return (size_t)(((unsigned __int128)(uint32_t)h * size) >> 32);
}

static inline const char *dt_rules_blob_at(const struct dt_table *t, uint32_t off)
{
    return t->blob.ptr + off;
}

static inline struct dt_str dt_rules_section_key(const struct dt_table *t, uint32_t idx)
{
    const struct section *s = &t->sections[idx];
    return dt_str_make(dt_rules_blob_at(t, s->host), s->host_len);
}

static inline uint32_t dt_rules_map_get(const struct dt_table *t, const struct str_map *m,
                                        key_of_fn key_of, struct dt_str k)
{
    if (!m->count)
        return NONE;
    uint64_t h = dt_rules_hash_bytes(dt_rules_hash_seed(0), k.ptr, k.len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t slot = m->slots[i];
        if (!slot)
            return NONE;
        if ((uint32_t)(slot >> 32) == tag && dt_str_eq(key_of(t, (uint32_t)slot - 1), k))
            return (uint32_t)slot - 1;
    }
}

static inline int dt_rules_cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static inline const struct rule_ext *dt_rules_ext_of(const struct dt_table *t,
                                                     const struct dt_rule *r)
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

/* The priority of a rule among rules with the same key: query conditions first, then a
 * scheme of its own, then the others. */
static inline unsigned dt_rules_rank(const struct dt_rule *r)
{
    return (r->_bits & B_CONDS ? 0 : 2) + (dt_rules_scheme(r) ? 0 : 1);
}

/* match.c, used by the others */
const struct dt_rule *dt_rules_probe(const struct dt_table *t, const uint64_t *tab, size_t size,
                                     uint64_t h, uint32_t section, const char *path, size_t len,
                                     bool dir, enum dt_scheme scheme, struct dt_str query,
                                     time_t now, struct dt_match *m);
const struct dt_rule *dt_rules_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, struct dt_str query,
                                     time_t now, struct dt_match *m, bool any_host);

/* table.c, for finish.c */
void dt_rules_place(struct dt_table *t, uint64_t *tab, size_t size, uint64_t h, uint32_t idx,
                    unsigned *warned);

#endif
