/* serve: `detour serve`, the redirect server's command line. */
#include "admin/admin.h"
#include "cli/cli.h"
#include "rules/import.h"
#include "server/server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "Usage: detour serve [OPTIONS]\n"
    "\n"
    "Answers HTTP requests with redirects (307 Temporary Redirect by default) by the rules\n"
    "in the rule files and in the store, which the admin API changes while the server runs\n"
    "(docs/admin.md). SIGHUP re-reads the rule files (a bad file keeps the rules in use);\n"
    "SIGTERM or SIGINT stops accepting, finishes what is in flight and exits 0.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT        listen here; repeatable (default 127.0.0.1:8307);\n"
    "                            [::1]:8307 for IPv6, *:8307 for every IPv4 address,\n"
    "                            port 0 for any free port (the log line says which)\n"
    "  --rules FILE              read rules from FILE; repeatable (syntax: docs/rules.md)\n"
    "  --rules-format FORMAT     read the --rules files that follow as detour, csv, nginx\n"
    "                            or netlify (default: by name: *.csv, *.map, _redirects;\n"
    "                            docs/import.md)\n"
    "  --workers N               worker threads (default: one per core)\n"
    "  --db PATH                 the SQLite store of the admin API's rules (default\n"
    "                            ./detour.db; :memory: keeps nothing)\n"
    "  --admin ADDR:PORT|PATH    the admin API's listener (default 127.0.0.1:9307; a path\n"
    "                            or unix:PATH is a Unix socket; 'off' for none)\n"
    "  --admin-token-file FILE   the admin API's bearer token, created (mode 600) if missing\n"
    "                            (default: the --db path + .token)\n"
    "  --admin-max-body SIZE     largest admin request content, imports (default 256m)\n"
    "  --access-log FILE         log every answered request in the combined format,\n"
    "                            buffered (SIGUSR1 reopens FILE, for logrotate)\n"
    "  --max-temporary-age AGE   307s in place longer are listed and counted (S10; default\n"
    "                            30d; 'off')\n"
    "  --check                   load the rules, report errors, and exit (0 if they load)\n"
    "\n"
    "Limits (a request beyond one gets the status in brackets):\n"
    "  --max-request-line SIZE   request line (default 8k) [414]\n"
    "  --max-header-size SIZE    header section (default 32k) [431]\n"
    "  --max-header-fields N     header fields (default 100) [431]\n"
    "  --max-body SIZE           request content drained to keep the connection\n"
    "                            (default 1m); larger content is answered, then the\n"
    "                            connection closed\n"
    "  --header-timeout TIME     a started request must arrive whole within TIME\n"
    "                            (default 10s) [408]\n"
    "  --idle-timeout TIME       an idle keep-alive connection is closed after TIME\n"
    "                            (default 60s)\n"
    "  --shutdown-timeout TIME   on SIGTERM, time given to requests in flight (default 4s)\n"
    "\n"
    "  --log-level LEVEL         debug, info (default), warn or error\n"
    "  -h, --help                show this help\n"
    "\n"
    "SIZE takes k, m or g (1k = 1024); TIME takes ms, s, m or h (default s).\n"
    "Logs go to stderr: one line per start, reload, stop and error; none per request.\n";

