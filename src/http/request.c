/* request: incremental HTTP/1.1 request parsing (RFC 9112) with named limits.
 *
 * The request line is parsed here: RFC 9110 9.1 makes methods an open set of tokens and
 * llhttp only knows a fixed list, so llhttp is handed a canonical request line instead and
 * parses the header fields and Content-Length. The checks llhttp leaves out (RFC 9112 5.1
 * whitespace before the colon, 5.2 obs-fold, Host rules, the transfer codings we implement)
 * are made in its callbacks, and the header section's lines (CRLF only, no fold) once it is
 * complete. The content is drained here too: a redirect server only needs its framing, and
 * llhttp 8.1 refuses valid chunk extensions ("5;a=b;c=d"). */
#include "http/http.h"

#include "url/url.h"

enum { ST_LINE, ST_HEADERS, ST_BODY };
enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

static struct dt_http_parser *parser_of(llhttp_t *ll)
{
    return ll->data;
}

static int reject(struct dt_http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return -1;
}

static uint32_t rel(struct dt_http_parser *p, const char *at)
{
    return (uint32_t)((size_t)(at - p->_buf) - p->_start);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    struct dt_http_parser *p = parser_of(ll);
    if (p->_field_len == 0)
        p->_field_off = rel(p, at);
    p->_field_len += (uint32_t)n;
    return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct dt_http_parser *p = parser_of(ll);
    if (++p->_nfields > p->_lim->max_header_fields)
        return reject(p, 431, "too many header fields");
    const char *name = p->_buf + p->_start + p->_field_off;
    if (p->_field_len == 0)
        return reject(p, 400, "empty header field name");
    for (uint32_t i = 0; i < p->_field_len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (dt_tchar[c])
            continue;
        /* RFC 9112 5.1: whitespace between the field name and the colon is an error. */
        if (c == ' ' || c == '\t')
            return reject(p, 400, "whitespace between a header field name and its colon");
        return reject(p, 400, "invalid character in a header field name");
    }
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    struct dt_http_parser *p = parser_of(ll);
    uint32_t off = rel(p, at);
    if (!p->_in_value) {
        p->_in_value = true;
        p->_value_off = off;
        p->_value_len = (uint32_t)n;
    } else if (off == p->_value_off + p->_value_len) {
        p->_value_len += (uint32_t)n; /* the rest of a value split between two reads */
    } else {
        /* RFC 9112 5.2: a server MUST reject obs-fold (or replace it, which we do not). */
        return reject(p, 400, "obsolete line folding in a header field");
    }
    return 0;
}

