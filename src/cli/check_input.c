/* check_input: what `detour check` checks, read as a stream: rule files and the redirect
 * lists `detour import` reads become, rule by rule, a request and the answer the rules give
 * it (by the one answer function, in blocks of rules); a line holding one URL is checked as
 * it is. */
#include "cli/check.h"
#include "rules/import.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#define READ_SIZE (1u << 20) /* bytes read at a time */
#define MAX_RECORD                                                                                 \
    (64u * 1024 * 1024)      /* a record (line, CSV row, nginx map) longer is an error             \
                              */
#define MAX_SHOWN_ERRORS 100 /* per file; then they are only counted */

/* A line of a block: a URL as it is, or a rule of the block's table. */
struct pending {
    char *url;   /* a URL line's URL (owned), or NULL for a rule */
    size_t rule; /* the rule's index in the table */
    uint32_t line;
};

struct check_input {
    struct check_input_options o;
    char *const *files;
    size_t nfiles, next_file;
    /* the file being read */
    const char *name;
    int fd;
    enum dt_rule_format format;
    struct dt_import_stream *stream; /* foreign formats */
    struct dt_buf buf;               /* read, not yet fed */
    bool eof;
    bool at_start;    /* nothing of the file fed yet */
    uint32_t lineno;  /* line of buf's first byte */
    uint64_t shown;   /* errors of this file shown */
    uint64_t no_host; /* of this file */
    uint32_t no_host_line;
    /* the block */
    const char *block_name; /* of the file its lines came from */
    bool block_last;        /* the block is its file's last */
    struct dt_table *table;
    int table_file;
    struct pending *pend;
    size_t npend, cap, at;
    /* --base */
    char base_scheme[8];
    struct dt_buf base_host, base_port;
    /* scratch */
    struct dt_buf host, path, query, loc, url;
    struct check_input_stats stats;
};

void check_entry_free(struct check_entry *e)
{
    if (!e)
        return;
    free(e->url);
    free(e->expect);
    free(e);
}

int check_input_new(struct check_input **out, char *const *files, size_t nfiles,
                    const struct check_input_options *o)
{
    struct check_input *in = dt_xcalloc(1, sizeof(*in));
    in->o = *o;
    if (!in->o.diag)
        in->o.diag = stderr;
    in->files = files;
    in->nfiles = nfiles;
    in->fd = -1;
    if (o->format) {
        if (dt_rule_format_parse(o->format, &in->format) != 0) {
            fprintf(in->o.diag,
                    "detour check: --input-format '%s': not one of detour, csv, nginx, "
                    "netlify\n",
                    o->format);
            goto fail;
        }
    }
    if (o->base) {
        struct dt_url u;
        struct dt_diag d;
        if (dt_url_parse(dt_str_make(o->base, strlen(o->base)), &u, &d) != 0 || !u.host.len ||
            (!dt_str_ieq(u.scheme, "http") && !dt_str_ieq(u.scheme, "https")) ||
            (u.path.len && !dt_str_eq(u.path, DT_STR("/"))) || u.has_query || u.has_userinfo) {
            fprintf(in->o.diag,
                    "detour check: --base '%s': give scheme://host[:port], as "
                    "https://old.example.com\n",
                    o->base);
            goto fail;
        }
        snprintf(in->base_scheme, sizeof(in->base_scheme), "%.*s", (int)u.scheme.len, u.scheme.ptr);
        dt_ascii_lower(in->base_scheme, strlen(in->base_scheme));
        dt_buf_append_str(&in->base_host, u.host);
        dt_buf_terminate(&in->base_host);
        dt_ascii_lower(in->base_host.ptr, in->base_host.len);
        if (u.has_port && u.port.len)
            dt_buf_append_str(&in->base_port, u.port);
        dt_buf_terminate(&in->base_port);
    }
    *out = in;
    return 0;
fail:
    free(in);
    return DT_EINVAL;
}

const struct check_input_stats *check_input_stats(const struct check_input *in)
{
    return &in->stats;
}

static void drop_block(struct check_input *in)
{
    for (size_t i = in->at; i < in->npend; i++)
        free(in->pend[i].url);
    in->npend = in->at = 0;
    dt_table_free(in->table);
    in->table = NULL;
}

/* Reports what a block's reading found wrong, as it is found, and forgets it. */
static void report(struct check_input *in, struct dt_errors *errs)
{
    for (unsigned i = 0; i < errs->count; i++) {
        const struct dt_error *e = &errs->items[i];
        in->stats.errors++;
        if (in->shown++ == MAX_SHOWN_ERRORS)
            fprintf(in->o.diag, "%s: more errors: only counted from here on\n", in->name);
        if (in->shown > MAX_SHOWN_ERRORS)
            continue;
        if (e->line && e->column)
            fprintf(in->o.diag, "%s:%u:%u: %s\n", e->file ? e->file : in->name, e->line, e->column,
                    e->message);
        else if (e->line)
            fprintf(in->o.diag, "%s:%u: %s\n", e->file ? e->file : in->name, e->line, e->message);
        else
            fprintf(in->o.diag, "%s: %s\n", e->file ? e->file : in->name, e->message);
    }
    dt_errors_dispose(errs);
    dt_errors_init(errs);
}

