/* api: the admin API. JSON over HTTP/1.1 on the admin listener, every request with the
 * bearer token. Writes go to the store in one transaction each (one numbered version), then
 * to the live rule set; dry_run=true answers with the diff and the lint findings instead.
 * The endpoints are described in docs/admin.md. */
#include "admin/internal.h"
#include "rules/import.h"
#include "tls/tls.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- endpoints ---------------------------------------------------------------------------- */

static void list_rules(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep)
{
    char text[512] = "", host[256] = "";
    int64_t status = 0, after = 0, limit = PAGE_DEFAULT, older = 0;
    struct dt_str q = req->query;
    bool has_text = dt_admin_query_get(q, "text", text, sizeof(text));
    bool has_host = dt_admin_query_get(q, "host", host, sizeof(host));
    if (!dt_admin_query_int(rep, q, "status", 301, 308, &status) ||
        !dt_admin_query_int(rep, q, "after", 0, INT64_MAX, &after) ||
        !dt_admin_query_int(rep, q, "limit", 1, PAGE_MAX, &limit))
        return;
    if (status && !dt_http_is_redirect(status)) {
        dt_admin_reply_error(rep, 400, "status", "status must be 301, 302, 303, 307 or 308");
        return;
    }
    if (dt_admin_query_flag(q, "old_temporary")) {
        if (a->opt->max_temporary_age < 0) {
            dt_admin_reply_error(rep, 400, "old_temporary", "--max-temporary-age is off");
            return;
        }
        older = (int64_t)a->now - a->opt->max_temporary_age;
    }
    struct dt_store_query sq = {.text = has_text ? text : NULL,
                                .host = has_host ? host : NULL,
                                .status = (int)status,
                                .older_than = older,
                                .after_id = after,
                                .limit = (size_t)limit};
    json_t *rules = json_array();
    int64_t total = 0;
    int rc = dt_store_list(a->store, &sq, dt_admin_collect_rule, rules, &total);
    if (rc) {
        json_decref(rules);
        dt_admin_reply_error(rep, 500, NULL, "the store could not list: %s", dt_strerror(rc));
        return;
    }
    size_t n = json_array_size(rules);
    json_t *next = json_null();
    if (n == (size_t)limit && n)
        next = json_object_get(json_array_get(rules, n - 1), "id");
    json_incref(next);
    dt_admin_reply_json(
        rep, 200,
        json_pack("{s:o,s:I,s:o}", "rules", rules, "total", (json_int_t)total, "next_after", next));
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
        dt_admin_reply_error(rep, 400, NULL, "invalid JSON at line %d, column %d: %s", e.line,
                             e.column, e.text);
    return j;
}

