/* transfer: one HTTP exchange over libcurl, with libcurl's redirect following off (detour
 * decides every hop). Captures the status and header fields; when the head is complete the
 * caller decides whether the answer is final: its body then goes to the caller's writer,
 * else it is dropped as it arrives. */
#include "client/internal.h"

#include <stdlib.h>

static void clear_headers(struct xfer_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
    free(r->location);
    free(r->location_other);
    free(r->sts);
    r->location = r->location_other = r->sts = NULL;
    r->location_len = r->location_other_len = 0;
}

void dt_xfer_response_dispose(struct xfer_response *r)
{
    clear_headers(r);
    free(r->headers);
    r->headers = NULL;
    r->cap_headers = 0;
}

static char *dup_span(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    struct xfer_response *r = ud;
    size_t n = size * nitems;
    size_t len = n;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && !memcmp(data, "HTTP/", 5)) {
        /* A status line: an interim 1xx answer's fields are forgotten with it. */
        clear_headers(r);
        const char *sp = memchr(data, ' ', len);
        int64_t code = 0;
        if (!sp || (size_t)(sp - data) + 4 > len ||
            dt_parse_int(dt_str_make(sp + 1, 3), 100, 599, &code) != 0)
            code = 0;
        r->status = (int)code;
        r->deliver = false;
        return n;
    }
    if (len == 0) {
        /* The end of a head: a final answer's body goes to the caller. Interim (1xx) heads
         * have no body. */
        if (r->status >= 200)
            r->deliver = r->decide ? r->decide(r->decide_ud, r) : true;
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return n;
    const char *v = colon + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (r->nheaders == r->cap_headers) {
        size_t cap = r->cap_headers ? r->cap_headers * 2 : 16;
        struct dt_client_header *p = realloc(r->headers, cap * sizeof(*p));
        if (!p)
            return 0;
        r->headers = p;
        r->cap_headers = cap;
    }
    struct dt_client_header *h = &r->headers[r->nheaders];
    h->name = dup_span(data, (size_t)(colon - data));
    h->value = dup_span(v, (size_t)(end - v));
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return 0;
    }
    r->nheaders++;
    struct dt_str name = {data, (size_t)(colon - data)};
    size_t vlen = (size_t)(end - v);
    if (dt_str_ieq(name, "location")) {
        /* RFC 9110 10.2.2: a Location is one URI; several fields with different values
         * cannot be told apart (the caller refuses them), the same value again can */
        if (!r->location) {
            r->location = dup_span(v, vlen);
            r->location_len = vlen;
            if (!r->location)
                return 0;
        } else if (!r->location_other &&
                   (vlen != r->location_len || memcmp(v, r->location, vlen) != 0)) {
            r->location_other = dup_span(v, vlen);
            r->location_other_len = vlen;
            if (!r->location_other)
                return 0;
        }
    } else if (!r->sts && dt_str_ieq(name, "strict-transport-security")) {
        r->sts = dup_span(v, vlen); /* RFC 6797 8.1: only the first one counts */
        if (!r->sts)
            return 0;
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *ud)
{
    struct xfer_response *r = ud;
    size_t n = size * nitems;
    if (!r->deliver)
        return n; /* the body of a redirect that is followed */
    if (r->write && r->write(r->write_ud, data, n) != 0) {
        r->write_failed = true;
        return 0; /* aborts the transfer */
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    long n = body_read(ud, buf, size * nitems);
    return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)h;
    const struct dt_client_policy *p = ud;
    char kind = type == CURLINFO_TEXT         ? '*'
                : type == CURLINFO_HEADER_OUT ? '>'
                : type == CURLINFO_HEADER_IN  ? '<'
                                              : 0;
    if (!kind)
        return 0;
    /* One call per line of the trace. */
    size_t i = 0;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        size_t len = j - i;
        if (len && data[i + len - 1] == '\r')
            len--;
        if (len || kind != '>')
            p->trace(p->trace_ud, kind, data + i, len);
        i = j + 1;
    }
    return 0;
}

void dt_xfer_configure(CURL *h, const struct dt_client_policy *p, struct xfer_response *resp)
{
    curl_easy_reset(h); /* keeps live connections, so hops to one origin reuse them */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* send the URL the chain shows */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, resp->error);
    curl_easy_setopt(h, CURLOPT_USERAGENT, p->user_agent);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    /* In a multi handle, a new request to a host already spoken to over HTTP/2 waits for
     * that connection rather than opening another: one connection, many streams. */
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    static const long versions[] = {CURL_HTTP_VERSION_2TLS, CURL_HTTP_VERSION_1_1,
                                    CURL_HTTP_VERSION_2_0, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE};
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                     versions[(unsigned)p->http <= DT_CLIENT_HTTP_2_PRIOR ? p->http : 0]);
    /* libcurl before 8.0 fails the second request on a reused prior-knowledge connection
     * ("Error in the HTTP2 framing layer", curl issue 10634): each request gets a
     * connection of its own there, slower but answered */
    if (p->http == DT_CLIENT_HTTP_2_PRIOR &&
        curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    if (p->timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    if (p->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, p->cacert);
    if (p->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (p->trace) {
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(h, CURLOPT_DEBUGDATA, (void *)p);
    }
}

void dt_xfer_request(CURL *h, const struct xfer_request *req, struct xfer_response *resp)
{
    clear_headers(resp);
    resp->status = 0;
    resp->deliver = false;
    resp->write_failed = false;
    resp->curl_code = CURLE_OK;
    resp->error[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(h, CURLOPT_RESOLVE, req->resolve);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, req->connect_to);
    /* every option of the method is set, so that one handle serves HEAD, GET and POST in
     * turn without a reset */
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_wire_length(req->body));
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                         strcmp(req->method, "POST") != 0 ? req->method : NULL);
    } else if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                         strcmp(req->method, "GET") != 0 ? req->method : NULL);
    }
}

void dt_xfer_setup(CURL *h, const struct xfer_request *req, const struct dt_client_policy *p,
                   struct xfer_response *resp)
{
    dt_xfer_configure(h, p, resp);
    dt_xfer_request(h, req, resp);
}

int dt_xfer_finish(CURL *h, int code, struct xfer_response *resp)
{
    resp->curl_code = code;
    curl_off_t us = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
    resp->time_us = (int64_t)us;
    if (code != CURLE_OK) {
        if (resp->write_failed)
            snprintf(resp->error, sizeof(resp->error), "writing the body failed");
        else if (!resp->error[0])
            snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror((CURLcode)code));
        return DT_CLIENT_ETRANSFER;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = (int)status;
    resp->http_version = 0;
    curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &resp->http_version);
    return 0;
}

int dt_xfer_perform(CURL *h, const struct xfer_request *req, const struct dt_client_policy *p,
                    struct xfer_response *resp)
{
    dt_xfer_setup(h, req, p, resp);
    return dt_xfer_finish(h, curl_easy_perform(h), resp);
}
