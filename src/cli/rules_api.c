/* rules_api: `detour rules` talking to the admin API: requests with the token, answers and
 * their errors, query strings, what a write answered. */
#include "cli/rules.h"

/* ---- talking to the API ------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nitems, void *ud)
{
    struct answer *ans = ud;
    size_t n = size * nitems;
    if (n > RESPONSE_MAX - ans->body.len) {
        ans->too_large = true;
        return 0; /* aborts the transfer */
    }
    dt_buf_append(&ans->body, data, n);
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload *up = ud;
    size_t cap = size * nitems;
    if (up->file) {
        size_t got = fread(buf, 1, cap, up->file);
        return got == 0 && ferror(up->file) ? CURL_READFUNC_ABORT : got;
    }
    size_t left = up->len - up->off;
    if (left > cap)
        left = cap;
    memcpy(buf, up->mem + up->off, left);
    up->off += left;
    return left;
}

/* libcurl rewinds the content when it sends a request again on a new connection. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct upload *up = ud;
    if (origin != SEEK_SET || offset < 0 || offset > up->size)
        return CURL_SEEKFUNC_CANTSEEK;
    if (up->file)
        return fseeko(up->file, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK
                                                              : CURL_SEEKFUNC_FAIL;
    up->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void human_size(char out[32], curl_off_t n)
{
    if (n < 1024)
        snprintf(out, 32, "%lld B", (long long)n);
    else if (n < 1024 * 1024)
        snprintf(out, 32, "%.1f KiB", (double)n / 1024);
    else
        snprintf(out, 32, "%.1f MiB", (double)n / (1024 * 1024));
}

static void draw_progress(struct upload *up, curl_off_t sent)
{
    int permille = up->size > 0 ? (int)(sent * 1000 / up->size) : 1000;
    if (permille > 1000)
        permille = 1000;
    if (permille == up->shown)
        return;
    up->shown = permille;
    char bar[31];
    int full = permille * 30 / 1000;
    for (int i = 0; i < 30; i++)
        bar[i] = i < full ? '#' : '.';
    bar[30] = '\0';
    char now[32], total[32];
    human_size(now, sent);
    human_size(total, up->size);
    fprintf(stderr, "\rdetour rules: uploading %s [%s] %3d%% %s of %s\033[K", up->name, bar,
            permille / 10, now, total);
    fflush(stderr);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    draw_progress(ud, ulnow);
    return 0;
}

void dt_rcli_answer_init(struct answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    dt_buf_init(&ans->body);
}

void dt_rcli_answer_dispose(struct answer *ans)
{
    dt_buf_dispose(&ans->body);
    json_decref(ans->json);
    ans->json = NULL;
}

static struct curl_slist *header_add(struct curl_slist *list, const char *h)
{
    struct curl_slist *l = curl_slist_append(list, h);
    if (!l)
        dt_oom();
    return l;
}

/* Sends one request: method on the API's path (with its query), with JSON content (body) or
 * an import's (up), or none. Returns DT_EXIT_OK with ans filled, whatever the HTTP status,
 * DT_EXIT_FAIL after saying why no answer came, or DT_EXIT_USAGE when there is no token. */
