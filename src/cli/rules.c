/* rules: `detour rules SUBCOMMAND`, a client of a running server's admin API (docs/admin.md):
 * lists, shows, adds, changes, removes, imports and exports the store's rules, and reads its
 * versions. One libcurl handle, JSON through jansson; nothing is kept between runs. */
#include "cli/cli.h"
#include "http/http.h"
#include "rules/import.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SERVER "http://127.0.0.1:9307"
#define DEFAULT_TOKEN_FILE "./detour.db.token"
#define TOKEN_MAX 255                 /* the server keeps tokens of up to 255 bytes */
#define TOKEN_FILE_MAX 4096           /* a token file larger than this is not a token file */
#define RESPONSE_MAX (1024u << 20)    /* largest API answer read: 1 GiB */
#define UPLOAD_MAX DT_IMPORT_MAX_TEXT /* largest import read from a pipe into memory */
#define PAGE_ALL 10000 /* rules per request of list --all and export: the API's most */
#define EXPORT_TRIES 5 /* exports redone when the store changed meanwhile */
#define CONNECT_TIMEOUT_S 10L
#define TABLE_COLS 8
#define SHOWN_MAX 200 /* bytes of an argument quoted back in a usage error */

/* ---- the command line --------------------------------------------------------------------- */

enum {
    O_SERVER = 256,
    O_TOKEN_FILE,
    O_JSON,
    O_TEXT,
    O_HOST,
    O_STATUS,
    O_OLD_TEMPORARY,
    O_LIMIT,
    O_ALL,
    O_NOTE,
    O_DRY_RUN,
    O_FORMAT,
    O_REPLACE,
    O_FORCE,
    O_METHOD,
    O_BEFORE,
};

/* Which subcommand options a command takes (the global ones go with every command). */
#define ACCEPTS(o) (1u << ((o)-O_TEXT))

static const struct option global_options[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option all_options[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {"text", required_argument, NULL, O_TEXT},
    {"host", required_argument, NULL, O_HOST},
    {"status", required_argument, NULL, O_STATUS},
    {"old-temporary", no_argument, NULL, O_OLD_TEMPORARY},
    {"limit", required_argument, NULL, O_LIMIT},
    {"all", no_argument, NULL, O_ALL},
    {"note", required_argument, NULL, O_NOTE},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {"format", required_argument, NULL, O_FORMAT},
    {"replace", no_argument, NULL, O_REPLACE},
    {"force", no_argument, NULL, O_FORCE},
    {"method", required_argument, NULL, O_METHOD},
    {"before", required_argument, NULL, O_BEFORE},
    {NULL, 0, NULL, 0},
};

/* Everything the command line said. */
struct args {
    const char *server, *token_file;
    bool json;
    const char *text, *host, *note, *format, *method;
    int status;             /* 0: not given */
    uint64_t limit, before; /* 0: not given */
    bool old_temporary, all, dry_run, replace, force;
    char **pos; /* the positional arguments after the subcommand's name */
    int npos;
};

/* A connection to the admin API and how to print its answers. */
struct client {
    CURL *curl;
    char *base;                /* "http://127.0.0.1:9307", no trailing '/'; owned */
    char *socket_path;         /* a Unix socket, or NULL; owned */
    const char *server;        /* as given, for messages */
    const char *token_file;    /* read at the first request, after the arguments are checked */
    const char *token_from;    /* "DETOUR_TOKEN" or the token file's name, for messages */
    char auth[TOKEN_MAX + 32]; /* "Authorization: Bearer TOKEN" */
    bool json;
};

/* An answer: the status and the content, parsed when it is JSON. */
struct answer {
    long status;
    struct dt_buf body;
    json_t *json; /* owned; NULL when the content is not JSON */
    bool too_large;
};

/* The content of an import: a regular file streamed as it is read, or bytes in memory (from
 * a pipe), and the upload's progress bar. */
struct upload {
    FILE *file;
    char *mem; /* owned */
    size_t len, off;
    curl_off_t size;
    const char *name;
    bool progress;
    int shown; /* per mille of the bar last drawn; -1: none yet */
};

struct command {
    const char *name;
    const char *synopsis;
    const char *help;
    unsigned accepts;
    int min_pos, max_pos; /* -1: any number */
    int (*run)(struct client *c, const struct args *a);
};

static const char help_top[] =
    "Usage: detour rules [--server URL] [--token-file FILE] [--json] COMMAND [ARGS]\n"
    "\n"
    "Lists, adds, changes, removes, imports and exports the rules of a running detour\n"
    "server's store through its admin API (docs/admin.md). Every change is live when the\n"
    "command returns.\n"
    "\n"
    "Commands:\n"
    "  list [--text T] [--host H] [--status N] [--old-temporary] [--limit N] [--all]\n"
    "  get ID\n"
    "  add SOURCE TARGET [STATUS] [KEY=VALUE]... [--note TEXT] [--dry-run]\n"
    "  set ID FIELD=VALUE... [--dry-run]\n"
    "  rm ID [--dry-run]\n"
    "  import FILE [--format F] [--replace] [--force] [--dry-run] [--status N]\n"
    "  export\n"
    "  match URL [--method M]\n"
    "  history [ID] [--limit N] [--before V]\n"
    "  versions [--limit N] [--before V]\n"
    "  rollback VERSION [--dry-run]\n"
    "\n"
    "Options (before or after the command):\n"
    "  --server URL        the admin API: http://ADDR:PORT (default " DEFAULT_SERVER "),\n"
    "                      ADDR:PORT, https://HOST:PORT, or unix:PATH (or a path starting\n"
    "                      with / or .) for a Unix socket\n"
    "  --token-file FILE   the file with the bearer token (default " DEFAULT_TOKEN_FILE ");\n"
    "                      the environment variable DETOUR_TOKEN, when set, is used instead\n"
    "  --json              print the API's JSON answers as they come, one per line\n"
    "  -h, --help          show this help; 'detour rules COMMAND --help' for a command's\n"
    "\n"
    "Exit status: 0 done; 1 the API refused (its message is printed as 'HTTP STATUS: ...')\n"
    "or could not be reached; 2 a usage error or no token.\n";

/* ---- small helpers ------------------------------------------------------------------------ */

/* Writes s with control characters replaced, so that what the store holds cannot drive the
 * terminal. */
static void put_clean(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, out);
    }
}

