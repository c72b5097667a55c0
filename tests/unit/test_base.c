/* Unit tests for src/base: numbers, sizes, durations, HTML escaping, dates, buffers, log
 * lines. */
#include "base/base.h"
#include "tap.h"

#include <stdio.h>
#include <unistd.h>

static void numbers(void)
{
    int64_t v = 0;
    is_int(dt_parse_int(DT_STR("307"), 0, 999, &v), 0, "parse_int accepts 307");
    is_int(v, 307, "parse_int value");
    is_int(dt_parse_int(DT_STR("-5"), -10, 10, &v), 0, "parse_int negative");
    is_int(v, -5, "parse_int negative value");
    is_int(dt_parse_int(DT_STR(""), 0, 9, &v), DT_EINVAL, "parse_int empty");
    is_int(dt_parse_int(DT_STR("12a"), 0, 999, &v), DT_EINVAL, "parse_int trailing junk");
    is_int(dt_parse_int(DT_STR("1000"), 0, 999, &v), DT_ERANGE, "parse_int above max");
    is_int(dt_parse_int(DT_STR("99999999999999999999999"), 0, INT64_MAX, &v), DT_ERANGE,
           "parse_int overflow is a range error, not a wrap");
    is_int(dt_parse_int(DT_STR("-"), -1, 1, &v), DT_EINVAL, "parse_int sign alone");

    uint64_t u = 0;
    is_int(dt_parse_size("8k", 1 << 30, &u), 0, "size 8k");
    is_int(u, 8192, "8k is 8192");
    is_int(dt_parse_size("1m", 1 << 30, &u), 0, "size 1m");
    is_int(u, 1048576, "1m is 1 MiB");
    is_int(dt_parse_size("12", 100, &u), 0, "size without unit");
    is_int(dt_parse_size("2g", 1 << 30, &u), DT_ERANGE, "size above max");
    is_int(dt_parse_size("1x", 1 << 30, &u), DT_EINVAL, "size with unknown unit");
    is_int(dt_parse_size("k", 1 << 30, &u), DT_EINVAL, "size without number");

    is_int(dt_parse_duration_ms("10s", 1000000, &u), 0, "duration 10s");
    is_int(u, 10000, "10s in ms");
    is_int(dt_parse_duration_ms("250ms", 1000000, &u), 0, "duration ms");
    is_int(u, 250, "250ms");
    is_int(dt_parse_duration_ms("2m", 1000000, &u), 0, "duration minutes");
    is_int(u, 120000, "2m in ms");
    is_int(dt_parse_duration_ms("7", 1000000, &u), 0, "bare number is seconds");
    is_int(u, 7000, "7 is 7 s");
    is_int(dt_parse_duration_ms("1d", 1000, &u), DT_ERANGE, "duration above max");
    is_int(dt_parse_duration_ms("1w", 1000000000, &u), DT_EINVAL, "unknown duration unit");

    char out[20];
    size_t n = dt_fmt_u64(out, 0);
    is_strn(out, n, "0", "fmt_u64 zero");
    n = dt_fmt_u64(out, UINT64_MAX);
    is_strn(out, n, "18446744073709551615", "fmt_u64 max");
}

static void html(void)
{
    /* S2: everything put into the note is HTML-escaped */
    struct dt_str s = DT_STR("/a?x=1&y=<b>\"'");
    char out[128];
    size_t n = dt_html_escape(out, s);
    is_int(n, dt_html_escaped_len(s), "S2: escaped length is predicted exactly");
    is_strn(out, n, "/a?x=1&amp;y=&lt;b&gt;&#34;&#39;", "S2: & < > \" ' are escaped");
    n = dt_html_escape(out, DT_STR("plain"));
    is_strn(out, n, "plain", "plain text unchanged");
}

