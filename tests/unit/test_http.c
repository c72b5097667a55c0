/* Unit tests for src/http: the request parser (whole, split at every byte, pipelined, bad
 * input with its status), reason phrases (S8) and the response writer (S1-S4). */
#include "http/http.h"
#include "tap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

static const struct dt_http_limits limits = DT_HTTP_LIMITS_DEFAULT;

/* What parsing a whole input produced: the heads, and how it ended. */
struct run {
    int heads, dones;
    int error_status; /* from DT_HTTP_ERROR or ABORT, 0 if none */
    bool aborted;
    char method[32], path[256], query[256], host[256];
    bool keep_alive, head, has_body, expect, too_large, absolute;
    uint64_t content_length;
};

static void copy(char *dst, size_t cap, struct dt_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* Feeds input to a parser step bytes at a time (step 0: all at once), as the server
 * does: a growing buffer, parse after each arrival, until NEED_MORE. */
static struct run parse_in_steps(const char *input, size_t len, size_t step,
                                 const struct dt_http_limits *lim)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    struct dt_http_parser p;
    dt_http_parser_init(&p, lim);
    char *buf = malloc(len + 1);
    size_t have = 0;
    while (have < len || have == 0) {
        size_t add = step ? step : len;
        if (add > len - have)
            add = len - have;
        memcpy(buf + have, input + have, add);
        have += add;
        for (;;) {
            struct dt_request req;
            enum dt_http_event ev = dt_http_parse(&p, buf, have, &req);
            if (ev == DT_HTTP_NEED_MORE)
                break;
            if (ev == DT_HTTP_HEAD) {
                r.heads++;
                copy(r.method, sizeof(r.method), req.method);
                copy(r.path, sizeof(r.path), req.path);
                copy(r.query, sizeof(r.query), req.query);
                copy(r.host, sizeof(r.host), req.host);
                r.keep_alive = req.keep_alive;
                r.head = req.head;
                r.has_body = req.has_body;
                r.expect = req.expect_continue;
                r.too_large = req.body_too_large;
                r.absolute = req.absolute_form;
                r.content_length = req.content_length;
                continue;
            }
            if (ev == DT_HTTP_DONE) {
                r.dones++;
                continue;
            }
            r.error_status = p.status;
            r.aborted = ev == DT_HTTP_ABORT;
            free(buf);
            return r;
        }
        if (have == len)
            break;
    }
    free(buf);
    return r;
}

/* Parses input whole and one byte at a time; checks both agree. */
static struct run parse_both(const char *input, const struct dt_http_limits *lim, const char *name)
{
    size_t len = strlen(input);
    struct run whole = parse_in_steps(input, len, 0, lim);
    struct run bytes = parse_in_steps(input, len, 1, lim);
    char label[200];
    snprintf(label, sizeof(label), "%s: same result fed byte by byte", name);
    ok(whole.heads == bytes.heads && whole.dones == bytes.dones &&
           whole.error_status == bytes.error_status && !strcmp(whole.path, bytes.path) &&
           !strcmp(whole.host, bytes.host) && !strcmp(whole.query, bytes.query),
       label);
    return whole;
}