/* Reads a Transfer-Encoding field value: a list of codings, of which we implement one. */
static void transfer_codings(struct dt_http_parser *p, struct dt_str v)
{
    size_t i = 0;
    p->_te_seen = true;
    while (i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        if (i == v.len)
            break;
        size_t start = i;
        while (i < v.len && dt_tchar[(unsigned char)v.ptr[i]])
            i++;
        struct dt_str coding = {v.ptr + start, i - start};
        /* skip parameters up to the next comma */
        while (i < v.len && v.ptr[i] != ',')
            i++;
        if (coding.len == 0) {
            p->_te_bad = true;
            continue;
        }
        if (dt_str_ieq(coding, "chunked")) {
            /* RFC 9112 6.1: chunked must be applied once, and be last. */
            if (p->_te_chunked_last)
                p->_te_bad = true;
            p->_te_chunked_last = true;
        } else {
            if (p->_te_chunked_last)
                p->_te_bad = true;
            p->_te_chunked_last = false;
            p->_te_unknown = true;
        }
    }
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct dt_http_parser *p = parser_of(ll);
    struct dt_str name = {p->_buf + p->_start + p->_field_off, p->_field_len};
    struct dt_str value = {p->_buf + p->_start + p->_value_off, p->_in_value ? p->_value_len : 0};
    while (value.len && (value.ptr[value.len - 1] == ' ' || value.ptr[value.len - 1] == '\t'))
        value.len--;
    if (name.len == 4 && dt_str_ieq(name, "host")) {
        if (p->_nhost < 2)
            p->_nhost++;
        p->_host_off = p->_in_value ? p->_value_off : 0;
        p->_host_len = (uint32_t)value.len;
    } else if (name.len == 17 && dt_str_ieq(name, "transfer-encoding")) {
        transfer_codings(p, value);
    } else if (name.len == 13 && dt_str_ieq(name, "authorization")) {
        p->_auth_off = p->_in_value ? p->_value_off : 0;
        p->_auth_len = (uint32_t)value.len;
    } else if (name.len == 7 && dt_str_ieq(name, "referer")) {
        p->_ref_off = p->_in_value ? p->_value_off : 0;
        p->_ref_len = (uint32_t)value.len;
    } else if (name.len == 10 && dt_str_ieq(name, "user-agent")) {
        p->_ua_off = p->_in_value ? p->_value_off : 0;
        p->_ua_len = (uint32_t)value.len;
    } else if (name.len == 6 && dt_str_ieq(name, "expect")) {
        if (dt_str_ieq(value, "100-continue"))
            p->_expect_continue = true;
    }
    p->_field_len = 0;
    p->_in_value = false;
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct dt_http_parser *p = parser_of(ll);
    /* RFC 9110 7.8: a server may ignore Upgrade; we answer every request ourselves, so the
     * bytes after the head are still this request's content, not another protocol. */
    ll->upgrade = 0;
    if (p->_te_unknown)
        return reject(p, 501, "a transfer coding other than chunked");
    if (p->_te_seen && (!p->_te_chunked_last || p->_te_bad))
        return reject(p, 400, "chunked must be the final transfer coding, applied once");
    if (p->_nhost > 1)
        return reject(p, 400, "more than one Host header field");
    if (p->_nhost == 0 && p->_version_minor == 1)
        return reject(p, 400, "an HTTP/1.1 request without a Host header field");
    return HPE_PAUSED;
}

/* Checks the lines of a complete header section s[0, n) (from the line after the request
 * line to the blank line), which the llhttp we build (not in its strict mode) does not all
 * do: it takes CR followed by any byte for a line end, and a field whose first line is
 * empty may be folded without its callbacks showing it. Returns why the section is
 * refused, or NULL. */
static const char *head_lines_invalid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *lf = memchr(s + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - s) : n;
        /* RFC 9112 2.2: a bare CR is invalid; we take no bare LF as a line end either. */
        if (!lf || end == i || s[end - 1] != '\r')
            return "header lines must end with CRLF";
        if (memchr(s + i, '\r', end - 1 - i))
            return "a bare CR in the header section";
        /* RFC 9112 5.2: obs-fold (a line starting with whitespace) is rejected; 2.2: so is
         * whitespace between the request line and the first field. */
        if (s[i] == ' ' || s[i] == '\t')
            return "obsolete line folding in a header field";
        i = end + 1;
    }
    return NULL;
}

static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
};

void dt_http_parser_init(struct dt_http_parser *p, const struct dt_http_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->_lim = lim;
    llhttp_init(&p->_ll, HTTP_REQUEST, &settings);
    /* Transfer-Encoding is judged in our callbacks (501 for codings we do not implement,
     * 400 when chunked is not last); llhttp's stricter check would answer 400 for both. */
    llhttp_set_lenient_transfer_encoding(&p->_ll, 1);
    p->_ll.data = p;
    p->_state = ST_LINE;
}

size_t dt_http_parser_discardable(const struct dt_http_parser *p)
{
    return p->_state == ST_BODY ? p->off : p->_start;
}

void dt_http_parser_shift(struct dt_http_parser *p, size_t n)
{
    p->off -= n;
    p->_start = p->_start >= n ? p->_start - n : 0;
}

bool dt_http_parser_idle(const struct dt_http_parser *p)
{
    return p->_state == ST_LINE && p->_scanned == 0;
}

