/* response: writing redirects and short HTML pages straight into an output buffer, with
 * no intermediate copies: the location is rendered in place by the caller. */
#include "http/http.h"

#define CT_HTML "Content-Type: text/html; charset=utf-8\r\n"

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_status_line(char *o, int status)
{
    struct dt_str reason = dt_http_reason(status);
    o = PUT_LIT(o, "HTTP/1.1 ");
    *o++ = (char)('0' + status / 100);
    *o++ = (char)('0' + status / 10 % 10);
    *o++ = (char)('0' + status % 10);
    *o++ = ' ';
    o = put(o, reason.ptr, reason.len);
    return PUT_LIT(o, "\r\n");
}

/* Headers after Location up to the blank line; at most HEADERS_MAX bytes. */
#define HEADERS_MAX (256 + DT_HTTP_EXTRA_MAX)
static char *put_common_headers(char *o, const struct dt_http_reply *r, size_t content_length)
{
    o = PUT_LIT(o, "Date: ");
    o = put(o, r->date, 29);
    o = PUT_LIT(o, "\r\n" CT_HTML "Content-Length: ");
    o += dt_fmt_u64(o, content_length);
    o = PUT_LIT(o, "\r\n");
    if (r->max_age >= 0) {
        /* S4: only a rule that asks for it makes the answer cacheable. */
        o = PUT_LIT(o, "Cache-Control: max-age=");
        o += dt_fmt_u64(o, (uint64_t)r->max_age);
        o = PUT_LIT(o, "\r\n");
    }
    if (r->close)
        o = PUT_LIT(o, "Connection: close\r\n");
    else if (r->keep_alive_10)
        o = PUT_LIT(o, "Connection: keep-alive\r\n");
    if (r->extra.len)
        o = put(o, r->extra.ptr, r->extra.len);
    return PUT_LIT(o, "\r\n");
}

char *dt_http_redirect_begin(struct dt_buf *out, int status, size_t max_location)
{
    dt_buf_reserve(out, 64 + max_location);
    char *o = put_status_line(out->ptr + out->len, status);
    o = PUT_LIT(o, "Location: ");
    out->len = (size_t)(o - out->ptr);
    return o;
}

/* The note of S2, by status: a link, and what a person must do to repeat the request. */
struct note {
    const char *lead;  /* before the link */
    const char *after; /* after the link, before the method */
    const char *tail;  /* after the method */
    bool same_body;    /* the status keeps the body (307, 308) */
};

static const struct note *note_for(int status)
{
    static const struct note n301 = {"The resource has moved permanently to ", ". Repeat your ",
                                     " request there and update your links.", false};
    static const struct note n302 = {"The resource is temporarily at ", ". Repeat your ",
                                     " request there.", false};
    static const struct note n303 = {"See ", ": fetch it with GET. Your ",
                                     " request has been received.", false};
    static const struct note n307 = {"The resource is temporarily at ", ". Repeat your ",
                                     " request there", true};
    static const struct note n308 = {"The resource has moved permanently to ", ". Repeat your ",
                                     " request there", true};
    switch (status) {
    case 301:
        return &n301;
    case 303:
        return &n303;
    case 307:
        return &n307;
    case 308:
        return &n308;
    }
    return &n302;
}

#define BODY_HEAD "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
#define BODY_MID "</title></head>\n<body><h1>"
#define BODY_P "</h1>\n<p>"
#define BODY_END "</p>\n</body></html>\n"
#define SAME_BODY ", with the same body"
#define TEMP_TAIL "; keep using the original address for later requests."
#define PERM_TAIL " and update your links."

/* "<!DOCTYPE html>...<title>307 Temporary Redirect</title>...<h1>307 ...</h1>\n<p>" */
static char *put_title(char *o, int status, struct dt_str reason)
{
    o = PUT_LIT(o, BODY_HEAD);
    o += dt_fmt_u64(o, (uint64_t)status);
    *o++ = ' ';
    o = put(o, reason.ptr, reason.len);
    o = PUT_LIT(o, BODY_MID);
    o += dt_fmt_u64(o, (uint64_t)status);
    *o++ = ' ';
    o = put(o, reason.ptr, reason.len);
    return PUT_LIT(o, BODY_P);
}

