/* detour/client.h: an HTTP user agent that follows redirects exactly as RFC 9110 says and
 * reports every hop. The only installed header of detour.
 *
 * One call, dt_client_fetch, takes a request and a policy and returns the final response and
 * the chain of hops that led to it. Every redirect is decided here, not by the transport
 * (libcurl's own redirect following is never used):
 *   - 307 and 308 repeat the method and the body byte for byte (C1); 303 turns the request
 *     into GET, HEAD staying HEAD, without the body (C2); 301 and 302 turn POST into GET
 *     unless the policy keeps the method (C3);
 *   - a request whose method is not safe is not sent again without a confirmation (C4);
 *   - 307 is never remembered; an optional cache remembers 301 and 308 only (C5);
 *   - Location is resolved by RFC 3986 section 5, the fragment inherited (C6);
 *   - hosts known from Strict-Transport-Security are reached over https through an internal
 *     307 that sends nothing (C7);
 *   - credentials never cross to another origin, https never falls back to http unless
 *     allowed, loops and long chains stop, and only http and https are followed.
 *
 * Threads: a policy, an HSTS store and a cache may be used by one fetch at a time.
 * Errors: functions that can fail return 0 or a negative DT_CLIENT_E* code. */
#ifndef DETOUR_CLIENT_H
#define DETOUR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DETOUR_API __attribute__((visibility("default")))

/* Redirect status codes (C8). */
enum detour_status {
    DETOUR_MOVED_PERMANENTLY = 301,
    DETOUR_FOUND = 302,
    DETOUR_SEE_OTHER = 303,
    DETOUR_TEMPORARY_REDIRECT = 307,
    DETOUR_PERMANENT_REDIRECT = 308,
};

/* The RFC 9110 reason phrase of a status: "Temporary Redirect" for 307. Never NULL. */
DETOUR_API const char *dt_client_reason(int status);

enum {
    DT_CLIENT_ENOMEM = -1,    /* out of memory */
    DT_CLIENT_EINVAL = -2,    /* a bad URL, header or argument */
    DT_CLIENT_ETRANSFER = -3, /* the network transfer failed (result.error says how) */
    DT_CLIENT_EREFUSED = -8,  /* a redirect was not followed by policy: the 3xx is final */
    DT_CLIENT_ELOOP = -9,     /* the same request came round again */
    DT_CLIENT_ETOOMANY = -10, /* more redirects than policy.max_redirs */
    DT_CLIENT_EREPLAY = -11,  /* a 307/308 needs the body again and it cannot be re-read */
    DT_CLIENT_EIO = -12,      /* a file could not be read or written */
};

/* A static English description of a DT_CLIENT_E* code. */
DETOUR_API const char *dt_client_strerror(int code);

/* ---- the request ------------------------------------------------------------------------ */

/* Reads up to cap bytes of a body into buf: returns the count, 0 at the end, -1 on error. */
typedef long (*dt_client_read_fn)(void *ud, char *buf, size_t cap);

enum dt_client_body_kind {
    DT_BODY_NONE,
    DT_BODY_MEMORY, /* data, len: the caller's memory, read as often as needed */
    DT_BODY_FILE,   /* path: the file is read again for every hop that sends the body */
    DT_BODY_READER, /* read: read once; kept in memory up to policy.replay_limit so that a
                       307/308 can send it again, beyond which a replay is DT_CLIENT_EREPLAY */
};

struct dt_client_body {
    enum dt_client_body_kind kind;
    const void *data;
    size_t len;
    const char *path;
    dt_client_read_fn read;
    void *read_ud;
    int64_t length; /* DT_BODY_READER: the length if known, -1 if not (sent chunked) */
};

struct dt_client_request {
    const char *method;         /* NULL: GET, or POST when there is a body */
    const char *url;            /* http:// or https://; user:password@ becomes credentials */
    const char *const *headers; /* "Name: value" */
    size_t nheaders;
    const char *credentials; /* "user:password" sent as Basic, to the first origin only */
    struct dt_client_body body;
};