static char *clean_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = dt_xstrndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
            d[i] = '?';
    return d;
}

/* Characters a terminal shows for s: UTF-8 sequences count once. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static const char *jstr(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static json_int_t jint(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* A rule as a rule-file line (docs/rules.md), the form `detour rules export` writes and
 * `import` reads: the API gives it as the rule's "text", written by the rule codec. */
static void rule_line(struct dt_buf *out, json_t *r)
{
    dt_buf_appendf(out, "%s", jstr(r, "text"));
    dt_buf_terminate(out);
}

/* rule_line as a string the caller frees. */
static char *rule_text(json_t *r)
{
    struct dt_buf b;
    dt_buf_init(&b);
    rule_line(&b, r);
    char *s = clean_dup(b.ptr ? b.ptr : "");
    dt_buf_dispose(&b);
    return s;
}

/* A usage error with the command's synopsis: "detour rules CMD: message", "Usage: ...",
 * and the hint dt_usage_error adds. Returns DT_EXIT_USAGE. */
static int usage(const struct command *cmd, const char *fmt, ...) DT_PRINTF(2, 3);
static int usage(const struct command *cmd, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cmd)
        return dt_usage_error("rules", "%s\nUsage: detour rules [OPTIONS] COMMAND [ARGS]", msg);
    char name[32];
    snprintf(name, sizeof(name), "rules %s", cmd->name);
    return dt_usage_error(name, "%s\nUsage: detour rules %s", msg, cmd->synopsis);
}

/* ---- tables ------------------------------------------------------------------------------- */

/* Rows printed in columns as wide as their widest cell so far: printed page by page, a
 * table's columns only ever widen. The last column is not padded. */
struct table {
    size_t ncols;
    const char *head[TABLE_COLS];
    size_t width[TABLE_COLS];
    char **cells; /* nrows * ncols, owned */
    size_t nrows, cap;
    bool head_shown;
};

static void table_init(struct table *t, size_t ncols, const char *const *head)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->head[i] = head[i];
        t->width[i] = display_width(head[i]);
    }
}

/* Adds a row; the cells are copied with control characters replaced. */
static void table_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = dt_xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = clean_dup(cells[i] ? cells[i] : "");
    t->nrows++;
}

static void print_row(const struct table *t, const char *const *cells)
{
    /* empty cells at the end of a row leave no trailing blanks */
    size_t n = t->ncols;
    while (n > 1 && !cells[n - 1][0])
        n--;
    for (size_t i = 0; i < n; i++) {
        fputs(cells[i], stdout);
        if (i + 1 < n)
            printf("%*s", (int)(t->width[i] - display_width(cells[i]) + 2), "");
    }
    putchar('\n');
}

/* Prints the rows added since the last flush (and the header, the first time). */
static void table_flush(struct table *t)
{
    if (!t->nrows)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i + 1 < t->ncols; i++) {
            size_t w = display_width(t->cells[r * t->ncols + i]);
            if (w > t->width[i])
                t->width[i] = w;
        }
    if (!t->head_shown)
        print_row(t, t->head);
    t->head_shown = true;
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, (const char *const *)&t->cells[r * t->ncols]);
        for (size_t i = 0; i < t->ncols; i++)
            free(t->cells[r * t->ncols + i]);
    }
    t->nrows = 0;
}

static void table_dispose(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}

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

static void answer_init(struct answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    dt_buf_init(&ans->body);
}

static void answer_dispose(struct answer *ans)
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

static int load_token(struct client *c, const char *file);

/* Sends one request: method on the API's path (with its query), with JSON content (body) or
 * an import's (up), or none. Returns DT_EXIT_OK with ans filled, whatever the HTTP status,
 * DT_EXIT_FAIL after saying why no answer came, or DT_EXIT_USAGE when there is no token. */
static int request(struct client *c, const char *method, const char *path, json_t *body,
                   struct upload *up, struct answer *ans)
{
    if (!c->auth[0] && load_token(c, c->token_file))
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
static void print_json(const struct client *c, const struct answer *ans)
{
    if (!c->json || !ans->body.len)
        return;
    fwrite(ans->body.ptr, 1, ans->body.len, stdout);
    if (ans->body.ptr[ans->body.len - 1] != '\n')
        putchar('\n');
}

/* For an answer that is not a success: says what the API said ("HTTP 404: no rule 7") and
 * returns DT_EXIT_FAIL. */
static int api_error(const struct client *c, const struct answer *ans)
{
    print_json(c, ans);
    const char *msg = json_string_value(json_object_get(ans->json, "error"));
    const char *field = json_string_value(json_object_get(ans->json, "field"));
    fprintf(stderr, "detour rules: HTTP %ld: ", ans->status);
    if (msg) {
        put_clean(stderr, msg);
    } else if (ans->body.len) {
        /* not the API's JSON (a proxy's page?): its first line */
        size_t n = 0;
        while (n < ans->body.len && n < 200 && ans->body.ptr[n] != '\n')
            n++;
        char *first = dt_xstrndup(ans->body.ptr, n);
        put_clean(stderr, first);
        free(first);
    } else {
        fputs("(no message)", stderr);
    }
    if (field) {
        fputs(" (field ", stderr);
        put_clean(stderr, field);
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
static int call(struct client *c, const char *method, const char *path, json_t *body,
                struct answer *ans)
{
    int rc = request(c, method, path, body, NULL, ans);
    if (rc)
        return rc;
    if (ans->status < 200 || ans->status >= 300)
        return api_error(c, ans);
    return DT_EXIT_OK;
}

/* Appends "?key=value" or "&key=value", the value percent-encoded. */
static void query_add(struct dt_buf *b, struct client *c, const char *key, const char *value)
{
    char *v = curl_easy_escape(c->curl, value, 0);
    if (!v)
        dt_oom();
    dt_buf_appendf(b, "%c%s=%s", memchr(b->ptr, '?', b->len) ? '&' : '?', key, v);
    dt_buf_terminate(b);
    curl_free(v);
}

static void query_add_int(struct dt_buf *b, struct client *c, const char *key, int64_t value)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)value);
    query_add(b, c, key, v);
}

