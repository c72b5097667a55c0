/* log: one line per event on stderr, with a UTC timestamp, written in one write(). */
#include "base/base.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int min_level = DT_LOG_INFO;

void dt_log_set_level(enum dt_log_level min)
{
    atomic_store(&min_level, (int)min);
}

void dt_log(enum dt_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    int saved_errno = errno;
    char line[2048];
    char stamp[21];
    dt_fmt_rfc3339(stamp, dt_wall_now());
    int n = snprintf(line, sizeof(line), "%s detour[%d] %s: ", stamp, (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) {
        /* A line longer than the buffer is cut, and says so. */
        memcpy(line + sizeof(line) - 5, "...", 3);
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
    errno = saved_errno;
}
