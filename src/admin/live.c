/* live: the rules being served, changed while the server runs (S5).
 *
 * What the workers answer from is an immutable struct dt_ruleset: the rule files' table, the
 * store's rules as of a version (the store table), and the store's changes since then in two
 * levels: the overlay, a table of the rules changed or added up to the last fold, and the
 * recent table, of those changed since (at most DT_LIVE_RECENT_MAX), each with a bitmap
 * hiding the rules of the level below that were changed or removed. A change rebuilds only
 * the recent table and the bitmaps and publishes a new ruleset with one atomic swap; the old
 * one is freed once no worker can hold it. When the recent table is full, it is folded into
 * a new overlay; when the overlay has grown (or a bulk change arrives), the store table is
 * rebuilt from the store in the background and the levels start empty again. */
#include "admin/internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* S10 and promote-after=: since when the rule has answered this way (0: no since=). The
 * store keeps it for 307s; a 302 counts from its last change. */
static int64_t store_since(const struct dt_store_rule *r, int64_t promote_after)
{
    return r->status == 307 ? r->since : r->status == 302 && promote_after ? r->updated : 0;
}

int dt_live_spec(const struct dt_store_rule *r, struct dt_rule_spec *s, struct dt_diag *d)
{
    dt_rule_spec_init(s);
    s->source = dt_str_make(r->source, strlen(r->source));
    s->target = dt_str_make(r->target, strlen(r->target));
    s->status = r->status;
    const char *opt = r->options ? r->options : "";
    int rc = dt_rule_parse_options(dt_str_make(opt, strlen(opt)), s, d);
    int64_t since = store_since(r, s->promote_after);
    if (since > 0) {
        s->has_since = true;
        s->since = (time_t)since;
    }
    return rc;
}

char *dt_live_line(const struct dt_store_rule *r)
{
    struct dt_rule_spec s;
    struct dt_diag d;
    struct dt_buf b;
    dt_buf_init(&b);
    if (dt_live_spec(r, &s, &d) == 0) {
        dt_rule_format(&b, &s);
    } else {
        /* a row no write makes: as it is, so that loading it says what is wrong */
        dt_buf_appendf(&b, "%s %s %d %s", r->source, r->target, r->status,
                       r->options ? r->options : "");
    }
    dt_buf_terminate(&b);
    return b.ptr;
}

/* Adds one store rule to an unfinished table. */
static int add_store_rule(struct dt_table *t, int64_t id, const char *line, struct dt_buf *err)
{
    struct dt_rule_spec spec;
    struct dt_diag d;
    struct dt_str l = dt_str_make(line, strlen(line));
    int rc = dt_rule_parse_line(l, &spec, &d);
    if (rc == 1)
        rc = dt_table_add(t, &spec, 0, (uint32_t)id, &d);
    else if (rc == 0)
        dt_diag_set(&d, 0, "empty rule");
    if (rc != 0) {
        if (err)
            dt_buf_appendf(err, "store rule %lld (%s): %s", (long long)id, line, d.msg);
        return rc ? rc : DT_ESYNTAX;
    }
    return 0;
}

struct build_ctx {
    struct dt_table *t;
    struct dt_buf *err;
    int rc;
    unsigned bad;
    atomic_bool *moot; /* set: stop (the walk returns 1); may be NULL */
    size_t n;
};

static int build_one(void *ctx, const struct dt_store_rule *r)
{
    struct build_ctx *b = ctx;
    if (b->moot && (++b->n & 4095) == 0 && atomic_load(b->moot))
        return 1;
    /* The row's fields go into the table as they are, through the codec (no line is made
     * and read back: a merge does this a million times). A rule that does not load (none
     * should: every write is checked) is left out and logged; the others are served. */
    struct dt_rule_spec spec;
    struct dt_diag d;
    if (dt_live_spec(r, &spec, &d) != 0 || dt_table_add(b->t, &spec, 0, (uint32_t)r->id, &d) != 0) {
        if (b->bad++ < 10)
            dt_log(DT_LOG_ERROR, "store rule %lld does not load and is left out: %s",
                   (long long)r->id, d.msg);
    }
    return 0;
}

