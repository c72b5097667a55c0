/* store_contract: what every backend of store/store.h does, as tests written against the
 * interface alone (issue 10): versions, closed rows, since (S10), rollback, pending changes,
 * history, listing filters and paging, bulk writes, notifications, reopening, and big
 * transactions. A backend's test program defines a struct store_fixture and calls
 * store_contract(): tests/unit/test_store.c for SQLite; a second backend runs the same.
 * Header-only (static), as tap.h is: one test program each. */
#ifndef DT_STORE_CONTRACT_H
#define DT_STORE_CONTRACT_H

#include "store/store.h"
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#    define SANITIZED 1
#elif defined(__has_feature)
#    if __has_feature(address_sanitizer)
#        define SANITIZED 1
#    endif
#endif

/* The backend under test. */
struct store_fixture {
    /* Opens the store called name ("basic.db"): new the first time, the same store after,
     * from this or another connection. NULL with a message in err. */
    struct dt_store *(*open)(const char *name, dt_store_host_fn host_of, struct dt_buf *err);
    /* The rows of an SQL query on s's own connection, "a|b|c; ..." (static storage). */
    const char *(*sql)(struct dt_store *s, const char *sql);
};

static const struct store_fixture *fixture;
static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct dt_store_rule rule(const char *source, const char *target, int status)
{
    return (struct dt_store_rule){.source = source, .target = target, .status = status};
}

static struct dt_buf err;

static char *copy_text(const char *text)
{
    return dt_xstrndup(text, strlen(text));
}

static const char *errtext(void)
{
    return err.ptr && err.len ? err.ptr : "";
}

/* The host of a source as the rule codec says it (the store only stores what this says):
 * the part before the first '/' after an optional "scheme://". */
