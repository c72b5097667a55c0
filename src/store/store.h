/* store: rules kept by the admin API, in SQLite (the embedded default).
 *
 * The store knows rules as text: a canonical source, a target, a status, and the options in
 * rule-file syntax ("query=drop cache=60 until=2026-12-01T06:00:00Z"). It does not parse them;
 * the caller (the admin API) checks every rule with the rules module before it is written.
 *
 * Every write transaction is one numbered version of the rule set. A rule's rows are never
 * updated in place: a change closes the current row (v_to = the version) and adds a new one
 * (v_from = the version), so every version can be read back, diffed and rolled back to, and
 * the rows together with the versions table are the audit trail: when, who, what, old and
 * new value.
 *
 * Durability: WAL journal, synchronous=FULL. When dt_store_commit returns 0 the version is on
 * disk and survives kill -9 and power loss.
 *
 * One thread at a time per struct dt_store (the admin thread).
 *
 * Errors: a function with an err argument appends a message to it (NUL-terminated) when it
 * fails; every failure's message is also kept for dt_store_error. A callback may call
 * dt_store_get, dt_store_find (not from their own callbacks), dt_store_version,
 * dt_store_count and dt_store_error; any other call from a callback fails with DT_EINVAL
 * (dt_store_abort does nothing). */
#ifndef DT_STORE_H
#define DT_STORE_H

#include "base/base.h"

/* One rule of the store. In callbacks, the strings belong to the store and are valid only
 * during the call. */
struct dt_store_rule {
    int64_t id;         /* stable across versions; > 0; never reused */
    const char *source; /* canonical source, unique among the rules of one version */
    const char *target;
    int status;          /* 301, 302, 303, 307, 308 */
    const char *options; /* KEY=VALUE... in rule-file syntax, "" for none */
    const char *note;    /* free text, "" for none */
    int64_t created;     /* unix seconds: when the rule (this id) was first written */
    int64_t updated;     /* when it was last changed */
    int64_t since;       /* S10: since when it has answered 307 (0 when it does not) */
    int64_t version;     /* the version that wrote this row */
};

/* A version of the rule set: one write transaction. */
struct dt_store_version {
    int64_t version;
    int64_t at;          /* unix seconds */
    const char *actor;   /* who: "api", "import", "rollback", "lifecycle", ... */
    const char *comment; /* "" for none */
    int64_t added, changed, removed;
};

/* One change of one rule, for history and diffs. kind is "added", "changed" or "removed";
 * old is NULL for "added", new NULL for "removed". */
struct dt_store_change {
    int64_t version;
    int64_t at;
    const char *actor;
    const char *kind;
    const struct dt_store_rule *old_rule;
    const struct dt_store_rule *new_rule;
};

struct dt_store;

/* The longest source, target, options, note, actor, comment or search text (DT_ELIMIT). */
#define DT_STORE_TEXT_MAX 65536

/* What the store needs of the rule grammar, which it does not know: the host a rule's source
 * names, lower-cased into out (room for cap bytes), as its length; 0 for a source for any
 * host (or one longer than cap). Given by the opener (the rule codec's dt_rule_source_host);
 * it decides dt_store_query.host. */
typedef size_t (*dt_store_host_fn)(const char *source, char *out, size_t cap);

/* Opens the store at path with its backend: a SQLite file (created if needed; WAL,
 * synchronous=FULL, its schema brought to the current version in one transaction), or,
 * for "postgresql://..." (a store several servers share), PostgreSQL. host_of may be NULL
 * (no rule has a host then). Returns NULL with a message in err (which names the path). */
struct dt_store *dt_store_open(const char *path, dt_store_host_fn host_of, struct dt_buf *err);
/* Closes the store (aborting an open transaction); s may be NULL. */
void dt_store_close(struct dt_store *s);
/* The message of the last failure of any call on s ("" before the first), for the calls that
 * take no err argument. Valid until the next call. */
const char *dt_store_error(const struct dt_store *s);

/* The newest committed version (0 for a new, empty store), or a negative DT_E* code. */
int64_t dt_store_version(struct dt_store *s);
/* The number of rules in the newest version (in the open transaction: as it stands), or a
 * negative DT_E* code. */
