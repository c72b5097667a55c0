/* import: `detour import --from FORMAT FILE`, foreign redirect lists in detour's syntax. */
#include "rules/import.h"
#include "cli/cli.h"
#include "rules/rules.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "Usage: detour import --from FORMAT [--status N] [-o OUT] FILE\n"
    "\n"
    "Converts a redirect list to detour's rule syntax (docs/rules.md) and writes it to\n"
    "stdout (or OUT). Every entry that cannot be converted is reported with its file, line\n"
    "and column, and nothing is written then. The result is checked by loading it.\n"
    "\n"
    "Formats (docs/import.md):\n"
    "  csv       source,target,status,options, or a header naming columns; Cloudflare bulk\n"
    "            redirect exports are read as they are\n"
    "  nginx     map blocks: map $uri $target { \"/old\" \"/new\"; ~^/a/(.*)$ /b/$1; }\n"
    "  netlify   _redirects files: /old /new 301\n"
    "\n"
    "Options:\n"
    "  --from FORMAT     the input's format (default: by the file's name)\n"
    "  --status N        the status of entries that carry none (default: 307 for csv and\n"
    "                    nginx, 301 for netlify, as those formats do)\n"
    "  -o, --output OUT  write here instead of stdout\n"
    "  -h, --help        show this help\n";

enum { O_FROM = 256, O_STATUS };

static const struct option options[] = {
    {"from", required_argument, NULL, O_FROM},
    {"status", required_argument, NULL, O_STATUS},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int dt_cmd_import(int argc, char **argv)
{
    const char *from = NULL, *output = NULL;
    int status = 0;
    uint64_t v;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:h", options, NULL)) != -1) {
        switch (opt) {
        case O_FROM:
            from = optarg;
            break;
        case O_STATUS:
            if (dt_opt_uint("import", "--status", optarg, 300, 399, &v))
                return DT_EXIT_USAGE;
            if (!dt_http_is_redirect(v))
                return dt_usage_error("import", "--status: %s is not 301, 302, 303, 307 or 308",
                                      optarg);
            status = (int)v;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return DT_EXIT_OK;
        case ':':
            return dt_usage_error("import", "%s needs a value", argv[optind - 1]);
        default:
            return dt_usage_error("import", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return dt_usage_error("import", "one input file (detour import --from FORMAT FILE)");
    const char *path = argv[optind];
    enum dt_rule_format f = dt_rule_format_guess(path);
    if (from && dt_rule_format_parse(from, &f) != 0)
        return dt_usage_error("import", "--from: '%s' is not csv, nginx, netlify or detour", from);

    struct dt_buf text;
    dt_buf_init(&text);
    FILE *in = fopen(path, "rb");
    if (!in) {
        fprintf(stderr, "detour import: cannot open %s: %s\n", path, strerror(errno));
        return DT_EXIT_FAIL;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        dt_buf_append(&text, chunk, n);
    fclose(in);

    struct dt_import im;
    dt_import_init(&im);
    struct dt_errors errs;
    dt_errors_init(&errs);
    int rc = dt_import_convert(f, path, dt_str_make(text.ptr ? text.ptr : "", text.len), status,
                               &im, &errs);
    dt_buf_dispose(&text);
    /* What was converted must load: check it as detour would. */
    struct dt_table *t = dt_table_new();
    int file = dt_table_add_file(t, path);
    for (size_t i = 0; i < im.n; i++) {
        struct dt_str line = {im.lines[i].text, strlen(im.lines[i].text)};
        struct dt_rule_spec spec;
        struct dt_diag diag;
        int r = dt_rule_parse_line(line, &spec, &diag);
        if (r == 1)
            r = dt_table_add(t, &spec, file, im.lines[i].line, &diag);
        if (r < 0)
            dt_errors_add_at(&errs, path, im.lines[i].line, 0, "%s (as the detour rule '%s')",
                             diag.msg, im.lines[i].text);
    }
    dt_table_free(t);
    int exit_status = DT_EXIT_OK;
    if (errs.count) {
        fputs(errs.text.ptr, stderr);
        fprintf(stderr, "detour import: %u errors; nothing written\n", errs.count);
        exit_status = DT_EXIT_FAIL;
    } else if (rc) {
        fprintf(stderr, "detour import: %s\n", dt_strerror(rc));
        exit_status = DT_EXIT_FAIL;
    } else {
        FILE *out = output ? fopen(output, "w") : stdout;
        if (!out) {
            fprintf(stderr, "detour import: cannot write %s: %s\n", output, strerror(errno));
            exit_status = DT_EXIT_FAIL;
        } else {
            fprintf(out, "# converted by detour import from %s (%s)\n", path,
                    dt_rule_format_name(f));
            for (size_t i = 0; i < im.n; i++)
                fprintf(out, "%s\n", im.lines[i].text);
            if ((output ? fclose(out) : fflush(out)) != 0) {
                fprintf(stderr, "detour import: writing failed: %s\n", strerror(errno));
                exit_status = DT_EXIT_FAIL;
            }
        }
    }
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    return exit_status;
}