/* ---- the policy -------------------------------------------------------------------------- */

/* What is about to be sent again, for a confirmation (C4). */
struct dt_client_confirm {
    unsigned hop; /* 1 for the first redirect */
    int status;
    const char *method;
    const char *from; /* the URL that answered status */
    const char *to;   /* where the request would go */
    int64_t body_len; /* bytes of body, -1 when unknown, 0 for none */
};

/* Returns true to send the request again, false to stop at the redirect. */
typedef bool (*dt_client_confirm_fn)(void *ud, const struct dt_client_confirm *c);

/* Receives the trace of every exchange: kind '>' for a request header line, '<' for a
 * response header line, '*' for a note. Lines come without CRLF. */
typedef void (*dt_client_trace_fn)(void *ud, char kind, const char *line, size_t len);

struct dt_client_hsts;  /* an HSTS store (C7) */
struct dt_client_cache; /* a permanent-redirect cache (C5) */

/* Which HTTP version a fetch speaks. */
enum dt_client_http {
    DT_CLIENT_HTTP_DEFAULT = 0, /* HTTP/2 over TLS when the server offers it, else HTTP/1.1 */
    DT_CLIENT_HTTP_1_1,         /* HTTP/1.1 only */
    DT_CLIENT_HTTP_2,           /* HTTP/2 over TLS; plain http asks to upgrade (h2c) */
    DT_CLIENT_HTTP_2_PRIOR,     /* HTTP/2 on plain http too, without asking (prior knowledge) */
};

struct dt_client_policy {
    unsigned max_redirs; /* default 20 */
    bool keep_method;    /* C3: 301 and 302 keep POST */
    bool assume_yes;     /* C4: send unsafe requests again without asking */
    dt_client_confirm_fn confirm;
    void *confirm_ud;
    bool allow_downgrade; /* follow https -> http */
    struct dt_client_hsts *hsts;
    struct dt_client_cache *cache;
    const char *cacert;     /* CA bundle for https (NULL: the system's) */
    bool insecure;          /* do not verify certificates (nothing is learnt for HSTS) */
    size_t replay_limit;    /* DT_BODY_READER bodies kept for replay: default 16 MiB */
    long timeout_ms;        /* per transfer; 0: none */
    const char *user_agent; /* default "detour/VERSION" */
    dt_client_trace_fn trace;
    void *trace_ud;
    time_t now;               /* the time HSTS entries are judged and learnt at (C7); 0: the
                               * wall clock when dt_client_fetch starts */
    enum dt_client_http http; /* which HTTP version to speak (DT_CLIENT_HTTP_DEFAULT) */
    /* curl's --resolve entries, "HOST:PORT:ADDR[,ADDR]...": that host and port are reached
     * at ADDR without asking DNS (the URL, Host and TLS name stay the same) */
    const char *const *resolve;
    size_t nresolve;
    /* curl's --connect-to entries, "HOST:PORT:HOST2:PORT2": a connection for HOST:PORT goes
     * to HOST2:PORT2 instead (an empty part matches or keeps any) */
    const char *const *connect_to;
    size_t nconnect_to;
};

DETOUR_API void dt_client_policy_init(struct dt_client_policy *p);

/* ---- HSTS (C7) ------------------------------------------------------------------------- */

/* Creates an empty store. Free with dt_client_hsts_free. */
DETOUR_API struct dt_client_hsts *dt_client_hsts_new(void);
DETOUR_API void dt_client_hsts_free(struct dt_client_hsts *h);
/* Adds the entries of a file in curl's --hsts format ('host "YYYYMMDD HH:MM:SS"', a leading
 * dot for includeSubDomains, '#' comments) that have not expired at now (the caller's clock:
 * time(NULL) in a program). A missing file is an empty store. */
