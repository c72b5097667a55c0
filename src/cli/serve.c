/* serve: `detour serve`, the redirect server's command line. */
#include "admin/admin.h"
#include "cli/cli.h"
#include "rules/import.h"
#include "server/server.h"
#include "tls/tls.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>

#define ACME_DEFAULT_DIRECTORY "https://acme-v02.api.letsencrypt.org/directory"
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

static const char help[] =
    "Usage: detour serve [OPTIONS]\n"
    "\n"
    "Answers HTTP requests with redirects (307 Temporary Redirect by default) by the rules\n"
    "in the rule files and in the store, which the admin API changes while the server runs\n"
    "(docs/admin.md). SIGHUP re-reads the rule files and certificates (a bad file keeps\n"
    "the ones in use);\n"
    "SIGTERM or SIGINT stops accepting, finishes what is in flight and exits 0.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT        listen here; repeatable (default 127.0.0.1:8307);\n"
    "                            [::1]:8307 for IPv6, *:8307 for every IPv4 address,\n"
    "                            port 0 for any free port (the log line says which)\n"
    "  --listen-tls ADDR:PORT    listen here with TLS (HTTPS); repeatable; needs --cert\n"
    "                            or --cert-dir (the default --listen applies only when\n"
    "                            no listener is given)\n"
    "  --cert FILE               a PEM file with a certificate, its chain and its key (or\n"
    "                            the key in NAME.key beside NAME.pem); repeatable; the\n"
    "                            client's server name (SNI) picks one, else the first\n"
    "  --cert-dir DIR            every *.pem file in DIR, as --cert\n"
    "  --hsts VALUE              send Strict-Transport-Security: VALUE on every answer\n"
    "                            over TLS (never over plain HTTP), VALUE being\n"
    "                            'max-age=N[; includeSubDomains][; preload]'\n"
    "  --redirect-to-https       a plain-HTTP request for a host a certificate names gets\n"
    "                            308 to the same https URL\n"
    "  --acme-email EMAIL        get certificates by ACME (RFC 8555) for every host the\n"
    "                            rules name, as they change (docs/acme.md); needs a\n"
    "                            --listen-tls; HTTP-01 on a --listen (port 80), else\n"
    "                            TLS-ALPN-01; EMAIL is the account's contact\n"
    "  --acme-directory URL      the CA's directory (default: Let's Encrypt's production\n"
    "                            one, " ACME_DEFAULT_DIRECTORY ")\n"
    "  --acme-ca FILE            trust this CA for the directory's HTTPS (tests)\n"
    "  --acme-storage DIR        the account key, certificates and keys (mode 700;\n"
    "                            default: the --db path + .acme)\n"
    "  --acme-on-demand          also get a certificate for a name first seen in a TLS\n"
    "                            handshake when host rules (exact or wildcard) answer it;\n"
    "                            the handshake gets the default certificate meanwhile\n"
    "  --rules FILE              read rules from FILE; repeatable (syntax: docs/rules.md)\n"
    "  --rules-format FORMAT     read the --rules files that follow as detour, csv, nginx\n"
    "                            or netlify (default: by name: *.csv, *.map, _redirects;\n"
    "                            docs/import.md)\n"
    "  --workers N               worker threads (default: one per core)\n"
    "  --db PATH                 the SQLite store of the admin API's rules (default\n"
    "                            ./detour.db; :memory: keeps nothing)\n"
    "  --admin ADDR:PORT|PATH    the admin API's listener (default 127.0.0.1:9307; a path\n"
    "                            or unix:PATH is a Unix socket; 'off' for none)\n"
    "  --admin-tls ADDR:PORT     also (or, with --admin off, only) the admin API over\n"
    "                            TLS, with the certificates of --cert, --cert-dir or\n"
    "                            ACME (HTTP/1.1): to reach it from another machine\n"
    "  --admin-token-file FILE   the admin API's bearer token, created (mode 600) if missing\n"
    "                            (default: the --db path + .token)\n"
    "  --admin-max-body SIZE     largest admin request content, imports (default 256m)\n"
    "  --admin-auth-failures N   failed tokens in a row from one address before its admin\n"
    "                            requests are refused (429) for 1 s, doubling up to 60 s\n"
    "                            (default 5; 0: never, e.g. behind a proxy)\n"
    "  --access-log FILE         log every answered request in the combined format,\n"
    "                            buffered (SIGUSR1 reopens FILE, for logrotate)\n"
    "  --max-temporary-age AGE   307s in place longer are listed and counted (S10; default\n"
    "                            30d; 'off')\n"
    "  --check                   load the rules, report errors, and exit (0 if they load)\n"
    "\n"
    "Limits (a request beyond one gets the status in brackets):\n"
    "  --max-request-line SIZE   request line (default 8k) [414; 501 when the method\n"
    "                            alone is that long]\n"
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
    "  --max-connections N       redirect connections open at once (default: no limit);\n"
    "                            beyond, a new one gets 503 and is closed (TLS: closed)\n"
    "  --max-connections-per-ip N  the same from one client address\n"
    "  --proxy-protocol          the --listen or --listen-tls that follows expects a PROXY\n"
    "                            protocol header (v1 or v2, from a load balancer) before\n"
    "                            each connection's bytes: its client address is the one the\n"
    "                            access log and --max-connections-per-ip see; a connection\n"
    "                            without a valid header is closed\n"
    "  --trusted-proxy CIDR      the balancers' addresses (10.0.0.0/8, 2001:db8::/32, one\n"
    "                            address); repeatable; needed with --proxy-protocol, whose\n"
    "                            listeners close connections from any other source\n"
    "\n"
    "  --user USER[:GROUP]       started as root: bind the listeners, then run as USER\n"
    "                            (its groups, or GROUP); the store, token, certificates,\n"
    "                            ACME storage and access log must be USER's to use\n"
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
    O_ADMIN_AUTH_FAILURES,
    O_MAX_TEMP_AGE,
    O_ACCESS_LOG,
    O_LISTEN_TLS,
    O_CERT,
    O_CERT_DIR,
    O_HSTS,
    O_REDIRECT_HTTPS,
    O_ACME_EMAIL,
    O_ACME_DIRECTORY,
    O_ACME_CA,
    O_ACME_STORAGE,
    O_ACME_ON_DEMAND,
    O_MAX_CONNS,
    O_MAX_CONNS_IP,
    O_PROXY_PROTOCOL,
    O_TRUSTED_PROXY,
    O_USER,
    O_ADMIN_TLS,
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
    {"admin-auth-failures", required_argument, NULL, O_ADMIN_AUTH_FAILURES},
    {"max-temporary-age", required_argument, NULL, O_MAX_TEMP_AGE},
    {"access-log", required_argument, NULL, O_ACCESS_LOG},
    {"listen-tls", required_argument, NULL, O_LISTEN_TLS},
    {"cert", required_argument, NULL, O_CERT},
    {"cert-dir", required_argument, NULL, O_CERT_DIR},
    {"hsts", required_argument, NULL, O_HSTS},
    {"redirect-to-https", no_argument, NULL, O_REDIRECT_HTTPS},
    {"acme-email", required_argument, NULL, O_ACME_EMAIL},
    {"acme-directory", required_argument, NULL, O_ACME_DIRECTORY},
    {"acme-ca", required_argument, NULL, O_ACME_CA},
    {"acme-storage", required_argument, NULL, O_ACME_STORAGE},
    {"acme-on-demand", no_argument, NULL, O_ACME_ON_DEMAND},
    {"max-connections", required_argument, NULL, O_MAX_CONNS},
    {"max-connections-per-ip", required_argument, NULL, O_MAX_CONNS_IP},
    {"proxy-protocol", no_argument, NULL, O_PROXY_PROTOCOL},
    {"trusted-proxy", required_argument, NULL, O_TRUSTED_PROXY},
    {"user", required_argument, NULL, O_USER},
    {"admin-tls", required_argument, NULL, O_ADMIN_TLS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define DAY_MS (24ULL * 3600 * 1000)

/* What the command line asks for. */
struct serve_args {
    struct dt_server_config cfg;
    struct dt_listen_addr *listen; /* malloc'd */
    size_t nlisten;
    struct dt_rule_file *rules; /* malloc'd */
    size_t nrules;
    int format; /* of the next --rules: -1, by file name */
    bool check;
    struct dt_admin_options ao;
    const char *admin;
    const char **certs; /* malloc'd */
    size_t ncerts;
    char hsts[128];
    char *acme_storage;      /* malloc'd: the default, from --db */
    bool proxy_next;         /* --proxy-protocol given: for the next listener */
    struct dt_cidr *trusted; /* malloc'd: --trusted-proxy */
    size_t ntrusted;
    const char *user;      /* --user USER[:GROUP] */
    const char *admin_tls; /* --admin-tls ADDR:PORT */
};

/* --hsts: 'max-age=N[; includeSubDomains][; preload]' (RFC 6797 6.1; directive names in
 * any case, blanks around ';'), written back in that form. Returns 0 or -1. */
static int parse_hsts(const char *v, char *out, size_t outlen)
{
    int64_t age = -1;
    bool sub = false, preload = false;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ";");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        struct dt_str d = dt_str_make(p, m);
        if (m > 8 && dt_str_ieq(dt_str_make(p, 8), "max-age=") && age < 0) {
            struct dt_str num = dt_str_make(p + 8, m - 8);
            if (num.len > 1 && num.ptr[0] == '"' && num.ptr[num.len - 1] == '"')
                num = dt_str_make(num.ptr + 1, num.len - 2);
            if (dt_parse_int(num, 0, 100LL * 365 * 86400, &age) != 0)
                goto bad;
        } else if (dt_str_ieq(d, "includeSubDomains") && !sub) {
            sub = true;
        } else if (dt_str_ieq(d, "preload") && !preload) {
            preload = true;
        } else {
            goto bad;
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    if (age < 0)
        goto bad;
    snprintf(out, outlen, "max-age=%lld%s%s", (long long)age, sub ? "; includeSubDomains" : "",
             preload ? "; preload" : "");
    return 0;
bad:
    dt_usage_error("serve",
                   "--hsts: '%s' is not 'max-age=SECONDS[; includeSubDomains][; preload]' "
                   "(each directive once)",
                   v);
    return -1;
}

/* The options that set a limit or a timeout of the server. Returns 1 when opt is one of them
 * and was set, 0 when it is not one of them, -1 after a usage error. */
static int limit_option(int opt, struct dt_server_config *cfg)
{
    uint64_t v;
    switch (opt) {
    case O_ADMIN_MAX_BODY:
        if (dt_opt_size("serve", "--admin-max-body", optarg, 1024, 1ULL << 34, &v))
            return -1;
        cfg->admin_limits.max_body = v;
        return 1;
    case O_MAX_LINE:
        if (dt_opt_size("serve", "--max-request-line", optarg, 256, 1 << 20, &v))
            return -1;
        cfg->limits.max_request_line = (uint32_t)v;
        return 1;
    case O_MAX_HEADER:
        if (dt_opt_size("serve", "--max-header-size", optarg, 1024, 1 << 20, &v))
            return -1;
        cfg->limits.max_header_bytes = (uint32_t)v;
        return 1;
    case O_MAX_FIELDS:
        if (dt_opt_uint("serve", "--max-header-fields", optarg, 1, 10000, &v))
            return -1;
        cfg->limits.max_header_fields = (uint32_t)v;
        return 1;
    case O_MAX_CONNS:
        if (dt_opt_uint("serve", "--max-connections", optarg, 1, 10000000, &v))
            return -1;
        cfg->max_connections = (unsigned)v;
        return 1;
    case O_MAX_CONNS_IP:
        if (dt_opt_uint("serve", "--max-connections-per-ip", optarg, 1, 10000000, &v))
            return -1;
        cfg->max_connections_per_ip = (unsigned)v;
        return 1;
    case O_MAX_BODY:
        if (dt_opt_size("serve", "--max-body", optarg, 0, 1ULL << 40, &v))
            return -1;
        cfg->limits.max_body = v;
        return 1;
    case O_HEADER_TIMEOUT:
        return dt_opt_duration("serve", "--header-timeout", optarg, 10, DAY_MS,
                               &cfg->header_timeout_ms)
                   ? -1
                   : 1;
    case O_IDLE_TIMEOUT:
        return dt_opt_duration("serve", "--idle-timeout", optarg, 10, DAY_MS, &cfg->idle_timeout_ms)
                   ? -1
                   : 1;
    case O_SHUTDOWN_TIMEOUT:
        return dt_opt_duration("serve", "--shutdown-timeout", optarg, 0, 3600 * 1000,
                               &cfg->shutdown_timeout_ms)
                   ? -1
                   : 1;
    }
    return 0;
}

/* --log-level: returns 0, or -1 after a usage error. */
static int log_level(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"debug", DT_LOG_DEBUG},
                  {"info", DT_LOG_INFO},
                  {"warn", DT_LOG_WARN},
                  {"error", DT_LOG_ERROR}};
    for (size_t i = 0; i < DT_ARRAY_LEN(levels); i++)
        if (!strcmp(name, levels[i].name)) {
            dt_log_set_level(levels[i].level);
            return 0;
        }
    dt_usage_error("serve", "--log-level: '%s' is not debug, info, warn or error", name);
    return -1;
}