/* The status a bad request gets; the label is its first line, printable. */
static int status_of(const char *input)
{
    char label[64];
    size_t n = 0;
    for (const char *p = input; *p && *p != '\r' && *p != '\n' && n < sizeof(label) - 1; p++)
        label[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    label[n] = '\0';
    return parse_both(input, &limits, label).error_status;
}

static void good_requests(void)
{
    struct run r = parse_both("GET /old/url/x?a=1&b HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n",
                              &limits, "simple GET");
    is_int(r.heads, 1, "one head");
    is_int(r.dones, 1, "one message");
    is_str(r.method, "GET", "method");
    is_str(r.path, "/old/url/x", "path without query");
    is_str(r.query, "a=1&b", "query without ?");
    is_str(r.host, "example.com", "host lower-cased, port dropped");
    ok(r.keep_alive, "HTTP/1.1 keeps alive");

    r = parse_both("FOO /x HTTP/1.1\r\nHost: a\r\n\r\n", &limits, "unknown method");
    is_int(r.heads, 1, "S6: an unknown method token is a request like any other");
    is_str(r.method, "FOO", "S6: method kept as sent");

    r = parse_both("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", &limits, "HEAD");
    ok(r.head, "S3: HEAD is flagged");

    r = parse_both("GET /x HTTP/1.0\r\n\r\n", &limits, "HTTP/1.0 no host");
    is_int(r.heads, 1, "HTTP/1.0 without Host is fine");
    ok(!r.keep_alive, "HTTP/1.0 closes by default");
    is_str(r.host, "", "no host");
    r = parse_both("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &limits, "1.0 ka");
    ok(r.keep_alive, "HTTP/1.0 keep-alive when asked");
    r = parse_both("POST /x HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
                   "\r\n0\r\n\r\n",
                   &limits, "1.0 te");
    is_int(r.heads, 1, "HTTP/1.0 with Transfer-Encoding is answered");
    ok(!r.keep_alive, "  and closes after it, keep-alive or not (RFC 9112 6.1)");
    r = parse_both("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &limits, "close");
    ok(!r.keep_alive, "Connection: close");

    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", &limits,
                   "POST body");
    ok(r.has_body, "S6: content length body");
    is_int(r.content_length, 5, "content length");
    is_int(r.dones, 1, "S6: body consumed to the end of the message");

    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
                   &limits, "chunked");
    ok(r.has_body, "S6: chunked body");
    is_int(r.dones, 1, "S6: chunked body, extensions and trailers consumed");

    /* llhttp 8.1 refuses these valid chunk extensions (RFC 9112 7.1.1); our own framing
     * must not. */
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5;a=b;c=d\r\nhello\r\n6 ; a=1;b\r\n world\r\n1;q=\"a\\\"b\"\r\n!\r\n"
                   "0;last\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
                   &limits, "chunk extensions");
    is_int(r.dones, 2, "S6: several and quoted chunk extensions are consumed");
    is_str(r.path, "/next", "S6: and the next request is read");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "A\r\n0123456789\r\n00000\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
                   &limits, "hex sizes, zeros, trailers");
    is_int(r.dones, 1, "upper-case hex size, a last chunk of several zeros, two trailers");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "zz\r\n",
                   &limits, "bad chunk size");
    ok(r.aborted && r.error_status == 400, "an invalid chunk size aborts after the head");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabcX\r\n",
                   &limits, "chunk overrun");
    ok(r.aborted, "chunk data longer than its size aborts");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\nabc\r\n0\r\n\r\n",
                   &limits, "bare LF in chunk");
    ok(r.aborted, "a bare LF in chunk framing aborts");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "fffffffffffffffff\r\n",
                   &limits, "huge chunk");
    ok(r.aborted && r.error_status == 400, "a chunk size that overflows aborts");

    r = parse_both("GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
                   "Content-Length: 3\r\n\r\nabcDELETE /c HTTP/1.1\r\nHost: a\r\n\r\n",
                   &limits, "pipelined");
    is_int(r.heads, 3, "three pipelined heads");
    is_int(r.dones, 3, "three pipelined messages");
    is_str(r.path, "/c", "last pipelined path");

    r = parse_both("\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", &limits, "leading CRLF");
    is_int(r.heads, 1, "RFC 9112 2.2: empty lines before a request are ignored");

    r = parse_both("GET http://Shop.Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n", &limits,
                   "absolute form");
    ok(r.absolute, "absolute form flagged");
    is_str(r.host, "shop.example.com", "RFC 9112 3.2.2: the target's host wins over Host");
    is_str(r.path, "/p", "absolute-form path");
    is_str(r.query, "q", "absolute-form query");
    r = parse_both("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", &limits, "absolute no path");
    is_str(r.path, "/", "absolute form without a path is /");

    r = parse_both("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &limits, "asterisk");
    is_int(r.heads, 1, "OPTIONS * is a request");
    is_str(r.path, "*", "asterisk path");

    r = parse_both(
        "POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n", &limits,
        "expect");
    ok(r.expect, "S6: Expect: 100-continue noticed");
    is_int(r.heads, 1, "S6: the head is ready before the body");
    is_int(r.dones, 0, "the body has not arrived");

    r = parse_both("GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Content-Length: 2\r\n\r\nhiGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
                   &limits, "upgrade ignored");
    is_int(r.dones, 2, "RFC 9110 7.8: Upgrade ignored, body read, next request parsed");

    r = parse_both("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", &limits, "obs-text");
    is_int(r.heads, 1, "raw UTF-8 in the target is tolerated (encoded on output)");

    struct dt_http_limits small = limits;
    small.max_body = 4;
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", &small,
                   "too large");
    ok(r.too_large, "Content-Length over max_body is flagged at the head");
    r = parse_both("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "9\r\n123456789\r\n0\r\n\r\n",
                   &small, "chunked too large");
    is_int(r.heads, 1, "chunked over the limit: head answered first");
    ok(r.aborted, "then the content aborts the connection");
    is_int(r.error_status, 413, "with 413 as the reason");
}

