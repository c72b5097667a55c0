/* tap: a tiny Test Anything Protocol runner. Each check prints "ok N - name" or
 * "not ok N - name" with both sides of a failed comparison; done_testing() returns the
 * exit status (0 only if every check passed and at least one ran). */
#ifndef DT_TAP_H
#define DT_TAP_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_report(int pass, const char *file, int line, const char *name)
{
    tap_n++;
    printf("%sok %d - %s\n", pass ? "" : "not ", tap_n, name);
    if (!pass) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    return pass;
}

#define ok(cond, name) tap_report(!!(cond), __FILE__, __LINE__, (name))

#define is_int(got, want, name)                                                                    \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (!tap_report(g_ == w_, __FILE__, __LINE__, (name)))                                     \
            printf("#        got: %lld\n#   expected: %lld\n", g_, w_);                            \
    } while (0)

/* Compares a span (pointer and length) with a NUL-terminated string. */
#define is_strn(gotp, gotlen, want, name)                                                          \
    do {                                                                                           \
        const char *gp_ = (gotp), *wp_ = (want);                                                   \
        size_t gl_ = gp_ ? (size_t)(gotlen) : 0, wl_ = wp_ ? strlen(wp_) : 0;                      \
        int pass_ = (gp_ == NULL) == (wp_ == NULL) && gl_ == wl_ &&                                \
                    (gl_ == 0 || memcmp(gp_, wp_, gl_) == 0);                                      \
        if (!tap_report(pass_, __FILE__, __LINE__, (name)))                                        \
            printf("#        got: '%.*s'\n#   expected: '%s'\n", (int)gl_, gp_ ? gp_ : "(null)",   \
                   wp_ ? wp_ : "(null)");                                                          \
    } while (0)

#define is_str(got, want, name)                                                                    \
    do {                                                                                           \
        const char *gs_ = (got);                                                                   \
        is_strn(gs_, gs_ ? strlen(gs_) : 0, (want), (name));                                       \
    } while (0)

#define is_span(span, want, name) is_strn((span).ptr, (span).len, (want), (name))

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    if (tap_failed)
        printf("# %d of %d checks failed\n", tap_failed, tap_n);
    return tap_failed || tap_n == 0;
}

#endif