int64_t dt_store_count(struct dt_store *s);
/* Waits, at most timeout_ms, for a version newer than after, committed by any connection to
 * the store (another thread's, another process's, another server's): returns 1 with
 * *version the newest, 0 when none came in time, or a negative DT_E* code. Not inside a
 * transaction (DT_EINVAL). How a server sharing its store learns of the others' writes. */
int dt_store_wait(struct dt_store *s, int64_t after, int timeout_ms, int64_t *version);

/* Copies the store at path to dest while a server may be writing to it: a copy of one
 * committed version (set in *version, which may be NULL), read in a single read transaction
 * of a connection of its own (read-only; in WAL mode the writer goes on meanwhile) with
 * SQLite's online backup, into a new file beside dest that is synced and then renamed over
 * dest, so that dest is never half written: it is the old file or the whole copy. Returns 0,
 * or with a message in err: DT_EINVAL (a PostgreSQL store: pg_dump is its tool; :memory:; dest
 * is the store itself; not a detour store), DT_ENOENT (no file at path), DT_EEXIST (a -wal
 * or -shm file beside dest: a database in use there), DT_EIO. Any thread. */
DT_MUST_CHECK int dt_store_backup(const char *path, const char *dest, int64_t *version,
                                  struct dt_buf *err);

/* ---- writing: one transaction is one version ------------------------------------------------ */

/* Starts a write transaction that becomes version dt_store_version() + 1 when committed.
 * now is the time recorded for it and for every rule row it writes. Waits up to 5 s for
 * another writer of the same file (then DT_EIO). DT_EINVAL when one is already open. Every
 * write below fails with DT_EINVAL outside a transaction; a write that fails with DT_EIO
 * half-way leaves a transaction that can only be aborted. */
DT_MUST_CHECK int dt_store_begin(struct dt_store *s, int64_t now, const char *actor,
                                 const char *comment, struct dt_buf *err);
/* Commits: returns 0 once durable and sets *version (may be NULL); a transaction that
 * changed nothing commits no version and sets *version to the current one. Errors: DT_EIO
 * (the transaction is then rolled back and over), DT_EINVAL (none open). */
DT_MUST_CHECK int dt_store_commit(struct dt_store *s, int64_t *version, struct dt_buf *err);
/* Abandons the transaction: nothing of it remains (ids it handed out may be given again).
 * Does nothing without one. */
void dt_store_abort(struct dt_store *s);

/* Inside a transaction. r->id, created, updated, since and version are ignored on input.
 * Adds a rule; sets *id. DT_EEXIST when a rule with the same source exists. */
DT_MUST_CHECK int dt_store_add(struct dt_store *s, const struct dt_store_rule *r, int64_t *id,
                               struct dt_buf *err);
/* Replaces rule id with r (same id, created kept; since kept while it stays 307, set to now
 * when it becomes 307, 0 otherwise). A rule identical to the current one is not a change.
 * DT_ENOENT: no such rule; DT_EEXIST: another rule has r's source. */
DT_MUST_CHECK int dt_store_replace(struct dt_store *s, int64_t id, const struct dt_store_rule *r,
                                   struct dt_buf *err);
/* Adds r, or replaces the current rule with r's source by r (as dt_store_replace), in one
 * lookup; sets *id to the rule's id, and *again (may be NULL) when that rule's current row was
 * written by this transaction (the source was put before). A NULL r->note keeps the note of
 * the rule replaced ("" for a new one). */
DT_MUST_CHECK int dt_store_put(struct dt_store *s, const struct dt_store_rule *r, int64_t *id,
                               bool *again, struct dt_buf *err);
/* Removes rule id. DT_ENOENT: no such rule. */
DT_MUST_CHECK int dt_store_remove(struct dt_store *s, int64_t id, struct dt_buf *err);
/* Makes the rule set what it was at version (every rule of that version back with its id,
 * every other rule removed; 0 is the empty set before the first version). A rule that comes
 * back or changes is a change like any other: created kept, updated and since as for
 * dt_store_replace (since is now for a 307 that was absent). DT_ENOENT: no such version. */