/* The options of listeners, certificates and HTTPS. Returns 0, or -1 after a usage error. */
static int listen_option(int opt, struct serve_args *a)
{
    char err[256];
    switch (opt) {
    case O_LISTEN:
    case O_LISTEN_TLS:
        a->listen = dt_xrealloc(a->listen, (a->nlisten + 1) * sizeof(*a->listen));
        if (dt_listen_parse(optarg, &a->listen[a->nlisten], err, sizeof(err)) != 0) {
            dt_usage_error("serve", "%s %s", opt == O_LISTEN ? "--listen" : "--listen-tls", err);
            return -1;
        }
        if (opt == O_LISTEN_TLS && a->listen[a->nlisten].ss.ss_family == AF_UNIX) {
            dt_usage_error("serve", "--listen-tls %s: TLS listens on TCP, not a Unix socket",
                           optarg);
            return -1;
        }
        a->listen[a->nlisten].tls = opt == O_LISTEN_TLS;
        a->listen[a->nlisten++].proxy = a->proxy_next;
        a->proxy_next = false;
        return 0;
    case O_PROXY_PROTOCOL:
        a->proxy_next = true;
        return 0;
    case O_TRUSTED_PROXY:
        a->trusted = dt_xrealloc(a->trusted, (a->ntrusted + 1) * sizeof(*a->trusted));
        if (dt_cidr_parse(optarg, &a->trusted[a->ntrusted], err, sizeof(err)) != 0) {
            dt_usage_error("serve", "--trusted-proxy %s", err);
            return -1;
        }
        a->ntrusted++;
        return 0;
    case O_CERT:
        a->certs = dt_xrealloc(a->certs, (a->ncerts + 1) * sizeof(*a->certs));
        a->certs[a->ncerts++] = optarg;
        return 0;
    case O_CERT_DIR:
        if (a->cfg.cert_dir) {
            dt_usage_error("serve", "--cert-dir given twice");
            return -1;
        }
        a->cfg.cert_dir = optarg;
        return 0;
    case O_HSTS:
        if (parse_hsts(optarg, a->hsts, sizeof(a->hsts)) != 0)
            return -1;
        a->cfg.hsts = a->hsts;
        return 0;
    case O_ACME_EMAIL:
        if (!strchr(optarg, '@') || strpbrk(optarg, " \t\r\n\"<>")) {
            dt_usage_error("serve", "--acme-email: '%s' is not an e-mail address", optarg);
            return -1;
        }
        a->cfg.acme_email = optarg;
        return 0;
    case O_ACME_DIRECTORY:
        if (strncmp(optarg, "https://", 8) != 0 && strncmp(optarg, "http://", 7) != 0) {
            dt_usage_error("serve", "--acme-directory: '%s' is not an http(s) URL", optarg);
            return -1;
        }
        a->cfg.acme_directory = optarg;
        return 0;
    case O_ACME_CA:
        if (access(optarg, R_OK) != 0) {
            dt_usage_error("serve", "--acme-ca %s: cannot read it", optarg);
            return -1;
        }
        a->cfg.acme_ca = optarg;
        return 0;
    case O_ACME_STORAGE:
        if (!optarg[0]) {
            dt_usage_error("serve", "--acme-storage needs a directory");
            return -1;
        }
        a->cfg.acme_storage = optarg;
        return 0;
    case O_ACME_ON_DEMAND:
        a->cfg.acme_on_demand = true;
        return 0;
    default: /* O_REDIRECT_HTTPS */
        a->cfg.redirect_to_https = true;
        return 0;
    }
}

