/* Unit tests for live rule sets (S5): a ruleset of file rules, merged store rules with some
 * hidden, and an overlay of changed store rules must answer every request exactly as one
 * table holding the same rules (store rules by id, then the file rules) would. Checked on
 * fixed cases, then on thousands of random rule sets and requests. */
#include "rules/answer.h"
#include "rules/rules.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A rule: its line, and for store rules its id. */
struct rule {
    char line[160];
    uint32_t id;
};

static void add_line(struct dt_table *t, const char *line, uint32_t id)
{
    struct dt_rule_spec spec;
    struct dt_diag d;
    struct dt_str l = dt_str_make(line, strlen(line));
    if (dt_rule_parse_line(l, &spec, &d) != 1 || dt_table_add(t, &spec, -1, id, &d) != 0) {
        printf("# rule does not load: %s: %s\n", line, d.msg);
        ok(0, "rule loads");
    }
}

/* What a table or a ruleset answers: the rule's target and the Location, or "-". */
static void render(const struct dt_table *t, const struct dt_match *m, const struct dt_rule *r,
                   struct dt_str query, char *out, size_t cap)
{
    if (!r) {
        snprintf(out, cap, "-");
        return;
    }
    char loc[2048];
    size_t max = dt_table_location_max(t, m, query);
    size_t n = max < sizeof(loc) ? dt_table_location(t, m, query, loc) : 0;
    snprintf(out, cap, "%d %.*s", dt_rule_status(r), (int)n, loc);
}

static const char *hosts_src[] = {"",       "a.com",     "*.a.com",      "x.a.com",
                                  ".a.com", "*.x.a.com", "http://a.com", "https://x.a.com"};
static const char *paths_src[] = {"/p1",         "/p1/q",       "/p1/*",   "/p*",   "/p1/:id",
                                  "/:x/q",       "/p1/:id/*",   "/p1?k=1", "/p1?k", "/p1/*?k=2",
                                  "~^/p([0-9])", "~^/p1/(.*)$", "/q",      "/q/*"};
static const char *req_hosts[] = {"", "a.com", "x.a.com", "y.x.a.com", "b.com"};
static const char *req_paths[] = {"/p1", "/p1/", "/p1/q", "/p2", "/p1/q/r", "/q", "/q/z", "/p"};
static const char *req_queries[] = {"", "k=1", "k=2", "k", "z=1&k=2"};

static void random_rule(char *out, size_t cap, unsigned serial)
{
    const char *h = hosts_src[rnd(DT_ARRAY_LEN(hosts_src))];
    const char *p = paths_src[rnd(DT_ARRAY_LEN(paths_src))];
    if (p[0] == '~')
        h = ""; /* a regex is on the path of any host */
    static const int statuses[] = {301, 302, 303, 307, 308};
    snprintf(out, cap, "%s%s /t%u/:splat %d", h, p, serial, statuses[rnd(5)]);
    if (p[0] == '~')
        snprintf(out, cap, "%s /t%u/$1 %d", p, serial, statuses[rnd(5)]);
    else if (!strstr(p, "*"))
        snprintf(out, cap, "%s%s /t%u %d", h, p, serial, statuses[rnd(5)]);
}

struct hide_ctx {
    uint64_t *bits;
};

static void set_bit(void *ctx, size_t idx)
{
    struct hide_ctx *h = ctx;
    h->bits[idx / 64] |= (uint64_t)1 << (idx % 64);
}

/* One random trial: nf file rules, ns store rules in their final state, of which some were
 * merged unchanged, some merged then changed (old version hidden, new one in the overlay or
 * in the recent table), some merged then removed (hidden), some added since (overlay or
 * recent table only); a rule in the recent table may have an older version in the overlay,
 * hidden, and rules removed since the overlay was built are hidden there. */