/* ---- answers to writes -------------------------------------------------------------------- */

static void print_lint(json_t *findings)
{
    size_t i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        printf("lint %s %s (rule %lld): ", jstr(f, "severity"), jstr(f, "kind"),
               (long long)jint(f, "id"));
        put_clean(stdout, jstr(f, "message"));
        putchar('\n');
    }
}

/* What a dry run would do: "+ RULE", "~ ID: OLD => NEW", "- ID: RULE", the lint findings and
 * a summary. Returns DT_EXIT_FAIL when the write would be refused, else DT_EXIT_OK. */
static int print_dry_run(json_t *j)
{
    json_t *diff = json_object_get(j, "diff");
    json_t *added = json_object_get(diff, "added"), *changed = json_object_get(diff, "changed"),
           *removed = json_object_get(diff, "removed");
    size_t i;
    json_t *r;
    json_array_foreach(added, i, r)
    {
        char *t = rule_text(r);
        printf("+ %s\n", t);
        free(t);
    }
    json_array_foreach(changed, i, r)
    {
        char *o = rule_text(json_object_get(r, "old")), *n = rule_text(json_object_get(r, "new"));
        printf("~ %lld: %s => %s\n", (long long)jint(json_object_get(r, "old"), "id"), o, n);
        free(o);
        free(n);
    }
    json_array_foreach(removed, i, r)
    {
        char *t = rule_text(r);
        printf("- %lld: %s\n", (long long)jint(r, "id"), t);
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
static int print_write(const struct client *c, json_t *j, const char *verb)
{
    if (json_is_true(json_object_get(j, "dry_run"))) {
        if (c->json)
            return json_is_true(json_object_get(j, "would_refuse")) ? DT_EXIT_FAIL : DT_EXIT_OK;
        return print_dry_run(j);
    }
    if (c->json)
        return DT_EXIT_OK;
    json_t *rule = json_object_get(j, "rule");
    if (rule) {
        char *t = rule_text(rule);
        printf("%s rule %lld: %s (version %lld)\n", verb, (long long)jint(j, "id"), t,
               (long long)jint(j, "version"));
        free(t);
    } else {
        printf("%s rule %lld (version %lld)\n", verb, (long long)jint(j, "id"),
               (long long)jint(j, "version"));
    }
    return DT_EXIT_OK;
}

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
        snprintf(id, sizeof(id), "%lld", (long long)jint(r, "id"));
        snprintf(status, sizeof(status), "%lld", (long long)jint(r, "status"));
        /* S10: for a 307, since when it has answered 307 */
        const char *when = *jstr(r, "since") ? jstr(r, "since") : jstr(r, "updated");
        const char *cells[] = {id,   status,         jstr(r, "source"), jstr(r, "target"),
                               when, jstr(r, "note")};
        table_row(t, cells);
    }
}

static int cmd_list(struct client *c, const struct args *a)
{
    struct dt_buf base;
    dt_buf_init(&base);
    dt_buf_appendf(&base, "/api/rules");
    if (a->text)
        query_add(&base, c, "text", a->text);
    if (a->host)
        query_add(&base, c, "host", a->host);
    if (a->status)
        query_add_int(&base, c, "status", a->status);
    if (a->old_temporary)
        query_add(&base, c, "old_temporary", "1");
    if (a->limit || a->all)
        query_add_int(&base, c, "limit", a->limit ? (int64_t)a->limit : PAGE_ALL);
    struct table t;
    table_init(&t, DT_ARRAY_LEN(list_head), list_head);
    int rc = DT_EXIT_OK;
    int64_t after = 0, shown = 0, total = 0;
    bool more = false;
    for (;;) {
        struct dt_buf path;
        dt_buf_init(&path);
        dt_buf_append(&path, base.ptr, base.len);
        dt_buf_terminate(&path);
        if (after)
            query_add_int(&path, c, "after", after);
        struct answer ans;
        answer_init(&ans);
        rc = call(c, "GET", path.ptr, NULL, &ans);
        dt_buf_dispose(&path);
        if (rc) {
            answer_dispose(&ans);
            break;
        }
        json_t *rules = json_object_get(ans.json, "rules");
        json_t *next = json_object_get(ans.json, "next_after");
        total = jint(ans.json, "total");
        shown += (int64_t)json_array_size(rules);
        print_json(c, &ans);
        if (!c->json) {
            list_rows(&t, rules);
            table_flush(&t);
        }
        more = json_is_integer(next);
        after = json_integer_value(next);
        answer_dispose(&ans);
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
    table_dispose(&t);
    dt_buf_dispose(&base);
    return rc;
}

static int parse_id(const struct command *cmd, const char *what, const char *s, int64_t min,
                    int64_t *out)
{
    if (dt_parse_int(dt_str_make(s, strlen(s)), min, INT64_MAX, out) == 0)
        return 0;
    return usage(cmd, "%s: '%.*s' is not a number from %lld up", what, SHOWN_MAX, s,
                 (long long)min);
}

static const struct command *current; /* the command being run, for usage errors */

static int cmd_get(struct client *c, const struct args *a)
{
    int64_t id;
    if (parse_id(current, "ID", a->pos[0], 1, &id))
        return DT_EXIT_USAGE;
    char path[64];
    snprintf(path, sizeof(path), "/api/rules/%lld", (long long)id);
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, "GET", path, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        print_json(c, &ans);
        if (!c->json) {
            json_t *r = ans.json;
            char *line = rule_text(r);
            printf("%-14s%lld\n%-14s%s\n", "id", (long long)jint(r, "id"), "rule", line);
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
                    put_clean(stdout, json_string_value(v));
                else if (json_is_integer(v))
                    printf("%lld", (long long)json_integer_value(v));
                else
                    fputs("-", stdout); /* null or "" */
                putchar('\n');
            }
        }
    }
    answer_dispose(&ans);
    return rc;
}

