/* err: error codes, their descriptions, and the allocation wrappers that abort on OOM. */
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *dt_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case DT_ENOMEM:
        return "out of memory";
    case DT_EINVAL:
        return "invalid argument";
    case DT_EIO:
        return "input/output error";
    case DT_ERANGE:
        return "value out of range";
    case DT_ENOENT:
        return "not found";
    case DT_ESYNTAX:
        return "syntax error";
    case DT_ELIMIT:
        return "limit exceeded";
    case DT_EREFUSED:
        return "refused by policy";
    case DT_EEXIST:
        return "already exists";
    }
    return "unknown error";
}

void dt_oom(void)
{
    static const char msg[] = "detour: out of memory\n";
    ssize_t n = write(2, msg, sizeof(msg) - 1);
    (void)n;
    abort();
}

void *dt_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        dt_oom();
    return p;
}

void *dt_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        dt_oom();
    return p;
}

void *dt_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        dt_oom();
    return p;
}

char *dt_xstrndup(const char *s, size_t len)
{
    char *p = dt_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void dt_diag_set(struct dt_diag *d, size_t offset, const char *fmt, ...)
{
    if (!d)
        return;
    d->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}
