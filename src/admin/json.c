/* json: the admin API's JSON: replies and errors naming a field, the query string, store
 * rules as JSON (with their rule-file line from the codec), and a rule being written read
 * from JSON and checked as the table would load it. */
#include "admin/internal.h"
#include "rules/import.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- replies ------------------------------------------------------------------------------ */

void dt_admin_reply_json(struct dt_admin_reply *rep, int status, json_t *j)
{
    rep->status = status;
    rep->content_type = "application/json";
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    dt_buf_append(&rep->body, s, strlen(s));
    dt_buf_append(&rep->body, "\n", 1);
    free(s);
    json_decref(j);
}

void dt_admin_reply_error(struct dt_admin_reply *rep, int status, const char *field,
                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s}", "error", msg);
    if (field)
        json_object_set_new(j, "field", json_string(field));
    dt_admin_reply_json(rep, status, j);
}

json_t *dt_admin_time_json(int64_t t)
{
    if (t <= 0)
        return json_null();
    char buf[21];
    dt_fmt_rfc3339(buf, (time_t)t);
    return json_string(buf);
}

/* ---- the query string --------------------------------------------------------------------- */

/* The parameter of a query string at *i (moved past it): its name and its raw value (empty
 * without '='). False at the end. */
static bool next_param(struct dt_str q, size_t *i, struct dt_str *name, struct dt_str *value)
{
    if (*i >= q.len)
        return false;
    size_t end = *i;
    while (end < q.len && q.ptr[end] != '&')
        end++;
    const char *eq = memchr(q.ptr + *i, '=', end - *i);
    const char *vstart = eq ? eq + 1 : q.ptr + end;
    *name = dt_str_make(q.ptr + *i, (size_t)((eq ? eq : q.ptr + end) - (q.ptr + *i)));
    *value = dt_str_make(vstart, (size_t)(q.ptr + end - vstart));
    *i = end + 1;
    return true;
}

/* The decoded value of key in a query string; false when absent. */
bool dt_admin_query_get(struct dt_str q, const char *key, char *out, size_t cap)
{
    struct dt_str name, v;
    for (size_t i = 0; next_param(q, &i, &name, &v);) {
        if (!dt_str_eq(name, dt_str_make(key, strlen(key))))
            continue;
        size_t o = 0;
        for (size_t k = 0; k < v.len && o + 1 < cap; k++) {
            char c = v.ptr[k];
            if (c == '+') {
                c = ' ';
            } else if (c == '%' && k + 2 < v.len && dt_hexval((unsigned char)v.ptr[k + 1]) >= 0 &&
                       dt_hexval((unsigned char)v.ptr[k + 2]) >= 0) {
                c = (char)(dt_hexval((unsigned char)v.ptr[k + 1]) * 16 +
                           dt_hexval((unsigned char)v.ptr[k + 2]));
                k += 2;
            }
            out[o++] = c;
        }
        out[o] = '\0';
        return true;
    }
    return false;
}

/* True when every parameter of the query string is one of allowed (names separated by
 * spaces); else a 400 naming the first that is not (a misspelt parameter would otherwise be
 * ignored, and a filter or a mode silently not applied). */
bool dt_admin_query_known(struct dt_admin_reply *rep, struct dt_str q, const char *allowed)
{
    struct dt_str param, value;
    for (size_t i = 0; next_param(q, &i, &param, &value);) {
        size_t nlen = param.len;
        bool known = nlen == 0; /* an empty parameter ("a=1&&b=2") names nothing */
        for (const char *a = allowed; !known && *a;) {
            size_t alen = strcspn(a, " ");
            known = alen == nlen && !memcmp(a, param.ptr, nlen);
            a += alen;
            while (*a == ' ')
                a++;
        }
        if (!known) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(nlen < 60 ? nlen : 60), param.ptr);
            dt_admin_reply_error(
                rep, 400, name, "unknown parameter '%s'%s%s", name,
                allowed[0] ? "; this endpoint takes: " : " (this endpoint takes none)", allowed);
            return false;
        }
    }
    return true;
}

bool dt_admin_query_flag(struct dt_str q, const char *key)
{
    char v[16];
    return dt_admin_query_get(q, key, v, sizeof(v)) &&
           (!strcmp(v, "true") || !strcmp(v, "1") || !v[0]);
}

