/* check: many redirect chains at once for `detour check`: each followed by the user agent's
 * policy (C1-C8) over one libcurl multi handle (HTTP/1.1 keep-alive, HTTP/2 streams, one
 * pool of connections), at most so many under way, requests to each host spaced by a rate,
 * and each chain judged against what was expected of it. Not part of the library's API. */
#ifndef DT_CLIENT_CHECK_H
#define DT_CLIENT_CHECK_H

#include "detour/client.h"

#include <stdint.h>

/* One URL to check. The caller's, from next() until done() returns for it. */
struct dt_check_item {
    const char *url;    /* absolute http(s) URL */
    const char *expect; /* absolute URL its first redirect must lead to, or NULL (any) */
    int expect_status;  /* the status that redirect must have; 0: any */
    void *ud;           /* the caller's */
};

/* What can be wrong with a checked URL. */
enum dt_check_kind {
    DT_CHECK_WRONG_TARGET, /* the first redirect leads elsewhere than expected */
    DT_CHECK_WRONG_STATUS, /* the first redirect's status is not the one expected */
    DT_CHECK_TEMPORARY,    /* a temporary redirect where the file says permanent */
    DT_CHECK_NO_REDIRECT,  /* a redirect was expected, the answer was not one */
    DT_CHECK_CHAIN,        /* more than one redirect before the final answer */
    DT_CHECK_LOOP,         /* the chain came back to a request it had made */
    DT_CHECK_TOO_MANY,     /* more redirects than --max-redirs */
    DT_CHECK_DOWNGRADE,    /* an https URL redirected to http */
    DT_CHECK_NO_HSTS,      /* an answer over https without Strict-Transport-Security */
    DT_CHECK_BROKEN,       /* the final answer is an error (4xx, 5xx) */
    DT_CHECK_REFUSED,      /* a redirect the policy does not follow (a bad Location) */
    DT_CHECK_DNS,          /* errors, by kind: the host does not resolve */
    DT_CHECK_CONNECT,      /* no connection */
    DT_CHECK_TLS,          /* the TLS handshake or the certificate failed */
    DT_CHECK_TIMEOUT,      /* --timeout passed */
    DT_CHECK_HTTP,         /* the answer was cut or not HTTP */
    DT_CHECK_INVALID,      /* the URL itself cannot be requested */
    DT_CHECK_ERROR,        /* any other failure */
    DT_CHECK_NKINDS
};

enum { DT_CHECK_WARNING = 1, DT_CHECK_ERROR_LEVEL = 2 };

/* The name of a kind ("wrong-target", "error-dns", ...), static; its severity. */
const char *dt_check_kind_name(enum dt_check_kind k);
int dt_check_kind_severity(enum dt_check_kind k);

#define DT_CHECK_MAX_PROBLEMS 8

struct dt_check_problem {
    enum dt_check_kind kind;
    char message[480];
};

struct dt_check_result {
    struct dt_client_result chain; /* the hops, the final status and URL */
    int rc;                        /* as dt_client_fetch returned */
    int curl_code;                 /* the CURLcode of a failed transfer, else 0 */
    const char *method;            /* "HEAD" or "GET": what was sent */
    int64_t time_us;               /* from the first request to the end of the chain */
    struct dt_check_problem problems[DT_CHECK_MAX_PROBLEMS];
    unsigned nproblems;
    int severity; /* the highest of the problems': 0 none, DT_CHECK_WARNING, ..._ERROR_LEVEL */
};

/* Judges a finished chain against it: fills r->problems and r->severity from r->chain,
 * r->rc and r->curl_code. Pure; any thread. */
void dt_check_judge(const struct dt_check_item *it, struct dt_check_result *r);

/* The host of an absolute URL, lower-cased into host (cap bytes with the NUL): false for a
 * URL that does not parse or a longer host. Shared by the chain (HSTS), the rate per host
 * and the command's timing per host. Any thread. */
bool dt_client_url_host(const char *url, char *host, size_t cap);
/* True when url (may be NULL) starts with "scheme:", ASCII case ignored. */
bool dt_client_scheme_is(const char *url, const char *scheme);

/* True when URLs a and b name the same resource: scheme and host compared without case, a
 * default port the same as none, an empty path as "/", an empty query as none; b's fragment
 * counts only when b has one. */
bool dt_check_same_url(const char *a, const char *b);

struct dt_check_options {
    /* Every chain's policy (its defaults filled in, its HSTS store and cache NULL: each URL
     * is judged on its own). Downgrades are followed, to be reported. */
    const struct dt_client_policy *policy;
    unsigned concurrency; /* chains under way at once: 1 to 10,000 */
    double rate;          /* requests per second to each host, spaced evenly; 0: no limit */
    bool get;             /* GET; else HEAD, and GET again where HEAD gets 405 or 501 */
    /* The next item: 1 with *item set; 0 when there are no more; < 0 to stop (no more
     * items are asked for, those under way finish, and dt_check_run returns it). */
    int (*next)(void *ud, struct dt_check_item **item);
    /* A finished item and its judged result (released when this returns). */
    void (*done)(void *ud, struct dt_check_item *item, struct dt_check_result *r);
    /* Called about every 200 ms, and once at the end (for a progress line); may be NULL. */
    void (*tick)(void *ud);
    void *ud;
};

/* Checks every item next() gives, concurrency at a time, and calls done() for each.
 * Returns 0, what next() failed with, or DT_CLIENT_ENOMEM. Memory: each item under way
 * holds its chain; nothing is kept of an item after done(). One thread. */
int dt_check_run(const struct dt_check_options *o);

/* The earliest time (µs, the caller's clock) a request to a host may be sent when the
 * previous one was given slot *next (0: none yet) and requests are interval_us apart; *next
 * becomes the slot after it. Pure. */
uint64_t dt_check_slot(uint64_t *next, uint64_t now_us, uint64_t interval_us);

#endif