/* As dt_live_fill_store; returns 1 (err untouched) once *moot is set (moot may be NULL). */
static int fill_store(struct dt_table *t, struct dt_store *s, int64_t version, atomic_bool *moot,
                      struct dt_buf *err)
{
    struct build_ctx b = {t, err, 0, 0, moot, 0};
    int rc = dt_store_each(s, version, build_one, &b);
    if (rc == 1 && moot)
        return 1;
    if (rc || b.rc) {
        if (!err->len)
            dt_buf_appendf(err, "cannot read the store's rules: %s", dt_strerror(rc ? rc : b.rc));
        return rc ? rc : b.rc;
    }
    return 0;
}

int dt_live_fill_store(struct dt_table *t, struct dt_store *s, int64_t version, struct dt_buf *err)
{
    return fill_store(t, s, version, NULL, err);
}

/* As dt_live_store_table; NULL with err untouched once *moot is set (moot may be NULL). */
static struct dt_table *store_table(struct dt_store *s, int64_t version, atomic_bool *moot,
                                    struct dt_buf *err)
{
    struct dt_table *t = dt_table_new();
    dt_table_add_file(t, "store");
    if (fill_store(t, s, version, moot, err) != 0) {
        dt_table_free(t);
        return NULL;
    }
    dt_table_finish(t);
    return t;
}

struct dt_table *dt_live_store_table(struct dt_store *s, int64_t version, struct dt_buf *err)
{
    return store_table(s, version, NULL, err);
}

struct dt_table *dt_live_table_of(const struct dt_store_rule *rules, size_t n, const int64_t *from,
                                  const struct dt_rule_spec *specs,
                                  void (*bad)(void *ctx, int64_t from, const struct dt_diag *d),
                                  void *bad_ctx)
{
    struct dt_table *t = dt_table_new();
    dt_table_add_file(t, "store");
    struct build_ctx b = {t, NULL, 0, 0, NULL, 0};
    for (size_t i = 0; i < n; i++) {
        if (!from || from[i] < 0) {
            build_one(&b, &rules[i]);
            continue;
        }
        /* the spec the rule was made from, with the since= the store gave it: what its
         * rule line would parse to, without making and parsing the line */
        struct dt_rule_spec spec = specs[from[i]];
        int64_t since = store_since(&rules[i], spec.promote_after);
        spec.has_since = since > 0;
        spec.since = (time_t)since;
        struct dt_diag d;
        if (dt_table_add(t, &spec, 0, (uint32_t)rules[i].id, &d) == 0)
            continue;
        if (bad)
            bad(bad_ctx, from[i], &d);
        else if (b.bad++ < 10)
            dt_log(DT_LOG_ERROR, "store rule %lld does not load and is left out: %s",
                   (long long)rules[i].id, d.msg);
    }
    dt_table_finish(t);
    return t;
}