bool dt_http_parser_in_body(const struct dt_http_parser *p)
{
    return p->_state == ST_BODY;
}

bool dt_http_parser_head(const struct dt_http_parser *p)
{
    return p->_is_head;
}

static enum dt_http_event fail(struct dt_http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return DT_HTTP_ERROR;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A request line over the limit, whose first max bytes are at line. RFC 9112 3: a method
 * longer than any the server implements SHOULD get 501; a target longer than it parses, 414.
 * No space within the limit: the method alone is too long. */
static enum dt_http_event line_too_long(struct dt_http_parser *p, const char *line, size_t max)
{
    if (!memchr(line, ' ', max))
        return fail(p, 501, "method over the request line limit");
    return fail(p, 414, "request line over the limit");
}

/* Parses the request line at buf[p->_start, end) (end excludes CRLF). */
static enum dt_http_event request_line(struct dt_http_parser *p, const char *line, size_t n)
{
    size_t i = 0;
    while (i < n && dt_tchar[(unsigned char)line[i]])
        i++;
    if (i == 0 || i == n || line[i] != ' ')
        return fail(p, 400, "malformed request line");
    p->_method_len = (uint32_t)i;
    size_t t = ++i;
    while (i < n && line[i] != ' ') {
        unsigned char c = (unsigned char)line[i];
        /* Visible ASCII, and obs-text that some clients still send raw; '#' never. */
        if (c <= 0x20 || c == 0x7f || c == '#')
            return fail(p, 400, "invalid character in the request target");
        i++;
    }
    if (i == t || i == n)
        return fail(p, 400, "malformed request line");
    p->_target_len = (uint32_t)(i - t);
    const char *v = line + i + 1;
    size_t vlen = n - i - 1;
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
        !is_digit(v[7]))
        return fail(p, 400, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    p->_version_minor = (uint8_t)(v[7] - '0');
    p->_is_head = p->_method_len == 4 && memcmp(line, "HEAD", 4) == 0;
    if (p->_method_len == 7 && memcmp(line, "CONNECT", 7) == 0)
        return fail(p, 501, "CONNECT is not supported by a redirect server");
    return DT_HTTP_HEAD; /* "line accepted" */
}

bool dt_http_authority_host(char *s, size_t n, struct dt_str *host)
{
    size_t hend = n;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return false;
        hend = (size_t)(rb - s) + 1;
        if (hend < n && s[hend] != ':')
            return false;
    } else {
        const char *c = memchr(s, ':', n);
        if (c)
            hend = (size_t)(c - s);
    }
    for (size_t k = hend + 1; k < n; k++)
        if (!is_digit(s[k]))
            return false;
    if (n - hend > 6)
        return false; /* ":" and at most 5 digits */
    if (hend == 0) {
        *host = dt_str_make(s, 0);
        return n == 0; /* ":80" alone has no host */
    }
    if (!dt_url_host_valid(dt_str_make(s, hend)))
        return false;
    *host = dt_str_make(s, dt_url_host_key(s, hend));
    return true;
}

/* Fills req from the request line and the headers seen. */
static enum dt_http_event fill(struct dt_http_parser *p, char *buf, struct dt_request *req)
{
    char *line = buf + p->_start;
    memset(req, 0, sizeof(*req));
    req->method = dt_str_make(line, p->_method_len);
    char *target = line + p->_method_len + 1;
    size_t tlen = p->_target_len;
    req->target = dt_str_make(target, tlen);
    req->version_minor = p->_version_minor;
    req->head = p->_is_head;

    if (p->_nhost == 1 && !dt_http_authority_host(line + p->_host_off, p->_host_len, &req->host))
        return fail(p, 400, "invalid Host header field");
    if (p->_auth_len)
        req->authorization = dt_str_make(line + p->_auth_off, p->_auth_len);
    if (p->_ref_len)
        req->referer = dt_str_make(line + p->_ref_off, p->_ref_len);
    if (p->_ua_len)
        req->user_agent = dt_str_make(line + p->_ua_off, p->_ua_len);

