/* body: request bodies that a 307 or 308 may need again, byte for byte (C1). Memory is read
 * again, a file is re-opened, a reader is read once and kept up to a limit; beyond the limit
 * a replay is a clear error, never an empty request. */
#include "client/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

void body_init(struct body_src *b, const struct dt_client_body *spec, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->spec = spec;
    b->limit = limit;
    b->fd = -1;
    dt_buf_init(&b->kept);
}

void body_dispose(struct body_src *b)
{
    body_end(b);
    dt_buf_dispose(&b->kept);
}

int body_begin(struct body_src *b, char *err, size_t errlen)
{
    b->pos = 0;
    switch (b->spec->kind) {
    case DT_BODY_FILE: {
        body_end(b);
        b->fd = open(b->spec->path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (b->fd < 0 || fstat(b->fd, &st) != 0) {
            snprintf(err, errlen, "cannot read the body from %s: %s", b->spec->path,
                     strerror(errno));
            body_end(b);
            return DT_CLIENT_EIO;
        }
        b->file_len = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
        return 0;
    }
    case DT_BODY_READER:
        if (b->overflow) {
            snprintf(err, errlen,
                     "the request body was read from a stream and sent once; it was larger "
                     "than the %zu bytes kept for sending it again",
                     b->limit);
            return DT_CLIENT_EREPLAY;
        }
        return 0;
    default:
        return 0;
    }
}

long body_read(struct body_src *b, char *buf, size_t cap)
{
    const struct dt_client_body *s = b->spec;
    switch (s->kind) {
    case DT_BODY_MEMORY: {
        size_t left = s->len - (size_t)b->pos;
        size_t n = left < cap ? left : cap;
        if (n)
            memcpy(buf, (const char *)s->data + b->pos, n);
        b->pos += n;
        return (long)n;
    }
    case DT_BODY_FILE: {
        for (;;) {
            ssize_t n = read(b->fd, buf, cap);
            if (n < 0 && errno == EINTR)
                continue;
            if (n > 0)
                b->pos += (uint64_t)n;
            return n < 0 ? -1 : (long)n;
        }
    }
    case DT_BODY_READER: {
        /* First what an earlier transfer kept, then new bytes from the reader. */
        if (b->pos < b->kept.len) {
            size_t left = b->kept.len - (size_t)b->pos;
            size_t n = left < cap ? left : cap;
            memcpy(buf, b->kept.ptr + b->pos, n);
            b->pos += n;
            return (long)n;
        }
        if (b->pos < b->total)
            return -1; /* these bytes were not kept: body_begin refuses such a replay */
        if (b->eof)
            return 0;
        long n = s->read(s->read_ud, buf, cap);
        if (n < 0)
            return -1;
        if (n == 0) {
            b->eof = true;
            return 0;
        }
        if (!b->overflow && b->kept.len + (size_t)n <= b->limit) {
            dt_buf_append(&b->kept, buf, (size_t)n);
        } else if (!b->overflow) {
            b->overflow = true; /* sent on, but no longer kept: a replay is now impossible */
            dt_buf_dispose(&b->kept);
        }
        b->total += (uint64_t)n;
        b->pos += (uint64_t)n;
        return n;
    }
    default:
        return 0;
    }
}

int64_t body_length(const struct body_src *b)
{
    switch (b->spec->kind) {
    case DT_BODY_MEMORY:
        return (int64_t)b->spec->len;
    case DT_BODY_FILE:
        return b->file_len;
    case DT_BODY_READER:
        if (b->eof && !b->overflow)
            return (int64_t)b->kept.len;
        return b->spec->length;
    default:
        return 0;
    }
}

int64_t body_wire_length(const struct body_src *b)
{
    return b->spec->kind == DT_BODY_READER ? b->spec->length : body_length(b);
}

void body_end(struct body_src *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}
