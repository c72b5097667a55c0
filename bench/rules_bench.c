/* rules_bench: the rule table's lookup cost, in process (no network): a million exact rules
 * against ten, and a thousand regular expressions with the literal-prefix prefilter against
 * the same thousand as a linear scan. Prints nanoseconds per lookup and the ratios.
 *
 * usage: detour-rules-bench [LOOKUPS] */
#include "rules/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct dt_table *build(struct dt_buf *text)
{
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    if (dt_table_load_text(t, "bench", dt_str_make(text->ptr, text->len), &e) != 0) {
        fprintf(stderr, "%s", e.text.ptr);
        exit(1);
    }
    dt_errors_dispose(&e);
    dt_table_finish(t);
    return t;
}

/* ns per lookup of paths[i % n], checking each finds a rule. */
static double measure(const struct dt_table *t, char **paths, size_t n, size_t lookups)
{
    struct dt_match m;
    size_t misses = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < lookups; i++) {
        const char *p = paths[(i * 2654435761u) % n];
        if (!dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, dt_str_make(p, strlen(p)), DT_STR_NULL,
                            0, &m))
            misses++;
    }
    double ns = (now_ns() - t0) / (double)lookups;
    if (misses) {
        fprintf(stderr, "rules_bench: %zu lookups found no rule\n", misses);
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv)
{
    size_t lookups = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    enum { BIG = 1000000, SMALL = 10, REGEXES = 1000 };
    char **paths = malloc(BIG * sizeof(*paths));
    struct dt_buf text;
    dt_buf_init(&text);
    for (size_t i = 0; i < BIG; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/p/%08zu/abcdefghijklmnopqrstuvw", i);
        paths[i] = strdup(p);
        dt_buf_appendf(&text, "%s https://new.example.com/%08zu\n", p, i);
    }
    double t0 = now_ns();
    struct dt_table *big = build(&text);
    double load_ms = (now_ns() - t0) / 1e6;
    text.len = 0;
    for (size_t i = 0; i < SMALL; i++)
        dt_buf_appendf(&text, "%s https://new.example.com/%08zu\n", paths[i], i);
    struct dt_table *small = build(&text);
    double ns_big = measure(big, paths, BIG, lookups);
    double ns_small = measure(small, paths, SMALL, lookups);
    dt_table_free(big);
    dt_table_free(small);

    /* A thousand regexes, each with its own literal start, asked for paths that the last
     * ones answer (the worst case for a scan in order). */
    char **rpaths = malloc(REGEXES * sizeof(*rpaths));
    struct dt_buf anchored, scan;
    dt_buf_init(&anchored);
    dt_buf_init(&scan);
    for (size_t i = 0; i < REGEXES; i++) {
        dt_buf_appendf(&anchored, "~^/r%04zu/item/([0-9]+)$ /items/%zu/$1\n", i, i);
        /* the same language, written so that no literal start can be taken from it */
        dt_buf_appendf(&scan, "~^(?:/r%04zu)/item/([0-9]+)$ /items/%zu/$1\n", i, i);
        char p[64];
        snprintf(p, sizeof(p), "/r%04zu/item/%zu", i, i * 7);
        rpaths[i] = strdup(p);
    }
    struct dt_table *re_pre = build(&anchored);
    struct dt_table *re_scan = build(&scan);
    size_t rl = lookups / 20 ? lookups / 20 : 1;
    double ns_pre = measure(re_pre, rpaths, REGEXES, rl);
    double ns_scan = measure(re_scan, rpaths, REGEXES, rl);
    dt_table_free(re_pre);
    dt_table_free(re_scan);

    printf("rule table lookups, in process (%zu lookups; %zu for regexes)\n", lookups, rl);
    printf("  load 1,000,000 exact rules            %8.0f ms\n", load_ms);
    printf("  exact, 10 rules                        %8.1f ns/lookup\n", ns_small);
    printf("  exact, 1,000,000 rules (random keys)   %8.1f ns/lookup\n", ns_big);
    printf("  1,000 regexes, literal-prefix index    %8.1f ns/lookup\n", ns_pre);
    printf("  1,000 regexes, linear PCRE2 scan       %8.1f ns/lookup\n", ns_scan);
    printf("ratios\n");
    printf("  1M rules / 10 rules, lookup time       %8.2f\n", ns_big / ns_small);
    printf("  linear scan / prefix index             %8.1f x\n", ns_scan / ns_pre);
    for (size_t i = 0; i < BIG; i++)
        free(paths[i]);
    for (size_t i = 0; i < REGEXES; i++)
        free(rpaths[i]);
    free(paths);
    free(rpaths);
    dt_buf_dispose(&text);
    dt_buf_dispose(&anchored);
    dt_buf_dispose(&scan);
    return 0;
}