    char *path = target;
    size_t plen = tlen;
    if (target[0] == '/') {
        /* origin-form */
    } else if (tlen == 1 && target[0] == '*') {
        if (!(p->_method_len == 7 && memcmp(line, "OPTIONS", 7) == 0))
            return fail(p, 400, "the asterisk form is only for OPTIONS");
    } else {
        /* absolute-form (RFC 9112 3.2.2): the target's host wins over Host. */
        size_t skip;
        if (tlen >= 7 && dt_str_ieq(dt_str_make(target, 7), "http://"))
            skip = 7;
        else if (tlen >= 8 && dt_str_ieq(dt_str_make(target, 8), "https://"))
            skip = 8;
        else
            return fail(p, 400, "unsupported request target form");
        char *auth = target + skip;
        size_t alen = 0;
        while (skip + alen < tlen && auth[alen] != '/' && auth[alen] != '?')
            alen++;
        if (memchr(auth, '@', alen))
            return fail(p, 400, "userinfo in the request target");
        if (alen == 0 || !dt_http_authority_host(auth, alen, &req->host) || req->host.len == 0)
            return fail(p, 400, "invalid host in the request target");
        req->absolute_form = true;
        path = auth + alen;
        plen = tlen - skip - alen;
    }
    const char *q = memchr(path, '?', plen);
    if (q) {
        req->query = dt_str_make(q + 1, plen - (size_t)(q - path) - 1);
        plen = (size_t)(q - path);
    }
    req->path = plen ? dt_str_make(path, plen) : DT_STR("/");

    llhttp_t *ll = &p->_ll;
    req->keep_alive = llhttp_should_keep_alive(ll);
    req->expect_continue = p->_expect_continue;
    p->_body_mode = BODY_NONE;
    if (p->_te_seen) {
        /* on_headers_complete let through only a final, single chunked */
        req->has_body = true;
        p->_body_mode = BODY_CHUNKED;
        p->_chunk_state = 0;
        /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing: the
         * message is answered, then the connection closed (keep-alive or not) */
        if (p->_version_minor == 0)
            req->keep_alive = false;
    } else if (ll->flags & F_CONTENT_LENGTH) {
        req->content_length = ll->content_length;
        req->has_body = ll->content_length > 0;
        req->body_too_large = ll->content_length > p->_lim->max_body;
        p->_body_mode = BODY_LENGTH;
        p->_remaining = ll->content_length;
    }
    return DT_HTTP_HEAD;
}

static void reset_request(struct dt_http_parser *p)
{
    p->_scanned = 0;
    p->_method_seen = false;
    p->_is_head = false;
    p->_body_seen = 0;
    p->_remaining = 0;
    p->_framing_seen = 0;
    p->_body_mode = BODY_NONE;
    p->_nfields = 0;
    p->_field_len = 0;
    p->_value_len = 0;
    p->_in_value = false;
    p->_nhost = 0;
    p->_host_off = p->_host_len = 0;
    p->_auth_off = p->_auth_len = 0;
    p->_ref_off = p->_ref_len = p->_ua_off = p->_ua_len = 0;
    p->_te_seen = p->_te_chunked_last = p->_te_unknown = p->_te_bad = false;
    p->_expect_continue = false;
    p->status = 0;
    p->reason = NULL;
}

static enum dt_http_event llhttp_failure(struct dt_http_parser *p, llhttp_errno_t err)
{
    if (p->status)
        return DT_HTTP_ERROR; /* one of our callbacks said why */
    switch (err) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return fail(p, 400, "conflicting Content-Length or Transfer-Encoding");
    case HPE_INVALID_CONTENT_LENGTH:
        return fail(p, 400, "invalid Content-Length");
    case HPE_INVALID_TRANSFER_ENCODING:
        return fail(p, 400, "invalid Transfer-Encoding");
    case HPE_INVALID_HEADER_TOKEN:
        return fail(p, 400, "invalid character in a header field");
    case HPE_LF_EXPECTED:
    case HPE_CR_EXPECTED:
        return fail(p, 400, "header lines must end with CRLF");
    default:
        return fail(p, 400, "malformed header section");
    }
}