/* The index of the first store-table rule with id >= id (rules are in order of id). */
static size_t first_with_id(const struct dt_table *t, int64_t id)
{
    size_t lo = 0, hi = dt_table_size(t);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((int64_t)dt_table_rule(t, mid)->line < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* True when table t (may be NULL) has a rule with store id id. */
static bool has_id(const struct dt_table *t, int64_t id)
{
    if (!t)
        return false;
    size_t k = first_with_id(t, id);
    return k < dt_table_size(t) && (int64_t)dt_table_rule(t, k)->line == id;
}

/* Adds the hits of the old table's rules to the new table's rules with the same store id
 * (both tables hold store rules in order of id), into worker 0's counters, before the new
 * table is published; not those of ids that table except has (their hits go there). Hits
 * counted on the old table after this, until the publish, are lost: a few at most. */
static void carry_hits(const struct dt_table *ot, const struct dt_hits *oh,
                       const struct dt_table *nt, struct dt_hits *nh, const struct dt_table *except)
{
    if (!ot || !oh || !nt || !nh)
        return;
    size_t on = dt_table_size(ot), nn = dt_table_size(nt), i = 0, j = 0;
    while (i < on && j < nn) {
        uint32_t a = dt_table_rule(ot, i)->line, b = dt_table_rule(nt, j)->line;
        if (a < b) {
            i++;
        } else if (a > b) {
            j++;
        } else if (has_id(except, a)) {
            i++;
            j++;
        } else {
            uint32_t last = 0;
            uint64_t n = dt_hits_get(oh, i, &last);
            nh->count[j] += n;
            if (last > nh->last[j])
                nh->last[j] = last;
            i++;
            j++;
        }
    }
}

uint64_t dt_live_hits(const struct live *l, int64_t id, uint32_t *last)
{
    uint64_t n = 0;
    *last = 0;
    const struct dt_table *ts[3] = {l->store_t, l->overlay, l->recent};
    const struct dt_hits *hs[3] = {l->store_hits, l->overlay_hits, l->recent_hits};
    for (int k = 0; k < 3; k++) {
        if (!ts[k] || !hs[k])
            continue;
        size_t size = dt_table_size(ts[k]);
        for (size_t i = first_with_id(ts[k], id);
             i < size && (int64_t)dt_table_rule(ts[k], i)->line == id; i++) {
            uint32_t t = 0;
            n += dt_hits_get(hs[k], i, &t);
            if (t > *last)
                *last = t;
        }
    }
    return n;
}

/* Sets the bits of t's rules with store id id (a store rule may be two table rules, for
 * .example.com: the host and its subdomains, next to each other). */
static void hide_id(const struct dt_table *t, int64_t id, uint64_t *bits)
{
    size_t n = dt_table_size(t);
    for (size_t k = first_with_id(t, id); k < n && (int64_t)dt_table_rule(t, k)->line == id; k++)
        bits[k / 64] |= (uint64_t)1 << (k % 64);
}

static uint64_t *new_bits(const struct dt_table *t)
{
    return dt_xcalloc(dt_table_size(t) / 64 + 1, sizeof(uint64_t));
}

/* A table of the changes' rules (only the recent ones with recent_only), or NULL for none. */
static struct dt_table *changes_table(const struct change *changes, size_t n, bool recent_only)
{
    struct dt_table *t = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct change *c = &changes[i];
        if (recent_only && !c->recent)
            continue;
        if (!t) {
            t = dt_table_new();
            dt_table_add_file(t, "store");
        }
        if (c->line && add_store_rule(t, c->id, c->line, NULL) != 0)
            dt_log(DT_LOG_ERROR, "store rule %lld does not load: %s", (long long)c->id, c->line);
    }
    if (t)
        dt_table_finish(t);
    return t;
}

/* Every change folded into one overlay, with the store table's bitmap; no recent table. */
static void build_all(struct change *changes, size_t nchanges, const struct dt_table *store_t,
                      struct dt_table **overlay, uint64_t **hidden)
{
    *overlay = NULL;
    *hidden = NULL;
    if (!nchanges)
        return;
    for (size_t i = 0; i < nchanges; i++)
        changes[i].recent = false;
    *overlay = changes_table(changes, nchanges, false);
    *hidden = new_bits(store_t);
    for (size_t i = 0; i < nchanges; i++)
        hide_id(store_t, changes[i].id, *hidden);
}

/* The merge thread's installs: a new store table, and the changes made since folded. */
static void rebuild_levels(struct live *l)
{
    build_all(l->changes, l->nchanges, l->store_t, &l->overlay, &l->hidden);
    l->recent = NULL;
    l->hidden_overlay = NULL;
}

/* Makes hit counters for the tables that have none yet (new ones), carrying the counts of
 * the tables they replace. */
static void refresh_hits(struct live *l)
{
    const struct dt_ruleset *old = l->current;
    if (!old || old->files != l->files)
        l->files_hits = dt_hits_new(dt_table_size(l->files), l->nworkers);
    bool new_store = !old || old->store != l->store_t;
    if (new_store) {
        /* a merge: every level's counts go to the store table's rules */
        l->store_hits = dt_hits_new(dt_table_size(l->store_t), l->nworkers);
        if (old) {
            carry_hits(old->store, old->hits[1], l->store_t, l->store_hits, NULL);
            carry_hits(old->overlay, old->hits[2], l->store_t, l->store_hits, NULL);
            carry_hits(old->recent, old->hits[3], l->store_t, l->store_hits, NULL);
        }
    }
    if (!old || old->overlay != l->overlay) {
        /* a fold: the recent table's counts go to the overlay with the overlay's own; after
         * a merge, the rules the store table lacks (added since the version it was built
         * from) keep theirs in the overlay (the others' went to the store table) */
        l->overlay_hits = l->overlay ? dt_hits_new(dt_table_size(l->overlay), l->nworkers) : NULL;
        const struct dt_table *except = new_store ? l->store_t : NULL;
        if (old && l->overlay) {
            carry_hits(old->overlay, old->hits[2], l->overlay, l->overlay_hits, except);
            carry_hits(old->recent, old->hits[3], l->overlay, l->overlay_hits, except);
        }
    }
    if (!old || old->recent != l->recent) {
        l->recent_hits = l->recent ? dt_hits_new(dt_table_size(l->recent), l->nworkers) : NULL;
        if (old && l->recent && !new_store && old->overlay == l->overlay)
            carry_hits(old->recent, old->hits[3], l->recent, l->recent_hits, NULL);
    }
}

void dt_live_publish(struct live *l)
{
    refresh_hits(l);
    struct dt_ruleset *rs = dt_xcalloc(1, sizeof(*rs));
    rs->files = l->files;
    rs->store = l->store_t;
    rs->overlay = l->overlay;
    rs->hidden = l->hidden;
    rs->recent = l->recent;
    rs->hidden_overlay = l->hidden_overlay;
    rs->hits[0] = l->files_hits;
    rs->hits[1] = l->store_hits;
    rs->hits[2] = l->overlay_hits;
    rs->hits[3] = l->recent_hits;
    const struct dt_ruleset *old = l->current;
    uint64_t t0 = now_us();
    if (l->srv)
        old = dt_server_publish(l->srv, rs);
    l->last_publish_us = now_us() - t0;
    l->current = rs;
    l->publishes++;
    if (!old)
        return;
    /* Free what the new ruleset no longer uses: no worker can hold the old one now. */
    if (old->files != rs->files)
        dt_table_free((struct dt_table *)old->files);
    if (old->store != rs->store)
        dt_table_free((struct dt_table *)old->store);
    if (old->overlay != rs->overlay)
        dt_table_free((struct dt_table *)old->overlay);
    if (old->hidden != rs->hidden)
        free((void *)old->hidden);
    if (old->recent != rs->recent)
        dt_table_free((struct dt_table *)old->recent);
    if (old->hidden_overlay != rs->hidden_overlay)
        free((void *)old->hidden_overlay);
    for (int k = 0; k < 4; k++)
        if (old->hits[k] != rs->hits[k])
            dt_hits_free(old->hits[k]);
    free((void *)old);
}

static void clear_changes(struct live *l, int64_t upto)
{
    size_t k = 0;
    for (size_t i = 0; i < l->nchanges; i++) {
        if (l->changes[i].version <= upto)
            free(l->changes[i].line);
        else
            l->changes[k++] = l->changes[i];
    }
    l->nchanges = k;
}

/* Makes t (the store's rules of version) the store table: the changes up to version leave
 * the overlay. Caller holds mu. */
static void install(struct live *l, struct dt_table *t, int64_t version)
{
    l->store_t = t;
    l->store_version = version;
    clear_changes(l, version);
    rebuild_levels(l);
    dt_live_publish(l);
    l->merges++;
    l->next_due = 0; /* look for promotions again */
    /* A rebuild frees a table of the store's size: give the memory back to the system
     * rather than keep it in the allocator's free lists. */
    malloc_trim(0);
}

int dt_live_merge(struct live *l, struct dt_buf *err)
{
    int64_t version = dt_store_version(l->store);
    struct dt_table *t = dt_live_store_table(l->store, version, err);
    if (!t)
        return DT_EIO;
    install(l, t, version);
    return 0;
}

/* The merge thread: reads the store's rules of merge_version on its own connection (WAL:
 * writes go on meanwhile) and builds their table without holding mu, then installs it
 * unless a newer one came first. */
static void *merge_main(void *arg)
{
    struct live *l = arg;
    pthread_mutex_lock(&l->mu);
    int64_t version = l->merge_version;
    pthread_mutex_unlock(&l->mu);
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_table *t = store_table(l->merge_store, version, &l->merge_moot, &err);
    pthread_mutex_lock(&l->mu);
    if (!t && !atomic_load(&l->merge_moot))
        dt_log(DT_LOG_ERROR, "rebuilding the store's table failed: %s", err.ptr ? err.ptr : "");
    else if (t && version > l->store_version)
        install(l, t, version);
    else
        dt_table_free(t);
    l->merging = false;
    pthread_mutex_unlock(&l->mu);
    dt_buf_dispose(&err);
    return NULL;
}

/* Starts a background merge of the newest version. Caller holds mu. */
static void start_merge(struct live *l)
{
    if (l->merging || l->closing)
        return;
    if (!l->merge_store) {
        struct dt_buf err;
        dt_buf_init(&err);
        if (dt_live_merge(l, &err) != 0)
            dt_log(DT_LOG_ERROR, "rebuilding the store's table failed: %s", err.ptr);
        dt_buf_dispose(&err);
        return;
    }
    if (l->merge_joinable) {
        pthread_join(l->merge_thread, NULL); /* the last one has finished (merging is false) */
        l->merge_joinable = false;
    }
    l->merge_version = dt_store_version(l->store);
    l->merging = true;
    atomic_store(&l->merge_moot, false);
    int rc = pthread_create(&l->merge_thread, NULL, merge_main, l);
    if (rc != 0) {
        l->merging = false;
        dt_log(DT_LOG_ERROR, "cannot start a merge: %s", strerror(rc));
        return;
    }
    l->merge_joinable = true;
}

/* Changes since the store table was built that start a merge. */
static size_t merge_at(const struct live *l)
{
    size_t n = dt_table_size(l->store_t) / 64;
    return n > DT_LIVE_MERGE_AT ? n : DT_LIVE_MERGE_AT;
}

int dt_live_preview(struct live *l, const struct change *c, size_t n, bool whole,
                    struct dt_live_preview *pv, struct dt_buf *err)
{
    memset(pv, 0, sizeof(*pv));
    pv->whole = whole;
    if (whole) {
        /* the store's rules as the open transaction sees them, and no changes */
        pv->store_t = dt_live_store_table(l->store, 0, err);
        if (!pv->store_t)
            return DT_EIO;
        pv->rs.files = l->files;
        pv->rs.store = pv->store_t;
        return 0;
    }
    /* the changes so far (their lines shared) and c (copied; it wins for the same id, as a
     * recent change), merged in order of id */
    pv->changes = dt_xcalloc(l->nchanges + n + 1, sizeof(*pv->changes));
    pv->fresh = dt_xcalloc(l->nchanges + n + 1, sizeof(*pv->fresh));
    pv->replaced = dt_xcalloc(n + 1, sizeof(*pv->replaced));
    size_t i = 0, j = 0, k = 0, nrecent = 0;
    while (i < l->nchanges || j < n) {
        if (j >= n || (i < l->nchanges && l->changes[i].id < c[j].id)) {
            nrecent += l->changes[i].recent;
            pv->changes[k++] = l->changes[i++];
            continue;
        }
        if (i < l->nchanges && l->changes[i].id == c[j].id) {
            if (l->changes[i].line)
                pv->replaced[pv->nreplaced++] = l->changes[i].line;
            i++;
        }
        nrecent++;
        pv->fresh[k] = true;
        pv->changes[k++] =
            (struct change){c[j].id, c[j].version,
                            c[j].line ? dt_xstrndup(c[j].line, strlen(c[j].line)) : NULL, true};
        j++;
    }
    pv->nchanges = k;
    /* the store table's bitmap: the one in use (every earlier change) and c's */
    pv->hidden = new_bits(l->store_t);
    if (l->hidden)
        memcpy(pv->hidden, l->hidden, (dt_table_size(l->store_t) / 64 + 1) * sizeof(uint64_t));
    for (j = 0; j < n; j++)
        hide_id(l->store_t, c[j].id, pv->hidden);
    if (nrecent > DT_LIVE_RECENT_MAX) {
        /* fold: one new overlay of every change */
        for (i = 0; i < k; i++)
            pv->changes[i].recent = false;
        pv->overlay = changes_table(pv->changes, k, false);
        pv->own_overlay = true;
    } else {
        /* the overlay in use stays; the recent table is new */
        pv->overlay = l->overlay;
        pv->recent = changes_table(pv->changes, k, true);
        if (l->overlay && nrecent) {
            pv->hidden_overlay = new_bits(l->overlay);
            for (i = 0; i < k; i++)
                if (pv->changes[i].recent)
                    hide_id(l->overlay, pv->changes[i].id, pv->hidden_overlay);
        }
    }
    pv->rs.files = l->files;
    pv->rs.store = l->store_t;
    pv->rs.hidden = pv->hidden;
    pv->rs.overlay = pv->overlay;
    pv->rs.hidden_overlay = pv->hidden_overlay;
    pv->rs.recent = pv->recent;
    return 0;
}

void dt_live_preview_table(struct live *l, struct dt_table *t, struct dt_live_preview *pv)
{
    memset(pv, 0, sizeof(*pv));
    pv->whole = true;
    pv->store_t = t;
    pv->rs.files = l->files;
    pv->rs.store = t;
}

void dt_live_preview_dispose(struct dt_live_preview *pv)
{
    dt_table_free(pv->store_t);
    if (pv->own_overlay)
        dt_table_free(pv->overlay);
    dt_table_free(pv->recent);
    free(pv->hidden);
    free(pv->hidden_overlay);
    for (size_t i = 0; i < pv->nchanges; i++)
        if (pv->fresh[i])
            free(pv->changes[i].line);
    free(pv->changes);
    free(pv->fresh);
    free(pv->replaced);
    memset(pv, 0, sizeof(*pv));
}

void dt_live_install(struct live *l, struct dt_live_preview *pv, int64_t version)
{
    if (pv->whole) {
        install(l, pv->store_t, version);
        pv->store_t = NULL;
    } else {
        for (size_t i = 0; i < pv->nchanges; i++)
            if (pv->changes[i].version <= 0 || pv->changes[i].version > version)
                pv->changes[i].version = version; /* the transaction's own changes */
        /* the lines now live in pv's changes, but for the superseded ones */
        for (size_t i = 0; i < pv->nreplaced; i++)
            free(pv->replaced[i]);
        pv->nreplaced = 0;
        free(l->changes);
        l->changes = pv->changes;
        l->nchanges = l->cap_changes = pv->nchanges;
        if (!l->cap_changes) {
            free(l->changes);
            l->changes = NULL;
        }
        l->overlay = pv->overlay;
        l->hidden = pv->hidden;
        l->recent = pv->recent;
        l->hidden_overlay = pv->hidden_overlay;
        pv->changes = NULL;
        pv->nchanges = 0;
        pv->overlay = pv->recent = NULL;
        pv->own_overlay = false;
        pv->hidden = pv->hidden_overlay = NULL;
        dt_live_publish(l);
        l->next_due = 0;
        if (l->nchanges >= merge_at(l))
            start_merge(l);
    }
    dt_live_preview_dispose(pv);
}

void dt_live_apply(struct live *l, const struct change *c, size_t n)
{
    if (!n)
        return;
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_live_preview pv;
    /* a bulk change rebuilds the store's table now, so the answer comes once it is all
     * visible */
    if (dt_live_preview(l, c, n, n > DT_LIVE_OVERLAY_MAX, &pv, &err) != 0)
        dt_log(DT_LOG_ERROR, "rebuilding the store's table failed: %s", err.ptr);
    else
        dt_live_install(l, &pv, dt_store_version(l->store));
    dt_buf_dispose(&err);
}

/* Adds the store ids of t's rules promoted by now to ids; returns the earliest promotion
 * still to come (INT64_MAX for none). Rules hidden in the store table are skipped. */
static int64_t scan_due(const struct dt_table *t, const uint64_t *hidden, time_t now, int64_t **ids,
                        size_t *n, size_t *cap)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < dt_table_size(t); i++) {
        if (hidden && (hidden[i / 64] >> (i % 64) & 1))
            continue;
        const struct dt_rule *r = dt_table_rule(t, i);
        time_t at;
        int to;
        if (!dt_rule_promotion(t, r, &at, &to))
            continue;
        if (at > now) {
            if (at < next)
                next = at;
            continue;
        }
        if (*n && (*ids)[*n - 1] == (int64_t)r->line)
            continue;
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *ids = dt_xrealloc(*ids, *cap * sizeof(**ids));
        }
        (*ids)[(*n)++] = r->line;
    }
    return next;
}