/* The store's newest version (GET /api/versions?limit=1). */
static int current_version(struct client *c, int64_t *out)
{
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, "GET", "/api/versions?limit=1", NULL, &ans);
    if (rc == DT_EXIT_OK)
        *out = jint(ans.json, "current");
    answer_dispose(&ans);
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
        answer_init(&ans);
        int rc = call(c, "GET", path, NULL, &ans);
        if (rc) {
            answer_dispose(&ans);
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
                rule_line(out, r);
                const char *note = jstr(r, "note");
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
        answer_dispose(&ans);
        if (!more)
            return DT_EXIT_OK;
    }
}

static int cmd_export(struct client *c, const struct args *a)
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
        return usage(cmd, "expected FIELD=VALUE, got '%.*s'", SHOWN_MAX, arg);
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
        return usage(cmd, "unknown %s '%.*s' (%s)", patch ? "field" : "option",
                     (int)(klen < SHOWN_MAX ? klen : SHOWN_MAX), arg,
                     patch ? "fields: source, target, status, query, cache, from, until, "
                             "promote-after, note"
                           : "options: query=keep|drop, cache=SECONDS, from=TIME, until=TIME, "
                             "promote-after=AGE, note=TEXT");
    if (json_object_get(rule, key))
        return usage(cmd, "%s given twice", key);
    bool clear = patch && (!*val || !strcmp(val, "none") || !strcmp(val, "null"));
    json_t *v;
    int64_t n;
    if (!strcmp(key, "status")) {
        if (dt_parse_int(dt_str_make(val, strlen(val)), 0, 999, &n) || !dt_http_is_redirect(n))
            return usage(cmd, "status: '%.*s' is not 301, 302, 303, 307 or 308", SHOWN_MAX, val);
        v = json_integer(n);
    } else if (!strcmp(key, "cache") && clear) {
        v = json_null();
    } else if (!strcmp(key, "cache")) {
        if (dt_parse_int(dt_str_make(val, strlen(val)), 0, INT32_MAX, &n))
            return usage(cmd, "cache: '%.*s' is not a number of seconds%s", SHOWN_MAX, val,
                         patch ? " (or none)" : "");
        v = json_integer(n);
    } else if ((!strcmp(key, "from") || !strcmp(key, "until") || !strcmp(key, "promote_after")) &&
               clear) {
        v = json_null();
    } else {
        v = json_string(val);
        if (!v)
            return usage(cmd, "%s: the value is not UTF-8", key);
    }
    json_object_set_new(rule, key, v);
    return 0;
}

static void write_path(struct dt_buf *p, struct client *c, const char *path, bool dry_run)
{
    dt_buf_appendf(p, "%s", path);
    if (dry_run)
        query_add(p, c, "dry_run", "true");
}

/* Sends a write and prints its answer; verb says what was done ("added"). */
static int send_write(struct client *c, const char *method, const char *path, bool dry_run,
                      json_t *body, const char *verb)
{
    struct dt_buf p;
    dt_buf_init(&p);
    write_path(&p, c, path, dry_run);
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, method, p.ptr, body, &ans);
    if (rc == DT_EXIT_OK) {
        print_json(c, &ans);
        rc = print_write(c, ans.json, verb);
    }
    answer_dispose(&ans);
    dt_buf_dispose(&p);
    return rc;
}

static int cmd_add(struct client *c, const struct args *a)
{
    json_t *rule = json_pack("{s:s,s:s}", "source", a->pos[0], "target", a->pos[1]);
    if (!rule)
        return usage(current, "SOURCE and TARGET must be UTF-8");
    int rc = DT_EXIT_OK;
    for (int i = 2; i < a->npos && rc == DT_EXIT_OK; i++) {
        const char *arg = a->pos[i];
        if (arg[0] >= '0' && arg[0] <= '9') {
            /* as in a rule file: the status follows the target, once */
            int64_t s;
            if (i != 2)
                rc = usage(current, "the status must follow the target, once: '%.*s'", SHOWN_MAX,
                           arg);
            else if (dt_parse_int(dt_str_make(arg, strlen(arg)), 0, 999, &s) ||
                     !dt_http_is_redirect(s))
                rc = usage(current, "'%.*s' is not 301, 302, 303, 307 or 308", SHOWN_MAX, arg);
            else
                json_object_set_new(rule, "status", json_integer(s));
        } else {
            rc = put_field(current, rule, arg, false);
        }
    }
    if (rc == DT_EXIT_OK && a->note) {
        if (json_object_get(rule, "note"))
            rc = usage(current, "note given twice (--note and note=)");
        else if (json_object_set_new(rule, "note", json_string(a->note)))
            rc = usage(current, "--note: the text is not UTF-8");
    }
    if (rc == DT_EXIT_OK)
        rc = send_write(c, "POST", "/api/rules", a->dry_run, rule, "added");
    json_decref(rule);
    return rc;
}

static int cmd_set(struct client *c, const struct args *a)
{
    int64_t id;
    if (parse_id(current, "ID", a->pos[0], 1, &id))
        return DT_EXIT_USAGE;
    if (a->npos < 2 && !a->note)
        return usage(current, "nothing to change: give FIELD=VALUE (source, target, status, "
                              "query, cache, from, until, promote-after, note)");
    json_t *patch = json_object();
    int rc = DT_EXIT_OK;
    for (int i = 1; i < a->npos && rc == DT_EXIT_OK; i++)
        rc = put_field(current, patch, a->pos[i], true);
    if (rc == DT_EXIT_OK && a->note) {
        if (json_object_get(patch, "note"))
            rc = usage(current, "note given twice (--note and note=)");
        else if (json_object_set_new(patch, "note", json_string(a->note)))
            rc = usage(current, "--note: the text is not UTF-8");
    }
    char path[64];
    snprintf(path, sizeof(path), "/api/rules/%lld", (long long)id);
    if (rc == DT_EXIT_OK)
        rc = send_write(c, "PATCH", path, a->dry_run, patch, "changed");
    json_decref(patch);
    return rc;
}