/* RFC 9112 7.1 chunked framing, as a byte-at-a-time state machine; chunk data is skipped
 * in bulk. */
enum {
    CK_SIZE_FIRST, /* the first hex digit of a chunk size */
    CK_SIZE,       /* more hex digits */
    CK_EXT_END,    /* after a quoted value: whitespace, ";" or CR */
    CK_EXT_BWS,    /* whitespace after the size or an extension: ";" must follow */
    CK_EXT_NAME0,  /* after ";": whitespace, then an extension's name */
    CK_EXT_NAME,   /* inside the name */
    CK_EXT_NAMED,  /* after the name and whitespace: "=" or ";" */
    CK_EXT_VALUE0, /* after "=": whitespace, then a token or a quoted string */
    CK_EXT_VALUE,  /* inside a token value */
    CK_EXT_QUOTED, /* inside a quoted value */
    CK_EXT_PAIR,   /* after a backslash in a quoted value */
    CK_SIZE_LF,    /* the LF ending a chunk-size line */
    CK_DATA,       /* chunk data */
    CK_DATA_CR,    /* the CRLF after chunk data */
    CK_DATA_LF,
    CK_TRAILER_START, /* the start of a trailer line, or the final CRLF */
    CK_TRAILER,       /* inside a trailer field line */
    CK_TRAILER_LF,
    CK_FINAL_LF,
};

/* After a chunk size or an extension: ";" for another extension, the CR ending the line, or
 * whitespace (then only ";" may follow). False for any other byte. */
static bool chunk_ext_next(struct dt_http_parser *p, unsigned char c)
{
    if (c == ';')
        p->_chunk_state = CK_EXT_NAME0;
    else if (c == '\r')
        p->_chunk_state = CK_SIZE_LF;
    else if (c == ' ' || c == '\t')
        p->_chunk_state = CK_EXT_BWS;
    else
        return false;
    return true;
}

static enum dt_http_event abort_body(struct dt_http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return DT_HTTP_ABORT;
}

