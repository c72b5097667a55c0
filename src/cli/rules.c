/* rules: `detour rules SUBCOMMAND`, a client of a running server's admin API (docs/admin.md):
 * lists, shows, adds, changes, removes, imports and exports the store's rules, and reads its
 * versions; and backs up the store's file. One libcurl handle, JSON through jansson; nothing
 * is kept between runs. */
#include "cli/rules.h"

/* ---- the command line --------------------------------------------------------------------- */

enum {
    O_SERVER = 256,
    O_TOKEN_FILE,
    O_JSON,
    O_TEXT,
    O_HOST,
    O_STATUS,
    O_OLD_TEMPORARY,
    O_LIMIT,
    O_ALL,
    O_NOTE,
    O_DRY_RUN,
    O_FORMAT,
    O_REPLACE,
    O_FORCE,
    O_METHOD,
    O_BEFORE,
    O_DB,
};

/* Which subcommand options a command takes (the global ones go with every command). */
#define ACCEPTS(o) (1u << ((o)-O_TEXT))

static const struct option global_options[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option all_options[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {"text", required_argument, NULL, O_TEXT},
    {"host", required_argument, NULL, O_HOST},
    {"status", required_argument, NULL, O_STATUS},
    {"old-temporary", no_argument, NULL, O_OLD_TEMPORARY},
    {"limit", required_argument, NULL, O_LIMIT},
    {"all", no_argument, NULL, O_ALL},
    {"note", required_argument, NULL, O_NOTE},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {"format", required_argument, NULL, O_FORMAT},
    {"replace", no_argument, NULL, O_REPLACE},
    {"force", no_argument, NULL, O_FORCE},
    {"method", required_argument, NULL, O_METHOD},
    {"before", required_argument, NULL, O_BEFORE},
    {"db", required_argument, NULL, O_DB},
    {NULL, 0, NULL, 0},
};

static const char help_top[] =
    "Usage: detour rules [--server URL] [--token-file FILE] [--json] COMMAND [ARGS]\n"
    "\n"
    "Lists, adds, changes, removes, imports and exports the rules of a running detour\n"
    "server's store through its admin API (docs/admin.md). Every change is live when the\n"
    "command returns. backup copies the store's file itself, the server running or not.\n"
    "\n"
    "Commands:\n"
    "  list [--text T] [--host H] [--status N] [--old-temporary] [--limit N] [--all]\n"
    "  get ID\n"
    "  add SOURCE TARGET [STATUS] [KEY=VALUE]... [--note TEXT] [--dry-run]\n"
    "  set ID FIELD=VALUE... [--dry-run]\n"
    "  rm ID [--dry-run]\n"
    "  import FILE [--format F] [--replace] [--force] [--dry-run] [--status N]\n"
    "  export\n"
    "  match URL [--method M]\n"
    "  history [ID] [--limit N] [--before V]\n"
    "  versions [--limit N] [--before V]\n"
    "  rollback VERSION [--dry-run]\n"
    "  certs [renew NAME]\n"
    "  backup FILE [--db PATH]\n"
    "\n"
    "Options (before or after the command):\n"
    "  --server URL        the admin API: http://ADDR:PORT (default " DEFAULT_SERVER "),\n"
    "                      ADDR:PORT, https://HOST:PORT, or unix:PATH (or a path starting\n"
    "                      with / or .) for a Unix socket\n"
    "  --token-file FILE   the file with the bearer token (default " DEFAULT_TOKEN_FILE ");\n"
    "                      the environment variable DETOUR_TOKEN, when set, is used instead\n"
    "  --json              print the API's JSON answers as they come, one per line\n"
    "  -h, --help          show this help; 'detour rules COMMAND --help' for a command's\n"
    "\n"
    "Exit status: 0 done; 1 the API refused (its message is printed as 'HTTP STATUS: ...')\n"
    "or could not be reached; 2 a usage error or no token.\n";

/* ---- small helpers ------------------------------------------------------------------------ */

/* Writes s with control characters replaced, so that what the store holds cannot drive the
 * terminal. */
void dt_rcli_put_clean(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, out);
    }
}

