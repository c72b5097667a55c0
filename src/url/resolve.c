/* resolve: RFC 3986 section 5.2, resolving a reference (a Location) against a base URI,
 * and RFC 9110 10.2.2's rule that a Location without a fragment keeps the request's. */
#include "url/url.h"

#include <stdlib.h>

/* RFC 3986 5.2.4: removes "." and ".." segments from in, writing to out (room for
 * in.len bytes); returns the length written. */
size_t dt_url_remove_dots(char *out, struct dt_str in)
{
    const char *p = in.ptr, *end = in.ptr + in.len;
    size_t n = 0;
    while (p < end) {
        size_t left = (size_t)(end - p);
        /* A: drop a leading "../" or "./" */
        if (left >= 3 && !memcmp(p, "../", 3)) {
            p += 3;
        } else if (left >= 2 && !memcmp(p, "./", 2)) {
            p += 2;
            /* B: "/./" or a final "/." becomes "/" */
        } else if (left >= 3 && !memcmp(p, "/./", 3)) {
            p += 2;
        } else if (left == 2 && !memcmp(p, "/.", 2)) {
            out[n++] = '/';
            p = end;
            /* C: "/../" or a final "/.." becomes "/" and drops the last output segment */
        } else if (left >= 4 && !memcmp(p, "/../", 4)) {
            p += 3;
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
        } else if (left == 3 && !memcmp(p, "/..", 3)) {
            p += 3;
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n++] = '/';
            /* D: a lone "." or ".." is dropped */
        } else if ((left == 1 && p[0] == '.') || (left == 2 && !memcmp(p, "..", 2))) {
            p = end;
        } else {
            /* E: move the first segment, with its leading "/" if any, to the output */
            const char *seg = p;
            if (*p == '/')
                p++;
            while (p < end && *p != '/')
                p++;
            memcpy(out + n, seg, (size_t)(p - seg));
            n += (size_t)(p - seg);
        }
    }
    return n;
}

static void put(struct dt_buf *b, struct dt_str s)
{
    dt_buf_append(b, s.ptr, s.len);
}

static void put_dots_removed(struct dt_buf *b, struct dt_str path)
{
    dt_buf_reserve(b, path.len + 1);
    b->len += dt_url_remove_dots(b->ptr + b->len, path);
}

static void put_authority(struct dt_buf *b, const struct dt_url *u)
{
    dt_buf_append(b, "//", 2);
    if (u->has_userinfo) {
        put(b, u->userinfo);
        dt_buf_append(b, "@", 1);
    }
    put(b, u->host);
    if (u->has_port) {
        dt_buf_append(b, ":", 1);
        put(b, u->port);
    }
}

int dt_url_resolve(struct dt_str base, struct dt_str ref, struct dt_buf *out, struct dt_diag *diag)
{
    struct dt_url b, r;
    if (dt_url_parse(base, &b, diag) != 0)
        return DT_ESYNTAX;
    if (!b.scheme.len) {
        dt_diag_set(diag, 0, "the base URI must be absolute");
        return DT_EINVAL;
    }
    /* Leading and trailing spaces around a Location are not part of it (RFC 9110 5.5). */
    while (ref.len && (ref.ptr[0] == ' ' || ref.ptr[0] == '\t')) {
        ref.ptr++;
        ref.len--;
    }
    while (ref.len && (ref.ptr[ref.len - 1] == ' ' || ref.ptr[ref.len - 1] == '\t'))
        ref.len--;
    if (dt_url_parse(ref, &r, diag) != 0)
        return DT_ESYNTAX;
    /* RFC 3986 5.2.2, strict: a reference with a scheme is taken as it is. */
    if (r.scheme.len) {
        put(out, r.scheme);
        dt_buf_append(out, ":", 1);
        if (r.has_authority)
            put_authority(out, &r);
        put_dots_removed(out, r.path);
        if (r.has_query) {
            dt_buf_append(out, "?", 1);
            put(out, r.query);
        }
    } else {
        put(out, b.scheme);
        dt_buf_append(out, ":", 1);
        if (r.has_authority) {
            put_authority(out, &r);
            put_dots_removed(out, r.path);
            if (r.has_query) {
                dt_buf_append(out, "?", 1);
                put(out, r.query);
            }
        } else {
            if (b.has_authority)
                put_authority(out, &b);
            if (r.path.len == 0) {
                put(out, b.path);
                if (r.has_query) {
                    dt_buf_append(out, "?", 1);
                    put(out, r.query);
                } else if (b.has_query) {
                    dt_buf_append(out, "?", 1);
                    put(out, b.query);
                }
            } else {
                if (r.path.ptr[0] == '/') {
                    put_dots_removed(out, r.path);
                } else {
                    /* 5.2.3 merge: the base path up to its last "/", then the reference */
                    struct dt_buf merged;
                    dt_buf_init(&merged);
                    if (b.has_authority && b.path.len == 0) {
                        dt_buf_append(&merged, "/", 1);
                    } else {
                        const char *slash = NULL;
                        for (size_t i = b.path.len; i-- > 0;)
                            if (b.path.ptr[i] == '/') {
                                slash = b.path.ptr + i;
                                break;
                            }
                        if (slash)
                            dt_buf_append(&merged, b.path.ptr, (size_t)(slash - b.path.ptr) + 1);
                    }
                    put(&merged, r.path);
                    put_dots_removed(out, dt_str_make(merged.ptr, merged.len));
                    dt_buf_dispose(&merged);
                }
                if (r.has_query) {
                    dt_buf_append(out, "?", 1);
                    put(out, r.query);
                }
            }
        }
    }
    /* RFC 9110 10.2.2: a Location without a fragment inherits the request's. */
    if (r.has_fragment) {
        dt_buf_append(out, "#", 1);
        put(out, r.fragment);
    } else if (b.has_fragment) {
        dt_buf_append(out, "#", 1);
        put(out, b.fragment);
    }
    dt_buf_terminate(out);
    return 0;
}