static int cmd_rm(struct client *c, const struct args *a)
{
    int64_t id;
    if (parse_id(current, "ID", a->pos[0], 1, &id))
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
            fprintf(stderr, "%s:%lld:%lld: ", name, (long long)jint(e, "line"),
                    (long long)jint(e, "column"));
            put_clean(stderr, jstr(e, "message"));
            fputc('\n', stderr);
        }
        json_int_t count = jint(ans->json, "count");
        if (count > (json_int_t)json_array_size(errors))
            fprintf(stderr, "%s: %lld more errors not shown\n", name,
                    (long long)(count - (json_int_t)json_array_size(errors)));
    } else if (ans->status == 409) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(ans->json, "lint"), i, f)
        {
            fprintf(stderr, "%s: lint %s %s (rule %lld): ", name, jstr(f, "severity"),
                    jstr(f, "kind"), (long long)jint(f, "id"));
            put_clean(stderr, jstr(f, "message"));
            fputc('\n', stderr);
        }
    }
    return api_error(c, ans);
}

static int cmd_import(struct client *c, const struct args *a)
{
    const char *path = a->pos[0];
    enum dt_rule_format f = strcmp(path, "-") ? dt_rule_format_guess(path) : DT_FORMAT_DETOUR;
    if (a->format && dt_rule_format_parse(a->format, &f) != 0)
        return usage(current, "--format: '%.*s' is not detour, csv, nginx or netlify", SHOWN_MAX,
                     a->format);
    struct upload up;
    if (upload_open(&up, path))
        return DT_EXIT_FAIL;
    up.progress = !c->json && isatty(STDERR_FILENO);
    struct dt_buf p;
    dt_buf_init(&p);
    dt_buf_appendf(&p, "/api/import");
    query_add(&p, c, "format", dt_rule_format_name(f));
    if (a->replace)
        query_add(&p, c, "mode", "replace");
    if (a->status)
        query_add_int(&p, c, "status", a->status);
    if (a->force)
        query_add(&p, c, "force", "true");
    if (a->dry_run)
        query_add(&p, c, "dry_run", "true");
    struct answer ans;
    answer_init(&ans);
    int rc = request(c, "POST", p.ptr, NULL, &up, &ans);
    if (rc == DT_EXIT_OK) {
        if (ans.status < 200 || ans.status >= 300) {
            rc = import_error(c, &ans, up.name);
        } else {
            print_json(c, &ans);
            json_t *j = ans.json;
            if (json_is_true(json_object_get(j, "dry_run")))
                rc = c->json ? (json_is_true(json_object_get(j, "would_refuse")) ? DT_EXIT_FAIL
                                                                                 : DT_EXIT_OK)
                             : print_dry_run(j);
            else if (!c->json)
                printf("imported %s: %lld rules; %lld added, %lld changed, %lld removed "
                       "(version %lld)\n",
                       up.name, (long long)jint(j, "rules"), (long long)jint(j, "added"),
                       (long long)jint(j, "changed"), (long long)jint(j, "removed"),
                       (long long)jint(j, "version"));
        }
    }
    answer_dispose(&ans);
    dt_buf_dispose(&p);
    upload_close(&up);
    return rc;
}

/* ---- match, history, versions, rollback ---------------------------------------------------- */

static int cmd_match(struct client *c, const struct args *a)
{
    const char *url = a->pos[0];
    struct dt_buf full;
    dt_buf_init(&full);
    /* "example.com/old" means http://example.com/old */
    dt_buf_appendf(&full, "%s%s", strstr(url, "://") ? "" : "http://", url);
    struct dt_buf p;
    dt_buf_init(&p);
    dt_buf_appendf(&p, "/api/match");
    query_add(&p, c, "url", full.ptr);
    if (a->method)
        query_add(&p, c, "method", a->method);
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, "GET", p.ptr, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        print_json(c, &ans);
        json_t *j = ans.json, *rule = json_object_get(j, "rule");
        if (!c->json) {
            if (json_is_object(rule)) {
                char *t = rule_text(rule);
                if (json_object_get(rule, "id"))
                    printf("rule: store rule %lld: %s\n", (long long)jint(rule, "id"), t);
                else {
                    fputs("rule: ", stdout);
                    put_clean(stdout, jstr(rule, "file"));
                    printf(":%lld: %s\n", (long long)jint(rule, "line"), t);
                }
                free(t);
            } else {
                puts("rule: none (404)");
            }
            printf("status: %lld\n", (long long)jint(j, "status"));
            if (*jstr(j, "location")) {
                fputs("location: ", stdout);
                put_clean(stdout, jstr(j, "location"));
                putchar('\n');
            }
            /* the response as the redirect listener sends it, byte for byte */
            json_t *resp = json_object_get(j, "response");
            printf("\n");
            fwrite(json_string_value(resp) ? json_string_value(resp) : "", 1,
                   json_string_length(resp), stdout);
        }
    }
    answer_dispose(&ans);
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
        if (parse_id(current, "ID", a->pos[0], 1, &id)) {
            dt_buf_dispose(&p);
            return DT_EXIT_USAGE;
        }
        query_add_int(&p, c, "id", id);
    }
    if (a->limit)
        query_add_int(&p, c, "limit", (int64_t)a->limit);
    if (a->before)
        query_add_int(&p, c, "before", (int64_t)a->before);
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, "GET", p.ptr, NULL, &ans);
    if (rc == DT_EXIT_OK) {
        print_json(c, &ans);
        json_t *list = json_object_get(ans.json, versions ? "versions" : "changes");
        struct table t;
        if (versions)
            table_init(&t, DT_ARRAY_LEN(versions_head), versions_head);
        else
            table_init(&t, DT_ARRAY_LEN(history_head), history_head);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            char v[24], n1[24], n2[24], n3[24];
            snprintf(v, sizeof(v), "%lld", (long long)jint(e, "version"));
            if (versions) {
                snprintf(n1, sizeof(n1), "%lld", (long long)jint(e, "added"));
                snprintf(n2, sizeof(n2), "%lld", (long long)jint(e, "changed"));
                snprintf(n3, sizeof(n3), "%lld", (long long)jint(e, "removed"));
                const char *cells[] = {v,  jstr(e, "at"),     jstr(e, "actor"), n1, n2,
                                       n3, jstr(e, "comment")};
                table_row(&t, cells);
                continue;
            }
            json_t *o = json_object_get(e, "old"), *nw = json_object_get(e, "new");
            json_t *one = json_is_object(nw) ? nw : o;
            snprintf(n1, sizeof(n1), "%lld", (long long)jint(one, "id"));
            struct dt_buf change;
            dt_buf_init(&change);
            if (json_is_object(o))
                rule_line(&change, o);
            if (json_is_object(o) && json_is_object(nw))
                dt_buf_appendf(&change, " => ");
            if (json_is_object(nw))
                rule_line(&change, nw);
            dt_buf_terminate(&change);
            const char *cells[] = {v,
                                   jstr(e, "at"),
                                   jstr(e, "actor"),
                                   jstr(e, "kind"),
                                   n1,
                                   change.ptr ? change.ptr : ""};
            table_row(&t, cells);
            dt_buf_dispose(&change);
        }
        if (!c->json) {
            if (json_array_size(list) == 0)
                fprintf(stderr, "detour rules: no %s\n", versions ? "versions" : "changes");
            table_flush(&t);
        }
        table_dispose(&t);
    }
    answer_dispose(&ans);
    dt_buf_dispose(&p);
    return rc;
}

