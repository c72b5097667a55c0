/* api: the admin API. JSON over HTTP/1.1 on the admin listener, every request with the
 * bearer token. Writes go to the store in one transaction each (one numbered version), then
 * to the live rule set; dry_run=true answers with the diff and the lint findings instead.
 * The endpoints are described in docs/admin.md. */
#include "admin/internal.h"
#include "rules/import.h"

#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX 10000
#define ERRORS_SHOWN 100

struct admin {
    struct live live;
    struct dt_store *store;
    const struct dt_admin_options *opt;
    const struct dt_server_config *cfg;
    char token[256];
    time_t started;
    time_t now; /* the request being answered's (or the tick's) time: every date decision's */
    uint64_t requests, writes, refused_auth, errors;
    int64_t store_count;   /* the store's rules, kept by every commit (health, metrics) */
    int64_t old_temporary; /* the last count of S10 rules (metrics); -1: none yet */
    /* The rows of a bulk import are written after its answer by a thread of their own, on a
     * connection of their own (NULL for :memory:, where the admin thread's tick does it):
     * meanwhile every request that reads or writes rules waits for it, the others (health,
     * metrics, match) are answered. */
    struct dt_store *settle_store;
    pthread_t settle_thread;
    atomic_bool settling; /* the thread runs */
    bool settle_joinable; /* it was started and not joined (admin thread only) */
};

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_json(struct dt_admin_reply *rep, int status, json_t *j)
{
    rep->status = status;
    rep->content_type = "application/json";
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    dt_buf_append(&rep->body, s, strlen(s));
    dt_buf_append(&rep->body, "\n", 1);
    free(s);
    json_decref(j);
}

static void reply_error(struct dt_admin_reply *rep, int status, const char *field, const char *fmt,
                        ...) DT_PRINTF(4, 5);
static void reply_error(struct dt_admin_reply *rep, int status, const char *field, const char *fmt,
                        ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s}", "error", msg);
    if (field)
        json_object_set_new(j, "field", json_string(field));
    reply_json(rep, status, j);
}

static json_t *time_json(int64_t t)
{
    if (t <= 0)
        return json_null();
    char buf[21];
    dt_fmt_rfc3339(buf, (time_t)t);
    return json_string(buf);
}

/* ---- the query string --------------------------------------------------------------------- */

/* The decoded value of key in a query string; false when absent. */
static bool query_get(struct dt_str q, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    size_t i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        const char *eq = memchr(q.ptr + i, '=', end - i);
        size_t nlen = eq ? (size_t)(eq - q.ptr - i) : end - i;
        if (nlen == klen && !memcmp(q.ptr + i, key, klen)) {
            size_t o = 0;
            for (size_t k = eq ? (size_t)(eq - q.ptr) + 1 : end; k < end && o + 1 < cap; k++) {
                char c = q.ptr[k];
                if (c == '+')
                    c = ' ';
                else if (c == '%' && k + 2 < end + 0 + 1 && dt_hexval((unsigned char)q.ptr[k + 1]) >= 0 &&
                         k + 2 < q.len && dt_hexval((unsigned char)q.ptr[k + 2]) >= 0) {
                    c = (char)(dt_hexval((unsigned char)q.ptr[k + 1]) * 16 +
                               dt_hexval((unsigned char)q.ptr[k + 2]));
                    k += 2;
                }
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* True when every parameter of the query string is one of allowed (names separated by
 * spaces); else a 400 naming the first that is not (a misspelt parameter would otherwise be
 * ignored, and a filter or a mode silently not applied). */
static bool query_known(struct dt_admin_reply *rep, struct dt_str q, const char *allowed)
{
    size_t i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        const char *eq = memchr(q.ptr + i, '=', end - i);
        size_t nlen = eq ? (size_t)(eq - q.ptr - i) : end - i;
        bool known = nlen == 0; /* an empty parameter ("a=1&&b=2") names nothing */
        for (const char *a = allowed; !known && *a;) {
            size_t alen = strcspn(a, " ");
            known = alen == nlen && !memcmp(a, q.ptr + i, nlen);
            a += alen;
            while (*a == ' ')
                a++;
        }
        if (!known) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(nlen < 60 ? nlen : 60), q.ptr + i);
            reply_error(rep, 400, name, "unknown parameter '%s'%s%s", name,
                        allowed[0] ? "; this endpoint takes: " : " (this endpoint takes none)",
                        allowed);
            return false;
        }
        i = end + 1;
    }
    return true;
}

static bool query_flag(struct dt_str q, const char *key)
{
    char v[16];
    return query_get(q, key, v, sizeof(v)) && (!strcmp(v, "true") || !strcmp(v, "1") || !v[0]);
}

/* A numeric query parameter; false (with a 400 sent) when malformed. */
static bool query_int(struct dt_admin_reply *rep, struct dt_str q, const char *key, int64_t min,
                      int64_t max, int64_t *out)
{
    char v[32];
    if (!query_get(q, key, v, sizeof(v)))
        return true;
    if (dt_parse_int(dt_str_make(v, strlen(v)), min, max, out) != 0) {
        reply_error(rep, 400, key, "%s must be a number from %lld to %lld", key, (long long)min,
                    (long long)max);
        return false;
    }
    return true;
}

/* ---- rules as JSON ------------------------------------------------------------------------- */

/* The admin whose request is being answered: rule_json adds hit counts from its live rule
 * set. Only the admin thread answers requests. */
static struct admin *answering;

static json_t *rule_json(const struct dt_store_rule *r)
{
    /* The options are rule-file syntax: the rule codec reads them. */
    struct dt_rule_spec spec;
    struct dt_diag d;
    bool parsed = dt_live_spec(r, &spec, &d) == 0;
    json_t *j = json_pack("{s:I,s:s,s:s,s:i}", "id", (json_int_t)r->id, "source", r->source,
                          "target", r->target, "status", r->status);
    json_object_set_new(j, "query", json_string(parsed && spec.query_drop ? "drop" : "keep"));
    json_object_set_new(j, "cache", parsed && spec.max_age >= 0 ? json_integer(spec.max_age)
                                                                 : json_null());
    json_object_set_new(j, "from", parsed && spec.has_from ? time_json(spec.from) : json_null());
    json_object_set_new(j, "until",
                        parsed && spec.has_until ? time_json(spec.until) : json_null());
    char age[24];
    json_object_set_new(j, "promote_after",
                        parsed && spec.promote_after
                            ? json_stringn(age, dt_rule_format_age(age, spec.promote_after))
                            : json_null());
    /* the rule as `detour rules export` writes it: since= only where promote-after= counts
     * from it (a 307's since, else when it was last changed) */
    if (parsed) {
        spec.has_since = spec.promote_after > 0;
        if (spec.has_since && !spec.since)
            spec.since = (time_t)r->updated;
        struct dt_buf line;
        dt_buf_init(&line);
        dt_rule_format(&line, &spec);
        json_object_set_new(j, "text", json_stringn(line.ptr, line.len));
        dt_buf_dispose(&line);
    }
    json_object_set_new(j, "note", json_string(r->note ? r->note : ""));
    json_object_set_new(j, "created", time_json(r->created));
    json_object_set_new(j, "updated", time_json(r->updated));
    json_object_set_new(j, "since", time_json(r->since));
    json_object_set_new(j, "version", json_integer(r->version));
    if (answering) {
        uint32_t last = 0;
        pthread_mutex_lock(&answering->live.mu);
        uint64_t hits = dt_live_hits(&answering->live, r->id, &last);
        pthread_mutex_unlock(&answering->live.mu);
        json_object_set_new(j, "hits", json_integer((json_int_t)hits));
        json_object_set_new(j, "last_hit", time_json(last));
    }
    return j;
}

static int collect_rule(void *ctx, const struct dt_store_rule *r)
{
    json_array_append_new(ctx, rule_json(r));
    return 0;
}

static int get_rule(void *ctx, const struct dt_store_rule *r)
{
    *(json_t **)ctx = rule_json(r);
    return 0;
}

/* A rule being written: its fields as text, and the line they make. */
struct rule_in {
    char source[8300], target[8300], note[1024];
    int status;
    bool query_drop;
    int64_t cache; /* -1: none */
    bool has_from, has_until;
    time_t from, until;
    int64_t promote_after; /* seconds; 0 for none */
    struct dt_buf options;
};

static void rule_in_init(struct rule_in *in)
{
    memset(in, 0, sizeof(*in));
    in->status = 307;
    in->cache = -1;
    dt_buf_init(&in->options);
}

/* Fills in from a stored rule (for PATCH). */
static int rule_in_from_store(void *ctx, const struct dt_store_rule *r)
{
    struct rule_in *in = ctx;
    snprintf(in->source, sizeof(in->source), "%s", r->source);
    snprintf(in->target, sizeof(in->target), "%s", r->target);
    snprintf(in->note, sizeof(in->note), "%s", r->note ? r->note : "");
    in->status = r->status;
    struct dt_rule_spec spec;
    struct dt_diag d;
    if (dt_live_spec(r, &spec, &d) == 0) {
        in->query_drop = spec.query_drop;
        in->cache = spec.max_age;
        in->has_from = spec.has_from;
        in->from = spec.from;
        in->has_until = spec.has_until;
        in->until = spec.until;
        in->promote_after = spec.promote_after;
    }
    return 0;
}

static const char *const writable[] = {"source", "target", "status", "query", "cache",
                                       "from",   "until",  "note",   "promote_after"};
static const char *const readonly[] = {"id", "created", "updated", "since", "version"};