static size_t host_of(const char *source, char *out, size_t cap)
{
    if (source[0] == '/' || source[0] == '~')
        return 0;
    const char *sep = strstr(source, "://");
    const char *p = sep && sep < source + strcspn(source, "/") ? sep + 3 : source;
    size_t n = strcspn(p, "/");
    if (n > cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    return n;
}

/* Opens the store called name (new the first time, the same one after) with the backend
 * under test. */
static struct dt_store *open_store(const char *name)
{
    err.len = 0;
    struct dt_store *s = fixture->open(name, host_of, &err);
    if (!s)
        printf("# open %s: %s\n", name, errtext());
    return s;
}

/* The rows of a query on the store's own connection, "a|b|c; ...": the schema (rules rows
 * closed by version, versions, meta, bulk_pending) is part of what every backend keeps. */
static const char *sql_rows(struct dt_store *s, const char *sql)
{
    return fixture->sql(s, sql);
}

static void begin(struct dt_store *s, int64_t now)
{
    err.len = 0;
    int rc = dt_store_begin(s, now, "test", "", &err);
    if (rc)
        printf("# begin: %s\n", errtext());
}

static int64_t commit(struct dt_store *s)
{
    int64_t v = -1;
    err.len = 0;
    if (dt_store_commit(s, &v, &err) != 0)
        printf("# commit: %s\n", errtext());
    return v;
}

static int64_t add(struct dt_store *s, const char *source, const char *target, int status)
{
    struct dt_store_rule r = rule(source, target, status);
    int64_t id = -1;
    err.len = 0;
    if (dt_store_add(s, &r, &id, &err) != 0)
        printf("# add %s: %s\n", source, errtext());
    return id;
}

static int replace(struct dt_store *s, int64_t id, const char *source, const char *target,
                   int status)
{
    struct dt_store_rule r = rule(source, target, status);
    err.len = 0;
    return dt_store_replace(s, id, &r, &err);
}

static int remove_rule(struct dt_store *s, int64_t id)
{
    err.len = 0;
    return dt_store_remove(s, id, &err);
}

static int rollback(struct dt_store *s, int64_t v)
{
    err.len = 0;
    return dt_store_rollback(s, v, &err);
}

/* ---- collecting what the callbacks see ---------------------------------------------------- */

static void append_rule(struct dt_buf *b, const struct dt_store_rule *r)
{
    dt_buf_appendf(b, "%lld %s>%s %d", (long long)r->id, r->source, r->target, r->status);
    if (r->options[0])
        dt_buf_appendf(b, " [%s]", r->options);
    if (r->note[0])
        dt_buf_appendf(b, " #%s", r->note);
}

/* What a walk of rules saw: "1 /a>/b 307, 2 ...", and the last rule's numbers. */
struct seen {
    struct dt_buf text;
    int n;
    int stop_after; /* return 7 after this many (0: never) */
    struct dt_store_rule last;
};

static int see_rule(void *ctx, const struct dt_store_rule *r)
{
    struct seen *s = ctx;
    if (s->n++)
        dt_buf_append(&s->text, ", ", 2);
    append_rule(&s->text, r);
    dt_buf_terminate(&s->text);
    s->last = *r;
    s->last.source = s->last.target = s->last.options = s->last.note = NULL;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static void seen_reset(struct seen *s)
{
    s->text.len = 0;
    dt_buf_terminate(&s->text);
    s->n = 0;
    s->stop_after = 0;
    memset(&s->last, 0, sizeof(s->last));
}

static struct seen seen;

/* The rules of version v as text ("" for none; "ERR n" on a failure). */
static const char *rules_at(struct dt_store *s, int64_t v)
{
    seen_reset(&seen);
    int rc = dt_store_each(s, v, see_rule, &seen);
    if (rc) {
        seen.text.len = 0;
        dt_buf_appendf(&seen.text, "ERR %d", rc);
    }
    return seen.text.ptr;
}

/* One rule by id (its numbers in seen.last). */
static const char *get_rule(struct dt_store *s, int64_t id)
{
    seen_reset(&seen);
    int rc = dt_store_get(s, id, see_rule, &seen);
    if (rc) {
        seen.text.len = 0;
        dt_buf_appendf(&seen.text, "ERR %d", rc);
    }
    return seen.text.ptr;
}

/* Changes as text: "v3 changed 1 /a>/b 307 => /a>/c 307; ..." */
struct changes {
    struct dt_buf text;
    int n;
    int stop_after;
    int64_t at;
    const char *actor_seen;
    char actor[32];
};

static int see_change(void *ctx, const struct dt_store_change *c)
{
    struct changes *s = ctx;
    if (s->n++)
        dt_buf_append(&s->text, "; ", 2);
    dt_buf_appendf(&s->text, "v%lld %s ", (long long)c->version, c->kind);
    const struct dt_store_rule *any = c->new_rule ? c->new_rule : c->old_rule;
    if (!any || (c->old_rule && c->new_rule && c->old_rule->id != c->new_rule->id))
        dt_buf_appendf(&s->text, "(bad ids)");
    if (c->old_rule)
        append_rule(&s->text, c->old_rule);
    else
        dt_buf_appendf(&s->text, "%lld", (long long)c->new_rule->id);
    if (c->new_rule) {
        dt_buf_appendf(&s->text, " => ");
        append_rule(&s->text, c->new_rule);
    }
    bool kind_ok = strcmp(c->kind, "added") == 0     ? !c->old_rule && c->new_rule
                   : strcmp(c->kind, "removed") == 0 ? c->old_rule && !c->new_rule
                                                     : c->old_rule && c->new_rule;
    if (!kind_ok)
        dt_buf_appendf(&s->text, " (kind does not fit)");
    dt_buf_terminate(&s->text);
    s->at = c->at;
    snprintf(s->actor, sizeof(s->actor), "%s", c->actor);
    return s->stop_after && s->n >= s->stop_after ? 9 : 0;
}

static struct changes changes;

static void changes_reset(void)
{
    changes.text.len = 0;
    dt_buf_terminate(&changes.text);
    changes.n = 0;
    changes.stop_after = 0;
}

static const char *pending(struct dt_store *s)
{
    changes_reset();
    int rc = dt_store_pending(s, see_change, &changes);
    if (rc) {
        changes.text.len = 0;
        dt_buf_appendf(&changes.text, "ERR %d", rc);
        dt_buf_terminate(&changes.text);
    }
    return changes.text.ptr;
}

static const char *history(struct dt_store *s, int64_t id, int64_t before, size_t limit)
{
    changes_reset();
    int rc = dt_store_history(s, id, before, limit, see_change, &changes);
    if (rc) {
        changes.text.len = 0;
        dt_buf_appendf(&changes.text, "ERR %d", rc);
        dt_buf_terminate(&changes.text);
    }
    return changes.text.ptr;
}

static struct dt_buf versions_text;

static int see_version(void *ctx, const struct dt_store_version *v)
{
    (void)ctx;
    if (versions_text.len)
        dt_buf_append(&versions_text, "; ", 2);
    dt_buf_appendf(&versions_text, "v%lld @%lld %s '%s' +%lld ~%lld -%lld", (long long)v->version,
                   (long long)v->at, v->actor, v->comment, (long long)v->added,
                   (long long)v->changed, (long long)v->removed);
    dt_buf_terminate(&versions_text);
    return 0;
}

static const char *versions(struct dt_store *s, int64_t before, size_t limit)
{
    versions_text.len = 0;
    dt_buf_terminate(&versions_text);
    int rc = dt_store_versions(s, before, limit, see_version, NULL);
    if (rc)
        dt_buf_appendf(&versions_text, "ERR %d", rc);
    return versions_text.ptr;
}

static int64_t list_total;

static const char *list(struct dt_store *s, const struct dt_store_query *q)
{
    seen_reset(&seen);
    list_total = -1;
    int rc = dt_store_list(s, q, see_rule, &seen, &list_total);
    if (rc) {
        seen.text.len = 0;
        dt_buf_appendf(&seen.text, "ERR %d", rc);
    }
    return seen.text.ptr;
}

static void test_outside_transaction(void)
{
    struct dt_store *s = open_store("outside.db");
    if (!ok(s != NULL, "open"))
        return;
    struct dt_store_rule r = rule("/a", "/b", 307);
    int64_t id = 0, v = 0;
    err.len = 0;
    is_int(dt_store_add(s, &r, &id, &err), DT_EINVAL, "add outside a transaction: DT_EINVAL");
    ok(strstr(errtext(), "no transaction") != NULL, "with a message saying so");
    is_int(replace(s, 1, "/a", "/b", 307), DT_EINVAL, "replace outside: DT_EINVAL");
    ok(err.len > 0, "replace: a message");
    is_int(remove_rule(s, 1), DT_EINVAL, "remove outside: DT_EINVAL");
    ok(err.len > 0, "remove: a message");
    is_int(rollback(s, 0), DT_EINVAL, "rollback outside: DT_EINVAL");
    ok(err.len > 0, "rollback: a message");
    err.len = 0;
    is_int(dt_store_commit(s, &v, &err), DT_EINVAL, "commit outside: DT_EINVAL");
    ok(err.len > 0, "commit: a message");
    is_str(pending(s), "ERR -2", "pending outside: DT_EINVAL");
    ok(strstr(dt_store_error(s), "no transaction") != NULL, "dt_store_error tells why");
    dt_store_abort(s); /* nothing to abort: harmless */
    is_int(dt_store_version(s), 0, "nothing was written");

    begin(s, 10);
    err.len = 0;
    is_int(dt_store_begin(s, 10, "test", "", &err), DT_EINVAL, "begin twice: DT_EINVAL");
    ok(strstr(errtext(), "already open") != NULL, "with a message");
    is_str(pending(s), "", "the first transaction is still open");
    dt_store_abort(s);
    dt_store_close(s);
}

static void test_add_and_read(void)
{
    struct dt_store *s = open_store("basic.db");
    if (!ok(s != NULL, "open"))
        return;
    err.len = 0;
    is_int(dt_store_begin(s, 1000, "api", "first", &err), 0, "begin");
    is_int(add(s, "/a", "/a1", 307), 1, "ids start at 1");
    struct dt_store_rule r = rule("b.example/x", "/b1", 301);
    r.options = "query=drop cache=60";
    r.note = "a note";
    int64_t id = 0;
    is_int(dt_store_add(s, &r, &id, &err), 0, "add with options and a note");
    is_int(id, 2, "second id");
    is_int(add(s, "https://c.example/y", "/c1", 308), 3, "third id");
    is_int(dt_store_version(s), 0, "the version is the committed one during a transaction");
    is_int(dt_store_count(s), 3, "count sees the transaction's rules");
    is_str(get_rule(s, 2), "2 b.example/x>/b1 301 [query=drop cache=60] #a note",
           "a transaction sees its own writes");
    is_int(seen.last.version, 1, "the row's version is the one being written");
    is_str(pending(s),
           "v1 added 1 => 1 /a>/a1 307; v1 added 2 => 2 b.example/x>/b1 301 "
           "[query=drop cache=60] #a note; v1 added 3 => 3 https://c.example/y>/c1 308",
           "pending: three rules added, in order of id");
    is_int(changes.at, 1000, "pending: at is the transaction's now");
    is_str(changes.actor, "api", "pending: actor");

    r = rule("/a", "/other", 302);
    id = 99;
    err.len = 0;
    is_int(dt_store_add(s, &r, &id, &err), DT_EEXIST, "a second rule for /a: DT_EEXIST");
    ok(strstr(errtext(), "rule 1") && strstr(errtext(), "/a"), "the message names the rule");
    is_int(id, 99, "no id is set on failure");
    r = rule("/bad", "/x", 200);
    err.len = 0;
    is_int(dt_store_add(s, &r, &id, &err), DT_EINVAL, "status 200: DT_EINVAL");
    ok(strstr(errtext(), "200") != NULL, "the message names the status");
    r = rule(NULL, "/x", 307);
    is_int(dt_store_add(s, &r, &id, &err), DT_EINVAL, "no source: DT_EINVAL");
    r = rule("", "/x", 307);
    is_int(dt_store_add(s, &r, &id, &err), DT_EINVAL, "empty source: DT_EINVAL");
    r = rule("/x", NULL, 307);
    is_int(dt_store_add(s, &r, &id, &err), DT_EINVAL, "no target: DT_EINVAL");
    is_int(dt_store_add(s, NULL, &id, &err), DT_EINVAL, "no rule: DT_EINVAL");
    char *big = dt_xmalloc(DT_STORE_TEXT_MAX + 2);
    memset(big, 'n', DT_STORE_TEXT_MAX + 1);
    big[DT_STORE_TEXT_MAX + 1] = '\0';
    r = rule("/big", "/x", 307);
    r.note = big;
    err.len = 0;
    is_int(dt_store_add(s, &r, &id, &err), DT_ELIMIT, "a note over the limit: DT_ELIMIT");
    ok(strstr(errtext(), "note") != NULL, "the message names the field");
    free(big);
    is_int(add(s, "/d", "/d1", 307), 4, "the transaction goes on after refused writes");

    is_int(commit(s), 1, "commit: version 1");
    is_int(dt_store_version(s), 1, "version 1");
    is_int(dt_store_count(s), 4, "four rules");
    is_str(versions(s, 0, 0), "v1 @1000 api 'first' +4 ~0 -0", "the version's row");

    is_str(get_rule(s, 1), "1 /a>/a1 307", "get");
    is_int(seen.last.created, 1000, "created");
    is_int(seen.last.updated, 1000, "updated");
    is_int(seen.last.since, 1000, "S10: since is now for a 307");
    is_int(seen.last.version, 1, "version");
    get_rule(s, 2);
    is_int(seen.last.since, 0, "S10: since is 0 for a 301");
    is_str(get_rule(s, 42), "ERR -5", "get a missing id: DT_ENOENT");
    seen_reset(&seen);
    is_int(dt_store_find(s, "b.example/x", see_rule, &seen), 0, "find by source");
    is_int(seen.last.id, 2, "find: the rule");
    is_int(dt_store_find(s, "/nope", see_rule, &seen), DT_ENOENT, "find a missing source");
    is_int(dt_store_find(s, NULL, see_rule, &seen), DT_ENOENT, "find NULL");
    seen_reset(&seen);
    seen.stop_after = 1;
    is_int(dt_store_get(s, 1, see_rule, &seen), 7, "get returns the callback's value");
    is_str(rules_at(s, 1),
           "1 /a>/a1 307, 2 b.example/x>/b1 301 [query=drop cache=60] #a note, "
           "3 https://c.example/y>/c1 308, 4 /d>/d1 307",
           "each(1)");
    char *v1 = copy_text(rules_at(s, 1));
    is_str(rules_at(s, 0), v1, "each(0) is the newest");
    free(v1);
    seen_reset(&seen);
    seen.stop_after = 2;
    is_int(dt_store_each(s, 0, see_rule, &seen), 7, "each stops at the callback's value");
    is_int(seen.n, 2, "after two rules");
    is_str(rules_at(s, 2), "ERR -5", "each(2): no such version");

    /* Replace and remove. */
    begin(s, 2000);
    is_int(replace(s, 99, "/z", "/z", 307), DT_ENOENT, "replace a missing id: DT_ENOENT");
    ok(strstr(errtext(), "99") != NULL, "the message names the id");
    is_int(replace(s, 1, "b.example/x", "/a1", 307), DT_EEXIST,
           "replace onto another rule's source: DT_EEXIST");
    ok(strstr(errtext(), "rule 2") != NULL, "the message names the other rule");
    is_int(replace(s, 1, "/a", "/a1", 307), 0, "replace with the same content");
    is_str(pending(s), "", "is no change");
    struct dt_store_rule same = rule("b.example/x", "/b1", 301);
    same.options = "query=drop cache=60";
    same.note = "a note";
    err.len = 0;
    is_int(dt_store_replace(s, 2, &same, &err), 0, "the same with options and note");
    is_str(pending(s), "", "no change either");
    same.note = "another note";
    is_int(dt_store_replace(s, 2, &same, &err), 0, "only the note differs");
    is_str(pending(s),
           "v2 changed 2 b.example/x>/b1 301 [query=drop cache=60] #a note => 2 "
           "b.example/x>/b1 301 [query=drop cache=60] #another note",
           "a note is content");
    same.note = "a note";
    is_int(dt_store_replace(s, 2, &same, &err), 0, "and back");
    is_str(pending(s), "", "changed and back is no change");
    is_int(commit(s), 1, "a transaction that changed nothing commits no version");
    is_str(versions(s, 0, 0), "v1 @1000 api 'first' +4 ~0 -0", "still one version");

    begin(s, 2000);
    is_int(replace(s, 1, "/a", "/a2", 307), 0, "replace the target");
    is_int(replace(s, 3, "https://c.example/y", "/c1", 308), 0, "an identical replace");
    is_int(remove_rule(s, 4), 0, "remove");
    is_int(remove_rule(s, 4), DT_ENOENT, "remove it again: DT_ENOENT");
    ok(strstr(errtext(), "4") != NULL, "the message names the id");
    is_int(remove_rule(s, 77), DT_ENOENT, "remove a missing id: DT_ENOENT");
    is_int(replace(s, 4, "/d", "/d2", 307), DT_ENOENT, "replace a removed rule: DT_ENOENT");
    is_str(get_rule(s, 4), "ERR -5", "the removed rule is gone in the transaction");
    is_str(pending(s), "v2 changed 1 /a>/a1 307 => 1 /a>/a2 307; v2 removed 4 /d>/d1 307",
           "pending: one change, one removal");
    is_int(commit(s), 2, "version 2");
    is_str(versions(s, 0, 0), "v2 @2000 test '' +0 ~1 -1; v1 @1000 api 'first' +4 ~0 -0",
           "versions, newest first, with counts");
    is_str(get_rule(s, 1), "1 /a>/a2 307", "the new content");
    is_int(seen.last.created, 1000, "created kept across replace");
    is_int(seen.last.updated, 2000, "updated is now");
    is_int(seen.last.since, 1000, "S10: still 307, since kept");
    is_int(seen.last.version, 2, "written by version 2");
    get_rule(s, 3);
    is_int(seen.last.version, 1, "an identical replace wrote no row");
    is_str(rules_at(s, 1),
           "1 /a>/a1 307, 2 b.example/x>/b1 301 [query=drop cache=60] #a note, "
           "3 https://c.example/y>/c1 308, 4 /d>/d1 307",
           "version 1 reads as it was");
    is_str(rules_at(s, 2),
           "1 /a>/a2 307, 2 b.example/x>/b1 301 [query=drop cache=60] #a note, "
           "3 https://c.example/y>/c1 308",
           "version 2");
    is_str(sql_rows(s, "SELECT rid, target, v_from, coalesce(v_to, 'NULL') FROM rules"
                       " ORDER BY row_id"),
           "1|/a1|1|2; 2|/b1|1|NULL; 3|/c1|1|NULL; 4|/d1|1|2; 1|/a2|2|NULL",
           "rows are closed, never changed");
    is_int(dt_store_find(s, "/d", see_rule, &seen), DT_ENOENT, "find a removed rule");
    begin(s, 2500);
    is_int(add(s, "/d", "/d3", 307), 5, "a removed rule's source can be used again, new id");
    is_int(commit(s), 3, "version 3");
    dt_store_close(s);
}

/* S10: since is when a rule began to answer 307. */
static void test_since(void)
{
    struct dt_store *s = open_store("since.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 100);
    int64_t a = add(s, "/a", "/a1", 307), b = add(s, "/b", "/b1", 301);
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 100, "S10: added as 307: since = now");
    get_rule(s, b);
    is_int(seen.last.since, 0, "S10: added as 301: since 0");

    begin(s, 200);
    replace(s, a, "/a", "/a2", 307);
    replace(s, b, "/b", "/b1", 307);
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 100, "S10: a 307 whose target changes keeps since");
    is_int(seen.last.updated, 200, "updated = now");
    get_rule(s, b);
    is_int(seen.last.since, 200, "S10: 301 -> 307: since = now");

    begin(s, 300);
    replace(s, a, "/a", "/a2", 308);
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 0, "S10: 307 -> 308: since 0");
    begin(s, 400);
    replace(s, a, "/a", "/a2", 307);
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 400, "S10: back to 307: since starts again");
    begin(s, 450);
    struct dt_store_rule r = rule("/a", "/a2", 307);
    r.options = "cache=5";
    err.len = 0;
    is_int(dt_store_replace(s, a, &r, &err), 0, "options change");
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 400, "S10: a 307 whose options change keeps since");

    /* Inside one transaction only its net effect counts: a 307 briefly made 301 never
     * answered 301. */
    begin(s, 500);
    replace(s, a, "/a", "/a3", 301);
    get_rule(s, a);
    is_int(seen.last.since, 0, "inside the transaction: 301, since 0");
    replace(s, a, "/a", "/a4", 307);
    get_rule(s, a);
    is_int(seen.last.since, 400, "S10: 307 -> 301 -> 307 in one transaction keeps since");
    is_str(pending(s), "v6 changed 1 /a>/a2 307 [cache=5] => 1 /a>/a4 307",
           "pending compares with the last version, not the steps");
    commit(s);
    get_rule(s, a);
    is_int(seen.last.since, 400, "and so after commit");
    is_int(seen.last.created, 100, "created kept throughout");
    dt_store_close(s);
}