static int cmd_history_changes(struct client *c, const struct args *a)
{
    return cmd_history(c, a, false);
}

static int cmd_versions(struct client *c, const struct args *a)
{
    return cmd_history(c, a, true);
}

static int cmd_rollback(struct client *c, const struct args *a)
{
    int64_t version;
    if (parse_id(current, "VERSION", a->pos[0], 0, &version))
        return DT_EXIT_USAGE;
    json_t *body = json_pack("{s:I}", "version", (json_int_t)version);
    struct dt_buf p;
    dt_buf_init(&p);
    write_path(&p, c, "/api/rollback", a->dry_run);
    struct answer ans;
    answer_init(&ans);
    int rc = call(c, "POST", p.ptr, body, &ans);
    if (rc == DT_EXIT_OK) {
        print_json(c, &ans);
        json_t *j = ans.json;
        if (json_is_true(json_object_get(j, "dry_run")))
            rc = c->json ? DT_EXIT_OK : print_dry_run(j);
        else if (!c->json)
            printf("rolled back to version %lld as version %lld: %lld added, %lld changed, "
                   "%lld removed\n",
                   (long long)version, (long long)jint(j, "version"), (long long)jint(j, "added"),
                   (long long)jint(j, "changed"), (long long)jint(j, "removed"));
    }
    answer_dispose(&ans);
    dt_buf_dispose(&p);
    json_decref(body);
    return rc;
}

/* ---- the commands ------------------------------------------------------------------------- */