static void one_rule(struct admin *a, const struct dt_admin_request *req,
                     struct dt_admin_reply *rep, int64_t id)
{
    bool dry = dt_admin_query_flag(req->query, "dry_run");
    if (dt_str_eq(req->method, DT_STR("GET")) || dt_str_eq(req->method, DT_STR("HEAD"))) {
        json_t *j = NULL;
        if (dt_store_get(a->store, id, dt_admin_get_rule, &j) != 0) {
            dt_admin_reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
            return;
        }
        dt_admin_reply_json(rep, 200, j);
        return;
    }
    bool put = dt_str_eq(req->method, DT_STR("PUT")),
         patch = dt_str_eq(req->method, DT_STR("PATCH"));
    if (dt_str_eq(req->method, DT_STR("DELETE"))) {
        if (!dt_admin_begin(a, rep, "api"))
            return;
        struct dt_buf err;
        dt_buf_init(&err);
        int rc = dt_store_remove(a->store, id, &err);
        dt_buf_dispose(&err);
        if (rc) {
            dt_store_abort(a->store);
            dt_admin_reply_error(rep, rc == DT_ENOENT ? 404 : 500, NULL, "no rule %lld",
                                 (long long)id);
            return;
        }
        dt_admin_finish_write(a, rep, dry, false, false, 200,
                              json_pack("{s:I}", "id", (json_int_t)id), 0);
        return;
    }
    if (!put && !patch) {
        rep->status = 405;
        dt_buf_appendf(&rep->headers, "Allow: GET, HEAD, PUT, PATCH, DELETE\r\n");
        dt_admin_reply_error(rep, 405, NULL, "%.*s is not allowed here", (int)req->method.len,
                             req->method.ptr);
        return;
    }
    json_t *body = parse_body(req, rep);
    if (!body)
        return;
    struct rule_in *in = dt_xmalloc(sizeof(*in));
    dt_admin_rule_in_init(in);
    if (patch && dt_store_get(a->store, id, dt_admin_rule_in_from_store, in) != 0) {
        dt_admin_reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
        goto out;
    }
    if (!dt_admin_rule_in_apply(in, body, put, rep) || !dt_admin_rule_in_check(in, rep))
        goto out;
    if (!dt_admin_begin(a, rep, "api"))
        goto out;
    struct dt_store_rule r = dt_admin_rule_in_store(in);
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_replace(a->store, id, &r, &err);
    if (rc) {
        dt_store_abort(a->store);
        if (rc == DT_ENOENT)
            dt_admin_reply_error(rep, 404, NULL, "no rule %lld", (long long)id);
        else if (rc == DT_EEXIST)
            dt_admin_reply_error(rep, 409, "source", "another rule has the source '%s'",
                                 in->source);
        else
            dt_admin_reply_error(rep, 500, NULL, "the store failed: %s", err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        goto out;
    }
    dt_buf_dispose(&err);
    dt_admin_finish_write(a, rep, dry, false, false, 200, json_pack("{s:I}", "id", (json_int_t)id),
                          id);
out:
    json_decref(body);
    dt_buf_dispose(&in->options);
    free(in);
}

static void create_rule(struct admin *a, const struct dt_admin_request *req,
                        struct dt_admin_reply *rep)
{
    bool dry = dt_admin_query_flag(req->query, "dry_run");
    json_t *body = parse_body(req, rep);
    if (!body)
        return;
    struct rule_in *in = dt_xmalloc(sizeof(*in));
    dt_admin_rule_in_init(in);
    if (!dt_admin_rule_in_apply(in, body, true, rep) || !dt_admin_rule_in_check(in, rep) ||
        !dt_admin_begin(a, rep, "api"))
        goto out;
    struct dt_store_rule r = dt_admin_rule_in_store(in);
    int64_t id = 0;
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_add(a->store, &r, &id, &err);
    if (rc) {
        dt_store_abort(a->store);
        if (rc == DT_EEXIST)
            dt_admin_reply_error(rep, 409, "source", "a rule with the source '%s' exists",
                                 in->source);
        else
            dt_admin_reply_error(rep, 500, NULL, "the store failed: %s", err.ptr ? err.ptr : "");
        dt_buf_dispose(&err);
        goto out;
    }
    dt_buf_dispose(&err);
    dt_admin_finish_write(a, rep, dry, false, false, 201, json_pack("{s:I}", "id", (json_int_t)id),
                          id);
    if (!dry && rep->status == 201)
        dt_buf_appendf(&rep->headers, "Location: /api/rules/%lld\r\n", (long long)id);
out:
    json_decref(body);
    dt_buf_dispose(&in->options);
    free(in);
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
            dt_admin_reply_error(rep, 400, key, "unknown field '%s' (rollback takes version)", key);
            json_decref(body);
            return;
        }
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        dt_admin_reply_error(rep, 400, "version", "'version' must be a version number (0 or more)");
        json_decref(body);
        return;
    }
    int64_t version = json_integer_value(v);
    json_decref(body);
    if (!dt_admin_begin(a, rep, "rollback"))
        return;
    struct dt_buf err;
    dt_buf_init(&err);
    int rc = dt_store_rollback(a->store, version, &err);
    if (rc) {
        dt_store_abort(a->store);
        dt_admin_reply_error(rep, rc == DT_ENOENT ? 404 : 500, "version", "%s",
                             rc == DT_ENOENT ? "no such version" : (err.ptr ? err.ptr : "failed"));
        dt_buf_dispose(&err);
        return;
    }
    dt_buf_dispose(&err);
    dt_admin_finish_write(a, rep, dt_admin_query_flag(req->query, "dry_run"), false, false, 200,
                          json_pack("{s:I}", "to", (json_int_t)version), 0);
}