/* A numeric query parameter; false (with a 400 sent) when malformed. */
bool dt_admin_query_int(struct dt_admin_reply *rep, struct dt_str q, const char *key, int64_t min,
                        int64_t max, int64_t *out)
{
    char v[32];
    if (!dt_admin_query_get(q, key, v, sizeof(v)))
        return true;
    if (dt_parse_int(dt_str_make(v, strlen(v)), min, max, out) != 0) {
        dt_admin_reply_error(rep, 400, key, "%s must be a number from %lld to %lld", key,
                             (long long)min, (long long)max);
        return false;
    }
    return true;
}

/* ---- rules as JSON ------------------------------------------------------------------------- */

/* The admin whose request is being answered: rule_json adds hit counts from its live rule
 * set. Only the admin thread answers requests. */
struct admin *dt_admin_answering;

json_t *dt_admin_rule_json(const struct dt_store_rule *r)
{
    /* The options are rule-file syntax: the rule codec reads them. */
    struct dt_rule_spec spec;
    struct dt_diag d;
    bool parsed = dt_live_spec(r, &spec, &d) == 0;
    json_t *j = json_pack("{s:I,s:s,s:s,s:i}", "id", (json_int_t)r->id, "source", r->source,
                          "target", r->target, "status", r->status);
    json_object_set_new(j, "query", json_string(parsed && spec.query_drop ? "drop" : "keep"));
    json_object_set_new(j, "cache",
                        parsed && spec.max_age >= 0 ? json_integer(spec.max_age) : json_null());
    json_object_set_new(j, "from",
                        parsed && spec.has_from ? dt_admin_time_json(spec.from) : json_null());
    json_object_set_new(j, "until",
                        parsed && spec.has_until ? dt_admin_time_json(spec.until) : json_null());
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
    json_object_set_new(j, "created", dt_admin_time_json(r->created));
    json_object_set_new(j, "updated", dt_admin_time_json(r->updated));
    json_object_set_new(j, "since", dt_admin_time_json(r->since));
    json_object_set_new(j, "version", json_integer(r->version));
    if (dt_admin_answering) {
        uint32_t last = 0;
        pthread_mutex_lock(&dt_admin_answering->live.mu);
        uint64_t hits = dt_live_hits(&dt_admin_answering->live, r->id, &last);
        pthread_mutex_unlock(&dt_admin_answering->live.mu);
        json_object_set_new(j, "hits", json_integer((json_int_t)hits));
        json_object_set_new(j, "last_hit", dt_admin_time_json(last));
    }
    return j;
}

int dt_admin_collect_rule(void *ctx, const struct dt_store_rule *r)
{
    json_array_append_new(ctx, dt_admin_rule_json(r));
    return 0;
}

int dt_admin_get_rule(void *ctx, const struct dt_store_rule *r)
{
    *(json_t **)ctx = dt_admin_rule_json(r);
    return 0;
}

void dt_admin_rule_in_init(struct rule_in *in)
{
    memset(in, 0, sizeof(*in));
    in->status = 307;
    in->cache = -1;
    dt_buf_init(&in->options);
}

/* Fills in from a stored rule (for PATCH). */
int dt_admin_rule_in_from_store(void *ctx, const struct dt_store_rule *r)
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

static const char *const writable[] = {"source", "target", "status", "query",        "cache",
                                       "from",   "until",  "note",   "promote_after"};
static const char *const readonly[] = {"id", "created", "updated", "since", "version"};

static bool one_of(const char *k, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, set[i]))
            return true;
    return false;
}

static bool text_field(json_t *v, const char *key, char *out, size_t cap,
                       struct dt_admin_reply *rep)
{
    if (!json_is_string(v)) {
        dt_admin_reply_error(rep, 400, key, "'%s' must be a string", key);
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || strlen(s) != n) {
        dt_admin_reply_error(rep, 400, key, "'%s' is too long or holds a NUL", key);
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
        dt_admin_reply_error(rep, 400, key,
                             "'%s' must be an RFC 3339 time such as "
                             "2026-12-01T06:00:00Z, or null",
                             key);
        return false;
    }
    *has = true;
    return true;
}

