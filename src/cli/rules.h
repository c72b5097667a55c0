/* rules.h: what the files of `detour rules` share (rules.c: the command line and the
 * commands; rules_api.c: talking to the admin API; rules_read.c: list, get, export,
 * match, history, versions, rollback; rules_write.c: add, set, rm, import; rules_backup.c:
 * backup, which reads the store's file rather than the API). */
#ifndef DT_CLI_RULES_H
#define DT_CLI_RULES_H

#include "cli/cli.h"
#include "http/http.h"
#include "rules/import.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SERVER "http://127.0.0.1:9307"
#define DEFAULT_TOKEN_FILE "./detour.db.token"
#define DEFAULT_DB "./detour.db"      /* serve's --db default */
#define TOKEN_MAX 255                 /* the server keeps tokens of up to 255 bytes */
#define TOKEN_FILE_MAX 4096           /* a token file larger than this is not a token file */
#define RESPONSE_MAX (1024u << 20)    /* largest API answer read: 1 GiB */
#define UPLOAD_MAX DT_IMPORT_MAX_TEXT /* largest import read from a pipe into memory */
#define PAGE_ALL 10000 /* rules per request of list --all and export: the API's most */
#define EXPORT_TRIES 5 /* exports redone when the store changed meanwhile */
#define CONNECT_TIMEOUT_S 10L
#define TABLE_COLS 8
#define SHOWN_MAX 200 /* bytes of an argument quoted back in a usage error */

/* Everything the command line said. */
struct args {
    const char *server, *token_file;
    bool remote_given; /* --server or --token-file was given */
    const char *db;    /* backup: the store's file */
    bool json;
    const char *text, *host, *note, *format, *method;
    int status;             /* 0: not given */
    uint64_t limit, before; /* 0: not given */
    bool old_temporary, all, dry_run, replace, force;
    char **pos; /* the positional arguments after the subcommand's name */
    int npos;
};

/* A connection to the admin API and how to print its answers. */
struct client {
    CURL *curl;
    char *base;                /* "http://127.0.0.1:9307", no trailing '/'; owned */
    char *socket_path;         /* a Unix socket, or NULL; owned */
    const char *server;        /* as given, for messages */
    const char *token_file;    /* read at the first request, after the arguments are checked */
    const char *token_from;    /* "DETOUR_TOKEN" or the token file's name, for messages */
    char auth[TOKEN_MAX + 32]; /* "Authorization: Bearer TOKEN" */
    bool json;
};

/* An answer: the status and the content, parsed when it is JSON. */
struct answer {
    long status;
    struct dt_buf body;
    json_t *json; /* owned; NULL when the content is not JSON */
    bool too_large;
};

/* The content of an import: a regular file streamed as it is read, or bytes in memory (from
 * a pipe), and the upload's progress bar. */
struct upload {
    FILE *file;
    char *mem; /* owned */
    size_t len, off;
    curl_off_t size;
    const char *name;
    bool progress;
    int shown; /* per mille of the bar last drawn; -1: none yet */
};

struct command {
    const char *name;
    const char *synopsis;
    const char *help;
    unsigned accepts;
    int min_pos, max_pos; /* -1: any number */
    int (*run)(struct client *c, const struct args *a);
    /* instead of run, for a command that does not talk to the API (no client is made) */
    int (*run_local)(const struct args *a);
};

/* Rows printed in columns as wide as their widest cell so far: printed page by page, a
 * table's columns only ever widen. The last column is not padded. */
struct table {
    size_t ncols;
    const char *head[TABLE_COLS];
    size_t width[TABLE_COLS];
    char **cells; /* nrows * ncols, owned */
    size_t nrows, cap;
    bool head_shown;
};

/* The command being run, for usage errors. */
extern const struct command *dt_rcli_current;

void dt_rcli_put_clean(FILE *out, const char *s);
const char *dt_rcli_jstr(json_t *obj, const char *key);
json_int_t dt_rcli_jint(json_t *obj, const char *key);
void dt_rcli_rule_line(struct dt_buf *out, json_t *r);
char *dt_rcli_rule_text(json_t *r);
int dt_rcli_usage(const struct command *cmd, const char *fmt, ...) DT_PRINTF(2, 3);
void dt_rcli_table_init(struct table *t, size_t ncols, const char *const *head);
void dt_rcli_table_row(struct table *t, const char *const *cells);
void dt_rcli_table_flush(struct table *t);
void dt_rcli_table_dispose(struct table *t);
int dt_rcli_load_token(struct client *c, const char *file);
void dt_rcli_answer_init(struct answer *ans);
void dt_rcli_answer_dispose(struct answer *ans);
int dt_rcli_request(struct client *c, const char *method, const char *path, json_t *body,
                    struct upload *up, struct answer *ans);
void dt_rcli_print_json(const struct client *c, const struct answer *ans);
int dt_rcli_api_error(const struct client *c, const struct answer *ans);
int dt_rcli_call(struct client *c, const char *method, const char *path, json_t *body,
                 struct answer *ans);
void dt_rcli_query_add(struct dt_buf *b, struct client *c, const char *key, const char *value);
void dt_rcli_query_add_int(struct dt_buf *b, struct client *c, const char *key, int64_t value);
int dt_rcli_print_dry_run(json_t *j);
int dt_rcli_print_write(const struct client *c, json_t *j, const char *verb);
int dt_rcli_cmd_list(struct client *c, const struct args *a);
int dt_rcli_parse_id(const struct command *cmd, const char *what, const char *s, int64_t min,
                     int64_t *out);
int dt_rcli_cmd_get(struct client *c, const struct args *a);
int dt_rcli_cmd_export(struct client *c, const struct args *a);
int dt_rcli_cmd_match(struct client *c, const struct args *a);
int dt_rcli_cmd_history_changes(struct client *c, const struct args *a);
int dt_rcli_cmd_versions(struct client *c, const struct args *a);
int dt_rcli_cmd_rollback(struct client *c, const struct args *a);
int dt_rcli_cmd_certs(struct client *c, const struct args *a);
void dt_rcli_write_path(struct dt_buf *p, struct client *c, const char *path, bool dry_run);
int dt_rcli_cmd_add(struct client *c, const struct args *a);
int dt_rcli_cmd_set(struct client *c, const struct args *a);
int dt_rcli_cmd_rm(struct client *c, const struct args *a);
int dt_rcli_cmd_import(struct client *c, const struct args *a);
int dt_rcli_cmd_backup(const struct args *a);

#endif