/* Reads the options into a. Returns -1 to go on, or the exit status (after --help, or a
 * usage error that has been reported). */
static int parse_args(int argc, char **argv, struct serve_args *a)
{
    uint64_t v;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        int limit = limit_option(opt, &a->cfg);
        if (limit < 0)
            return DT_EXIT_USAGE;
        if (limit)
            continue;
        switch (opt) {
        case O_LISTEN:
        case O_LISTEN_TLS:
        case O_CERT:
        case O_CERT_DIR:
        case O_HSTS:
        case O_REDIRECT_HTTPS:
        case O_ACME_EMAIL:
        case O_ACME_DIRECTORY:
        case O_ACME_CA:
        case O_ACME_STORAGE:
        case O_ACME_ON_DEMAND:
        case O_PROXY_PROTOCOL:
        case O_TRUSTED_PROXY:
            if (listen_option(opt, a) != 0)
                return DT_EXIT_USAGE;
            break;
        case O_RULES:
            a->rules = dt_xrealloc(a->rules, (a->nrules + 1) * sizeof(*a->rules));
            a->rules[a->nrules].path = optarg;
            a->rules[a->nrules++].format =
                a->format >= 0 ? a->format : (int)dt_rule_format_guess(optarg);
            break;
        case O_RULES_FORMAT: {
            enum dt_rule_format f;
            if (dt_rule_format_parse(optarg, &f) != 0) {
                dt_usage_error("serve", "--rules-format: '%s' is not detour, csv, nginx or netlify",
                               optarg);
                return DT_EXIT_USAGE;
            }
            a->format = (int)f;
            break;
        }
        case O_DB:
            if (!optarg[0]) {
                dt_usage_error("serve", "--db needs a path (or :memory:)");
                return DT_EXIT_USAGE;
            }
            a->ao.db_path = optarg;
            break;
        case O_ADMIN:
            a->admin = optarg;
            break;
        case O_USER:
            a->user = optarg;
            break;
        case O_ADMIN_TLS:
            a->admin_tls = optarg;
            break;
        case O_ACCESS_LOG:
            a->cfg.access_log = optarg;
            break;
        case O_TOKEN_FILE:
            a->ao.token_file = optarg;
            break;
        case O_ADMIN_AUTH_FAILURES:
            if (dt_opt_uint("serve", "--admin-auth-failures", optarg, 0, 1000000, &v))
                return DT_EXIT_USAGE;
            a->ao.auth_failures = (unsigned)v;
            break;
        case O_MAX_TEMP_AGE:
            if (!strcmp(optarg, "off")) {
                a->ao.max_temporary_age = -1;
                break;
            }
            if (dt_opt_duration("serve", "--max-temporary-age", optarg, 0,
                                100ULL * 365 * 86400 * 1000, &v))
                return DT_EXIT_USAGE;
            a->ao.max_temporary_age = (int64_t)(v / 1000);
            break;
        case O_WORKERS:
            if (dt_opt_uint("serve", "--workers", optarg, 1, 1024, &v))
                return DT_EXIT_USAGE;
            a->cfg.workers = (unsigned)v;
            break;
        case O_CHECK:
            a->check = true;
            break;
        case O_LOG_LEVEL:
            if (log_level(optarg) != 0)
                return DT_EXIT_USAGE;
            break;
        case 'h':
            fputs(help, stdout);
            return DT_EXIT_OK;
        case ':':
            dt_usage_error("serve", "%s needs a value", argv[optind - 1]);
            return DT_EXIT_USAGE;
        default:
            dt_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
            return DT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        dt_usage_error("serve", "unexpected argument '%s'", argv[optind]);
        return DT_EXIT_USAGE;
    }
    bool tls = false, proxy = false;
    for (size_t i = 0; i < a->nlisten; i++) {
        tls |= a->listen[i].tls;
        proxy |= a->listen[i].proxy;
    }
    if (a->proxy_next) {
        dt_usage_error("serve", "--proxy-protocol applies to the --listen or --listen-tls that "
                                "follows it, and none follows");
        return DT_EXIT_USAGE;
    }
    if (proxy && !a->ntrusted) {
        dt_usage_error("serve", "--proxy-protocol needs --trusted-proxy CIDR: the addresses of "
                                "the load balancers that send the header (0.0.0.0/0 and ::/0 "
                                "trust every source)");
        return DT_EXIT_USAGE;
    }
    if (a->ntrusted && !proxy) {
        dt_usage_error("serve", "--trusted-proxy needs a listener with --proxy-protocol");
        return DT_EXIT_USAGE;
    }
    a->cfg.trusted_proxies = a->trusted;
    a->cfg.ntrusted_proxies = a->ntrusted;
    if (!a->cfg.acme_email &&
        (a->cfg.acme_directory || a->cfg.acme_ca || a->cfg.acme_storage || a->cfg.acme_on_demand)) {
        dt_usage_error("serve", "%s needs --acme-email (which turns ACME on)",
                       a->cfg.acme_directory ? "--acme-directory"
                       : a->cfg.acme_ca      ? "--acme-ca"
                       : a->cfg.acme_storage ? "--acme-storage"
                                             : "--acme-on-demand");
        return DT_EXIT_USAGE;
    }
    if (a->cfg.acme_email && !tls) {
        dt_usage_error("serve", "--acme-email needs a --listen-tls (to serve the certificates)");
        return DT_EXIT_USAGE;
    }
    if (a->cfg.acme_email) {
        if (!a->cfg.acme_directory)
            a->cfg.acme_directory = ACME_DEFAULT_DIRECTORY;
        if (!a->cfg.acme_storage && !strcmp(a->ao.db_path, ":memory:")) {
            dt_usage_error("serve", "--acme-email with --db :memory: needs --acme-storage DIR");
            return DT_EXIT_USAGE;
        }
        if (!a->cfg.acme_storage) {
            size_t n = strlen(a->ao.db_path) + sizeof(".acme");
            a->acme_storage = dt_xmalloc(n);
            snprintf(a->acme_storage, n, "%s.acme", a->ao.db_path);
            a->cfg.acme_storage = a->acme_storage;
        }
    }
    if (a->admin_tls && !a->ncerts && !a->cfg.cert_dir && !a->cfg.acme_email) {
        dt_usage_error("serve", "--admin-tls needs a certificate: --cert FILE, --cert-dir DIR "
                                "or --acme-email");
        return DT_EXIT_USAGE;
    }
    if (tls && !a->ncerts && !a->cfg.cert_dir && !a->cfg.acme_email) {
        dt_usage_error("serve", "--listen-tls needs a certificate: --cert FILE or --cert-dir DIR");
        return DT_EXIT_USAGE;
    }
    if (!tls && !a->admin_tls &&
        (a->ncerts || a->cfg.cert_dir || a->cfg.hsts || a->cfg.redirect_to_https)) {
        dt_usage_error("serve", "%s needs a TLS listener: --listen-tls ADDR:PORT",
                       a->ncerts         ? "--cert"
                       : a->cfg.cert_dir ? "--cert-dir"
                       : a->cfg.hsts     ? "--hsts"
                                         : "--redirect-to-https");
        return DT_EXIT_USAGE;
    }
    a->cfg.certs = a->certs;
    a->cfg.ncerts = a->ncerts;
    return -1;
}