size_t dt_live_due(struct live *l, time_t now, int64_t **ids)
{
    *ids = NULL;
    if (l->next_due && now < l->next_due)
        return 0;
    size_t n = 0, cap = 0;
    int64_t a = scan_due(l->store_t, l->hidden, now, ids, &n, &cap);
    int64_t b =
        l->overlay ? scan_due(l->overlay, l->hidden_overlay, now, ids, &n, &cap) : INT64_MAX;
    int64_t c = l->recent ? scan_due(l->recent, NULL, now, ids, &n, &cap) : INT64_MAX;
    l->next_due = a < b ? a : b;
    if (c < l->next_due)
        l->next_due = c;
    return n;
}

struct dt_table *dt_live_load_files(const struct dt_server_config *cfg)
{
    if (!cfg->nrules) {
        struct dt_table *t = dt_table_new();
        dt_table_finish(t);
        return t;
    }
    return dt_server_load_rules(cfg);
}

int dt_live_init(struct live *l, const struct dt_server_config *cfg, struct dt_store *store,
                 const char *db_path, struct dt_table *files, struct dt_buf *err)
{
    memset(l, 0, sizeof(*l));
    atomic_init(&l->merge_moot, false);
    pthread_mutex_init(&l->mu, NULL);
    l->cfg = cfg;
    l->store = store;
    l->nworkers = dt_server_worker_count(cfg);
    l->files = files;
    l->store_version = dt_store_version(store);
    l->store_t = dt_live_store_table(store, l->store_version, err);
    if (!l->store_t) {
        dt_table_free(l->files);
        l->files = NULL;
        return DT_EIO;
    }
    dt_live_publish(l);
    if (strcmp(db_path, ":memory:") != 0) {
        l->merge_store = dt_store_open(db_path, dt_rule_source_host, err);
        if (!l->merge_store) {
            dt_log(DT_LOG_WARN,
                   "no second connection to the store (%s): merging in the "
                   "admin thread",
                   err->ptr ? err->ptr : "");
            err->len = 0;
        }
    }
    return 0;
}

