/* accesslog: the optional access log in the combined format (--access-log FILE).
 *
 * Workers format lines into a buffer of their own; a full buffer (or one older than a
 * second) is handed to the log thread, which writes it. A worker never waits for the disk:
 * when the log thread falls behind by more than a bound, buffers are dropped and counted.
 * SIGUSR1 makes the log thread reopen the file (after logrotate has moved it). */
#include "server/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PENDING_MAX (64u << 20) /* bytes waiting for the disk before buffers are dropped */

struct alog_chunk {
    struct alog_chunk *next;
    size_t len;
    char data[];
};

struct dt_alog {
    char *path;
    int fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct alog_chunk *head, *tail;
    size_t pending;
    bool stop, reopen;
    uint64_t dropped_lines;
};

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void *alog_main(void *arg)
{
    struct dt_alog *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stop && !a->reopen)
            pthread_cond_wait(&a->cond, &a->mu);
        if (a->reopen) {
            a->reopen = false;
            pthread_mutex_unlock(&a->mu);
            int fd = open_log(a->path);
            if (fd < 0) {
                dt_log(DT_LOG_ERROR,
                       "access log %s: cannot reopen: %s; writing on to the old "
                       "file",
                       a->path, strerror(errno));
            } else {
                close(a->fd);
                a->fd = fd;
                dt_log(DT_LOG_INFO, "access log %s reopened", a->path);
            }
            pthread_mutex_lock(&a->mu);
            continue;
        }
        struct alog_chunk *c = a->head;
        if (!c) {
            if (a->stop)
                break;
            continue;
        }
        a->head = c->next;
        if (!a->head)
            a->tail = NULL;
        pthread_mutex_unlock(&a->mu);
        size_t off = 0;
        while (off < c->len) {
            ssize_t n = write(a->fd, c->data + off, c->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                dt_log(DT_LOG_ERROR, "access log %s: %s", a->path, strerror(errno));
                break;
            }
            off += (size_t)n;
        }
        pthread_mutex_lock(&a->mu);
        a->pending -= c->len;
        free(c);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct dt_alog *dt_alog_open(const char *path)
{
    int fd = open_log(path);
    if (fd < 0) {
        dt_log(DT_LOG_ERROR, "cannot open the access log %s: %s", path, strerror(errno));
        return NULL;
    }
    struct dt_alog *a = dt_xcalloc(1, sizeof(*a));
    a->path = dt_xstrndup(path, strlen(path));
    a->fd = fd;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    int rc = pthread_create(&a->thread, NULL, alog_main, a);
    if (rc != 0) {
        dt_log(DT_LOG_ERROR, "cannot start the access log thread: %s", strerror(rc));
        close(fd);
        free(a->path);
        free(a);
        return NULL;
    }
    return a;
}

void dt_alog_close(struct dt_alog *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    if (a->dropped_lines)
        dt_log(DT_LOG_WARN, "access log %s: %llu lines dropped (the disk was too slow)", a->path,
               (unsigned long long)a->dropped_lines);
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cond);
    free(a->path);
    free(a);
}

void dt_alog_reopen(struct dt_alog *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->reopen = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
}

void dt_alog_submit(struct dt_alog *a, struct dt_buf *b, uint32_t lines)
{
    if (!b->len)
        return;
    pthread_mutex_lock(&a->mu);
    if (a->pending + b->len > PENDING_MAX) {
        a->dropped_lines += lines;
        pthread_mutex_unlock(&a->mu);
        b->len = 0;
        return;
    }
    pthread_mutex_unlock(&a->mu);
    struct alog_chunk *c = dt_xmalloc(sizeof(*c) + b->len);
    c->next = NULL;
    c->len = b->len;
    memcpy(c->data, b->ptr, b->len);
    b->len = 0;
    pthread_mutex_lock(&a->mu);
    if (a->tail)
        a->tail->next = c;
    else
        a->head = c;
    a->tail = c;
    a->pending += c->len;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
}

uint64_t dt_alog_dropped(struct dt_alog *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->dropped_lines;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Appends s with '"', '\\' and bytes outside printable ASCII as \xHH, so that a field can
 * not break the line or its quoting. */
static void put_escaped(struct dt_buf *b, struct dt_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            dt_buf_appendf(b, "\\x%02X", c);
        else
            dt_buf_append(b, (const char *)&c, 1);
    }
}

void dt_alog_line(struct worker *w, const struct conn *c, const struct dt_request *req, int status,
                  size_t bytes)
{
    if (w->alog_stamp_s != w->now_s) {
        struct tm tm;
        gmtime_r(&w->now_s, &tm);
        strftime(w->alog_stamp, sizeof(w->alog_stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        w->alog_stamp_s = w->now_s;
    }
    struct dt_buf *b = &w->alog;
    dt_buf_appendf(b, "%s - - [%s] \"", c->peer[0] ? c->peer : "-", w->alog_stamp);
    put_escaped(b, req->method);
    dt_buf_append(b, " ", 1);
    put_escaped(b, req->target);
    if (c->h2)
        dt_buf_appendf(b, " HTTP/2.0\" %d %zu \"", status, bytes);
    else
        dt_buf_appendf(b, " HTTP/1.%u\" %d %zu \"", req->version_minor, status, bytes);
    if (req->referer.len)
        put_escaped(b, req->referer);
    else
        dt_buf_append(b, "-", 1);
    dt_buf_append(b, "\" \"", 3);
    if (req->user_agent.len)
        put_escaped(b, req->user_agent);
    else
        dt_buf_append(b, "-", 1);
    dt_buf_append(b, "\"\n", 2);
    w->alog_lines++;
    if (b->len >= 48 * 1024)
        dt_alog_flush(w);
}

void dt_alog_flush(struct worker *w)
{
    if (!w->alog.len)
        return;
    dt_alog_submit(w->srv->alog, &w->alog, w->alog_lines);
    w->alog_lines = 0;
    w->alog_flushed_s = w->now_s;
}