/* Once the last block of a file has given all its entries: what of it was not checked
 * for want of --base, in one message. */
static void file_done(struct check_input *in)
{
    if (in->no_host)
        fprintf(in->o.diag,
                "%s:%u: %" PRIu64 " rule%s for any host not checked: give --base "
                "scheme://host to say where to send them\n",
                in->block_name, in->no_host_line, in->no_host, in->no_host == 1 ? "" : "s");
    in->no_host = 0;
    in->block_last = false;
}

static void close_file(struct check_input *in)
{
    in->block_last = true;
    if (in->fd > 0)
        close(in->fd);
    in->fd = -1;
    dt_import_stream_free(in->stream);
    in->stream = NULL;
    in->buf.len = 0;
}

static bool open_next(struct check_input *in)
{
    while (in->next_file < in->nfiles) {
        const char *path = in->files[in->next_file++];
        bool std = !strcmp(path, "-");
        in->name = std ? "(stdin)" : path;
        in->fd = std ? 0 : open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            fprintf(in->o.diag, "%s: cannot open: %s\n", path, strerror(errno));
            in->stats.errors++;
            continue;
        }
        in->format = in->o.format ? in->format : dt_rule_format_guess(std ? NULL : path);
        in->stream =
            in->format == DT_FORMAT_DETOUR ? NULL : dt_import_stream_new(in->format, in->name, 0);
        in->eof = false;
        in->at_start = true;
        in->lineno = 1;
        in->shown = 0;
        in->buf.len = 0;
        return true;
    }
    return false;
}

/* Reads more of the file into buf; false at its end (or on an error, reported). */
static bool read_more(struct check_input *in)
{
    if (in->eof)
        return false;
    /* What is held is scanned again for whole records after each read: reading as much
     * again as is held (a pipe gives 64 KiB a read: so many reads) keeps a long record's
     * cost linear. */
    size_t want = in->buf.len > READ_SIZE ? in->buf.len : READ_SIZE, got = 0;
    dt_buf_reserve(&in->buf, want);
    while (got < want) {
        ssize_t n = read(in->fd, in->buf.ptr + in->buf.len, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(in->o.diag, "%s: read error: %s\n", in->name, strerror(errno));
            in->stats.errors++;
        }
        if (n <= 0) {
            in->eof = true;
            break;
        }
        in->buf.len += (size_t)n;
        got += (size_t)n;
    }
    return got > 0;
}

static void add_pending(struct check_input *in, char *url, size_t rule, uint32_t line)
{
    if (in->npend == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 1024;
        in->pend = dt_xrealloc(in->pend, in->cap * sizeof(*in->pend));
    }
    in->pend[in->npend++] = (struct pending){url, rule, line};
}

/* The URL alone on a line ("https://example.com/a", maybe with blanks around), or an empty
 * span when the line is something else. */
static struct dt_str lone_url(struct dt_str line, size_t *at)
{
    size_t lead = 0;
    while (lead < line.len && (line.ptr[lead] == ' ' || line.ptr[lead] == '\t'))
        lead++;
    *at = lead;
    line.ptr += lead;
    line.len -= lead;
    while (line.len && (line.ptr[line.len - 1] == ' ' || line.ptr[line.len - 1] == '\t'))
        line.len--;
    bool http = (line.len > 7 && !strncasecmp(line.ptr, "http://", 7)) ||
                (line.len > 8 && !strncasecmp(line.ptr, "https://", 8));
    if (!http || memchr(line.ptr, ' ', line.len) || memchr(line.ptr, '\t', line.len))
        return DT_STR("");
    return line;
}

