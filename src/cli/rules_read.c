/* rules_read: `detour rules` list, get, export, match, history, versions and rollback. */
#include "cli/rules.h"

/* ---- list, get, export --------------------------------------------------------------------- */

static const char *const list_head[] = {"ID",     "STATUS",        "SOURCE",
                                        "TARGET", "SINCE/UPDATED", "NOTE"};

static void list_rows(struct table *t, json_t *rules)
{
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        char id[24], status[24];
        snprintf(id, sizeof(id), "%lld", (long long)dt_rcli_jint(r, "id"));
        snprintf(status, sizeof(status), "%lld", (long long)dt_rcli_jint(r, "status"));
        /* S10: for a 307, since when it has answered 307 */
        const char *when =
            *dt_rcli_jstr(r, "since") ? dt_rcli_jstr(r, "since") : dt_rcli_jstr(r, "updated");
        const char *cells[] = {id,
                               status,
                               dt_rcli_jstr(r, "source"),
                               dt_rcli_jstr(r, "target"),
                               when,
                               dt_rcli_jstr(r, "note")};
        dt_rcli_table_row(t, cells);
    }
}

int dt_rcli_cmd_list(struct client *c, const struct args *a)
{
    struct dt_buf base;
    dt_buf_init(&base);
    dt_buf_appendf(&base, "/api/rules");
    if (a->text)
        dt_rcli_query_add(&base, c, "text", a->text);
    if (a->host)
        dt_rcli_query_add(&base, c, "host", a->host);
    if (a->status)
        dt_rcli_query_add_int(&base, c, "status", a->status);
    if (a->old_temporary)
        dt_rcli_query_add(&base, c, "old_temporary", "1");
    if (a->limit || a->all)
        dt_rcli_query_add_int(&base, c, "limit", a->limit ? (int64_t)a->limit : PAGE_ALL);
    struct table t;
    dt_rcli_table_init(&t, DT_ARRAY_LEN(list_head), list_head);
    int rc = DT_EXIT_OK;
    int64_t after = 0, shown = 0, total = 0;
    bool more = false;
    for (;;) {
        struct dt_buf path;
        dt_buf_init(&path);
        dt_buf_append(&path, base.ptr, base.len);
        dt_buf_terminate(&path);
        if (after)
            dt_rcli_query_add_int(&path, c, "after", after);
        struct answer ans;
        dt_rcli_answer_init(&ans);
        rc = dt_rcli_call(c, "GET", path.ptr, NULL, &ans);
        dt_buf_dispose(&path);
        if (rc) {
            dt_rcli_answer_dispose(&ans);
            break;
        }
        json_t *rules = json_object_get(ans.json, "rules");
        json_t *next = json_object_get(ans.json, "next_after");
        total = dt_rcli_jint(ans.json, "total");
        shown += (int64_t)json_array_size(rules);
        dt_rcli_print_json(c, &ans);
        if (!c->json) {
            list_rows(&t, rules);
            dt_rcli_table_flush(&t);
        }
        more = json_is_integer(next);
        after = json_integer_value(next);
        dt_rcli_answer_dispose(&ans);
        if (!a->all || !more || after <= 0)
            break;
    }
    fflush(stdout);
    if (rc == DT_EXIT_OK && !c->json) {
        if (shown == 0)
            fprintf(stderr, "detour rules: no rules%s\n",
                    a->text || a->host || a->status || a->old_temporary ? " match" : "");
        else if (more && !a->all)
            fprintf(stderr, "detour rules: %lld of %lld rules shown (--all for every one)\n",
                    (long long)shown, (long long)total);
    }
    dt_rcli_table_dispose(&t);
    dt_buf_dispose(&base);
    return rc;
}

int dt_rcli_parse_id(const struct command *cmd, const char *what, const char *s, int64_t min,
                     int64_t *out)
{
    if (dt_parse_int(dt_str_make(s, strlen(s)), min, INT64_MAX, out) == 0)
        return 0;
    return dt_rcli_usage(cmd, "%s: '%.*s' is not a number from %lld up", what, SHOWN_MAX, s,
                         (long long)min);
}

const struct command *dt_rcli_current;