static int collect_version(void *ctx, const struct dt_store_version *v)
{
    json_array_append_new(ctx, json_pack("{s:I,s:o,s:s,s:s,s:I,s:I,s:I}", "version",
                                         (json_int_t)v->version, "at", dt_admin_time_json(v->at),
                                         "actor", v->actor, "comment", v->comment, "added",
                                         (json_int_t)v->added, "changed", (json_int_t)v->changed,
                                         "removed", (json_int_t)v->removed));
    return 0;
}

static int collect_history(void *ctx, const struct dt_store_change *c)
{
    json_array_append_new(
        ctx, json_pack("{s:I,s:o,s:s,s:s,s:o,s:o}", "version", (json_int_t)c->version, "at",
                       dt_admin_time_json(c->at), "actor", c->actor, "kind", c->kind, "old",
                       c->old_rule ? dt_admin_rule_json(c->old_rule) : json_null(), "new",
                       c->new_rule ? dt_admin_rule_json(c->new_rule) : json_null()));
    return 0;
}

static void history(struct admin *a, const struct dt_admin_request *req, struct dt_admin_reply *rep,
                    bool versions)
{
    int64_t id = 0, before = 0, limit = PAGE_DEFAULT;
    if (!dt_admin_query_int(rep, req->query, "id", 1, INT64_MAX, &id) ||
        !dt_admin_query_int(rep, req->query, "before", 1, INT64_MAX, &before) ||
        !dt_admin_query_int(rep, req->query, "limit", 1, PAGE_MAX, &limit))
        return;
    json_t *list = json_array();
    if (versions)
        dt_store_versions(a->store, before, (size_t)limit, collect_version, list);
    else
        dt_store_history(a->store, id, before, (size_t)limit, collect_history, list);
    dt_admin_reply_json(rep, 200,
                        json_pack("{s:I,s:o}", "current", (json_int_t)dt_store_version(a->store),
                                  versions ? "versions" : "changes", list));
}

