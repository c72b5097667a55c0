/* Unit tests for src/admin/live.c: hit counts across the installs of the store's table (a
 * merge that comes while changes are pending). */
#include "admin/live.c"
#include "tap.h"

static struct dt_buf err;

static int64_t add_rule(struct dt_store *s, int64_t now, const char *source, const char *target)
{
    struct dt_store_rule r = {.source = source, .target = target, .status = 307};
    int64_t id = -1, v = -1;
    if (dt_store_begin(s, now, "test", "", &err) != 0 || dt_store_add(s, &r, &id, &err) != 0 ||
        dt_store_commit(s, &v, &err) != 0)
        printf("# add %s: %s\n", source, err.ptr ? err.ptr : "");
    return id;
}

/* The change of rule id as the API hands it to live: its line as stored. */
static int line_of(void *ctx, const struct dt_store_rule *r)
{
    *(char **)ctx = dt_live_line(r);
    return 0;
}

static void apply_change(struct live *l, struct dt_store *s, int64_t id)
{
    char *line = NULL;
    if (dt_store_get(s, id, line_of, &line) != 0)
        printf("# no rule %lld\n", (long long)id);
    struct change c = {id, dt_store_version(s), line, true};
    pthread_mutex_lock(&l->mu);
    dt_live_apply(l, &c, 1);
    pthread_mutex_unlock(&l->mu);
    free(line);
}

/* Counts n hits of rule id in the level that answers for it now (recent, overlay, store). */
static void hit(struct live *l, int64_t id, int n)
{
    const struct dt_table *ts[3] = {l->recent, l->overlay, l->store_t};
    struct dt_hits *hs[3] = {l->recent_hits, l->overlay_hits, l->store_hits};
    for (int k = 0; k < 3; k++) {
        if (!ts[k])
            continue;
        size_t i = first_with_id(ts[k], id);
        if (i < dt_table_size(ts[k]) && (int64_t)dt_table_rule(ts[k], i)->line == id) {
            for (int j = 0; j < n; j++)
                dt_hits_add(hs[k], 0, i, 1000);
            return;
        }
    }
    printf("# rule %lld is in no table\n", (long long)id);
}

static uint64_t hits(struct live *l, int64_t id)
{
    uint32_t last;
    return dt_live_hits(l, id, &last);
}

/* A merge reads the store as of a version, then installs its table: the changes made since
 * stay pending over it, and every rule keeps its hits, whichever level counted them. */
static void test_hits_across_a_merge(void)
{
    struct dt_server_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workers = 1;
    struct dt_store *s = dt_store_open(":memory:", dt_rule_source_host, &err);
    if (!ok(s != NULL, "a store"))
        return;
    int64_t a = add_rule(s, 10, "/a", "/ta");
    struct live l;
    if (!ok(dt_live_init(&l, &cfg, s, ":memory:", dt_live_load_files(&cfg), &err) == 0,
            "live starts"))
        return;
    hit(&l, a, 2);
    int64_t v1 = dt_store_version(s);
    /* a rule added after the version a merge reads */
    int64_t b = add_rule(s, 20, "/b", "/tb");
    apply_change(&l, s, b);
    hit(&l, b, 3);
    is_int((int64_t)hits(&l, b), 3, "hits of a new rule, in the recent table");
    struct dt_table *t = dt_live_store_table(s, v1, &err);
    pthread_mutex_lock(&l.mu);
    install(&l, t, v1);
    pthread_mutex_unlock(&l.mu);
    ok(l.overlay != NULL && dt_table_size(l.overlay) == 1, "the new rule stays pending");
    is_int((int64_t)hits(&l, a), 2, "a rule of the merged table keeps its hits");
    is_int((int64_t)hits(&l, b), 3, "a rule added during the merge keeps its hits");

    /* a rule of the store changed after the version a merge reads: counted once */
    int64_t v2 = dt_store_version(s);
    struct dt_store_rule r = {.source = "/a", .target = "/ta2", .status = 307};
    if (dt_store_begin(s, 30, "test", "", &err) != 0 || dt_store_replace(s, a, &r, &err) != 0 ||
        dt_store_commit(s, NULL, &err) != 0)
        printf("# replace: %s\n", err.ptr ? err.ptr : "");
    apply_change(&l, s, a);
    hit(&l, a, 4);
    hit(&l, b, 1);
    t = dt_live_store_table(s, v2, &err);
    pthread_mutex_lock(&l.mu);
    install(&l, t, v2);
    pthread_mutex_unlock(&l.mu);
    is_int((int64_t)hits(&l, a), 6, "a rule changed during the merge: its hits, once");
    is_int((int64_t)hits(&l, b), 4, "a rule merged since: its hits");
    dt_live_dispose(&l);
    dt_store_close(s);
}

/* A merge made moot (a bulk write replaces the store's table) stops reading and installs
 * nothing; the next one runs as usual. */
static void test_moot_merge(void)
{
    char dir[] = "/tmp/detour-live-XXXXXX", path[64];
    if (!ok(mkdtemp(dir) != NULL, "a directory"))
        return;
    snprintf(path, sizeof(path), "%s/m.db", dir);
    struct dt_store *s = dt_store_open(path, dt_rule_source_host, &err);
    if (!ok(s != NULL, "a store"))
        return;
    struct dt_server_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workers = 1;
    char src[32];
    if (dt_store_begin(s, 10, "test", "", &err) != 0)
        printf("# begin: %s\n", err.ptr);
    for (int i = 0; i < 200000; i++) {
        snprintf(src, sizeof(src), "/m/%d", i);
        struct dt_store_rule r = {.source = src, .target = "/t", .status = 307};
        if (dt_store_add(s, &r, NULL, &err) != 0)
            break;
    }
    if (dt_store_commit(s, NULL, &err) != 0)
        printf("# commit: %s\n", err.ptr);
    struct live l;
    if (!ok(dt_live_init(&l, &cfg, s, path, dt_live_load_files(&cfg), &err) == 0,
            "live starts, with a merge connection") ||
        !ok(l.merge_store != NULL, "a merge connection"))
        return;
    add_rule(s, 20, "/new", "/t");
    pthread_mutex_lock(&l.mu);
    uint64_t merges = l.merges;
    start_merge(&l);
    dt_live_moot_merge(&l);
    bool joinable = l.merge_joinable;
    l.merge_joinable = false;
    pthread_mutex_unlock(&l.mu);
    if (joinable)
        pthread_join(l.merge_thread, NULL);
    is_int((int64_t)(l.merges - merges), 0, "the moot merge installed nothing");
    ok(!l.merging, "and ended");
    pthread_mutex_lock(&l.mu);
    start_merge(&l);
    joinable = l.merge_joinable;
    l.merge_joinable = false;
    pthread_mutex_unlock(&l.mu);
    if (joinable)
        pthread_join(l.merge_thread, NULL);
    is_int((int64_t)(l.merges - merges), 1, "the next merge installs");
    is_int((int64_t)dt_table_size(l.store_t), 200001, "the whole store");
    dt_live_dispose(&l);
    dt_store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

int main(void)
{
    dt_buf_init(&err);
    test_hits_across_a_merge();
    test_moot_merge();
    dt_buf_dispose(&err);
    return done_testing();
}
