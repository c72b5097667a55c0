/* opt: parsing option values with ranges, and usage errors that say what was expected. */
#include "cli/cli.h"
#include "rules/import.h"
#include "rules/rules.h"

#include <stdio.h>

int dt_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "detour %s: %s\nTry 'detour %s --help'.\n", cmd, msg, cmd);
    return DT_EXIT_USAGE;
}

int dt_opt_size(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                uint64_t *out)
{
    int rc = dt_parse_size(val, max, out);
    if (rc == 0 && *out >= min)
        return 0;
    dt_usage_error(cmd, "%s: '%s' is not a size from %llu to %llu bytes (suffixes k, m, g)", opt,
                   val, (unsigned long long)min, (unsigned long long)max);
    return DT_EINVAL;
}

int dt_opt_duration(const char *cmd, const char *opt, const char *val, uint64_t min_ms,
                    uint64_t max_ms, uint64_t *out_ms)
{
    int rc = dt_parse_duration_ms(val, max_ms, out_ms);
    if (rc == 0 && *out_ms >= min_ms)
        return 0;
    dt_usage_error(cmd, "%s: '%s' is not a duration from %llu ms to %llu s (units ms, s, m, h)",
                   opt, val, (unsigned long long)min_ms, (unsigned long long)(max_ms / 1000));
    return DT_EINVAL;
}

int dt_opt_uint(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                uint64_t *out)
{
    int64_t v;
    if (dt_parse_int(dt_str_make(val, strlen(val)), (int64_t)min, (int64_t)max, &v) == 0) {
        *out = (uint64_t)v;
        return 0;
    }
    dt_usage_error(cmd, "%s: '%s' is not a whole number from %llu to %llu", opt, val,
                   (unsigned long long)min, (unsigned long long)max);
    return DT_EINVAL;
}

int dt_cli_load_rules(struct dt_table *t, const char *path, const char *format,
                      struct dt_errors *errs)
{
    enum dt_rule_format f = dt_rule_format_guess(path);
    if (format && dt_rule_format_parse(format, &f) != 0) {
        dt_usage_error("lint", "--rules-format: '%s' is not detour, csv, nginx or netlify", format);
        return DT_EINVAL;
    }
    return dt_table_load_file_as(t, path, (int)f, 0, errs);
}

int dt_opt_curl_map(const char *cmd, bool connect_to, const char *val, const char ***list,
                    size_t *n)
{
    int colons = 0;
    bool blank = false;
    for (const char *p = val; *p; p++) {
        colons += *p == ':';
        blank |= (unsigned char)*p <= ' ';
    }
    if (blank || colons < (connect_to ? 3 : 2) || val[0] == ':')
        return dt_usage_error(cmd, "--%s '%s': give %s", connect_to ? "connect-to" : "resolve", val,
                              connect_to ? "HOST:PORT:HOST2:PORT2" : "HOST:PORT:ADDR");
    *list = dt_xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = val;
    return 0;
}
