/* rules_backup: `detour rules backup FILE`, a consistent copy of the store's file made while
 * the server runs (the one command of `detour rules` that reads the store itself, not the
 * admin API: the API hands out rules, not the database with its history). */
#include "cli/rules.h"
#include "store/store.h"

int dt_rcli_cmd_backup(const struct args *a)
{
    const char *dest = a->pos[0];
    if (a->remote_given)
        return dt_rcli_usage(dt_rcli_current,
                             "backup reads the store's file (--db PATH), not "
                             "the admin API: it takes no --server or --token-file");
    if (!dest[0])
        return dt_rcli_usage(dt_rcli_current, "FILE is empty");
    struct dt_buf err;
    dt_buf_init(&err);
    int64_t version = 0;
    int rc = dt_store_backup(a->db, dest, &version, &err);
    if (rc) {
        fprintf(stderr, "detour rules backup: %s\n", err.ptr ? err.ptr : dt_strerror(rc));
        dt_buf_dispose(&err);
        return DT_EXIT_FAIL;
    }
    dt_buf_dispose(&err);
    struct stat st;
    long long bytes = stat(dest, &st) == 0 ? (long long)st.st_size : -1;
    /* (paths that are not UTF-8 cannot be JSON strings: the line is printed then) */
    json_t *j = a->json ? json_pack("{s:s,s:s,s:I,s:I}", "file", dest, "db", a->db, "version",
                                    (json_int_t)version, "bytes", (json_int_t)bytes)
                        : NULL;
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        puts(s);
    else
        printf("%s: version %lld of %s, %lld bytes\n", dest, (long long)version, a->db, bytes);
    free(s);
    json_decref(j);
    return DT_EXIT_OK;
}
