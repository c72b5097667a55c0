/* internal: the admin module's private types: the live rule set (live.c), the API
 * (api.c, json.c, write.c, imports.c), the token (token.c) and the throttle of failed
 * tokens (throttle.c). Not part of any API. */
#ifndef DT_ADMIN_INTERNAL_H
#define DT_ADMIN_INTERNAL_H

#include "admin/admin.h"
#include "rules/rules.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* Changes since the store's table was built from which it is rebuilt, in the background: this
 * many, or one for every 64 rules of the table if more (a rebuild costs in proportion to the
 * table, so each change pays about the same share of it). */
#define DT_LIVE_MERGE_AT 1000
/* The newest changes go into a small table of their own (recent), rebuilt at each change;
 * past this many they are folded into the overlay, which holds every change since the store
 * table was built. A change thus costs a rebuild of at most this many rules, plus a share of
 * the overlay's rebuild. */
#define DT_LIVE_RECENT_MAX 64
/* A write changing more rules than this rebuilds the store's table before it answers;
 * fewer go into the overlay. */
#define DT_LIVE_OVERLAY_MAX 200000

/* An import of at least this many rules, into a store of at most four times as many, is
 * a bulk write (dt_store_bulk): below that, one put per rule costs less than reading every
 * rule of the store and rebuilding its whole table. */
#define DT_ADMIN_BULK_MIN 10000

/* A store rule changed since the store table was built: its rule line, or NULL when
 * removed. */
struct change {
    int64_t id;
    int64_t version;
    char *line;
    bool recent; /* in the recent table, not (or not as it is now) in the overlay */
};

/* The rules being served and how they change. Every field is guarded by mu. */
struct live {
    pthread_mutex_t mu;
    struct dt_server *srv; /* NULL until the server runs */
    const struct dt_server_config *cfg;
    struct dt_store *store;
    struct dt_table *files;   /* the rule files' rules */
    struct dt_table *store_t; /* the store's rules as of store_version */
    int64_t store_version;
    struct change *changes; /* since store_version, sorted by id */
    size_t nchanges, cap_changes;
    struct dt_table *overlay; /* the changed rules that exist, as of the last fold */
    uint64_t *hidden;         /* store_t's rules that were changed or removed */
    struct dt_table *recent;  /* the changes since the last fold that exist */
    uint64_t *hidden_overlay; /* overlay rules changed again since */
    struct dt_hits *files_hits, *store_hits, *overlay_hits, *recent_hits; /* per table */
    unsigned nworkers;
    const struct dt_ruleset *current; /* what the workers answer from */
    uint64_t merges, publishes, reloads, reload_failures;
    uint64_t last_publish_us;     /* server time of the last publish */
    int64_t next_due;             /* the next promotion (promote-after=); 0: look */
    struct dt_store *merge_store; /* the merge thread's own connection (NULL: merge
                                     in the caller's thread, as for :memory:) */
    pthread_t merge_thread;
    bool merging, merge_joinable, closing;
    atomic_bool merge_moot; /* the merge in flight will not be installed: it stops
                               (read by the merge thread without mu) */
    int64_t merge_version;
};

/* A store rule's fields as the rule codec reads them: its options parsed, and since= as
 * promotions count it (a 307's since, a 302's last change). Spans point into r. Returns 0,
 * or DT_ESYNTAX with d (options no write would have stored). */
int dt_live_spec(const struct dt_store_rule *r, struct dt_rule_spec *s, struct dt_diag *d);
/* The rule line of a store rule, as the table reads it (malloc'd): the codec's format of
 * dt_live_spec. */
char *dt_live_line(const struct dt_store_rule *r);
/* Builds a finished table of the store's rules of version (0: newest; inside a transaction,
 * its view) in order of id, each with line = id, under a file named "store". NULL with err
 * set when a rule does not load. */
struct dt_table *dt_live_store_table(struct dt_store *s, int64_t version, struct dt_buf *err);
/* A finished table of rules (in order of id), each with line = id, under a file named
 * "store" (a rule that does not load is left out and logged). With from, rules[i] with
 * from[i] >= 0 are added from specs[from[i]], the rule they were made from, rather than
 * from their rule line (as dt_store_bulk says); one of those that does not load is passed
 * to bad (if not NULL) instead of being logged. */