static char *clean_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = dt_xstrndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
            d[i] = '?';
    return d;
}

/* Characters a terminal shows for s: UTF-8 sequences count once. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

const char *dt_rcli_jstr(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

json_int_t dt_rcli_jint(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* A rule as a rule-file line (docs/rules.md), the form `detour rules export` writes and
 * `import` reads: the API gives it as the rule's "text", written by the rule codec. */
void dt_rcli_rule_line(struct dt_buf *out, json_t *r)
{
    dt_buf_appendf(out, "%s", dt_rcli_jstr(r, "text"));
    dt_buf_terminate(out);
}

/* rule_line as a string the caller frees. */
char *dt_rcli_rule_text(json_t *r)
{
    struct dt_buf b;
    dt_buf_init(&b);
    dt_rcli_rule_line(&b, r);
    char *s = clean_dup(b.ptr ? b.ptr : "");
    dt_buf_dispose(&b);
    return s;
}

/* A usage error with the command's synopsis: "detour rules CMD: message", "Usage: ...",
 * and the hint dt_usage_error adds. Returns DT_EXIT_USAGE. */
int dt_rcli_usage(const struct command *cmd, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cmd)
        return dt_usage_error("rules", "%s\nUsage: detour rules [OPTIONS] COMMAND [ARGS]", msg);
    char name[32];
    snprintf(name, sizeof(name), "rules %s", cmd->name);
    return dt_usage_error(name, "%s\nUsage: detour rules %s", msg, cmd->synopsis);
}

/* ---- tables ------------------------------------------------------------------------------- */

void dt_rcli_table_init(struct table *t, size_t ncols, const char *const *head)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->head[i] = head[i];
        t->width[i] = display_width(head[i]);
    }
}

/* Adds a row; the cells are copied with control characters replaced. */
void dt_rcli_table_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = dt_xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = clean_dup(cells[i] ? cells[i] : "");
    t->nrows++;
}

static void print_row(const struct table *t, const char *const *cells)
{
    /* empty cells at the end of a row leave no trailing blanks */
    size_t n = t->ncols;
    while (n > 1 && !cells[n - 1][0])
        n--;
    for (size_t i = 0; i < n; i++) {
        fputs(cells[i], stdout);
        if (i + 1 < n)
            printf("%*s", (int)(t->width[i] - display_width(cells[i]) + 2), "");
    }
    putchar('\n');
}

/* Prints the rows added since the last flush (and the header, the first time). */
void dt_rcli_table_flush(struct table *t)
{
    if (!t->nrows)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i + 1 < t->ncols; i++) {
            size_t w = display_width(t->cells[r * t->ncols + i]);
            if (w > t->width[i])
                t->width[i] = w;
        }
    if (!t->head_shown)
        print_row(t, t->head);
    t->head_shown = true;
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, (const char *const *)&t->cells[r * t->ncols]);
        for (size_t i = 0; i < t->ncols; i++)
            free(t->cells[r * t->ncols + i]);
    }
    t->nrows = 0;
}

void dt_rcli_table_dispose(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}

/* ---- the commands ------------------------------------------------------------------------- */