/* Applies a JSON object's fields to in. With full, source and target are required. */
bool dt_admin_rule_in_apply(struct rule_in *in, json_t *obj, bool full, struct dt_admin_reply *rep)
{
    if (!json_is_object(obj)) {
        dt_admin_reply_error(rep, 400, NULL, "the request content must be a JSON object (a rule)");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!one_of(key, writable, DT_ARRAY_LEN(writable)) &&
            !one_of(key, readonly, DT_ARRAY_LEN(readonly))) {
            dt_admin_reply_error(rep, 400, key,
                                 "unknown field '%s' (a rule has source, target, status, "
                                 "query, cache, from, until, promote_after, note)",
                                 key);
            return false;
        }
    }
    if (full && (!json_object_get(obj, "source") || !json_object_get(obj, "target"))) {
        const char *missing = json_object_get(obj, "source") ? "target" : "source";
        dt_admin_reply_error(rep, 400, missing, "'%s' is required", missing);
        return false;
    }
    if ((v = json_object_get(obj, "source")) &&
        !text_field(v, "source", in->source, sizeof(in->source), rep))
        return false;
    if ((v = json_object_get(obj, "target")) &&
        !text_field(v, "target", in->target, sizeof(in->target), rep))
        return false;
    if ((v = json_object_get(obj, "note")) &&
        !text_field(v, "note", in->note, sizeof(in->note), rep))
        return false;
    if ((v = json_object_get(obj, "status"))) {
        json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;
        if (!dt_http_is_redirect(s)) {
            dt_admin_reply_error(rep, 400, "status", "'status' must be 301, 302, 303, 307 or 308");
            return false;
        }
        in->status = (int)s;
    } else if (full) {
        in->status = 307;
    }
    if ((v = json_object_get(obj, "query"))) {
        const char *q = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(q, "keep") && strcmp(q, "drop")) {
            dt_admin_reply_error(rep, 400, "query", "'query' must be \"keep\" or \"drop\"");
            return false;
        }
        in->query_drop = !strcmp(q, "drop");
    }
    if ((v = json_object_get(obj, "cache"))) {
        if (json_is_null(v)) {
            in->cache = -1;
        } else if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                   json_integer_value(v) > INT32_MAX) {
            dt_admin_reply_error(rep, 400, "cache",
                                 "'cache' must be a number of seconds "
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
            dt_admin_reply_error(rep, 400, "promote_after",
                                 "'promote_after' must be an age such as "
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
void dt_admin_options_text(struct dt_buf *out, const struct dt_rule_spec *s)
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
bool dt_admin_rule_in_check(struct rule_in *in, struct dt_admin_reply *rep)
{
    struct dt_rule_spec spec;
    rule_in_spec(in, &spec);
    dt_admin_options_text(&in->options, &spec);
    for (const char *f = in->source; *f; f++)
        if ((unsigned char)*f <= ' ' || *f == '#') {
            dt_admin_reply_error(rep, 400, "source",
                                 "'source' must not contain white space, control "
                                 "characters or '#'");
            return false;
        }
    for (const char *f = in->target; *f; f++)
        if ((unsigned char)*f <= ' ') {
            dt_admin_reply_error(rep, 400, "target",
                                 "'target' must not contain white space or control "
                                 "characters");
            return false;
        }
    if (!in->source[0] || !in->target[0]) {
        const char *f = in->source[0] ? "target" : "source";
        dt_admin_reply_error(rep, 400, f, "'%s' must not be empty", f);
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
        const char *field = d.offset < target_at                             ? "source"
                            : d.offset < status_at                           ? "target"
                            : spec.promote_at && d.offset == spec.promote_at ? "promote_after"
                                                                             : "options";
        dt_admin_reply_error(rep, 400, field, "%s: %s", field, d.msg);
    }
    dt_buf_dispose(&line);
    return ok;
}

struct dt_store_rule dt_admin_rule_in_store(const struct rule_in *in)
{
    return (struct dt_store_rule){.source = in->source,
                                  .target = in->target,
                                  .status = in->status,
                                  .options = in->options.ptr,
                                  .note = in->note};
}
