/* match: finding the rule that answers a request in a table (exact, longest prefix,
 * patterns, regexes; host sections from the most specific), and filling its target. */
#include "rules/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

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
    unsigned want = dt_rules_scheme(r);
    if (want && want != (unsigned)scheme)
        return false;
    if (DT_UNLIKELY(m->_hidden)) {
        size_t i = (size_t)(r - t->rules);
        if (m->_hidden[i / 64] >> (i % 64) & 1)
            return false;
    }
    if (!(r->_bits & (B_WINDOW | B_CONDS)))
        return true;
    const struct rule_ext *e = dt_rules_ext_of(t, r);
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
const struct dt_rule *dt_rules_probe(const struct dt_table *t, const uint64_t *tab, size_t size,
                                     uint64_t h, uint32_t section, const char *path, size_t len,
                                     bool dir, enum dt_scheme scheme, struct dt_str query,
                                     time_t now, struct dt_match *m)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t klen = len + dir;
    for (size_t i = dt_rules_slot_of(h, size);; i = i + 1 == size ? 0 : i + 1) {
        uint64_t slot = tab[i];
        if (!slot)
            return NULL;
        if ((uint32_t)(slot >> 32) != tag)
            continue;
        const struct dt_rule *r = &t->rules[(uint32_t)slot - 1];
        if (r->_section != section || r->_src_len != klen)
            continue;
        const char *src = dt_rules_blob_at(t, r->_src);
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
        } else if (!dt_str_eq(v, dt_str_make(dt_rules_blob_at(t, s->off), s->len))) {
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
    const struct rule_ext *e = dt_rules_ext_of(t, r);
    bool hit = dt_rules_kind(r) == DT_RULE_PATTERN ? pattern_matches(t, e, path, m)
                                                   : regex_matches(e, path, m);
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
        nfirst =
            keyed_range(s->pat_first, s->npat_first,
                        dt_rules_hash_bytes(dt_rules_hash_seed(0), path.ptr + 1, i - 1), &first);
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
        uint64_t key = ((uint64_t)s->rlens[k] << 48) |
                       (dt_rules_hash_bytes(dt_rules_hash_seed(0), path.ptr, s->rlens[k]) >> 16);
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
    uint64_t seed = dt_rules_hash_seed(sec);
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
                h = dt_rules_hash_word(h, dt_rules_load64(path.ptr + w));
            at_len[nat++] = dt_rules_hash_finish(h, path.ptr, len);
        }
    }
    for (; w + 8 <= path.len; w += 8)
        h = dt_rules_hash_word(h, dt_rules_load64(path.ptr + w));
    if (t->nexact) {
        r = dt_rules_probe(t, t->exact, t->exact_size, dt_rules_hash_finish(h, path.ptr, path.len),
                           sec, path.ptr, path.len, false, scheme, query, now, m);
        if (r) {
            m->splat = DT_STR_NULL;
            return r;
        }
    }
    if (s->nplens) {
        /* A prefix rule for "/dir/" also answers "/dir" itself, with an empty splat. */
        if (path.len && path.ptr[path.len - 1] != '/' && path.len + 1 <= MAX_SOURCE_PATH &&
            bsearch(&(uint16_t){(uint16_t)(path.len + 1)}, s->plens, s->nplens, sizeof(uint16_t),
                    dt_rules_cmp_u16)) {
            char dir[MAX_SOURCE_PATH + 1];
            memcpy(dir, path.ptr, path.len);
            dir[path.len] = '/';
            r = dt_rules_probe(t, t->prefix, t->prefix_size,
                               dt_rules_hash_bytes(seed, dir, path.len + 1), sec, path.ptr,
                               path.len, true, scheme, query, now, m);
            if (r) {
                m->splat = dt_str_make(path.ptr + path.len, 0);
                return r;
            }
        }
        if (one_pass) {
            while (nat--) {
                size_t len = s->plens[nat];
                r = dt_rules_probe(t, t->prefix, t->prefix_size, at_len[nat], sec, path.ptr, len,
                                   false, scheme, query, now, m);
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
                r = dt_rules_probe(t, t->prefix, t->prefix_size,
                                   dt_rules_hash_bytes(seed, path.ptr, len), sec, path.ptr, len,
                                   false, scheme, query, now, m);
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

const struct dt_rule *dt_table_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, struct dt_str query,
                                     time_t now, struct dt_match *m)
{
    m->_hidden = NULL;
    return dt_rules_match(t, scheme, host, path, query, now, m, true);
}

const struct dt_rule *dt_rules_match_host(const struct dt_table *t, enum dt_scheme scheme,
                                          struct dt_str host, struct dt_str path,
                                          struct dt_str query, time_t now, struct dt_match *m)
{
    m->_hidden = NULL;
    return dt_rules_match(t, scheme, host, path, query, now, m, false);
}

const struct dt_rule *dt_rules_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, struct dt_str query,
                                     time_t now, struct dt_match *m, bool any_host)
{
    const struct dt_rule *r;
    m->rule = NULL;
    m->ncaptures = 0;
    if (host.len && t->hosts.count) {
        uint32_t sec = dt_rules_map_get(t, &t->hosts, dt_rules_section_key, host);
        if (sec != NONE && (r = match_section(t, sec, scheme, path, query, now, m)))
            return m->rule = r;
    }
    if (host.len && t->wild.count) {
        /* a.b.example.com: try *.b.example.com, then *.example.com, then *.com */
        for (size_t i = 0; i < host.len; i++) {
            if (host.ptr[i] != '.')
                continue;
            struct dt_str suffix = {host.ptr + i + 1, host.len - i - 1};
            uint32_t sec = dt_rules_map_get(t, &t->wild, dt_rules_section_key, suffix);
            if (sec != NONE && (r = match_section(t, sec, scheme, path, query, now, m)))
                return m->rule = r;
        }
    }
    r = any_host ? match_section(t, 0, scheme, path, query, now, m) : NULL;
    return m->rule = r;
}

bool dt_table_has_host(const struct dt_table *t, struct dt_str host)
{
    if (!t || !host.len)
        return false;
    if (t->hosts.count && dt_rules_map_get(t, &t->hosts, dt_rules_section_key, host) != NONE)
        return true;
    for (size_t i = 0; t->wild.count && i < host.len; i++)
        if (host.ptr[i] == '.' &&
            dt_rules_map_get(t, &t->wild, dt_rules_section_key,
                             dt_str_make(host.ptr + i + 1, host.len - i - 1)) != NONE)
            return true;
    return false;
}
