/* server: the redirect server: listeners, one epoll worker thread per core, connections,
 * and the control thread that loads rules, reloads them on SIGHUP and stops on SIGTERM. */
#ifndef DT_SERVER_H
#define DT_SERVER_H

#include "base/base.h"
#include "http/http.h"
#include "rules/answer.h"
#include "rules/rules.h"

#include <sys/socket.h>

/* ---- the answer, in HTTP/1.1 ------------------------------------------------------------ */

/* Writes the HTTP/1.1 response for an answer of dt_answer_find to out: the redirect with
 * its Location, caching and note (S1-S4), or 404 naming q's path. r says how (date, method,
 * HEAD, connection); its max_age is set to the answer's. Any thread. */
void dt_server_write_answer(struct dt_buf *out, const struct dt_answer *a,
                            const struct dt_answer_query *q, struct dt_http_reply *r);

/* ---- listen addresses ------------------------------------------------------------------ */

struct dt_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80]; /* as the user wrote it, then with the real port once bound */
    bool tls;      /* a TLS listener (--listen-tls) */
    bool proxy;    /* connections begin with a PROXY protocol header (--proxy-protocol) */
    int inherited; /* set by the server: the socket systemd passed for it, or 0 */
};

/* An address block ("10.0.0.0/8", "2001:db8::/32", or one address: a /32 or /128). */
struct dt_cidr {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;
    uint8_t addr[16]; /* 4 bytes for IPv4 */
};
/* Parses s: 0, or DT_EINVAL with a message in err. */
DT_MUST_CHECK int dt_cidr_parse(const char *s, struct dt_cidr *c, char *err, size_t errlen);
/* Whether ss (an IPv4-mapped IPv6 address counting as its IPv4 one) is in one of the n
 * blocks. */
bool dt_cidr_match(const struct dt_cidr *blocks, size_t n, const struct sockaddr_storage *ss);

/* Parses ADDR:PORT ("127.0.0.1:8307", "[::1]:8307", "*:8307", "localhost:8307"), or a Unix
 * socket ("unix:PATH", or a path starting with '/' or "./"). Port 0 asks the kernel for a
 * free port. Returns 0, or DT_EINVAL with a message in err. */
DT_MUST_CHECK int dt_listen_parse(const char *s, struct dt_listen_addr *a, char *err,
                                  size_t errlen);

/* Opens a listening TCP socket (non-blocking, SO_REUSEPORT, deferred accept, no Nagle)
 * bound to a, or a Unix socket only its owner may use (replacing a stale socket file).
 * Returns the fd, or -errno. */
int dt_listen_open(const struct dt_listen_addr *a, int backlog);

/* Socket activation (sd_listen_fds(3)): the listening sockets systemd passed, when
 * $LISTEN_PID is this process; the variables are removed. Returns how many, or DT_EINVAL
 * with a message in err. Main thread, before the listeners open. */
DT_MUST_CHECK int dt_listen_inherit(char *err, size_t errlen);
/* Opens the listening socket for a now (unless systemd passed one for it), to be taken by
 * dt_listen_take later: so that a process can bind as root and then drop it. Returns 0 or
 * -errno. Main thread. */
int dt_listen_hold(const struct dt_listen_addr *a, int backlog);
/* The inherited or held socket for a (see listen.c for what matches), taken once: its
 * descriptor, or -1. */
int dt_listen_take(const struct dt_listen_addr *a);
/* Logs and closes each inherited socket no listener took; returns how many. */
size_t dt_listen_untaken(void);

/* Writes "ADDR:PORT" for a bound socket into out. */
void dt_listen_name(int fd, char *out, size_t outlen);

/* ---- the server ------------------------------------------------------------------------ */

/* A rule file and its format (enum dt_rule_format of rules/import.h). */
struct dt_rule_file {
    const char *path;
    int format;
};

/* ---- the admin side ---------------------------------------------------------------------- */

