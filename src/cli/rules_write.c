/* rules_write: `detour rules` add, set, rm and import. */
#include "cli/rules.h"

/* ---- add, set, rm ------------------------------------------------------------------------- */

/* Fields a rule has in the API, with what the command line takes for each. */
static const char *const writable[] = {"source", "target", "status", "query",        "cache",
                                       "from",   "until",  "note",   "promote_after"};

/* Puts one FIELD=VALUE into the rule object. With patch, "none", "null" or an empty value
 * clears cache, from and until. Returns 0 or DT_EXIT_USAGE after the message. */
static int put_field(const struct command *cmd, json_t *rule, const char *arg, bool patch)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return dt_rcli_usage(cmd, "expected FIELD=VALUE, got '%.*s'", SHOWN_MAX, arg);
    size_t klen = (size_t)(eq - arg);
    const char *val = eq + 1;
    const char *key = NULL;
    for (size_t i = 0; i < DT_ARRAY_LEN(writable); i++)
        if (strlen(writable[i]) == klen && !memcmp(writable[i], arg, klen))
            key = writable[i];
    /* the rule files' spelling of the API's promote_after */
    if (klen == 13 && !memcmp(arg, "promote-after", 13))
        key = "promote_after";
    /* add takes the source and target as arguments, and options as in rule files */
    if (!key ||
        (!patch && (!strcmp(key, "source") || !strcmp(key, "target") || !strcmp(key, "status"))))
        return dt_rcli_usage(
            cmd, "unknown %s '%.*s' (%s)", patch ? "field" : "option",
            (int)(klen < SHOWN_MAX ? klen : SHOWN_MAX), arg,
            patch ? "fields: source, target, status, query, cache, from, until, "
                    "promote-after, note"
                  : "options: query=keep|drop, cache=SECONDS, from=TIME, until=TIME, "
                    "promote-after=AGE, note=TEXT");
    if (json_object_get(rule, key))
        return dt_rcli_usage(cmd, "%s given twice", key);
    bool clear = patch && (!*val || !strcmp(val, "none") || !strcmp(val, "null"));
    json_t *v;
    int64_t n;
    if (!strcmp(key, "status")) {
        if (dt_parse_int(dt_str_make(val, strlen(val)), 0, 999, &n) || !dt_http_is_redirect(n))
            return dt_rcli_usage(cmd, "status: '%.*s' is not 301, 302, 303, 307 or 308", SHOWN_MAX,
                                 val);
        v = json_integer(n);
    } else if (!strcmp(key, "cache") && clear) {
        v = json_null();
    } else if (!strcmp(key, "cache")) {
        if (dt_parse_int(dt_str_make(val, strlen(val)), 0, INT32_MAX, &n))
            return dt_rcli_usage(cmd, "cache: '%.*s' is not a number of seconds%s", SHOWN_MAX, val,
                                 patch ? " (or none)" : "");
        v = json_integer(n);
    } else if ((!strcmp(key, "from") || !strcmp(key, "until") || !strcmp(key, "promote_after")) &&
               clear) {
        v = json_null();
    } else {
        v = json_string(val);
        if (!v)
            return dt_rcli_usage(cmd, "%s: the value is not UTF-8", key);
    }
    json_object_set_new(rule, key, v);
    return 0;
}

void dt_rcli_write_path(struct dt_buf *p, struct client *c, const char *path, bool dry_run)
{
    dt_buf_appendf(p, "%s", path);
    if (dry_run)
        dt_rcli_query_add(p, c, "dry_run", "true");
}

/* Sends a write and prints its answer; verb says what was done ("added"). */
static int send_write(struct client *c, const char *method, const char *path, bool dry_run,
                      json_t *body, const char *verb)
{
    struct dt_buf p;
    dt_buf_init(&p);
    dt_rcli_write_path(&p, c, path, dry_run);
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_call(c, method, p.ptr, body, &ans);
    if (rc == DT_EXIT_OK) {
        dt_rcli_print_json(c, &ans);
        rc = dt_rcli_print_write(c, ans.json, verb);
    }
    dt_rcli_answer_dispose(&ans);
    dt_buf_dispose(&p);
    return rc;
}