/* GET /api/match?url=URL&method=M: which rule answers, and the exact response. */
static void match(struct admin *a, const struct dt_admin_request *req, struct dt_admin_reply *rep)
{
    char url[8192], method[32] = "GET";
    if (!dt_admin_query_get(req->query, "url", url, sizeof(url))) {
        dt_admin_reply_error(rep, 400, "url", "url is required: /api/match?url=http://host/path");
        return;
    }
    dt_admin_query_get(req->query, "method", method, sizeof(method));
    struct dt_url u;
    struct dt_diag d;
    if (dt_url_parse(dt_str_make(url, strlen(url)), &u, &d) != 0 || !u.has_authority ||
        !(dt_str_ieq(u.scheme, "http") || dt_str_ieq(u.scheme, "https")) || !u.host.len) {
        dt_admin_reply_error(rep, 400, "url", "url must be an absolute http or https URL");
        return;
    }
    for (const char *m = method; *m; m++)
        if (!dt_tchar[(unsigned char)*m]) {
            dt_admin_reply_error(rep, 400, "method", "method must be a token such as GET or POST");
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
    struct dt_http_reply r = {.date = date,
                              .method =
                                  is_head ? DT_STR("GET") : dt_str_make(method, strlen(method)),
                              .head = is_head,
                              .max_age = -1};
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
    dt_admin_reply_json(rep, 200, j);
}

static void health(struct admin *a, struct dt_admin_reply *rep)
{
    pthread_mutex_lock(&a->live.mu);
    const struct dt_ruleset *rs = a->live.current;
    json_t *j =
        json_pack("{s:s,s:I,s:{s:I,s:I,s:I},s:I}", "status", "ok", "version",
                  (json_int_t)dt_store_version(a->store), "rules", "files",
                  (json_int_t)dt_table_size(rs->files), "store", (json_int_t)a->store_count,
                  "overlay", (json_int_t)(dt_table_size(rs->overlay) + dt_table_size(rs->recent)),
                  "uptime", (json_int_t)(a->now - a->started));
    struct dt_server *srv = a->live.srv;
    pthread_mutex_unlock(&a->live.mu);
    if (srv)
        dt_admin_acme_health(srv, j);
    dt_admin_reply_json(rep, 200, j);
}

static void cert_expiry(void *ctx, const char *name, time_t not_after)
{
    /* a name is letters, digits, '-', '.' and '*': nothing to escape in a label */
    dt_buf_appendf(ctx, "detour_certificate_expiry_seconds{name=\"%s\"} %lld\n", name,
                   (long long)not_after);
}

/* The requests by protocol, TLS handshakes and certificate expiry of /metrics. */
static void metrics_protocols(struct dt_buf *b, const struct dt_server_stats *s,
                              struct dt_server *srv, time_t now)
{
    dt_buf_appendf(b,
                   "# HELP detour_requests_by_protocol_total Requests by protocol (https: "
                   "over TLS, whichever HTTP version).\n"
                   "# TYPE detour_requests_by_protocol_total counter\n"
                   "detour_requests_by_protocol_total{protocol=\"h1\"} %llu\n"
                   "detour_requests_by_protocol_total{protocol=\"h2\"} %llu\n"
                   "detour_requests_by_protocol_total{protocol=\"https\"} %llu\n"
                   "# HELP detour_tls_handshakes_total TLS handshakes done, full or "
                   "resumed (a session ticket).\n"
                   "# TYPE detour_tls_handshakes_total counter\n"
                   "detour_tls_handshakes_total{kind=\"full\"} %llu\n"
                   "detour_tls_handshakes_total{kind=\"resumed\"} %llu\n"
                   "# HELP detour_tls_handshake_failures_total TLS handshakes that did not "
                   "finish, by why.\n"
                   "# TYPE detour_tls_handshake_failures_total counter\n",
                   (unsigned long long)s->requests_h1, (unsigned long long)s->requests_h2,
                   (unsigned long long)s->requests_tls, (unsigned long long)s->handshakes_full,
                   (unsigned long long)s->handshakes_resumed);
    for (int k = 0; k < DT_TLS_FAIL_COUNT; k++)
        dt_buf_appendf(b, "detour_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
                       dt_tls_failure_names[k], (unsigned long long)s->handshakes_failed[k]);
    dt_buf_appendf(
        b,
        "# HELP detour_tls_handshakes_by_engine_total TLS handshakes done by detour's "
        "own TLS 1.3 or by the TLS library (every other ClientHello).\n"
        "# TYPE detour_tls_handshakes_by_engine_total counter\n"
        "detour_tls_handshakes_by_engine_total{engine=\"detour\"} %llu\n"
        "detour_tls_handshakes_by_engine_total{engine=\"library\"} %llu\n",
        (unsigned long long)(s->handshakes_full + s->handshakes_resumed - s->handshakes_library),
        (unsigned long long)s->handshakes_library);
    dt_buf_appendf(b, "# HELP detour_certificate_expiry_seconds When a certificate for a "
                      "name stops being valid (Unix time).\n"
                      "# TYPE detour_certificate_expiry_seconds gauge\n");
    dt_server_each_cert(srv, cert_expiry, b);
    dt_admin_acme_metrics(b, srv, now);
}

static void metrics(struct admin *a, struct dt_admin_reply *rep)
{
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    struct dt_buf *b = &rep->body;
    pthread_mutex_lock(&a->live.mu);
    const struct dt_ruleset *rs = a->live.current;
    dt_buf_appendf(b,
                   "# HELP detour_rules Rules loaded, by where they come from.\n"
                   "# TYPE detour_rules gauge\n"
                   "detour_rules{source=\"files\"} %zu\n"
                   "detour_rules{source=\"store\"} %lld\n",
                   dt_table_size(rs->files), (long long)a->store_count);
    dt_buf_appendf(b,
                   "# HELP detour_store_version The store's newest version.\n"
                   "# TYPE detour_store_version gauge\ndetour_store_version %lld\n",
                   (long long)dt_store_version(a->store));
    dt_buf_appendf(b,
                   "# HELP detour_reloads_total Reloads of the rule files (SIGHUP).\n"
                   "# TYPE detour_reloads_total counter\ndetour_reloads_total %llu\n"
                   "# HELP detour_reload_failures_total Reloads that kept the old rules.\n"
                   "# TYPE detour_reload_failures_total counter\n"
                   "detour_reload_failures_total %llu\n",
                   (unsigned long long)a->live.reloads,
                   (unsigned long long)a->live.reload_failures);
    dt_buf_appendf(b,
                   "# HELP detour_api_writes_total Admin API writes committed.\n"
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
            dt_admin_wait_settle(a);
            struct dt_store_query sq = {.older_than = (int64_t)a->now - a->opt->max_temporary_age,
                                        .status = 307,
                                        .limit = 1};
            json_t *tmp = json_array();
            if (dt_store_list(a->store, &sq, dt_admin_collect_rule, tmp, &a->old_temporary) != 0)
                a->old_temporary = -1;
            json_decref(tmp);
        }
        /* (none counted yet, when the first scrape comes while rows are written: left out
         * until the next) */
        if (a->old_temporary >= 0)
            dt_buf_appendf(b,
                           "# HELP detour_old_temporary_rules Store rules answering 307 for "
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
            dt_buf_appendf(b, "detour_requests_by_source_total{source=\"%s\"} %llu\n", srcs[k],
                           (unsigned long long)st.source[k]);
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
        dt_buf_appendf(b,
                       "detour_request_duration_seconds_sum %.9f\n"
                       "detour_request_duration_seconds_count %llu\n",
                       st.latency_sum_ns / 1e9, (unsigned long long)cum);
        dt_buf_appendf(b,
                       "# HELP detour_connections_total Connections accepted.\n"
                       "# TYPE detour_connections_total counter\n"
                       "detour_connections_total %llu\n"
                       "# HELP detour_connections_refused_total Connections closed at once, "
                       "beyond --max-connections or --max-connections-per-ip, out of file "
                       "descriptors, or on a --proxy-protocol listener (an untrusted source, "
                       "no valid header).\n"
                       "# TYPE detour_connections_refused_total counter\n"
                       "detour_connections_refused_total{limit=\"total\"} %llu\n"
                       "detour_connections_refused_total{limit=\"per_ip\"} %llu\n"
                       "detour_connections_refused_total{limit=\"fds\"} %llu\n"
                       "detour_connections_refused_total{limit=\"proxy\"} %llu\n",
                       (unsigned long long)st.connections, (unsigned long long)st.refused_max,
                       (unsigned long long)st.refused_per_ip, (unsigned long long)st.refused_fds,
                       (unsigned long long)st.refused_proxy);
        metrics_protocols(b, &st, srv, a->now);
    }
    dt_buf_appendf(b,
                   "# HELP detour_admin_requests_total Admin API requests.\n"
                   "# TYPE detour_admin_requests_total counter\n"
                   "detour_admin_requests_total %llu\n"
                   "# HELP detour_admin_unauthorized_total Admin API requests refused 401.\n"
                   "# TYPE detour_admin_unauthorized_total counter\n"
                   "detour_admin_unauthorized_total %llu\n"
                   "# HELP detour_admin_throttled_total Admin API requests refused 429, "
                   "unread: their address had too many failed tokens.\n"
                   "# TYPE detour_admin_throttled_total counter\n"
                   "detour_admin_throttled_total %llu\n"
                   "# HELP detour_admin_throttled_addresses Client addresses whose admin API "
                   "requests are refused 429 now.\n"
                   "# TYPE detour_admin_throttled_addresses gauge\n"
                   "detour_admin_throttled_addresses %zu\n",
                   (unsigned long long)a->requests, (unsigned long long)a->refused_auth,
                   (unsigned long long)a->throttled,
                   dt_admin_throttle_held(&a->throttle, a->now_ms));
}

static bool path_is(struct dt_str p, const char *s)
{
    return dt_str_eq(p, dt_str_make(s, strlen(s)));
}

bool dt_admin_method_in(struct dt_admin_reply *rep, struct dt_str m, const char *allowed)
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
    dt_admin_reply_error(rep, 405, NULL, "%.*s is not allowed here (allowed: %s)", (int)m.len,
                         m.ptr, allowed);
    return false;
}