enum {
    O_LISTEN = 256,
    O_RULES,
    O_WORKERS,
    O_CHECK,
    O_MAX_LINE,
    O_MAX_HEADER,
    O_MAX_FIELDS,
    O_MAX_BODY,
    O_HEADER_TIMEOUT,
    O_IDLE_TIMEOUT,
    O_SHUTDOWN_TIMEOUT,
    O_LOG_LEVEL,
    O_RULES_FORMAT,
    O_DB,
    O_ADMIN,
    O_TOKEN_FILE,
    O_ADMIN_MAX_BODY,
    O_MAX_TEMP_AGE,
    O_ACCESS_LOG,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"rules", required_argument, NULL, O_RULES},
    {"workers", required_argument, NULL, O_WORKERS},
    {"check", no_argument, NULL, O_CHECK},
    {"max-request-line", required_argument, NULL, O_MAX_LINE},
    {"max-header-size", required_argument, NULL, O_MAX_HEADER},
    {"max-header-fields", required_argument, NULL, O_MAX_FIELDS},
    {"max-body", required_argument, NULL, O_MAX_BODY},
    {"header-timeout", required_argument, NULL, O_HEADER_TIMEOUT},
    {"idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT},
    {"shutdown-timeout", required_argument, NULL, O_SHUTDOWN_TIMEOUT},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"rules-format", required_argument, NULL, O_RULES_FORMAT},
    {"db", required_argument, NULL, O_DB},
    {"admin", required_argument, NULL, O_ADMIN},
    {"admin-token-file", required_argument, NULL, O_TOKEN_FILE},
    {"admin-max-body", required_argument, NULL, O_ADMIN_MAX_BODY},
    {"max-temporary-age", required_argument, NULL, O_MAX_TEMP_AGE},
    {"access-log", required_argument, NULL, O_ACCESS_LOG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define DAY_MS (24ULL * 3600 * 1000)

int dt_cmd_serve(int argc, char **argv)
{
    struct dt_server_config cfg;
    dt_server_config_init(&cfg);
    struct dt_listen_addr *listen = NULL;
    size_t nlisten = 0;
    struct dt_rule_file *rules = NULL;
    size_t nrules = 0;
    int format = -1; /* -1: by file name */
    bool check = false;
    int status = DT_EXIT_USAGE;
    uint64_t v;
    char err[256];
    struct dt_admin_options ao;
    dt_admin_options_init(&ao);
    const char *admin = "127.0.0.1:9307";
    struct dt_listen_addr admin_addr;
    cfg.admin_limits = cfg.limits;
    cfg.admin_limits.max_body = 256ULL << 20;

    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN:
            listen = dt_xrealloc(listen, (nlisten + 1) * sizeof(*listen));
            if (dt_listen_parse(optarg, &listen[nlisten], err, sizeof(err)) != 0) {
                dt_usage_error("serve", "--listen %s", err);
                goto out;
            }
            nlisten++;
            break;
        case O_RULES:
            rules = dt_xrealloc(rules, (nrules + 1) * sizeof(*rules));
            rules[nrules].path = optarg;
            rules[nrules++].format = format >= 0 ? format : (int)dt_rule_format_guess(optarg);
            break;
        case O_RULES_FORMAT: {
            enum dt_rule_format f;
            if (dt_rule_format_parse(optarg, &f) != 0) {
                dt_usage_error("serve", "--rules-format: '%s' is not detour, csv, nginx or netlify",
                               optarg);
                goto out;
            }
            format = (int)f;
            break;
        }
        case O_DB:
            if (!optarg[0]) {
                dt_usage_error("serve", "--db needs a path (or :memory:)");
                goto out;
            }
            ao.db_path = optarg;
            break;
        case O_ADMIN:
            admin = optarg;
            break;
        case O_ACCESS_LOG:
            cfg.access_log = optarg;
            break;
        case O_TOKEN_FILE:
            ao.token_file = optarg;
            break;
        case O_ADMIN_MAX_BODY:
            if (dt_opt_size("serve", "--admin-max-body", optarg, 1024, 1ULL << 34, &v))
                goto out;
            cfg.admin_limits.max_body = v;
            break;
        case O_MAX_TEMP_AGE:
            if (!strcmp(optarg, "off")) {
                ao.max_temporary_age = -1;
                break;
            }
            if (dt_opt_duration("serve", "--max-temporary-age", optarg, 0,
                                100ULL * 365 * 86400 * 1000, &v))
                goto out;
            ao.max_temporary_age = (int64_t)(v / 1000);
            break;
        case O_WORKERS:
            if (dt_opt_uint("serve", "--workers", optarg, 1, 1024, &v))
                goto out;
            cfg.workers = (unsigned)v;
            break;
        case O_CHECK:
            check = true;
            break;
        case O_MAX_LINE:
            if (dt_opt_size("serve", "--max-request-line", optarg, 256, 1 << 20, &v))
                goto out;
            cfg.limits.max_request_line = (uint32_t)v;
            break;
        case O_MAX_HEADER:
            if (dt_opt_size("serve", "--max-header-size", optarg, 1024, 1 << 20, &v))
                goto out;
            cfg.limits.max_header_bytes = (uint32_t)v;
            break;
        case O_MAX_FIELDS:
            if (dt_opt_uint("serve", "--max-header-fields", optarg, 1, 10000, &v))
                goto out;
            cfg.limits.max_header_fields = (uint32_t)v;
            break;
        case O_MAX_BODY:
            if (dt_opt_size("serve", "--max-body", optarg, 0, 1ULL << 40, &v))
                goto out;
            cfg.limits.max_body = v;
            break;
        case O_HEADER_TIMEOUT:
            if (dt_opt_duration("serve", "--header-timeout", optarg, 10, DAY_MS,
                                &cfg.header_timeout_ms))
                goto out;
            break;
        case O_IDLE_TIMEOUT:
            if (dt_opt_duration("serve", "--idle-timeout", optarg, 10, DAY_MS,
                                &cfg.idle_timeout_ms))
                goto out;
            break;
        case O_SHUTDOWN_TIMEOUT:
            if (dt_opt_duration("serve", "--shutdown-timeout", optarg, 0, 3600 * 1000,
                                &cfg.shutdown_timeout_ms))
                goto out;
            break;
        case O_LOG_LEVEL:
            if (!strcmp(optarg, "debug"))
                dt_log_set_level(DT_LOG_DEBUG);
            else if (!strcmp(optarg, "info"))
                dt_log_set_level(DT_LOG_INFO);
            else if (!strcmp(optarg, "warn"))
                dt_log_set_level(DT_LOG_WARN);
            else if (!strcmp(optarg, "error"))
                dt_log_set_level(DT_LOG_ERROR);
            else {
                dt_usage_error("serve", "--log-level: '%s' is not debug, info, warn or error",
                               optarg);
                goto out;
            }
            break;
        case 'h':
            fputs(help, stdout);
            status = DT_EXIT_OK;
            goto out;
        case ':':
            dt_usage_error("serve", "%s needs a value", argv[optind - 1]);
            goto out;
        default:
            dt_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        dt_usage_error("serve", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!nlisten) {
        listen = dt_xcalloc(1, sizeof(*listen));
        if (dt_listen_parse("127.0.0.1:8307", &listen[0], err, sizeof(err)) != 0) {
            dt_usage_error("serve", "%s", err);
            goto out;
        }
        nlisten = 1;
    }
    cfg.listen = listen;
    cfg.nlisten = nlisten;
    cfg.rules = rules;
    cfg.nrules = nrules;
    if (check) {
        struct dt_table *t = dt_server_load_rules(&cfg);
        if (!t) {
            status = 2;
            goto out;
        }
        printf("ok: %zu rules\n", dt_table_size(t));
        dt_table_free(t);
        status = DT_EXIT_OK;
        goto out;
    }
    if (strcmp(admin, "off") != 0) {
        if (dt_listen_parse(admin, &admin_addr, err, sizeof(err)) != 0) {
            dt_usage_error("serve", "--admin %s", err);
            goto out;
        }
        cfg.admin = &admin_addr;
        cfg.nadmin = 1;
    }
    /* the admin API's header limits are the server's; only its content limit is its own */
    uint64_t admin_body = cfg.admin_limits.max_body;
    cfg.admin_limits = cfg.limits;
    cfg.admin_limits.max_body = admin_body;
    status = dt_admin_run(&cfg, &ao);
out:
    free(listen);
    free(rules);
    return status;
}
