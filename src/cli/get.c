/* get: `detour get`, a user agent that follows redirects by the rules of RFC 9110 (SPEC
 * C1-C8) and shows every hop. Flags are curl's where curl has one. */
#include "cli/cli.h"
#include "detour/client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Exit statuses of detour get. */
enum { EXIT_TRANSFER = 1, EXIT_REFUSED = 3, EXIT_HTTP_ERROR = 4 };

static const char help[] =
    "Usage: detour get [OPTIONS] URL\n"
    "\n"
    "Fetches URL and follows redirects exactly as RFC 9110 says: 307 and 308 repeat the\n"
    "method and the body; 303 turns the request into GET; 301 and 302 turn POST into GET\n"
    "(as browsers do) unless --keep-method. A request that is not safe (POST, PUT, DELETE...)\n"
    "is not sent again without confirmation: asked on a terminal, refused otherwise unless\n"
    "--yes. Credentials never go to another origin; https never falls back to http unless\n"
    "--allow-downgrade; loops and more than --max-redirs redirects stop the chain.\n"
    "\n"
    "The final body goes to stdout (or -o FILE); the chain goes to stderr, one line a hop:\n"
    "  307 POST http://a/x -> http://b/y (method and body kept)\n"
    "\n"
    "Options:\n"
    "  -X, --request METHOD     the method (default GET, or POST with -d)\n"
    "  -H, --header 'N: v'      add a header field; repeatable\n"
    "  -d, --data DATA          send DATA as the body; @FILE sends a file's bytes as they are,\n"
    "                           @- reads standard input; repeated -d are joined with '&'.\n"
    "                           Content-Type defaults to application/x-www-form-urlencoded\n"
    "      --data-binary DATA   the same as -d\n"
    "  -u, --user USER:PASS     Basic credentials, for the first origin only\n"
    "  -o, --output FILE        write the final body to FILE\n"
    "  -i, --include            write the final status line and header fields before the body\n"
    "  -v, --verbose            show every request and response head on stderr\n"
    "  -s, --silent             do not show the chain (errors are still shown)\n"
    "      --json               write the chain as JSON on stdout (the body only with -o)\n"
    "      --max-redirs N       follow at most N redirects (default 20)\n"
    "  -y, --yes                send unsafe requests again without asking\n"
    "      --keep-method        301 and 302 keep POST and its body\n"
    "      --allow-downgrade    follow redirects from https to http\n"
    "      --hsts FILE          HSTS store in curl's --hsts format: read, learnt, saved\n"
    "      --cacert FILE        CA certificates for https\n"
    "  -k, --insecure           do not verify https certificates (nothing learnt for HSTS)\n"
    "      --http1.1            speak HTTP/1.1 only\n"
    "      --http2              HTTP/2 over TLS (the default when the server offers it);\n"
    "                           plain http asks to upgrade\n"
    "      --http2-prior-knowledge  HTTP/2 on plain http too, without asking\n"
    "      --max-time SECONDS   give up on a transfer after SECONDS\n"
    "      --resolve HOST:PORT:ADDR  reach HOST:PORT at ADDR without DNS, as curl's\n"
    "                           (repeatable)\n"
    "      --connect-to HOST:PORT:HOST2:PORT2  connect to HOST2:PORT2 for HOST:PORT, as\n"
    "                           curl's (repeatable)\n"
    "      --replay-limit SIZE  body read from stdin kept to send it again (default 16m)\n"
    "  -L, --location           accepted for curl's sake: detour always follows\n"
    "  -h, --help               show this help\n"
    "\n"
    "Exit status: 0 final 2xx or 3xx, 1 transfer error, 2 usage, 3 redirect refused by\n"
    "policy (unconfirmed, downgrade, loop, too many, another scheme), 4 final 4xx or 5xx.\n";

enum {
    O_MAX_REDIRS = 256,
    O_KEEP_METHOD,
    O_ALLOW_DOWNGRADE,
    O_HSTS,
    O_CACERT,
    O_JSON,
    O_MAX_TIME,
    O_REPLAY_LIMIT,
    O_DATA_BINARY,
    O_HTTP11,
    O_HTTP2,
    O_HTTP2_PRIOR,
    O_RESOLVE,
    O_CONNECT_TO,
};

