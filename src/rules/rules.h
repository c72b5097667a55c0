/* rules: the rule model, the rule-file parser, and the matching table.
 *
 * A table is built once (dt_table_new, dt_table_add..., dt_table_finish) and is immutable
 * from then on, so any number of threads may match against it without locks. Rules are
 * stored compactly (offsets into one string blob) so that millions of them fit. */
#ifndef DT_RULES_H
#define DT_RULES_H

#include "base/base.h"
#include "http/http.h" /* the status table: which statuses a rule may answer with */
#include "url/url.h"

/* ---- one rule, as written ---------------------------------------------------------------- */

enum dt_scheme { DT_SCHEME_ANY = 0, DT_SCHEME_HTTP = 1, DT_SCHEME_HTTPS = 2 };

/* A rule as a user wrote it: spans into the line (or into the caller's memory). */
struct dt_rule_spec {
    struct dt_str line;   /* the whole line, for diagnostics (may be empty) */
    struct dt_str source; /* "/path", "/prefix*", "HOST/path", "SCHEME://HOST/path" */
    struct dt_str target; /* "/path" or "https://host/path", with :splat */
    int status;           /* 301, 302, 303, 307 (default) or 308 */
    bool query_drop;      /* query=drop: never append the request's query */
    bool query_set;       /* query= was written (query=keep is written back, not implied) */
    int64_t max_age;      /* cache=N: Cache-Control max-age; -1: no caching headers (S4) */
    bool has_from, has_until;
    time_t from, until; /* the rule matches only in [from, until) */
    bool has_since;
    time_t since;          /* since=: when this (temporary) redirect was put in place (S10) */
    int64_t promote_after; /* promote-after=: seconds after since= when a 307 answers 308 and
                              a 302 answers 301; 0 for never */
    uint32_t promote_at;   /* offset of "promote-after=" in line, for diagnostics (0: none) */
};

void dt_rule_spec_init(struct dt_rule_spec *s);

/* Parses one line of a rule file: SOURCE TARGET [STATUS] [KEY=VALUE]... with '#' starting
 * a comment where a field would start. Returns 1 and fills spec for a rule, 0 for a blank
 * or comment line, or DT_ESYNTAX with diag->offset the byte offset in the line. The spans
 * in spec point into line. */
DT_MUST_CHECK int dt_rule_parse_line(struct dt_str line, struct dt_rule_spec *spec,
                                     struct dt_diag *diag);

/* ---- the rule codec: fields to a line and back ----------------------------------------- */

/* Parses options alone ("query=drop cache=60", the fields after a rule's status) into s,
 * which keeps its other fields; an option s has already counts as given (a second one is
 * an error). Returns 0, or DT_ESYNTAX with diag->offset in text. */
DT_MUST_CHECK int dt_rule_parse_options(struct dt_str text, struct dt_rule_spec *s,
                                        struct dt_diag *diag);

/* Which options dt_rule_format_options writes. */
enum {
    DT_RULE_OPT_SINCE = 1, /* since= (a store keeps it in a column of its own) */
};

/* Appends the options of s in rule-file syntax, separated by spaces, in one fixed order:
 * query=drop cache=N from=T until=T since=T promote-after=AGE (times in UTC, RFC 3339;
 * AGE in its largest exact unit). since= only with DT_RULE_OPT_SINCE. Nothing for the
 * defaults, except query=keep where query_set says it was written. dt_rule_parse_options reads them
 * back to the same fields. Any thread. */
void dt_rule_format_options(struct dt_buf *out, const struct dt_rule_spec *s, unsigned flags);

/* Appends s as one line of a rule file: SOURCE TARGET STATUS and every option (since=
 * included). dt_rule_parse_line reads it back to the same fields. Any thread. */
void dt_rule_format(struct dt_buf *out, const struct dt_rule_spec *s);

/* The host a rule's source names ("example.com/a", "https://Example.com/a",
 * "*.example.com/a", ".example.com/a"), lower-cased into out (room for cap bytes), as its
 * length: the part before the first '/' after an optional "scheme://". 0 for a source for
 * any host ("/path", "~regex") or one longer than cap. Any thread. */
