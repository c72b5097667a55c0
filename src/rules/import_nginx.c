/* import_nginx: nginx map blocks (map $uri $new { ... }): their keys (exact, ~regex) and
 * values as detour rules. */
#include "rules/convert.h"

#include <stdio.h>
#include <stdlib.h>

#define NGX_MAX_WORDS 4 /* words of an nginx statement that are kept (a map entry has 2) */

/* ---- nginx map blocks -------------------------------------------------------------------- */

/* A word of nginx's configuration, unquoted and unescaped into ngx.words_text. */
struct ngx_word {
    size_t val, len; /* the value in ngx.words_text */
    size_t at;       /* offset in the text where the word starts (its quote, if quoted) */
};

enum ngx_token { TOK_WORD, TOK_SEMI, TOK_OPEN, TOK_CLOSE, TOK_END, TOK_BAD };

/* What a map's source variable holds. */
enum ngx_source { SRC_URI, SRC_REQUEST_URI };

struct ngx {
    struct conv *c;
    struct dt_buf words_text;             /* the values of the statement's words */
    struct ngx_word words[NGX_MAX_WORDS]; /* its first words */
    unsigned n;                           /* its words, kept or not */
    int depth;                            /* blocks open */
    int map_depth;                        /* depth of the map being read, or -1 */
    bool map_skip;                        /* its header was bad: entries are not read */
    enum ngx_source source;               /* what its keys are matched against */
    size_t map_at;                        /* where its "map" word is */
};

static struct dt_str ngx_value(const struct ngx *x, unsigned i)
{
    const struct ngx_word *w = &x->words[i];
    return dt_str_make(w->len ? x->words_text.ptr + w->val : "", w->len);
}

static bool ngx_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Appends the escape "\<next>" as nginx reads it: \" \' \\ stand for the character, \t \r
 * \n for the control character, and any other pair stays as written (so that regular
 * expressions keep their \d and \.). */
static void ngx_unescape(char next, struct dt_buf *out)
{
    switch (next) {
    case '"':
    case '\'':
    case '\\':
        dt_buf_append(out, &next, 1);
        return;
    case 't':
        dt_buf_append(out, "\t", 1);
        return;
    case 'r':
        dt_buf_append(out, "\r", 1);
        return;
    case 'n':
        dt_buf_append(out, "\n", 1);
        return;
    }
    dt_buf_append(out, "\\", 1);
    dt_buf_append(out, &next, 1);
}

/* Reads the next token from *pos. A word's value is kept only when keep (so that long
 * statements outside maps cost nothing). Returns TOK_BAD after reporting an unterminated
 * string. */
static enum ngx_token ngx_next(struct ngx *x, size_t *pos, bool keep, struct ngx_word *w)
{
    struct conv *c = x->c;
    const char *t = c->text.ptr;
    size_t len = c->text.len, i = *pos;
    for (;;) {
        while (i < len && ngx_space(t[i]))
            i++;
        if (i < len && t[i] == '#') {
            i = dt_import_next_line(c, i);
            continue;
        }
        break;
    }
    w->at = i;
    if (i == len) {
        *pos = len;
        return TOK_END;
    }
    switch (t[i]) {
    case ';':
        *pos = i + 1;
        return TOK_SEMI;
    case '{':
        *pos = i + 1;
        return TOK_OPEN;
    case '}':
        *pos = i + 1;
        return TOK_CLOSE;
    }
    /* The scratch buffer holds the value whether kept or not; an unkept value is dropped. */
    struct dt_buf *out = &x->words_text;
    size_t mark = out->len;
    w->val = out->len;
    char quote = t[i];
    if (quote == '"' || quote == '\'') {
        for (i++;; i++) {
            if (i >= len) {
                dt_import_fail(c, w->at, "unterminated string (it needs a closing %c)", quote);
                *pos = len;
                return TOK_BAD;
            }
            if (t[i] == quote)
                break;
            if (t[i] == '\\' && i + 1 < len)
                ngx_unescape(t[++i], out);
            else
                dt_buf_append(out, t + i, 1);
        }
        i++;
    } else {
        while (i < len && !ngx_space(t[i]) && t[i] != ';' && t[i] != '}') {
            if (t[i] == '{') {
                if (i == w->at || t[i - 1] != '$')
                    break;
                /* "${name}" */
                size_t close = i;
                while (close < len && t[close] != '}' && !ngx_space(t[close]))
                    close++;
                if (close < len && t[close] == '}')
                    close++;
                dt_buf_append(out, t + i, close - i);
                i = close;
                continue;
            }
            if (t[i] == '\\' && i + 1 < len) {
                ngx_unescape(t[i + 1], out);
                i += 2;
                continue;
            }
            dt_buf_append(out, t + i, 1);
            i++;
        }
    }
    w->len = out->len - w->val;
    if (!keep)
        out->len = mark;
    *pos = i;
    return TOK_WORD;
}