/* Drains chunked content from buf[p->off, len). */
static enum dt_http_event drain_chunked(struct dt_http_parser *p, const char *buf, size_t len)
{
    const struct dt_http_limits *lim = p->_lim;
    size_t i = p->off;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (p->_chunk_state == CK_DATA) {
            size_t take = len - i < p->_remaining ? len - i : (size_t)p->_remaining;
            if (p->body)
                dt_buf_append(p->body, buf + i, take);
            p->_remaining -= take;
            i += take;
            if (!p->_remaining)
                p->_chunk_state = CK_DATA_CR;
            continue;
        }
        /* Sizes, extensions and trailers count against the header-section limit. */
        if (++p->_framing_seen > lim->max_header_bytes) {
            p->off = i;
            return abort_body(p, 431, "chunk framing over the limit");
        }
        i++;
        switch (p->_chunk_state) {
        case CK_SIZE_FIRST:
        case CK_SIZE: {
            int h = dt_hexval(c);
            if (h >= 0) {
                if (p->_remaining >> 59)
                    return abort_body(p, 400, "chunk size too large");
                p->_remaining = p->_remaining * 16 + (uint64_t)h;
                p->_chunk_state = CK_SIZE;
            } else if (p->_chunk_state == CK_SIZE_FIRST || !chunk_ext_next(p, c)) {
                return abort_body(p, 400, "invalid chunk size");
            }
            break;
        }
        /* RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), the
         * value a token or a quoted string. Anything else is refused: a parser that read
         * "1 0" or "5;" otherwise than we do would frame the content differently. */
        case CK_EXT_END:
            if (!chunk_ext_next(p, c))
                return abort_body(p, 400, "invalid chunk extension");
            break;
        case CK_EXT_BWS:
        case CK_EXT_NAMED:
            if (c == ';')
                p->_chunk_state = CK_EXT_NAME0;
            else if (c == '=' && p->_chunk_state == CK_EXT_NAMED)
                p->_chunk_state = CK_EXT_VALUE0;
            else if (c != ' ' && c != '\t')
                return abort_body(p, 400, "invalid chunk extension");
            break;
        case CK_EXT_NAME0:
        case CK_EXT_VALUE0:
            if (dt_tchar[c])
                p->_chunk_state = p->_chunk_state == CK_EXT_NAME0 ? CK_EXT_NAME : CK_EXT_VALUE;
            else if (c == '"' && p->_chunk_state == CK_EXT_VALUE0)
                p->_chunk_state = CK_EXT_QUOTED;
            else if (c != ' ' && c != '\t')
                return abort_body(p, 400, "invalid chunk extension");
            break;
        case CK_EXT_NAME:
            if (c == '=')
                p->_chunk_state = CK_EXT_VALUE0;
            else if (c == ' ' || c == '\t')
                p->_chunk_state = CK_EXT_NAMED; /* "=" may still come */
            else if (!dt_tchar[c] && !chunk_ext_next(p, c))
                return abort_body(p, 400, "invalid chunk extension");
            break;
        case CK_EXT_VALUE:
            if (!dt_tchar[c] && !chunk_ext_next(p, c))
                return abort_body(p, 400, "invalid chunk extension");
            break;
        case CK_EXT_QUOTED:
            if (c == '"')
                p->_chunk_state = CK_EXT_END;
            else if (c == '\\')
                p->_chunk_state = CK_EXT_PAIR;
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                return abort_body(p, 400, "invalid quoted chunk extension");
            break;
        case CK_EXT_PAIR:
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return abort_body(p, 400, "invalid quoted chunk extension");
            p->_chunk_state = CK_EXT_QUOTED;
            break;
        case CK_SIZE_LF:
            if (c != '\n')
                return abort_body(p, 400, "chunk size line must end with CRLF");
            p->_chunk_state = p->_remaining ? CK_DATA : CK_TRAILER_START;
            if (p->_remaining) {
                p->_body_seen += p->_remaining;
                if (p->_body_seen > lim->max_body)
                    return abort_body(p, 413, "request content over the limit");
            }
            break;
        case CK_DATA_CR:
            if (c != '\r')
                return abort_body(p, 400, "chunk data must end with CRLF");
            p->_chunk_state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                return abort_body(p, 400, "chunk data must end with CRLF");
            p->_chunk_state = CK_SIZE_FIRST;
            break;
        case CK_TRAILER_START:
            if (c == '\r')
                p->_chunk_state = CK_FINAL_LF;
            else if (dt_tchar[c])
                p->_chunk_state = CK_TRAILER;
            else
                return abort_body(p, 400, "invalid trailer field");
            break;
        case CK_TRAILER:
            if (c == '\r')
                p->_chunk_state = CK_TRAILER_LF;
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                return abort_body(p, 400, "invalid trailer field");
            break;
        case CK_TRAILER_LF:
            if (c != '\n')
                return abort_body(p, 400, "trailer lines must end with CRLF");
            p->_chunk_state = CK_TRAILER_START;
            break;
        case CK_FINAL_LF:
            if (c != '\n')
                return abort_body(p, 400, "chunked content must end with CRLF");
            p->off = i;
            return DT_HTTP_DONE;
        }
    }
    p->off = i;
    return DT_HTTP_NEED_MORE;
}

/* Drains the content of the request whose head was answered. */
static enum dt_http_event drain(struct dt_http_parser *p, const char *buf, size_t len)
{
    if (p->_body_mode == BODY_CHUNKED)
        return drain_chunked(p, buf, len);
    size_t avail = len - p->off;
    size_t take = avail < p->_remaining ? avail : (size_t)p->_remaining;
    if (p->body)
        dt_buf_append(p->body, buf + p->off, take);
    p->_remaining -= take;
    p->off += take;
    return p->_remaining ? DT_HTTP_NEED_MORE : DT_HTTP_DONE;
}

