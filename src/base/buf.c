/* buf and arena helpers: growable byte buffers and a bump allocator. */
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>

void dt_buf_init(struct dt_buf *b)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

void dt_buf_dispose(struct dt_buf *b)
{
    free(b->ptr);
    dt_buf_init(b);
}

int dt_buf_try_reserve(struct dt_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return DT_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (!p)
        return DT_ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

void dt_buf_reserve(struct dt_buf *b, size_t n)
{
    if (dt_buf_try_reserve(b, n) != 0)
        dt_oom();
}

void dt_buf_append(struct dt_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    dt_buf_reserve(b, n);
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

void dt_buf_appendf(struct dt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    dt_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dt_buf_terminate(struct dt_buf *b)
{
    dt_buf_reserve(b, 1);
    b->ptr[b->len] = '\0';
}