static const struct command commands[] = {
    {"list", "list [--text T] [--host H] [--status N] [--old-temporary] [--limit N] [--all]",
     "Lists the store's rules in order of id: ID, STATUS, SOURCE, TARGET, SINCE/UPDATED (for\n"
     "a 307, since when it has answered 307: S10) and NOTE.\n"
     "\n"
     "  --text T          rules whose source, target or note contain T\n"
     "  --host H          rules for the host H\n"
     "  --status N        rules with the status N\n"
     "  --old-temporary   307s in place longer than the server's --max-temporary-age (S10)\n"
     "  --limit N         at most N rules (default 100; up to 10000); with --all, per request\n"
     "  --all             every rule, page after page\n",
     ACCEPTS(O_TEXT) | ACCEPTS(O_HOST) | ACCEPTS(O_STATUS) | ACCEPTS(O_OLD_TEMPORARY) |
         ACCEPTS(O_LIMIT) | ACCEPTS(O_ALL),
     0, 0, dt_rcli_cmd_list, NULL},
    {"get", "get ID", "Shows one rule: every field, and the rule as a rule-file line.\n", 0, 1, 1,
     dt_rcli_cmd_get, NULL},
    {"add", "add SOURCE TARGET [STATUS] [KEY=VALUE]... [--note TEXT] [--dry-run]",
     "Adds a rule, written as in a rule file (docs/rules.md): STATUS is 301, 302, 303, 307\n"
     "(the default) or 308; the options are query=keep|drop, cache=SECONDS, from=TIME and\n"
     "until=TIME (RFC 3339), promote-after=AGE (90d: the 307 becomes a 308 after that long),\n"
     "and note=TEXT.\n"
     "\n"
     "  --note TEXT   a note kept with the rule\n"
     "  --dry-run     show what would change and the lint findings; change nothing\n"
     "\n"
     "Example: detour rules add /sale /winter-sale 302 cache=60 --note 'Q4 campaign'\n",
     ACCEPTS(O_NOTE) | ACCEPTS(O_DRY_RUN), 2, -1, dt_rcli_cmd_add, NULL},
    {"set", "set ID FIELD=VALUE... [--dry-run]",
     "Changes the fields given of rule ID (the others stay): source=, target=, status=,\n"
     "query=keep|drop, cache=SECONDS, from=TIME, until=TIME, promote-after=AGE, note=TEXT.\n"
     "cache=none, from=none, until=none and promote-after=none remove the option.\n"
     "\n"
     "  --note TEXT   the same as note=TEXT\n"
     "  --dry-run     show what would change and the lint findings; change nothing\n",
     ACCEPTS(O_NOTE) | ACCEPTS(O_DRY_RUN), 1, -1, dt_rcli_cmd_set, NULL},
    {"rm", "rm ID [--dry-run]",
     "Removes rule ID. A rule file's rule with the same source answers again.\n"
     "\n"
     "  --dry-run   show what would change; change nothing\n",
     ACCEPTS(O_DRY_RUN), 1, 1, dt_rcli_cmd_rm, NULL},
    {"import", "import FILE [--format F] [--replace] [--force] [--dry-run] [--status N]",
     "Sends a rule file (FILE, or - for stdin) to the store, all of it or nothing, as one\n"
     "version. Rules with a source the store has replace it; the others are added. Each bad\n"
     "line is reported as FILE:LINE:COL: message. An import whose result has an error-level\n"
     "lint finding (a loop, a conflict) is refused with the findings. A progress bar shows\n"
     "the upload when stderr is a terminal.\n"
     "\n"
     "  --format F   detour, csv, nginx or netlify (docs/import.md; default: by the file's\n"
     "               name: *.csv, *.map, _redirects; detour for stdin)\n"
     "  --replace    also remove every store rule the file does not have\n"
     "  --force      apply it even with error-level lint findings\n"
     "  --dry-run    show what would change and the lint findings; change nothing (exit 1\n"
     "               when the import would be refused)\n"
     "  --status N   the status of entries that carry none\n",
     ACCEPTS(O_FORMAT) | ACCEPTS(O_REPLACE) | ACCEPTS(O_FORCE) | ACCEPTS(O_DRY_RUN) |
         ACCEPTS(O_STATUS),
     1, 1, dt_rcli_cmd_import, NULL},
    {"export", "export",
     "Prints every store rule as a rule-file line, SOURCE TARGET STATUS [OPTIONS], with its\n"
     "note as a comment, all from one version of the store:\n"
     "  detour rules export > rules.txt && detour rules import --replace rules.txt\n"
     "puts the same rules back (notes are not read back by an import).\n",
     0, 0, 0, dt_rcli_cmd_export, NULL},
    {"match", "match URL [--method M]",
     "Shows which rule answers URL (absolute; http:// is assumed without a scheme) and the\n"
     "exact response the redirect listener sends for it.\n"
     "\n"
     "  --method M   the request's method (default GET)\n",
     ACCEPTS(O_METHOD), 1, 1, dt_rcli_cmd_match, NULL},
    {"history", "history [ID] [--limit N] [--before V]",
     "Lists the changes to the store's rules (or to rule ID), newest first, each with the\n"
     "old and the new rule.\n"
     "\n"
     "  --limit N    at most N changes (default 100)\n"
     "  --before V   changes made before version V\n",
     ACCEPTS(O_LIMIT) | ACCEPTS(O_BEFORE), 0, 1, dt_rcli_cmd_history_changes, NULL},
    {"versions", "versions [--limit N] [--before V]",
     "Lists the store's versions, newest first: when, who (api, import, rollback) and how\n"
     "many rules each added, changed and removed.\n"
     "\n"
     "  --limit N    at most N versions (default 100)\n"
     "  --before V   versions before V\n",
     ACCEPTS(O_LIMIT) | ACCEPTS(O_BEFORE), 0, 0, dt_rcli_cmd_versions, NULL},
    {"rollback", "rollback VERSION [--dry-run]",
     "Makes the store's rules those of VERSION again, as a new version (0: no rules).\n"
     "\n"
     "  --dry-run   show what would change; change nothing\n",
     ACCEPTS(O_DRY_RUN), 1, 1, dt_rcli_cmd_rollback, NULL},
    {"certs", "certs [renew NAME]",
     "Lists the names the server gets certificates for by ACME (serve --acme-email;\n"
     "docs/acme.md): NAME, STATUS (valid, pending, failing), NOT AFTER, ISSUER and the\n"
     "last order's error. 'certs renew NAME' orders NAME's certificate again now (a\n"
     "failing one too, without waiting for its next try).\n",
     0, 0, 2, dt_rcli_cmd_certs, NULL},
    {"backup", "backup FILE [--db PATH]",
     "Copies the store (the server's --db file) to FILE, while the server runs and writes\n"
     "to it or not: a copy of one committed version, read by SQLite's online backup on a\n"
     "read-only connection of its own (the server's writes go on meanwhile). The copy is\n"
     "written beside FILE, synced, then renamed over FILE: FILE is never half written.\n"
     "It holds the rules with every version and change; not the admin token. It reads the\n"
     "file, not the admin API: no --server, no token. A PostgreSQL store is backed up with\n"
     "pg_dump.\n"
     "\n"
     "  --db PATH   the store (default ./detour.db, as for serve)\n"
     "\n"
     "To restore: stop the server, remove PATH-wal and PATH-shm if they are there, put the\n"
     "copy at PATH, start the server (docs/admin.md, Backups).\n"
     "\n"
     "Example: detour rules backup --db /var/lib/detour/detour.db /var/backups/detour.db\n",
     ACCEPTS(O_DB), 1, 1, NULL, dt_rcli_cmd_backup},
};

