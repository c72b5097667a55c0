/* http: HTTP/1.1 on the wire: status codes and reason phrases, an incremental request
 * parser with named limits (llhttp underneath), and response writing into a buffer. */
#ifndef DT_HTTP_H
#define DT_HTTP_H

#include "base/base.h"

#include <llhttp.h>
#include <sys/socket.h>

/* ---- status codes ---------------------------------------------------------------------- */

enum {
    DT_HTTP_MOVED_PERMANENTLY = 301,
    DT_HTTP_FOUND = 302,
    DT_HTTP_SEE_OTHER = 303,
    DT_HTTP_TEMPORARY_REDIRECT = 307,
    DT_HTTP_PERMANENT_REDIRECT = 308,
};

/* The RFC 9110 reason phrase of a status ("Temporary Redirect" for 307), or an empty span for
 * a status RFC 9110 does not name. The span is a NUL-terminated literal. Any thread. */
struct dt_str dt_http_reason(int status);
/* True for the statuses a redirect rule may answer with: 301, 302, 303, 307, 308. */
bool dt_http_is_redirect(int64_t status);

/* ---- request parsing ------------------------------------------------------------------- */

/* Limits on what a client may send; each one, exceeded, gets its own status. */
struct dt_http_limits {
    uint32_t max_request_line;  /* bytes of the request line: beyond, 414 */
    uint32_t max_header_bytes;  /* bytes of the header block: beyond, 431 */
    uint32_t max_header_fields; /* header fields: beyond, 431 */
    uint64_t max_body;          /* request content drained: beyond, answer then close */
};
#define DT_HTTP_LIMITS_DEFAULT                                                                     \
    {                                                                                              \
        8 * 1024, 32 * 1024, 100, 1024 * 1024                                                      \
    }

/* A parsed request head. Spans point into the caller's buffer and stay valid until the
 * caller moves or frees it; host is lower-cased in place. */
struct dt_request {
    struct dt_str method;
    struct dt_str target; /* the request-target as sent */
    struct dt_str path;   /* origin-form path; "/" for an absolute-form target without one */
    struct dt_str query;  /* after '?', without it */
    struct dt_str host;   /* from the target (absolute-form) or Host; no port, no final dot */
    struct dt_str authorization;       /* the Authorization field's value (empty when absent) */
    struct dt_str referer, user_agent; /* for the access log (empty when absent) */
    uint8_t version_minor;             /* HTTP/1.0 or HTTP/1.1 */
    bool keep_alive;                   /* the client wants the connection kept (RFC 9112 9.3) */
    bool head;                         /* HEAD: same headers, no content (S3) */
    bool has_body;                     /* Content-Length > 0 or chunked */
    bool body_too_large;               /* Content-Length beyond max_body: answer, then close */
    bool expect_continue;              /* Expect: 100-continue */
    bool absolute_form;
    uint64_t content_length; /* 0 when chunked */
};

/* What dt_http_parse found. */
enum dt_http_event {
    DT_HTTP_NEED_MORE = -2, /* consumed what it could; call again with more bytes */
    DT_HTTP_ERROR = -1,     /* bad request before its head was answered: send p->status */
    DT_HTTP_HEAD = 1,       /* a request head is ready: answer it, then parse on */
    DT_HTTP_DONE = 2,       /* the request and its content are over; the next may start */
    DT_HTTP_ABORT = 3,      /* the content broke its framing or limit after the head was
                               answered: nothing more to send, close */
};

/* Incremental request parser. It works on a buffer the caller owns and may grow or move
 * between calls: it keeps offsets, never pointers. One per connection. */
struct dt_http_parser {
    llhttp_t _ll;
    const struct dt_http_limits *_lim;
    char *_buf;             /* the buffer of the current call */
    size_t off;             /* bytes of the buffer consumed; where the next call starts */
    size_t _start;          /* where the current request starts */
    size_t _scanned;        /* request-line bytes already searched for LF, from _start */
    size_t _hdr_start;      /* where the header block starts, from _start */
    uint64_t _body_seen;    /* content bytes drained */
    uint64_t _remaining;    /* of the Content-Length, or of the current chunk */
    uint32_t _framing_seen; /* chunk sizes, extensions and trailers: counted as headers */
    uint8_t _body_mode;     /* none, length, chunked */
    uint8_t _chunk_state;
    uint32_t _nfields;
    uint32_t _field_off, _field_len, _value_off, _value_len; /* from _start */
    uint32_t _host_off, _host_len;
    uint32_t _auth_off, _auth_len;
    uint32_t _ref_off, _ref_len, _ua_off, _ua_len;
    uint32_t _method_len, _target_len;
    uint8_t _state;
    uint8_t _nhost;
    uint8_t _version_minor;
    bool _in_value;
    bool _method_seen;
    bool _is_head;
    bool _te_seen, _te_chunked_last, _te_unknown, _te_bad;
    bool _expect_continue;
    struct dt_buf *body; /* NULL, or where the content of each request is appended (the
                            caller empties it between requests) */
    int status;          /* with DT_HTTP_ERROR/ABORT: the status to send (400, 414, ...) */
    const char *reason;  /* with DT_HTTP_ERROR/ABORT: why, in English (static) */
};