int dt_rcli_request(struct client *c, const char *method, const char *path, json_t *body,
                    struct upload *up, struct answer *ans)
{
    if (!c->auth[0] && dt_rcli_load_token(c, c->token_file))
        return DT_EXIT_USAGE;
    int rc = DT_EXIT_FAIL;
    struct dt_buf url;
    dt_buf_init(&url);
    dt_buf_appendf(&url, "%s%s", c->base, path);
    char errbuf[CURL_ERROR_SIZE] = "";
    char *payload = NULL;
    struct curl_slist *headers = header_add(NULL, c->auth);
    headers = header_add(headers, "Accept: application/json");
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.ptr);
    if (c->socket_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The token goes to the server named and nowhere else: no proxy from the environment. */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "detour-rules/" DETOUR_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ans);
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload)
            dt_oom();
        headers = header_add(headers, "Content-Type: application/json");
        headers = header_add(headers, "Expect:");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    } else if (up) {
        /* Expect: 100-continue lets the server refuse content over its limit (413) before
         * any of it is sent. */
        headers = header_add(headers, "Content-Type: text/plain; charset=utf-8");
        headers = header_add(headers, "Expect: 100-continue");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, up->size);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, up);
        if (up->progress) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, up);
        }
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    if (strcmp(method, "GET") && strcmp(method, "POST"))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(h);
    if (up && up->progress && up->shown >= 0) {
        if (cc == CURLE_OK)
            draw_progress(up, up->size);
        fputc('\n', stderr);
    }
    const char *where = c->socket_path ? c->socket_path : c->base;
    if (ans->too_large) {
        fprintf(stderr, "detour rules: the answer from %s is over the %u MiB limit\n", where,
                RESPONSE_MAX >> 20);
        goto out;
    }
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
        cc == CURLE_OPERATION_TIMEDOUT) {
        /* libcurl's message names a host and port even for a Unix socket: say errno's */
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        const char *why = c->socket_path && os_errno ? strerror((int)os_errno)
                          : errbuf[0]                ? errbuf
                                                     : curl_easy_strerror(cc);
        fprintf(stderr,
                "detour rules: cannot connect to the admin API at %s%s: %s (is "
                "'detour serve' running with --admin there? see --server)\n",
                c->socket_path ? "unix:" : "", where, why);
        goto out;
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "detour rules: %s %s failed: %s\n", method, url.ptr,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ans->status);
    json_error_t jerr;
    ans->json = ans->body.len ? json_loadb(ans->body.ptr, ans->body.len, 0, &jerr) : NULL;
    if (ans->status >= 200 && ans->status < 300 && !json_is_object(ans->json)) {
        fprintf(stderr,
                "detour rules: HTTP %ld: the answer from %s is not a JSON object; is "
                "it detour's admin API?\n",
                ans->status, where);
        goto out;
    }
    rc = DT_EXIT_OK;
out:
    /* the handle keeps the connection, and no pointer to what is freed here */
    curl_easy_reset(h);
    curl_slist_free_all(headers);
    free(payload);
    dt_buf_dispose(&url);
    return rc;
}

/* With --json, the answer as it came (one line), else nothing. */
void dt_rcli_print_json(const struct client *c, const struct answer *ans)
{
    if (!c->json || !ans->body.len)
        return;
    fwrite(ans->body.ptr, 1, ans->body.len, stdout);
    if (ans->body.ptr[ans->body.len - 1] != '\n')
        putchar('\n');
}

/* For an answer that is not a success: says what the API said ("HTTP 404: no rule 7") and
 * returns DT_EXIT_FAIL. */
int dt_rcli_api_error(const struct client *c, const struct answer *ans)
{
    dt_rcli_print_json(c, ans);
    const char *msg = json_string_value(json_object_get(ans->json, "error"));
    const char *field = json_string_value(json_object_get(ans->json, "field"));
    fprintf(stderr, "detour rules: HTTP %ld: ", ans->status);
    if (msg) {
        dt_rcli_put_clean(stderr, msg);
    } else if (ans->body.len) {
        /* not the API's JSON (a proxy's page?): its first line */
        size_t n = 0;
        while (n < ans->body.len && n < 200 && ans->body.ptr[n] != '\n')
            n++;
        char *first = dt_xstrndup(ans->body.ptr, n);
        dt_rcli_put_clean(stderr, first);
        free(first);
    } else {
        fputs("(no message)", stderr);
    }
    if (field) {
        fputs(" (field ", stderr);
        dt_rcli_put_clean(stderr, field);
        fputc(')', stderr);
    }
    fputc('\n', stderr);
    if (ans->status == 413)
        fprintf(stderr, "detour rules: the server takes at most its --admin-max-body (default "
                        "256m) of content\n");
    if (ans->status == 401)
        fprintf(stderr,
                "detour rules: the token sent came from %s; the server's is in its "
                "--admin-token-file (default: the --db path + .token)\n",
                c->token_from);
    return DT_EXIT_FAIL;
}

/* A GET (or another body-less request) that must succeed: 0, or the exit status after the
 * error was printed. ans must be disposed of either way. */