int dt_rcli_cmd_get(struct client *c, const struct args *a)
{
    int64_t id;
    if (dt_rcli_parse_id(dt_rcli_current, "ID", a->pos[0], 1, &id))
        return DT_EXIT_USAGE;
    char path[64];
    snprintf(path, sizeof(path), "/api/rules/%lld", (long long)id);
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, "GET", path, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        if (!c->json) {
            json_t *r = ans.json;
            char *line = dt_rcli_rule_text(r);
            printf("%-14s%lld\n%-14s%s\n", "id", (long long)dt_rcli_jint(r, "id"), "rule", line);
            free(line);
            /* every field in a fixed order; those this server does not send are left out */
            static const char *const fields[] = {"source",  "target",  "status",  "query",
                                                 "cache",   "from",    "until",   "promote_after",
                                                 "note",    "created", "updated", "since",
                                                 "version", "hits",    "last_hit"};
            for (size_t i = 0; i < DT_ARRAY_LEN(fields); i++) {
                json_t *v = json_object_get(r, fields[i]);
                if (!v)
                    continue;
                printf("%-14s", fields[i]);
                if (json_is_string(v) && json_string_length(v))
                    dt_rcli_put_clean(stdout, json_string_value(v));
                else if (json_is_integer(v))
                    printf("%lld", (long long)json_integer_value(v));
                else
                    fputs("-", stdout); /* null or "" */
                putchar('\n');
            }
        }
    }
    dt_rcli_answer_dispose(&ans);
    return rc;
}

/* The store's newest version (GET /api/versions?limit=1). */
static int current_version(struct client *c, int64_t *out)
{
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, "GET", "/api/versions?limit=1", NULL, &ans);
    if (rc == DT_EXIT_OK)
        *out = dt_rcli_jint(ans.json, "current");
    dt_rcli_answer_dispose(&ans);
    return rc;
}

/* One pass over every store rule: rule-file lines (or the pages as JSON lines) into out.
 * A rule's note follows it as a comment, which an import does not read back. */
static int export_pass(struct client *c, struct dt_buf *out, int64_t *count)
{
    int64_t after = 0;
    *count = 0;
    for (;;) {
        char path[96];
        snprintf(path, sizeof(path), "/api/rules?limit=%d&after=%lld", PAGE_ALL, (long long)after);
        struct answer ans;
        dt_rcli_answer_init(&ans);
        int rc = dt_rcli_call(c, "GET", path, NULL, &ans);
        if (rc) {
            dt_rcli_answer_dispose(&ans);
            return rc;
        }
        json_t *rules = json_object_get(ans.json, "rules");
        if (c->json) {
            dt_buf_append(out, ans.body.ptr, ans.body.len);
        } else {
            size_t i;
            json_t *r;
            json_array_foreach(rules, i, r)
            {
                dt_rcli_rule_line(out, r);
                const char *note = dt_rcli_jstr(r, "note");
                if (*note) {
                    size_t at = out->len;
                    dt_buf_appendf(out, "  # %s", note);
                    for (size_t k = at; k < out->len; k++)
                        if ((unsigned char)out->ptr[k] < 0x20 || out->ptr[k] == 0x7f)
                            out->ptr[k] = ' ';
                }
                dt_buf_append(out, "\n", 1);
            }
        }
        *count += (int64_t)json_array_size(rules);
        json_t *next = json_object_get(ans.json, "next_after");
        after = json_integer_value(next);
        bool more = json_is_integer(next) && after > 0;
        dt_rcli_answer_dispose(&ans);
        if (!more)
            return DT_EXIT_OK;
    }
}

int dt_rcli_cmd_export(struct client *c, const struct args *a)
{
    (void)a;
    /* The pages are separate requests: the export is kept only when the store's version is
     * the same before and after, so that it is one version's rules. */
    for (int attempt = 0; attempt < EXPORT_TRIES; attempt++) {
        int64_t v0, v1, count;
        struct dt_buf out;
        dt_buf_init(&out);
        int rc = current_version(c, &v0);
        if (rc == DT_EXIT_OK) {
            if (!c->json)
                dt_buf_appendf(&out, "# detour rules export from %s, store version %lld\n",
                               c->server, (long long)v0);
            rc = export_pass(c, &out, &count);
        }
        if (rc == DT_EXIT_OK)
            rc = current_version(c, &v1);
        if (rc == DT_EXIT_OK && v0 == v1) {
            if (!c->json)
                dt_buf_appendf(&out, "# %lld rules\n", (long long)count);
            if (out.len)
                fwrite(out.ptr, 1, out.len, stdout);
            int wrc = fflush(stdout);
            dt_buf_dispose(&out);
            if (wrc) {
                fprintf(stderr, "detour rules: writing the export failed: %s\n", strerror(errno));
                return DT_EXIT_FAIL;
            }
            return DT_EXIT_OK;
        }
        dt_buf_dispose(&out);
        if (rc)
            return rc;
    }
    fprintf(stderr, "detour rules: the store changed during each of %d exports; try again\n",
            EXPORT_TRIES);
    return DT_EXIT_FAIL;
}