void dt_http_parser_init(struct dt_http_parser *p, const struct dt_http_limits *lim);

/* Parses buf[p->off, len): returns an event (and fills req on DT_HTTP_HEAD). After
 * DT_HTTP_DONE the parser is ready for the next request at p->off. Single thread. */
enum dt_http_event dt_http_parse(struct dt_http_parser *p, char *buf, size_t len,
                                 struct dt_request *req);

/* Bytes before p->off that the parser no longer needs (the caller may drop them). */
size_t dt_http_parser_discardable(const struct dt_http_parser *p);
/* Tells the parser the caller dropped the first n bytes of its buffer
 * (n <= dt_http_parser_discardable). */
void dt_http_parser_shift(struct dt_http_parser *p, size_t n);
/* True while no byte of a request has arrived since the last one ended. */
/* Splits an authority, host[:port] (a Host field, HTTP/2's :authority), in place: validates
 * it, lower-cases the host and drops a final dot into *host. False for an invalid value. */
bool dt_http_authority_host(char *s, size_t n, struct dt_str *host);

bool dt_http_parser_idle(const struct dt_http_parser *p);
/* True while the parser is reading a request's content (after its head). */
bool dt_http_parser_in_body(const struct dt_http_parser *p);
/* True when the current request line said HEAD (an error answer then has no content). */
bool dt_http_parser_head(const struct dt_http_parser *p);

/* ---- responses ------------------------------------------------------------------------- */

/* How a response ends its message and what the note should say. */
struct dt_http_reply {
    const char *date;     /* 29-byte IMF-fixdate, cached by the caller */
    struct dt_str method; /* the request's method, named in the note (S2) */
    bool head;            /* HEAD: headers only (S3) */
    bool close;           /* "Connection: close": the connection ends after this */
    bool keep_alive_10;   /* HTTP/1.0 with keep-alive: "Connection: keep-alive" */
    bool had_body;        /* the note asks to send the same body again */
    int64_t max_age;      /* >= 0: "Cache-Control: max-age=N" (S4); -1: no caching headers */
    struct dt_str extra;  /* complete "Name: value\r\n" lines sent with every answer (the
                             Strict-Transport-Security field over TLS, S9); at most
                             DT_HTTP_EXTRA_MAX bytes */
};
#define DT_HTTP_EXTRA_MAX 256

/* Writes the start of a redirect (status line and "Location: ") to out, reserves
 * max_location bytes and returns where the location goes. Finish with
 * dt_http_redirect_end. */
char *dt_http_redirect_begin(struct dt_buf *out, int status, size_t max_location);
/* Finishes the redirect begun by dt_http_redirect_begin, whose location is the
 * location_len bytes written where it pointed: the other headers and, unless HEAD, the
 * HTML note with the escaped link (S1-S4). */
void dt_http_redirect_end(struct dt_buf *out, int status, size_t location_len,
                          const struct dt_http_reply *r);

/* Writes a whole response with a short HTML page: <p>before TEXT after</p>, TEXT escaped.
 * For 404 and every error status. */
void dt_http_write_page(struct dt_buf *out, int status, const struct dt_http_reply *r,
                        const char *before, struct dt_str text, const char *after);

/* Writes a whole response: status line, Date, Content-Type (unless content_type is NULL),
 * Content-Length, Connection as r says, then headers (zero or more complete "Name: value\r\n"
 * lines, may be empty) and, unless HEAD, the body. For the admin API. */
void dt_http_write_response(struct dt_buf *out, int status, const struct dt_http_reply *r,
                            const char *content_type, struct dt_str headers, struct dt_str body);

/* ---- the PROXY protocol (proxy.c) ------------------------------------------------------ */

/* The longest header accepted (version 2 allows 64 KB of TLVs; balancers send far less). */
#define DT_PROXY_MAX 4096

/* What a PROXY protocol header says. */
struct dt_proxy_info {
    int version; /* 1 (text) or 2 (binary) */
    /* No client address: v1 UNKNOWN, v2 LOCAL (the balancer's own health check), v2 with
     * an unspecified family or a Unix socket. The connection's own address stands. */
    bool local;
    struct sockaddr_storage src, dst; /* the client's address and the one it reached */
};

/* Parses a PROXY protocol header (version 1 or 2) at the start of buf[0, len): the bytes it
 * takes (the client's own bytes follow), -2 when it needs more, -1 when it is not a valid
 * header or is longer than DT_PROXY_MAX. Strict: version 1's exact spacing and printable
 * ASCII, addresses and ports in range, version 2's TLV framing. */
int dt_proxy_parse(const char *buf, size_t len, struct dt_proxy_info *out);

#endif