static void command_help(const struct command *cmd)
{
    printf("Usage: detour rules %s%s\n\n%s",
           cmd->run_local ? "[--json] " : "[--server URL] [--token-file FILE] [--json] ",
           cmd->synopsis, cmd->help);
    printf("\n%s\n'detour rules --help' lists the other commands and the options of all.\n",
           cmd->run_local ? "With --json, what was done is printed as one JSON object."
                          : "With --json, the API's answer is printed as it comes "
                            "(docs/admin.md).");
}

/* Reads the bearer token: DETOUR_TOKEN, else the token file. Returns 0 or DT_EXIT_USAGE after
 * a message. */
int dt_rcli_load_token(struct client *c, const char *file)
{
    const char *env = getenv("DETOUR_TOKEN");
    char token[TOKEN_FILE_MAX + 1];
    size_t n;
    if (env && *env) {
        n = strlen(env);
        if (n >= sizeof(token))
            n = sizeof(token) - 1;
        memcpy(token, env, n);
        c->token_from = "DETOUR_TOKEN";
    } else {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr,
                    "detour rules: cannot read the token file %s: %s (set DETOUR_TOKEN "
                    "or use --token-file FILE; the server writes it next to its --db)\n",
                    file, strerror(errno));
            return DT_EXIT_USAGE;
        }
        n = fread(token, 1, sizeof(token), f);
        bool failed = ferror(f);
        int err = errno;
        fclose(f);
        if (failed) {
            fprintf(stderr, "detour rules: cannot read the token file %s: %s\n", file,
                    strerror(err));
            return DT_EXIT_USAGE;
        }
        if (n == sizeof(token)) {
            fprintf(stderr, "detour rules: %s is too large to be a token file\n", file);
            return DT_EXIT_USAGE;
        }
        c->token_from = file;
    }
    while (n && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' ' ||
                 token[n - 1] == '\t'))
        n--;
    token[n] = '\0';
    if (n == 0 || n > TOKEN_MAX) {
        fprintf(stderr, "detour rules: the token from %s is %s\n", c->token_from,
                n ? "longer than 255 bytes" : "empty");
        return DT_EXIT_USAGE;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f) {
            fprintf(stderr,
                    "detour rules: the token from %s has a character a token cannot "
                    "have (white space or a control character)\n",
                    c->token_from);
            return DT_EXIT_USAGE;
        }
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %.*s", (int)n, token);
    return 0;
}