/* --user: the listeners opened now, as root (each taken later by the server), then the
 * process becomes USER for good: its groups (or GROUP), gid, uid. Returns 0, or -1 after
 * a message. */
static int drop_root(struct serve_args *a)
{
    char name[256], err[256];
    const char *colon = strchr(a->user, ':');
    size_t n = colon ? (size_t)(colon - a->user) : strlen(a->user);
    if (n == 0 || n >= sizeof(name)) {
        fprintf(stderr, "detour serve: --user '%s': expected USER or USER:GROUP\n", a->user);
        return -1;
    }
    memcpy(name, a->user, n);
    name[n] = '\0';
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        fprintf(stderr, "detour serve: --user: no user '%s'\n", name);
        return -1;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (colon) {
        struct group *gr = getgrnam(colon + 1);
        if (!gr) {
            fprintf(stderr, "detour serve: --user: no group '%s'\n", colon + 1);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        fprintf(stderr,
                "detour serve: --user needs detour started as root (it binds the "
                "listeners, then becomes %s)\n",
                name);
        return -1;
    }
    if (dt_listen_inherit(err, sizeof(err)) < 0) {
        fprintf(stderr, "detour serve: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < a->cfg.nlisten + a->cfg.nadmin; i++) {
        const struct dt_listen_addr *l =
            i < a->cfg.nlisten ? &a->cfg.listen[i] : &a->cfg.admin[i - a->cfg.nlisten];
        int rc = dt_listen_hold(l, a->cfg.backlog);
        if (rc < 0) {
            fprintf(stderr, "detour serve: cannot listen on %s: %s\n", l->text, strerror(-rc));
            return -1;
        }
        /* a Unix socket is its owner's only (mode 600): the user's */
        if (l->ss.ss_family == AF_UNIX &&
            chown(((const struct sockaddr_un *)&l->ss)->sun_path, uid, gid) != 0) {
            fprintf(stderr, "detour serve: %s: %s\n", l->text, strerror(errno));
            return -1;
        }
    }
    if ((colon ? setgroups(1, &gid) : initgroups(name, gid)) != 0 || setgid(gid) != 0 ||
        setuid(uid) != 0) {
        fprintf(stderr, "detour serve: --user %s: %s\n", a->user, strerror(errno));
        return -1;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        fprintf(stderr, "detour serve: --user %s: root could be taken back\n", a->user);
        return -1;
    }
    dt_log(DT_LOG_INFO, "listeners bound; running as %s (uid %u, gid %u)", name, (unsigned)uid,
           (unsigned)gid);
    return 0;
}

int dt_cmd_serve(int argc, char **argv)
{
    struct serve_args a = {.format = -1, .admin = "127.0.0.1:9307"};
    dt_server_config_init(&a.cfg);
    dt_admin_options_init(&a.ao);
    a.cfg.admin_limits = a.cfg.limits;
    a.cfg.admin_limits.max_body = 256ULL << 20;
    struct dt_listen_addr admin_addrs[2];
    char err[256];
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        goto out;
    status = DT_EXIT_USAGE;
    if (!a.nlisten) {
        a.listen = dt_xcalloc(1, sizeof(*a.listen));
        if (dt_listen_parse("127.0.0.1:8307", &a.listen[0], err, sizeof(err)) != 0) {
            dt_usage_error("serve", "%s", err);
            goto out;
        }
        a.nlisten = 1;
    }
    a.cfg.listen = a.listen;
    a.cfg.nlisten = a.nlisten;
    a.cfg.rules = a.rules;
    a.cfg.nrules = a.nrules;
    if (a.check) {
        struct dt_table *t = dt_server_load_rules(&a.cfg);
        if (!t) {
            status = 2;
            goto out;
        }
        size_t nrules = dt_table_size(t);
        dt_table_free(t);
        size_t ncerts = 0;
        if (a.ncerts || a.cfg.cert_dir) {
            struct dt_buf e;
            dt_buf_init(&e);
            struct dt_tls_set *set = dt_tls_load(a.certs, a.ncerts, &a.cfg.cert_dir, 1, false, &e);
            if (!set) {
                fprintf(stderr, "detour serve: certificates: %.*s\n", (int)e.len, e.ptr);
                dt_buf_dispose(&e);
                status = 2;
                goto out;
            }
            ncerts = dt_tls_set_count(set);
            dt_tls_set_unref(set);
            dt_buf_dispose(&e);
        }
        if (ncerts)
            printf("ok: %zu rules, %zu certificates\n", nrules, ncerts);
        else
            printf("ok: %zu rules\n", nrules);
        status = DT_EXIT_OK;
        goto out;
    }
    a.cfg.admin = admin_addrs;
    if (strcmp(a.admin, "off") != 0) {
        if (dt_listen_parse(a.admin, &admin_addrs[a.cfg.nadmin], err, sizeof(err)) != 0) {
            dt_usage_error("serve", "--admin %s", err);
            goto out;
        }
        a.cfg.nadmin++;
    }
    if (a.admin_tls) {
        struct dt_listen_addr *l = &admin_addrs[a.cfg.nadmin];
        if (dt_listen_parse(a.admin_tls, l, err, sizeof(err)) != 0) {
            dt_usage_error("serve", "--admin-tls %s", err);
            goto out;
        }
        if (l->ss.ss_family == AF_UNIX) {
            dt_usage_error("serve", "--admin-tls %s: TLS listens on TCP, not a Unix socket",
                           a.admin_tls);
            goto out;
        }
        l->tls = true;
        a.cfg.nadmin++;
    }
    if (a.user && drop_root(&a) != 0) {
        status = 1;
        goto out;
    }
    /* the admin API's header limits are the server's; only its content limit is its own */
    uint64_t admin_body = a.cfg.admin_limits.max_body;
    a.cfg.admin_limits = a.cfg.limits;
    a.cfg.admin_limits.max_body = admin_body;
    status = dt_admin_run(&a.cfg, &a.ao);
out:
    free(a.listen);
    free(a.trusted);
    free(a.rules);
    free(a.certs);
    free(a.acme_storage);
    return status;
}