DT_MUST_CHECK int dt_store_rollback(struct dt_store *s, int64_t version, struct dt_buf *err);

/* Every change made so far by the open transaction (its net effect: a rule added and
 * removed again is no change), in order of rule id. Returns 0, the callback's non-zero value
 * (which stops the walk), or DT_EINVAL without a transaction. */
typedef int (*dt_store_change_fn)(void *ctx, const struct dt_store_change *c);
int dt_store_pending(struct dt_store *s, dt_store_change_fn fn, void *ctx);

/* ---- bulk writes: a large import, answered before its rows are written --------------------
 *
 * Writing a million rule rows (each closing the old row of its rule and adding a new one,
 * with their indexes) takes seconds; a bulk write does its work in memory instead and
 * commits the version (its versions row, with what changed) together with one compact
 * record of the changes, written sequentially. The commit is durable like any other: the
 * rows are written from that record afterwards, by dt_store_settle, and by the first call
 * that reads or writes rules before then (a store opened with a record left, after a crash,
 * settles it while opening). Until then the record is the version's only trace besides its
 * versions row; readers on other connections see the versions before it as they were. */

/* The rule set a bulk write makes. */
struct dt_store_bulk {
    struct dt_store_rule *rules; /* every rule of the new version, in order of id, as stored */
    int64_t *from;               /* the index in the write's rules of the one whose content
                                    rules[i] has (it was added or changed), or -1 for a rule
                                    the write left as it was */
    size_t n;
    int64_t added, changed_count, removed;
    void *_mem; /* the strings of the unchanged rules */
};

/* Inside a transaction that has written nothing yet: what dt_store_put of each of rules in
 * order would do (a source given twice: the last one's content, under the id of the first;
 * a NULL note keeps the note of the rule replaced) and, with replace, dt_store_remove of
 * every rule whose source is not among them. The rows are written after dt_store_commit (see
 * above); any other write in the same transaction then fails with DT_EINVAL, and
 * dt_store_pending with it. Fills out (disposed by dt_store_bulk_dispose) with the rule set
 * of the new version; its strings for rules of rules are those of rules (which must stay
 * valid while out is used). Errors: DT_EINVAL or DT_ELIMIT for a bad rule (nothing is
 * written: the transaction goes on), DT_EIO. */
DT_MUST_CHECK int dt_store_bulk(struct dt_store *s, const struct dt_store_rule *rules, size_t n,
                                bool replace, struct dt_store_bulk *out, struct dt_buf *err);
void dt_store_bulk_dispose(struct dt_store_bulk *b);
/* Writes the rows of committed bulk writes, if any (those of other connections to the same
 * file too: another thread may settle what this one committed, on a connection of its own).
 * Returns 0, DT_EINVAL inside a transaction or a callback, DT_EIO. */
int dt_store_settle(struct dt_store *s, struct dt_buf *err);
/* True when this connection committed a bulk write whose rows are not written yet. */
bool dt_store_unsettled(const struct dt_store *s);

/* ---- reading (inside or outside a transaction: a transaction sees its own writes) ---------- */

typedef int (*dt_store_rule_fn)(void *ctx, const struct dt_store_rule *r);

/* Rule id of the newest version (or of the open transaction). DT_ENOENT when absent. */
DT_MUST_CHECK int dt_store_get(struct dt_store *s, int64_t id, dt_store_rule_fn fn, void *ctx);
/* The rule whose source is source. DT_ENOENT when absent. */
DT_MUST_CHECK int dt_store_find(struct dt_store *s, const char *source, dt_store_rule_fn fn,
                                void *ctx);
/* Every rule of version (0: the newest, or the open transaction's view), in order of id.
 * Returns 0, DT_ENOENT for a version that does not exist, or the callback's non-zero value. */
int dt_store_each(struct dt_store *s, int64_t version, dt_store_rule_fn fn, void *ctx);

