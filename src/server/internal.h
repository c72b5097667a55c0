/* internal: the server's private types, shared by its control thread (server.c), its
 * worker loop (worker.c) and its connections (conn.c). Not part of any API. */
#ifndef DT_SERVER_INTERNAL_H
#define DT_SERVER_INTERNAL_H

#include "server/server.h"
#include "tls/tls.h"

#include <pthread.h>
#include <stdatomic.h>

/* What an epoll event's pointer points at: every such struct starts with its tag. */
enum { TAG_LISTENER = 1, TAG_WAKE, TAG_CONN };

/* Timer lists. Each holds connections whose deadline is now plus one constant, so appending
 * keeps a list sorted and expiry only looks at heads. */
enum { TL_NONE, TL_HEADER, TL_IDLE, TL_LINGER, TL_COUNT };

struct conn;

#define DT_SERVER_RBUF (16 * 1024) /* a worker's read buffer (struct worker's rbuf) */

struct tlist {
    struct conn *head, *tail;
};

/* What a listener's connections answer (as h2o's handlers). conn.c reads, parses, sends and
 * keeps connections alive; a handler decides what each request gets, writing its answer with
 * conn_out. The redirect handler answers at the head; the admin API's waits for the content.
 * The ACME challenge responder and the console's assets are handlers too. */
struct handler {
    const char *name;
    bool metrics; /* its answers count in the redirect metrics (statuses, latency) */
    /* A connection starts, or ends (with all, for good: its state too). May be NULL. The
     * state a handler keeps per connection is in c->hstate, kept for the next connection
     * of the same handler that reuses the struct. */
    void (*init)(struct conn *c);
    void (*release)(struct conn *c, bool all);
    /* A request head arrived: answer it, or keep what it needs and set c->awaiting: done
     * is called once its content is whole (an error before that is answered by conn). */
    void (*head)(struct conn *c, const struct dt_request *req);
    void (*done)(struct conn *c);
    bool h2; /* answers HTTP/2 too (head alone: no awaited content) */
};

extern const struct handler dt_handler_redirect; /* redirect.c */
extern const struct handler dt_handler_admin;    /* adminhttp.c */

struct listener {
    uint8_t tag;
    int fd;
    bool paused; /* out of file descriptors: accepting again after a pause */
    bool tls;
    bool proxy;  /* a PROXY protocol header first (from a trusted source) */
    bool shared; /* one inherited socket for every worker (socket activation) */
    const struct handler *handler;
};

struct dt_server;

struct worker {
    /* Quiescent-state counter, alone on its cache line: odd while the worker holds no
     * reference to a rule table (waiting in epoll), even while it does. */
    _Alignas(64) _Atomic uint64_t qs;
    _Alignas(64) uint8_t wake_tag;
    unsigned id;
    pthread_t thread;
    int epfd;
    int wakefd;   /* eventfd: the control thread asks the worker to stop */
    int spare_fd; /* /dev/null, kept to be closed when accept runs out of descriptors */
    struct dt_server *srv;
    struct listener *listeners;
    size_t nlisteners;
    struct dt_buf out;   /* responses of one batch, before they are sent */
    struct dt_buf h2out; /* one HTTP/2 answer as the handler writes it (h2.c) */
    /* Where a connection with nothing buffered reads (conn.c): what a read leaves of an
     * unfinished request moves to the connection's own buffer, so that a connection
     * waiting for its next request holds no buffer at all. */
    char *rbuf;
    struct tlist timers[TL_COUNT];
    uint64_t timeout_ms[TL_COUNT];
    uint64_t now_ms;
    time_t now_s;
    time_t date_s;
    char date[29]; /* IMF-fixdate of date_s */
    struct conn *free_conns;
    size_t nconns;
    bool stopping;
    uint64_t stop_deadline_ms;
    uint64_t accept_resume_ms;
    /* Counters only this worker writes (relaxed stores), others read. */
    _Alignas(64) struct dt_server_stats stats;
    struct dt_buf alog; /* access log lines not yet handed over */
    uint32_t alog_lines;
    time_t alog_stamp_s, alog_flushed_s;
    char alog_stamp[32];                 /* "24/Nov/2026:18:00:00 +0000" of alog_stamp_s */
    bool admin;                          /* the admin thread: whole requests, hooks.admin */
    const struct dt_http_limits *limits; /* for its connections' parsers */
    time_t tick_s;                       /* the admin thread: when hooks.tick last ran */
};

