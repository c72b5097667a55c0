/* finish: a table made immutable: its exact and prefix indexes built, regexes indexed by
 * their literal start, duplicates reported (dt_table_finish). */
#include "rules/internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- finishing ---------------------------------------------------------------------------- */

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
    qsort(v, n, sizeof(*v), dt_rules_cmp_u16);
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] != v[k - 1])
            v[k++] = v[i];
    return (uint16_t)k;
}

static uint64_t rule_hash(const struct dt_table *t, const struct dt_rule *r)
{
    return dt_rules_hash_bytes(dt_rules_hash_seed(r->_section), dt_rules_blob_at(t, r->_src),
                               r->_src_len);
}

static bool same_key(const struct dt_table *t, const struct dt_rule *a, const struct dt_rule *b)
{
    return a->_section == b->_section && a->_src_len == b->_src_len &&
           memcmp(dt_rules_blob_at(t, a->_src), dt_rules_blob_at(t, b->_src), a->_src_len) == 0;
}

/* Puts rule idx after every rule of the same key; counts (and logs the first ten) rules that
 * can never answer because an earlier one with the same key always does. */
void dt_rules_place(struct dt_table *t, uint64_t *tab, size_t size, uint64_t h, uint32_t idx,
                    unsigned *warned)
{
    const struct dt_rule *r = &t->rules[idx];
    bool reported = false;
    size_t i = dt_rules_slot_of(h, size);
    for (; tab[i]; i = i + 1 == size ? 0 : i + 1) {
        if ((uint32_t)(tab[i] >> 32) != (uint32_t)(h >> 32))
            continue;
        const struct dt_rule *o = &t->rules[(uint32_t)tab[i] - 1];
        if (!reported && same_key(t, o, r) && dt_rules_scheme(o) == dt_rules_scheme(r) &&
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

static void place_rule(struct dt_table *t, uint64_t h, uint32_t idx, unsigned *warned)
{
    if (dt_rules_kind(&t->rules[idx]) == DT_RULE_EXACT)
        dt_rules_place(t, t->exact, t->exact_size, h, idx, warned);
    else
        dt_rules_place(t, t->prefix, t->prefix_size, h, idx, warned);
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
            enum dt_rule_kind k = dt_rules_kind(r);
            if ((k != DT_RULE_EXACT && k != DT_RULE_PREFIX) || dt_rules_rank(r) != pass)
                continue;
            uint64_t h = rule_hash(t, r);
            if (k == DT_RULE_EXACT)
                __builtin_prefetch(&t->exact[dt_rules_slot_of(h, t->exact_size)], 1);
            else
                __builtin_prefetch(&t->prefix[dt_rules_slot_of(h, t->prefix_size)], 1);
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
            const struct rule_ext *e = dt_rules_ext_of(t, r);
            if (e->nsegs && e->segs[0].name < 0)
                s->pat_first[s->npat_first++] = (struct keyed){
                    dt_rules_hash_bytes(dt_rules_hash_seed(0), dt_rules_blob_at(t, e->segs[0].off),
                                        e->segs[0].len),
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
            struct dt_str p = dt_rules_regex_prefix(
                dt_str_make(dt_rules_blob_at(t, r->_src), r->_src_len), buf, sizeof(buf));
            if (p.len) {
                s->re_prefix[s->nre_prefix++] = (struct keyed){
                    ((uint64_t)p.len << 48) |
                        (dt_rules_hash_bytes(dt_rules_hash_seed(0), p.ptr, p.len) >> 16),
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

enum dt_rule_kind dt_rule_kind(const struct dt_rule *r)
{
    return dt_rules_kind(r);
}

enum dt_scheme dt_rule_scheme(const struct dt_rule *r)
{
    return (enum dt_scheme)dt_rules_scheme(r);
}
