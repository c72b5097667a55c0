/* internal: the acme module's private parts: a response as the client keeps it, and the
 * reading of what a CA sends (parse.c): response headers, the directory, problem documents,
 * authorizations, orders and renewal information. acme.c signs and sends; parse.c reads
 * bytes the CA chose and nothing else, which fuzz/fuzz_acme.c feeds it. Not part of any
 * API. */
#ifndef DT_ACME_INTERNAL_H
#define DT_ACME_INTERNAL_H

#include "acme/acme.h"

#include <jansson.h>

/* One response from the CA. */
struct acme_response {
    long status;
    struct dt_buf body;
    char *nonce, *location, *content_type; /* header values (malloc'd), or NULL */
    long retry_after_ms;                   /* -1: none */
};

void dt_acme_response_init(struct acme_response *r);
void dt_acme_response_dispose(struct acme_response *r);
/* libcurl's header callback: one header line (size * n bytes at p, its CRLF included) read
 * into r (a struct acme_response): Replay-Nonce, Location, Content-Type, Retry-After (in
 * seconds; an HTTP-date is taken as one second). Returns size * n. */
size_t dt_acme_on_header(char *p, size_t size, size_t n, void *r);

/* The body as a JSON object, or NULL (not JSON, or not an object). The caller decrefs it. */
json_t *dt_acme_body_json(const struct acme_response *r);
/* A JSON member's string, or "". */
const char *dt_acme_jstr(json_t *j, const char *key);
/* "WHAT: HTTP STATUS TYPE: DETAIL" of a failed response (its problem document, RFC 7807;
 * the parts it lacks left out), appended to err. */
void dt_acme_problem(const struct acme_response *r, const char *what, struct dt_buf *err);
/* A 400 whose problem is urn:ietf:params:acme:error:badNonce (RFC 8555 6.5). */
bool dt_acme_is_bad_nonce(const struct acme_response *r);

/* A directory's URLs (malloc'd; renewal_info NULL when the CA has none). */
struct acme_directory {
    char *new_nonce, *new_account, *new_order, *renewal_info;
};
/* Reads the directory from its response (url names it in messages): true with d filled, or
 * false with why in err. */
bool dt_acme_read_directory(const struct acme_response *r, const char *url,
                            struct acme_directory *d, struct dt_buf *err);

/* Why an authorization or an order failed (its status, and the "error" member of it or of
 * its first challenge that has one), appended to err as "WHAT: STATUS (TYPE): DETAIL". */
void dt_acme_object_error(json_t *j, const char *what, struct dt_buf *err);

/* What an authorization asks. The strings are j's (kind is a static string). */
struct acme_authz {
    const char *host;  /* the identifier's value, or NULL */
    const char *kind;  /* "http-01" or "tls-alpn-01" */
    const char *token; /* base64url characters only (checked) */
    const char *url;   /* the challenge's */
};
/* Reads an authorization object, the challenges the client can answer being http01 and
 * tls_alpn01 (HTTP-01 preferred): 1 when it is valid already; 0 with the challenge to answer
 * in out; -1 with why in err (not pending, or no challenge that can be answered). */
int dt_acme_read_authz(json_t *j, bool http01, bool tls_alpn01, struct acme_authz *out,
                       struct dt_buf *err);

/* An order's authorization URLs: true with *urls (an array the caller frees; its strings
 * are order's) and *n (0 when it has none); false with why in err when one is not a
 * string. */
bool dt_acme_order_authzs(json_t *order, const char ***urls, size_t *n, struct dt_buf *err);

/* An RFC 3339 time ("2026-12-04T10:00:00Z", with fractions or an offset) as Unix time. */
bool dt_acme_rfc3339(const char *s, time_t *out);
/* A renewalInfo object's suggested window (RFC 9773 4.2): true with start <= end; false
 * for j NULL, or a window missing or malformed. */
bool dt_acme_read_window(json_t *j, time_t *start, time_t *end);

#endif