enum dt_http_event dt_http_parse(struct dt_http_parser *p, char *buf, size_t len,
                                 struct dt_request *req)
{
    static const char canonical[2][17] = {"GET / HTTP/1.0\r\n", "GET / HTTP/1.1\r\n"};
    const struct dt_http_limits *lim = p->_lim;
    p->_buf = buf;
    if (p->_state == ST_LINE) {
        if (p->_scanned == 0) {
            /* RFC 9112 2.2: ignore empty lines before a request line. */
            while (len - p->off >= 2 && buf[p->off] == '\r' && buf[p->off + 1] == '\n')
                p->off += 2;
            if (len - p->off == 1 && buf[p->off] == '\r')
                return DT_HTTP_NEED_MORE;
            p->_start = p->off;
        }
        size_t start = p->_start;
        size_t from = start + p->_scanned;
        size_t end = len;
        if (end - start > (size_t)lim->max_request_line + 2)
            end = start + lim->max_request_line + 2;
        const char *lf = from < end ? memchr(buf + from, '\n', end - from) : NULL;
        if (!lf) {
            /* Reject bytes that cannot start a request (a TLS hello, say) at once rather
             * than waiting for a line end that never comes. */
            for (size_t i = from; i < end && !p->_method_seen; i++) {
                unsigned char c = (unsigned char)buf[i];
                if (c == ' ')
                    p->_method_seen = true;
                else if (!dt_tchar[c])
                    return fail(p, 400, "not an HTTP request");
            }
            /* max_request_line bytes, then CR: only an LF may still come. */
            if (end - start > (size_t)lim->max_request_line + 1)
                return line_too_long(p, buf + start, lim->max_request_line);
            p->_scanned = end - start;
            p->off = end;
            return DT_HTTP_NEED_MORE;
        }
        size_t lfo = (size_t)(lf - buf);
        if (lfo == start || buf[lfo - 1] != '\r')
            return fail(p, 400, "the request line must end with CRLF");
        if (lfo - 1 - start > lim->max_request_line)
            return line_too_long(p, buf + start, lim->max_request_line);
        enum dt_http_event ev = request_line(p, buf + start, lfo - 1 - start);
        if (ev != DT_HTTP_HEAD)
            return ev;
        p->off = lfo + 1;
        p->_hdr_start = p->off - start;
        llhttp_reset(&p->_ll);
        const char *c = canonical[p->_version_minor];
        llhttp_errno_t err = llhttp_execute(&p->_ll, c, 16);
        if (err != HPE_OK)
            return fail(p, 500, "internal parser state");
        p->_state = ST_HEADERS;
    }
    if (p->_state == ST_HEADERS) {
        size_t limit = p->_start + p->_hdr_start + lim->max_header_bytes;
        size_t end = len < limit ? len : limit;
        llhttp_errno_t err = HPE_OK;
        if (p->off < end)
            err = llhttp_execute(&p->_ll, buf + p->off, end - p->off);
        if (err == HPE_PAUSED) {
            p->off = (size_t)(llhttp_get_error_pos(&p->_ll) - buf);
            llhttp_resume(&p->_ll);
            size_t head = p->_start + p->_hdr_start;
            const char *invalid = head_lines_invalid(buf + head, p->off - head);
            if (invalid)
                return fail(p, 400, invalid);
            p->_state = ST_BODY;
            enum dt_http_event ev = fill(p, buf, req);
            return ev;
        }
        if (err != HPE_OK)
            return llhttp_failure(p, err);
        p->off = end;
        if (end == limit)
            return fail(p, 431, "header section over the limit");
        return DT_HTTP_NEED_MORE;
    }
    /* ST_BODY: drain the content, if any, to the end of the message. */
    enum dt_http_event ev = drain(p, buf, len);
    if (ev == DT_HTTP_DONE) {
        p->_state = ST_LINE;
        reset_request(p);
        p->_start = p->off;
    }
    return ev;
}