/* ---- match, history, versions, rollback ---------------------------------------------------- */

int dt_rcli_cmd_match(struct client *c, const struct args *a)
{
    const char *url = a->pos[0];
    struct dt_buf full;
    dt_buf_init(&full);
    /* "example.com/old" means http://example.com/old */
    dt_buf_appendf(&full, "%s%s", strstr(url, "://") ? "" : "http://", url);
    struct dt_buf p;
    dt_buf_init(&p);
    dt_buf_appendf(&p, "/api/match");
    dt_rcli_query_add(&p, c, "url", full.ptr);
    if (a->method)
        dt_rcli_query_add(&p, c, "method", a->method);
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, "GET", p.ptr, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        json_t *j = ans.json, *rule = json_object_get(j, "rule");
        if (!c->json) {
            if (json_is_object(rule)) {
                char *t = dt_rcli_rule_text(rule);
                if (json_object_get(rule, "id"))
                    printf("rule: store rule %lld: %s\n", (long long)dt_rcli_jint(rule, "id"), t);
                else {
                    fputs("rule: ", stdout);
                    dt_rcli_put_clean(stdout, dt_rcli_jstr(rule, "file"));
                    printf(":%lld: %s\n", (long long)dt_rcli_jint(rule, "line"), t);
                }
                free(t);
            } else {
                puts("rule: none (404)");
            }
            printf("status: %lld\n", (long long)dt_rcli_jint(j, "status"));
            if (*dt_rcli_jstr(j, "location")) {
                fputs("location: ", stdout);
                dt_rcli_put_clean(stdout, dt_rcli_jstr(j, "location"));
                putchar('\n');
            }
            /* the response as the redirect listener sends it, byte for byte */
            json_t *resp = json_object_get(j, "response");
            printf("\n");
            fwrite(json_string_value(resp) ? json_string_value(resp) : "", 1,
                   json_string_length(resp), stdout);
        }
    }
    dt_rcli_answer_dispose(&ans);
    dt_buf_dispose(&p);
    dt_buf_dispose(&full);
    return rc;
}

static const char *const history_head[] = {"VERSION", "AT", "ACTOR", "KIND", "ID", "RULE"};
static const char *const versions_head[] = {"VERSION", "AT",      "ACTOR",  "ADDED",
                                            "CHANGED", "REMOVED", "COMMENT"};

static int cmd_history(struct client *c, const struct args *a, bool versions)
{
    struct dt_buf p;
    dt_buf_init(&p);
    dt_buf_appendf(&p, versions ? "/api/versions" : "/api/history");
    if (!versions && a->npos == 1) {
        int64_t id;
        if (dt_rcli_parse_id(dt_rcli_current, "ID", a->pos[0], 1, &id)) {
            dt_buf_dispose(&p);
            return DT_EXIT_USAGE;
        }
        dt_rcli_query_add_int(&p, c, "id", id);
    }
    if (a->limit)
        dt_rcli_query_add_int(&p, c, "limit", (int64_t)a->limit);
    if (a->before)
        dt_rcli_query_add_int(&p, c, "before", (int64_t)a->before);
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, "GET", p.ptr, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        json_t *list = json_object_get(ans.json, versions ? "versions" : "changes");
        struct table t;
        if (versions)
            dt_rcli_table_init(&t, DT_ARRAY_LEN(versions_head), versions_head);
        else
            dt_rcli_table_init(&t, DT_ARRAY_LEN(history_head), history_head);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            char v[24], n1[24], n2[24], n3[24];
            snprintf(v, sizeof(v), "%lld", (long long)dt_rcli_jint(e, "version"));
            if (versions) {
                snprintf(n1, sizeof(n1), "%lld", (long long)dt_rcli_jint(e, "added"));
                snprintf(n2, sizeof(n2), "%lld", (long long)dt_rcli_jint(e, "changed"));
                snprintf(n3, sizeof(n3), "%lld", (long long)dt_rcli_jint(e, "removed"));
                const char *cells[] = {
                    v,  dt_rcli_jstr(e, "at"),     dt_rcli_jstr(e, "actor"), n1, n2,
                    n3, dt_rcli_jstr(e, "comment")};
                dt_rcli_table_row(&t, cells);
                continue;
            }
            json_t *o = json_object_get(e, "old"), *nw = json_object_get(e, "new");
            json_t *one = json_is_object(nw) ? nw : o;
            snprintf(n1, sizeof(n1), "%lld", (long long)dt_rcli_jint(one, "id"));
            struct dt_buf change;
            dt_buf_init(&change);
            if (json_is_object(o))
                dt_rcli_rule_line(&change, o);
            if (json_is_object(o) && json_is_object(nw))
                dt_buf_appendf(&change, " => ");
            if (json_is_object(nw))
                dt_rcli_rule_line(&change, nw);
            dt_buf_terminate(&change);
            const char *cells[] = {
                v,  dt_rcli_jstr(e, "at"),       dt_rcli_jstr(e, "actor"), dt_rcli_jstr(e, "kind"),
                n1, change.ptr ? change.ptr : ""};
            dt_rcli_table_row(&t, cells);
            dt_buf_dispose(&change);
        }
        if (!c->json) {
            if (json_array_size(list) == 0)
                fprintf(stderr, "detour rules: no %s\n", versions ? "versions" : "changes");
            dt_rcli_table_flush(&t);
        }
        dt_rcli_table_dispose(&t);
    }
    dt_rcli_answer_dispose(&ans);
    dt_buf_dispose(&p);
    return rc;
}

