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
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    /* A control byte from outside (a CA's error detail, a file name) is written as \xNN,
     * so that it can neither end the line nor forge another; a message of several lines
     * (a list of errors) gets the prefix on each. */
    size_t len = (size_t)n;
    bool cut = m > 0 && (size_t)m >= sizeof(msg);
    for (size_t i = 0; i < mlen; i++) {
        unsigned char ch = (unsigned char)msg[i];
        bool nl = ch == '\n', ctl = !nl && (ch < 0x20 || ch == 0x7f);
        if (nl && i + 1 == mlen)
            break;
        if (len + (nl ? 1 + (size_t)n : ctl ? 4 : 1) > sizeof(line) - 2) {
            cut = true;
            break;
        }
        if (nl) {
            line[len++] = '\n';
            memcpy(line + len, line, (size_t)n);
            len += (size_t)n;
        } else if (ctl) {
            static const char hex[] = "0123456789abcdef";
            line[len++] = '\\';
            line[len++] = 'x';
            line[len++] = hex[ch >> 4];
            line[len++] = hex[ch & 15];
        } else {
            line[len++] = (char)ch;
        }
    }
    if (cut) {
        /* A line longer than the buffer is cut, and says so. */
        memcpy(line + sizeof(line) - 5, "...", 3);
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
    errno = saved_errno;
}