static void bad_requests(void)
{
    is_int(status_of("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
           400, "CL with TE: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
           400, "two different Content-Length: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
           400, "two equal Content-Length: 400 (our choice under RFC 9112 6.3)");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400,
           "negative Content-Length");
    is_int(status_of("GET / HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 without Host: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "two Host: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400, "two equal Host: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, "invalid Host: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, "slash in Host: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400, "broken IP literal Host");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a:99x\r\n\r\n"), 400, "bad port in Host");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 501,
           "TE gzip: 501");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501,
           "TE gzip, chunked: 501");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
           400, "chunked twice: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 501,
           "chunked, gzip: 501 (gzip is a coding we do not implement)");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
           400, "chunked in two fields: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n"), 400,
           "an empty coding list: 400");
    is_int(status_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505, "HTTP/1.2: 505");
    is_int(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505, "HTTP/2.0: 505");
    is_int(status_of("GET / HTTP/0.9\r\n\r\n"), 505, "HTTP/0.9: 505");
    is_int(status_of("GET / HTTP/1\r\n\r\n"), 400, "malformed version: 400");
    is_int(status_of("GET / FOO/1.1\r\n\r\n"), 400, "not HTTP version: 400");
    is_int(status_of("GET /\r\n\r\n"), 400, "no version: 400");
    is_int(status_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "two spaces: 400");
    is_int(status_of("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "space in target: 400");
    is_int(status_of("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "fragment in target: 400");
    is_int(status_of("GET / HTTP/1.1\nHost: a\n\n"), 400, "bare LF: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400,
           "RFC 9112 5.1: space before colon: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), 400,
           "RFC 9112 5.2: obs-fold: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400, "empty field name: 400");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n"), 400,
           "control byte in a value: 400");
    is_int(status_of("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 501, "CONNECT: 501");
    is_int(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "asterisk with GET: 400");
    is_int(status_of("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400,
           "userinfo in target: 400");
    is_int(status_of("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, "ftp target: 400");
    is_int(status_of("\x16\x03\x01\x00\xc8\x01"), 400,
           "a TLS hello is refused at once, without waiting for a line end");
    is_int(status_of("G\x01T / HTTP/1.1\r\n"), 400, "control byte in the method: 400");

    struct dt_http_limits lim = limits;
    lim.max_request_line = 64;
    char line[200];
    snprintf(line, sizeof(line), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 64-byte line */
    is_int(strlen(line) - strlen("\r\nHost: a\r\n\r\n"), 64, "line is 64 bytes");
    is_int(parse_both(line, &lim, "line at limit").error_status, 0, "line at the limit: fine");
    snprintf(line, sizeof(line), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    is_int(parse_both(line, &lim, "line over").error_status, 414, "one byte over: 414");
    char unterminated[100];
    memset(unterminated, 'a', sizeof(unterminated));
    memcpy(unterminated, "GET /", 5);
    unterminated[99] = '\0';
    is_int(parse_both(unterminated, &lim, "no LF").error_status, 414,
           "414 without waiting for the line's end");

    lim = limits;
    lim.max_header_fields = 3;
    is_int(parse_both("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", &lim, "3 fields")
               .error_status,
           0, "fields at the limit: fine");
    is_int(parse_both("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, "4 fields")
               .error_status,
           431, "one field over: 431");
    lim = limits;
    lim.max_header_bytes = 32;
    /* the header section is "Host: a\r\nX: 123456789012345\r\n\r\n": 9 + 20 + 2 = 31 */
    is_int(parse_both("GET / HTTP/1.1\r\nHost: a\r\nX: 123456789012345\r\n\r\n", &lim, "31B")
               .error_status,
           0, "header section under the limit: fine");
    is_int(parse_both("GET / HTTP/1.1\r\nHost: a\r\nX: 12345678901234567\r\n\r\n", &lim, "33B")
               .error_status,
           431, "header section over the limit: 431");
}

static void reasons(void)
{
    /* S8: the standard reason phrases; C8-style constant for 307 */
    is_int(DT_HTTP_TEMPORARY_REDIRECT, 307, "DT_HTTP_TEMPORARY_REDIRECT is 307");
    is_span(dt_http_reason(301), "Moved Permanently", "S8: 301");
    is_span(dt_http_reason(302), "Found", "S8: 302");
    is_span(dt_http_reason(303), "See Other", "S8: 303");
    is_span(dt_http_reason(307), "Temporary Redirect", "S8: 307");
    is_span(dt_http_reason(308), "Permanent Redirect", "S8: 308");
    is_span(dt_http_reason(414), "URI Too Long", "414");
    is_span(dt_http_reason(431), "Request Header Fields Too Large", "431");
    is_span(dt_http_reason(505), "HTTP Version Not Supported", "505");
    ok(dt_http_is_redirect(307) && !dt_http_is_redirect(304) && !dt_http_is_redirect(300),
       "redirect statuses are 301 302 303 307 308");
}

static const char *find(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle));
}

static void responses(void)
{
    struct dt_buf out;
    dt_buf_init(&out);
    struct dt_http_reply r = {.date = "Tue, 24 Nov 2026 13:00:00 GMT",
                              .method = DT_STR("POST"),
                              .had_body = true,
                              .max_age = -1};
    const char *loc = "/new?a=1&b=<2>";
    char *p = dt_http_redirect_begin(&out, 307, strlen(loc));
    memcpy(p, loc, strlen(loc));
    dt_http_redirect_end(&out, 307, strlen(loc), &r);
    const char *head_end = find(out.ptr, out.len, "\r\n\r\n");
    ok(head_end != NULL, "a head ends with CRLF CRLF");
    size_t head_len = (size_t)(head_end - out.ptr) + 4;
    ok(!memcmp(out.ptr, "HTTP/1.1 307 Temporary Redirect\r\n", 33), "S8: status line");
    ok(find(out.ptr, head_len, "\r\nLocation: /new?a=1&b=<2>\r\n") != NULL,
       "S1: Location carries the target");
    ok(find(out.ptr, head_len, "\r\nContent-Type: text/html; charset=utf-8\r\n") != NULL,
       "content type");
    ok(find(out.ptr, head_len, "\r\nDate: Tue, 24 Nov 2026 13:00:00 GMT\r\n") != NULL, "Date");
    ok(!find(out.ptr, head_len, "Cache-Control") && !find(out.ptr, head_len, "Expires"),
       "S4: no caching headers by default");
    ok(!find(out.ptr, head_len, "Connection:"), "keep-alive 1.1 needs no Connection header");
    const char *cl = find(out.ptr, head_len, "Content-Length: ");
    long declared = cl ? strtol(cl + 16, NULL, 10) : -1;
    is_int(declared, (long)(out.len - head_len), "Content-Length is the body's exact size");
    const char *body = out.ptr + head_len;
    size_t blen = out.len - head_len;
    ok(find(body, blen, "<a href=\"/new?a=1&amp;b=&lt;2&gt;\">") != NULL,
       "S2: the link is HTML-escaped");
    ok(find(body, blen, "Repeat your POST request there, with the same body") != NULL,
       "S2: the note names the method to repeat and the body");
    ok(find(body, blen, "<title>307 Temporary Redirect</title>") != NULL, "title");

    /* HEAD: same headers, no body (S3) */
    struct dt_buf head;
    dt_buf_init(&head);
    r.head = true;
    p = dt_http_redirect_begin(&head, 307, strlen(loc));
    memcpy(p, loc, strlen(loc));
    dt_http_redirect_end(&head, 307, strlen(loc), &r);
    is_int(head.len, head_len, "S3: HEAD gets the same head and nothing more");
    ok(head.len == head_len && !memcmp(head.ptr, out.ptr, head_len),
       "S3: HEAD headers identical to GET's, Content-Length included");

    /* cache=N and Connection forms (S4) */
    struct dt_buf c;
    dt_buf_init(&c);
    r.head = false;
    r.max_age = 60;
    r.close = true;
    p = dt_http_redirect_begin(&c, 302, 1);
    *p = '/';
    dt_http_redirect_end(&c, 302, 1, &r);
    ok(find(c.ptr, c.len, "\r\nCache-Control: max-age=60\r\n") != NULL,
       "S4: a rule's cache= makes it cacheable");
    ok(find(c.ptr, c.len, "\r\nConnection: close\r\n") != NULL, "Connection: close");
    ok(!memcmp(c.ptr, "HTTP/1.1 302 Found\r\n", 20), "S8: 302 Found");
    ok(!find(c.ptr, c.len, "with the same body"), "302 does not promise the body is kept");

    struct dt_buf e;
    dt_buf_init(&e);
    struct dt_http_reply er = {.date = r.date, .close = true, .max_age = -1};
    dt_http_write_page(&e, 404, &er, "No redirect for <code>", DT_STR("/<script>"), "</code>");
    ok(!memcmp(e.ptr, "HTTP/1.1 404 Not Found\r\n", 24), "404 status line");
    ok(find(e.ptr, e.len, "<code>/&lt;script&gt;</code>") != NULL, "404 escapes the path");
    ok(!find(e.ptr, e.len, "Location"), "404 has no Location");

    dt_buf_dispose(&out);
    dt_buf_dispose(&head);
    dt_buf_dispose(&c);
    dt_buf_dispose(&e);
}

/* The PROXY protocol header (proxy.c). */
static int proxy(const char *buf, size_t len, struct dt_proxy_info *pi)
{
    return dt_proxy_parse(buf, len, pi);
}
#define PROXY_STR(s, pi) proxy((s), sizeof(s) - 1, (pi))

static const char *addr_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)n);
    else
        snprintf(out, n, "?");
    return out;
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void proxy_v1(void)
{
    struct dt_proxy_info pi;
    char a[64];
    static const char tcp4[] = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /";
    is_int(PROXY_STR(tcp4, &pi), 45, "v1 TCP4: the header's length, the client's bytes after");
    is_int(pi.version, 1, "version 1");
    ok(!pi.local, "an address");
    is_str(addr_text(&pi.src, a, sizeof(a)), "192.0.2.7", "the client's address");
    is_int((int)port_of(&pi.src), 56324, "its port");
    is_str(addr_text(&pi.dst, a, sizeof(a)), "198.51.100.1", "the address it reached");
    is_int((int)port_of(&pi.dst), 443, "and port");
    static const char tcp6[] = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
    is_int(PROXY_STR(tcp6, &pi), (int)sizeof(tcp6) - 1, "v1 TCP6");
    is_str(addr_text(&pi.src, a, sizeof(a)), "2001:db8::1", "its client");
    is_int((int)port_of(&pi.dst), 65535, "port 65535");
    static const char unknown[] = "PROXY UNKNOWN ffff:f...f:ffff 1 2 3\r\n";
    is_int(PROXY_STR(unknown, &pi), (int)sizeof(unknown) - 1, "v1 UNKNOWN: the rest ignored");
    ok(pi.local, "UNKNOWN: no address");
    is_int(PROXY_STR("PROXY UNKNOWN\r\n", &pi), 15, "UNKNOWN alone");

    /* the whole header must come before it is taken */
    for (size_t n = 0; n < sizeof(tcp4) - 6; n++)
        if (proxy(tcp4, n, &pi) != -2)
            ok(0, "a prefix of a v1 header needs more");
    ok(1, "every prefix of a v1 header needs more");

    static const char *bad[] = {
        "GET / HTTP/1.1\r\n",                               /* not a header */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\n",    /* bare LF */
        "PROXY TCP4  192.0.2.7 198.51.100.1 56324 443\r\n", /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 \r\n", /* trailing space */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",      /* a field missing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",  /* port out of range */
        "PROXY TCP4 192.0.2.7 198.51.100.1 0443 443\r\n",   /* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 443\r\n",     /* sign */
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",      /* v6 as TCP4 */
        "PROXY TCP6 192.0.2.7 2001:db8::2 1 2\r\n",         /* v4 as TCP6 */
        "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",      /* octet out of range */
        "PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",        /* protocol */
        "PROXY tcp4 192.0.2.7 198.51.100.1 1 2\r\n",        /* case */
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",       /* a tab */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\r\n",      /* CR CR */
        "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",        /* lower case */
        "PROXY UNKNOWNX\r\n",                               /* not UNKNOWN */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[160];
        snprintf(name, sizeof(name), "refused: %.*s", (int)strcspn(bad[i], "\r\n"), bad[i]);
        is_int(proxy(bad[i], strlen(bad[i]), &pi), -1, name);
    }
    char nul[] = "PROXY TCP4 192.0.2.7\0198.51.100.1 1 2\r\n";
    is_int(proxy(nul, sizeof(nul) - 1, &pi), -1, "refused: a NUL");
    char longer[200];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "PROXY UNKNOWN ", 14);
    is_int(proxy(longer, sizeof(longer), &pi), -1, "refused: no CRLF within 107 bytes");
    is_int(proxy(longer, 100, &pi), -2, "fewer than 107 bytes without CRLF: needs more");
}

static void proxy_v2(void)
{
    struct dt_proxy_info pi;
    char a[64];
    unsigned char h[64] = "\r\n\r\n\0\r\nQUIT\n";
    h[12] = 0x21; /* version 2, PROXY */
    h[13] = 0x11; /* TCP over IPv4 */
    h[14] = 0;
    h[15] = 12;
    memcpy(h + 16, (unsigned char[]){192, 0, 2, 9, 203, 0, 113, 5, 0xdc, 0x04, 0x01, 0xbb}, 12);
    is_int(proxy((char *)h, 28, &pi), 28, "v2 TCP4: 28 bytes");
    is_int(pi.version, 2, "version 2");
    is_str(addr_text(&pi.src, a, sizeof(a)), "192.0.2.9", "the client's address");
    is_int((int)port_of(&pi.src), 56324, "its port");
    is_int((int)port_of(&pi.dst), 443, "the port it reached");
    for (size_t n = 0; n < 28; n++)
        if (proxy((char *)h, n, &pi) != -2)
            ok(0, "a prefix of a v2 header needs more");
    ok(1, "every prefix of a v2 header needs more");

    /* with a TLV (an AWS-like one), then the client's bytes */
    h[15] = 12 + 3 + 4;
    memcpy(h + 28,
           "\xea\x00\x04"
           "abcd",
           7);
    is_int(proxy((char *)h, 40, &pi), 35, "a TLV is skipped");
    h[15] = 12 + 3 + 3;
    is_int(proxy((char *)h, 40, &pi), -1, "a TLV longer than the header: refused");
    h[15] = 12 + 2;
    is_int(proxy((char *)h, 40, &pi), -1, "a TLV cut short: refused");

    /* IPv6 */
    h[13] = 0x21;
    h[15] = 36;
    memset(h + 16, 0, 36);
    h[16] = 0x20, h[17] = 0x01, h[18] = 0x0d, h[19] = 0xb8, h[31] = 7;
    h[48] = 0x30, h[49] = 0x39;
    is_int(proxy((char *)h, 52, &pi), 52, "v2 TCP6");
    is_str(addr_text(&pi.src, a, sizeof(a)), "2001:db8::7", "its client");
    is_int((int)port_of(&pi.src), 12345, "its port");
    h[15] = 35;
    is_int(proxy((char *)h, 52, &pi), -1, "IPv6 addresses cut short: refused");

    /* LOCAL, unspecified family, Unix: no address */
    h[12] = 0x20;
    h[13] = 0x00;
    h[15] = 0;
    is_int(proxy((char *)h, 16, &pi), 16, "v2 LOCAL");
    ok(pi.local, "LOCAL: the connection's own address");
    h[12] = 0x21;
    is_int(proxy((char *)h, 16, &pi), 16, "v2 PROXY, family unspecified");
    ok(pi.local, "no address");

    /* refused */
    h[13] = 0x12; /* UDP */
    h[15] = 12;
    is_int(proxy((char *)h, 28, &pi), -1, "a datagram's addresses: refused");
    h[13] = 0x11;
    h[12] = 0x11;
    is_int(proxy((char *)h, 28, &pi), -1, "version 1 in a binary header: refused");
    h[12] = 0x22;
    is_int(proxy((char *)h, 28, &pi), -1, "command 2: refused");
    h[12] = 0x21;
    h[13] = 0x41;
    is_int(proxy((char *)h, 28, &pi), -1, "family 4: refused");
    h[13] = 0x11;
    h[14] = 0x10; /* 4,108 bytes */
    is_int(proxy((char *)h, 28, &pi), -1, "longer than DT_PROXY_MAX: refused at once");
    h[7] = 'X';
    h[14] = 0;
    is_int(proxy((char *)h, 28, &pi), -1, "a signature that differs: refused");
}

int main(void)
{
    proxy_v1();
    proxy_v2();
    good_requests();
    bad_requests();
    reasons();
    responses();
    return done_testing();
}