/* An admin request, whole: head and content. Spans are valid during the call only. */
struct dt_admin_request {
    struct dt_str method, target, path, query;
    struct dt_str authorization; /* the Authorization field, empty when absent */
    struct dt_str body;
    bool head;        /* HEAD: the reply's body is not sent */
    time_t now;       /* the wall clock when the request was read: the time every
                       * date decision of its answer is made at */
    uint64_t now_ms;  /* the monotonic clock then (ms): for durations */
    const char *peer; /* the client's address ("127.0.0.1", "::1"), "unix" for a Unix
                       * socket, "" when unknown */
};

/* What the admin hook answers: status, Content-Type, extra header lines, body. */
struct dt_admin_reply {
    int status;
    const char *content_type; /* static string; NULL: none */
    struct dt_buf headers;    /* complete "Name: value\r\n" lines, may stay empty */
    struct dt_buf body;
};

struct dt_server;

/* What the server calls back. Every hook may be NULL. */
struct dt_server_hooks {
    void *ctx;
    /* Control thread, once the workers run and before the admin thread starts (so before
     * any other hook): srv may be used with dt_server_publish. */
    void (*started)(void *ctx, struct dt_server *srv);
    /* SIGHUP, control thread: reload the rule files and publish (instead of the server's own
     * reload of cfg->rules). */
    void (*reload)(void *ctx, struct dt_server *srv);
    /* Control thread, after SIGTERM/SIGINT, before the workers stop. */
    void (*stopping)(void *ctx);
    /* The admin thread, for every admin request. */
    void (*admin)(void *ctx, const struct dt_admin_request *req, struct dt_admin_reply *rep);
    /* The admin thread, about once a second (and at least when now changes). */
    void (*tick)(void *ctx, time_t now);
};

struct dt_server_config {
    struct dt_listen_addr *listen;
    size_t nlisten;
    const struct dt_rule_file *rules; /* read at start and on SIGHUP */
    size_t nrules;
    unsigned workers;
    struct dt_http_limits limits;
    uint64_t header_timeout_ms;   /* a request head must arrive within this: 408 */
    uint64_t idle_timeout_ms;     /* a keep-alive connection may idle this long */
    uint64_t shutdown_timeout_ms; /* SIGTERM: in-flight work gets this long */
    /* redirect connections open at once, in all and from one address (0: no limit);
     * beyond, a connection is answered 503 (plain) or closed (TLS) at once */
    unsigned max_connections, max_connections_per_ip;
    /* the sources a listener with .proxy accepts connections from (the load balancers) */
    const struct dt_cidr *trusted_proxies;
    size_t ntrusted_proxies;
    int backlog;
    /* With initial set the server answers from it and from what is published later; it does
     * not read rules itself nor free them (the hooks' owner does). */
    const struct dt_ruleset *initial;
    uint64_t initial_load_ms; /* how long initial took to load (for the log) */
    struct dt_server_hooks hooks;
    const char *access_log;       /* NULL, or the combined-format access log's path */
    struct dt_listen_addr *admin; /* the admin listeners (hooks.admin answers) */
    size_t nadmin;
    struct dt_http_limits admin_limits;
    /* TLS: the certificate files and directory (read at start and on SIGHUP), the value of
     * Strict-Transport-Security sent over TLS (NULL: none; S9), and whether plain requests
     * for a host a certificate names get a 308 to https. */
    const char *const *certs;
    size_t ncerts;
    const char *cert_dir;
    const char *hsts;
    bool redirect_to_https;
    /* ACME (docs/acme.md): with acme_email set, certificates for every host the rules name,
     * from acme_directory (trusting acme_ca for its TLS when set), kept in acme_storage */
    const char *acme_email, *acme_directory, *acme_ca, *acme_storage;
    bool acme_on_demand; /* also names first seen in a ClientHello that host rules answer */
};

void dt_server_config_init(struct dt_server_config *c);