/* Starts reading a map block whose header is the statement's words. */
static void ngx_map_open(struct ngx *x)
{
    x->map_skip = true;
    x->map_at = x->words[0].at;
    if (x->n != 3) {
        dt_import_fail(x->c, x->words[0].at, "expected 'map $uri $variable {'");
        return;
    }
    struct dt_str src = ngx_value(x, 1);
    if (dt_str_eq(src, DT_STR("$uri")) || dt_str_eq(src, DT_STR("$document_uri"))) {
        x->source = SRC_URI;
    } else if (dt_str_eq(src, DT_STR("$request_uri"))) {
        x->source = SRC_REQUEST_URI;
    } else {
        dt_import_fail(
            x->c, x->words[1].at,
            "a map on %.*s cannot be converted (only $uri, $request_uri and $document_uri)",
            dt_import_shown(src), src.ptr);
        return;
    }
    x->map_skip = false;
}

/* Characters a decoded path ($uri) may hold as they are in a request (RFC 3986 3.3 pchar
 * and '/'); the others were percent-encoded by the client. */
static bool path_char(unsigned char ch)
{
    return name_char(ch) || (ch && strchr("-.~!$&'()*+,;=:@/", ch));
}

/* True when a literal path would mean more in detour's syntax: a trailing '*' (a prefix) or
 * a segment ":name" (a placeholder). */
static bool needs_regex(struct dt_str p)
{
    if (p.len && p.ptr[p.len - 1] == '*')
        return true;
    for (size_t i = 0; i + 2 < p.len; i++)
        if (p.ptr[i] == '/' && p.ptr[i + 1] == ':' && name_start((unsigned char)p.ptr[i + 2]))
            return true;
    return false;
}

/* Writes a literal path as an anchored regular expression (bytes above 127 encoded). */
static void put_regex_literal(struct conv *c, struct dt_str p)
{
    dt_import_put_cstr(c, "~^");
    for (size_t i = 0; i < p.len; i++) {
        if (p.ptr[i] && strchr("\\^$.|?*+()[]{}", p.ptr[i]))
            dt_import_put_cstr(c, "\\");
        dt_import_put_encoded(c, dt_str_make(p.ptr + i, 1));
    }
    dt_import_put_cstr(c, "$");
}