struct dt_server {
    const struct dt_server_config *cfg;
    _Atomic(const struct dt_ruleset *) rules;
    struct worker *workers; /* the redirect workers */
    unsigned nworkers;
    struct worker *admin; /* the admin thread's loop, or NULL */
    struct dt_alog *alog; /* the access log, or NULL */
    atomic_bool stopping;
    /* The certificates: workers read the pointer as they accept (a replaced set is released
     * once every worker has passed a quiet point); other threads take tls_lock. */
    _Atomic(struct dt_tls_set *) tls;
    pthread_mutex_t tls_lock;
    struct dt_str hsts;    /* "Strict-Transport-Security: ...\r\n", or empty */
    struct acme_mgr *acme; /* automatic certificates (acme.c), or NULL */
    /* --max-connections and --max-connections-per-ip (limits.c) */
    _Atomic unsigned long open_conns;
    struct ip_counts *ips;
    char https_port[8]; /* ":8443" for a Location to https, "" for 443 */
};

struct conn {
    uint8_t tag;
    uint8_t tlist;     /* which timer list it is on */
    bool registered;   /* added to epoll */
    bool close_after;  /* close once the pending output is sent */
    bool dirty_close;  /* the client may still be sending: linger before closing */
    bool want_out;     /* EPOLLOUT is armed */
    bool head_timer;   /* the header timer runs for the request now arriving */
    bool lingering;    /* write side shut: reading and dropping until EOF or timeout */
    bool read_blocked; /* too much unsent output: reading paused */
    bool eof;          /* the client shut its write side */
    bool awaiting;     /* the handler answers once the request's content is whole */
    bool tls_ready;    /* its TLS handshake is done (and counted) */
    bool tls_read_out; /* a TLS read waits for the socket to be writable */
    bool h2_answering; /* h2.c has the handler write into the worker's h2out */
    bool counted;      /* in the server's open connections (limits.c) */
    bool in_borrowed;  /* in is the worker's rbuf, not its own */
    bool await_proxy;  /* its PROXY protocol header has not come yet */
    uint64_t ip_key;   /* its address's key in the per-address counts, or 0 */
    int fd;
    uint32_t served; /* requests answered */
    struct worker *w;
    struct conn *tprev, *tnext;
    uint64_t deadline;
    char *in; /* NULL while nothing is buffered, or the worker's rbuf during a read */
    uint32_t in_len, in_cap;
    struct dt_buf pending; /* output not yet accepted by the socket */
    size_t pending_off;
    struct dt_http_parser parser;
    const struct handler *h;
    struct dt_tls_conn *tls; /* NULL on a plain connection */
    struct h2 *h2;           /* HTTP/2 (h2.c), or NULL for HTTP/1.1 */
    void *hstate;            /* the handler's, per connection */
    char peer[48];           /* the client's address, with an access log */
};

/* Adds one to a counter only the calling worker writes. */
#define STAT_ADD(field, n)                                                                         \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/* accesslog.c */
struct dt_alog *dt_alog_open(const char *path);
void dt_alog_close(struct dt_alog *a);
void dt_alog_reopen(struct dt_alog *a);
void dt_alog_submit(struct dt_alog *a, struct dt_buf *b, uint32_t lines);
uint64_t dt_alog_dropped(struct dt_alog *a);
/* Formats one line into the worker's buffer (handed over when full). */
void dt_alog_line(struct worker *w, const struct conn *c, const struct dt_request *req, int status,
                  size_t bytes);
/* Hands the worker's buffered lines to the log thread. */
void dt_alog_flush(struct worker *w);