static const struct option options[] = {
    {"request", required_argument, NULL, 'X'},
    {"header", required_argument, NULL, 'H'},
    {"data", required_argument, NULL, 'd'},
    {"data-binary", required_argument, NULL, O_DATA_BINARY},
    {"user", required_argument, NULL, 'u'},
    {"output", required_argument, NULL, 'o'},
    {"include", no_argument, NULL, 'i'},
    {"verbose", no_argument, NULL, 'v'},
    {"silent", no_argument, NULL, 's'},
    {"json", no_argument, NULL, O_JSON},
    {"max-redirs", required_argument, NULL, O_MAX_REDIRS},
    {"yes", no_argument, NULL, 'y'},
    {"keep-method", no_argument, NULL, O_KEEP_METHOD},
    {"allow-downgrade", no_argument, NULL, O_ALLOW_DOWNGRADE},
    {"hsts", required_argument, NULL, O_HSTS},
    {"cacert", required_argument, NULL, O_CACERT},
    {"insecure", no_argument, NULL, 'k'},
    {"http1.1", no_argument, NULL, O_HTTP11},
    {"http2", no_argument, NULL, O_HTTP2},
    {"http2-prior-knowledge", no_argument, NULL, O_HTTP2_PRIOR},
    {"max-time", required_argument, NULL, O_MAX_TIME},
    {"replay-limit", required_argument, NULL, O_REPLAY_LIMIT},
    {"resolve", required_argument, NULL, O_RESOLVE},
    {"connect-to", required_argument, NULL, O_CONNECT_TO},
    {"location", no_argument, NULL, 'L'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- body sources ----------------------------------------------------------------------- */

static long read_fd(void *ud, char *buf, size_t cap)
{
    int fd = *(int *)ud;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        return (long)n;
    }
}

/* Appends a file's (or stdin's, for "-") bytes to b. Returns 0 or -1 with errno. */
static int slurp(const char *path, struct dt_buf *b)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0)
        return -1;
    char chunk[65536];
    for (;;) {
        long n = read_fd(&fd, chunk, sizeof(chunk));
        if (n < 0) {
            int e = errno;
            if (fd)
                close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        dt_buf_append(b, chunk, (size_t)n);
    }
    if (fd)
        close(fd);
    return 0;
}

/* ---- confirmation (C4) ----------------------------------------------------------------- */

static void human_size(char *out, size_t cap, int64_t n)
{
    if (n < 0)
        snprintf(out, cap, "a body of unknown size");
    else if (n < 1000)
        snprintf(out, cap, "%lld-byte body", (long long)n);
    else if (n < 1000 * 1000)
        snprintf(out, cap, "%.1f kB body", (double)n / 1000);
    else
        snprintf(out, cap, "%.1f MB body", (double)n / 1e6);
}

/* Asks on the terminal, when there is one the user sees the chain on. */
static bool ask(void *ud, const struct dt_client_confirm *c)
{
    (void)ud;
    if (!isatty(STDERR_FILENO))
        return false;
    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0)
        return false;
    char size[64], prompt[4096];
    human_size(size, sizeof(size), c->body_len);
    int n = c->body_len == 0
                ? snprintf(prompt, sizeof(prompt), "Re-send %s to %s (after %d from %s)? [y/N] ",
                           c->method, c->to, c->status, c->from)
                : snprintf(prompt, sizeof(prompt), "Re-send %s with %s to %s? [y/N] ", c->method,
                           size, c->to);
    ssize_t w = write(tty, prompt, (size_t)n < sizeof(prompt) ? (size_t)n : sizeof(prompt) - 1);
    (void)w;
    char answer[16] = {0};
    ssize_t r = read(tty, answer, sizeof(answer) - 1);
    close(tty);
    return r > 0 && (answer[0] == 'y' || answer[0] == 'Y');
}

/* ---- output ------------------------------------------------------------------------------ */

static void trace(void *ud, char kind, const char *line, size_t len)
{
    (void)ud;
    fprintf(stderr, "%c %.*s\n", kind, (int)len, line);
}

static int write_out(void *ud, const char *data, size_t len)
{
    FILE *f = ud;
    return fwrite(data, 1, len, f) == len ? 0 : -1;
}

