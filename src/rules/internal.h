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

/* Helpers for lint.c (defined in table.c). */
const struct rule_ext *dt_rules_ext(const struct dt_table *t, const struct dt_rule *r);
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

#endif