static void handle_one(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep);

static void handle(void *ctx, const struct dt_admin_request *req, struct dt_admin_reply *rep)
{
    struct admin *a = ctx;
    dt_admin_answering = a;
    a->now = req->now;
    a->now_ms = req->now_ms;
    handle_one(a, req, rep);
    dt_admin_answering = NULL;
}

static void handle_one(struct admin *a, const struct dt_admin_request *req,
                       struct dt_admin_reply *rep)
{
    a->requests++;
    /* An address held back for its failed tokens is answered at once, its token unread: a
     * guess made meanwhile tells nothing, and the admin thread waits for no one. */
    uint64_t wait_ms = dt_admin_throttle_wait(&a->throttle, req->peer, a->now_ms);
    if (wait_ms) {
        a->throttled++;
        unsigned long long s = (wait_ms + 999) / 1000;
        dt_buf_appendf(&rep->headers, "Retry-After: %llu\r\n", s);
        dt_admin_reply_error(rep, 429, NULL,
                             "too many failed tokens from this address: try again in %llu s", s);
        return;
    }
    if (!dt_admin_token_ok(req->authorization, a->token)) {
        a->refused_auth++;
        uint32_t failures;
        if (dt_admin_throttle_failed(&a->throttle, req->peer, a->now_ms, &failures) &&
            failures == a->throttle.limit)
            dt_log(DT_LOG_WARN,
                   "admin API: %u failed tokens in a row from %s: its requests are refused "
                   "(429) for a while, longer after each further failure",
                   failures, req->peer);
        dt_buf_appendf(&rep->headers, "WWW-Authenticate: Bearer realm=\"detour\"\r\n");
        dt_admin_reply_error(rep, 401, NULL,
                             "a valid bearer token is required (Authorization: Bearer "
                             "TOKEN, the token is in the token file)");
        return;
    }
    dt_admin_throttle_passed(&a->throttle, req->peer);
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
        {"/api/certificates", ""},
    };
    const char *allowed = p.len > 11 && !memcmp(p.ptr, "/api/rules/", 11) ? "dry_run" : NULL;
    for (size_t i = 0; !allowed && i < DT_ARRAY_LEN(params); i++)
        if (path_is(p, params[i].path))
            allowed = params[i].allowed;
    if (allowed && !dt_admin_query_known(rep, req->query, allowed))
        return;
    /* all but these read or write rules on this connection: after the rows of a bulk import */
    if (!path_is(p, "/api/health") && !path_is(p, "/metrics") && !path_is(p, "/api/match") &&
        !(p.len >= 17 && !memcmp(p.ptr, "/api/certificates", 17)))
        dt_admin_wait_settle(a);
    if (path_is(p, "/api/health")) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            health(a, rep);
    } else if (path_is(p, "/metrics")) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            metrics(a, rep);
    } else if (path_is(p, "/api/rules")) {
        if (!dt_admin_method_in(rep, req->method, "GET POST"))
            return;
        if (dt_str_eq(req->method, DT_STR("POST")))
            create_rule(a, req, rep);
        else
            list_rules(a, req, rep);
    } else if (p.len > 11 && !memcmp(p.ptr, "/api/rules/", 11)) {
        int64_t id;
        if (!parse_id(dt_str_make(p.ptr + 11, p.len - 11), &id)) {
            dt_admin_reply_error(rep, 404, NULL,
                                 "no such rule: rules are /api/rules/ID with a number");
            return;
        }
        one_rule(a, req, rep, id);
    } else if (path_is(p, "/api/certificates") ||
               (p.len > 18 && !memcmp(p.ptr, "/api/certificates/", 18))) {
        dt_admin_certificates(a, req, rep);
    } else if (path_is(p, "/api/import")) {
        if (dt_admin_method_in(rep, req->method, "POST"))
            dt_admin_import_rules(a, req, rep);
    } else if (path_is(p, "/api/match")) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            match(a, req, rep);
    } else if (path_is(p, "/api/rollback")) {
        if (dt_admin_method_in(rep, req->method, "POST"))
            rollback(a, req, rep);
    } else if (path_is(p, "/api/versions")) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            history(a, req, rep, true);
    } else if (path_is(p, "/api/history")) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            history(a, req, rep, false);
    } else {
        dt_admin_reply_error(rep, 404, NULL, "no such endpoint: %.*s (see docs/admin.md)",
                             (int)p.len, p.ptr);
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
        dt_admin_options_text(&b, &spec);
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
        dt_admin_wait_settle(a);
    }
    if (dt_store_unsettled(a->store))
        dt_admin_settle_on(a->store, "tried again in a second");
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
    struct pending p = {
        json_array(), json_array(), json_array(), NULL, 0, 0, NULL, 0, 0, false, 0, 0, 0};
    dt_store_pending(a->store, dt_admin_collect_change, &p);
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
    dt_admin_pending_dispose(&p);
    dt_buf_dispose(&err);
}