static void print_chain(const struct dt_client_result *r)
{
    for (size_t i = 0; i < r->nhops; i++) {
        const struct dt_client_hop *h = &r->hops[i];
        if (!h->status)
            continue; /* a transfer that failed: the error says it */
        fprintf(stderr, "%d %s %s", h->status, h->method, h->url);
        if (h->next_url)
            fprintf(stderr, " -> %s", h->next_url);
        else if (h->location)
            fprintf(stderr, " -> %s", h->location);
        if (h->next_method && strcmp(h->next_method, h->method) != 0)
            fprintf(stderr, " as %s", h->next_method);
        if (h->note)
            fprintf(stderr, " (%s)", h->note);
        if (h->protocol[0] && strcmp(h->protocol, "HTTP/1.1") != 0)
            fprintf(stderr, " [%s]", h->protocol); /* HTTP/1.1 goes without saying */
        fputc('\n', stderr);
    }
}

/* A JSON string for text received from a server, which need not be UTF-8 (a Location or a
 * field value with Latin-1 bytes): as it is when it is valid UTF-8, else with every byte
 * above 127 written as \xHH, so that nothing is dropped from the document. NULL: null. */
static json_t *json_text(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    struct dt_buf b;
    dt_buf_init(&b);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80)
            dt_buf_append(&b, p, 1);
        else
            dt_buf_appendf(&b, "\\x%02x", *p);
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    dt_buf_dispose(&b);
    return j ? j : json_null();
}

static void print_json(const struct dt_client_result *r, int rc)
{
    static const char *const kinds[] = {"network", "hsts", "cache"};
    json_t *hops = json_array();
    for (size_t i = 0; i < r->nhops; i++) {
        const struct dt_client_hop *h = &r->hops[i];
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string(kinds[h->kind]));
        json_object_set_new(o, "method", json_string(h->method));
        json_object_set_new(o, "url", json_text(h->url));
        json_object_set_new(o, "status", h->status ? json_integer(h->status) : json_null());
        json_object_set_new(o, "location", json_text(h->location));
        json_object_set_new(o, "followed", json_boolean(h->followed));
        json_object_set_new(o, "next_url", json_text(h->next_url));
        json_object_set_new(o, "next_method", json_text(h->next_method));
        json_object_set_new(o, "note", json_text(h->note));
        json_object_set_new(o, "body_length", json_integer(h->body_len));
        json_object_set_new(o, "protocol", h->protocol[0] ? json_string(h->protocol) : json_null());
        json_array_append_new(hops, o);
    }
    json_t *headers = json_array();
    for (size_t i = 0; i < r->nheaders; i++)
        json_array_append_new(headers, json_pack("[oo]", json_text(r->headers[i].name),
                                                 json_text(r->headers[i].value)));
    json_t *doc =
        json_pack("{s:o, s:o, s:o, s:o, s:o}", "hops", hops, "status",
                  r->status ? json_integer(r->status) : json_null(), "url", json_text(r->url),
                  "headers", headers, "error", rc ? json_text(r->error) : json_null());
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(doc);
}

/* What the command line asks for. */
struct get_args {
    struct dt_client_policy pol;
    struct dt_client_request req;
    const char **headers; /* malloc'd; the strings are argv's */
    size_t nheaders;
    const char **data;                  /* the -d values, malloc'd */
    const char **resolve, **connect_to; /* --resolve, --connect-to: malloc'd, argv's strings */
    size_t ndata;
    const char *output, *hsts_path;
    bool include, verbose, silent, json;
};

/* Reads the options into g. Returns -1 to go on, or the exit status (after --help, or a
 * usage error that has been reported). */