static const struct command commands[] = {
    {"list", "list [--text T] [--host H] [--status N] [--old-temporary] [--limit N] [--all]",
     "Lists the store's rules in order of id: ID, STATUS, SOURCE, TARGET, SINCE/UPDATED (for\n"
     "a 307, since when it has answered 307: S10) and NOTE.\n"
     "\n"
     "  --text T          rules whose source, target or note contain T\n"
     "  --host H          rules for the host H\n"
     "  --status N        rules with the status N\n"
     "  --old-temporary   307s in place longer than the server's --max-temporary-age (S10)\n"
     "  --limit N         at most N rules (default 100; up to 10000); with --all, per request\n"
     "  --all             every rule, page after page\n",
     ACCEPTS(O_TEXT) | ACCEPTS(O_HOST) | ACCEPTS(O_STATUS) | ACCEPTS(O_OLD_TEMPORARY) |
         ACCEPTS(O_LIMIT) | ACCEPTS(O_ALL),
     0, 0, cmd_list},
    {"get", "get ID", "Shows one rule: every field, and the rule as a rule-file line.\n", 0, 1, 1,
     cmd_get},
    {"add", "add SOURCE TARGET [STATUS] [KEY=VALUE]... [--note TEXT] [--dry-run]",
     "Adds a rule, written as in a rule file (docs/rules.md): STATUS is 301, 302, 303, 307\n"
     "(the default) or 308; the options are query=keep|drop, cache=SECONDS, from=TIME and\n"
     "until=TIME (RFC 3339), promote-after=AGE (90d: the 307 becomes a 308 after that long),\n"
     "and note=TEXT.\n"
     "\n"
     "  --note TEXT   a note kept with the rule\n"
     "  --dry-run     show what would change and the lint findings; change nothing\n"
     "\n"
     "Example: detour rules add /sale /winter-sale 302 cache=60 --note 'Q4 campaign'\n",
     ACCEPTS(O_NOTE) | ACCEPTS(O_DRY_RUN), 2, -1, cmd_add},
    {"set", "set ID FIELD=VALUE... [--dry-run]",
     "Changes the fields given of rule ID (the others stay): source=, target=, status=,\n"
     "query=keep|drop, cache=SECONDS, from=TIME, until=TIME, promote-after=AGE, note=TEXT.\n"
     "cache=none, from=none, until=none and promote-after=none remove the option.\n"
     "\n"
     "  --note TEXT   the same as note=TEXT\n"
     "  --dry-run     show what would change and the lint findings; change nothing\n",
     ACCEPTS(O_NOTE) | ACCEPTS(O_DRY_RUN), 1, -1, cmd_set},
    {"rm", "rm ID [--dry-run]",
     "Removes rule ID. A rule file's rule with the same source answers again.\n"
     "\n"
     "  --dry-run   show what would change; change nothing\n",
     ACCEPTS(O_DRY_RUN), 1, 1, cmd_rm},
    {"import", "import FILE [--format F] [--replace] [--force] [--dry-run] [--status N]",
     "Sends a rule file (FILE, or - for stdin) to the store, all of it or nothing, as one\n"
     "version. Rules with a source the store has replace it; the others are added. Each bad\n"
     "line is reported as FILE:LINE:COL: message. An import whose result has an error-level\n"
     "lint finding (a loop, a conflict) is refused with the findings. A progress bar shows\n"
     "the upload when stderr is a terminal.\n"
     "\n"
     "  --format F   detour, csv, nginx or netlify (docs/import.md; default: by the file's\n"
     "               name: *.csv, *.map, _redirects; detour for stdin)\n"
     "  --replace    also remove every store rule the file does not have\n"
     "  --force      apply it even with error-level lint findings\n"
     "  --dry-run    show what would change and the lint findings; change nothing (exit 1\n"
     "               when the import would be refused)\n"
     "  --status N   the status of entries that carry none\n",
     ACCEPTS(O_FORMAT) | ACCEPTS(O_REPLACE) | ACCEPTS(O_FORCE) | ACCEPTS(O_DRY_RUN) |
         ACCEPTS(O_STATUS),
     1, 1, cmd_import},
    {"export", "export",
     "Prints every store rule as a rule-file line, SOURCE TARGET STATUS [OPTIONS], with its\n"
     "note as a comment, all from one version of the store:\n"
     "  detour rules export > rules.txt && detour rules import --replace rules.txt\n"
     "puts the same rules back (notes are not read back by an import).\n",
     0, 0, 0, cmd_export},
    {"match", "match URL [--method M]",
     "Shows which rule answers URL (absolute; http:// is assumed without a scheme) and the\n"
     "exact response the redirect listener sends for it.\n"
     "\n"
     "  --method M   the request's method (default GET)\n",
     ACCEPTS(O_METHOD), 1, 1, cmd_match},
    {"history", "history [ID] [--limit N] [--before V]",
     "Lists the changes to the store's rules (or to rule ID), newest first, each with the\n"
     "old and the new rule.\n"
     "\n"
     "  --limit N    at most N changes (default 100)\n"
     "  --before V   changes made before version V\n",
     ACCEPTS(O_LIMIT) | ACCEPTS(O_BEFORE), 0, 1, cmd_history_changes},
    {"versions", "versions [--limit N] [--before V]",
     "Lists the store's versions, newest first: when, who (api, import, rollback) and how\n"
     "many rules each added, changed and removed.\n"
     "\n"
     "  --limit N    at most N versions (default 100)\n"
     "  --before V   versions before V\n",
     ACCEPTS(O_LIMIT) | ACCEPTS(O_BEFORE), 0, 0, cmd_versions},
    {"rollback", "rollback VERSION [--dry-run]",
     "Makes the store's rules those of VERSION again, as a new version (0: no rules).\n"
     "\n"
     "  --dry-run   show what would change; change nothing\n",
     ACCEPTS(O_DRY_RUN), 1, 1, cmd_rollback},
};

static void command_help(const struct command *cmd)
{
    printf("Usage: detour rules [--server URL] [--token-file FILE] [--json] %s\n\n%s",
           cmd->synopsis, cmd->help);
    printf("\nWith --json, the API's answer is printed as it comes (docs/admin.md).\n"
           "'detour rules --help' lists the other commands and the options of all.\n");
}

/* Reads the bearer token: DETOUR_TOKEN, else the token file. Returns 0 or DT_EXIT_USAGE after
 * a message. */
static int load_token(struct client *c, const char *file)
{
    const char *env = getenv("DETOUR_TOKEN");
    char token[TOKEN_FILE_MAX + 1];
    size_t n;
    if (env && *env) {
        n = strlen(env);
        if (n >= sizeof(token))
            n = sizeof(token) - 1;
        memcpy(token, env, n);
        c->token_from = "DETOUR_TOKEN";
    } else {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr,
                    "detour rules: cannot read the token file %s: %s (set DETOUR_TOKEN "
                    "or use --token-file FILE; the server writes it next to its --db)\n",
                    file, strerror(errno));
            return DT_EXIT_USAGE;
        }
        n = fread(token, 1, sizeof(token), f);
        bool failed = ferror(f);
        int err = errno;
        fclose(f);
        if (failed) {
            fprintf(stderr, "detour rules: cannot read the token file %s: %s\n", file,
                    strerror(err));
            return DT_EXIT_USAGE;
        }
        if (n == sizeof(token)) {
            fprintf(stderr, "detour rules: %s is too large to be a token file\n", file);
            return DT_EXIT_USAGE;
        }
        c->token_from = file;
    }
    while (n && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' ' ||
                 token[n - 1] == '\t'))
        n--;
    token[n] = '\0';
    if (n == 0 || n > TOKEN_MAX) {
        fprintf(stderr, "detour rules: the token from %s is %s\n", c->token_from,
                n ? "longer than 255 bytes" : "empty");
        return DT_EXIT_USAGE;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f) {
            fprintf(stderr,
                    "detour rules: the token from %s has a character a token cannot "
                    "have (white space or a control character)\n",
                    c->token_from);
            return DT_EXIT_USAGE;
        }
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %.*s", (int)n, token);
    return 0;
}

/* Where the API is: http(s)://..., ADDR:PORT, or a Unix socket (unix:PATH, or a path).
 * Returns 0 or DT_EXIT_USAGE after a message. */
