/* answer: what a request gets from a rule set, whatever protocol carried it: the status, the
 * Location, the caching, and which of the rule set's tables answered. HTTP/1.1, HTTP/2 and
 * the admin API's /api/match all ask here; each protocol only writes what it is told. */
#ifndef DT_RULES_ANSWER_H
#define DT_RULES_ANSWER_H

#include "rules/rules.h"

/* A request as the rules see it. Spans are the caller's and must outlive the answer. */
struct dt_answer_query {
    enum dt_scheme scheme; /* DT_SCHEME_HTTP or DT_SCHEME_HTTPS */
    struct dt_str host;    /* a host key (dt_url_host_key): lower-case, no port, no final dot;
                            * empty when the request named none */
    struct dt_str path;    /* origin-form, as sent */
    struct dt_str query;   /* after '?', without it; DT_STR_NULL when there is none */
    time_t now;            /* the time windows and promotions are judged at */
};

/* The layers of a rule set (struct dt_ruleset), in the order of its hits[]. */
enum dt_answer_layer {
    DT_LAYER_FILES,
    DT_LAYER_STORE,
    DT_LAYER_OVERLAY,
    DT_LAYER_RECENT,
};

struct dt_answer {
    int status;                   /* 301, 302, 303, 307, 308; 404 when no rule answers */
    const struct dt_rule *rule;   /* NULL for 404 */
    const struct dt_table *table; /* the table rule is in */
    enum dt_answer_layer layer;   /* which table of the rule set that is */
    int64_t max_age;              /* cache=N: Cache-Control max-age; -1: no caching headers */
    struct dt_match match;
};

/* Finds the rule that answers q in rs (as dt_ruleset_match) and what it answers at q->now:
 * its status after any promotion, its caching. Returns a->status. Any thread. */
int dt_answer_find(const struct dt_ruleset *rs, const struct dt_answer_query *q,
                   struct dt_answer *a);

/* The Location of a redirect answer: an upper bound of its length, then the bytes written
 * to out (room for the bound), returned as their length. Any thread. */
static inline size_t dt_answer_location_max(const struct dt_answer *a,
                                            const struct dt_answer_query *q)
{
    return dt_table_location_max(a->table, &a->match, q->query);
}

static inline size_t dt_answer_location(const struct dt_answer *a, const struct dt_answer_query *q,
                                        char *out)
{
    return dt_table_location(a->table, &a->match, q->query, out);
}

/* Counts a hit of the rule that answered (a redirect answer) in rs's counters of its layer,
 * by worker w, at now. Worker threads. */
static inline void dt_answer_count(const struct dt_ruleset *rs, const struct dt_answer *a,
                                   unsigned w, time_t now)
{
    struct dt_hits *h = rs->hits[a->layer];
    if (h && a->rule)
        dt_hits_add(h, w, (size_t)(a->rule - dt_table_rule(a->table, 0)), now);
}

#endif
