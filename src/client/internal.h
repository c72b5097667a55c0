/* internal: the client module's private parts: the redirect policy as pure functions, body
 * sources that can be replayed, the HSTS and redirect stores, and one transfer over
 * libcurl. The API is include/detour/client.h. */
#ifndef DT_CLIENT_INTERNAL_H
#define DT_CLIENT_INTERNAL_H

#include "base/base.h"
#include "client/check.h"
#include "detour/client.h"
#include "http/http.h"
#include "url/url.h"

#include <curl/curl.h>

/* ---- policy (policy.c) ----------------------------------------------------------------- */

/* An origin (RFC 6454): scheme, host and port, lower-cased, the port defaulted. */
struct origin {
    char scheme[8];
    char host[256];
    unsigned port;
};

/* Parses an absolute http(s) URL's origin. Returns 0 or DT_EINVAL. */
int dt_client_origin(struct dt_str url, struct origin *o);
bool dt_client_same_origin(const struct origin *a, const struct origin *b);

/* What to do with a 3xx that has a Location. */
struct plan {
    bool follow;            /* false: refusal says why, the 3xx is final */
    const char *refusal;    /* static text */
    const char *method;     /* the next request's method (static or the current one) */
    bool keep_body;         /* send the same body again (C1) */
    bool drop_body_headers; /* the body is gone: Content-Type and the like go too (C2) */
    bool needs_confirm;     /* an unsafe method would be sent again (C4) */
    bool origin_changed;    /* credentials must not follow */
    const char *note;       /* static text for the hop */
};

/* Decides what a redirect means for the next request: status (301, 302, 303, 307 or 308),
 * the current method, whether it has a body, the current and next URLs (absolute, already
 * resolved) and the policy. Pure: no I/O. */
void dt_client_plan(int status, const char *method, bool has_body, struct dt_str from,
                    struct dt_str to, const struct dt_client_policy *p, struct plan *out);

/* True for a header that carries credentials or a Host that names the old origin: dropped
 * when the origin changes. */
bool dt_client_header_is_sensitive(struct dt_str line);
/* True for a header that describes a body: dropped with the body (C2). */
bool dt_client_header_is_body(struct dt_str line);

/* ---- bodies (body.c) ------------------------------------------------------------------- */

struct body_src {
    const struct dt_client_body *spec;
    size_t limit;       /* READER: bytes kept for replays */
    struct dt_buf kept; /* READER: what was read so far, while under the limit */
    bool eof;           /* READER: the reader said it is done */
    bool overflow;      /* READER: more than limit was read: no replay possible */
    uint64_t total;     /* READER: bytes taken from the reader so far */
    uint64_t pos;       /* position of the current transfer */
    int fd;             /* FILE: open during a transfer */
    int64_t file_len;
};

void body_init(struct body_src *b, const struct dt_client_body *spec, size_t limit);
void body_dispose(struct body_src *b);
/* Rewinds for a new transfer. Returns 0, DT_CLIENT_EREPLAY (a reader that overflowed) or
 * DT_CLIENT_EIO (a file that cannot be opened); err says why. */
int body_begin(struct body_src *b, char *err, size_t errlen);
/* Reads the next bytes for the current transfer: count, 0 at the end, -1 on error. */
long body_read(struct body_src *b, char *buf, size_t cap);
/* The length, or -1 when unknown (a reader without a length, not yet read to its end). */
int64_t body_length(const struct body_src *b);
/* The length to announce on the wire: a reader keeps the framing of its first send (chunked
 * when its length was not given), so a replay is the same message. */
int64_t body_wire_length(const struct body_src *b);
void body_end(struct body_src *b);

/* ---- HSTS and the redirect cache (hsts.c, cache.c) ----------------------------------------- */

/* Looks a URL up in the cache: the status and target remembered, or 0. */
int dt_client_cache_lookup(const struct dt_client_cache *c, const char *url, const char **target);
void dt_client_cache_store(struct dt_client_cache *c, const char *url, int status,
                           const char *target);

/* ---- one transfer (transfer.c) ------------------------------------------------------------ */

struct xfer_request {
    const char *method;
    const char *url;
    struct curl_slist *headers;    /* the caller's, already filtered */
    struct body_src *body;         /* NULL: no body */
    struct curl_slist *resolve;    /* CURLOPT_RESOLVE entries (HOST:PORT:ADDR), or NULL */
    struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO entries, or NULL */
};

