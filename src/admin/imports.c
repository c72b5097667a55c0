/* imports: POST /api/import: a whole rule file (any format) checked line by line and
 * written as one version, merged or replacing the store's rules; a large one as a bulk
 * write. */
#include "admin/internal.h"
#include "rules/import.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
        json_array_append_new(
            list, json_pack("{s:I,s:I,s:s}", "line", (json_int_t)errs->items[i].line, "column",
                            (json_int_t)errs->items[i].column, "message", errs->items[i].message));
    json_t *j = json_pack("{s:s,s:I,s:o}", "error",
                          errs->count ? "the import has errors; nothing was written"
                                      : "the import could not be read",
                          "count", (json_int_t)errs->count, "errors", list);
    if (errs->count) {
        json_object_set_new(j, "line", json_integer(errs->items[0].line));
        json_object_set_new(j, "message", json_string(errs->text.ptr));
    }
    dt_admin_reply_json(rep, 400, j);
}

/* An import as one dt_store_put per rule (then the removal of the rules it does not name,
 * with replace): the rule set is checked and published as for any write. */
static void import_each(struct admin *a, struct dt_admin_reply *rep,
                        const struct dt_store_rule *rules, const struct dt_import *im, bool replace,
                        bool dry, bool force, json_t *extra)
{
    if (!dt_admin_begin(a, rep, "import")) {
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
            dt_admin_reply_error(rep, wrc == DT_EEXIST ? 400 : 500, NULL, "import line %u: %s",
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
    dt_admin_finish_write(a, rep, dry, true, force, 200, extra, 0);
}

struct load_errors {
    const struct dt_import *im;
    int column_base;
    struct bad_line {
        uint32_t line;
        int column;
        char *message;
    } * items;
    size_t n, cap;
};

static void collect_load_error(void *ctx, int64_t from, const struct dt_diag *d)
{
    struct load_errors *le = ctx;
    if (le->n == le->cap) {
        le->cap = le->cap ? 2 * le->cap : 16;
        le->items = dt_xrealloc(le->items, le->cap * sizeof(*le->items));
    }
    le->items[le->n++] =
        (struct bad_line){le->im->lines[from].line, le->column_base ? (int)d->offset + 1 : 0,
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
    if (!dt_admin_begin(a, rep, "import")) {
        json_decref(extra);
        return 0;
    }
    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_store_bulk b;
    int rc = dt_store_bulk(a->store, rules, n, replace, &b, &err);
    if (rc) {
        dt_store_abort(a->store);
        dt_admin_reply_error(rep, rc == DT_EIO ? 500 : 400, NULL, "import: %s",
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
    struct dt_table *t =
        changed ? dt_live_table_of(b.rules, b.n, b.from, specs, collect_load_error, &le) : NULL;
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
    dt_admin_commit_write(a, rep, &p, t ? &pv : NULL, true, force, 200, extra, 0);
    dt_store_bulk_dispose(&b);
    if (dt_store_unsettled(a->store))
        dt_admin_start_settle(a); /* committed: its rows, after the answer */
    return 0;
}

void dt_admin_import_rules(struct admin *a, const struct dt_admin_request *req,
                           struct dt_admin_reply *rep)
{
    struct dt_str q = req->query;
    char fmt[32] = "detour", mode[16] = "merge";
    dt_admin_query_get(q, "format", fmt, sizeof(fmt));
    dt_admin_query_get(q, "mode", mode, sizeof(mode));
    int64_t dstatus = 0;
    if (!dt_admin_query_int(rep, q, "status", 301, 308, &dstatus))
        return;
    if (dstatus && !dt_http_is_redirect(dstatus)) {
        dt_admin_reply_error(rep, 400, "status", "status must be 301, 302, 303, 307 or 308");
        return;
    }
    enum dt_rule_format f;
    if (dt_rule_format_parse(fmt, &f) != 0) {
        dt_admin_reply_error(rep, 400, "format",
                             "format must be detour, csv, nginx or netlify, not '%s'", fmt);
        return;
    }
    if (strcmp(mode, "merge") && strcmp(mode, "replace")) {
        dt_admin_reply_error(rep, 400, "mode", "mode must be merge or replace, not '%s'", mode);
        return;
    }
    bool dry = dt_admin_query_flag(q, "dry_run"), force = dt_admin_query_flag(q, "force");
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
            dt_errors_add_at(&errs, "import", im.lines[i].line, column_base ? d.offset + 1 : 0,
                             "%s", d.msg);
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
        rules[i] = (struct dt_store_rule){
            .source = src, .target = tgt, .status = sp->status, .options = "", .note = NULL};
        sp->query_set = false; /* the store keeps what a rule does: query=keep is implied */
        if (!sp->query_drop && sp->max_age < 0 && !sp->has_from && !sp->has_until &&
            !sp->promote_after)
            continue;
        struct dt_buf opt;
        dt_buf_init(&opt);
        dt_admin_options_text(&opt, sp);
        rules[i].options = opt.ptr;
    }
    bool replace = !strcmp(mode, "replace");
    json_t *extra = json_pack("{s:I}", "rules", (json_int_t)im.n);
    /* A large import, against a store not much larger, is a bulk write: decided in memory,
     * committed as one record, its rows written after the answer. */
    int64_t count = dry || im.n < DT_ADMIN_BULK_MIN ? -1 : a->store_count;
    if (count >= 0 && count <= (int64_t)im.n * 4) {
        /* the rules are loaded into the workers' table it builds: errors come from there */
        if (import_bulk(a, rep, rules, specs, &im, column_base, replace, force, extra, &errs) ==
            DT_ESYNTAX)
            reply_import_errors(rep, &errs);
    } else {
        /* every rule loaded into a table of its own first */
        struct dt_table *check = dt_table_new();
        for (size_t i = 0; i < im.n && errs.count < ERRORS_SHOWN; i++) {
            struct dt_diag d;
            if (dt_table_add(check, &specs[i], -1, im.lines[i].line, &d) < 0)
                dt_errors_add_at(&errs, "import", im.lines[i].line, column_base ? d.offset + 1 : 0,
                                 "%s", d.msg);
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