void dt_admin_options_init(struct dt_admin_options *o)
{
    o->db_path = "./detour.db";
    o->token_file = NULL;
    o->max_temporary_age = 30 * 24 * 3600;
    o->auth_failures = DT_THROTTLE_LIMIT;
}

int dt_admin_run(struct dt_server_config *cfg, const struct dt_admin_options *o)
{
    struct admin *a = dt_xcalloc(1, sizeof(*a));
    atomic_init(&a->settling, false);
    a->old_temporary = -1;
    a->opt = o;
    a->cfg = cfg;
    a->started = a->now = dt_wall_now();
    dt_admin_throttle_init(&a->throttle, o->auth_failures);
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
    a->store = dt_store_open(o->db_path, dt_rule_source_host, &err);
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
        a->settle_store = dt_store_open(o->db_path, dt_rule_source_host, &err);
        if (!a->settle_store) {
            dt_log(DT_LOG_WARN,
                   "no connection to the store for bulk imports' rows (%s): the "
                   "admin thread writes them",
                   err.ptr ? err.ptr : "");
            err.len = 0;
        }
    }
    cfg->initial = a->live.current;
    cfg->initial_load_ms = dt_now_ms() - t0;
    cfg->hooks = (struct dt_server_hooks){.ctx = a,
                                          .started = on_started,
                                          .reload = on_reload,
                                          .stopping = on_stopping,
                                          .admin = handle,
                                          .tick = on_tick};
    status = dt_server_run(cfg);
    dt_admin_wait_settle(a);
    dt_live_dispose(&a->live);
out:
    dt_table_free(files);
    dt_buf_dispose(&err);
    if (a->settle_store)
        dt_store_close(a->settle_store);
    if (a->store)
        dt_store_close(a->store);
    dt_admin_throttle_dispose(&a->throttle);
    free(a);
    return status;
}
