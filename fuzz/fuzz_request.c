/* fuzz_request: the HTTP request parser, fed whole and split at a point the input picks,
 * must agree with itself, stay in bounds, and every head it accepts must make a response
 * whose Content-Length is exact. */
#include "http/http.h"

#include <stdlib.h>

static void run(const uint8_t *data, size_t size, size_t split, int *heads, int *status)
{
    static const struct dt_http_limits lim = {256, 1024, 20, 4096};
    struct dt_http_parser p;
    dt_http_parser_init(&p, &lim);
    char *buf = malloc(size ? size : 1);
    size_t have = 0;
    *heads = 0;
    *status = 0;
    for (int round = 0; round < 2; round++) {
        size_t upto = round == 0 ? split : size;
        memcpy(buf + have, data + have, upto - have);
        have = upto;
        for (;;) {
            struct dt_request req;
            enum dt_http_event ev = dt_http_parse(&p, buf, have, &req);
            if (ev == DT_HTTP_NEED_MORE)
                break;
            if (ev == DT_HTTP_HEAD) {
                (*heads)++;
                struct dt_buf out;
                dt_buf_init(&out);
                struct dt_http_reply r = {.date = "Tue, 24 Nov 2026 13:00:00 GMT",
                                          .method = req.method,
                                          .head = req.head,
                                          .had_body = req.has_body,
                                          .max_age = -1};
                char *loc = dt_http_redirect_begin(&out, 307, req.path.len);
                memcpy(loc, req.path.ptr, req.path.len);
                dt_http_redirect_end(&out, 307, req.path.len, &r);
                const char *end = memmem(out.ptr, out.len, "\r\n\r\n", 4);
                const char *cl = memmem(out.ptr, out.len, "Content-Length: ", 16);
                if (!end || !cl)
                    abort();
                size_t body = out.len - (size_t)(end + 4 - out.ptr);
                if (!req.head && strtoul(cl + 16, NULL, 10) != body)
                    abort();
                dt_buf_dispose(&out);
                continue;
            }
            if (ev == DT_HTTP_DONE)
                continue;
            *status = p.status;
            free(buf);
            return;
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % size;
    int h1, s1, h2, s2;
    run(data + 1, size - 1, 0, &h1, &s1);
    run(data + 1, size - 1, split > 0 ? split - 1 : 0, &h2, &s2);
    /* However the bytes arrive, the outcome is the same. */
    if (h1 != h2 || s1 != s2)
        abort();
    return 0;
}