static int trial(unsigned nf, unsigned ns, unsigned nreq)
{
    static unsigned serial;
    struct rule *files = calloc(nf + 1, sizeof(*files));
    struct rule *store = calloc(ns + 1, sizeof(*store));
    for (unsigned i = 0; i < nf; i++)
        random_rule(files[i].line, sizeof(files[i].line), serial++);
    uint32_t id = 0;
    for (unsigned i = 0; i < ns; i++) {
        random_rule(store[i].line, sizeof(store[i].line), serial++);
        id += 1 + rnd(3);
        store[i].id = id;
    }
    struct dt_table *ref = dt_table_new();
    for (unsigned i = 0; i < ns; i++)
        add_line(ref, store[i].line, store[i].id);
    dt_table_add_file(ref, "files");
    for (unsigned i = 0; i < nf; i++)
        add_line(ref, files[i].line, i + 1);
    dt_table_finish(ref);

    struct dt_table *ft = dt_table_new();
    dt_table_add_file(ft, "files");
    for (unsigned i = 0; i < nf; i++)
        add_line(ft, files[i].line, i + 1);
    dt_table_finish(ft);

    /* fate: 0 merged, 1 merged then changed, 2 added since; plus removed rules in between */
    struct dt_table *st = dt_table_new(), *ov = dt_table_new();
    unsigned *fate = calloc(ns + 1, sizeof(*fate));
    uint32_t removed_id = id + 1000;
    for (unsigned i = 0; i < ns; i++) {
        fate[i] = rnd(3);
        if (rnd(4) == 0) {
            /* a merged rule removed since, with an id between the others' */
            char line[160];
            random_rule(line, sizeof(line), serial++);
            add_line(st, line, store[i].id > 0 ? store[i].id : 0);
        }
        if (fate[i] == 0) {
            add_line(st, store[i].line, store[i].id);
        } else if (fate[i] == 1) {
            char old[160];
            random_rule(old, sizeof(old), serial++);
            add_line(st, old, store[i].id);
        }
    }
    (void)removed_id;
    dt_table_finish(st);
    /* Hidden: every merged rule whose id is not in fate 0 with the same line, i.e. all
     * rules of st except the unchanged ones. */
    size_t n = dt_table_size(st);
    uint64_t *hidden = calloc(n / 64 + 1, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        const struct dt_rule *r = dt_table_rule(st, i);
        unsigned k = 0;
        while (k < ns && store[k].id != r->line)
            k++;
        struct dt_buf tgt;
        dt_buf_init(&tgt);
        dt_rule_target(st, r, &tgt);
        dt_buf_terminate(&tgt);
        /* unchanged: same id and the same (unique) target */
        bool keep = k < ns && fate[k] == 0 && strstr(store[k].line, tgt.ptr) != NULL;
        if (!keep)
            hidden[i / 64] |= (uint64_t)1 << (i % 64);
        dt_buf_dispose(&tgt);
    }
    /* level: 0 in the overlay; 1 in the recent table over an older version in the overlay;
     * 2 in the recent table only */
    struct dt_table *rc = dt_table_new();
    unsigned *level = calloc(ns + 1, sizeof(*level));
    for (unsigned i = 0; i < ns; i++) {
        if (fate[i] == 0)
            continue;
        level[i] = rnd(3);
        if (rnd(4) == 0) {
            char gone[160]; /* in the overlay, removed since: hidden */
            random_rule(gone, sizeof(gone), serial++);
            add_line(ov, gone, store[i].id);
        }
        if (level[i] == 0) {
            add_line(ov, store[i].line, store[i].id);
            continue;
        }
        if (level[i] == 1) {
            char old[160];
            random_rule(old, sizeof(old), serial++);
            add_line(ov, old, store[i].id);
        }
        add_line(rc, store[i].line, store[i].id);
    }
    dt_table_finish(ov);
    dt_table_finish(rc);
    size_t nov = dt_table_size(ov);
    uint64_t *hidden_ov = calloc(nov / 64 + 1, sizeof(uint64_t));
    for (size_t i = 0; i < nov; i++) {
        const struct dt_rule *r = dt_table_rule(ov, i);
        unsigned k = 0;
        while (k < ns && store[k].id != r->line)
            k++;
        struct dt_buf tgt;
        dt_buf_init(&tgt);
        dt_rule_target(ov, r, &tgt);
        dt_buf_terminate(&tgt);
        bool keep = k < ns && level[k] == 0 && strstr(store[k].line, tgt.ptr) != NULL;
        if (!keep)
            hidden_ov[i / 64] |= (uint64_t)1 << (i % 64);
        dt_buf_dispose(&tgt);
    }

    struct dt_ruleset rs = {.files = ft,
                            .store = st,
                            .hidden = hidden,
                            .overlay = ov,
                            .hidden_overlay = hidden_ov,
                            .recent = rc};
    int failures = 0;
    for (unsigned q = 0; q < nreq && failures < 3; q++) {
        const char *host = req_hosts[rnd(DT_ARRAY_LEN(req_hosts))];
        const char *path = req_paths[rnd(DT_ARRAY_LEN(req_paths))];
        const char *query = req_queries[rnd(DT_ARRAY_LEN(req_queries))];
        enum dt_scheme scheme = rnd(2) ? DT_SCHEME_HTTP : DT_SCHEME_HTTPS;
        struct dt_str h = dt_str_make(host, strlen(host)), p = dt_str_make(path, strlen(path)),
                      qs = dt_str_make(query, strlen(query));
        struct dt_match m1, m2;
        const struct dt_rule *r1 = dt_table_match(ref, scheme, h, p, qs, 1000, &m1);
        const struct dt_table *t2 = NULL;
        const struct dt_rule *r2 = dt_ruleset_match(&rs, scheme, h, p, qs, 1000, &m2, &t2);
        char a[2200], b[2200];
        render(ref, &m1, r1, qs, a, sizeof(a));
        render(t2, &m2, r2, qs, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            failures++;
            printf("# %s://%s%s?%s: one table says '%s', the ruleset '%s'\n",
                   scheme == DT_SCHEME_HTTP ? "http" : "https", host, path, query, a, b);
            printf("# files:\n");
            for (unsigned i = 0; i < nf; i++)
                printf("#   %s\n", files[i].line);
            printf("# store (id fate level line):\n");
            for (unsigned i = 0; i < ns; i++)
                printf("#   %u %u %u %s\n", store[i].id, fate[i], level[i], store[i].line);
        }
    }
    free(hidden);
    free(hidden_ov);
    free(fate);
    free(level);
    dt_table_free(ref);
    dt_table_free(ft);
    dt_table_free(st);
    dt_table_free(ov);
    dt_table_free(rc);
    free(files);
    free(store);
    return failures;
}