struct dt_table *dt_live_table_of(const struct dt_store_rule *rules, size_t n, const int64_t *from,
                                  const struct dt_rule_spec *specs,
                                  void (*bad)(void *ctx, int64_t from, const struct dt_diag *d),
                                  void *bad_ctx);
/* Adds the store's rules of version to an unfinished table (as dt_live_store_table). */
int dt_live_fill_store(struct dt_table *t, struct dt_store *s, int64_t version, struct dt_buf *err);

/* The rule files' table (an empty one without files), or NULL when a file does not load
 * (the errors are logged). */
struct dt_table *dt_live_load_files(const struct dt_server_config *cfg);
/* Starts serving files (taken over) and the store's rules. */
int dt_live_init(struct live *l, const struct dt_server_config *cfg, struct dt_store *store,
                 const char *db_path, struct dt_table *files, struct dt_buf *err);
void dt_live_dispose(struct live *l);
/* What the rule set would be with a transaction's changes: changes c (in order of id) added
 * to the recent table and the hidden bitmaps (all folded into a new overlay once there are
 * more than DT_LIVE_RECENT_MAX recent ones), or with whole, the store's table rebuilt from
 * the transaction's view. rs answers as the workers would once it is installed. Caller holds
 * mu from before the preview until it is installed or disposed. */
struct dt_live_preview {
    bool whole;
    struct dt_table *store_t, *overlay, *recent;
    bool own_overlay; /* overlay is new (a fold), not the one in use */
    uint64_t *hidden, *hidden_overlay;
    struct change *changes; /* the lines of l's changes are shared, not copied */
    size_t nchanges;
    bool *fresh;     /* changes[i] is one of the preview's own (its line is owned) */
    char **replaced; /* lines of l's changes superseded, freed on install */
    size_t nreplaced;
    struct dt_ruleset rs;
};
int dt_live_preview(struct live *l, const struct change *c, size_t n, bool whole,
                    struct dt_live_preview *pv, struct dt_buf *err);
/* A preview of t (taken over) as the whole store table, with no changes. */
void dt_live_preview_table(struct live *l, struct dt_table *t, struct dt_live_preview *pv);
/* After the commit that made version: publishes the preview (consumed). */
void dt_live_install(struct live *l, struct dt_live_preview *pv, int64_t version);
void dt_live_preview_dispose(struct dt_live_preview *pv);
/* After a commit: the changes of the committed transaction (collected with
 * dt_store_pending before the commit) become visible; returns once every worker sees them.
 * Caller holds mu. */
void dt_live_apply(struct live *l, const struct change *c, size_t n);
/* Rebuilds the store table from the store and publishes it (after large changes, and when
 * the overlay has grown). Caller holds mu. Returns 0 or an error with err. */
int dt_live_merge(struct live *l, struct dt_buf *err);
/* A write that replaces the store's table is coming: a merge in flight stops reading (its
 * table would not be installed). Caller holds mu. */
void dt_live_moot_merge(struct live *l);
/* The server is stopping: waits for a merge in flight and starts no other. Takes mu. */
void dt_live_stop(struct live *l);
/* SIGHUP: the rule files again (a bad file keeps the rules in use). Takes mu. */
void dt_live_reload(struct live *l);
/* Publishes a ruleset made of the current tables. Caller holds mu. */
void dt_live_publish(struct live *l);
/* The store ids of rules whose promote-after= has come by now (malloc'd in *ids), or 0
 * before the next one is due. Caller holds mu. */
size_t dt_live_due(struct live *l, time_t now, int64_t **ids);
/* A store rule's hits (store table and overlay) and last hit. Caller holds mu. */
uint64_t dt_live_hits(const struct live *l, int64_t id, uint32_t *last);

/* ---- token.c ---- */

/* Reads the token from path, or creates path (mode 0600) with a new random token and says so
 * once on stderr. Returns 0 with the token in out (NUL-terminated), or an error with err. */
int dt_admin_token_load(const char *path, char *out, size_t cap, struct dt_buf *err);
/* Constant-time check of an Authorization value against "Bearer TOKEN". */
bool dt_admin_token_ok(struct dt_str authorization, const char *token);