int dt_rcli_cmd_add(struct client *c, const struct args *a)
{
    json_t *rule = json_pack("{s:s,s:s}", "source", a->pos[0], "target", a->pos[1]);
    if (!rule)
        return dt_rcli_usage(dt_rcli_current, "SOURCE and TARGET must be UTF-8");
    int rc = DT_EXIT_OK;
    for (int i = 2; i < a->npos && rc == DT_EXIT_OK; i++) {
        const char *arg = a->pos[i];
        if (arg[0] >= '0' && arg[0] <= '9') {
            /* as in a rule file: the status follows the target, once */
            int64_t s;
            if (i != 2)
                rc = dt_rcli_usage(dt_rcli_current,
                                   "the status must follow the target, once: '%.*s'", SHOWN_MAX,
                                   arg);
            else if (dt_parse_int(dt_str_make(arg, strlen(arg)), 0, 999, &s) ||
                     !dt_http_is_redirect(s))
                rc = dt_rcli_usage(dt_rcli_current, "'%.*s' is not 301, 302, 303, 307 or 308",
                                   SHOWN_MAX, arg);
            else
                json_object_set_new(rule, "status", json_integer(s));
        } else {
            rc = put_field(dt_rcli_current, rule, arg, false);
        }
    }
    if (rc == DT_EXIT_OK && a->note) {
        if (json_object_get(rule, "note"))
            rc = dt_rcli_usage(dt_rcli_current, "note given twice (--note and note=)");
        else if (json_object_set_new(rule, "note", json_string(a->note)))
            rc = dt_rcli_usage(dt_rcli_current, "--note: the text is not UTF-8");
    }
    if (rc == DT_EXIT_OK)
        rc = send_write(c, "POST", "/api/rules", a->dry_run, rule, "added");
    json_decref(rule);
    return rc;
}

int dt_rcli_cmd_set(struct client *c, const struct args *a)
{
    int64_t id;
    if (dt_rcli_parse_id(dt_rcli_current, "ID", a->pos[0], 1, &id))
        return DT_EXIT_USAGE;
    if (a->npos < 2 && !a->note)
        return dt_rcli_usage(dt_rcli_current,
                             "nothing to change: give FIELD=VALUE (source, target, status, "
                             "query, cache, from, until, promote-after, note)");
    json_t *patch = json_object();
    int rc = DT_EXIT_OK;
    for (int i = 1; i < a->npos && rc == DT_EXIT_OK; i++)
        rc = put_field(dt_rcli_current, patch, a->pos[i], true);
    if (rc == DT_EXIT_OK && a->note) {
        if (json_object_get(patch, "note"))
            rc = dt_rcli_usage(dt_rcli_current, "note given twice (--note and note=)");
        else if (json_object_set_new(patch, "note", json_string(a->note)))
            rc = dt_rcli_usage(dt_rcli_current, "--note: the text is not UTF-8");
    }
    char path[64];
    snprintf(path, sizeof(path), "/api/rules/%lld", (long long)id);
    if (rc == DT_EXIT_OK)
        rc = send_write(c, "PATCH", path, a->dry_run, patch, "changed");
    json_decref(patch);
    return rc;
}

int dt_rcli_cmd_rm(struct client *c, const struct args *a)
{
    int64_t id;
    if (dt_rcli_parse_id(dt_rcli_current, "ID", a->pos[0], 1, &id))
        return DT_EXIT_USAGE;
    char path[64];
    snprintf(path, sizeof(path), "/api/rules/%lld", (long long)id);
    return send_write(c, "DELETE", path, a->dry_run, NULL, "removed");
}

/* ---- import ------------------------------------------------------------------------------- */

/* Opens the import's content: a regular file is streamed, anything else (stdin, a pipe) read
 * into memory first so that its length is known. Returns 0 or DT_EXIT_FAIL after a message. */
static int upload_open(struct upload *up, const char *path)
{
    memset(up, 0, sizeof(*up));
    up->shown = -1;
    bool is_stdin = !strcmp(path, "-");
    up->name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "detour rules: cannot open %s: %s\n", path, strerror(errno));
        return DT_EXIT_FAIL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && !is_stdin) {
        if ((uint64_t)st.st_size > UPLOAD_MAX) {
            fprintf(stderr, "detour rules: %s is over the %zu byte limit of an import\n", path,
                    (size_t)UPLOAD_MAX);
            fclose(f);
            return DT_EXIT_FAIL;
        }
        up->file = f;
        up->size = (curl_off_t)st.st_size;
        return 0;
    }
    struct dt_buf text;
    dt_buf_init(&text);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (n > UPLOAD_MAX - text.len) {
            fprintf(stderr, "detour rules: %s is over the %zu byte limit of an import\n", up->name,
                    (size_t)UPLOAD_MAX);
            goto fail;
        }
        dt_buf_append(&text, chunk, n);
    }
    if (ferror(f)) {
        fprintf(stderr, "detour rules: reading %s failed: %s\n", up->name, strerror(errno));
        goto fail;
    }
    if (!is_stdin)
        fclose(f);
    up->mem = text.ptr;
    up->len = text.len;
    up->size = (curl_off_t)text.len;
    return 0;
