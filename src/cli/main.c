/* main: the detour command: dispatches to a subcommand. */
#include "cli/cli.h"

#include <stdio.h>

static const char usage[] =
    "Usage: detour COMMAND [OPTIONS]\n"
    "\n"
    "A redirect server that answers 307 Temporary Redirect (and 301, 302, 303, 308)\n"
    "by rules, exactly as RFC 9110 asks.\n"
    "\n"
    "Commands:\n"
    "  serve     run the redirect server (detour serve --help)\n"
    "  get       fetch a URL, following redirects by the spec (detour get --help)\n"
    "  lint      find loops, chains, conflicts and unsafe targets in rule files\n"
    "  import    convert CSV, nginx map or Netlify _redirects files to detour rules\n"
    "  rules     list, add, change, remove, import and export a running server's rules\n"
    "            through its admin API (detour rules --help)\n"
    "\n"
    "Options:\n"
    "  -h, --help       show this help\n"
    "  -V, --version    show the version\n"
    "\n"
    "Documentation: README.md and docs/rules.md in the source tree.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return DT_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return DT_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("detour %s\n", DETOUR_VERSION);
        return DT_EXIT_OK;
    }
    if (!strcmp(cmd, "serve"))
        return dt_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "get"))
        return dt_cmd_get(argc - 1, argv + 1);
    if (!strcmp(cmd, "lint"))
        return dt_cmd_lint(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return dt_cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "rules"))
        return dt_cmd_rules(argc - 1, argv + 1);
    fprintf(stderr, "detour: unknown command '%s'\n\n%s", cmd, usage);
    return DT_EXIT_USAGE;
}