static bool one_of(const char *k, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, set[i]))
            return true;
    return false;
}

static bool text_field(json_t *v, const char *key, char *out, size_t cap, struct dt_admin_reply *rep)
{
    if (!json_is_string(v)) {
        reply_error(rep, 400, key, "'%s' must be a string", key);
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || strlen(s) != n) {
        reply_error(rep, 400, key, "'%s' is too long or holds a NUL", key);
        return false;
    }
    memcpy(out, s, n + 1);
    return true;
}

static bool time_field(json_t *v, const char *key, bool *has, time_t *t, struct dt_admin_reply *rep)
{
    if (json_is_null(v)) {
        *has = false;
        return true;
    }
    if (!json_is_string(v) ||
        dt_parse_rfc3339(dt_str_make(json_string_value(v), json_string_length(v)), t) != 0) {
        reply_error(rep, 400, key, "'%s' must be an RFC 3339 time such as "
                                   "2026-12-01T06:00:00Z, or null", key);
        return false;
    }
    *has = true;
    return true;
}

/* Applies a JSON object's fields to in. With full, source and target are required. */
static bool rule_in_apply(struct rule_in *in, json_t *obj, bool full, struct dt_admin_reply *rep)
{
    if (!json_is_object(obj)) {
        reply_error(rep, 400, NULL, "the request content must be a JSON object (a rule)");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!one_of(key, writable, DT_ARRAY_LEN(writable)) &&
            !one_of(key, readonly, DT_ARRAY_LEN(readonly))) {
            reply_error(rep, 400, key, "unknown field '%s' (a rule has source, target, status, "
                                       "query, cache, from, until, promote_after, note)", key);
            return false;
        }
    }
    if (full && (!json_object_get(obj, "source") || !json_object_get(obj, "target"))) {
        const char *missing = json_object_get(obj, "source") ? "target" : "source";
        reply_error(rep, 400, missing, "'%s' is required", missing);
        return false;
    }
    if ((v = json_object_get(obj, "source")) &&
        !text_field(v, "source", in->source, sizeof(in->source), rep))
        return false;
    if ((v = json_object_get(obj, "target")) &&
        !text_field(v, "target", in->target, sizeof(in->target), rep))
        return false;
    if ((v = json_object_get(obj, "note")) && !text_field(v, "note", in->note, sizeof(in->note), rep))
        return false;
    if ((v = json_object_get(obj, "status"))) {
        json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;
        if (!dt_http_is_redirect(s)) {
            reply_error(rep, 400, "status", "'status' must be 301, 302, 303, 307 or 308");
            return false;
        }
        in->status = (int)s;
    } else if (full) {
        in->status = 307;
    }
    if ((v = json_object_get(obj, "query"))) {
        const char *q = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(q, "keep") && strcmp(q, "drop")) {
            reply_error(rep, 400, "query", "'query' must be \"keep\" or \"drop\"");
            return false;
        }
        in->query_drop = !strcmp(q, "drop");
    }
    if ((v = json_object_get(obj, "cache"))) {
        if (json_is_null(v)) {
            in->cache = -1;
        } else if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                   json_integer_value(v) > INT32_MAX) {
            reply_error(rep, 400, "cache", "'cache' must be a number of seconds "
                                           "(0 to 2147483647) or null");
            return false;
        } else {
            in->cache = json_integer_value(v);
        }
    }
    if ((v = json_object_get(obj, "from")) && !time_field(v, "from", &in->has_from, &in->from, rep))
        return false;
    if ((v = json_object_get(obj, "promote_after"))) {
        if (json_is_null(v)) {
            in->promote_after = 0;
        } else if (!json_is_string(v) ||
                   dt_rule_parse_age(dt_str_make(json_string_value(v), json_string_length(v)),
                                     &in->promote_after) != 0) {
            reply_error(rep, 400, "promote_after", "'promote_after' must be an age such as "
                                                   "\"90d\", \"12h\", \"30m\" or \"45s\", or null");
            return false;
        }
    }
    if ((v = json_object_get(obj, "until")) &&
        !time_field(v, "until", &in->has_until, &in->until, rep))
        return false;
    return true;
}

/* The options of a store rule in rule-file syntax, as the rule codec writes them: since= is
 * never among them (the store keeps it). */
static void options_text(struct dt_buf *out, const struct dt_rule_spec *s)
{
    out->len = 0;
    dt_rule_format_options(out, s, 0);
    dt_buf_terminate(out);
}

/* The rule spec of a rule being written (spans into in). */
static void rule_in_spec(const struct rule_in *in, struct dt_rule_spec *s)
{
    dt_rule_spec_init(s);
    s->source = dt_str_make(in->source, strlen(in->source));
    s->target = dt_str_make(in->target, strlen(in->target));
    s->status = in->status;
    s->query_drop = in->query_drop;
    s->max_age = in->cache;
    s->has_from = in->has_from;
    s->from = in->from;
    s->has_until = in->has_until;
    s->until = in->until;
    s->promote_after = in->promote_after;
}

/* Checks the rule as the table would load it; builds in->options. On an error sends 400
 * naming the field. */
static bool rule_in_check(struct rule_in *in, struct dt_admin_reply *rep)
{
    struct dt_rule_spec spec;
    rule_in_spec(in, &spec);
    options_text(&in->options, &spec);
    for (const char *f = in->source; *f; f++)
        if ((unsigned char)*f <= ' ' || *f == '#') {
            reply_error(rep, 400, "source", "'source' must not contain white space, control "
                                            "characters or '#'");
            return false;
        }
    for (const char *f = in->target; *f; f++)
        if ((unsigned char)*f <= ' ') {
            reply_error(rep, 400, "target", "'target' must not contain white space or control "
                                            "characters");
            return false;
        }
    if (!in->source[0] || !in->target[0]) {
        const char *f = in->source[0] ? "target" : "source";
        reply_error(rep, 400, f, "'%s' must not be empty", f);
        return false;
    }
    /* the line the codec makes of it, read back as a rule file's would be: an error names
     * the field its column falls in */
    spec.has_since = spec.promote_after > 0; /* the store sets the real one */
    spec.since = 946684800;
    struct dt_buf line;
    dt_buf_init(&line);
    dt_rule_format(&line, &spec);
    size_t target_at = strlen(in->source) + 1, status_at = target_at + strlen(in->target) + 1;
    struct dt_diag d;
    int rc = dt_rule_parse_line(dt_str_make(line.ptr, line.len), &spec, &d);
    if (rc == 1) {
        struct dt_table *t2 = dt_table_new();
        rc = dt_table_add(t2, &spec, -1, 0, &d);
        dt_table_free(t2);
    } else if (rc == 0) {
        rc = DT_ESYNTAX;
        dt_diag_set(&d, 0, "empty rule");
    }
    bool ok = rc == 0;
    if (!ok) {
        const char *field = d.offset < target_at                           ? "source"
                            : d.offset < status_at                         ? "target"
                            : spec.promote_at && d.offset == spec.promote_at ? "promote_after"
                                                                             : "options";
        reply_error(rep, 400, field, "%s: %s", field, d.msg);
    }
    dt_buf_dispose(&line);
    return ok;
}

static struct dt_store_rule rule_in_store(const struct rule_in *in)
{
    return (struct dt_store_rule){.source = in->source, .target = in->target,
                                  .status = in->status, .options = in->options.ptr,
                                  .note = in->note};
}

/* ---- a bulk import's rows ------------------------------------------------------------------ */

/* Writes the rows of the bulk imports committed (see dt_store_bulk) on connection s, and
 * says how long it took or why it failed (then retry says who tries again). */
static void settle_on(struct dt_store *s, const char *retry)
{
    uint64_t t0 = dt_now_ms();
    struct dt_buf err;
    dt_buf_init(&err);
    if (dt_store_settle(s, &err) != 0)
        dt_log(DT_LOG_ERROR, "writing the rows of a bulk import failed (%s): %s", retry,
               err.ptr ? err.ptr : "");
    else
        dt_log(DT_LOG_INFO, "wrote the rows of a bulk import in %llu ms",
               (unsigned long long)(dt_now_ms() - t0));
    dt_buf_dispose(&err);
}

/* The settle thread: the rows, on its own connection. */
static void *settle_main(void *arg)
{
    struct admin *a = arg;
    settle_on(a->settle_store, "the admin thread tries again");
    atomic_store(&a->settling, false);
    return NULL;
}

/* After a bulk import's commit: its rows are written by the settle thread, if there is a
 * connection for it (else by the admin thread's next tick or request). */
static void start_settle(struct admin *a)
{
    if (!a->settle_store || a->settle_joinable)
        return;
    atomic_store(&a->settling, true);
    if (pthread_create(&a->settle_thread, NULL, settle_main, a) != 0) {
        atomic_store(&a->settling, false);
        return;
    }
    a->settle_joinable = true;
}

/* Waits for the settle thread (before anything that reads or writes rules on the admin
 * connection, which would otherwise wait for the write lock it holds). */
static void wait_settle(struct admin *a)
{
    if (!a->settle_joinable)
        return;
    pthread_join(a->settle_thread, NULL);
    a->settle_joinable = false;
    /* this connection learns that the rows are there (or, if the thread failed, writes
     * them: the thread has logged why) */
    struct dt_buf err;
    dt_buf_init(&err);
    if (dt_store_settle(a->store, &err) != 0)
        dt_log(DT_LOG_ERROR, "writing the rows of a bulk import failed: %s",
               err.ptr ? err.ptr : "");
    dt_buf_dispose(&err);
}

