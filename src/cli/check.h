/* check: the parts of `detour check`: its input (rule files, CSV and other redirect lists,
 * lists of URLs) read as a stream of URLs to check with what each must answer, and its
 * reports (text, JSON, CSV, JUnit). */
#ifndef DT_CLI_CHECK_H
#define DT_CLI_CHECK_H

#include "client/check.h"
#include "rules/rules.h"

#include <stdio.h>

/* One URL to check and where it came from. Owned by the caller of check_input_next, freed
 * with check_entry_free. */
struct check_entry {
    struct dt_check_item item; /* item.url and item.expect point into this entry */
    const char *file;          /* the input's name, valid for the whole run */
    uint32_t line;
    char *url, *expect;
};

void check_entry_free(struct check_entry *e);

struct check_input_options {
    const char *format; /* detour, csv, nginx, netlify; NULL: each file's by its name */
    const char *base;   /* scheme://host[:port] for rules that name no host (or NULL) */
    time_t now;         /* for rules' windows and promotions */
    FILE *diag;         /* where bad lines and files are reported (NULL: stderr) */
};

/* What the input held beyond the entries it gave. */
struct check_input_stats {
    uint64_t entries;   /* URLs given */
    uint64_t shadowed;  /* rules whose sample another rule (or none) answers now: unchecked */
    uint64_t unsampled; /* regexes without a literal start: no request can be made */
    uint64_t no_host;   /* rules for any host, unchecked without --base */
    uint64_t errors;    /* bad lines, bad files (each reported to stderr as found) */
};

struct check_input;

/* Opens files (names; "-" is standard input) to be read in order. Returns 0 or DT_EINVAL
 * (a bad --base or --format, reported to o->diag). */
int check_input_new(struct check_input **out, char *const *files, size_t nfiles,
                    const struct check_input_options *o);
/* The next URL to check: 1 with *e set, 0 at the end of the last file. Bad lines and
 * unreadable files are reported to o->diag as they are met and counted, never fatal. Memory
 * is bounded: rules are read in blocks (of CHECK_BLOCK_RULES) whose precedence is judged
 * within the block. */
int check_input_next(struct check_input *in, struct check_entry **e);
const struct check_input_stats *check_input_stats(const struct check_input *in);
void check_input_free(struct check_input *in);

/* About how many URLs the files hold (lines that are neither blank nor comments), for a
 * progress line; 0 when unknown (standard input). */
uint64_t check_input_estimate(char *const *files, size_t nfiles);

#define CHECK_BLOCK_RULES 65536

#endif