size_t dt_rule_source_host(const char *source, char *out, size_t cap);

/* Parses an AGE of promote-after= (90d, 12h, 30m, 45s: at most 100 years) into seconds.
 * Returns 0 or DT_EINVAL. */
DT_MUST_CHECK int dt_rule_parse_age(struct dt_str age, int64_t *seconds);

/* Writes an age of promote-after= (seconds, > 0) in its largest exact unit, "90d", "36h",
 * "90m", "45s", NUL-terminated; returns its length. */
size_t dt_rule_format_age(char out[24], int64_t seconds);

/* ---- the table ----------------------------------------------------------------------------- */

enum dt_rule_kind {
    DT_RULE_EXACT,   /* /path */
    DT_RULE_PREFIX,  /* a path ending in '*' */
    DT_RULE_PATTERN, /* /users/:id, maybe ending in '*' */
    DT_RULE_REGEX,   /* ~REGEX */
};

/* One rule in a table: 20 bytes, strings held by the table's blob (the source path, then
 * the target without its interned origin). Fields starting with _ are the table's. */
struct dt_rule {
    uint32_t _src;
    uint16_t _src_len;
    uint16_t _tgt_len;
    uint16_t _bits;   /* status, kind, scheme and flags */
    uint16_t _origin; /* interned scheme://authority of the target, 0 for none */
    uint32_t _section;
    uint32_t line; /* line in its file, 1-based (0 when not from a file) */
};

/* The status a rule answers with (301, 302, 303, 307, 308), before any promotion. */
int dt_rule_status(const struct dt_rule *r);
enum dt_rule_kind dt_rule_kind(const struct dt_rule *r);

struct dt_table;

/* Where a rule came from, for messages: "rules.txt:12". */
struct dt_rule_origin {
    const char *file; /* NUL-terminated, owned by the table; NULL when not from a file */
    uint32_t line;
};

/* Creates an empty table to add rules to. Free with dt_table_free. Control thread. */
struct dt_table *dt_table_new(void);
/* Frees a table and everything it holds. NULL is fine. */
void dt_table_free(struct dt_table *t);

/* Compiles spec and adds it to an unfinished table. file is an index from
 * dt_table_add_file (or -1), line its line number. Returns 0, or DT_ESYNTAX with diag
 * (offset relative to spec->line when the spans point into it). */
DT_MUST_CHECK int dt_table_add(struct dt_table *t, const struct dt_rule_spec *spec, int file,
                               uint32_t line, struct dt_diag *diag);

/* Registers a file name with the table; returns its index. */
int dt_table_add_file(struct dt_table *t, const char *name);

/* One error from loading rules. */
struct dt_error {
    char *file;            /* owned; NULL when not about a file */
    uint32_t line, column; /* 0 when not about a line */
    char *message;         /* owned, without the location */
};

/* Errors from loading files: one message per bad line, "FILE:LINE:COL: message", as text
 * and as entries. */
struct dt_errors {
    struct dt_buf text; /* the messages, one per line */
    unsigned count;
    struct dt_error *items;
    size_t cap;
};
void dt_errors_init(struct dt_errors *e);
void dt_errors_dispose(struct dt_errors *e);
/* Adds an error about a file's line (line and column 0: about the file). */
void dt_errors_add_at(struct dt_errors *e, const char *file, uint32_t line, size_t column,
                      const char *fmt, ...) DT_PRINTF(5, 6);

/* Reads a rule file into an unfinished table. Every bad line is added to errs (up to a cap)
 * and the file goes on being read so that all its errors are reported at once. Returns 0,
 * DT_ESYNTAX (errs says where) or DT_EIO (errs says why). */
DT_MUST_CHECK int dt_table_load_file(struct dt_table *t, const char *path, struct dt_errors *errs);
/* Reads a rule file written in format (an enum dt_rule_format of rules/import.h: detour's
 * own, CSV, nginx map or Netlify _redirects); foreign formats are converted first and every
 * error names the line of the file itself. default_status: for entries without one (0: the
 * format's default). Returns as dt_table_load_file. */
DT_MUST_CHECK int dt_table_load_file_as(struct dt_table *t, const char *path, int format,
                                        int default_status, struct dt_errors *errs);