static int parse_args(int argc, char **argv, struct get_args *g)
{
    struct dt_client_policy *pol = &g->pol;
    uint64_t v;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":X:H:d:u:o:ivsykLh", options, NULL)) != -1) {
        switch (opt) {
        case 'X':
            g->req.method = optarg;
            break;
        case 'H':
            g->headers = dt_xrealloc(g->headers, (g->nheaders + 1) * sizeof(*g->headers));
            g->headers[g->nheaders++] = optarg;
            break;
        case 'd':
        case O_DATA_BINARY:
            g->data = dt_xrealloc(g->data, (g->ndata + 1) * sizeof(*g->data));
            g->data[g->ndata++] = optarg;
            break;
        case 'u':
            g->req.credentials = optarg;
            break;
        case 'o':
            g->output = optarg;
            break;
        case 'i':
            g->include = true;
            break;
        case 'v':
            g->verbose = true;
            break;
        case 's':
            g->silent = true;
            break;
        case O_JSON:
            g->json = true;
            break;
        case O_MAX_REDIRS:
            if (dt_opt_uint("get", "--max-redirs", optarg, 0, 1000, &v))
                return DT_EXIT_USAGE;
            pol->max_redirs = (unsigned)v;
            break;
        case 'y':
            pol->assume_yes = true;
            break;
        case O_KEEP_METHOD:
            pol->keep_method = true;
            break;
        case O_ALLOW_DOWNGRADE:
            pol->allow_downgrade = true;
            break;
        case O_HSTS:
            g->hsts_path = optarg;
            break;
        case O_CACERT:
            pol->cacert = optarg;
            break;
        case O_RESOLVE:
            if (dt_opt_curl_map("get", false, optarg, &g->resolve, &pol->nresolve) != 0)
                return DT_EXIT_USAGE;
            pol->resolve = g->resolve;
            break;
        case O_CONNECT_TO:
            if (dt_opt_curl_map("get", true, optarg, &g->connect_to, &pol->nconnect_to) != 0)
                return DT_EXIT_USAGE;
            pol->connect_to = g->connect_to;
            break;
        case 'k':
            pol->insecure = true;
            break;
        case O_HTTP11:
            pol->http = DT_CLIENT_HTTP_1_1;
            break;
        case O_HTTP2:
            pol->http = DT_CLIENT_HTTP_2;
            break;
        case O_HTTP2_PRIOR:
            pol->http = DT_CLIENT_HTTP_2_PRIOR;
            break;
        case O_MAX_TIME:
            if (dt_opt_duration("get", "--max-time", optarg, 1, 24ULL * 3600 * 1000, &v))
                return DT_EXIT_USAGE;
            pol->timeout_ms = (long)v;
            break;
        case O_REPLAY_LIMIT:
            if (dt_opt_size("get", "--replay-limit", optarg, 0, 1ULL << 32, &v))
                return DT_EXIT_USAGE;
            pol->replay_limit = (size_t)v;
            break;
        case 'L':
            break;
        case 'h':
            fputs(help, stdout);
            return DT_EXIT_OK;
        case ':':
            dt_usage_error("get", "%s needs a value", argv[optind - 1]);
            return DT_EXIT_USAGE;
        default:
            dt_usage_error("get", "unknown option '%s'", argv[optind - 1]);
            return DT_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        dt_usage_error("get", optind == argc ? "a URL is needed" : "one URL only, got '%s'",
                       optind < argc ? argv[optind + 1] : "");
        return DT_EXIT_USAGE;
    }
    g->req.url = argv[optind];
    return -1;
}

/* The request's body from the -d values: one -d @FILE is re-read for every hop that sends
 * it, one -d @- is read once (from *stdin_fd) and kept for replays; anything else is joined
 * in memory (body). Adds curl's Content-Type for -d when none is given. Returns 0, or
 * EXIT_TRANSFER after saying which file cannot be read. */
static int make_body(struct get_args *g, struct dt_buf *body, int *stdin_fd)
{
    struct dt_client_request *req = &g->req;
    const char **data = g->data;
    if (g->ndata == 1 && data[0][0] == '@' && strcmp(data[0], "@-") != 0) {
        if (access(data[0] + 1, R_OK) != 0) {
            fprintf(stderr, "detour get: cannot read %s: %s\n", data[0] + 1, strerror(errno));
            return EXIT_TRANSFER;
        }
        req->body = (struct dt_client_body){.kind = DT_BODY_FILE, .path = data[0] + 1};
    } else if (g->ndata == 1 && !strcmp(data[0], "@-")) {
        req->body = (struct dt_client_body){
            .kind = DT_BODY_READER, .read = read_fd, .read_ud = stdin_fd, .length = -1};
    } else if (g->ndata) {
        for (size_t i = 0; i < g->ndata; i++) {
            if (i)
                dt_buf_append(body, "&", 1);
            if (data[i][0] == '@') {
                if (slurp(data[i] + 1, body) != 0) {
                    fprintf(stderr, "detour get: cannot read %s: %s\n", data[i] + 1,
                            strerror(errno));
                    return EXIT_TRANSFER;
                }
            } else {
                dt_buf_append(body, data[i], strlen(data[i]));
            }
        }
        req->body = (struct dt_client_body){
            .kind = DT_BODY_MEMORY, .data = body->ptr ? body->ptr : "", .len = body->len};
    }
    if (g->ndata) {
        /* as curl does for -d */
        bool typed = false;
        for (size_t i = 0; i < g->nheaders; i++)
            if (!strncasecmp(g->headers[i], "content-type:", 13))
                typed = true;
        if (!typed) {
            g->headers = dt_xrealloc(g->headers, (g->nheaders + 1) * sizeof(*g->headers));
            g->headers[g->nheaders++] = "Content-Type: application/x-www-form-urlencoded";
        }
    }
    req->headers = g->headers;
    req->nheaders = g->nheaders;
    return 0;
}