/* Where the API is: http(s)://..., ADDR:PORT, or a Unix socket (unix:PATH, or a path).
 * Returns 0 or DT_EXIT_USAGE after a message. */
static int set_server(struct client *c, const char *server)
{
    c->server = server;
    if (!strncmp(server, "unix:", 5) || server[0] == '/' || server[0] == '.') {
        const char *path = strncmp(server, "unix:", 5) ? server : server + 5;
        if (!*path)
            return dt_rcli_usage(NULL,
                                 "--server: unix: needs a socket's path (unix:/run/detour.sock)");
        c->socket_path = dt_xstrndup(path, strlen(path));
        c->base = dt_xstrndup("http://localhost", 16);
        return 0;
    }
    const char *sep = strstr(server, "://");
    if (sep && strncmp(server, "http://", 7) && strncmp(server, "https://", 8))
        return dt_rcli_usage(NULL, "--server: '%.*s' is not http://, https:// or unix:", SHOWN_MAX,
                             server);
    if (!*server || (sep && !sep[3]))
        return dt_rcli_usage(NULL, "--server: no address");
    struct dt_buf b;
    dt_buf_init(&b);
    dt_buf_appendf(&b, "%s%s", sep ? "" : "http://", server);
    while (b.len && b.ptr[b.len - 1] == '/')
        b.len--;
    dt_buf_terminate(&b);
    c->base = b.ptr;
    return 0;
}

/* The long name of option opt (argv[optind - 1] is its value when it was given apart). */
static const char *option_name(int opt)
{
    for (const struct option *o = all_options; o->name; o++)
        if (o->val == opt)
            return o->name;
    return "?";
}

/* An option of any command; sets *done (and returns the exit status) for --help or errors. */
static int take_option(const struct command *cmd, int opt, char **argv, struct args *a, bool *done)
{
    uint64_t v;
    const char *name = cmd ? cmd->name : "rules";
    char label[32];
    snprintf(label, sizeof(label), cmd ? "rules %s" : "rules", name);
    *done = true;
    if (opt >= O_TEXT && cmd && !(cmd->accepts & ACCEPTS(opt)))
        return dt_rcli_usage(cmd, "%s does not take --%s", cmd->name, option_name(opt));
    switch (opt) {
    case 'h':
        if (cmd)
            command_help(cmd);
        else
            fputs(help_top, stdout);
        return DT_EXIT_OK;
    case ':':
        return dt_rcli_usage(cmd, "%.*s needs a value", SHOWN_MAX, argv[optind - 1]);
    case '?':
        if (optopt > 0 && optopt < 256)
            return dt_rcli_usage(cmd, "unknown option '-%c'", optopt);
        return dt_rcli_usage(cmd, "unknown option '%.*s'", SHOWN_MAX, argv[optind - 1]);
    case O_SERVER:
        a->server = optarg;
        a->remote_given = true;
        break;
    case O_TOKEN_FILE:
        a->token_file = optarg;
        a->remote_given = true;
        break;
    case O_JSON:
        a->json = true;
        break;
    case O_TEXT:
        a->text = optarg;
        break;
    case O_HOST:
        a->host = optarg;
        break;
    case O_STATUS:
        if (dt_opt_uint(label, "--status", optarg, 300, 399, &v))
            return DT_EXIT_USAGE;
        if (!dt_http_is_redirect(v))
            return dt_rcli_usage(cmd, "--status: %s is not 301, 302, 303, 307 or 308", optarg);
        a->status = (int)v;
        break;
    case O_OLD_TEMPORARY:
        a->old_temporary = true;
        break;
    case O_LIMIT:
        if (dt_opt_uint(label, "--limit", optarg, 1, PAGE_ALL, &a->limit))
            return DT_EXIT_USAGE;
        break;
    case O_ALL:
        a->all = true;
        break;
    case O_NOTE:
        a->note = optarg;
        break;
    case O_DRY_RUN:
        a->dry_run = true;
        break;
    case O_FORMAT:
        a->format = optarg;
        break;
    case O_REPLACE:
        a->replace = true;
        break;
    case O_FORCE:
        a->force = true;
        break;
    case O_METHOD:
        a->method = optarg;
        break;
    case O_BEFORE:
        if (dt_opt_uint(label, "--before", optarg, 1, INT64_MAX, &a->before))
            return DT_EXIT_USAGE;
        break;
    case O_DB:
        a->db = optarg;
        break;
    default:
        return dt_rcli_usage(cmd, "unknown option '%.*s'", SHOWN_MAX, argv[optind - 1]);
    }
    *done = false;
    return DT_EXIT_OK;
}