/* Reads one line of a rule file (lineno of file index file, named name in messages) into t:
 * a rule is added, a blank or comment line skipped, a bad line reported to errs naming its
 * line and column. */
void dt_table_load_line(struct dt_table *t, int file, const char *name, uint32_t lineno,
                        struct dt_str line, struct dt_errors *errs);
/* Adds one rule line converted from a foreign format (rules/import.h) to t, a bad one reported
 * to errs naming the line it came from. */
struct dt_import_line;
void dt_table_load_converted(struct dt_table *t, int file, const char *name,
                             const struct dt_import_line *l, struct dt_errors *errs);
/* The same for rules held in memory, named name in messages. */
DT_MUST_CHECK int dt_table_load_text(struct dt_table *t, const char *name, struct dt_str text,
                                     struct dt_errors *errs);

/* Builds the indexes. After this the table is immutable and may be shared by threads;
 * duplicates found are reported as warnings through dt_log. */
void dt_table_finish(struct dt_table *t);

/* Calls fn for every host the rules of t name (lower-case, no port; for a wildcard host,
 * wildcard set and host its suffix: "example.com" for "*.example.com"), each once. t may
 * be NULL. */
void dt_table_each_host(const struct dt_table *t,
                        void (*fn)(void *ctx, struct dt_str host, bool wildcard), void *ctx);

/* True when rules of t are for host itself or a wildcard covering it (not only rules for
 * any host). host lower-case, no port; t may be NULL. Any thread, on a finished table. */
bool dt_table_has_host(const struct dt_table *t, struct dt_str host);

/* Number of rules in the table (0 for NULL). */
size_t dt_table_size(const struct dt_table *t);
/* True when some rule has a time window, so answers can change without a reload. */
bool dt_table_has_windows(const struct dt_table *t);

/* ---- matching ------------------------------------------------------------------------------ */

#define DT_MAX_CAPTURES 10 /* $0..$9 */

/* What a rule matched: filled in by dt_table_match, read by dt_table_location. */
struct dt_match {
    const struct dt_rule *rule;
    struct dt_str splat;                     /* what the '*' matched */
    struct dt_str named[DT_TPL_MAX_NAMES];   /* :name values, placeholders then query */
    struct dt_str captures[DT_MAX_CAPTURES]; /* $0..$9 of a regex */
    uint8_t ncaptures;
    const uint64_t *_hidden; /* dt_ruleset_match: base rules to skip */
};

/* Finds the rule that answers a request: the host's own rules first, then wildcard hosts
 * from the most specific, then rules for any host; in each, exact > longest prefix >
 * placeholder patterns in order > regular expressions in order. Among rules with the same
 * source, those with query conditions come first, then those for one scheme, then file
 * order. Only rules whose scheme fits, whose window holds now and whose query conditions
 * the query meets count. host must be lower-case without port (may be empty); query is the
 * raw query without '?'. Returns the rule, or NULL. Any thread, on a finished table. */
const struct dt_rule *dt_table_match(const struct dt_table *t, enum dt_scheme scheme,
                                     struct dt_str host, struct dt_str path, struct dt_str query,
                                     time_t now, struct dt_match *m);

/* The Location for a match: upper bound of its length, then the location itself written
 * to out (returns its length). query is the request's query without '?'. Any thread. */
size_t dt_table_location_max(const struct dt_table *t, const struct dt_match *m,
                             struct dt_str query);
size_t dt_table_location(const struct dt_table *t, const struct dt_match *m, struct dt_str query,
                         char *out);

/* A rule's cache=N (Cache-Control max-age), or -1 without one. */
int64_t dt_rule_max_age(const struct dt_table *t, const struct dt_rule *r);
/* Where a rule came from. */
struct dt_rule_origin dt_rule_origin(const struct dt_table *t, const struct dt_rule *r);
/* Appends the rule's source, canonical ("https://host/path*", "~regex"), to out. */
void dt_rule_source(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *out);
/* Appends the rule's target as written to out. */
void dt_rule_target(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *out);
/* The status a rule answers with at now: with promote-after=, a 307 answers 308 and a 302
 * answers 301 from since + promote-after on. Any thread. */