static void test_noop_and_abort(void)
{
    struct dt_store *s = open_store("noop.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 10);
    int64_t a = add(s, "/a", "/a1", 307);
    is_int(commit(s), 1, "version 1");

    begin(s, 20);
    is_int(commit(s), 1, "an empty transaction commits no version");
    begin(s, 20);
    int64_t x = add(s, "/x", "/x1", 307);
    is_int(x, 2, "add /x");
    is_int(remove_rule(s, x), 0, "and remove it");
    is_str(pending(s), "", "added and removed: no change");
    is_int(commit(s), 1, "no version");
    begin(s, 20);
    replace(s, a, "/a", "/a2", 302);
    replace(s, a, "/a", "/a1", 307);
    is_str(pending(s), "", "replaced and back: no change");
    is_int(remove_rule(s, a), 0, "then removed");
    is_str(pending(s), "v2 removed 1 /a>/a1 307", "pending: removed");
    is_int(commit(s), 2, "version 2");
    is_str(versions(s, 0, 1), "v2 @20 test '' +0 ~0 -1", "one removal");
    is_str(sql_rows(s, "SELECT count(*) FROM rules"), "1",
           "rows written and undone in a transaction leave nothing");

    begin(s, 30);
    is_int(add(s, "/y", "/y1", 307), 3, "ids are never reused: an id added and removed is gone");
    is_int(commit(s), 3, "version 3");

    /* Abort leaves nothing. */
    char *before = copy_text(rules_at(s, 0));
    begin(s, 40);
    add(s, "/z", "/z1", 307);
    replace(s, 3, "/y", "/y2", 301);
    remove_rule(s, 3);
    rollback(s, 0);
    dt_store_abort(s);
    is_str(rules_at(s, 0), before, "abort: the rules are as before");
    is_int(dt_store_version(s), 3, "abort: no version");
    is_int(dt_store_count(s), 1, "abort: count as before");
    is_str(pending(s), "ERR -2", "abort: no transaction is open");
    dt_store_abort(s);
    begin(s, 50);
    is_int(add(s, "/z", "/z1", 307), 4, "a new transaction works after abort");
    is_int(commit(s), 4, "version 4");
    free(before);

    /* Close with a transaction open: it is abandoned. */
    begin(s, 60);
    add(s, "/w", "/w1", 307);
    dt_store_close(s);
    s = open_store("noop.db");
    if (!ok(s != NULL, "reopen"))
        return;
    is_int(dt_store_version(s), 4, "close abandons an open transaction");
    is_int(dt_store_find(s, "/w", see_rule, &seen), DT_ENOENT, "its rule is not there");
    dt_store_close(s);
}

static void test_rollback(void)
{
    struct dt_store *s = open_store("rollback.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 100); /* v1 */
    add(s, "/a", "/a1", 307);
    add(s, "/b", "/b1", 301);
    add(s, "/c", "/c1", 307);
    commit(s);
    begin(s, 200); /* v2 */
    replace(s, 1, "/a", "/a2", 307);
    remove_rule(s, 2);
    add(s, "/d", "/d1", 307);
    commit(s);
    begin(s, 300); /* v3: rule 3 moves from /c to /e, rule 5 takes /c */
    replace(s, 3, "/e", "/c1", 307);
    add(s, "/c", "/c5", 307);
    commit(s);
    begin(s, 400); /* v4 */
    remove_rule(s, 1);
    replace(s, 4, "/d", "/d1", 301);
    is_int(commit(s), 4, "four versions");
    char *v1 = copy_text(rules_at(s, 1));
    char *v4 = copy_text(rules_at(s, 4));
    is_str(v1, "1 /a>/a1 307, 2 /b>/b1 301, 3 /c>/c1 307", "version 1");
    is_str(v4, "3 /e>/c1 307, 4 /d>/d1 301, 5 /c>/c5 307", "version 4");

    begin(s, 500);
    is_int(rollback(s, 99), DT_ENOENT, "rollback to a version that never was: DT_ENOENT");
    ok(strstr(errtext(), "99") != NULL, "the message names it");
    is_int(rollback(s, 5), DT_ENOENT, "nor to the version being written");
    is_int(rollback(s, -1), DT_ENOENT, "nor to a negative one");
    is_int(rollback(s, 1), 0, "rollback to version 1");
    is_str(rules_at(s, 0), v1, "the rules are those of version 1, with their ids");
    is_str(pending(s),
           "v5 added 1 => 1 /a>/a1 307; v5 added 2 => 2 /b>/b1 301; "
           "v5 changed 3 /e>/c1 307 => 3 /c>/c1 307; v5 removed 4 /d>/d1 301; "
           "v5 removed 5 /c>/c5 307",
           "pending: back, changed back, and removed, in order of id");
    is_int(commit(s), 5, "version 5");
    is_str(versions(s, 0, 1), "v5 @500 test '' +2 ~1 -2", "its counts");
    get_rule(s, 2);
    is_int(seen.last.created, 100, "a rule that comes back keeps created");
    is_int(seen.last.updated, 500, "updated is the rollback's time");
    is_int(seen.last.since, 0, "a 301 has no since");
    is_int(seen.last.version, 5, "written by the rollback");
    get_rule(s, 1);
    is_int(seen.last.since, 500, "S10: a 307 that comes back starts its since again");
    get_rule(s, 3);
    is_int(seen.last.since, 100, "S10: a 307 that stayed 307 keeps since");
    is_str(rules_at(s, 4), v4, "version 4 still reads as it was");

    begin(s, 600);
    is_int(rollback(s, 4), 0, "rollback of the rollback");
    is_int(commit(s), 6, "version 6");
    is_str(rules_at(s, 0), v4, "the rules are those of version 4 again");
    get_rule(s, 5);
    is_int(seen.last.created, 300, "rule 5 back with its created");

    begin(s, 700);
    is_int(rollback(s, 6), 0, "rollback to the current version");
    is_str(pending(s), "", "changes nothing");
    is_int(commit(s), 6, "and commits no version");

    begin(s, 700);
    is_int(rollback(s, 0), 0, "rollback to 0, the empty set");
    is_int(dt_store_count(s), 0, "no rules");
    is_int(commit(s), 7, "version 7");
    is_str(versions(s, 0, 1), "v7 @700 test '' +0 ~0 -3", "three removed");
    is_str(rules_at(s, 0), "", "empty");
    begin(s, 800);
    is_int(add(s, "/new", "/n", 307), 6, "ids are not reused after a rollback");
    is_int(rollback(s, 4), 0, "rollback in the same transaction as an add");
    is_str(rules_at(s, 0), v4, "the add is undone with the rest");
    is_int(commit(s), 8, "version 8");
    is_str(versions(s, 0, 1), "v8 @800 test '' +3 ~0 -0", "three back, the add never was");

    /* Undoing a transaction's own writes with a rollback to the current version. */
    begin(s, 900);
    replace(s, 3, "/e", "/e9", 302);
    remove_rule(s, 4);
    add(s, "/f", "/f1", 307);
    is_int(rollback(s, 8), 0, "rollback to the current version inside a transaction");
    is_str(pending(s), "", "undoes its writes");
    is_int(commit(s), 8, "no version");

    /* Sources that traded places roll back without colliding. */
    begin(s, 1000);
    int64_t x = add(s, "/s1", "/t1", 307), y = add(s, "/s2", "/t2", 307);
    int64_t k = commit(s);
    begin(s, 1100);
    replace(s, x, "/tmp", "/t1", 307);
    replace(s, y, "/s1", "/t2", 307);
    replace(s, x, "/s2", "/t1", 307);
    commit(s);
    seen_reset(&seen);
    is_int(dt_store_find(s, "/s1", see_rule, &seen), 0, "find /s1");
    is_int(seen.last.id, y, "the sources traded places");
    begin(s, 1200);
    is_int(rollback(s, k), 0, "rollback across the swap");
    is_int(commit(s), k + 2, "committed");
    seen_reset(&seen);
    is_int(dt_store_find(s, "/s1", see_rule, &seen), 0, "find /s1 again");
    is_int(seen.last.id, x, "/s1 is rule x again");
    free(v1);
    free(v4);
    dt_store_close(s);
}

/* A small history, checked whole: the versions above rules 1 to 3. */
static void test_history_and_versions(void)
{
    struct dt_store *s = open_store("history.db");
    if (!ok(s != NULL, "open"))
        return;
    err.len = 0;
    is_int(dt_store_begin(s, 100, "import", "initial", &err), 0, "begin");
    add(s, "/a", "/a1", 307);
    add(s, "/b", "/b1", 301);
    commit(s);
    is_int(dt_store_begin(s, 200, "api", "", &err), 0, "begin");
    replace(s, 1, "/a", "/a2", 307);
    add(s, "/c", "/c1", 308);
    commit(s);
    is_int(dt_store_begin(s, 300, "api", "cleanup", &err), 0, "begin");
    remove_rule(s, 2);
    replace(s, 3, "/c", "/c2", 308);
    commit(s);
    is_int(dt_store_begin(s, 400, "rollback", "to 1", &err), 0, "begin");
    is_int(rollback(s, 1), 0, "rollback");
    commit(s);

    const char *all = "v4 changed 1 /a>/a2 307 => 1 /a>/a1 307; v4 added 2 => 2 /b>/b1 301; "
                      "v4 removed 3 /c>/c2 308; "
                      "v3 removed 2 /b>/b1 301; v3 changed 3 /c>/c1 308 => 3 /c>/c2 308; "
                      "v2 changed 1 /a>/a1 307 => 1 /a>/a2 307; v2 added 3 => 3 /c>/c1 308; "
                      "v1 added 1 => 1 /a>/a1 307; v1 added 2 => 2 /b>/b1 301";
    is_str(history(s, 0, 0, 0), all, "history: newest version first, then by id");
    is_str(history(s, 0, 0, 4),
           "v4 changed 1 /a>/a2 307 => 1 /a>/a1 307; v4 added 2 => 2 /b>/b1 301; "
           "v4 removed 3 /c>/c2 308; v3 removed 2 /b>/b1 301",
           "limit counts changes, across versions");
    is_str(history(s, 0, 3, 0),
           "v2 changed 1 /a>/a1 307 => 1 /a>/a2 307; v2 added 3 => 3 /c>/c1 308; "
           "v1 added 1 => 1 /a>/a1 307; v1 added 2 => 2 /b>/b1 301",
           "before 3: versions 2 and 1");
    is_str(history(s, 0, 1, 0), "", "before 1: nothing");
    is_str(history(s, 2, 0, 0),
           "v4 added 2 => 2 /b>/b1 301; v3 removed 2 /b>/b1 301; v1 added 2 => 2 /b>/b1 301",
           "history of one rule: added, removed, back");
    is_str(history(s, 1, 0, 0),
           "v4 changed 1 /a>/a2 307 => 1 /a>/a1 307; v2 changed 1 /a>/a1 307 => 1 /a>/a2 307; "
           "v1 added 1 => 1 /a>/a1 307",
           "history of rule 1");
    is_str(history(s, 1, 4, 1), "v2 changed 1 /a>/a1 307 => 1 /a>/a2 307",
           "one rule, before and limit");
    is_str(history(s, 3, 0, 0),
           "v4 removed 3 /c>/c2 308; v3 changed 3 /c>/c1 308 => 3 /c>/c2 308; "
           "v2 added 3 => 3 /c>/c1 308",
           "history of rule 3");
    is_str(history(s, 42, 0, 0), "", "a rule that never was has no history");
    is_str(history(s, -1, 0, 0), "ERR -2", "a negative id: DT_EINVAL");
    history(s, 2, 0, 1);
    is_int(changes.at, 400, "a change's time is its version's");
    is_str(changes.actor, "rollback", "and so is its actor");
    changes_reset();
    changes.stop_after = 2;
    is_int(dt_store_history(s, 0, 0, 0, see_change, &changes), 9,
           "history returns the callback's value");
    is_int(changes.n, 2, "and stops there");
    changes_reset();
    changes.stop_after = 1;
    is_int(dt_store_history(s, 1, 0, 0, see_change, &changes), 9, "so does a rule's history");

    /* The history seen inside a transaction is that of the committed versions. */
    begin(s, 500);
    remove_rule(s, 1);
    is_str(history(s, 1, 0, 1), "v4 changed 1 /a>/a2 307 => 1 /a>/a1 307",
           "a rule's history leaves out the open transaction");
    is_str(history(s, 0, 0, 1), "v4 changed 1 /a>/a2 307 => 1 /a>/a1 307",
           "so does the whole history");
    dt_store_abort(s);

    is_str(versions(s, 0, 0),
           "v4 @400 rollback 'to 1' +1 ~1 -1; v3 @300 api 'cleanup' +0 ~1 -1; "
           "v2 @200 api '' +1 ~1 -0; v1 @100 import 'initial' +2 ~0 -0",
           "versions, newest first");
    is_str(versions(s, 0, 2), "v4 @400 rollback 'to 1' +1 ~1 -1; v3 @300 api 'cleanup' +0 ~1 -1",
           "a page of two");
    is_str(versions(s, 3, 2), "v2 @200 api '' +1 ~1 -0; v1 @100 import 'initial' +2 ~0 -0",
           "the next page: before 3");
    is_str(versions(s, 1, 2), "", "before 1: none");

    /* The audit view tells the same story in SQL. */
    is_str(sql_rows(s, "SELECT version, actor, kind, rid, coalesce(old_target, '-'),"
                       " coalesce(new_target, '-') FROM audit ORDER BY version DESC, rid"),
           "4|rollback|changed|1|/a2|/a1; 4|rollback|added|2|-|/b1; 4|rollback|removed|3|/c2|-; "
           "3|api|removed|2|/b1|-; 3|api|changed|3|/c1|/c2; "
           "2|api|changed|1|/a1|/a2; 2|api|added|3|-|/c1; "
           "1|import|added|1|-|/a1; 1|import|added|2|-|/b1",
           "the audit view");
    dt_store_close(s);
}

static void test_list(void)
{
    struct dt_store *s = open_store("list.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 1000);
    struct dt_store_rule r = rule("/docs/a", "/manual/a", 307);
    r.note = "Docs move";
    int64_t id;
    err.len = 0;
    is_int(dt_store_add(s, &r, &id, &err), 0, "add 1");
    add(s, "example.com/x", "/y", 301);                           /* 2 */
    add(s, "https://Example.COM/z", "https://example.org/", 308); /* 3 */
    add(s, "*.example.com/w", "/w", 307);                         /* 4 */
    add(s, "~^/item/([0-9]+)$", "/items/$1", 302);                /* 5 */
    add(s, "/gone", "/g", 307);                                   /* 6 */
    commit(s);
    begin(s, 2000);
    r = rule("/100%_off", "/sale", 307);
    r.note = "promo_2026";
    is_int(dt_store_add(s, &r, &id, &err), 0, "add 7");
    add(s, "http://shop.example.com", "/shop", 307); /* 8 */
    remove_rule(s, 6);
    commit(s);

    struct dt_store_query q = {0};
    is_str(list(s, &q),
           "1 /docs/a>/manual/a 307 #Docs move, 2 example.com/x>/y 301, "
           "3 https://Example.COM/z>https://example.org/ 308, 4 *.example.com/w>/w 307, "
           "5 ~^/item/([0-9]+)$>/items/$1 302, 7 /100%_off>/sale 307 #promo_2026, "
           "8 http://shop.example.com>/shop 307",
           "no filter: every current rule, in order of id");
    is_int(list_total, 7, "total");
    seen_reset(&seen);
    is_int(dt_store_list(s, NULL, see_rule, &seen, NULL), 0, "no query, no total");
    is_int(seen.n, 7, "all seven");

    q = (struct dt_store_query){.text = "docs"};
    is_str(list(s, &q), "1 /docs/a>/manual/a 307 #Docs move", "text in the source");
    q.text = "MANUAL";
    is_str(list(s, &q), "1 /docs/a>/manual/a 307 #Docs move", "text in the target, any case");
    q.text = "move";
    is_str(list(s, &q), "1 /docs/a>/manual/a 307 #Docs move", "text in the note");
    q.text = "example";
    list(s, &q);
    is_int(list_total, 4, "text: four rules name example");
    q.text = "%";
    is_str(list(s, &q), "7 /100%_off>/sale 307 #promo_2026", "'%' is literal");
    q.text = "_";
    is_str(list(s, &q), "7 /100%_off>/sale 307 #promo_2026", "'_' is literal");
    q.text = "\\";
    is_str(list(s, &q), "", "'\\' is literal");
    q.text = "/g";
    is_str(list(s, &q), "", "removed rules are not listed");
    is_int(list_total, 0, "total 0");

    q = (struct dt_store_query){.host = "example.com"};
    is_str(list(s, &q), "2 example.com/x>/y 301, 3 https://Example.COM/z>https://example.org/ 308",
           "host: host/path and scheme://host/path, any case");
    q.host = "EXAMPLE.com";
    list(s, &q);
    is_int(list_total, 2, "the query's host in any case");
    q.host = "*.example.com";
    is_str(list(s, &q), "4 *.example.com/w>/w 307", "a wildcard host is a host of its own");
    q.host = "shop.example.com";
    is_str(list(s, &q), "8 http://shop.example.com>/shop 307", "a source without a path");
    q.host = "example.org";
    is_str(list(s, &q), "", "a target's host is not a source's host");
    q.host = "/docs";
    is_str(list(s, &q), "", "rules for any host have no host");

    q = (struct dt_store_query){.status = 307};
    list(s, &q);
    is_int(list_total, 4, "status 307: four rules");
    q.status = 302;
    is_str(list(s, &q), "5 ~^/item/([0-9]+)$>/items/$1 302", "status 302");
    q = (struct dt_store_query){.host = "example.com", .status = 301};
    is_str(list(s, &q), "2 example.com/x>/y 301", "host and status");
    q = (struct dt_store_query){.older_than = 1500};
    is_str(list(s, &q), "1 /docs/a>/manual/a 307 #Docs move, 4 *.example.com/w>/w 307",
           "S10: 307s in place since before 1500");
    q.older_than = 1000;
    is_str(list(s, &q), "", "older_than is strict");
    q.older_than = 2001;
    list(s, &q);
    is_int(list_total, 4, "every 307 is older than 2001");
    q = (struct dt_store_query){.older_than = 3000, .status = 301};
    is_str(list(s, &q), "", "older_than only lists 307s");

    q = (struct dt_store_query){.limit = 3};
    is_str(list(s, &q),
           "1 /docs/a>/manual/a 307 #Docs move, 2 example.com/x>/y 301, "
           "3 https://Example.COM/z>https://example.org/ 308",
           "page 1");
    is_int(list_total, 7, "total counts every page");
    q.after_id = seen.last.id;
    is_str(list(s, &q),
           "4 *.example.com/w>/w 307, 5 ~^/item/([0-9]+)$>/items/$1 302, "
           "7 /100%_off>/sale 307 #promo_2026",
           "page 2: after id 3");
    q.after_id = seen.last.id;
    is_str(list(s, &q), "8 http://shop.example.com>/shop 307", "page 3");
    q.after_id = 8;
    is_str(list(s, &q), "", "after the last");
    is_int(list_total, 7, "total still 7");
    q = (struct dt_store_query){.text = "example", .limit = 2, .after_id = 2};
    is_str(list(s, &q),
           "3 https://Example.COM/z>https://example.org/ 308, 4 *.example.com/w>/w 307",
           "a filtered page");
    is_int(list_total, 4, "its total");
    q = (struct dt_store_query){.limit = 2};
    seen_reset(&seen);
    seen.stop_after = 1;
    is_int(dt_store_list(s, &q, see_rule, &seen, &list_total), 7,
           "list returns the callback's"
           " value");

    /* The transaction's view. */
    begin(s, 3000);
    remove_rule(s, 2);
    q = (struct dt_store_query){.host = "example.com"};
    is_str(list(s, &q), "3 https://Example.COM/z>https://example.org/ 308",
           "a transaction lists its own view");
    dt_store_abort(s);
    dt_store_close(s);
}

static int nested_get(void *ctx, const struct dt_store_rule *r)
{
    struct dt_store *s = ctx;
    struct seen inner = {0};
    int rc = dt_store_get(s, r->id, see_rule, &inner);
    is_int(rc, 0, "a callback may call dt_store_get");
    is_str(inner.text.ptr, "1 /a>/b 307", "and sees the rule");
    dt_buf_dispose(&inner.text);
    is_int(dt_store_count(s), 1, "a callback may call dt_store_count");
    is_int(dt_store_each(s, 0, see_rule, &inner), DT_EINVAL, "not dt_store_each");
    is_int(dt_store_list(s, NULL, see_rule, &inner, NULL), DT_EINVAL, "nor dt_store_list");
    err.len = 0;
    is_int(dt_store_begin(s, 1, "x", "", &err), DT_EINVAL, "nor dt_store_begin");
    ok(strstr(errtext(), "callback") != NULL, "which says why");
    return 0;
}

static int nested_write(void *ctx, const struct dt_store_change *c)
{
    struct dt_store *s = ctx;
    (void)c;
    is_int(remove_rule(s, 1), DT_EINVAL, "a pending callback cannot write");
    int64_t v;
    err.len = 0;
    is_int(dt_store_commit(s, &v, &err), DT_EINVAL, "nor commit");
    return 0;
}

static int get_in_get(void *ctx, const struct dt_store_rule *r)
{
    struct dt_store *s = ctx;
    struct seen inner = {0};
    is_int(dt_store_get(s, r->id, see_rule, &inner), DT_EINVAL,
           "dt_store_get from its own callback: DT_EINVAL");
    is_int(dt_store_find(s, r->source, see_rule, &inner), 0,
           "dt_store_find from a dt_store_get callback works");
    is_str(inner.text.ptr, "1 /a>/b 307", "and sees the rule");
    is_str(r->source, "/a", "the outer call's rule is intact");
    dt_buf_dispose(&inner.text);
    return 0;
}

static void test_callbacks(void)
{
    struct dt_store *s = open_store("callbacks.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 1);
    add(s, "/a", "/b", 307);
    is_int(dt_store_pending(s, nested_write, s), 0, "pending with a callback that writes");
    commit(s);
    is_int(dt_store_list(s, NULL, nested_get, s, NULL), 0, "list with a nested get");
    is_int(dt_store_get(s, 1, get_in_get, s), 0, "get with a nested get and find");
    is_int(dt_store_version(s), 1, "the store works after");
    dt_store_close(s);
}

static void test_reopen(void)
{
    struct dt_store *s = open_store("reopen.db");
    if (!ok(s != NULL, "open"))
        return;
    err.len = 0;
    is_int(dt_store_begin(s, 100, "api", "one", &err), 0, "begin");
    add(s, "/a", "/a1", 307);
    add(s, "h.example/b", "/b1", 301);
    int64_t gone = add(s, "/c", "/c1", 307);
    commit(s);
    begin(s, 200);
    replace(s, 1, "/a", "/a2", 308);
    remove_rule(s, gone);
    commit(s);
    char *rules = copy_text(rules_at(s, 0));
    char *hist = copy_text(history(s, 0, 0, 0));
    char *vers = copy_text(versions(s, 0, 0));
    dt_store_close(s);

    s = open_store("reopen.db");
    if (!ok(s != NULL, "reopen"))
        return;
    is_int(dt_store_version(s), 2, "version kept");
    is_str(rules_at(s, 0), rules, "rules kept");
    is_str(rules_at(s, 1), "1 /a>/a1 307, 2 h.example/b>/b1 301, 3 /c>/c1 307",
           "old versions kept");
    is_str(history(s, 0, 0, 0), hist, "history kept");
    is_str(versions(s, 0, 0), vers, "versions kept");
    struct dt_store_query q = {.host = "h.example"};
    is_str(list(s, &q), "2 h.example/b>/b1 301", "the host column kept");
    begin(s, 300);
    is_int(add(s, "/d", "/d1", 307), 4, "the next id is kept (3 was removed, not reused)");
    commit(s);
    free(rules);
    free(hist);
    free(vers);
    dt_store_close(s);
}

/* The cost of big transactions. Printed, not asserted: the machine decides. */
static void test_timing(void)
{
#ifdef SANITIZED
    const int64_t big = 200000; /* a sanitized build is several times slower */
#else
    const int64_t big = 1000000;
#endif
    char src[64], tgt[64];
    struct dt_store *s = open_store("timing100k.db");
    if (!ok(s != NULL, "open"))
        return;
    double t0 = seconds();
    begin(s, 1);
    int failed = 0;
    for (int64_t i = 0; i < 100000; i++) {
        snprintf(src, sizeof(src), "shop%lld.example/p/%lld", (long long)(i % 97), (long long)i);
        snprintf(tgt, sizeof(tgt), "/new/%lld", (long long)i);
        struct dt_store_rule r = rule(src, tgt, i % 5 ? 307 : 301);
        failed += dt_store_add(s, &r, NULL, &err) != 0;
    }
    double t1 = seconds();
    is_int(commit(s), 1, "100,000 adds commit as version 1");
    double t2 = seconds();
    is_int(failed, 0, "every add succeeded");
    printf("# 100,000 adds in one transaction: %.3f s (commit %.3f s)\n", t1 - t0, t2 - t1);
    is_int(dt_store_count(s), 100000, "100,000 rules");
    dt_store_close(s);

    s = open_store("timing1m.db");
    if (!ok(s != NULL, "open"))
        return;
    t0 = seconds();
    begin(s, 1);
    failed = 0;
    for (int64_t i = 0; i < big; i++) {
        snprintf(src, sizeof(src), "shop%lld.example/p/%lld", (long long)(i % 97), (long long)i);
        snprintf(tgt, sizeof(tgt), "/new/%lld", (long long)i);
        struct dt_store_rule r = rule(src, tgt, 307);
        failed += dt_store_add(s, &r, NULL, &err) != 0;
    }
    t1 = seconds();
    is_int(commit(s), 1, "the big import commits");
    t2 = seconds();
    is_int(failed, 0, "every add succeeded");
    printf("# %lld adds in one transaction: %.3f s (commit %.3f s)\n", (long long)big, t1 - t0,
           t2 - t1);

    t0 = seconds();
    begin(s, 2);
    failed = 0;
    for (int64_t i = 0; i < big; i++) {
        snprintf(src, sizeof(src), "shop%lld.example/p/%lld", (long long)(i % 97), (long long)i);
        snprintf(tgt, sizeof(tgt), "/newer/%lld", (long long)i);
        struct dt_store_rule r = rule(src, tgt, 307);
        failed += dt_store_replace(s, i + 1, &r, &err) != 0;
    }
    t1 = seconds();
    is_int(commit(s), 2, "the big replace commits");
    t2 = seconds();
    is_int(failed, 0, "every replace succeeded");
    printf("# %lld replaces in one transaction: %.3f s (commit %.3f s)\n", (long long)big, t1 - t0,
           t2 - t1);
    is_str(versions(s, 0, 1),
           big == 1000000 ? "v2 @2 test '' +0 ~1000000 -0" : "v2 @2 test '' +0 ~200000 -0",
           "its counts");

    t0 = seconds();
    int64_t n = dt_store_count(s);
    t1 = seconds();
    is_int(n, big, "count");
    printf("# count of %lld rules: %.3f s\n", (long long)big, t1 - t0);
    seen_reset(&seen);
    t0 = seconds();
    struct dt_store_query q = {.host = "shop5.example", .limit = 50};
    list(s, &q);
    t1 = seconds();
    is_int(seen.n, 50, "a page of one host");
    printf("# a page of 50 of host shop5.example (%lld rules) with its total: %.3f s\n",
           (long long)list_total, t1 - t0);
    q = (struct dt_store_query){.text = "/p/12345", .limit = 50};
    t0 = seconds();
    list(s, &q);
    t1 = seconds();
    printf("# a text search over %lld rules (%lld matches): %.3f s\n", (long long)big,
           (long long)list_total, t1 - t0);
    t0 = seconds();
    history(s, 0, 0, 50);
    t1 = seconds();
    is_int(changes.n, 50, "a page of the history");
    printf("# the newest 50 changes: %.4f s\n", t1 - t0);

    t0 = seconds();
    begin(s, 3);
    is_int(rollback(s, 1), 0, "roll the big replace back");
    t1 = seconds();
    is_int(commit(s), 3, "and commit");
    t2 = seconds();
    printf("# rollback of %lld changes: %.3f s (commit %.3f s)\n", (long long)big, t1 - t0,
           t2 - t1);
    snprintf(tgt, sizeof(tgt), "%lld shop%lld.example/p/%lld>/new/%lld 307", (long long)big,
             (long long)((big - 1) % 97), (long long)(big - 1), (long long)(big - 1));
    is_str(get_rule(s, big), tgt, "the last rule is back as it was");
    t0 = seconds();
    seen_reset(&seen);
    int rc = dt_store_each(s, 2, see_rule, &seen);
    t1 = seconds();
    is_int(rc, 0, "each of an old version");
    is_int(seen.n, big, "has every rule");
    printf("# reading version 2 of 3 (%lld rules): %.3f s\n", (long long)big, t1 - t0);
    dt_store_close(s);
}

/* dt_store_put: an import's write, one lookup by source: adds, replaces keeping the note,
 * leaves what is the same, says when the source was put before in the transaction. */
static void test_put(void)
{
    struct dt_store *s = open_store("put.db");
    if (!ok(s != NULL, "open"))
        return;
    begin(s, 10);
    struct dt_store_rule r = rule("/a", "/a1", 307);
    r.note = "kept";
    int64_t id = 0;
    bool again = true;
    is_int(dt_store_put(s, &r, &id, &again, &err), 0, "put: a new source is added");
    ok(id == 1 && !again, "put: its id; not put before");
    is_int(dt_store_put(s, &r, &id, &again, &err), 0, "put: the same source again");
    ok(id == 1 && again, "put: the rule this transaction wrote");
    struct dt_store_rule b = rule("/b", "/b1", 301);
    is_int(dt_store_put(s, &b, &id, NULL, &err), 0, "put: a NULL note for a new rule");
    is_int(commit(s), 1, "version 1");
    is_str(get_rule(s, 1), "1 /a>/a1 307 #kept", "the note as given");

    begin(s, 20);
    struct dt_store_rule same = rule("/a", "/a1", 307);
    is_int(dt_store_put(s, &same, &id, &again, &err), 0, "put: what is there");
    ok(id == 1 && !again, "put: the rule of the last version");
    is_str(pending(s), "", "put of what is there, the note kept: no change");
    struct dt_store_rule chg = rule("/a", "/a2", 302);
    is_int(dt_store_put(s, &chg, &id, &again, &err), 0, "put: a new target and status");
    is_str(pending(s), "v2 changed 1 /a>/a1 307 #kept => 1 /a>/a2 302 #kept",
           "replaced, the note kept");
    struct dt_store_rule back = rule("/a", "/a1", 307);
    is_int(dt_store_put(s, &back, &id, &again, &err), 0, "put: back as it was");
    ok(again, "put: again within the transaction");
    is_str(pending(s), "", "changed and back: no change");
    struct dt_store_rule bad = rule("/a", "/a3", 200);
    is_int(dt_store_put(s, &bad, &id, &again, &err), DT_EINVAL, "put: a bad status refused");
    dt_store_abort(s);
    is_int(dt_store_put(s, &chg, &id, &again, &err), DT_EINVAL, "put: no transaction");
    dt_store_close(s);
}

/* ---- bulk writes -------------------------------------------------------------------------- */

/* Every row of a store (but row_id), the versions and the next id, as text. */
static char *dump_store(struct dt_store *s)
{
    struct dt_buf b;
    dt_buf_init(&b);
    dt_buf_appendf(&b, "rules: %s\n",
                   sql_rows(s, "SELECT rid, source, host, target, status, options, note, created,"
                               " updated, since, v_from, v_to FROM rules ORDER BY rid, v_from"));
    dt_buf_appendf(&b, "versions: %s\n", sql_rows(s, "SELECT * FROM versions ORDER BY version"));
    dt_buf_appendf(&b, "meta: %s\n", sql_rows(s, "SELECT * FROM meta"));
    dt_buf_terminate(&b);
    return b.ptr;
}

static void append_full(struct dt_buf *b, const struct dt_store_rule *r)
{
    append_rule(b, r);
    dt_buf_appendf(b, " c%lld u%lld s%lld v%lld; ", (long long)r->created, (long long)r->updated,
                   (long long)r->since, (long long)r->version);
}

static int see_full(void *ctx, const struct dt_store_rule *r)
{
    append_full(ctx, r);
    return 0;
}

/* Every rule of a walk, copied (strings in mem). */
struct rule_list {
    struct dt_store_rule *r;
    size_t n, cap;
    struct dt_arena mem;
};

static int keep_rule(void *ctx, const struct dt_store_rule *r)
{
    struct rule_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->r = dt_xrealloc(l->r, l->cap * sizeof(*l->r));
    }
    struct dt_store_rule *k = &l->r[l->n++];
    *k = *r;
    k->source = dt_arena_strndup(&l->mem, r->source, strlen(r->source));
    k->target = dt_arena_strndup(&l->mem, r->target, strlen(r->target));
    k->options = dt_arena_strndup(&l->mem, r->options, strlen(r->options));
    k->note = dt_arena_strndup(&l->mem, r->note, strlen(r->note));
    return 0;
}

static uint64_t rnd_state = 42;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)(rnd_state >> 33) % n;
}

/* The same imports, through dt_store_put (as the admin API's small imports do) into one
 * store and through dt_store_bulk into another: the same versions, the same rule set, and
 * once settled the same rows. */
static void test_bulk_same_as_put(void)
{
    struct dt_store *a = open_store("bulk_put.db"), *b = open_store("bulk_bulk.db");
    if (!ok(a && b, "open two stores"))
        goto out;
    static const char *const targets[] = {"/t1", "/t2", "https://x.example/t3"};
    static const int statuses[] = {301, 302, 307, 308};
    static const char *const options[] = {"", "query=drop", "cache=60"};
    static const char *const notes[] = {NULL, "", "a note"};
    char sources[40][16];
    for (int i = 0; i < 40; i++)
        snprintf(sources[i], sizeof(sources[i]), "/p%d", i);
    int rounds = 150, same_rules = 0, same_rows = 0, same_versions = 0, counted = 0;
    for (int round = 1; round <= rounds; round++) {
        int64_t now = 1000 + 10 * round;
        size_t n = rnd(50);
        bool replace = rnd(3) == 0;
        struct dt_store_rule in[100];
        for (size_t i = 0; i < n; i++)
            in[i] = (struct dt_store_rule){.source = sources[rnd(40)],
                                           .target = targets[rnd(3)],
                                           .status = statuses[rnd(4)],
                                           .options = options[rnd(3)],
                                           .note = notes[rnd(3)]};
        /* one round in three: the rules as exported (in order of id; the quick way in
         * dt_store_bulk), some changed, maybe cut short, maybe with random ones after */
        struct rule_list ex = {0};
        dt_arena_init(&ex.mem, 4096);
        if (round % 3 == 0) {
            dt_store_each(a, 0, keep_rule, &ex);
            size_t cut = rnd(4) == 0 ? rnd((unsigned)ex.n + 1) : ex.n, extra = rnd(2) ? n : 0;
            n = 0;
            for (size_t k = 0; k < cut && n < 50; k++) {
                in[n] = ex.r[k];
                in[n].note = notes[rnd(3)];
                if (rnd(2))
                    in[n].target = targets[rnd(3)];
                if (rnd(4) == 0)
                    in[n].status = statuses[rnd(4)];
                n++;
            }
            for (size_t k = 0; k < extra && n < 100; k++)
                in[n++] = (struct dt_store_rule){.source = sources[rnd(40)],
                                                 .target = targets[rnd(3)],
                                                 .status = statuses[rnd(4)],
                                                 .options = options[rnd(3)],
                                                 .note = NULL};
        }
        /* a: dt_store_put of each, then the unnamed removed */
        begin(a, now);
        for (size_t i = 0; i < n; i++)
            if (dt_store_put(a, &in[i], NULL, NULL, &err) != 0)
                printf("# put: %s\n", errtext());
        if (replace) {
            int64_t ids[200];
            size_t nids = 0;
            struct rule_list cs = {0};
            dt_arena_init(&cs.mem, 4096);
            dt_store_each(a, 0, keep_rule, &cs);
            for (size_t k = 0; k < cs.n; k++) {
                bool named = false;
                for (size_t i = 0; i < n; i++)
                    named |= !strcmp(in[i].source, cs.r[k].source);
                if (!named && nids < 200)
                    ids[nids++] = cs.r[k].id;
            }
            free(cs.r);
            dt_arena_dispose(&cs.mem);
            for (size_t k = 0; k < nids; k++)
                remove_rule(a, ids[k]);
        }
        int64_t va = commit(a);
        /* b: one bulk write */
        begin(b, now);
        struct dt_store_bulk out;
        err.len = 0;
        if (dt_store_bulk(b, in, n, replace, &out, &err) != 0)
            printf("# bulk: %s\n", errtext());
        int64_t vb = commit(b);
        struct dt_buf ra, rb;
        dt_buf_init(&ra);
        dt_buf_init(&rb);
        dt_store_each(a, 0, see_full, &ra);
        for (size_t i = 0; i < out.n; i++)
            append_full(&rb, &out.rules[i]);
        dt_buf_terminate(&ra);
        dt_buf_terminate(&rb);
        bool rules_ok = va == vb && !strcmp(ra.ptr ? ra.ptr : "", rb.ptr ? rb.ptr : "");
        if (!rules_ok && same_rules == round - 1)
            printf("# round %d: put v%lld: %s\n#   bulk v%lld: %s\n", round, (long long)va,
                   ra.ptr ? ra.ptr : "", (long long)vb, rb.ptr ? rb.ptr : "");
        same_rules += rules_ok;
        size_t nchanged = 0;
        for (size_t i = 0; i < out.n; i++)
            nchanged += out.from[i] >= 0;
        counted += nchanged == (size_t)(out.added + out.changed_count);
        dt_store_bulk_dispose(&out);
        dt_buf_dispose(&ra);
        dt_buf_dispose(&rb);
        char *va_text = copy_text(versions(a, 0, 0));
        same_versions += !strcmp(va_text, versions(b, 0, 0)); /* before the rows are written */
        free(va_text);
        /* every other round, the rows are written by the next read (dt_store_each above did
         * it already for a); else by dt_store_settle */
        if (round % 2)
            dt_store_settle(b, NULL);
        else
            dt_store_count(b);
        char *da = dump_store(a), *db = dump_store(b);
        bool rows_ok = !strcmp(da, db);
        if (!rows_ok && same_rows == round - 1)
            printf("# round %d rows differ:\n# put:  %s\n# bulk: %s\n", round, da, db);
        same_rows += rows_ok;
        free(da);
        free(db);
        free(ex.r);
        dt_arena_dispose(&ex.mem);
        /* now and then an ordinary write or a rollback, on both */
        if (round % 7 == 0) {
            int64_t to = (int64_t)rnd((unsigned)va + 1);
            begin(a, now + 5);
            begin(b, now + 5);
            rollback(a, to);
            rollback(b, to);
            commit(a);
            commit(b);
        }
    }
    is_int(same_rules, rounds, "bulk: the rule set of every version as put makes it");
    is_int(counted, rounds, "bulk: the changed flags agree with the counts");
    is_int(same_versions, rounds, "bulk: the versions (counts, times) as put makes them");
    is_int(same_rows, rounds, "bulk: once settled, the rows are those put writes");
    is_str(sql_rows(b, "SELECT count(*) FROM bulk_pending"), "0", "bulk: no record is left");
    char *ha = copy_text(history(a, 0, 0, 0));
    is_str(history(b, 0, 0, 0), ha, "bulk: the same history");
    free(ha);
out:
    dt_store_close(a);
    dt_store_close(b);
}

/* What a bulk write refuses, and what it does not need. */
static void test_bulk_rules(void)
{
    struct dt_store *s = open_store("bulk_rules.db");
    if (!ok(s != NULL, "open"))
        return;
    struct dt_store_bulk out;
    struct dt_store_rule in[3] = {rule("/a", "/a1", 307), rule("/b", "/b1", 301),
                                  rule("/a", "/a2", 308)};
    err.len = 0;
    is_int(dt_store_bulk(s, in, 3, false, &out, &err), DT_EINVAL, "bulk: no transaction");
    begin(s, 10);
    struct dt_store_rule bad[2] = {rule("/x", "/y", 307), rule("/z", "/y", 200)};
    err.len = 0;
    is_int(dt_store_bulk(s, bad, 2, false, &out, &err), DT_EINVAL, "bulk: a bad status");
    ok(strstr(errtext(), "200") != NULL, "bulk: saying which");
    is_int(dt_store_bulk(s, in, 3, false, &out, &err), 0, "bulk: the transaction goes on");
    is_int((int64_t)out.n, 2, "bulk: a source given twice is one rule");
    is_str(out.rules[0].target, "/a2", "bulk: the last one's content");
    is_int(out.rules[0].id, 1, "bulk: under the first one's id");
    is_int(out.rules[0].status, 308, "bulk: its status");
    dt_store_bulk_dispose(&out);
    err.len = 0;
    is_int(add(s, "/c", "/c1", 307), -1, "bulk: no other write after it");
    is_int(dt_store_bulk(s, in, 3, false, &out, &err), DT_EINVAL, "bulk: nor a second one");
    is_int(dt_store_pending(s, see_change, &changes), DT_EINVAL, "bulk: nor a pending walk");
    is_int(commit(s), 1, "bulk: commit");
    ok(dt_store_unsettled(s), "bulk: its rows are still to be written");
    is_str(sql_rows(s, "SELECT count(*) FROM rules"), "0", "bulk: none yet");
    is_str(versions(s, 0, 0), "v1 @10 test '' +2 ~0 -0", "bulk: its version is there");
    is_int(dt_store_count(s), 2, "bulk: counting writes them");
    ok(!dt_store_unsettled(s), "bulk: settled");
    is_str(rules_at(s, 0), "1 /a>/a2 308, 2 /b>/b1 301", "bulk: the rules");
    is_str(history(s, 1, 0, 0), "v1 added 1 => 1 /a>/a2 308", "bulk: the history");

    begin(s, 20);
    add(s, "/c", "/c1", 307);
    err.len = 0;
    is_int(dt_store_bulk(s, in, 3, false, &out, &err), DT_EINVAL,
           "bulk: not in a transaction that wrote");
    dt_store_abort(s);
    /* what is there already: no change, no version, nothing to settle */
    struct dt_store_rule same[2] = {rule("/a", "/a2", 308), rule("/b", "/b1", 301)};
    begin(s, 30);
    is_int(dt_store_bulk(s, same, 2, true, &out, &err), 0, "bulk: what is there");
    ok(out.added + out.changed_count + out.removed == 0, "bulk: no change");
    dt_store_bulk_dispose(&out);
    is_int(commit(s), 1, "bulk: no version");
    ok(!dt_store_unsettled(s), "bulk: nothing to settle");
    is_str(sql_rows(s, "SELECT count(*) FROM bulk_pending"), "0", "bulk: no record");
    /* replace with nothing: every rule goes */
    begin(s, 40);
    is_int(dt_store_bulk(s, NULL, 0, true, &out, &err), 0, "bulk: replace by nothing");
    ok(out.n == 0 && out.removed == 2, "bulk: both removed");
    dt_store_bulk_dispose(&out);
    is_int(commit(s), 2, "bulk: version 2");
    is_str(rules_at(s, 0), "", "bulk: no rules");
    is_str(rules_at(s, 1), "1 /a>/a2 308, 2 /b>/b1 301", "bulk: version 1 as it was");
    dt_store_close(s);
}

/* A bulk write committed on one connection, its rows written by another (a thread of its
 * own, in the server); the first then reads them without writing anything. */
static void test_bulk_settled_elsewhere(void)
{
    struct dt_store *a = open_store("elsewhere.db"), *b = open_store("elsewhere.db");
    if (!ok(a && b, "two connections"))
        goto out;
    begin(a, 10);
    struct dt_store_rule in[2] = {rule("/e1", "/t1", 307), rule("/e2", "/t2", 301)};
    struct dt_store_bulk res;
    is_int(dt_store_bulk(a, in, 2, false, &res, &err), 0, "elsewhere: bulk");
    dt_store_bulk_dispose(&res);
    is_int(commit(a), 1, "elsewhere: committed");
    ok(dt_store_unsettled(a) && !dt_store_unsettled(b), "elsewhere: the first one knows");
    is_int(dt_store_settle(b, &err), 0, "elsewhere: the second writes the rows");
    is_str(sql_rows(b, "SELECT count(*) FROM bulk_pending"), "0", "elsewhere: record gone");
    is_int(dt_store_settle(b, &err), 0, "elsewhere: again: nothing to do");
    is_str(rules_at(a, 0), "1 /e1>/t1 307, 2 /e2>/t2 301", "elsewhere: the first reads them");
    ok(!dt_store_unsettled(a), "elsewhere: and knows");
    is_str(history(a, 2, 0, 0), "v1 added 2 => 2 /e2>/t2 301", "elsewhere: written once");
out:
    dt_store_close(a);
    dt_store_close(b);
}

/* ---- issue 10: a new version is noticed by every connection (dt_store_wait) ------------- */

static void *write_later(void *arg)
{
    struct dt_store *w = arg;
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    begin(w, 1000);
    add(w, "/waited", "/for", 307);
    commit(w);
    return NULL;
}

static void test_wait(void)
{
    struct dt_store *r = open_store("wait.db"), *w = open_store("wait.db");
    if (!r || !w) {
        ok(0, "two connections open");
        return;
    }
    int64_t v = -1;
    double t0 = seconds();
    is_int(dt_store_wait(r, 0, 50, &v), 0, "wait: nothing new within the time: 0");
    ok(seconds() - t0 >= 0.04, "wait: and it waited for it");
    pthread_t th;
    pthread_create(&th, NULL, write_later, w);
    is_int(dt_store_wait(r, 0, 10000, &v), 1, "wait: another connection's commit: 1");
    is_int(v, 1, "wait: with the newest version");
    pthread_join(th, NULL);
    ok(seconds() - t0 < 5, "wait: as soon as it is committed, not at the timeout");
    is_int(dt_store_wait(r, 0, 0, &v), 1, "wait: an older version than the newest: at once");
    begin(r, 1001);
    is_int(dt_store_wait(r, 1, 10, &v), DT_EINVAL, "wait: not inside a transaction");
    dt_store_abort(r);
    dt_store_close(r);
    dt_store_close(w);
}

/* ---- the contract ------------------------------------------------------------------------ */

/* Runs every test of the contract against the backend f. */
static void store_contract(const struct store_fixture *f)
{
    fixture = f;
    test_outside_transaction();
    test_add_and_read();
    test_since();
    test_noop_and_abort();
    test_put();
    test_bulk_same_as_put();
    test_bulk_rules();
    test_bulk_settled_elsewhere();
    test_rollback();
    test_history_and_versions();
    test_list();
    test_callbacks();
    test_wait();
    test_reopen();
    test_timing();
}

#endif