/* Reads the lines of a detour rule file (or a list of URLs) in piece. */
static void feed_detour(struct check_input *in, struct dt_str piece, struct dt_errors *errs)
{
    size_t pos = 0;
    /* a UTF-8 byte order mark, as Windows tools write at the start of a text file */
    if (in->at_start && piece.len >= 3 && !memcmp(piece.ptr, "\xEF\xBB\xBF", 3))
        pos = 3;
    in->at_start = false;
    uint32_t lineno = in->lineno;
    while (pos < piece.len) {
        const char *nl = memchr(piece.ptr + pos, '\n', piece.len - pos);
        size_t end = nl ? (size_t)(nl - piece.ptr) : piece.len;
        struct dt_str line = dt_str_make(piece.ptr + pos, end - pos);
        if (line.len && line.ptr[line.len - 1] == '\r')
            line.len--;
        size_t at;
        struct dt_str url = lone_url(line, &at);
        struct dt_url u;
        struct dt_diag d;
        int bad = url.len ? dt_url_parse(url, &u, &d) : 0;
        if (url.len && (bad || !u.host.len || u.has_userinfo)) {
            const char *why = bad           ? d.msg
                              : !u.host.len ? "it names no host"
                                            : "credentials in a URL are not sent to check it";
            size_t off = bad           ? d.offset
                         : !u.host.len ? (size_t)(u.host.ptr - url.ptr)
                                       : (size_t)(u.userinfo.ptr - url.ptr);
            dt_errors_add_at(errs, in->name, lineno, at + off + 1, "not a URL to check: %s", why);
        } else if (url.len) {
            add_pending(in, dt_xstrndup(url.ptr, url.len), 0, lineno);
        } else {
            size_t before = dt_table_size(in->table);
            dt_table_load_line(in->table, in->table_file, in->name, lineno, line, errs);
            for (size_t i = before; i < dt_table_size(in->table); i++)
                add_pending(in, NULL, i, lineno);
        }
        lineno++;
        pos = end + 1;
    }
}

/* Converts a piece of a foreign format and reads its rules. */
static void feed_foreign(struct check_input *in, struct dt_str piece, struct dt_errors *errs)
{
    struct dt_import im;
    dt_import_init(&im);
    if (dt_import_stream_feed(in->stream, piece, in->lineno, &im, errs) == DT_ELIMIT)
        in->eof = true;
    for (size_t k = 0; k < im.n; k++) {
        size_t before = dt_table_size(in->table);
        dt_table_load_converted(in->table, in->table_file, in->name, &im.lines[k], errs);
        for (size_t i = before; i < dt_table_size(in->table); i++)
            add_pending(in, NULL, i, im.lines[k].line);
    }
    dt_import_dispose(&im);
}

/* Reads the next block: up to CHECK_BLOCK_RULES rules (and the URL lines among them) of the
 * current file, or of the next ones. False when every file is read. */
static bool read_block(struct check_input *in)
{
    drop_block(in);
    if (in->block_last)
        file_done(in);
    struct dt_errors errs;
    dt_errors_init(&errs);
    for (;;) {
        if (in->fd < 0 && !open_next(in))
            return false;
        in->table = dt_table_new();
        in->table_file = dt_table_add_file(in->table, in->name);
        in->block_name = in->name;
        while (dt_table_size(in->table) < CHECK_BLOCK_RULES && in->npend < CHECK_BLOCK_RULES) {
            struct dt_str text = dt_str_make(in->buf.ptr, in->buf.len);
            size_t whole;
            if (in->stream) {
                whole = dt_import_stream_whole(in->stream, text, in->eof);
            } else if (in->eof) {
                whole = text.len;
            } else {
                const char *nl = text.len ? memrchr(text.ptr, '\n', text.len) : NULL;
                whole = nl ? (size_t)(nl - text.ptr) + 1 : 0;
            }
            if (whole == 0) {
                if (in->eof)
                    break;
                if (in->buf.len > MAX_RECORD) {
                    dt_errors_add_at(&errs, in->name, in->lineno, 0,
                                     "a record longer than %u bytes: the rest is not read",
                                     MAX_RECORD);
                    in->eof = true;
                    in->buf.len = 0;
                    break;
                }
                read_more(in);
                continue;
            }
            struct dt_str piece = dt_str_make(in->buf.ptr, whole);
            if (in->stream)
                feed_foreign(in, piece, &errs);
            else
                feed_detour(in, piece, &errs);
            for (size_t i = 0; i < whole; i++)
                in->lineno += in->buf.ptr[i] == '\n';
            memmove(in->buf.ptr, in->buf.ptr + whole, in->buf.len - whole);
            in->buf.len -= whole;
            report(in, &errs);
        }
        /* the table logs what it finds duplicated; `detour lint` is the place for that */
        dt_table_finish(in->table);
        report(in, &errs);
        if (in->eof && in->buf.len == 0 && dt_table_size(in->table) < CHECK_BLOCK_RULES &&
            in->npend < CHECK_BLOCK_RULES)
            close_file(in);
        if (in->npend)
            return true;
        if (in->block_last)
            file_done(in); /* a last block that gave nothing */
        dt_table_free(in->table);
        in->table = NULL;
    }
}

static const char *scheme_name(enum dt_scheme s)
{
    return s == DT_SCHEME_HTTP ? "http" : "https";
}

/* The entry for rule i of the block: its sample request, and what the rules answer it. NULL
 * when it is not checked (counted in stats). */
