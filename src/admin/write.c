/* write: the admin API's write pipeline: one transaction, the diff, the check of what it
 * changes (lint), commit, publish, answer; and the rows of a bulk import, written after its
 * answer by a thread of its own. */
#include "admin/internal.h"
#include "rules/import.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- a bulk import's rows ------------------------------------------------------------------ */

/* Writes the rows of the bulk imports committed (see dt_store_bulk) on connection s, and
 * says how long it took or why it failed (then retry says who tries again). */
void dt_admin_settle_on(struct dt_store *s, const char *retry)
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
    dt_admin_settle_on(a->settle_store, "the admin thread tries again");
    atomic_store(&a->settling, false);
    return NULL;
}

/* After a bulk import's commit: its rows are written by the settle thread, if there is a
 * connection for it (else by the admin thread's next tick or request). */
void dt_admin_start_settle(struct admin *a)
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
void dt_admin_wait_settle(struct admin *a)
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

int dt_admin_collect_change(void *ctx, const struct dt_store_change *c)
{
    struct pending *p = ctx;
    /* the rules themselves only for a dry run's diff; a write only counts them */
    if (!strcmp(c->kind, "added")) {
        p->nadded++;
        if (p->diff)
            json_array_append_new(p->added, dt_admin_rule_json(c->new_rule));
    } else if (!strcmp(c->kind, "removed")) {
        p->nremoved++;
        if (p->diff)
            json_array_append_new(p->removed, dt_admin_rule_json(c->old_rule));
    } else {
        p->nchanged++;
        if (p->diff)
            json_array_append_new(p->changed,
                                  json_pack("{s:o,s:o}", "old", dt_admin_rule_json(c->old_rule),
                                            "new", dt_admin_rule_json(c->new_rule)));
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
    p->ch[p->n++] =
        (struct change){r->id, c->version, c->new_rule ? dt_live_line(c->new_rule) : NULL, true};
    return 0;
}

void dt_admin_pending_dispose(struct pending *p)
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
                                     .focus = focus_changed,
                                     .focus_ctx = &fc};
        struct dt_lint_report rep = {0};
        dt_lint_run(t, &lo, &rep);
        for (size_t i = 0; i < rep.n; i++) {
            const struct dt_lint_finding *f = &rep.findings[i];
            if (!f->file || strcmp(f->file, "store") || !changed_id(p, f->line))
                continue;
            if (f->severity == DT_LINT_ERROR)
                (*errors)++;
            json_array_append_new(out, json_pack("{s:s,s:s,s:I,s:s}", "severity",
                                                 f->severity == DT_LINT_ERROR ? "error" : "warning",
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
    } * found;
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
static json_t *check_changed(const struct pending *p, const struct dt_live_preview *pv, time_t now,
                             unsigned *errors)
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
                json_array_append_new(out,
                                      json_pack("{s:s,s:s,s:I,s:s}", "severity", "error", "kind",
                                                f->kind == DT_LINT_RULE_LOOP ? "loop" : "conflict",
                                                "id", (json_int_t)f->id, "message", f->message));
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
void dt_admin_commit_write(struct admin *a, struct dt_admin_reply *rep, struct pending *p,
                           struct dt_live_preview *pv, bool refuse_errors, bool force, int status,
                           json_t *extra, int64_t rule_id)
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
            dt_admin_reply_json(rep, 409, j);
            goto out;
        }
        json_decref(findings);
    }
    int64_t version = 0;
    if (dt_store_commit(a->store, &version, &err) != 0) {
        if (pv)
            dt_live_preview_dispose(pv);
        pthread_mutex_unlock(&a->live.mu);
        dt_admin_reply_error(rep, 500, NULL, "the store did not commit: %s",
                             err.ptr ? err.ptr : "");
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
    if (rule_id && dt_store_get(a->store, rule_id, dt_admin_get_rule, &stored) == 0)
        json_object_set_new(j, "rule", stored);
    dt_admin_reply_json(rep, status, j);
out:
    dt_buf_dispose(&err);
    dt_admin_pending_dispose(p);
}

/* Finishes an open write transaction: with dry_run, answers the diff and the lint findings
 * and abandons it; otherwise as commit_write. */
void dt_admin_finish_write(struct admin *a, struct dt_admin_reply *rep, bool dry_run,
                           bool refuse_errors, bool force, int status, json_t *extra,
                           int64_t rule_id)
{
    struct pending p = {
        json_array(), json_array(), json_array(), NULL, 0, 0, NULL, 0, 0, dry_run, 0, 0, 0};
    dt_store_pending(a->store, dt_admin_collect_change, &p);
    if (dry_run) {
        unsigned errors = 0;
        json_t *findings = lint_pending(a, &p, &errors);
        dt_store_abort(a->store);
        json_t *j = json_pack("{s:b,s:{s:O,s:O,s:O},s:o,s:b}", "dry_run", 1, "diff", "added",
                              p.added, "changed", p.changed, "removed", p.removed, "lint", findings,
                              "would_refuse", refuse_errors && errors && !force);
        if (extra)
            json_object_update(j, extra);
        json_decref(extra);
        dt_admin_reply_json(rep, 200, j);
        dt_admin_pending_dispose(&p);
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
        dt_admin_reply_error(rep, 500, NULL, "cannot read the store's rules: %s",
                             err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        json_decref(extra);
        dt_admin_pending_dispose(&p);
        return;
    }
    dt_buf_dispose(&err);
    dt_admin_commit_write(a, rep, &p, p.nids ? &pv : NULL, refuse_errors, force, status, extra,
                          rule_id);
}

bool dt_admin_begin(struct admin *a, struct dt_admin_reply *rep, const char *actor)
{
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_begin(a->store, (int64_t)a->now, actor, "", &err);
    if (rc)
        dt_admin_reply_error(rep, 503, NULL, "the store cannot start a write: %s",
                             err.ptr ? err.ptr : "");
    dt_buf_dispose(&err);
    return rc == 0;
}