/* Writes a map key as a source; false (with d) when it cannot be converted. */
static bool ngx_key(struct ngx *x, struct dt_str key, bool *regex, struct dt_diag *d)
{
    struct conv *c = x->c;
    *regex = false;
    if (key.len == 0) {
        dt_diag_set(d, 0, "empty key");
        return false;
    }
    if (key.ptr[0] == '~') {
        bool caseless = key.len > 1 && key.ptr[1] == '*';
        struct dt_str re = dt_str_make(key.ptr + 1 + caseless, key.len - 1 - caseless);
        if (re.len == 0) {
            dt_diag_set(d, 0, "empty regular expression");
            return false;
        }
        if (!dt_import_check_chars(re, "regular expression", d)) {
            dt_diag_set(d, 0,
                        "whitespace or a control character inside the regular expression "
                        "'%.*s' cannot be converted",
                        dt_import_shown(re), re.ptr);
            return false;
        }
        /* detour matches regular expressions against the path only. */
        if (x->source == SRC_REQUEST_URI && memmem(re.ptr, re.len, "\\?", 2)) {
            dt_diag_set(d, 0,
                        "the regular expression '%.*s' matches the query ('\\?'), but "
                        "detour matches regular expressions against the path only",
                        dt_import_shown(re), re.ptr);
            return false;
        }
        dt_import_put_cstr(c, caseless ? "~(?i)" : "~");
        dt_import_put(c, re);
        *regex = true;
        return true;
    }
    if (key.ptr[0] != '/') {
        dt_diag_set(d, 0,
                    "the key '%.*s' is neither a path (starting with '/') nor a regular "
                    "expression (~ or ~*)",
                    dt_import_shown(key), key.ptr);
        return false;
    }
    if (x->source == SRC_URI) {
        /* $uri is decoded: write the path as a client sends it. */
        struct dt_buf *p = &c->aux;
        p->len = 0;
        for (size_t i = 0; i < key.len; i++) {
            unsigned char ch = (unsigned char)key.ptr[i];
            if (path_char(ch)) {
                dt_buf_append(p, &key.ptr[i], 1);
            } else {
                static const char hex[] = "0123456789ABCDEF";
                char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
                dt_buf_append(p, enc, 3);
            }
        }
        struct dt_str path = dt_str_make(p->ptr, p->len);
        if (needs_regex(path))
            put_regex_literal(c, path);
        else
            dt_import_put(c, path);
        return true;
    }
    /* $request_uri is the request's target as sent: a path and maybe a query. */
    if (!dt_import_check_chars(key, "key", d))
        return false;
    if (memchr(key.ptr, '#', key.len)) {
        dt_diag_set(d, 0, "a key may not hold a fragment ('#'): clients do not send it");
        return false;
    }
    const char *q = memchr(key.ptr, '?', key.len);
    struct dt_str path = dt_str_make(key.ptr, q ? (size_t)(q - key.ptr) : key.len);
    struct dt_str query = q ? dt_str_make(q + 1, key.len - path.len - 1) : DT_STR("");
    if (needs_regex(path)) {
        if (query.len) {
            dt_diag_set(d, 0,
                        "a key with a literal '*' or ':name' and a query cannot be "
                        "converted");
            return false;
        }
        put_regex_literal(c, path);
        return true;
    }
    dt_import_put_encoded(c, path);
    if (query.len) {
        dt_import_put_cstr(c, "?");
        dt_import_put_encoded(c, query);
    }
    return true;
}

/* Writes a map value as a target; false (with d) when it cannot be converted. */
static bool ngx_target(struct ngx *x, struct dt_str v, bool regex, struct dt_diag *d)
{
    struct conv *c = x->c;
    struct dt_buf *out = &c->aux;
    out->len = 0;
    for (size_t i = 0; i < v.len;) {
        char ch = v.ptr[i];
        if (ch == '$' && i + 1 < v.len) {
            size_t s = i + 1, e, next;
            if (v.ptr[s] == '{') {
                s++;
                e = s;
                while (e < v.len && v.ptr[e] != '}')
                    e++;
                next = e < v.len ? e + 1 : e;
            } else if (is_digit(v.ptr[s])) {
                e = next = s + 1;
            } else {
                e = s;
                while (e < v.len && name_char((unsigned char)v.ptr[e]))
                    e++;
                next = e;
            }
            struct dt_str var = dt_str_make(v.ptr + s, e - s);
            if (var.len == 1 && is_digit(var.ptr[0])) {
                if (!regex) {
                    dt_diag_set(d, 0,
                                "$%c refers to a capture, but the key is not a regular "
                                "expression",
                                var.ptr[0]);
                    return false;
                }
                dt_buf_append(out, "$", 1);
                dt_buf_append(out, var.ptr, 1);
                i = next;
                continue;
            }
            if (var.len) {
                dt_diag_set(d, 0,
                            "the nginx variable $%.*s cannot be converted (only $1..$9 after "
                            "a regular expression key)",
                            dt_import_shown(var), var.ptr);
                return false;
            }
        }
        if (ch == ':' && i + 1 < v.len && name_start((unsigned char)v.ptr[i + 1])) {
            dt_buf_append(out, "%3A", 3); /* else it would read as a placeholder */
            i++;
            continue;
        }
        dt_buf_append(out, &ch, 1);
        i++;
    }
    struct dt_str t = dt_str_make(out->ptr, out->len);
    if (!dt_import_check_target(t, d))
        return false;
    dt_import_put_target(c, t);
    return true;
}