/* ---- writes: one transaction, diff, lint, commit, publish ------------------------------- */

struct pending {
    json_t *added, *changed, *removed;
    struct change *ch;
    size_t n, cap;
    int64_t *ids; /* every changed id, in order */
    size_t nids, cap_ids;
    bool diff; /* build the JSON diff */
    int64_t nadded, nchanged, nremoved;
};

static int collect_change(void *ctx, const struct dt_store_change *c)
{
    struct pending *p = ctx;
    /* the rules themselves only for a dry run's diff; a write only counts them */
    if (!strcmp(c->kind, "added")) {
        p->nadded++;
        if (p->diff)
            json_array_append_new(p->added, rule_json(c->new_rule));
    } else if (!strcmp(c->kind, "removed")) {
        p->nremoved++;
        if (p->diff)
            json_array_append_new(p->removed, rule_json(c->old_rule));
    } else {
        p->nchanged++;
        if (p->diff)
            json_array_append_new(p->changed,
                                  json_pack("{s:o,s:o}", "old", rule_json(c->old_rule), "new",
                                            rule_json(c->new_rule)));
    }
    const struct dt_store_rule *r = c->new_rule ? c->new_rule : c->old_rule;
    if (p->nids == p->cap_ids) {
        p->cap_ids = p->cap_ids ? 2 * p->cap_ids : 16;
        p->ids = dt_xrealloc(p->ids, p->cap_ids * sizeof(*p->ids));
    }
    p->ids[p->nids++] = r->id; /* in order of id */
    /* Beyond what the overlay takes, the store's table is rebuilt: no lines needed. */
    if (p->n > DT_LIVE_OVERLAY_MAX)
        return 0;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->ch = dt_xrealloc(p->ch, p->cap * sizeof(*p->ch));
    }
    p->ch[p->n++] = (struct change){r->id, c->version,
                                    c->new_rule ? dt_live_line(c->new_rule) : NULL, true};
    return 0;
}

static void pending_dispose(struct pending *p)
{
    json_decref(p->added);
    json_decref(p->changed);
    json_decref(p->removed);
    for (size_t i = 0; i < p->n; i++)
        free(p->ch[i].line);
    free(p->ch);
    free(p->ids);
}

static bool changed_id(const struct pending *p, int64_t id)
{
    size_t lo = 0, hi = p->nids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->nids && p->ids[lo] == id;
}

/* The rules lint looks from: the store rules the transaction changed (store rules come first
 * in the lint table). */
struct focus {
    const struct pending *p;
    size_t nstore;
};

static bool focus_changed(void *ctx, const struct dt_table *t, size_t i)
{
    const struct focus *f = ctx;
    return i < f->nstore && changed_id(f->p, dt_table_rule(t, i)->line);
}

/* Lints the rule set the open transaction would make (the store's rules as the transaction
 * sees them, then the rule files) and returns the findings about changed store rules;
 * *errors counts the error-level ones among them. */
static json_t *lint_pending(struct admin *a, const struct pending *p, unsigned *errors)
{
    json_t *out = json_array();
    *errors = 0;
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_table *t = dt_table_new();
    dt_table_add_file(t, "store");
    int rc = dt_live_fill_store(t, a->store, 0, &err);
    size_t nstore = dt_table_size(t);
    struct dt_errors errs;
    dt_errors_init(&errs);
    for (size_t i = 0; i < a->cfg->nrules; i++)
        if (dt_table_load_file_as(t, a->cfg->rules[i].path, a->cfg->rules[i].format, 0, &errs))
            break; /* a file that no longer loads: lint what did */
    dt_errors_dispose(&errs);
    dt_buf_dispose(&err);
    dt_table_finish(t);
    if (rc == 0) {
        struct focus fc = {p, nstore};
        struct dt_lint_options lo = {.now = a->now,
                                     .max_temporary_age = a->opt->max_temporary_age,
                                     .focus = focus_changed, .focus_ctx = &fc};
        struct dt_lint_report rep = {0};
        dt_lint_run(t, &lo, &rep);
        for (size_t i = 0; i < rep.n; i++) {
            const struct dt_lint_finding *f = &rep.findings[i];
            if (!f->file || strcmp(f->file, "store") || !changed_id(p, f->line))
                continue;
            if (f->severity == DT_LINT_ERROR)
                (*errors)++;
            json_array_append_new(out, json_pack("{s:s,s:s,s:I,s:s}", "severity",
                                                 f->severity == DT_LINT_ERROR ? "error"
                                                                              : "warning",
                                                 "kind", f->kind, "id", (json_int_t)f->line,
                                                 "message", f->message));
        }
        dt_lint_report_dispose(&rep);
    }
    dt_table_free(t);
    return out;
}

/* One part of the check of an import: rules [from, to) of table t. */
struct check_part {
    const struct pending *p;
    const struct dt_ruleset *rs;
    const struct dt_table *t;
    size_t from, to;
    time_t now;
    struct finding {
        uint32_t id;
        int kind;
        char *message;
    } *found;
    size_t nfound, cap;
};

static void *check_part_run(void *arg)
{
    struct check_part *c = arg;
    struct dt_buf msg;
    dt_buf_init(&msg);
    struct dt_lint_scratch scratch;
    memset(&scratch, 0, sizeof(scratch));
    for (size_t i = c->from; i < c->to; i++) {
        const struct dt_rule *r = dt_table_rule(c->t, i);
        if (!changed_id(c->p, r->line))
            continue;
        msg.len = 0;
        int kind = dt_lint_rule_in(c->rs, c->t, r, c->now, &msg, &scratch);
        if (kind == DT_LINT_RULE_OK)
            continue;
        if (c->nfound == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 16;
            c->found = dt_xrealloc(c->found, c->cap * sizeof(*c->found));
        }
        c->found[c->nfound++] = (struct finding){r->line, kind, dt_xstrndup(msg.ptr, msg.len)};
    }
    dt_buf_dispose(&msg);
    dt_lint_scratch_dispose(&scratch);
    return NULL;
}

/* Past this many rules, the check runs in two threads (the rule set is immutable, and
 * dt_lint_rule_in keeps no state). */
#define CHECK_SPLIT_AT 50000

/* The error-level findings about the rules an import changed, in pv (the rule set the
 * import makes): each changed rule is followed through the whole rule set, which costs a
 * few lookups per changed rule rather than a lint of every rule. */
static json_t *check_changed(const struct pending *p, const struct dt_live_preview *pv,
                             time_t now, unsigned *errors)
{
    json_t *out = json_array();
    *errors = 0;
    /* the changed rules: every rule of the new store table with a changed id, or of the
     * change levels (which hold every change still pending a merge, not only this one's;
     * an overlay rule changed again is hidden and has no finding) */
    const struct dt_table *ts[2] = {pv->whole ? pv->rs.store : pv->rs.overlay,
                                    pv->whole ? NULL : pv->rs.recent};
    for (int k = 0; k < 2; k++) {
        size_t n = ts[k] ? dt_table_size(ts[k]) : 0;
        struct check_part part[2] = {{p, &pv->rs, ts[k], 0, n, now, NULL, 0, 0},
                                     {p, &pv->rs, ts[k], n, n, now, NULL, 0, 0}};
        pthread_t helper;
        bool split = n >= CHECK_SPLIT_AT;
        if (split) {
            part[0].to = part[1].from = n / 2;
            split = pthread_create(&helper, NULL, check_part_run, &part[1]) == 0;
            if (!split)
                part[0].to = n;
        }
        check_part_run(&part[0]);
        if (split)
            pthread_join(helper, NULL);
        for (int h = 0; h < 2; h++) {
            for (size_t i = 0; i < part[h].nfound; i++) {
                const struct finding *f = &part[h].found[i];
                (*errors)++;
                json_array_append_new(out, json_pack("{s:s,s:s,s:I,s:s}", "severity", "error",
                                                     "kind",
                                                     f->kind == DT_LINT_RULE_LOOP ? "loop"
                                                                                  : "conflict",
                                                     "id", (json_int_t)f->id, "message",
                                                     f->message));
                free(f->message);
            }
            free(part[h].found);
        }
    }
    return out;
}

/* Ends an open write transaction whose changes are p and whose rule set pv was built while
 * live.mu was held (held still; NULL when nothing changed): with refuse_errors
 * (imports), abandons it when the result has an error finding about a changed rule unless
 * forced; otherwise commits, publishes and answers with the version, extra (consumed) and,
 * with rule_id, that rule as stored ("rule"). Releases live.mu; disposes of p. */
static void commit_write(struct admin *a, struct dt_admin_reply *rep, struct pending *p,
                         struct dt_live_preview *pv, bool refuse_errors, bool force,
                         int status, json_t *extra, int64_t rule_id)
{
    struct dt_buf err;
    dt_buf_init(&err);
    if (refuse_errors && pv) {
        unsigned errors = 0;
        json_t *findings = check_changed(p, pv, a->now, &errors);
        if (errors && !force) {
            dt_live_preview_dispose(pv);
            pthread_mutex_unlock(&a->live.mu);
            dt_store_abort(a->store);
            json_t *j = json_pack("{s:s,s:o}", "error",
                                  "refused: the result has error-level lint findings "
                                  "(force=true applies it anyway)",
                                  "lint", findings);
            json_decref(extra);
            reply_json(rep, 409, j);
            goto out;
        }
        json_decref(findings);
    }
    int64_t version = 0;
    if (dt_store_commit(a->store, &version, &err) != 0) {
        if (pv)
            dt_live_preview_dispose(pv);
        pthread_mutex_unlock(&a->live.mu);
        reply_error(rep, 500, NULL, "the store did not commit: %s", err.ptr ? err.ptr : "");
        json_decref(extra);
        goto out;
    }
    if (pv)
        dt_live_install(&a->live, pv, version);
    pthread_mutex_unlock(&a->live.mu);
    a->writes++;
    a->store_count += p->nadded - p->nremoved;
    json_t *j = json_pack("{s:I,s:I,s:I,s:I}", "version", (json_int_t)version, "added",
                          (json_int_t)p->nadded, "changed", (json_int_t)p->nchanged, "removed",
                          (json_int_t)p->nremoved);
    if (extra)
        json_object_update(j, extra);
    json_decref(extra);
    json_t *stored = NULL;
    if (rule_id && dt_store_get(a->store, rule_id, get_rule, &stored) == 0)
        json_object_set_new(j, "rule", stored);
    reply_json(rep, status, j);
out:
    dt_buf_dispose(&err);
    pending_dispose(p);
}