/* What ACME knows of one of its names (docs/acme.md). The strings live for the call. */
struct dt_acme_status {
    const char *name;
    const char *state;             /* "valid", "pending" (none yet) or "failing" */
    time_t not_before, not_after;  /* of its certificate; 0: none */
    const char *issuer;            /* its issuer's common name, or "" */
    const char *last_error;        /* of the last failed order, or "" */
    time_t last_attempt, next_try; /* 0: none */
    unsigned failures;             /* orders failed in a row */
};
struct dt_server;
/* Calls fn for every name ACME manages: false when ACME is off. Any thread. */
bool dt_server_acme_each(struct dt_server *s,
                         void (*fn)(void *ctx, const struct dt_acme_status *st), void *ctx);
/* Orders name's certificate again now (a failing one too, without waiting): false when
 * ACME is off or does not manage name. Any thread. */
bool dt_server_acme_renew(struct dt_server *s, const char *name);
/* The orders done and failed since the start: false when ACME is off. Any thread. */
bool dt_server_acme_counts(struct dt_server *s, uint64_t *ok, uint64_t *failed);

/* Loads the rules, opens the listeners, runs the workers and handles signals until SIGTERM
 * or SIGINT. Returns the process exit status: 0 after a clean stop, 2 when the rules do not
 * load, 1 when a listener cannot be opened. Call from the main thread, once. */
int dt_server_run(const struct dt_server_config *c);

/* ---- statistics ------------------------------------------------------------------------- */

/* Answers by status: the redirect statuses, 404, other 4xx (bad requests), 5xx. */
enum {
    DT_ST_301,
    DT_ST_302,
    DT_ST_303,
    DT_ST_307,
    DT_ST_308,
    DT_ST_404,
    DT_ST_4XX,
    DT_ST_5XX,
    DT_ST_COUNT
};
/* Answers by where the rule came from. */
enum { DT_SRC_FILES, DT_SRC_STORE, DT_SRC_NONE, DT_SRC_COUNT };
/* Time from reading a request to its answer being ready, in buckets with these upper bounds
 * (microseconds), then one for everything slower. */
#define DT_LATENCY_BUCKETS 10
extern const uint32_t dt_latency_bounds_us[DT_LATENCY_BUCKETS];

struct dt_server_stats {
    uint64_t status[DT_ST_COUNT];
    uint64_t source[DT_SRC_COUNT];
    uint64_t latency[DT_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_ns;
    uint64_t connections;                 /* accepted */
    uint64_t refused_max, refused_per_ip; /* closed at once: --max-connections(-per-ip) */
    uint64_t refused_fds;                 /* closed at once: out of file descriptors */
    uint64_t refused_proxy; /* a PROXY listener's: untrusted source, header missing or bad */
    uint64_t requests_h1, requests_h2, requests_tls; /* by protocol (TLS counts with h1/h2) */
    uint64_t connections_h2;
    uint64_t handshakes_full, handshakes_resumed;
    uint64_t handshakes_library;   /* of those, answered by the TLS library, not tls13.c */
    uint64_t handshakes_failed[6]; /* by enum dt_tls_failure of tls/tls.h */
};

/* The redirect workers' counters, summed. Any thread. */
void dt_server_get_stats(struct dt_server *s, struct dt_server_stats *out);
/* How many redirect workers dt_server_run starts for c (hit counters are per worker). */
unsigned dt_server_worker_count(const struct dt_server_config *c);

/* Makes rs what every worker answers from, then waits until no worker can still be using
 * the ruleset it replaces, and returns that one (the caller frees what it no longer needs).
 * Any thread but a worker's; callers serialise their publishes. */
const struct dt_ruleset *dt_server_publish(struct dt_server *s, const struct dt_ruleset *rs);

/* Calls fn for every name of the certificates in use, with the end of its validity. Any
 * thread but a worker's. */
void dt_server_each_cert(struct dt_server *s,
                         void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx);

/* Loads the rule files of c into a finished table; prints errors to stderr. Returns NULL
 * if any file has an error. Control thread. */
struct dt_table *dt_server_load_rules(const struct dt_server_config *c);

#endif
