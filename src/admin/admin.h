/* admin: the store and the admin API around the redirect server: rules from the store
 * served together with the rule files, changed live through a JSON API over HTTP/1.1 on its
 * own listener, every write a numbered, durable version (S5, S10). */
#ifndef DT_ADMIN_H
#define DT_ADMIN_H

#include "server/server.h"

struct dt_admin_options {
    const char *db_path;       /* the SQLite store; ":memory:" keeps nothing */
    const char *token_file;    /* NULL: DB.token, or ./detour.token for ":memory:" */
    int64_t max_temporary_age; /* S10, seconds: older 307s are listed and counted; -1 off */
    unsigned auth_failures;    /* failed tokens in a row from one address before its requests
                                  are refused 429 for a while (docs/admin.md); 0: never */
};

void dt_admin_options_init(struct dt_admin_options *o);

/* Opens the store, loads the rule files and the store's rules, and runs the server with the
 * admin API on cfg->admin (none when cfg->nadmin is 0). Returns the exit status: 0 after a
 * clean stop, 1 when the store or a listener cannot be opened, 2 when the rules do not
 * load. Main thread, once. */
int dt_admin_run(struct dt_server_config *cfg, const struct dt_admin_options *o);

#endif
