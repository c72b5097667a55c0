/* lint: `detour lint FILE...`, what is wrong with a rule set before it goes live. */
#include "cli/cli.h"
#include "rules/rules.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "Usage: detour lint [OPTIONS] FILE...\n"
    "\n"
    "Loads the rule files together, as detour serve would, and reports one finding a line:\n"
    "  FILE:LINE: SEVERITY: message\n"
    "\n"
    "Errors: lines that do not load, redirect loops (A -> B -> A, also through prefixes and\n"
    "across hosts), and sources given twice with different answers. Warnings: chains\n"
    "(A -> B -> C: send A straight to C), duplicates, rules that never answer because another\n"
    "always answers first, targets whose path or query a request chooses, windows that are\n"
    "over, and 307s in place longer than --max-temporary-age (by their since= option).\n"
    "Loops and chains are found by following one sample request per rule.\n"
    "\n"
    "Options:\n"
    "  --json                       the findings as JSON on stdout\n"
    "  --max-temporary-age AGE      warn about 307s older than AGE (default 30d; 'off')\n"
    "  --now TIME                   judge windows and ages at TIME (RFC 3339), not now\n"
    "  --rules-format FORMAT        read the files as detour, csv, nginx or netlify (default:\n"
    "                               by file name)\n"
    "  -h, --help                   show this help\n"
    "\n"
    "Exit status: 0 without errors (warnings allowed), 1 with an error, 2 for usage.\n";

enum { O_JSON = 256, O_MAX_AGE, O_NOW, O_FORMAT };

static const struct option options[] = {
    {"json", no_argument, NULL, O_JSON},
    {"max-temporary-age", required_argument, NULL, O_MAX_AGE},
    {"now", required_argument, NULL, O_NOW},
    {"rules-format", required_argument, NULL, O_FORMAT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void print_text(const struct dt_lint_report *r, size_t rules)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct dt_lint_finding *f = &r->findings[i];
        const char *sev = f->severity == DT_LINT_ERROR ? "error" : "warning";
        if (f->file && f->line)
            printf("%s:%u: %s: %s\n", f->file, f->line, sev, f->message);
        else if (f->file)
            printf("%s: %s: %s\n", f->file, sev, f->message);
        else
            printf("%s: %s\n", sev, f->message);
    }
    fprintf(stderr, "detour lint: %zu rules, %u errors, %u warnings\n", rules, r->errors,
            r->warnings);
}

static void print_json(const struct dt_lint_report *r, size_t rules)
{
    json_t *items = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct dt_lint_finding *f = &r->findings[i];
        json_array_append_new(items,
                              json_pack("{s:o, s:o, s:s, s:s, s:s}", "file",
                                        f->file ? json_string(f->file) : json_null(), "line",
                                        f->line ? json_integer(f->line) : json_null(), "severity",
                                        f->severity == DT_LINT_ERROR ? "error" : "warning", "kind",
                                        f->kind, "message", f->message));
    }
    json_t *doc = json_pack("{s:o, s:I, s:i, s:i}", "findings", items, "rules", (json_int_t)rules,
                            "errors", r->errors, "warnings", r->warnings);
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(doc);
}

int dt_cmd_lint(int argc, char **argv)
{
    bool json = false;
    struct dt_lint_options lo = {.now = dt_wall_now(), .max_temporary_age = 30 * 86400};
    const char *format = NULL;
    uint64_t v;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_JSON:
            json = true;
            break;
        case O_MAX_AGE:
            if (!strcmp(optarg, "off")) {
                lo.max_temporary_age = -1;
                break;
            }
            if (dt_opt_duration("lint", "--max-temporary-age", optarg, 0,
                                100ULL * 365 * 86400 * 1000, &v))
                return DT_EXIT_USAGE;
            lo.max_temporary_age = (int64_t)(v / 1000);
            break;
        case O_NOW:
            if (dt_parse_rfc3339(dt_str_make(optarg, strlen(optarg)), &lo.now) != 0)
                return dt_usage_error("lint", "--now: '%s' is not an RFC 3339 time", optarg);
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return DT_EXIT_OK;
        case ':':
            return dt_usage_error("lint", "%s needs a value", argv[optind - 1]);
        default:
            return dt_usage_error("lint", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc)
        return dt_usage_error("lint", "which rule files? (detour lint FILE...)");

    struct dt_table *t = dt_table_new();
    struct dt_errors errs;
    dt_errors_init(&errs);
    for (int i = optind; i < argc; i++) {
        int rc = dt_cli_load_rules(t, argv[i], format, &errs);
        if (rc == DT_EINVAL) {
            dt_errors_dispose(&errs);
            dt_table_free(t);
            return DT_EXIT_USAGE;
        }
    }
    /* The table's own duplicate warnings would repeat what lint reports. */
    dt_log_set_level(DT_LOG_ERROR);
    dt_table_finish(t);
    struct dt_lint_report report = {0};
    for (unsigned i = 0; i < errs.count; i++) {
        const struct dt_error *e = &errs.items[i];
        if (e->column)
            dt_lint_add(&report, DT_LINT_ERROR, "syntax", e->file, e->line, "column %u: %s",
                        e->column, e->message);
        else
            dt_lint_add(&report, DT_LINT_ERROR, "syntax", e->file, e->line, "%s", e->message);
    }
    dt_lint_run(t, &lo, &report);
    if (json)
        print_json(&report, dt_table_size(t));
    else
        print_text(&report, dt_table_size(t));
    int status = report.errors ? DT_EXIT_FAIL : DT_EXIT_OK;
    dt_lint_report_dispose(&report);
    dt_errors_dispose(&errs);
    dt_table_free(t);
    return status;
}