struct xfer_response {
    int status;
    long http_version; /* CURL_HTTP_VERSION_* of the answer */
    struct dt_client_header *headers;
    size_t nheaders, cap_headers;
    char *location; /* first Location field: location_len bytes (a NUL in it is
                     * kept, and ends nothing) */
    size_t location_len;
    char *location_other; /* a later Location field with another value, or NULL */
    size_t location_other_len;
    char *sts;    /* first Strict-Transport-Security field */
    bool deliver; /* the body goes to write (a final answer), else is dropped */
    /* Called when a head is complete (status >= 200): true if this answer is final, so
     * that its body goes to write; false if the chain goes on and it is dropped. */
    bool (*decide)(void *ud, struct xfer_response *r);
    void *decide_ud;
    dt_client_write_fn write; /* where a final answer's body goes */
    void *write_ud;
    bool write_failed;
    int curl_code;   /* the CURLcode the transfer ended with */
    int64_t time_us; /* how long it took, from the start to the last byte */
    char error[CURL_ERROR_SIZE];
};

/* Sends one request with h (redirects off) and fills resp. Returns 0 or
 * DT_CLIENT_ETRANSFER (resp->error says why). */
int dt_xfer_perform(CURL *h, const struct xfer_request *req, const struct dt_client_policy *p,
                    struct xfer_response *resp);
/* The same in two halves, for a multi handle: setup makes h ready to send req (req, p and
 * resp must live until the transfer is done), finish takes the CURLcode it ended with and
 * returns as dt_xfer_perform. */
void dt_xfer_setup(CURL *h, const struct xfer_request *req, const struct dt_client_policy *p,
                   struct xfer_response *resp);
/* setup in two parts, for a handle that sends many requests under one policy into one
 * resp: configure once (what the policy says), then request before each send. */
void dt_xfer_configure(CURL *h, const struct dt_client_policy *p, struct xfer_response *resp);
void dt_xfer_request(CURL *h, const struct xfer_request *req, struct xfer_response *resp);
int dt_xfer_finish(CURL *h, int code, struct xfer_response *resp);
void dt_xfer_response_dispose(struct xfer_response *resp);

/* ---- the chain (fetch.c) ------------------------------------------------------------------ */

/* A list of owned strings. */
struct strings {
    char **v;
    size_t n, cap;
};

/* What the chain does after the answer whose head just arrived. */
struct decision {
    bool made;   /* a final (non-1xx) head arrived */
    bool follow; /* go on to next; else this answer ends the chain */
    int code;    /* when it ends: 0, or the DT_CLIENT_E* it ends with */
    struct plan plan;
    struct dt_buf next;     /* the resolved Location */
    struct dt_buf upgraded; /* next as HSTS makes it (https), when it does */
    char note[512];         /* for the hop */
    char error[512];        /* for the result when code != 0 */
};

/* One request and its redirects, followed step by step so that one loop (dt_client_fetch,
 * over an easy handle) or many at once (check.c, over a multi handle) can drive it:
 *
 *     dt_chain_begin; while (dt_chain_next(c) == 1) { send c->xr, dt_chain_answered }
 *
 * Fields are the chain's own; a driver reads xr, x and (after the end) rc. */
struct chain {
    const struct dt_client_policy *p;
    struct dt_client_result *res;
    struct dt_buf url; /* the current URL, NUL-terminated */
    char method[64];
    struct strings headers; /* the request's header lines, as they stand now */
    char *authorization;    /* "Authorization: Basic ..." from credentials, until dropped */
    struct body_src body;
    bool has_body;
    struct strings seen;     /* requests already made, for loop detection */
    unsigned redirects;      /* followed so far */
    struct decision d;       /* for the transfer under way */
    struct xfer_request xr;  /* the request to send, after dt_chain_next returned 1 */
    struct xfer_response x;  /* its answer, filled by the transfer */
    struct curl_slist *sent; /* xr's header list */
    struct curl_slist *resolve, *connect_to;
    size_t hop_index; /* the hop of the request under way (hops may move when added) */
    int rc;           /* how the chain ended: as dt_client_fetch returns */
};

/* Starts a chain for req under p (p must live as long as the chain; its defaults already
 * applied: see dt_client_policy_fill), recording into res (zeroed here). Returns 0, or
 * DT_CLIENT_E* with res->error saying why (the chain must still be disposed of). */
int dt_chain_begin(struct chain *c, const struct dt_client_request *req,
                   const struct dt_client_policy *p, dt_client_write_fn write, void *write_ud,
                   struct dt_client_result *res);
/* Prepares the next request: 1 when c->xr is to be sent (with dt_xfer_setup or
 * dt_xfer_perform, into c->x); 0 when the chain has ended, c->rc saying how. */
int dt_chain_next(struct chain *c);
/* Takes the outcome of c->xr's transfer (xrc: as dt_xfer_finish returned). 1: call
 * dt_chain_next again; 0: the chain has ended, c->rc saying how. */
int dt_chain_answered(struct chain *c, int xrc);
void dt_chain_dispose(struct chain *c);
/* libcurl's global set-up, once per process (any thread). */
void dt_client_global_init(void);
/* Fills in the defaults of a policy copy (user agent, replay limit, now). */
void dt_client_policy_fill(struct dt_client_policy *p);

#endif
