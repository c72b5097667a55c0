/* answer: a request becomes an answer (status, Location, caching) from a rule set; the one
 * place where the server's protocols and the admin API's /api/match decide what to send. */
#include "rules/answer.h"

int dt_answer_find(const struct dt_ruleset *rs, const struct dt_answer_query *q,
                   struct dt_answer *a)
{
    a->rule =
        dt_ruleset_match(rs, q->scheme, q->host, q->path, q->query, q->now, &a->match, &a->table);
    if (!a->rule) {
        a->status = 404;
        a->table = NULL;
        a->layer = DT_LAYER_FILES;
        a->max_age = -1;
        return a->status;
    }
    a->status = dt_rule_status_at(a->table, a->rule, q->now);
    a->max_age = dt_rule_max_age(a->table, a->rule);
    a->layer = a->table == rs->files     ? DT_LAYER_FILES
               : a->table == rs->store   ? DT_LAYER_STORE
               : a->table == rs->overlay ? DT_LAYER_OVERLAY
                                         : DT_LAYER_RECENT;
    return a->status;
}
