/* url: RFC 3986 URI references (parse, validate hosts) and target templates: a redirect
 * target with :splat, :name and $N holes filled in from a match, never in the authority. */
#ifndef DT_URL_H
#define DT_URL_H

#include "base/base.h"

/* ---- URI references (RFC 3986) --------------------------------------------------------- */

/* The components of a URI reference, as spans into the parsed text. Delimiters are not
 * included ("http", not "http:"; "a=1", not "?a=1"); has_* tell an empty component from an
 * absent one. */
struct dt_url {
    struct dt_str scheme;
    struct dt_str userinfo;
    struct dt_str host; /* an IP-literal keeps its brackets */
    struct dt_str port;
    struct dt_str path;
    struct dt_str query;
    struct dt_str fragment;
    bool has_authority, has_userinfo, has_port, has_query, has_fragment;
};

/* Parses s as a URI-reference (RFC 3986 4.1) and checks every character is allowed where it
 * stands (percent-encodings must be complete). Returns 0 or DT_ESYNTAX with diag (may be
 * NULL) saying where and why. Any thread; u points into s. */
DT_MUST_CHECK int dt_url_parse(struct dt_str s, struct dt_url *u, struct dt_diag *diag);

/* True for a valid RFC 3986 host: reg-name, IPv4address or an IP-literal in brackets. An
 * empty host is not valid here. */
bool dt_url_host_valid(struct dt_str host);

/* Makes a valid host (dt_url_host_valid, no port) the key rules match by, in place:
 * lower-cased, and a fully qualified name without its final dot ("Example.COM." ->
 * "example.com"). Returns the key's length. Any thread. */
size_t dt_url_host_key(char *host, size_t len);

/* Character classes of RFC 3986 2.2-2.3, as a table of bit flags. */
enum {
    DT_URL_UNRESERVED = 1, /* ALPHA DIGIT - . _ ~ */
    DT_URL_SUBDELIM = 2,   /* ! $ & ' ( ) * + , ; = */
    DT_URL_GENDELIM = 4,   /* : / ? # [ ] @ */
};
extern const uint8_t dt_url_class[256];

/* True when c may appear as itself in a path (pchar or "/"), percent sign included. */
static inline bool dt_url_path_char(unsigned char c)
{
    return (dt_url_class[c] & (DT_URL_UNRESERVED | DT_URL_SUBDELIM)) || c == ':' || c == '@' ||
           c == '/' || c == '%';
}

/* Upper bound of the bytes the encoded form of s takes (at most 3 * s.len). */
size_t dt_url_encoded_len(struct dt_str s);
/* Copies s to out, percent-encoding every byte that may not stand as itself in a path
 * (spaces, quotes, backslashes, '?', '#', controls, bytes >= 0x80) and every '%' that does
 * not start a valid percent-encoding; valid percent-encodings are kept as they are, so
 * nothing is decoded. Returns the bytes written (at most 3 * s.len). */
size_t dt_url_encode_path(char *out, struct dt_str s);
/* The same for a query, where '?' may stand as itself. */
size_t dt_url_encode_query(char *out, struct dt_str s);

/* Appends ref to out with every byte that RFC 3986 does not allow in its path, query or
 * fragment percent-encoded there, as browsers' URL parser does with a Location that has
 * spaces or raw UTF-8: spaces, controls, bytes >= 0x80, '"', '<', '>', '^', '`', '{', '|',
 * '}', '[' and ']' (and '#' in a fragment), and a '%' that does not start a valid
 * percent-encoding. The scheme and the authority are copied as they are (a host is never
 * rewritten), and so is a backslash, which browsers read as a slash: the caller decides
 * what either means. Returns how many bytes were encoded (0: out got ref unchanged). */
size_t dt_url_encode_reference(struct dt_buf *out, struct dt_str ref);

/* RFC 3986 5.2.4: writes path without "." and ".." segments to out (room for path.len
 * bytes); returns the length. */
size_t dt_url_remove_dots(char *out, struct dt_str path);

/* Resolves ref (a Location, say) against the absolute URI base (RFC 3986 5.2, strict) and
 * appends the result, NUL-terminated, to out. A reference without a fragment keeps base's
 * (RFC 9110 10.2.2). Returns 0, or DT_ESYNTAX/DT_EINVAL with diag. Any thread. */
DT_MUST_CHECK int dt_url_resolve(struct dt_str base, struct dt_str ref, struct dt_buf *out,
                                 struct dt_diag *diag);

/* ---- target templates ------------------------------------------------------------------ */

enum dt_tpl_kind {
    DT_TPL_LITERAL, /* text[off, off+len) */
    DT_TPL_SPLAT,   /* what the trailing * of a prefix source matched */
    DT_TPL_NAMED,   /* :name, index into the source's placeholder names */
    DT_TPL_CAPTURE, /* $N of a regular expression */
};

struct dt_tpl_part {
    uint8_t kind;
    uint8_t index;
    uint16_t len;
    uint32_t off;
};

/* A compiled redirect target. Immutable once compiled. text is the caller's (not copied);
 * parts live in the arena given to dt_template_compile, with offsets into text, so a copy
 * of text elsewhere may be used with the same parts. Without holes, nparts == 0. */
struct dt_template {
    const char *text;
    uint32_t len;
    uint32_t fragment; /* offset of '#' in text, or len when there is none */
    uint16_t nparts;
    bool absolute;  /* starts with a scheme: http(s)://host/... */
    bool has_query; /* the target has its own '?' */
    const struct dt_tpl_part *parts;
};

/* What the source of a rule can fill in: a splat, placeholder names, regex captures. */
struct dt_tpl_source {
    bool splat;
    bool regex; /* $0 (the whole match) and $1..$ncaptures are valid */
    uint8_t ncaptures;
    uint8_t nnames;
    const struct dt_str *names;
};

#define DT_TPL_MAX_LEN 4096 /* longest target a rule may have */
#define DT_TPL_MAX_NAMES 16
#define DT_TPL_MAX_HOLES 32 /* placeholders ($N, :name, :splat) in one target */

/* Compiles text (a path starting with "/" or an absolute http/https URL) into t, checking
 * that every hole is one the source provides and stands after the authority, so a value
 * filled in can never change the scheme or the host. Returns 0, or DT_ESYNTAX with diag. */
DT_MUST_CHECK int dt_template_compile(struct dt_str text, const struct dt_tpl_source *src,
                                      struct dt_arena *arena, struct dt_template *t,
                                      struct dt_diag *diag);

/* The values a match supplies to fill a template. */
struct dt_tpl_values {
    struct dt_str splat;
    const struct dt_str *named;    /* indexed like dt_tpl_source.names */
    const struct dt_str *captures; /* [0] whole match, [1..] groups */
    uint8_t ncaptures;
    struct dt_str query; /* the request's query without '?', appended if keep_query */
    bool keep_query;
};

/* Upper bound of the bytes dt_template_render writes for these values. */
size_t dt_template_max_len(const struct dt_template *t, const struct dt_tpl_values *v);

/* Writes the target for v into out (room for dt_template_max_len bytes) and returns its
 * length. Filled-in values are percent-encoded where needed (dt_url_encode_path); the
 * request's query is inserted before the target's fragment when the target has no query
 * of its own and keep_query is set. A path target never comes out starting with "//".
 * Any thread. */
size_t dt_template_render(const struct dt_template *t, const struct dt_tpl_values *v, char *out);

#endif