/* The exit status for a fetch's result (docs/client.md). */
static int exit_status(int rc, const struct dt_client_result *res)
{
    switch (rc) {
    case 0:
        return res->status >= 400 ? EXIT_HTTP_ERROR : DT_EXIT_OK;
    case DT_CLIENT_EREFUSED:
    case DT_CLIENT_ELOOP:
    case DT_CLIENT_ETOOMANY:
        return EXIT_REFUSED;
    case DT_CLIENT_EINVAL:
        return DT_EXIT_USAGE;
    default:
        return EXIT_TRANSFER;
    }
}

/* Follows the chain, writes the final body to out (with -i, its head first), then the chain
 * to stderr or the JSON document to stdout. Returns the exit status. */
static int fetch(const struct get_args *g, FILE *out)
{
    struct dt_client_result res;
    FILE *sink = g->json && !g->output ? NULL : out;
    int rc;
    if (g->include && !g->json) {
        /* The head goes before the body: collect the body, print both at the end. */
        struct dt_buf held;
        dt_buf_init(&held);
        FILE *mem = open_memstream(&held.ptr, &held.len);
        rc = dt_client_fetch(&g->req, &g->pol, write_out, mem, &res);
        fclose(mem);
        if (res.status) {
            fprintf(out, "HTTP/1.1 %d %s\r\n", res.status, dt_client_reason(res.status));
            for (size_t i = 0; i < res.nheaders; i++)
                fprintf(out, "%s: %s\r\n", res.headers[i].name, res.headers[i].value);
            fputs("\r\n", out);
        }
        fwrite(held.ptr, 1, held.len, out);
        free(held.ptr);
    } else {
        rc = dt_client_fetch(&g->req, &g->pol, sink ? write_out : NULL, sink, &res);
    }
    if (fflush(out) != 0)
        fprintf(stderr, "detour get: writing the body failed: %s\n", strerror(errno));
    if (g->json)
        print_json(&res, rc);
    else if (!g->silent)
        print_chain(&res);
    if (rc)
        fprintf(stderr, "detour get: %s\n", res.error);
    int status = exit_status(rc, &res);
    dt_client_result_free(&res);
    return status;
}

int dt_cmd_get(int argc, char **argv)
{
    struct get_args g = {0};
    dt_client_policy_init(&g.pol);
    struct dt_buf body;
    dt_buf_init(&body);
    struct dt_client_hsts *hsts = NULL;
    FILE *out = stdout;
    int stdin_fd = 0;
    int status = parse_args(argc, argv, &g);
    if (status >= 0 || (status = make_body(&g, &body, &stdin_fd)) != 0)
        goto out;
    if (g.hsts_path) {
        hsts = dt_client_hsts_new();
        if (!hsts || dt_client_hsts_load(hsts, g.hsts_path, dt_wall_now()) != 0) {
            fprintf(stderr, "detour get: cannot read the HSTS store %s: %s\n", g.hsts_path,
                    strerror(errno));
            status = EXIT_TRANSFER;
            goto out;
        }
        g.pol.hsts = hsts;
    }
    if (g.output && !(out = fopen(g.output, "wb"))) {
        fprintf(stderr, "detour get: cannot write %s: %s\n", g.output, strerror(errno));
        out = stdout;
        status = EXIT_TRANSFER;
        goto out;
    }
    g.pol.confirm = ask;
    if (g.verbose)
        g.pol.trace = trace;
    status = fetch(&g, out);
    if (hsts && dt_client_hsts_save(hsts, g.hsts_path, dt_wall_now()) != 0)
        fprintf(stderr, "detour get: cannot save the HSTS store %s: %s\n", g.hsts_path,
                strerror(errno));
out:
    if (out != stdout)
        fclose(out);
    dt_client_hsts_free(hsts);
    dt_buf_dispose(&body);
    free(g.headers);
    free(g.data);
    free(g.resolve);
    free(g.connect_to);
    return status;
}