static struct check_entry *rule_entry(struct check_input *in, size_t i, uint32_t line)
{
    const struct dt_table *t = in->table;
    const struct dt_rule *r = dt_table_rule(t, i);
    const char *any = in->base_host.len ? in->base_host.ptr : "";
    if (!dt_rule_sample(t, r, any, &in->host, &in->path, &in->query)) {
        in->stats.unsampled++;
        return NULL;
    }
    if (!in->host.len || !in->host.ptr[0]) {
        if (!in->no_host++)
            in->no_host_line = line;
        in->stats.no_host++;
        return NULL;
    }
    enum dt_scheme scheme = dt_rule_scheme(r);
    bool on_base = in->base_host.len && !strcmp(in->host.ptr, in->base_host.ptr);
    if (scheme == DT_SCHEME_ANY)
        scheme = in->base_scheme[0] && !strcmp(in->base_scheme, "http") ? DT_SCHEME_HTTP
                                                                        : DT_SCHEME_HTTPS;
    struct dt_match m;
    struct dt_str host = dt_str_make(in->host.ptr, in->host.len);
    struct dt_str path = dt_str_make(in->path.ptr, in->path.len);
    struct dt_str query = dt_str_make(in->query.ptr, in->query.len);
    if (dt_table_match(t, scheme, host, path, query, in->o.now, &m) != r) {
        in->stats.shadowed++;
        return NULL;
    }
    in->url.len = 0;
    dt_buf_appendf(&in->url, "%s://%s", scheme_name(scheme), in->host.ptr);
    if (on_base && in->base_port.len && in->base_port.ptr[0])
        dt_buf_appendf(&in->url, ":%s", in->base_port.ptr);
    dt_buf_append_str(&in->url, path);
    if (query.len)
        dt_buf_appendf(&in->url, "?%s", in->query.ptr);
    dt_buf_terminate(&in->url);
    in->loc.len = 0;
    dt_buf_reserve(&in->loc, dt_table_location_max(t, &m, query) + 1);
    in->loc.len = dt_table_location(t, &m, query, in->loc.ptr);
    struct dt_buf expect;
    dt_buf_init(&expect);
    if (dt_url_resolve(dt_str_make(in->url.ptr, in->url.len), dt_str_make(in->loc.ptr, in->loc.len),
                       &expect, NULL) != 0) {
        dt_buf_dispose(&expect);
        in->stats.unsampled++;
        return NULL;
    }
    struct check_entry *e = dt_xcalloc(1, sizeof(*e));
    e->url = dt_xstrndup(in->url.ptr, in->url.len);
    e->expect = expect.ptr; /* the resolved URL, NUL-terminated: the entry's from here */
    e->item.expect_status = dt_rule_status_at(t, r, in->o.now);
    return e;
}

int check_input_next(struct check_input *in, struct check_entry **out)
{
    for (;;) {
        if (in->at == in->npend && !read_block(in))
            return 0;
        struct pending *p = &in->pend[in->at++];
        struct check_entry *e;
        if (p->url) {
            e = dt_xcalloc(1, sizeof(*e));
            e->url = p->url;
            p->url = NULL;
        } else if (!(e = rule_entry(in, p->rule, p->line))) {
            continue;
        }
        e->file = in->block_name;
        e->line = p->line;
        e->item.url = e->url;
        e->item.expect = e->expect;
        e->item.ud = e;
        in->stats.entries++;
        *out = e;
        return 1;
    }
}

void check_input_free(struct check_input *in)
{
    if (!in)
        return;
    if (in->block_last)
        file_done(in);
    drop_block(in);
    free(in->pend);
    if (in->fd >= 0)
        close_file(in);
    dt_buf_dispose(&in->buf);
    dt_buf_dispose(&in->base_host);
    dt_buf_dispose(&in->base_port);
    dt_buf_dispose(&in->host);
    dt_buf_dispose(&in->path);
    dt_buf_dispose(&in->query);
    dt_buf_dispose(&in->loc);
    dt_buf_dispose(&in->url);
    free(in);
}

uint64_t check_input_estimate(char *const *files, size_t nfiles)
{
    uint64_t n = 0;
    char *buf = malloc(READ_SIZE);
    for (size_t f = 0; buf && f < nfiles; f++) {
        if (!strcmp(files[f], "-")) {
            n = 0;
            break;
        }
        int fd = open(files[f], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        bool start = true, counted = false;
        ssize_t got;
        while ((got = read(fd, buf, READ_SIZE)) > 0) {
            for (ssize_t i = 0; i < got; i++) {
                char ch = buf[i];
                if (ch == '\n') {
                    start = true;
                    counted = false;
                } else if (start && (ch == ' ' || ch == '\t' || ch == '\r')) {
                    continue;
                } else if (start) {
                    start = false;
                    if (ch != '#' && !counted) {
                        n++;
                        counted = true;
                    }
                }
            }
        }
        close(fd);
    }
    free(buf);
    return n;
}
