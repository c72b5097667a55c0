/* fuzz_answer: any bytes as requests, answered as the redirect handler answers them (the
 * parser, the one answer function, the HTTP/1.1 writer) by rules that copy every part of a
 * request into the Location: a splat, placeholders, a regular expression's group, a query
 * condition's value, the query itself. No byte of a request may land in a response header
 * unencoded (no CR, LF, NUL or other control byte, nothing outside visible ASCII in a
 * header line), a relative target must stay on the same host (its Location never starts
 * with "//" or "/\", which browsers read as another host), an absolute target's scheme and
 * host are the rule's, and the 404 page holds the path as text, not markup. */
#include "http/http.h"
#include "rules/answer.h"
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>

static const char rules_text[] = "/files/*          /:splat\n"
                                 "/u/:id            /:id/x\n"
                                 "~^/r(.*)$         /$1\n"
                                 "~^/g/(.*)$        https://target.example/$1\n"
                                 "/abs/*            https://target.example/:splat\n"
                                 "/q?k=:v           /:v\n"
                                 "/lang/:l/help     /help?lang=:l\n"
                                 "host.example/*    https://www.example.com/:splat 308\n";

static struct dt_ruleset rs;
static size_t lt_in_404; /* '<' in a 404 page for an empty path: the page's own markup */

static void setup(void)
{
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    if (dt_table_load_text(t, "fuzz", dt_str_make(rules_text, sizeof(rules_text) - 1), &e) != 0) {
        fprintf(stderr, "fuzz_answer: the rules do not load: %.*s\n", (int)e.text.len, e.text.ptr);
        abort();
    }
    dt_errors_dispose(&e);
    dt_table_finish(t);
    rs.files = t;
    struct dt_buf out;
    dt_buf_init(&out);
    struct dt_http_reply r = {.date = "Sat, 05 Dec 2026 00:00:00 GMT", .max_age = -1};
    dt_http_write_page(&out, 404, &r, "No redirect is configured for <code>", DT_STR_NULL,
                       "</code>.");
    for (size_t i = 0; i < out.len; i++)
        lt_in_404 += out.ptr[i] == '<';
    dt_buf_dispose(&out);
}

static bool starts(struct dt_str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr, p, n) == 0;
}

static void check(const struct dt_buf *out, const struct dt_answer *a)
{
    const char *end = memmem(out->ptr, out->len, "\r\n\r\n", 4);
    if (!end)
        abort();
    struct dt_str location = DT_STR_NULL;
    for (const char *line = out->ptr; line < end + 2;) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        for (const char *p = line; p < eol; p++)
            if ((*p < 0x20 || *p > 0x7e) && *p != '\t')
                abort(); /* a control or non-ASCII byte in a header line: CR, LF, NUL... */
        if (eol - line > 10 && memcmp(line, "Location: ", 10) == 0)
            location = dt_str_make(line + 10, (size_t)(eol - line - 10));
        line = eol + 2;
    }
    if (!a->rule) {
        size_t lt = 0;
        for (const char *p = end + 4; p < out->ptr + out->len; p++)
            lt += *p == '<';
        bool body = end + 4 < out->ptr + out->len; /* none for HEAD */
        if (location.ptr || (body && lt != lt_in_404))
            abort(); /* the path came back as markup */
        return;
    }
    if (!location.ptr || location.len == 0)
        abort();
    if (starts(location, "https://")) {
        /* the rule's host, then its path: no userinfo, port or other host from the request */
        if (!starts(location, "https://target.example/") &&
            !starts(location, "https://www.example.com/"))
            abort();
        return;
    }
    if (location.ptr[0] != '/' ||
        (location.len > 1 && (location.ptr[1] == '/' || location.ptr[1] == '\\')))
        abort(); /* another host */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    static const struct dt_http_limits lim = {1024, 4096, 20, 4096};
    struct dt_http_parser p;
    dt_http_parser_init(&p, &lim);
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    for (;;) {
        struct dt_request req;
        enum dt_http_event ev = dt_http_parse(&p, buf, size, &req);
        if (ev == DT_HTTP_DONE)
            continue;
        if (ev != DT_HTTP_HEAD)
            break;
        struct dt_answer_query q = {DT_SCHEME_HTTP, req.host, req.path, req.query,
                                    1796256000}; /* a fixed now: 2026-12-01 */
        struct dt_answer a;
        dt_answer_find(&rs, &q, &a);
        struct dt_buf out;
        dt_buf_init(&out);
        struct dt_http_reply r = {.date = "Sat, 05 Dec 2026 00:00:00 GMT",
                                  .method = req.method,
                                  .head = req.head,
                                  .had_body = req.has_body,
                                  .max_age = -1};
        dt_server_write_answer(&out, &a, &q, &r);
        check(&out, &a);
        dt_buf_dispose(&out);
    }
    free(buf);
    return 0;
}