int dt_rcli_call(struct client *c, const char *method, const char *path, json_t *body,
                 struct answer *ans)
{
    int rc = dt_rcli_request(c, method, path, body, NULL, ans);
    if (rc)
        return rc;
    if (ans->status < 200 || ans->status >= 300)
        return dt_rcli_api_error(c, ans);
    return DT_EXIT_OK;
}

/* Appends "?key=value" or "&key=value", the value percent-encoded. */
void dt_rcli_query_add(struct dt_buf *b, struct client *c, const char *key, const char *value)
{
    char *v = curl_easy_escape(c->curl, value, 0);
    if (!v)
        dt_oom();
    dt_buf_appendf(b, "%c%s=%s", memchr(b->ptr, '?', b->len) ? '&' : '?', key, v);
    dt_buf_terminate(b);
    curl_free(v);
}

void dt_rcli_query_add_int(struct dt_buf *b, struct client *c, const char *key, int64_t value)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)value);
    dt_rcli_query_add(b, c, key, v);
}

/* ---- answers to writes -------------------------------------------------------------------- */

static void print_lint(json_t *findings)
{
    size_t i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        printf("lint %s %s (rule %lld): ", dt_rcli_jstr(f, "severity"), dt_rcli_jstr(f, "kind"),
               (long long)dt_rcli_jint(f, "id"));
        dt_rcli_put_clean(stdout, dt_rcli_jstr(f, "message"));
        putchar('\n');
    }
}

/* What a dry run would do: "+ RULE", "~ ID: OLD => NEW", "- ID: RULE", the lint findings and
 * a summary. Returns DT_EXIT_FAIL when the write would be refused, else DT_EXIT_OK. */
int dt_rcli_print_dry_run(json_t *j)
{
    json_t *diff = json_object_get(j, "diff");
    json_t *added = json_object_get(diff, "added"), *changed = json_object_get(diff, "changed"),
           *removed = json_object_get(diff, "removed");
    size_t i;
    json_t *r;
    json_array_foreach(added, i, r)
    {
        char *t = dt_rcli_rule_text(r);
        printf("+ %s\n", t);
        free(t);
    }
    json_array_foreach(changed, i, r)
    {
        char *o = dt_rcli_rule_text(json_object_get(r, "old")),
             *n = dt_rcli_rule_text(json_object_get(r, "new"));
        printf("~ %lld: %s => %s\n", (long long)dt_rcli_jint(json_object_get(r, "old"), "id"), o,
               n);
        free(o);
        free(n);
    }
    json_array_foreach(removed, i, r)
    {
        char *t = dt_rcli_rule_text(r);
        printf("- %lld: %s\n", (long long)dt_rcli_jint(r, "id"), t);
        free(t);
    }
    print_lint(json_object_get(j, "lint"));
    printf("dry run: %zu added, %zu changed, %zu removed; nothing was written\n",
           json_array_size(added), json_array_size(changed), json_array_size(removed));
    if (json_is_true(json_object_get(j, "would_refuse"))) {
        fprintf(stderr, "detour rules: it would be refused: the result has error-level lint "
                        "findings (--force applies it anyway)\n");
        return DT_EXIT_FAIL;
    }
    return DT_EXIT_OK;
}

/* The answer to a write: the dry run's diff, or what "verb" did, with the rule when the
 * answer has one. */
int dt_rcli_print_write(const struct client *c, json_t *j, const char *verb)
{
    if (json_is_true(json_object_get(j, "dry_run"))) {
        if (c->json)
            return json_is_true(json_object_get(j, "would_refuse")) ? DT_EXIT_FAIL : DT_EXIT_OK;
        return dt_rcli_print_dry_run(j);
    }
    if (c->json)
        return DT_EXIT_OK;
    json_t *rule = json_object_get(j, "rule");
    if (rule) {
        char *t = dt_rcli_rule_text(rule);
        printf("%s rule %lld: %s (version %lld)\n", verb, (long long)dt_rcli_jint(j, "id"), t,
               (long long)dt_rcli_jint(j, "version"));
        free(t);
    } else {
        printf("%s rule %lld (version %lld)\n", verb, (long long)dt_rcli_jint(j, "id"),
               (long long)dt_rcli_jint(j, "version"));
    }
    return DT_EXIT_OK;
}