int dt_rcli_cmd_history_changes(struct client *c, const struct args *a)
{
    return cmd_history(c, a, false);
}

int dt_rcli_cmd_versions(struct client *c, const struct args *a)
{
    return cmd_history(c, a, true);
}

int dt_rcli_cmd_rollback(struct client *c, const struct args *a)
{
    int64_t version;
    if (dt_rcli_parse_id(dt_rcli_current, "VERSION", a->pos[0], 0, &version))
        return DT_EXIT_USAGE;
    json_t *body = json_pack("{s:I}", "version", (json_int_t)version);
    struct dt_buf p;
    dt_buf_init(&p);
    dt_rcli_write_path(&p, c, "/api/rollback", a->dry_run);
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, "POST", p.ptr, body, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        json_t *j = ans.json;
        if (json_is_true(json_object_get(j, "dry_run")))
            rc = c->json ? DT_EXIT_OK : dt_rcli_print_dry_run(j);
        else if (!c->json)
            printf("rolled back to version %lld as version %lld: %lld added, %lld changed, "
                   "%lld removed\n",
                   (long long)version, (long long)dt_rcli_jint(j, "version"),
                   (long long)dt_rcli_jint(j, "added"), (long long)dt_rcli_jint(j, "changed"),
                   (long long)dt_rcli_jint(j, "removed"));
    }
    dt_rcli_answer_dispose(&ans);
    dt_buf_dispose(&p);
    json_decref(body);
    return rc;
}

/* certs [renew NAME]: the names ACME manages, or a renewal asked for. */
int dt_rcli_cmd_certs(struct client *c, const struct args *a)
{
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc;
    if (a->npos >= 1) {
        if (strcmp(a->pos[0], "renew") != 0 || a->npos != 2)
            return dt_rcli_usage(dt_rcli_current, "certs takes nothing, or renew NAME");
        struct dt_buf p;
        dt_buf_init(&p);
        dt_buf_appendf(&p, "/api/certificates/%s/renew", a->pos[1]);
        dt_buf_terminate(&p);
        rc = dt_rcli_call(c, "POST", p.ptr, NULL, &ans);
        dt_buf_dispose(&p);
        if (rc == DT_EXIT_OK) {
            dt_rcli_print_json(c, &ans);
            if (!c->json)
                printf("%s: a new certificate is being ordered\n", a->pos[1]);
        }
        dt_rcli_answer_dispose(&ans);
        return rc;
    }
    rc = dt_rcli_call(c, "GET", "/api/certificates", NULL, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        json_t *list = json_object_get(ans.json, "certificates");
        if (!c->json) {
            static const char *const head[] = {"NAME", "STATUS", "NOT AFTER", "ISSUER",
                                               "LAST ERROR"};
            struct table t;
            dt_rcli_table_init(&t, 5, head);
            for (size_t i = 0; i < json_array_size(list); i++) {
                json_t *e = json_array_get(list, i);
                const char *cells[] = {dt_rcli_jstr(e, "name"), dt_rcli_jstr(e, "status"),
                                       dt_rcli_jstr(e, "not_after"), dt_rcli_jstr(e, "issuer"),
                                       dt_rcli_jstr(e, "last_error")};
                dt_rcli_table_row(&t, cells);
            }
            dt_rcli_table_flush(&t);
            dt_rcli_table_dispose(&t);
            if (!json_array_size(list))
                printf("no names yet: no rule names a host\n");
        }
    }
    dt_rcli_answer_dispose(&ans);
    return rc;
}
