/* answer: an answer of the rules written as HTTP/1.1 (the redirect listeners and the admin
 * API's /api/match send the same bytes). */
#include "server/server.h"

void dt_server_write_answer(struct dt_buf *out, const struct dt_answer *a,
                            const struct dt_answer_query *q, const struct dt_http_reply *r)
{
    struct dt_http_reply rr = *r;
    rr.max_age = a->max_age;
    if (!a->rule) {
        dt_http_write_page(out, 404, &rr, "No redirect is configured for <code>", q->path,
                           "</code>.");
        return;
    }
    char *loc = dt_http_redirect_begin(out, a->status, dt_answer_location_max(a, q));
    size_t n = dt_answer_location(a, q, loc);
    dt_http_redirect_end(out, a->status, n, &rr);
}