/* A page of the newest rules, in order of id. Filters left NULL/0 are off. */
struct dt_store_query {
    const char *text; /* substring of source, target or note (ASCII case ignored) */
    const char *host; /* the source's host (rules for any host have none): the part before
                         the first '/' after an optional "scheme://" ("*.example.com" is a
                         host of its own); ASCII case ignored */
    int status;
    int64_t older_than; /* only 307s whose since is before this (S10 listing) */
    int64_t after_id;   /* keyset paging: ids greater than this */
    size_t limit;       /* 0: no limit */
};
/* Calls fn for each rule of the page; sets *total to the number of rules matching the
 * filters (all pages). */
int dt_store_list(struct dt_store *s, const struct dt_store_query *q, dt_store_rule_fn fn,
                  void *ctx, int64_t *total);

/* Versions, newest first, at most limit (0: all) older than before (0: from the newest). */
typedef int (*dt_store_version_fn)(void *ctx, const struct dt_store_version *v);
int dt_store_versions(struct dt_store *s, int64_t before, size_t limit, dt_store_version_fn fn,
                      void *ctx);
/* The changes of the history, newest version first (within a version in order of rule id):
 * of one rule (id > 0) or of all (0), from committed versions older than before (0: from the
 * newest), at most limit changes (0: all). Returns 0 or the callback's non-zero value. */
int dt_store_history(struct dt_store *s, int64_t id, int64_t before, size_t limit,
                     dt_store_change_fn fn, void *ctx);

/* ---- backends ----------------------------------------------------------------------------
 *
 * A backend implements every call above, with the same guarantees (a commit returns once
 * durable; a version is one transaction; readers never see half a write), and its handle
 * starts with struct dt_store. dt_store_open picks the backend; the calls above dispatch
 * to it. tests/unit/test_store.c checks the contract. */
struct dt_store_backend {
    const char *name;
    void (*close)(struct dt_store *s);
    const char *(*error)(const struct dt_store *s);
    int64_t (*version)(struct dt_store *s);
    int64_t (*count)(struct dt_store *s);
    int (*wait)(struct dt_store *s, int64_t after, int timeout_ms, int64_t *version);
    int (*begin)(struct dt_store *s, int64_t now, const char *actor, const char *comment,
                 struct dt_buf *err);
    int (*commit)(struct dt_store *s, int64_t *version, struct dt_buf *err);
    void (*abort)(struct dt_store *s);
    int (*add)(struct dt_store *s, const struct dt_store_rule *r, int64_t *id, struct dt_buf *err);
    int (*replace)(struct dt_store *s, int64_t id, const struct dt_store_rule *r,
                   struct dt_buf *err);
    int (*put)(struct dt_store *s, const struct dt_store_rule *r, int64_t *id, bool *again,
               struct dt_buf *err);
    int (*remove)(struct dt_store *s, int64_t id, struct dt_buf *err);
    int (*rollback)(struct dt_store *s, int64_t version, struct dt_buf *err);
    int (*pending)(struct dt_store *s, dt_store_change_fn fn, void *ctx);
    int (*bulk)(struct dt_store *s, const struct dt_store_rule *rules, size_t n, bool replace,
                struct dt_store_bulk *out, struct dt_buf *err);
    int (*settle)(struct dt_store *s, struct dt_buf *err);
    bool (*unsettled)(const struct dt_store *s);
    int (*get)(struct dt_store *s, int64_t id, dt_store_rule_fn fn, void *ctx);
    int (*find)(struct dt_store *s, const char *source, dt_store_rule_fn fn, void *ctx);
    int (*each)(struct dt_store *s, int64_t version, dt_store_rule_fn fn, void *ctx);
    int (*list)(struct dt_store *s, const struct dt_store_query *q, dt_store_rule_fn fn, void *ctx,
                int64_t *total);
    int (*versions)(struct dt_store *s, int64_t before, size_t limit, dt_store_version_fn fn,
                    void *ctx);
    int (*history)(struct dt_store *s, int64_t id, int64_t before, size_t limit,
                   dt_store_change_fn fn, void *ctx);
};

/* What every backend's handle starts with. */
struct dt_store {
    const struct dt_store_backend *backend;
    dt_store_host_fn host_of; /* given at open; may be NULL */
};

/* The name of s's backend ("sqlite"). */
const char *dt_store_backend_name(const struct dt_store *s);

#endif
