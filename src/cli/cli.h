/* cli: the detour command line: one function per subcommand, and option helpers. */
#ifndef DT_CLI_H
#define DT_CLI_H

#include "base/base.h"

/* Exit statuses shared by every subcommand. */
enum { DT_EXIT_OK = 0, DT_EXIT_FAIL = 1, DT_EXIT_USAGE = 2 };

int dt_cmd_serve(int argc, char **argv);
int dt_cmd_get(int argc, char **argv);
int dt_cmd_lint(int argc, char **argv);
int dt_cmd_check(int argc, char **argv);
int dt_cmd_import(int argc, char **argv);
int dt_cmd_rules(int argc, char **argv);

struct dt_table;
struct dt_errors;
/* Loads a rule file into t in format (a name: detour, csv, nginx, netlify; NULL: by the
 * file's name). Returns 0, an error code with errs filled, or DT_EINVAL (after a usage
 * message) for an unknown format name. */
int dt_cli_load_rules(struct dt_table *t, const char *path, const char *format,
                      struct dt_errors *errs);

/* Prints "detour CMD: message" and a hint to stderr; returns DT_EXIT_USAGE. */
int dt_usage_error(const char *cmd, const char *fmt, ...) DT_PRINTF(2, 3);

/* Option values with range checks and a message naming the option on error. */
DT_MUST_CHECK int dt_opt_size(const char *cmd, const char *opt, const char *val, uint64_t min,
                              uint64_t max, uint64_t *out);
DT_MUST_CHECK int dt_opt_duration(const char *cmd, const char *opt, const char *val,
                                  uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);
DT_MUST_CHECK int dt_opt_uint(const char *cmd, const char *opt, const char *val, uint64_t min,
                              uint64_t max, uint64_t *out);

/* Appends a curl --resolve (HOST:PORT:ADDR) or --connect-to (HOST:PORT:HOST2:PORT2) entry
 * to *list (realloc'd, the strings are the caller's), after checking it has the parts and
 * no spaces. connect_to picks which. Returns 0, or DT_EXIT_USAGE after a message. */
DT_MUST_CHECK int dt_opt_curl_map(const char *cmd, bool connect_to, const char *val,
                                  const char ***list, size_t *n);

#endif