static int set_server(struct client *c, const char *server)
{
    c->server = server;
    if (!strncmp(server, "unix:", 5) || server[0] == '/' || server[0] == '.') {
        const char *path = strncmp(server, "unix:", 5) ? server : server + 5;
        if (!*path)
            return usage(NULL, "--server: unix: needs a socket's path (unix:/run/detour.sock)");
        c->socket_path = dt_xstrndup(path, strlen(path));
        c->base = dt_xstrndup("http://localhost", 16);
        return 0;
    }
    const char *sep = strstr(server, "://");
    if (sep && strncmp(server, "http://", 7) && strncmp(server, "https://", 8))
        return usage(NULL, "--server: '%.*s' is not http://, https:// or unix:", SHOWN_MAX, server);
    if (!*server || (sep && !sep[3]))
        return usage(NULL, "--server: no address");
    struct dt_buf b;
    dt_buf_init(&b);
    dt_buf_appendf(&b, "%s%s", sep ? "" : "http://", server);
    while (b.len && b.ptr[b.len - 1] == '/')
        b.len--;
    dt_buf_terminate(&b);
    c->base = b.ptr;
    return 0;
}

/* An option of any command; sets *done (and returns the exit status) for --help or errors. */
static int take_option(const struct command *cmd, int opt, char **argv, struct args *a, bool *done)
{
    uint64_t v;
    const char *name = cmd ? cmd->name : "rules";
    char label[32];
    snprintf(label, sizeof(label), cmd ? "rules %s" : "rules", name);
    *done = true;
    if (opt >= O_TEXT && cmd && !(cmd->accepts & ACCEPTS(opt)))
        return usage(cmd, "%s does not take %.*s", cmd->name, SHOWN_MAX, argv[optind - 1]);
    switch (opt) {
    case 'h':
        if (cmd)
            command_help(cmd);
        else
            fputs(help_top, stdout);
        return DT_EXIT_OK;
    case ':':
        return usage(cmd, "%.*s needs a value", SHOWN_MAX, argv[optind - 1]);
    case '?':
        if (optopt > 0 && optopt < 256)
            return usage(cmd, "unknown option '-%c'", optopt);
        return usage(cmd, "unknown option '%.*s'", SHOWN_MAX, argv[optind - 1]);
    case O_SERVER:
        a->server = optarg;
        break;
    case O_TOKEN_FILE:
        a->token_file = optarg;
        break;
    case O_JSON:
        a->json = true;
        break;
    case O_TEXT:
        a->text = optarg;
        break;
    case O_HOST:
        a->host = optarg;
        break;
    case O_STATUS:
        if (dt_opt_uint(label, "--status", optarg, 300, 399, &v))
            return DT_EXIT_USAGE;
        if (!dt_http_is_redirect(v))
            return usage(cmd, "--status: %s is not 301, 302, 303, 307 or 308", optarg);
        a->status = (int)v;
        break;
    case O_OLD_TEMPORARY:
        a->old_temporary = true;
        break;
    case O_LIMIT:
        if (dt_opt_uint(label, "--limit", optarg, 1, PAGE_ALL, &a->limit))
            return DT_EXIT_USAGE;
        break;
    case O_ALL:
        a->all = true;
        break;
    case O_NOTE:
        a->note = optarg;
        break;
    case O_DRY_RUN:
        a->dry_run = true;
        break;
    case O_FORMAT:
        a->format = optarg;
        break;
    case O_REPLACE:
        a->replace = true;
        break;
    case O_FORCE:
        a->force = true;
        break;
    case O_METHOD:
        a->method = optarg;
        break;
    case O_BEFORE:
        if (dt_opt_uint(label, "--before", optarg, 1, INT64_MAX, &a->before))
            return DT_EXIT_USAGE;
        break;
    default:
        return usage(cmd, "unknown option '%.*s'", SHOWN_MAX, argv[optind - 1]);
    }
    *done = false;
    return DT_EXIT_OK;
}

int dt_cmd_rules(int argc, char **argv)
{
    struct args a = {.server = DEFAULT_SERVER, .token_file = DEFAULT_TOKEN_FILE};
    bool done;
    int opt, rc;
    /* The options before the command; '+' stops at the command's name. */
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:h", global_options, NULL)) != -1) {
        rc = take_option(NULL, opt, argv, &a, &done);
        if (done)
            return rc;
    }
    if (optind >= argc)
        return usage(NULL, "which command? list, get, add, set, rm, import, export, match, "
                           "history, versions or rollback");
    const struct command *cmd = NULL;
    for (size_t i = 0; i < DT_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[optind], commands[i].name))
            cmd = &commands[i];
    if (!cmd) {
        if (!strcmp(argv[optind], "help")) {
            fputs(help_top, stdout);
            return DT_EXIT_OK;
        }
        return usage(NULL,
                     "unknown command '%.*s' (list, get, add, set, rm, import, export, "
                     "match, history, versions, rollback)",
                     SHOWN_MAX, argv[optind]);
    }
    current = cmd;
    /* The command's options and arguments, in any order; the global options too. */
    int sargc = argc - optind;
    char **sargv = argv + optind;
    optind = 0;
    while ((opt = getopt_long(sargc, sargv, ":h", all_options, NULL)) != -1) {
        rc = take_option(cmd, opt, sargv, &a, &done);
        if (done)
            return rc;
    }
    a.pos = sargv + optind;
    a.npos = sargc - optind;
    if (a.npos < cmd->min_pos || (cmd->max_pos >= 0 && a.npos > cmd->max_pos)) {
        if (a.npos > cmd->max_pos && cmd->max_pos >= 0)
            return usage(cmd, "unexpected argument '%.*s'", SHOWN_MAX, a.pos[cmd->max_pos]);
        return usage(cmd, "missing arguments");
    }

    struct client c = {.json = a.json, .token_file = a.token_file};
    rc = set_server(&c, a.server);
    if (rc) {
        free(c.base);
        free(c.socket_path);
        return rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "detour rules: libcurl did not initialise\n");
        rc = DT_EXIT_FAIL;
        goto out;
    }
    c.curl = curl_easy_init();
    if (!c.curl) {
        fprintf(stderr, "detour rules: libcurl did not initialise\n");
        rc = DT_EXIT_FAIL;
    } else {
        rc = cmd->run(&c, &a);
        curl_easy_cleanup(c.curl);
    }
    curl_global_cleanup();
out:
    memset(c.auth, 0, sizeof(c.auth));
    free(c.base);
    free(c.socket_path);
    return rc;
}