void dt_live_moot_merge(struct live *l)
{
    if (l->merging)
        atomic_store(&l->merge_moot, true);
}

void dt_live_stop(struct live *l)
{
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    bool join = l->merge_joinable;
    l->merge_joinable = false;
    pthread_mutex_unlock(&l->mu);
    if (join)
        pthread_join(l->merge_thread, NULL); /* it installs its table while workers run */
}

void dt_live_dispose(struct live *l)
{
    if (l->merge_joinable)
        pthread_join(l->merge_thread, NULL);
    if (l->merge_store)
        dt_store_close(l->merge_store);
    if (l->current) {
        dt_table_free((struct dt_table *)l->current->files);
        dt_table_free((struct dt_table *)l->current->store);
        dt_table_free((struct dt_table *)l->current->overlay);
        free((void *)l->current->hidden);
        dt_table_free((struct dt_table *)l->current->recent);
        free((void *)l->current->hidden_overlay);
        for (int k = 0; k < 4; k++)
            dt_hits_free(l->current->hits[k]);
        free((void *)l->current);
    }
    clear_changes(l, INT64_MAX);
    free(l->changes);
    pthread_mutex_destroy(&l->mu);
}

void dt_live_reload(struct live *l)
{
    uint64_t t0 = now_us();
    struct dt_table *t = dt_live_load_files(l->cfg);
    pthread_mutex_lock(&l->mu);
    size_t before = dt_table_size(l->files);
    if (!t) {
        l->reload_failures++;
        dt_log(DT_LOG_ERROR, "reload failed: keeping the %zu rules in use", before);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    l->files = t;
    dt_live_publish(l);
    l->reloads++;
    pthread_mutex_unlock(&l->mu);
    dt_log(DT_LOG_INFO, "reloaded %zu rules (was %zu) from the rule files in %llu ms",
           dt_table_size(t), before, (unsigned long long)((now_us() - t0) / 1000));
}