/* ---- throttle.c: failed tokens slowed down per client address ------------------------------
 *
 * After limit failed tokens in a row from one address (an IPv6 address's /64), each further
 * failure holds the address back: its requests are answered 429 with Retry-After, unread,
 * for 1 s after the first such failure, doubling with each failure after a hold, up to 60 s.
 * A good token from the address, or 10 minutes without a failure (and no hold), forget its
 * failures. Unix sockets ("unix") are not throttled: their clients have no address to tell
 * them apart, and the socket's permissions say who may connect. At most 4,096 addresses are
 * tracked (then the one quiet for longest is dropped). Times are monotonic milliseconds
 * from the caller. Admin thread only. */

#define DT_THROTTLE_LIMIT 5 /* the default of --admin-auth-failures */
#define DT_THROTTLE_FIRST_HOLD_MS 1000
#define DT_THROTTLE_MAX_HOLD_MS 60000
#define DT_THROTTLE_FORGET_MS (10 * 60 * 1000)
#define DT_THROTTLE_ADDRESSES 4096

struct throttle_addr {
    unsigned char key[16]; /* IPv4 (4 bytes) or an IPv6 /64 (8) */
    uint8_t len;
    uint32_t failures;          /* failed tokens in a row */
    uint64_t last_ms, until_ms; /* the last failure; held back until then */
};

struct dt_admin_throttle {
    unsigned limit; /* failed tokens in a row before a hold; 0: never held */
    struct throttle_addr *addrs;
    size_t n, cap;
};

void dt_admin_throttle_init(struct dt_admin_throttle *t, unsigned limit);
void dt_admin_throttle_dispose(struct dt_admin_throttle *t);
/* Before a request's token is looked at: how many ms more peer is held back (0: not held;
 * answer the request). */
uint64_t dt_admin_throttle_wait(struct dt_admin_throttle *t, const char *peer, uint64_t now_ms);
/* A failed token from peer at now_ms: returns the hold it starts (0: none), and sets
 * *failures (may be NULL) to the address's failures in a row. */
uint64_t dt_admin_throttle_failed(struct dt_admin_throttle *t, const char *peer, uint64_t now_ms,
                                  uint32_t *failures);
/* A good token from peer: its failures are forgotten. */
void dt_admin_throttle_passed(struct dt_admin_throttle *t, const char *peer);
/* How many addresses are held back at now_ms. */
size_t dt_admin_throttle_held(const struct dt_admin_throttle *t, uint64_t now_ms);

/* ---- the API (api.c: routing and endpoints; json.c: replies, query strings, rules as
 * JSON; write.c: the write pipeline and a bulk import's rows; imports.c: POST /api/import).
 * Admin thread only, but for the settle thread's dt_admin_settle_on. ---------------------- */

#define PAGE_DEFAULT 100
#define PAGE_MAX 10000
#define ERRORS_SHOWN 100

struct admin {
    struct live live;
    struct dt_store *store;
    const struct dt_admin_options *opt;
    const struct dt_server_config *cfg;
    char token[256];
    time_t started;
    time_t now;      /* the request being answered's (or the tick's) time: every date decision's */
    uint64_t now_ms; /* the request being answered's monotonic time: the throttle's */
    uint64_t requests, writes, refused_auth, errors;
    struct dt_admin_throttle throttle;
    uint64_t throttled;    /* requests answered 429 by the throttle */
    int64_t store_count;   /* the store's rules, kept by every commit (health, metrics) */
    int64_t old_temporary; /* the last count of S10 rules (metrics); -1: none yet */
    /* The rows of a bulk import are written after its answer by a thread of their own, on a
     * connection of their own (NULL for :memory:, where the admin thread's tick does it):
     * meanwhile every request that reads or writes rules waits for it, the others (health,
     * metrics, match) are answered. */
    struct dt_store *settle_store;
    pthread_t settle_thread;
    atomic_bool settling; /* the thread runs */
    bool settle_joinable; /* it was started and not joined (admin thread only) */
};

/* The admin whose request is being answered: dt_admin_rule_json adds hit counts from its
 * live rule set (NULL otherwise). */