/* h2.c: HTTP/2 on a connection. */
#define DT_H2_PREFACE_LEN 24
extern const char dt_h2_preface[DT_H2_PREFACE_LEN]; /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
/* Makes c an HTTP/2 connection (its SETTINGS queued). False if out of memory. */
bool dt_h2_start(struct conn *c);
void dt_h2_free(struct conn *c);
/* Reads c->in (all of it), answers the requests whole, and writes the frames to send;
 * sets c->close_after when the session is over. */
void dt_h2_input(struct conn *c);

/* worker.c */
void *dt_worker_main(void *arg);

/* Answers a connection refused at once: 503 with Connection: close on plain HTTP (what
 * arrived read first), nothing over TLS. The caller closes fd. */
void worker_refuse(int fd, bool tls);
/* Refuses c, beyond the limit limits_take said (1 or 2, counted), and closes it. */
void worker_refuse_conn(struct conn *c, bool tls, int over);
/* The address of ss as text (for the access log). */
void worker_peer_name(const struct sockaddr_storage *ss, char *out, size_t len);

/* timer.c */
/* Puts c on a timer list with the deadline now + that list's timeout (moving it to the
 * tail if it is on one). */
void timer_set(struct conn *c, int list);
void timer_unlink(struct conn *c);
/* The earliest deadline of w's connections (milliseconds of dt_now_ms), or UINT64_MAX. */
uint64_t timer_earliest(const struct worker *w);

/* conn.c */
struct conn *conn_new(struct worker *w, int fd, const struct handler *h, struct dt_tls_set *tls);
/* Where a handler writes an answer: after output still waiting for the socket, or into the
 * worker's batch. */
struct dt_buf *conn_out(struct conn *c);
void conn_start(struct conn *c);
void conn_event(struct conn *c, uint32_t events);
void conn_expire(struct conn *c, int list);
void conn_close(struct conn *c);
void conn_shutdown_idle(struct conn *c);
/* A PROXY listener's connection: reads its header (and nothing more) from the socket, then
 * counts it in the limits by the client's address. Returns 1 when it is done (the
 * connection goes on), 0 when more must come, -1 when the connection was refused and
 * closed. */
int conn_proxy_header(struct conn *c);

/* notify.c: tells systemd (sd_notify(3): READY=1, RELOADING=1, STOPPING=1) when
 * $NOTIFY_SOCKET names its socket; nothing otherwise. Main thread. */
void dt_server_notify(const char *state);

/* limits.c: --max-connections and --max-connections-per-ip */
/* Counts a new connection from ss (NULL when not known): 0 when it may stay, else the
 * limit it passes (1: the total, 2: its address's); c's fields say what to give back. */
int limits_take(struct dt_server *s, struct conn *c, const struct sockaddr_storage *ss);
/* Gives back what limits_take counted for c. */
void limits_give(struct dt_server *s, struct conn *c);
void limits_free(struct dt_server *s);

/* acme.c: automatic certificates */
/* The storage directory (mode 700) with its placeholder certificate, before the
 * certificates are first loaded: false (logged) if it cannot be made. */
bool acme_prepare_storage(const struct dt_server_config *c);
/* Starts the ACME thread (s->acme): false (logged) if it cannot. */
bool acme_start(struct dt_server *s);
/* Ends an order in progress and joins the thread (the workers may still call in). */
void acme_stop(struct dt_server *s);
/* Then, once the workers are stopped: frees s->acme. */
void acme_free(struct dt_server *s);
/* The hosts rs's rules name, for the ACME thread (rs held by the caller). */
void acme_rules(struct dt_server *s, const struct dt_ruleset *rs);
/* HTTP-01: the key authorization of token appended to out; false if none is published. Any
 * thread. */
bool acme_http01(struct dt_server *s, struct dt_str token, struct dt_buf *out);

/* server.c */
/* The certificates read again (as on SIGHUP); a set that does not load keeps the one in
 * use. Any thread. */
void dt_server_reload_certs(struct dt_server *s);

#endif