DETOUR_API int dt_client_hsts_load(struct dt_client_hsts *h, const char *path, time_t now);
/* Writes the entries unexpired at now to path in the same format (atomically: a new file
 * renamed over the old one). */
DETOUR_API int dt_client_hsts_save(const struct dt_client_hsts *h, const char *path, time_t now);
/* Records what a Strict-Transport-Security value received from host over a verified HTTPS
 * connection says (RFC 6797 6.1, 8.1): max-age=0 forgets the host. IP addresses are never
 * recorded. Returns 0, or DT_CLIENT_EINVAL for a value without a valid max-age. */
DETOUR_API int dt_client_hsts_learn(struct dt_client_hsts *h, const char *host, const char *value,
                                    time_t now);
/* True if http:// URLs for host must become https:// (RFC 6797 8.2). */
DETOUR_API bool dt_client_hsts_known(const struct dt_client_hsts *h, const char *host, time_t now);

/* ---- permanent-redirect cache (C5) ---------------------------------------------------- */

/* Remembers 301 and 308 answers (URL -> resolved Location), never 302, 303 or 307. */
DETOUR_API struct dt_client_cache *dt_client_cache_new(void);
DETOUR_API void dt_client_cache_free(struct dt_client_cache *c);
DETOUR_API size_t dt_client_cache_size(const struct dt_client_cache *c);

/* ---- the result -------------------------------------------------------------------------- */

enum dt_client_hop_kind {
    DT_HOP_NETWORK, /* a request was sent and answered */
    DT_HOP_HSTS,    /* internal 307 to https: nothing was sent (C7) */
    DT_HOP_CACHE,   /* a remembered 301/308: nothing was sent (C5) */
};

struct dt_client_hop {
    enum dt_client_hop_kind kind;
    char *method;      /* of the request this hop made */
    char *url;         /* the URL requested */
    int status;        /* the answer's status (or the internal redirect's) */
    char *location;    /* Location as received; NULL if none */
    char *next_url;    /* where the chain went next; NULL at its end */
    char *next_method; /* the method of the next request; NULL at the end */
    bool followed;
    char *note;        /* why it was followed or not: "method and body kept", ... */
    int64_t body_len;  /* body bytes sent with this request */
    char protocol[12]; /* "HTTP/1.1", "HTTP/2" or "HTTP/1.0"; "" when nothing was answered
                          or the hop was internal */
    bool hsts;         /* the answer had a Strict-Transport-Security field */
    int64_t time_us;   /* how long the exchange took (0 for an internal hop) */
};

struct dt_client_header {
    char *name;
    char *value;
};

struct dt_client_result {
    struct dt_client_hop *hops; /* in order; the last one is the final answer */
    size_t nhops;
    int status;                       /* the final status; 0 when nothing was answered */
    char *url;                        /* the final URL */
    struct dt_client_header *headers; /* the final answer's header fields */
    size_t nheaders;
    char error[512]; /* when dt_client_fetch fails: what, and at which hop */
};

/* Receives the final answer's body; returns 0, or nonzero to abort the transfer. */
typedef int (*dt_client_write_fn)(void *ud, const char *data, size_t len);

/* Sends req and follows redirects by policy (p may be NULL for the defaults). The final
 * answer's body goes to write (may be NULL); res gets the chain, and must be released with
 * dt_client_result_free whatever the return. Returns 0 when a final answer was received
 * (of any status), or DT_CLIENT_E* (res->error says what happened, and res->hops how far the
 * chain got). */
DETOUR_API int dt_client_fetch(const struct dt_client_request *req,
                               const struct dt_client_policy *p, dt_client_write_fn write,
                               void *write_ud, struct dt_client_result *res);
DETOUR_API void dt_client_result_free(struct dt_client_result *res);

/* True for the methods RFC 9110 9.2.1 calls safe enough to redirect without asking (C4):
 * GET, HEAD, OPTIONS, TRACE. */
DETOUR_API bool dt_client_method_safe(const char *method);

#ifdef __cplusplus
}
#endif
#endif