/* Converts the statement just read inside a map block. */
static void ngx_entry(struct ngx *x)
{
    struct conv *c = x->c;
    if (x->map_skip || x->n == 0)
        return;
    struct dt_str key = ngx_value(x, 0);
    size_t at = x->words[0].at;
    if (dt_str_eq(key, DT_STR("include"))) {
        dt_import_fail(c, at, "include is not supported: inline the included file");
        return;
    }
    if (x->n == 1) {
        if (dt_str_eq(key, DT_STR("hostnames")) || dt_str_eq(key, DT_STR("volatile")))
            return;
        dt_import_fail(c, at, "expected 'KEY VALUE;', got '%.*s' alone", dt_import_shown(key),
                       key.ptr);
        return;
    }
    if (x->n != 2) {
        dt_import_fail(c, at, "expected 'KEY VALUE;', got %u words", x->n);
        return;
    }
    if (dt_str_eq(key, DT_STR("default")))
        return;
    struct dt_str value = ngx_value(x, 1);
    if (value.len == 0)
        return; /* an empty value is nginx's "no redirect" */
    struct dt_diag d;
    bool regex;
    dt_import_begin(c);
    if (!ngx_key(x, key, &regex, &d)) {
        dt_import_fail(c, at, "%s", d.msg);
        return;
    }
    dt_import_begin_target(c);
    if (!ngx_target(x, value, regex, &d)) {
        dt_import_fail(c, at, "%s", d.msg);
        return;
    }
    dt_import_emit(c, at);
}

void dt_import_nginx(struct conv *c)
{
    struct ngx x;
    memset(&x, 0, sizeof(x));
    x.c = c;
    x.map_depth = -1;
    dt_buf_init(&x.words_text);
    size_t pos = 0;
    for (;;) {
        struct ngx_word w;
        bool keep = x.n < NGX_MAX_WORDS;
        enum ngx_token tok = ngx_next(&x, &pos, keep, &w);
        if (tok == TOK_BAD)
            break;
        if (tok == TOK_WORD) {
            if (keep)
                x.words[x.n] = w;
            x.n++;
            continue;
        }
        bool in_map = x.map_depth >= 0 && x.depth == x.map_depth;
        if (tok == TOK_END) {
            if (x.map_depth >= 0)
                dt_import_fail(c, x.map_at, "the map block is not closed (a '}' is missing)");
            break;
        }
        if (tok == TOK_SEMI && in_map) {
            ngx_entry(&x);
        } else if (tok == TOK_OPEN) {
            if (x.map_depth < 0 && x.n > 0 && dt_str_eq(ngx_value(&x, 0), DT_STR("map"))) {
                ngx_map_open(&x);
                x.map_depth = x.depth + 1;
            } else if (in_map) {
                dt_import_fail(c, w.at, "unexpected '{' inside a map block");
            }
            x.depth++;
        } else if (tok == TOK_CLOSE) {
            if (in_map && x.n > 0 && !x.map_skip)
                dt_import_fail(c, x.words[0].at, "missing ';' at the end of the entry");
            if (x.depth > 0)
                x.depth--;
            if (x.map_depth >= 0 && x.depth < x.map_depth)
                x.map_depth = -1;
        }
        x.n = 0;
        x.words_text.len = 0;
    }
    dt_buf_dispose(&x.words_text);
}