extern struct admin *dt_admin_answering;

/* A rule being written: its fields as text, and the line they make. */
struct rule_in {
    char source[8300], target[8300], note[1024];
    int status;
    bool query_drop;
    int64_t cache; /* -1: none */
    bool has_from, has_until;
    time_t from, until;
    int64_t promote_after; /* seconds; 0 for none */
    struct dt_buf options;
};

/* What an open write changes: the store's changes (for the live rule set) and their diff. */
struct pending {
    json_t *added, *changed, *removed;
    struct change *ch;
    size_t n, cap;
    int64_t *ids; /* every changed id, in order */
    size_t nids, cap_ids;
    bool diff; /* build the JSON diff */
    int64_t nadded, nchanged, nremoved;
};

/* json.c: replies, the query string, rules as JSON, a rule being written */
void dt_admin_reply_json(struct dt_admin_reply *rep, int status, json_t *j);
void dt_admin_reply_error(struct dt_admin_reply *rep, int status, const char *field,
                          const char *fmt, ...) DT_PRINTF(4, 5);
json_t *dt_admin_time_json(int64_t t);
bool dt_admin_query_get(struct dt_str q, const char *key, char *out, size_t cap);
bool dt_admin_query_known(struct dt_admin_reply *rep, struct dt_str q, const char *allowed);
bool dt_admin_query_flag(struct dt_str q, const char *key);
bool dt_admin_query_int(struct dt_admin_reply *rep, struct dt_str q, const char *key, int64_t min,
                        int64_t max, int64_t *out);
json_t *dt_admin_rule_json(const struct dt_store_rule *r);
int dt_admin_collect_rule(void *ctx, const struct dt_store_rule *r);
int dt_admin_get_rule(void *ctx, const struct dt_store_rule *r);
void dt_admin_rule_in_init(struct rule_in *in);
int dt_admin_rule_in_from_store(void *ctx, const struct dt_store_rule *r);
bool dt_admin_rule_in_apply(struct rule_in *in, json_t *obj, bool full, struct dt_admin_reply *rep);
void dt_admin_options_text(struct dt_buf *out, const struct dt_rule_spec *s);
bool dt_admin_rule_in_check(struct rule_in *in, struct dt_admin_reply *rep);
struct dt_store_rule dt_admin_rule_in_store(const struct rule_in *in);

/* write.c: one transaction, diff, lint, commit, publish; a bulk import's rows */
void dt_admin_settle_on(struct dt_store *s, const char *retry);
void dt_admin_start_settle(struct admin *a);
void dt_admin_wait_settle(struct admin *a);
int dt_admin_collect_change(void *ctx, const struct dt_store_change *c);
void dt_admin_pending_dispose(struct pending *p);
void dt_admin_commit_write(struct admin *a, struct dt_admin_reply *rep, struct pending *p,
                           struct dt_live_preview *pv, bool refuse_errors, bool force, int status,
                           json_t *extra, int64_t rule_id);
void dt_admin_finish_write(struct admin *a, struct dt_admin_reply *rep, bool dry_run,
                           bool refuse_errors, bool force, int status, json_t *extra,
                           int64_t rule_id);
bool dt_admin_begin(struct admin *a, struct dt_admin_reply *rep, const char *actor);

/* imports.c: POST /api/import */
/* 405 with Allow unless method m is one of the space-separated allowed: false then. */
bool dt_admin_method_in(struct dt_admin_reply *rep, struct dt_str m, const char *allowed);

/* certs.c: ACME's certificates. GET /api/certificates, POST /api/certificates/NAME/renew;
 * the "acme" section of health (and "degraded" while a name fails) into j; the
 * detour_acme_* metrics into b at now. Nothing when ACME is off. */
void dt_admin_certificates(struct admin *a, const struct dt_admin_request *req,
                           struct dt_admin_reply *rep);
void dt_admin_acme_health(struct dt_server *srv, json_t *j);
void dt_admin_acme_metrics(struct dt_buf *b, struct dt_server *srv, time_t now);

void dt_admin_import_rules(struct admin *a, const struct dt_admin_request *req,
                           struct dt_admin_reply *rep);

#endif
