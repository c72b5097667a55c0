/* main: the detour command: dispatches to a subcommand. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: detour COMMAND [OPTIONS]\n"
    "\n"
    "A redirect server that answers 307 Temporary Redirect (and 301, 302, 303, 308)\n"
    "by rules, exactly as RFC 9110 asks.\n"
    "\n"
    "Commands:\n"
    "  serve     run the redirect server (detour serve --help)\n"
    "  get       fetch a URL, following redirects by the spec (detour get --help)\n"
    "  check     verify live redirects in bulk against rule files or redirect lists\n"
    "            (detour check --help)\n"
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

/* The server's large tables and an import's working memory are hundreds of megabytes, and
 * faulting them in 4 KiB pages costs more than building them (a third of a million-rule
 * import, on a virtual machine). glibc's malloc asks for transparent huge pages where the
 * kernel leaves it to the program (THP "madvise" mode) when GLIBC_TUNABLES says
 * glibc.malloc.hugetlb=1, which it reads only when the process starts: serve runs itself
 * again, once, with it (same pid, same arguments). Not when GLIBC_TUNABLES is set already
 * (the caller's choice stands), nor when THP is off, nor if the exec fails. */
static void huge_pages(char **argv)
{
    if (getenv("GLIBC_TUNABLES"))
        return;
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof(mode), f))
            mode[0] = '\0';
        fclose(f);
    }
    if (!strstr(mode, "[madvise]") && !strstr(mode, "[always]"))
        return;
    if (setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("GLIBC_TUNABLES");
}

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
    if (!strcmp(cmd, "serve")) {
        huge_pages(argv);
        return dt_cmd_serve(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "get"))
        return dt_cmd_get(argc - 1, argv + 1);
    if (!strcmp(cmd, "lint"))
        return dt_cmd_lint(argc - 1, argv + 1);
    if (!strcmp(cmd, "check"))
        return dt_cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return dt_cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "rules"))
        return dt_cmd_rules(argc - 1, argv + 1);
    fprintf(stderr, "detour: unknown command '%s'\n\n%s", cmd, usage);
    return DT_EXIT_USAGE;
}