static void dates(void)
{
    char d[30] = {0};
    dt_http_date(d, 784111777);
    is_strn(d, 29, "Sun, 06 Nov 1994 08:49:37 GMT", "IMF-fixdate of RFC 9110's example");
    dt_http_date(d, 1795478400); /* 2026-11-24 */
    is_strn(d, 29, "Tue, 24 Nov 2026 00:00:00 GMT", "IMF-fixdate 2026");

    time_t t = 0;
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01T06:00:00Z"), &t), 0, "rfc3339 Z");
    is_int(t, 1796104800, "rfc3339 value");
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01T08:00:00+02:00"), &t), 0, "rfc3339 offset");
    is_int(t, 1796104800, "offsets are applied");
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01T06:00:00.250Z"), &t), 0, "fractions allowed");
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01"), &t), 0, "a date alone is midnight UTC");
    is_int(t, 1796083200, "date value");
    is_int(dt_parse_rfc3339(DT_STR("2026-02-30T00:00:00Z"), &t), DT_EINVAL, "Feb 30 refused");
    is_int(dt_parse_rfc3339(DT_STR("2024-02-29T00:00:00Z"), &t), 0, "leap day 2024");
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01T06:00:00"), &t), DT_EINVAL,
           "a time needs an offset");
    is_int(dt_parse_rfc3339(DT_STR("2026-13-01"), &t), DT_EINVAL, "month 13 refused");
    is_int(dt_parse_rfc3339(DT_STR("2026-12-01T24:00:00Z"), &t), DT_EINVAL, "hour 24 refused");
    is_int(dt_parse_rfc3339(DT_STR("tomorrow"), &t), DT_EINVAL, "words refused");

    char s[21];
    dt_fmt_rfc3339(s, 1796104800);
    is_str(s, "2026-12-01T06:00:00Z", "fmt_rfc3339");
}

static void buffers(void)
{
    struct dt_buf b;
    dt_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        dt_buf_append(&b, "abc", 3);
    is_int(b.len, 3000, "buf grows by appending");
    dt_buf_appendf(&b, "%d-%s", 42, "x");
    is_strn(b.ptr + 3000, b.len - 3000, "42-x", "appendf");
    dt_buf_dispose(&b);
    is_int(b.len, 0, "dispose empties");

    struct dt_arena a;
    dt_arena_init(&a, 256);
    char *p = dt_arena_strndup(&a, "hello", 5);
    is_str(p, "hello", "arena strndup");
    void *big = dt_arena_alloc(&a, 10000);
    memset(big, 1, 10000);
    char *q = dt_arena_alloc(&a, 8);
    ok(((uintptr_t)q & 7) == 0, "arena allocations are 8-aligned");
    is_str(p, "hello", "earlier allocations survive a large one");
    dt_arena_dispose(&a);

    is_str(dt_strerror(DT_ENOMEM), "out of memory", "strerror");
    ok(dt_strerror(12345) != NULL, "strerror of an unknown code is not NULL");
}

/* What dt_log writes to stderr for one call, caught through a pipe. */
static size_t logged(char *out, size_t cap, const char *fmt, const char *arg)
{
    int fds[2], saved = dup(2);
    if (pipe(fds) != 0)
        return 0;
    dup2(fds[1], 2);
    dt_log(DT_LOG_ERROR, fmt, arg);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, cap - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static unsigned lines_in(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void log_lines(void)
{
    char out[4096];
    logged(out, sizeof(out), "acme: %s", "urn:x: bad\r\n2026-12-05T00:00:00Z detour[1] info: ok");
    is_int((int)lines_in(out), 2, "a CR LF from outside: the message's second line...");
    ok(strstr(out, "bad\\x0d\n") != NULL, "...its CR written as \\x0d");
    char *second = strchr(out, '\n') + 1;
    ok(!strncmp(second, out, 20) &&
           strstr(second, " error: 2026-12-05T00:00:00Z detour[1] info: ok") != NULL,
       "...and the forged line carries the real prefix first");
    logged(out, sizeof(out), "%s", "a\x1b[31mred\x7f\tz");
    ok(strstr(out, "a\\x1b[31mred\\x7f\\x09z\n") != NULL, "ESC, DEL and tab as \\xNN");
    is_int((int)lines_in(out), 1, "one line");
    logged(out, sizeof(out), "%s", "ends with a newline\n");
    is_int((int)lines_in(out), 1, "a final newline adds no empty line");
    char big[3000];
    memset(big, 1, sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t n = logged(out, sizeof(out), "%s", big);
    ok(n <= 2048 && n > 4 && memcmp(out + n - 4, "...\n", 4) == 0, "too long: cut, and says so");
}

int main(void)
{
    log_lines();
    numbers();
    html();
    dates();
    buffers();
    return done_testing();
}