static void fixed(void)
{
    /* a store rule overrides a file rule with the same source; an overlay change hides the
     * merged version; a removed store rule lets the file rule answer again */
    struct dt_table *ft = dt_table_new(), *st = dt_table_new(), *ov = dt_table_new();
    dt_table_add_file(ft, "rules.txt");
    add_line(ft, "/a /from-file", 1);
    add_line(ft, "/b /file-b", 2);
    add_line(ft, "/c* /file-c/:splat", 3);
    dt_table_finish(ft);
    add_line(st, "/a /from-store", 5);
    add_line(st, "/b /store-b-old", 7);
    add_line(st, "/c/d* /store-cd/:splat", 9);
    dt_table_finish(st);
    add_line(ov, "/b /store-b-new", 7);
    dt_table_finish(ov);
    uint64_t hidden[1] = {0};
    struct dt_ruleset rs = {.files = ft, .store = st, .hidden = hidden, .overlay = ov};
    struct dt_match m;
    const struct dt_table *t;
    char out[256];
    const struct dt_rule *r;
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/a"), DT_STR_NULL, 0, &m, &t);
    render(t, &m, r, DT_STR_NULL, out, sizeof(out));
    is_str(out, "307 /from-store", "S5: a store rule overrides the file rule with its source");
    hidden[0] = 1 << 1; /* rule 7's merged version */
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/b"), DT_STR_NULL, 0, &m, &t);
    render(t, &m, r, DT_STR_NULL, out, sizeof(out));
    is_str(out, "307 /store-b-new", "S5: the overlay's version of a changed rule answers");
    hidden[0] |= 1 << 0; /* rule 5 removed */
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/a"), DT_STR_NULL, 0, &m, &t);
    render(t, &m, r, DT_STR_NULL, out, sizeof(out));
    is_str(out, "307 /from-file", "S5: with the store rule removed, the file rule answers");
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/c/d/e"), DT_STR_NULL, 0, &m, &t);
    render(t, &m, r, DT_STR_NULL, out, sizeof(out));
    is_str(out, "307 /store-cd//e", "longest prefix across tables");
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/c/x"), DT_STR_NULL, 0, &m, &t);
    render(t, &m, r, DT_STR_NULL, out, sizeof(out));
    is_str(out, "307 /file-c//x", "a file prefix when the store has none that fits");
    r = dt_ruleset_match(&rs, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/z"), DT_STR_NULL, 0, &m, &t);
    ok(r == NULL && t == NULL, "no rule: NULL");
    struct dt_ruleset empty = {0};
    r = dt_ruleset_match(&empty, DT_SCHEME_HTTP, DT_STR(""), DT_STR("/a"), DT_STR_NULL, 0, &m, &t);
    ok(r == NULL, "an empty ruleset answers nothing");

    /* finding rules by source across tables */
    size_t hits[4];
    struct hide_ctx hc = {(uint64_t[1]){0}};
    is_int(dt_table_find_source(ft, st, dt_table_rule(st, 0), set_bit, &hc), 1,
           "find_source: the file rule with the store rule's source");
    is_int(hc.bits[0], 1, "find_source: its index");
    is_int(dt_table_find_source(ft, st, dt_table_rule(st, 2), set_bit, &hc), 0,
           "find_source: a prefix of another length is another source");
    (void)hits;
    dt_table_free(ft);
    dt_table_free(st);
    dt_table_free(ov);
}

/* Issue 10: the one answer function: status after promotion, Location, caching, layer, hits. */
static void answers(void)
{
    struct dt_table *ft = dt_table_new(), *st = dt_table_new(), *ov = dt_table_new(),
                    *rt = dt_table_new();
    dt_table_add_file(ft, "rules.txt");
    add_line(ft, "/f /file 301 cache=60", 1);
    add_line(ft, "example.com/h/* https://new.example/:splat 308 query=drop", 2);
    dt_table_finish(ft);
    add_line(st, "/s /store 307 since=2000-01-01T00:00:00Z promote-after=1d", 4);
    dt_table_finish(st);
    add_line(ov, "/o /overlay 302", 5);
    dt_table_finish(ov);
    add_line(rt, "/r /recent 303", 6);
    dt_table_finish(rt);
    struct dt_ruleset rs = {.files = ft, .store = st, .overlay = ov, .recent = rt};
    struct dt_hits *hits = dt_hits_new(1, 2);
    rs.hits[DT_LAYER_STORE] = hits;
    time_t now = 4102444800; /* 2100-01-01 */
    struct dt_answer_query q = {DT_SCHEME_HTTP, DT_STR(""), DT_STR("/f"), DT_STR_NULL, now};
    struct dt_answer a;
    char loc[256];
    is_int(dt_answer_find(&rs, &q, &a), 301, "answer: a file rule's status");
    ok(a.layer == DT_LAYER_FILES && a.max_age == 60, "answer: its layer and cache=");
    is_strn(loc, dt_answer_location(&a, &q, loc), "/file", "answer: its Location");
    q.host = DT_STR("example.com");
    q.path = DT_STR("/h/x");
    q.query = DT_STR("a=1");
    is_int(dt_answer_find(&rs, &q, &a), 308, "answer: a host rule");
    ok(dt_answer_location_max(&a, &q) >= 23, "answer: the bound holds the Location");
    is_strn(loc, dt_answer_location(&a, &q, loc), "https://new.example/x",
            "answer: query=drop, the splat filled in");
    q.host = DT_STR("");
    q.path = DT_STR("/s");
    q.query = DT_STR_NULL;
    is_int(dt_answer_find(&rs, &q, &a), 308, "answer: a 307 promoted by now answers 308");
    ok(a.layer == DT_LAYER_STORE && a.max_age == -1, "answer: the store layer, no caching");
    dt_answer_count(&rs, &a, 1, now);
    uint32_t last = 0;
    is_int(dt_hits_get(hits, 0, &last), 1, "answer: the hit is counted in its layer");
    is_int(last, (uint32_t)now, "answer: at now");
    q.now = 946684800 + 3600; /* an hour after since=: not yet */
    is_int(dt_answer_find(&rs, &q, &a), 307, "answer: before promote-after, 307");
    q.path = DT_STR("/o");
    is_int(dt_answer_find(&rs, &q, &a), 302, "answer: an overlay rule");
    is_int(a.layer, DT_LAYER_OVERLAY, "answer: the overlay layer");
    dt_answer_count(&rs, &a, 0, now); /* no counters there: nothing happens */
    q.path = DT_STR("/r");
    is_int(dt_answer_find(&rs, &q, &a), 303, "answer: a recent change");
    is_int(a.layer, DT_LAYER_RECENT, "answer: the recent layer");
    q.path = DT_STR("/none");
    is_int(dt_answer_find(&rs, &q, &a), 404, "answer: no rule, 404");
    ok(a.rule == NULL && a.max_age == -1, "answer: nothing to write but the 404");
    dt_hits_free(hits);
    dt_table_free(ft);
    dt_table_free(st);
    dt_table_free(ov);
    dt_table_free(rt);
}

static void sources(void)
{
    /* find_source compares canonical sources: host, wildcard, scheme, kind, conditions */
    struct dt_table *a = dt_table_new(), *b = dt_table_new();
    const char *lines[] = {"/x /1",  "a.com/x /2", "*.a.com/x /3", "http://a.com/x /4", "/x?k=1 /5",
                           "/x* /6", "/x/:id /7",  "~^/x$ /8",     ".b.com/x /9"};
    for (size_t i = 0; i < DT_ARRAY_LEN(lines); i++)
        add_line(a, lines[i], (uint32_t)i + 1);
    dt_table_finish(a);
    for (size_t i = 0; i < DT_ARRAY_LEN(lines); i++)
        add_line(b, lines[i], (uint32_t)i + 1);
    dt_table_finish(b);
    for (size_t i = 0; i < dt_table_size(b); i++) {
        uint64_t bits = 0;
        struct hide_ctx hc = {&bits};
        size_t n = dt_table_find_source(a, b, dt_table_rule(b, i), set_bit, &hc);
        char name[64];
        snprintf(name, sizeof(name), "find_source: rule %zu finds only itself", i);
        ok(n == 1 && bits == (uint64_t)1 << i, name);
    }
    dt_table_free(a);
    dt_table_free(b);
}

/* One rule's error-level findings in a whole rule set (imports check only what they
 * change): a loop through the rule, across tables; a rule another one with its source
 * answers first; and what is not a finding of this rule. */
static void rule_in(void)
{
    struct dt_table *ft = dt_table_new(), *st = dt_table_new(), *ov = dt_table_new();
    dt_table_add_file(ft, "rules.txt");
    add_line(ft, "/a /b", 1);
    dt_table_finish(ft);
    dt_table_add_file(st, "store");
    add_line(st, "/b /a", 1);   /* with the file's /a -> /b: a loop */
    add_line(st, "/c /d", 2);   /* goes nowhere else */
    add_line(st, "/e /one", 4); /* the first of two with one source */
    add_line(st, "/e /two", 5); /* never answers: a conflict */
    add_line(st, "/f /same", 6);
    add_line(st, "/f /same", 7);  /* a copy: a warning for lint, not an error */
    add_line(st, "/g /a", 8);     /* runs into the loop of /a and /b, which is theirs */
    add_line(st, "/s /s?x=1", 9); /* to itself */
    add_line(st, "/h /h2", 10);   /* hidden below: its overlay version loops */
    dt_table_finish(st);
    dt_table_add_file(ov, "store");
    add_line(ov, "/h /h", 10);
    dt_table_finish(ov);
    uint64_t hidden[1] = {(uint64_t)1 << 8};
    struct dt_ruleset rs = {.files = ft, .store = st, .hidden = hidden, .overlay = ov};
    struct dt_buf msg;
    dt_buf_init(&msg);
    const int want[] = {DT_LINT_RULE_LOOP, DT_LINT_RULE_OK, DT_LINT_RULE_OK, DT_LINT_RULE_CONFLICT,
                        DT_LINT_RULE_OK,   DT_LINT_RULE_OK, DT_LINT_RULE_OK, DT_LINT_RULE_LOOP};
    const char *what[] = {"a store rule that loops through a file rule",
                          "a rule that leads nowhere else",
                          "the first of two rules with one source",
                          "the second of two rules with one source and other targets",
                          "the first of two copies",
                          "the second copy (a warning, not an error)",
                          "a chain into other rules' loop",
                          "a rule that sends its own request to itself"};
    for (size_t i = 0; i < DT_ARRAY_LEN(want); i++) {
        msg.len = 0;
        int got = dt_lint_rule_in(&rs, st, dt_table_rule(st, i), 0, &msg, NULL);
        dt_buf_terminate(&msg);
        if (got != want[i])
            printf("# %s: %s\n", what[i], msg.len ? msg.ptr : "(no message)");
        is_int(got, want[i], what[i]);
    }
    msg.len = 0;
    is_int(dt_lint_rule_in(&rs, st, dt_table_rule(st, 0), 0, &msg, NULL), DT_LINT_RULE_LOOP,
           "loop");
    dt_buf_terminate(&msg);
    ok(strstr(msg.ptr, "/b -> /a -> /b") != NULL, "the loop's message names its sources");
    msg.len = 0;
    is_int(dt_lint_rule_in(&rs, ov, dt_table_rule(ov, 0), 0, &msg, NULL), DT_LINT_RULE_LOOP,
           "an overlay rule that loops");
    msg.len = 0;
    is_int(dt_lint_rule_in(&rs, st, dt_table_rule(st, 8), 0, &msg, NULL), DT_LINT_RULE_OK,
           "a hidden rule answers nothing: no finding");
    dt_table_free(ft);
    dt_table_free(st);
    dt_table_free(ov);

    /* absolute targets (read as they are, unless they have dot segments, which are
     * resolved), with and without a reused scratch */
    struct dt_table *ht = dt_table_new();
    dt_table_add_file(ht, "store");
    add_line(ht, "example.com/a https://example.com/x/../a", 1); /* to itself, dots */
    add_line(ht, "example.com/b HTTPS://EXAMPLE.COM/c", 2);      /* case */
    add_line(ht, "example.com/c https://example.com/b", 3);      /* back: a loop */
    add_line(ht, "example.com/d https://other.example/d", 4);    /* another host */
    add_line(ht, "other.example/d https://example.com/./d", 5);  /* and back, dots */
    add_line(ht, "example.com/e https://example.com/f", 6);      /* nowhere */
    dt_table_finish(ht);
    struct dt_ruleset hs = {.store = ht};
    const int hwant[] = {DT_LINT_RULE_LOOP, DT_LINT_RULE_LOOP, DT_LINT_RULE_LOOP,
                         DT_LINT_RULE_LOOP, DT_LINT_RULE_LOOP, DT_LINT_RULE_OK};
    struct dt_lint_scratch scratch;
    memset(&scratch, 0, sizeof(scratch));
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < DT_ARRAY_LEN(hwant); i++) {
            msg.len = 0;
            int got =
                dt_lint_rule_in(&hs, ht, dt_table_rule(ht, i), 0, &msg, pass ? &scratch : NULL);
            dt_buf_terminate(&msg);
            if (got != hwant[i])
                printf("# rule %zu: %s\n", i, msg.len ? msg.ptr : "(no message)");
            is_int(got, hwant[i], pass ? "absolute targets, scratch reused" : "absolute targets");
        }
    }
    dt_lint_scratch_dispose(&scratch);
    dt_table_free(ht);
    dt_buf_dispose(&msg);
}

int main(void)
{
    dt_log_set_level(DT_LOG_ERROR); /* random rule sets have duplicate sources by design */
    fixed();
    answers();
    sources();
    rule_in();
    int failed = 0;
    unsigned trials = 3000;
    for (unsigned i = 0; i < trials && failed < 3; i++)
        failed += trial(rnd(12), 1 + rnd(14), 60) > 0;
    ok(failed == 0, "S5: a ruleset (files, store, overlay, recent changes) answers as one table "
                    "would (3000 random rule sets)");
    return done_testing();
}