/* Finishes an open write transaction: with dry_run, answers the diff and the lint findings
 * and abandons it; otherwise as commit_write. */
static void finish_write(struct admin *a, struct dt_admin_reply *rep, bool dry_run,
                         bool refuse_errors, bool force, int status, json_t *extra,
                         int64_t rule_id)
{
    struct pending p = {json_array(), json_array(), json_array(), NULL, 0, 0, NULL, 0, 0,
                        dry_run, 0, 0, 0};
    dt_store_pending(a->store, collect_change, &p);
    if (dry_run) {
        unsigned errors = 0;
        json_t *findings = lint_pending(a, &p, &errors);
        dt_store_abort(a->store);
        json_t *j = json_pack("{s:b,s:{s:O,s:O,s:O},s:o,s:b}", "dry_run", 1, "diff", "added",
                              p.added, "changed", p.changed, "removed", p.removed, "lint",
                              findings, "would_refuse", refuse_errors && errors && !force);
        if (extra)
            json_object_update(j, extra);
        json_decref(extra);
        reply_json(rep, 200, j);
        pending_dispose(&p);
        return;
    }
    /* The rule set this write makes, built while the transaction is open and mu is held
     * (no merge installs meanwhile); checked for an import; published after the commit. */
    pthread_mutex_lock(&a->live.mu);
    struct dt_live_preview pv;
    bool whole = p.nids > DT_LIVE_OVERLAY_MAX;
    struct dt_buf err;
    dt_buf_init(&err);
    if (p.nids && dt_live_preview(&a->live, p.ch, p.n, whole, &pv, &err) != 0) {
        pthread_mutex_unlock(&a->live.mu);
        dt_store_abort(a->store);
        reply_error(rep, 500, NULL, "cannot read the store's rules: %s", err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        json_decref(extra);
        pending_dispose(&p);
        return;
    }
    dt_buf_dispose(&err);
    commit_write(a, rep, &p, p.nids ? &pv : NULL, refuse_errors, force, status, extra, rule_id);
}

static bool begin(struct admin *a, struct dt_admin_reply *rep, const char *actor)
{
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_begin(a->store, (int64_t)a->now, actor, "", &err);
    if (rc)
        reply_error(rep, 503, NULL, "the store cannot start a write: %s", err.ptr ? err.ptr : "");
    dt_buf_dispose(&err);
    return rc == 0;
}

/* ---- endpoints ---------------------------------------------------------------------------- */

static void list_rules(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep)
{
    char text[512] = "", host[256] = "";
    int64_t status = 0, after = 0, limit = PAGE_DEFAULT, older = 0;
    struct dt_str q = req->query;
    bool has_text = query_get(q, "text", text, sizeof(text));
    bool has_host = query_get(q, "host", host, sizeof(host));
    if (!query_int(rep, q, "status", 301, 308, &status) ||
        !query_int(rep, q, "after", 0, INT64_MAX, &after) ||
        !query_int(rep, q, "limit", 1, PAGE_MAX, &limit))
        return;
    if (status && !dt_http_is_redirect(status)) {
        reply_error(rep, 400, "status", "status must be 301, 302, 303, 307 or 308");
        return;
    }
    if (query_flag(q, "old_temporary")) {
        if (a->opt->max_temporary_age < 0) {
            reply_error(rep, 400, "old_temporary", "--max-temporary-age is off");
            return;
        }
        older = (int64_t)a->now - a->opt->max_temporary_age;
    }
    struct dt_store_query sq = {.text = has_text ? text : NULL, .host = has_host ? host : NULL,
                                .status = (int)status, .older_than = older,
                                .after_id = after, .limit = (size_t)limit};
    json_t *rules = json_array();
    int64_t total = 0;
    int rc = dt_store_list(a->store, &sq, collect_rule, rules, &total);
    if (rc) {
        json_decref(rules);
        reply_error(rep, 500, NULL, "the store could not list: %s", dt_strerror(rc));
        return;
    }
    size_t n = json_array_size(rules);
    json_t *next = json_null();
    if (n == (size_t)limit && n)
        next = json_object_get(json_array_get(rules, n - 1), "id");
    json_incref(next);
    reply_json(rep, 200, json_pack("{s:o,s:I,s:o}", "rules", rules, "total", (json_int_t)total,
                                   "next_after", next));
}

static bool parse_id(struct dt_str s, int64_t *id)
{
    return dt_parse_int(s, 1, INT64_MAX, id) == 0;
}

static json_t *parse_body(const struct dt_admin_request *req, struct dt_admin_reply *rep)
{
    json_error_t e;
    json_t *j = json_loadb(req->body.ptr, req->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        reply_error(rep, 400, NULL, "invalid JSON at line %d, column %d: %s", e.line, e.column,
                    e.text);
    return j;
}

static void one_rule(struct admin *a, const struct dt_admin_request *req,
                     struct dt_admin_reply *rep, int64_t id)
{
    bool dry = query_flag(req->query, "dry_run");
    if (dt_str_eq(req->method, DT_STR("GET")) || dt_str_eq(req->method, DT_STR("HEAD"))) {
        json_t *j = NULL;
        if (dt_store_get(a->store, id, get_rule, &j) != 0) {
            reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
            return;
        }
        reply_json(rep, 200, j);
        return;
    }
    bool put = dt_str_eq(req->method, DT_STR("PUT")), patch = dt_str_eq(req->method, DT_STR("PATCH"));
    if (dt_str_eq(req->method, DT_STR("DELETE"))) {
        if (!begin(a, rep, "api"))
            return;
        struct dt_buf err;
        dt_buf_init(&err);
        int rc = dt_store_remove(a->store, id, &err);
        dt_buf_dispose(&err);
        if (rc) {
            dt_store_abort(a->store);
            reply_error(rep, rc == DT_ENOENT ? 404 : 500, NULL, "no rule %lld", (long long)id);
            return;
        }
        finish_write(a, rep, dry, false, false, 200, json_pack("{s:I}", "id", (json_int_t)id),
                     0);
        return;
    }
    if (!put && !patch) {
        rep->status = 405;
        dt_buf_appendf(&rep->headers, "Allow: GET, HEAD, PUT, PATCH, DELETE\r\n");
        reply_error(rep, 405, NULL, "%.*s is not allowed here", (int)req->method.len,
                    req->method.ptr);
        return;
    }
    json_t *body = parse_body(req, rep);
    if (!body)
        return;
    struct rule_in *in = dt_xmalloc(sizeof(*in));
    rule_in_init(in);
    if (patch && dt_store_get(a->store, id, rule_in_from_store, in) != 0) {
        reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
        goto out;
    }
    if (!rule_in_apply(in, body, put, rep) || !rule_in_check(in, rep))
        goto out;
    if (!begin(a, rep, "api"))
        goto out;
    struct dt_store_rule r = rule_in_store(in);
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_replace(a->store, id, &r, &err);
    if (rc) {
        dt_store_abort(a->store);
        if (rc == DT_ENOENT)
            reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
        else if (rc == DT_EEXIST)
            reply_error(rep, 409, "source", "another rule has the source '%s'", in->source);
        else
            reply_error(rep, 500, NULL, "the store failed: %s", err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        goto out;
    }
    dt_buf_dispose(&err);
    finish_write(a, rep, dry, false, false, 200, json_pack("{s:I}", "id", (json_int_t)id), id);
out:
    json_decref(body);
    dt_buf_dispose(&in->options);
    free(in);
}

static void create_rule(struct admin *a, const struct dt_admin_request *req,
                        struct dt_admin_reply *rep)
{
    bool dry = query_flag(req->query, "dry_run");
    json_t *body = parse_body(req, rep);
    if (!body)
        return;
    struct rule_in *in = dt_xmalloc(sizeof(*in));
    rule_in_init(in);
    if (!rule_in_apply(in, body, true, rep) || !rule_in_check(in, rep) || !begin(a, rep, "api"))
        goto out;
    struct dt_store_rule r = rule_in_store(in);
    int64_t id = 0;
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_add(a->store, &r, &id, &err);
    if (rc) {
        dt_store_abort(a->store);
        if (rc == DT_EEXIST)
            reply_error(rep, 409, "source", "a rule with the source '%s' exists", in->source);
        else
            reply_error(rep, 500, NULL, "the store failed: %s", err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        goto out;
    }
    dt_buf_dispose(&err);
    finish_write(a, rep, dry, false, false, 201, json_pack("{s:I}", "id", (json_int_t)id), id);
    if (!dry && rep->status == 201)
        dt_buf_appendf(&rep->headers, "Location: /api/rules/%lld\r\n", (long long)id);
out:
    json_decref(body);
    dt_buf_dispose(&in->options);
    free(in);
}

/* POST /api/import?format=F&mode=merge|replace&status=N&force=true&dry_run=true */
struct import_ctx {
    struct dt_store *store;
    int64_t id;
};

struct keep_set {
    char **sources;
    size_t n;
};

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

struct doomed {
    int64_t *ids;
    size_t n, cap;
    const struct keep_set *keep;
};

static int mark_doomed(void *ctx, const struct dt_store_rule *r)
{
    struct doomed *d = ctx;
    const char *s = r->source;
    if (bsearch(&s, d->keep->sources, d->keep->n, sizeof(char *), cmp_str))
        return 0;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->ids = dt_xrealloc(d->ids, d->cap * sizeof(*d->ids));
    }
    d->ids[d->n++] = r->id;
    return 0;
}

/* 400 for an import that does not read or whose lines do not load: every error (at most
 * ERRORS_SHOWN) with its line and column, nothing written. */
static void reply_import_errors(struct dt_admin_reply *rep, const struct dt_errors *errs)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < errs->count && i < ERRORS_SHOWN; i++)
        json_array_append_new(list, json_pack("{s:I,s:I,s:s}", "line",
                                              (json_int_t)errs->items[i].line, "column",
                                              (json_int_t)errs->items[i].column, "message",
                                              errs->items[i].message));
    json_t *j = json_pack("{s:s,s:I,s:o}", "error",
                          errs->count ? "the import has errors; nothing was written"
                                      : "the import could not be read",
                          "count", (json_int_t)errs->count, "errors", list);
    if (errs->count) {
        json_object_set_new(j, "line", json_integer(errs->items[0].line));
        json_object_set_new(j, "message", json_string(errs->text.ptr));
    }
    reply_json(rep, 400, j);
}

/* An import as one dt_store_put per rule (then the removal of the rules it does not name,
 * with replace): the rule set is checked and published as for any write. */
static void import_each(struct admin *a, struct dt_admin_reply *rep,
                        const struct dt_store_rule *rules, const struct dt_import *im,
                        bool replace, bool dry, bool force, json_t *extra)
{
    if (!begin(a, rep, "import")) {
        json_decref(extra);
        return;
    }
    struct keep_set keep = {dt_xcalloc(im->n + 1, sizeof(char *)), 0};
    int64_t named = 0; /* distinct rules the import names */
    struct dt_buf err;
    dt_buf_init(&err);
    for (size_t i = 0; i < im->n; i++) {
        int64_t id = 0;
        bool again = false;
        int wrc = dt_store_put(a->store, &rules[i], &id, &again, &err);
        named += !again;
        keep.sources[keep.n++] = (char *)rules[i].source;
        if (wrc) {
            dt_store_abort(a->store);
            reply_error(rep, wrc == DT_EEXIST ? 400 : 500, NULL, "import line %u: %s",
                        im->lines[i].line, err.ptr ? err.ptr : dt_strerror(wrc));
            dt_buf_dispose(&err);
            free(keep.sources);
            json_decref(extra);
            return;
        }
    }
    /* replace: the rules the import did not name go; when the store holds as many rules as
     * the import named, it named every one */
    if (replace && dt_store_count(a->store) != named) {
        qsort(keep.sources, keep.n, sizeof(char *), cmp_str);
        struct doomed d = {NULL, 0, 0, &keep};
        dt_store_each(a->store, 0, mark_doomed, &d);
        for (size_t i = 0; i < d.n; i++)
            if (dt_store_remove(a->store, d.ids[i], &err) != 0)
                break;
        free(d.ids);
    }
    dt_buf_dispose(&err);
    free(keep.sources);
    finish_write(a, rep, dry, true, force, 200, extra, 0);
}

struct load_errors {
    const struct dt_import *im;
    int column_base;
    struct bad_line {
        uint32_t line;
        int column;
        char *message;
    } *items;
    size_t n, cap;
};

static void collect_load_error(void *ctx, int64_t from, const struct dt_diag *d)
{
    struct load_errors *le = ctx;
    if (le->n == le->cap) {
        le->cap = le->cap ? 2 * le->cap : 16;
        le->items = dt_xrealloc(le->items, le->cap * sizeof(*le->items));
    }
    le->items[le->n++] = (struct bad_line){le->im->lines[from].line,
                                           le->column_base ? (int)d->offset + 1 : 0,
                                           dt_xstrndup(d->msg, strlen(d->msg))};
}

static int cmp_bad_line(const void *x, const void *y)
{
    const struct bad_line *a = x, *b = y;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* An import as one bulk write (see dt_store_bulk): the rule set it makes comes from memory,
 * not from the store, and the store's rows are written after the answer (at the next tick,
 * or before the next request that needs them). Its rules are loaded into the workers' table
 * only: a line that does not load is reported in errs (in order of line) and DT_ESYNTAX
 * returned, with nothing written and no answer made. */
static int import_bulk(struct admin *a, struct dt_admin_reply *rep,
                       const struct dt_store_rule *rules, const struct dt_rule_spec *specs,
                       const struct dt_import *im, int column_base, bool replace, bool force,
                       json_t *extra, struct dt_errors *errs)
{
    size_t n = im->n;
    if (!begin(a, rep, "import")) {
        json_decref(extra);
        return 0;
    }
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_store_bulk b;
    int rc = dt_store_bulk(a->store, rules, n, replace, &b, &err);
    if (rc) {
        dt_store_abort(a->store);
        reply_error(rep, rc == DT_EIO ? 500 : 400, NULL, "import: %s",
                    err.ptr ? err.ptr : dt_strerror(rc));
        dt_buf_dispose(&err);
        json_decref(extra);
        return 0;
    }
    dt_buf_dispose(&err);
    struct pending p = {.nadded = b.added, .nchanged = b.changed_count, .nremoved = b.removed};
    p.ids = dt_xmalloc((b.added + b.changed_count + 1) * sizeof(*p.ids));
    for (size_t i = 0; i < b.n; i++)
        if (b.from[i] >= 0)
            p.ids[p.nids++] = b.rules[i].id; /* in order of id */
    bool changed = b.added + b.changed_count + b.removed > 0;
    /* the workers' table, built before mu is taken: it depends on nothing live */
    struct load_errors le = {im, column_base, NULL, 0, 0};
    struct dt_table *t = changed ? dt_live_table_of(b.rules, b.n, b.from, specs,
                                                    collect_load_error, &le)
                                 : NULL;
    if (le.n) {
        qsort(le.items, le.n, sizeof(*le.items), cmp_bad_line);
        for (size_t i = 0; i < le.n; i++) {
            if (i < ERRORS_SHOWN)
                dt_errors_add_at(errs, "import", le.items[i].line, le.items[i].column, "%s",
                                 le.items[i].message);
            free(le.items[i].message);
        }
        free(le.items);
        dt_table_free(t);
        dt_store_abort(a->store);
        dt_store_bulk_dispose(&b);
        free(p.ids);
        json_decref(extra);
        return DT_ESYNTAX;
    }
    pthread_mutex_lock(&a->live.mu);
    struct dt_live_preview pv;
    if (t)
        dt_live_preview_table(&a->live, t, &pv);
    commit_write(a, rep, &p, t ? &pv : NULL, true, force, 200, extra, 0);
    dt_store_bulk_dispose(&b);
    if (dt_store_unsettled(a->store))
        start_settle(a); /* committed: its rows, after the answer */
    return 0;
}

static void import_rules(struct admin *a, const struct dt_admin_request *req,
                         struct dt_admin_reply *rep)
{
    struct dt_str q = req->query;
    char fmt[32] = "detour", mode[16] = "merge";
    query_get(q, "format", fmt, sizeof(fmt));
    query_get(q, "mode", mode, sizeof(mode));
    int64_t dstatus = 0;
    if (!query_int(rep, q, "status", 301, 308, &dstatus))
        return;
    if (dstatus && !dt_http_is_redirect(dstatus)) {
        reply_error(rep, 400, "status", "status must be 301, 302, 303, 307 or 308");
        return;
    }
    enum dt_rule_format f;
    if (dt_rule_format_parse(fmt, &f) != 0) {
        reply_error(rep, 400, "format", "format must be detour, csv, nginx or netlify, not '%s'",
                    fmt);
        return;
    }
    if (strcmp(mode, "merge") && strcmp(mode, "replace")) {
        reply_error(rep, 400, "mode", "mode must be merge or replace, not '%s'", mode);
        return;
    }
    bool dry = query_flag(q, "dry_run"), force = query_flag(q, "force");
    struct dt_import im;
    dt_import_init(&im);
    struct dt_errors errs;
    dt_errors_init(&errs);
    int rc = dt_import_convert(f, "import", req->body, (int)dstatus, &im, &errs);
    /* an import this large most likely replaces the store's table whole (a bulk write): a
     * merge in flight would be wasted work, on a core the import needs (if the import ends
     * up otherwise, the next change starts a merge again) */
    if (!dry && im.n >= DT_ADMIN_BULK_MIN) {
        pthread_mutex_lock(&a->live.mu);
        dt_live_moot_merge(&a->live);
        pthread_mutex_unlock(&a->live.mu);
    }

    /* every line must parse as a rule, and (below) load as one: the whole import or
     * nothing */
    struct dt_rule_spec *specs = dt_xcalloc(im.n + 1, sizeof(*specs));
    int column_base = f == DT_FORMAT_DETOUR ? 1 : 0; /* foreign formats: no column */
    for (size_t i = 0; i < im.n && errs.count < ERRORS_SHOWN; i++) {
        struct dt_diag d;
        struct dt_str line = dt_str_make(im.lines[i].text, strlen(im.lines[i].text));
        if (dt_rule_parse_line(line, &specs[i], &d) < 0)
            dt_errors_add_at(&errs, "import", im.lines[i].line,
                             column_base ? d.offset + 1 : 0, "%s", d.msg);
    }
    if (rc || errs.count) {
        reply_import_errors(rep, &errs);
        goto out;
    }
    /* the rules as the store keeps them: source, target, status, then the options as
     * written, canonical (a since= given is the store's to keep); an existing rule keeps its
     * note: a rule file has none to give. Source and target are ended in place: the lines
     * are the import's own, and a rule's fields are separated by blanks. */
    struct dt_store_rule *rules = dt_xcalloc(im.n + 1, sizeof(*rules));
    for (size_t i = 0; i < im.n; i++) {
        struct dt_rule_spec *sp = &specs[i];
        char *src = (char *)sp->source.ptr, *tgt = (char *)sp->target.ptr;
        src[sp->source.len] = '\0';
        tgt[sp->target.len] = '\0';
        rules[i] = (struct dt_store_rule){.source = src, .target = tgt, .status = sp->status,
                                          .options = "", .note = NULL};
        if (!sp->query_drop && sp->max_age < 0 && !sp->has_from && !sp->has_until &&
            !sp->promote_after)
            continue;
        struct dt_buf opt;
        dt_buf_init(&opt);
        options_text(&opt, sp);
        rules[i].options = opt.ptr;
    }
    bool replace = !strcmp(mode, "replace");
    json_t *extra = json_pack("{s:I}", "rules", (json_int_t)im.n);
    /* A large import, against a store not much larger, is a bulk write: decided in memory,
     * committed as one record, its rows written after the answer. */
    int64_t count = dry || im.n < DT_ADMIN_BULK_MIN ? -1 : a->store_count;
    if (count >= 0 && count <= (int64_t)im.n * 4) {
        /* the rules are loaded into the workers' table it builds: errors come from there */
        if (import_bulk(a, rep, rules, specs, &im, column_base, replace, force, extra,
                        &errs) == DT_ESYNTAX)
            reply_import_errors(rep, &errs);
    } else {
        /* every rule loaded into a table of its own first */
        struct dt_table *check = dt_table_new();
        for (size_t i = 0; i < im.n && errs.count < ERRORS_SHOWN; i++) {
            struct dt_diag d;
            if (dt_table_add(check, &specs[i], -1, im.lines[i].line, &d) < 0)
                dt_errors_add_at(&errs, "import", im.lines[i].line,
                                 column_base ? d.offset + 1 : 0, "%s", d.msg);
        }
        dt_table_free(check);
        if (errs.count) {
            json_decref(extra);
            reply_import_errors(rep, &errs);
        } else {
            import_each(a, rep, rules, &im, replace, dry, force, extra);
        }
    }
    for (size_t i = 0; i < im.n; i++)
        if (rules[i].options[0])
            free((char *)rules[i].options);
    free(rules);
out:
    free(specs);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    /* a large import's working memory (its lines and parsed rules) goes back to the system,
     * not to the allocator's free lists */
    if (req->body.len > (1 << 20))
        malloc_trim(0);
}

static void rollback(struct admin *a, const struct dt_admin_request *req,
                     struct dt_admin_reply *rep)
{
    json_t *body = parse_body(req, rep);
    if (!body)
        return;
    json_t *v = json_object_get(body, "version");
    const char *key;
    json_t *x;
    json_object_foreach(body, key, x)
    {
        if (strcmp(key, "version")) {
            reply_error(rep, 400, key, "unknown field '%s' (rollback takes version)", key);
            json_decref(body);
            return;
        }
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        reply_error(rep, 400, "version", "'version' must be a version number (0 or more)");
        json_decref(body);
        return;
    }
    int64_t version = json_integer_value(v);
    json_decref(body);
    if (!begin(a, rep, "rollback"))
        return;
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_rollback(a->store, version, &err);
    if (rc) {
        dt_store_abort(a->store);
        reply_error(rep, rc == DT_ENOENT ? 404 : 500, "version", "%s",
                    rc == DT_ENOENT ? "no such version" : (err.ptr ? err.ptr : "failed"));
        dt_buf_dispose(&err);
        return;
    }
    dt_buf_dispose(&err);
    finish_write(a, rep, query_flag(req->query, "dry_run"), false, false, 200,
                 json_pack("{s:I}", "to", (json_int_t)version), 0);
}

static int collect_version(void *ctx, const struct dt_store_version *v)
{
    json_array_append_new(ctx, json_pack("{s:I,s:o,s:s,s:s,s:I,s:I,s:I}", "version",
                                         (json_int_t)v->version, "at", time_json(v->at), "actor",
                                         v->actor, "comment", v->comment, "added",
                                         (json_int_t)v->added, "changed", (json_int_t)v->changed,
                                         "removed", (json_int_t)v->removed));
    return 0;
}

static int collect_history(void *ctx, const struct dt_store_change *c)
{
    json_array_append_new(ctx, json_pack("{s:I,s:o,s:s,s:s,s:o,s:o}", "version",
                                         (json_int_t)c->version, "at", time_json(c->at), "actor",
                                         c->actor, "kind", c->kind, "old",
                                         c->old_rule ? rule_json(c->old_rule) : json_null(),
                                         "new",
                                         c->new_rule ? rule_json(c->new_rule) : json_null()));
    return 0;
}

static void history(struct admin *a, const struct dt_admin_request *req,
                    struct dt_admin_reply *rep, bool versions)
{
    int64_t id = 0, before = 0, limit = PAGE_DEFAULT;
    if (!query_int(rep, req->query, "id", 1, INT64_MAX, &id) ||
        !query_int(rep, req->query, "before", 1, INT64_MAX, &before) ||
        !query_int(rep, req->query, "limit", 1, PAGE_MAX, &limit))
        return;
    json_t *list = json_array();
    if (versions)
        dt_store_versions(a->store, before, (size_t)limit, collect_version, list);
    else
        dt_store_history(a->store, id, before, (size_t)limit, collect_history, list);
    reply_json(rep, 200, json_pack("{s:I,s:o}", "current",
                                   (json_int_t)dt_store_version(a->store),
                                   versions ? "versions" : "changes", list));
}

/* GET /api/match?url=URL&method=M: which rule answers, and the exact response. */
static void match(struct admin *a, const struct dt_admin_request *req, struct dt_admin_reply *rep)
{
    char url[8192], method[32] = "GET";
    if (!query_get(req->query, "url", url, sizeof(url))) {
        reply_error(rep, 400, "url", "url is required: /api/match?url=http://host/path");
        return;
    }
    query_get(req->query, "method", method, sizeof(method));
    struct dt_url u;
    struct dt_diag d;
    if (dt_url_parse(dt_str_make(url, strlen(url)), &u, &d) != 0 || !u.has_authority ||
        !(dt_str_ieq(u.scheme, "http") || dt_str_ieq(u.scheme, "https")) || !u.host.len) {
        reply_error(rep, 400, "url", "url must be an absolute http or https URL");
        return;
    }
    for (const char *m = method; *m; m++)
        if (!dt_tchar[(unsigned char)*m]) {
            reply_error(rep, 400, "method", "method must be a token such as GET or POST");
            return;
        }
    /* the URL's host as a request's Host is read (the url is at most 8 KiB) */
    char host[8192];
    memcpy(host, u.host.ptr, u.host.len);
    struct dt_answer_query q = {
        .scheme = dt_str_ieq(u.scheme, "https") ? DT_SCHEME_HTTPS : DT_SCHEME_HTTP,
        .host = dt_str_make(host, dt_url_host_key(host, u.host.len)),
        .path = u.path.len ? u.path : DT_STR("/"),
        .query = u.has_query ? u.query : DT_STR_NULL,
        .now = a->now,
    };
    char date[29];
    dt_http_date(date, q.now);
    bool is_head = !strcmp(method, "HEAD");
    struct dt_http_reply r = {.date = date, .method = is_head ? DT_STR("GET")
                                                              : dt_str_make(method, strlen(method)),
                              .head = is_head, .max_age = -1};
    struct dt_buf out;
    dt_buf_init(&out);
    json_t *rule = json_null();
    pthread_mutex_lock(&a->live.mu);
    struct dt_answer ans;
    int status = dt_answer_find(a->live.current, &q, &ans);
    dt_server_write_answer(&out, &ans, &q, &r);
    json_t *location = json_null();
    if (ans.rule) {
        const struct dt_table *t = ans.table;
        const struct dt_rule *hit = ans.rule;
        char *loc = dt_xmalloc(dt_answer_location_max(&ans, &q) + 1);
        location = json_stringn(loc, dt_answer_location(&ans, &q, loc));
        free(loc);
        struct dt_buf src, tgt;
        dt_buf_init(&src);
        dt_buf_init(&tgt);
        dt_rule_source(t, hit, &src);
        dt_rule_target(t, hit, &tgt);
        struct dt_rule_origin o = dt_rule_origin(t, hit);
        bool from_store = ans.layer != DT_LAYER_FILES;
        rule = json_pack("{s:s#,s:s#,s:i}", "source", src.ptr, (int)src.len, "target", tgt.ptr,
                         (int)tgt.len, "status", status);
        struct dt_rule_spec spec;
        struct dt_buf fields, line;
        dt_buf_init(&fields);
        dt_buf_init(&line);
        dt_rule_spec_of(t, hit, &fields, &spec);
        dt_rule_format(&line, &spec);
        json_object_set_new(rule, "text", json_stringn(line.ptr, line.len));
        dt_buf_dispose(&fields);
        dt_buf_dispose(&line);
        if (from_store)
            json_object_set_new(rule, "id", json_integer(o.line));
        else {
            json_object_set_new(rule, "file", json_string(o.file ? o.file : ""));
            json_object_set_new(rule, "line", json_integer(o.line));
        }
        dt_buf_dispose(&src);
        dt_buf_dispose(&tgt);
    }
    pthread_mutex_unlock(&a->live.mu);
    json_t *j = json_pack("{s:o,s:i,s:o,s:s#}", "rule", rule, "status", status, "location",
                          location, "response", out.ptr, (int)out.len);
    dt_buf_dispose(&out);
    reply_json(rep, 200, j);
}

static void health(struct admin *a, struct dt_admin_reply *rep)
{
    pthread_mutex_lock(&a->live.mu);
    const struct dt_ruleset *rs = a->live.current;
    json_t *j = json_pack("{s:s,s:I,s:{s:I,s:I,s:I},s:I}", "status", "ok", "version",
                          (json_int_t)dt_store_version(a->store), "rules", "files",
                          (json_int_t)dt_table_size(rs->files), "store",
                          (json_int_t)a->store_count, "overlay",
                          (json_int_t)(dt_table_size(rs->overlay) +
                                       dt_table_size(rs->recent)), "uptime",
                          (json_int_t)(a->now - a->started));
    pthread_mutex_unlock(&a->live.mu);
    reply_json(rep, 200, j);
}

static void metrics(struct admin *a, struct dt_admin_reply *rep)
{
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    struct dt_buf *b = &rep->body;
    pthread_mutex_lock(&a->live.mu);
    const struct dt_ruleset *rs = a->live.current;
    dt_buf_appendf(b, "# HELP detour_rules Rules loaded, by where they come from.\n"
                      "# TYPE detour_rules gauge\n"
                      "detour_rules{source=\"files\"} %zu\n"
                      "detour_rules{source=\"store\"} %lld\n",
                   dt_table_size(rs->files), (long long)a->store_count);
    dt_buf_appendf(b, "# HELP detour_store_version The store's newest version.\n"
                      "# TYPE detour_store_version gauge\ndetour_store_version %lld\n",
                   (long long)dt_store_version(a->store));
    dt_buf_appendf(b, "# HELP detour_reloads_total Reloads of the rule files (SIGHUP).\n"
                      "# TYPE detour_reloads_total counter\ndetour_reloads_total %llu\n"
                      "# HELP detour_reload_failures_total Reloads that kept the old rules.\n"
                      "# TYPE detour_reload_failures_total counter\n"
                      "detour_reload_failures_total %llu\n",
                   (unsigned long long)a->live.reloads,
                   (unsigned long long)a->live.reload_failures);
    dt_buf_appendf(b, "# HELP detour_api_writes_total Admin API writes committed.\n"
                      "# TYPE detour_api_writes_total counter\ndetour_api_writes_total %llu\n"
                      "# HELP detour_publishes_total Rule sets published to the workers.\n"
                      "# TYPE detour_publishes_total counter\ndetour_publishes_total %llu\n"
                      "# HELP detour_merges_total Rebuilds of the store's table.\n"
                      "# TYPE detour_merges_total counter\ndetour_merges_total %llu\n",
                   (unsigned long long)a->writes, (unsigned long long)a->live.publishes,
                   (unsigned long long)a->live.merges);
    pthread_mutex_unlock(&a->live.mu);
    if (a->opt->max_temporary_age >= 0) {
        /* while a bulk import's rows are written, the count from before it */
        if (!a->settle_joinable || !atomic_load(&a->settling)) {
            wait_settle(a);
            struct dt_store_query sq = {.older_than =
                                            (int64_t)a->now - a->opt->max_temporary_age,
                                        .status = 307, .limit = 1};
            json_t *tmp = json_array();
            if (dt_store_list(a->store, &sq, collect_rule, tmp, &a->old_temporary) != 0)
                a->old_temporary = -1;
            json_decref(tmp);
        }
        /* (none counted yet, when the first scrape comes while rows are written: left out
         * until the next) */
        if (a->old_temporary >= 0)
            dt_buf_appendf(b, "# HELP detour_old_temporary_rules Store rules answering 307 for "
                              "longer than --max-temporary-age (S10).\n"
                              "# TYPE detour_old_temporary_rules gauge\n"
                              "detour_old_temporary_rules %lld\n",
                           (long long)a->old_temporary);
    }
    pthread_mutex_lock(&a->live.mu);
    struct dt_server *srv = a->live.srv;
    pthread_mutex_unlock(&a->live.mu);
    if (srv) {
        struct dt_server_stats st;
        dt_server_get_stats(srv, &st);
        static const char *const names[DT_ST_COUNT] = {"301", "302", "303", "307",
                                                       "308", "404", "4xx", "5xx"};
        dt_buf_appendf(b, "# HELP detour_requests_total Requests answered, by status.\n"
                          "# TYPE detour_requests_total counter\n");
        for (int k = 0; k < DT_ST_COUNT; k++)
            dt_buf_appendf(b, "detour_requests_total{status=\"%s\"} %llu\n", names[k],
                           (unsigned long long)st.status[k]);
        static const char *const srcs[DT_SRC_COUNT] = {"files", "store", "none"};
        dt_buf_appendf(b, "# HELP detour_requests_by_source_total Requests by where the "
                          "answering rule came from (none: no rule, 404).\n"
                          "# TYPE detour_requests_by_source_total counter\n");
        for (int k = 0; k < DT_SRC_COUNT; k++)
            dt_buf_appendf(b, "detour_requests_by_source_total{source=\"%s\"} %llu\n",
                           srcs[k], (unsigned long long)st.source[k]);
        dt_buf_appendf(b, "# HELP detour_request_duration_seconds Time from reading a request "
                          "to its answer being ready.\n"
                          "# TYPE detour_request_duration_seconds histogram\n");
        uint64_t cum = 0;
        for (int k = 0; k <= DT_LATENCY_BUCKETS; k++) {
            cum += st.latency[k];
            if (k < DT_LATENCY_BUCKETS)
                dt_buf_appendf(b, "detour_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                               dt_latency_bounds_us[k] / 1e6, (unsigned long long)cum);
            else
                dt_buf_appendf(b, "detour_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                               (unsigned long long)cum);
        }
        dt_buf_appendf(b, "detour_request_duration_seconds_sum %.9f\n"
                          "detour_request_duration_seconds_count %llu\n",
                       st.latency_sum_ns / 1e9, (unsigned long long)cum);
        dt_buf_appendf(b, "# HELP detour_connections_total Connections accepted.\n"
                          "# TYPE detour_connections_total counter\n"
                          "detour_connections_total %llu\n",
                       (unsigned long long)st.connections);
    }
    dt_buf_appendf(b, "# HELP detour_admin_requests_total Admin API requests.\n"
                      "# TYPE detour_admin_requests_total counter\n"
                      "detour_admin_requests_total %llu\n"
                      "# HELP detour_admin_unauthorized_total Admin API requests refused 401.\n"
                      "# TYPE detour_admin_unauthorized_total counter\n"
                      "detour_admin_unauthorized_total %llu\n",
                   (unsigned long long)a->requests, (unsigned long long)a->refused_auth);
}

static bool path_is(struct dt_str p, const char *s)
{
    return dt_str_eq(p, dt_str_make(s, strlen(s)));
}

static bool method_in(struct dt_admin_reply *rep, struct dt_str m, const char *allowed)
{
    /* allowed: "GET POST" */
    const char *p = allowed;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (m.len == n && !memcmp(m.ptr, p, n))
            return true;
        if (n == 3 && !memcmp(p, "GET", 3) && dt_str_eq(m, DT_STR("HEAD")))
            return true;
        p += n + (e ? 1 : 0);
    }
    char list[64];
    snprintf(list, sizeof(list), "%s", allowed);
    for (char *c = list; *c; c++)
        if (*c == ' ')
            *c = ',';
    dt_buf_appendf(&rep->headers, "Allow: %s\r\n", list);
    reply_error(rep, 405, NULL, "%.*s is not allowed here (allowed: %s)", (int)m.len, m.ptr,
                allowed);
    return false;
}

static void handle_one(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep);

static void handle(void *ctx, const struct dt_admin_request *req, struct dt_admin_reply *rep)
{
    struct admin *a = ctx;
    answering = a;
    a->now = req->now;
    handle_one(a, req, rep);
    answering = NULL;
}

static void handle_one(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep)
{
    a->requests++;
    if (!dt_admin_token_ok(req->authorization, a->token)) {
        a->refused_auth++;
        dt_buf_appendf(&rep->headers, "WWW-Authenticate: Bearer realm=\"detour\"\r\n");
        reply_error(rep, 401, NULL, "a valid bearer token is required (Authorization: Bearer "
                                    "TOKEN, the token is in the token file)");
        return;
    }
    struct dt_str p = req->path;
    /* the parameters each endpoint takes */
    static const struct {
        const char *path, *allowed;
    } params[] = {
        {"/api/health", ""},
        {"/metrics", ""},
        {"/api/rules", "text host status old_temporary after limit dry_run"},
        {"/api/import", "format mode status force dry_run"},
        {"/api/match", "url method"},
        {"/api/rollback", "dry_run"},
        {"/api/versions", "before limit"},
        {"/api/history", "id before limit"},
    };
    const char *allowed = p.len > 11 && !memcmp(p.ptr, "/api/rules/", 11) ? "dry_run" : NULL;
    for (size_t i = 0; !allowed && i < DT_ARRAY_LEN(params); i++)
        if (path_is(p, params[i].path))
            allowed = params[i].allowed;
    if (allowed && !query_known(rep, req->query, allowed))
        return;
    /* all but these read or write rules on this connection: after the rows of a bulk import */
    if (!path_is(p, "/api/health") && !path_is(p, "/metrics") && !path_is(p, "/api/match"))
        wait_settle(a);
    if (path_is(p, "/api/health")) {
        if (method_in(rep, req->method, "GET"))
            health(a, rep);
    } else if (path_is(p, "/metrics")) {
        if (method_in(rep, req->method, "GET"))
            metrics(a, rep);
    } else if (path_is(p, "/api/rules")) {
        if (!method_in(rep, req->method, "GET POST"))
            return;
        if (dt_str_eq(req->method, DT_STR("POST")))
            create_rule(a, req, rep);
        else
            list_rules(a, req, rep);
    } else if (p.len > 11 && !memcmp(p.ptr, "/api/rules/", 11)) {
        int64_t id;
        if (!parse_id(dt_str_make(p.ptr + 11, p.len - 11), &id)) {
            reply_error(rep, 404, NULL, "no such rule: rules are /api/rules/ID with a number");
            return;
        }
        one_rule(a, req, rep, id);
    } else if (path_is(p, "/api/import")) {
        if (method_in(rep, req->method, "POST"))
            import_rules(a, req, rep);
    } else if (path_is(p, "/api/match")) {
        if (method_in(rep, req->method, "GET"))
            match(a, req, rep);
    } else if (path_is(p, "/api/rollback")) {
        if (method_in(rep, req->method, "POST"))
            rollback(a, req, rep);
    } else if (path_is(p, "/api/versions")) {
        if (method_in(rep, req->method, "GET"))
            history(a, req, rep, true);
    } else if (path_is(p, "/api/history")) {
        if (method_in(rep, req->method, "GET"))
            history(a, req, rep, false);
    } else {
        reply_error(rep, 404, NULL, "no such endpoint: %.*s (see docs/admin.md)", (int)p.len,
                    p.ptr);
    }
    if (rep->status >= 500)
        a->errors++;
}

/* ---- hooks and running -------------------------------------------------------------------- */

static void on_started(void *ctx, struct dt_server *srv)
{
    struct admin *a = ctx;
    pthread_mutex_lock(&a->live.mu);
    a->live.srv = srv;
    pthread_mutex_unlock(&a->live.mu);
}

static void on_stopping(void *ctx)
{
    struct admin *a = ctx;
    dt_live_stop(&a->live); /* (the settle thread is joined once the admin thread is) */
}

static void on_reload(void *ctx, struct dt_server *srv)
{
    (void)srv;
    struct admin *a = ctx;
    dt_live_reload(&a->live);
}

/* promote-after=: the rules whose time has come are written to the store as promoted
 * (307 -> 308, 302 -> 301, the option dropped), one version by "lifecycle", so that the
 * audit trail has each transition. The workers already answer with the promoted status
 * from that second on, without waiting for this. */
static int promote_one(void *ctx, const struct dt_store_rule *r)
{
    struct dt_store_rule *out = ctx;
    out->id = r->id;
    out->source = dt_xstrndup(r->source, strlen(r->source));
    out->target = dt_xstrndup(r->target, strlen(r->target));
    out->note = dt_xstrndup(r->note ? r->note : "", strlen(r->note ? r->note : ""));
    out->status = r->status;
    /* the options without promote-after=AGE */
    struct dt_rule_spec spec;
    struct dt_diag d;
    struct dt_buf b;
    dt_buf_init(&b);
    if (dt_live_spec(r, &spec, &d) == 0) {
        out->version = spec.promote_after > 0;
        spec.promote_after = 0;
        options_text(&b, &spec);
    } else {
        dt_buf_appendf(&b, "%s", r->options ? r->options : ""); /* as it is: not promoted */
    }
    out->options = b.ptr ? b.ptr : dt_xstrndup("", 0);
    return 0;
}

static void on_tick(void *ctx, time_t now)
{
    struct admin *a = ctx;
    a->now = now;
    if (a->settle_joinable) {
        if (atomic_load(&a->settling))
            return; /* promotions wait for the rows */
        wait_settle(a);
    }
    if (dt_store_unsettled(a->store))
        settle_on(a->store, "tried again in a second");
    pthread_mutex_lock(&a->live.mu);
    int64_t *ids = NULL;
    size_t n = dt_live_due(&a->live, now, &ids);
    pthread_mutex_unlock(&a->live.mu);
    if (!n) {
        free(ids);
        return;
    }
    struct dt_buf err;
    dt_buf_init(&err);
    if (dt_store_begin(a->store, (int64_t)now, "lifecycle", "promote-after", &err) != 0) {
        dt_log(DT_LOG_ERROR, "promote-after: %s", err.ptr ? err.ptr : "cannot write");
        dt_buf_dispose(&err);
        free(ids);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct dt_store_rule r = {0};
        if (dt_store_get(a->store, ids[i], promote_one, &r) == 0 && r.version &&
            (r.status == 307 || r.status == 302)) {
            r.status = r.status == 307 ? 308 : 301;
            if (dt_store_replace(a->store, ids[i], &r, &err) != 0)
                dt_log(DT_LOG_ERROR, "promote-after: rule %lld: %s", (long long)ids[i],
                       err.ptr ? err.ptr : "");
        }
        free((char *)r.source);
        free((char *)r.target);
        free((char *)r.note);
        free((char *)r.options);
    }
    free(ids);
    struct pending p = {json_array(), json_array(), json_array(), NULL, 0, 0, NULL, 0, 0,
                        false, 0, 0, 0};
    dt_store_pending(a->store, collect_change, &p);
    int64_t version = 0;
    if (dt_store_commit(a->store, &version, &err) == 0) {
        for (size_t i = 0; i < p.n; i++)
            p.ch[i].version = version;
        pthread_mutex_lock(&a->live.mu);
        dt_live_apply(&a->live, p.ch, p.n);
        pthread_mutex_unlock(&a->live.mu);
        if (p.n)
            dt_log(DT_LOG_INFO, "promote-after: %zu rules promoted (version %lld)", p.n,
                   (long long)version);
    } else {
        dt_log(DT_LOG_ERROR, "promote-after: the store did not commit: %s", err.ptr);
    }
    pending_dispose(&p);
    dt_buf_dispose(&err);
}

void dt_admin_options_init(struct dt_admin_options *o)
{
    o->db_path = "./detour.db";
    o->token_file = NULL;
    o->max_temporary_age = 30 * 24 * 3600;
}

int dt_admin_run(struct dt_server_config *cfg, const struct dt_admin_options *o)
{
    struct admin *a = dt_xcalloc(1, sizeof(*a));
    atomic_init(&a->settling, false);
    a->old_temporary = -1;
    a->opt = o;
    a->cfg = cfg;
    a->started = a->now = dt_wall_now();
    struct dt_buf err;
    dt_buf_init(&err);
    int status = 1;
    uint64_t t0 = dt_now_ms();
    /* The rule files first: a bad file stops here, before a store or a token is created. */
    struct dt_table *files = dt_live_load_files(cfg);
    if (!files) {
        free(a);
        return 2;
    }
    a->store = dt_store_open(o->db_path, &err);
    if (!a->store) {
        dt_log(DT_LOG_ERROR, "cannot open the store: %s", err.ptr ? err.ptr : o->db_path);
        goto out;
    }
    if (cfg->nadmin) {
        char path[4096];
        const char *tf = o->token_file;
        if (!tf) {
            if (!strcmp(o->db_path, ":memory:"))
                tf = "./detour.token";
            else {
                snprintf(path, sizeof(path), "%s.token", o->db_path);
                tf = path;
            }
        }
        if (dt_admin_token_load(tf, a->token, sizeof(a->token), &err) != 0) {
            dt_log(DT_LOG_ERROR, "admin token: %s", err.ptr);
            goto out;
        }
    }
    int rc = dt_live_init(&a->live, cfg, a->store, o->db_path, files, &err);
    files = NULL;
    if (rc) {
        if (err.len)
            dt_log(DT_LOG_ERROR, "%s", err.ptr);
        status = rc == DT_ESYNTAX ? 2 : 1;
        goto out;
    }
    a->store_count = dt_store_count(a->store);
    if (strcmp(o->db_path, ":memory:") != 0) {
        a->settle_store = dt_store_open(o->db_path, &err);
        if (!a->settle_store) {
            dt_log(DT_LOG_WARN, "no connection to the store for bulk imports' rows (%s): the "
                                "admin thread writes them", err.ptr ? err.ptr : "");
            err.len = 0;
        }
    }
    cfg->initial = a->live.current;
    cfg->initial_load_ms = dt_now_ms() - t0;
    cfg->hooks = (struct dt_server_hooks){.ctx = a, .started = on_started, .reload = on_reload,
                                          .stopping = on_stopping, .admin = handle,
                                          .tick = on_tick};
    status = dt_server_run(cfg);
    wait_settle(a);
    dt_live_dispose(&a->live);
out:
    dt_table_free(files);
    dt_buf_dispose(&err);
    if (a->settle_store)
        dt_store_close(a->settle_store);
    if (a->store)
        dt_store_close(a->store);
    free(a);
    return status;
}