int dt_rule_status_at(const struct dt_table *t, const struct dt_rule *r, time_t now);
/* A rule's promotion: false without promote-after=; else when (*at) and to which status. */
bool dt_rule_promotion(const struct dt_table *t, const struct dt_rule *r, time_t *at, int *to);
/* The rule's since= (S10), or false without one. */
bool dt_rule_since(const struct dt_table *t, const struct dt_rule *r, time_t *since);
/* The rule's window: false without from= or until=. */
bool dt_rule_window(const struct dt_table *t, const struct dt_rule *r, time_t *from, time_t *until);
/* A table's rule as the fields it was made from, for the codec (dt_rule_format writes a line
 * that loads as the same rule): source and target are appended to text (cleared first), and
 * the spec's spans point there, valid while text is not changed. Any thread. */
void dt_rule_spec_of(const struct dt_table *t, const struct dt_rule *r, struct dt_buf *text,
                     struct dt_rule_spec *s);
/* The rule at index i (0 <= i < dt_table_size): rules are in the order they were added. */
const struct dt_rule *dt_table_rule(const struct dt_table *t, size_t i);
/* Bytes the table holds (for reports). */
size_t dt_table_memory(const struct dt_table *t);

/* ---- live rule sets ------------------------------------------------------------------------ */

/* What the server answers from: the rules of the files, the store's rules as of its last
 * merge, and the store's changes since (a small table rebuilt on every change), with the
 * merged store rules that those changes replaced or removed hidden. Nothing in it is ever
 * changed: a change publishes a new ruleset that shares the unchanged tables (S5).
 *
 * Precedence is that of one table holding the store's rules (in order of id) followed by
 * the files' rules: a store rule thus overrides a file rule with the same source, and store
 * patterns and regexes are tried before the files' ones. Store rules are added to their
 * tables in order of id with line = id. */
/* Hit counters of one table's rules: per worker, so that no two workers write the same
 * cache line; the last-hit time is shared but written at most once a second per rule. */
struct dt_hits {
    size_t nrules;
    unsigned nworkers;
    uint64_t *count; /* [worker * nrules + rule] */
    uint32_t *last;  /* [rule]: unix seconds of the last hit, 0 for none */
};

struct dt_hits *dt_hits_new(size_t nrules, unsigned nworkers);
void dt_hits_free(struct dt_hits *h);
/* Counts a hit of rule i by worker w at now. Worker threads. */
static inline void dt_hits_add(struct dt_hits *h, unsigned w, size_t i, time_t now)
{
    uint64_t *c = &h->count[(size_t)w * h->nrules + i];
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&h->last[i], __ATOMIC_RELAXED) != (uint32_t)now)
        __atomic_store_n(&h->last[i], (uint32_t)now, __ATOMIC_RELAXED);
}
/* The hits of rule i summed over the workers, and its last hit. Any thread. */
uint64_t dt_hits_get(const struct dt_hits *h, size_t i, uint32_t *last);

struct dt_ruleset {
    const struct dt_table *files;   /* NULL or finished */
    const struct dt_table *store;   /* NULL or finished: the store's rules at the merge */
    const uint64_t *hidden;         /* bit i set: store rule i no longer answers; NULL: none */
    const struct dt_table *overlay; /* NULL or finished: store rules changed since */
    const uint64_t *hidden_overlay; /* bit i set: overlay rule i changed again (in recent) */
    const struct dt_table *recent;  /* NULL or finished: the newest changes, over overlay */
    struct dt_hits *hits[4];        /* of files, store, overlay, recent; NULL: not counted */
};

/* The rule that answers a request (as dt_table_match) and the table it belongs to (for
 * dt_table_location and the accessors). Any thread. */
const struct dt_rule *dt_ruleset_match(const struct dt_ruleset *rs, enum dt_scheme scheme,
                                       struct dt_str host, struct dt_str path, struct dt_str query,
                                       time_t now, struct dt_match *m,
                                       const struct dt_table **table);

/* Calls fn with the index of every rule of t whose canonical source (dt_rule_source) is the
 * same as that of rule r of table rt. Returns how many there were. */
