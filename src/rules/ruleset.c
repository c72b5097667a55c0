/* ruleset: the live rule sets the server answers from (files, store, overlay, recent
 * changes), matched as one table holding them all would be, and their hit counters. */
#include "rules/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

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
    enum dt_rule_kind k = dt_rules_kind(r);
    struct prec p = {
        .section = r->_section == 0 ? UINT32_MAX
                   : !s->wildcard   ? 0
                                    : 1 + (uint32_t)(host.len - s->host_len),
        .kind = (uint32_t)k,
        .len = k == DT_RULE_PREFIX ? UINT16_MAX - r->_src_len : 0,
        .rank = k == DT_RULE_EXACT || k == DT_RULE_PREFIX ? dt_rules_rank(r) : 0,
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
        const struct dt_rule *r = dt_rules_match(t, scheme, host, path, query, now, mm, any_host);
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
        struct dt_str host = dt_str_make(dt_rules_blob_at(rt, rs->host), rs->host_len);
        sec = dt_rules_map_get(t, rs->wildcard ? &t->wild : &t->hosts, dt_rules_section_key, host);
        if (sec == NONE)
            return 0;
    }
    struct dt_buf want, have;
    dt_buf_init(&want);
    dt_buf_init(&have);
    dt_rule_source(rt, r, &want);
    size_t found = 0;
    enum dt_rule_kind k = dt_rules_kind(r);
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
            h = dt_rules_hash_bytes(dt_rules_hash_seed(sec), dt_rules_blob_at(rt, r->_src),
                                    r->_src_len);
            start = dt_rules_slot_of(h, size);
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
        if (o->_section != sec || o->_src_len != r->_src_len || dt_rules_kind(o) != k ||
            memcmp(dt_rules_blob_at(t, o->_src), dt_rules_blob_at(rt, r->_src), r->_src_len) != 0)
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