void dt_http_redirect_end(struct dt_buf *out, int status, size_t location_len,
                          const struct dt_http_reply *r)
{
    const char *loc = out->ptr + out->len;
    struct dt_str location = {loc, location_len};
    struct dt_str reason = dt_http_reason(status);
    const struct note *n = note_for(status);
    bool same_body = n->same_body && r->had_body;
    const char *closing = status == 307 ? TEMP_TAIL : status == 308 ? PERM_TAIL : "";

    size_t loc_esc = dt_html_escaped_len(location);
    size_t method_esc = dt_html_escaped_len(r->method);
    size_t body_len = sizeof(BODY_HEAD) - 1 + 4 + reason.len + sizeof(BODY_MID) - 1 + 4 +
                      reason.len + sizeof(BODY_P) - 1 + strlen(n->lead) + sizeof("<a href=\"\">") -
                      1 + 2 * loc_esc + sizeof("</a>") - 1 + strlen(n->after) + method_esc +
                      strlen(n->tail) + (same_body ? sizeof(SAME_BODY) - 1 : 0) + strlen(closing) +
                      sizeof(BODY_END) - 1;

    dt_buf_reserve(out, location_len + 2 + HEADERS_MAX + (r->head ? 0 : body_len));
    loc = out->ptr + out->len; /* the reserve may have moved the buffer */
    location.ptr = loc;
    char *o = out->ptr + out->len + location_len;
    o = PUT_LIT(o, "\r\n");
    o = put_common_headers(o, r, body_len);
    if (!r->head) {
        o = put_title(o, status, reason);
        o = put(o, n->lead, strlen(n->lead));
        o = PUT_LIT(o, "<a href=\"");
        o += dt_html_escape(o, location);
        o = PUT_LIT(o, "\">");
        o += dt_html_escape(o, location);
        o = PUT_LIT(o, "</a>");
        o = put(o, n->after, strlen(n->after));
        o += dt_html_escape(o, r->method);
        o = put(o, n->tail, strlen(n->tail));
        if (same_body)
            o = PUT_LIT(o, SAME_BODY);
        o = put(o, closing, strlen(closing));
        o = PUT_LIT(o, BODY_END);
    }
    out->len = (size_t)(o - out->ptr);
}

void dt_http_write_page(struct dt_buf *out, int status, const struct dt_http_reply *r,
                        const char *before, struct dt_str text, const char *after)
{
    struct dt_str reason = dt_http_reason(status);
    size_t text_esc = dt_html_escaped_len(text);
    size_t body_len = sizeof(BODY_HEAD) - 1 + 4 + reason.len + sizeof(BODY_MID) - 1 + 4 +
                      reason.len + sizeof(BODY_P) - 1 + strlen(before) + text_esc + strlen(after) +
                      sizeof(BODY_END) - 1;
    dt_buf_reserve(out, 64 + HEADERS_MAX + body_len);
    char *o = put_status_line(out->ptr + out->len, status);
    o = put_common_headers(o, r, body_len);
    if (!r->head) {
        o = put_title(o, status, reason);
        o = put(o, before, strlen(before));
        o += dt_html_escape(o, text);
        o = put(o, after, strlen(after));
        o = PUT_LIT(o, BODY_END);
    }
    out->len = (size_t)(o - out->ptr);
}

void dt_http_write_response(struct dt_buf *out, int status, const struct dt_http_reply *r,
                            const char *content_type, struct dt_str headers, struct dt_str body)
{
    size_t ct = content_type ? strlen(content_type) : 0;
    dt_buf_reserve(out, 128 + ct + headers.len + r->extra.len + (r->head ? 0 : body.len));
    char *o = put_status_line(out->ptr + out->len, status);
    o = PUT_LIT(o, "Date: ");
    o = put(o, r->date, 29);
    o = PUT_LIT(o, "\r\n");
    if (content_type) {
        o = PUT_LIT(o, "Content-Type: ");
        o = put(o, content_type, ct);
        o = PUT_LIT(o, "\r\n");
    }
    o = PUT_LIT(o, "Content-Length: ");
    o += dt_fmt_u64(o, body.len);
    o = PUT_LIT(o, "\r\n");
    if (r->close)
        o = PUT_LIT(o, "Connection: close\r\n");
    else if (r->keep_alive_10)
        o = PUT_LIT(o, "Connection: keep-alive\r\n");
    if (headers.len)
        o = put(o, headers.ptr, headers.len);
    if (r->extra.len)
        o = put(o, r->extra.ptr, r->extra.len);
    o = PUT_LIT(o, "\r\n");
    if (!r->head && body.len)
        o = put(o, body.ptr, body.len);
    out->len = (size_t)(o - out->ptr);
}