int dt_cmd_rules(int argc, char **argv)
{
    struct args a = {.server = DEFAULT_SERVER, .token_file = DEFAULT_TOKEN_FILE, .db = DEFAULT_DB};
    bool done;
    int opt, rc;
    /* The options before the command; '+' stops at the command's name. */
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:h", global_options, NULL)) != -1) {
        rc = take_option(NULL, opt, argv, &a, &done);
        if (done)
            return rc;
    }
    if (optind >= argc)
        return dt_rcli_usage(NULL, "which command? list, get, add, set, rm, import, export, match, "
                                   "history, versions, rollback, certs or backup");
    const struct command *cmd = NULL;
    for (size_t i = 0; i < DT_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[optind], commands[i].name))
            cmd = &commands[i];
    if (!cmd) {
        if (!strcmp(argv[optind], "help")) {
            fputs(help_top, stdout);
            return DT_EXIT_OK;
        }
        return dt_rcli_usage(NULL,
                             "unknown command '%.*s' (list, get, add, set, rm, import, export, "
                             "match, history, versions, rollback, certs, backup)",
                             SHOWN_MAX, argv[optind]);
    }
    dt_rcli_current = cmd;
    /* The command's options and arguments, in any order; the global options too. */
    int sargc = argc - optind;
    char **sargv = argv + optind;
    optind = 0;
    while ((opt = getopt_long(sargc, sargv, ":h", all_options, NULL)) != -1) {
        rc = take_option(cmd, opt, sargv, &a, &done);
        if (done)
            return rc;
    }
    a.pos = sargv + optind;
    a.npos = sargc - optind;
    if (a.npos < cmd->min_pos || (cmd->max_pos >= 0 && a.npos > cmd->max_pos)) {
        if (a.npos > cmd->max_pos && cmd->max_pos >= 0)
            return dt_rcli_usage(cmd, "unexpected argument '%.*s'", SHOWN_MAX, a.pos[cmd->max_pos]);
        return dt_rcli_usage(cmd, "missing arguments");
    }
    if (cmd->run_local)
        return cmd->run_local(&a);

    struct client c = {.json = a.json, .token_file = a.token_file};
    rc = set_server(&c, a.server);
    if (rc) {
        free(c.base);
        free(c.socket_path);
        return rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "detour rules: libcurl did not initialise\n");
        rc = DT_EXIT_FAIL;
        goto out;
    }
    c.curl = curl_easy_init();
    if (!c.curl) {
        fprintf(stderr, "detour rules: libcurl did not initialise\n");
        rc = DT_EXIT_FAIL;
    } else {
        rc = cmd->run(&c, &a);
        curl_easy_cleanup(c.curl);
    }
    curl_global_cleanup();
out:
    memset(c.auth, 0, sizeof(c.auth));
    free(c.base);
    free(c.socket_path);
    return rc;
}