size_t dt_table_find_source(const struct dt_table *t, const struct dt_table *rt,
                            const struct dt_rule *r, void (*fn)(void *ctx, size_t idx), void *ctx);

/* A request rule r of finished table t answers when it stands alone: its host (for a rule
 * for any host, any_host; for *.example.com, x.example.com), a path its source matches (a
 * placeholder or a splat filled with "x", a regex's literal start with a short tail) and a
 * query meeting its conditions, each NUL-terminated in the buffers (cleared first). False
 * when none can be made (a regex without a literal start). lint follows these requests;
 * `detour check` sends them. Any thread. */
bool dt_rule_sample(const struct dt_table *t, const struct dt_rule *r, const char *any_host,
                    struct dt_buf *host, struct dt_buf *path, struct dt_buf *query);
/* The scheme a rule's source names (DT_SCHEME_ANY for none). */
enum dt_scheme dt_rule_scheme(const struct dt_rule *r);

/* ---- lint --------------------------------------------------------------------------------- */

enum dt_lint_severity { DT_LINT_WARNING = 1, DT_LINT_ERROR = 2 };

struct dt_lint_finding {
    uint8_t severity;
    const char *kind; /* static: loop, chain, duplicate, conflict, shadowed, steerable,
                         open-redirect, expired, old-temporary, syntax */
    const char *file; /* the table's (or the caller's) string; NULL when not from a file */
    uint32_t line;
    char *message; /* owned by the report */
};

struct dt_lint_report {
    struct dt_lint_finding *findings;
    size_t n, cap;
    unsigned errors, warnings;
};

struct dt_lint_options {
    time_t now;
    int64_t max_temporary_age; /* seconds; a 307 older than this (since=) is reported; -1 off */
    /* NULL, or which rules matter: loops, chains and per-rule findings are then looked for
     * from those rules only (the other rules are followed only where a chain leads), so
     * that checking a few changed rules among a million is quick. */
    bool (*focus)(void *ctx, const struct dt_table *t, size_t rule);
    void *focus_ctx;
};

/* Analyses a finished table and appends its findings to r, sorted by file and line:
 * loops (error), conflicting sources (error), duplicates, chains, rules that never answer,
 * targets a request can steer, expired windows and old temporary redirects (warnings).
 * Control thread; the table is only read. */
void dt_lint_run(const struct dt_table *t, const struct dt_lint_options *o,
                 struct dt_lint_report *r);
/* The error-level lint findings about one rule r (of table t, one of rs's tables) in the
 * whole rule set rs, without linting all of it: r's sample request is matched in rs; if
 * another rule with the same source answers it with another target or status, r never
 * answers (DT_LINT_RULE_CONFLICT); else the request is followed where r sends it, which
 * rule answers there, and so on, at most 20 hops, and coming back to r is a loop
 * (DT_LINT_RULE_LOOP). The finding is described in msg. Control thread. */
enum { DT_LINT_RULE_OK, DT_LINT_RULE_LOOP, DT_LINT_RULE_CONFLICT };
/* Buffers dt_lint_rule_in reuses from one call to the next, so that checking a million rules
 * does not allocate for each: zeroed before the first call, one per thread, disposed of with
 * dt_lint_scratch_dispose. */
struct dt_lint_scratch {
    struct dt_buf host, path, query, loc, text, base, to;
};
void dt_lint_scratch_dispose(struct dt_lint_scratch *sc);
/* scratch may be NULL (the call uses buffers of its own). */
int dt_lint_rule_in(const struct dt_ruleset *rs, const struct dt_table *t, const struct dt_rule *r,
                    time_t now, struct dt_buf *msg, struct dt_lint_scratch *scratch);
/* Adds a finding (the caller's, e.g. a line that did not load). */
void dt_lint_add(struct dt_lint_report *r, int severity, const char *kind, const char *file,
                 uint32_t line, const char *fmt, ...) DT_PRINTF(6, 7);
/* Sorts by file and line, and drops findings reported twice. */
void dt_lint_sort(struct dt_lint_report *r);
void dt_lint_report_dispose(struct dt_lint_report *r);

#endif