fail:
    if (!is_stdin)
        fclose(f);
    dt_buf_dispose(&text);
    return DT_EXIT_FAIL;
}

static void upload_close(struct upload *up)
{
    if (up->file)
        fclose(up->file);
    free(up->mem);
    up->file = NULL;
    up->mem = NULL;
}

/* A refused import: each bad line as FILE:LINE:COL: message, or the lint findings of a 409,
 * then the API's message. */
static int import_error(const struct client *c, const struct answer *ans, const char *name)
{
    json_t *errors = json_object_get(ans->json, "errors");
    if (ans->status == 400 && json_is_array(errors)) {
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            fprintf(stderr, "%s:%lld:%lld: ", name, (long long)dt_rcli_jint(e, "line"),
                    (long long)dt_rcli_jint(e, "column"));
            dt_rcli_put_clean(stderr, dt_rcli_jstr(e, "message"));
            fputc('\n', stderr);
        }
        json_int_t count = dt_rcli_jint(ans->json, "count");
        if (count > (json_int_t)json_array_size(errors))
            fprintf(stderr, "%s: %lld more errors not shown\n", name,
                    (long long)(count - (json_int_t)json_array_size(errors)));
    } else if (ans->status == 409) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(ans->json, "lint"), i, f)
        {
            fprintf(stderr, "%s: lint %s %s (rule %lld): ", name, dt_rcli_jstr(f, "severity"),
                    dt_rcli_jstr(f, "kind"), (long long)dt_rcli_jint(f, "id"));
            dt_rcli_put_clean(stderr, dt_rcli_jstr(f, "message"));
            fputc('\n', stderr);
        }
    }
    return dt_rcli_api_error(c, ans);
}

int dt_rcli_cmd_import(struct client *c, const struct args *a)
{
    const char *path = a->pos[0];
    enum dt_rule_format f = strcmp(path, "-") ? dt_rule_format_guess(path) : DT_FORMAT_DETOUR;
    if (a->format && dt_rule_format_parse(a->format, &f) != 0)
        return dt_rcli_usage(dt_rcli_current,
                             "--format: '%.*s' is not detour, csv, nginx or netlify", SHOWN_MAX,
                             a->format);
    struct upload up;
    if (upload_open(&up, path))
        return DT_EXIT_FAIL;
    up.progress = !c->json && isatty(STDERR_FILENO);
    struct dt_buf p;
    dt_buf_init(&p);
    dt_buf_appendf(&p, "/api/import");
    dt_rcli_query_add(&p, c, "format", dt_rule_format_name(f));
    if (a->replace)
        dt_rcli_query_add(&p, c, "mode", "replace");
    if (a->status)
        dt_rcli_query_add_int(&p, c, "status", a->status);
    if (a->force)
        dt_rcli_query_add(&p, c, "force", "true");
    if (a->dry_run)
        dt_rcli_query_add(&p, c, "dry_run", "true");
    struct answer ans;
    dt_rcli_answer_init(&ans);
    int rc = dt_rcli_request(c, "POST", p.ptr, NULL, &up, &ans);
    if (rc == DT_EXIT_OK) {
        if (ans.status < 200 || ans.status >= 300) {
            rc = import_error(c, &ans, up.name);
        } else {
            dt_rcli_print_json(c, &ans);
            json_t *j = ans.json;
            if (json_is_true(json_object_get(j, "dry_run")))
                rc = c->json ? (json_is_true(json_object_get(j, "would_refuse")) ? DT_EXIT_FAIL
                                                                                 : DT_EXIT_OK)
                             : dt_rcli_print_dry_run(j);
            else if (!c->json)
                printf("imported %s: %lld rules; %lld added, %lld changed, %lld removed "
                       "(version %lld)\n",
                       up.name, (long long)dt_rcli_jint(j, "rules"),
                       (long long)dt_rcli_jint(j, "added"), (long long)dt_rcli_jint(j, "changed"),
                       (long long)dt_rcli_jint(j, "removed"),
                       (long long)dt_rcli_jint(j, "version"));
        }
    }
    dt_rcli_answer_dispose(&ans);
    dt_buf_dispose(&p);
    upload_close(&up);
    return rc;
}
