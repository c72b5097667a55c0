/* url: parsing and validating RFC 3986 URI references, and percent-encoding values. */
#include "url/url.h"

#include <arpa/inet.h>

#define U DT_URL_UNRESERVED
#define S DT_URL_SUBDELIM
#define G DT_URL_GENDELIM
const uint8_t dt_url_class[256] = {
    ['A'] = U, ['B'] = U, ['C'] = U, ['D'] = U, ['E'] = U, ['F'] = U,  ['G'] = U, ['H'] = U,
    ['I'] = U, ['J'] = U, ['K'] = U, ['L'] = U, ['M'] = U, ['N'] = U,  ['O'] = U, ['P'] = U,
    ['Q'] = U, ['R'] = U, ['S'] = U, ['T'] = U, ['U'] = U, ['V'] = U,  ['W'] = U, ['X'] = U,
    ['Y'] = U, ['Z'] = U, ['a'] = U, ['b'] = U, ['c'] = U, ['d'] = U,  ['e'] = U, ['f'] = U,
    ['g'] = U, ['h'] = U, ['i'] = U, ['j'] = U, ['k'] = U, ['l'] = U,  ['m'] = U, ['n'] = U,
    ['o'] = U, ['p'] = U, ['q'] = U, ['r'] = U, ['s'] = U, ['t'] = U,  ['u'] = U, ['v'] = U,
    ['w'] = U, ['x'] = U, ['y'] = U, ['z'] = U, ['0'] = U, ['1'] = U,  ['2'] = U, ['3'] = U,
    ['4'] = U, ['5'] = U, ['6'] = U, ['7'] = U, ['8'] = U, ['9'] = U,  ['-'] = U, ['.'] = U,
    ['_'] = U, ['~'] = U, ['!'] = S, ['$'] = S, ['&'] = S, ['\''] = S, ['('] = S, [')'] = S,
    ['*'] = S, ['+'] = S, [','] = S, [';'] = S, ['='] = S, [':'] = G,  ['/'] = G, ['?'] = G,
    ['#'] = G, ['['] = G, [']'] = G, ['@'] = G,
};
#undef U
#undef S
#undef G

/* Checks s[from, to) against a set: unreserved and sub-delims always, plus the extra
 * characters given, plus complete percent-encodings. Returns the offset of the first bad
 * byte, or to. */
static size_t scan(struct dt_str s, size_t from, size_t to, const char *extra)
{
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (dt_url_class[c] & (DT_URL_UNRESERVED | DT_URL_SUBDELIM))
            continue;
        if (c == '%') {
            if (i + 2 < to && dt_hexval((unsigned char)s.ptr[i + 1]) >= 0 &&
                dt_hexval((unsigned char)s.ptr[i + 2]) >= 0) {
                i += 2;
                continue;
            }
            return i;
        }
        if (c && strchr(extra, c))
            continue;
        return i;
    }
    return to;
}

static bool ip_literal_valid(struct dt_str h)
{
    if (h.len < 3 || h.ptr[0] != '[' || h.ptr[h.len - 1] != ']')
        return false;
    struct dt_str in = {h.ptr + 1, h.len - 2};
    if (in.ptr[0] == 'v' || in.ptr[0] == 'V') {
        /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
        size_t i = 1;
        while (i < in.len && dt_hexval((unsigned char)in.ptr[i]) >= 0)
            i++;
        if (i == 1 || i >= in.len || in.ptr[i] != '.' || i + 1 == in.len)
            return false;
        for (i++; i < in.len; i++) {
            unsigned char c = (unsigned char)in.ptr[i];
            if (!(dt_url_class[c] & (DT_URL_UNRESERVED | DT_URL_SUBDELIM)) && c != ':')
                return false;
        }
        return true;
    }
    char tmp[64];
    struct in6_addr a;
    if (in.len >= sizeof(tmp))
        return false;
    memcpy(tmp, in.ptr, in.len);
    tmp[in.len] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

bool dt_url_host_valid(struct dt_str host)
{
    if (host.len == 0)
        return false;
    if (host.ptr[0] == '[')
        return ip_literal_valid(host);
    /* An IPv4address is also a valid reg-name, so one scan covers both. */
    return scan(host, 0, host.len, "") == host.len;
}

static int fail(struct dt_diag *diag, size_t at, const char *what)
{
    dt_diag_set(diag, at, "%s", what);
    return DT_ESYNTAX;
}

int dt_url_parse(struct dt_str s, struct dt_url *u, struct dt_diag *diag)
{
    memset(u, 0, sizeof(*u));
    size_t i = 0, n = s.len;

    /* scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" before any / ? # */
    size_t colon = 0;
    bool has_scheme = false;
    for (size_t k = 0; k < n; k++) {
        char c = s.ptr[k];
        if (c == ':') {
            colon = k;
            has_scheme = k > 0;
            break;
        }
        if (c == '/' || c == '?' || c == '#')
            break;
    }
    if (has_scheme) {
        unsigned char c0 = (unsigned char)s.ptr[0];
        if (!((c0 | 0x20) >= 'a' && (c0 | 0x20) <= 'z'))
            return fail(diag, 0, "a scheme must start with a letter");
        for (size_t k = 1; k < colon; k++) {
            unsigned char c = (unsigned char)s.ptr[k];
            bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '-' || c == '.';
            if (!ok)
                return fail(diag, k, "invalid character in the scheme");
        }
        u->scheme = dt_str_make(s.ptr, colon);
        i = colon + 1;
    } else if (n > 0 && s.ptr[0] == ':') {
        return fail(diag, 0, "empty scheme");
    }

    if (n - i >= 2 && s.ptr[i] == '/' && s.ptr[i + 1] == '/') {
        u->has_authority = true;
        i += 2;
        size_t start = i;
        while (i < n && s.ptr[i] != '/' && s.ptr[i] != '?' && s.ptr[i] != '#')
            i++;
        size_t end = i;
        size_t at = start;
        /* userinfo ends at the last '@' of the authority */
        for (size_t k = start; k < end; k++)
            if (s.ptr[k] == '@') {
                u->has_userinfo = true;
                at = k;
            }
        size_t hstart = start;
        if (u->has_userinfo) {
            size_t bad = scan(s, start, at, ":");
            if (bad != at)
                return fail(diag, bad, "invalid character in the userinfo");
            u->userinfo = dt_str_make(s.ptr + start, at - start);
            hstart = at + 1;
        }
        size_t hend = end;
        if (hstart < end && s.ptr[hstart] == '[') {
            const char *rb = memchr(s.ptr + hstart, ']', end - hstart);
            if (!rb)
                return fail(diag, hstart, "IP literal without ']'");
            hend = (size_t)(rb - s.ptr) + 1;
            if (!ip_literal_valid(dt_str_make(s.ptr + hstart, hend - hstart)))
                return fail(diag, hstart, "invalid IP literal");
            if (hend < end && s.ptr[hend] != ':')
                return fail(diag, hend, "unexpected character after the IP literal");
        } else {
            const char *c = memchr(s.ptr + hstart, ':', end - hstart);
            if (c)
                hend = (size_t)(c - s.ptr);
            size_t bad = scan(s, hstart, hend, "");
            if (bad != hend)
                return fail(diag, bad, "invalid character in the host");
        }
        u->host = dt_str_make(s.ptr + hstart, hend - hstart);
        if (hend < end) {
            u->has_port = true;
            for (size_t k = hend + 1; k < end; k++)
                if (s.ptr[k] < '0' || s.ptr[k] > '9')
                    return fail(diag, k, "the port must be digits");
            if (end - hend - 1 > 5)
                return fail(diag, hend + 1, "port out of range");
            u->port = dt_str_make(s.ptr + hend + 1, end - hend - 1);
        }
    }

    size_t pstart = i;
    while (i < n && s.ptr[i] != '?' && s.ptr[i] != '#')
        i++;
    size_t bad = scan(s, pstart, i, ":@/");
    if (bad != i)
        return fail(diag, bad, "invalid character in the path (percent-encode it)");
    u->path = dt_str_make(s.ptr + pstart, i - pstart);
    if (i < n && s.ptr[i] == '?') {
        size_t qstart = ++i;
        while (i < n && s.ptr[i] != '#')
            i++;
        bad = scan(s, qstart, i, ":@/?");
        if (bad != i)
            return fail(diag, bad, "invalid character in the query (percent-encode it)");
        u->has_query = true;
        u->query = dt_str_make(s.ptr + qstart, i - qstart);
    }
    if (i < n && s.ptr[i] == '#') {
        size_t fstart = ++i;
        bad = scan(s, fstart, n, ":@/?");
        if (bad != n)
            return fail(diag, bad, "invalid character in the fragment (percent-encode it)");
        u->has_fragment = true;
        u->fragment = dt_str_make(s.ptr + fstart, n - fstart);
    }
    return 0;
}

/* Bytes that may stand as themselves in a filled-in path value (pchar and "/"), and in a
 * query, where '?' is allowed too. */
static bool keep_byte(unsigned char c, bool query)
{
    return (dt_url_class[c] & (DT_URL_UNRESERVED | DT_URL_SUBDELIM)) || c == ':' || c == '@' ||
           c == '/' || (query && c == '?');
}

static bool pct_encoding_at(struct dt_str s, size_t i)
{
    return s.ptr[i] == '%' && i + 2 < s.len && dt_hexval((unsigned char)s.ptr[i + 1]) >= 0 &&
           dt_hexval((unsigned char)s.ptr[i + 2]) >= 0;
}

size_t dt_url_encoded_len(struct dt_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++)
        n += keep_byte((unsigned char)s.ptr[i], false) || pct_encoding_at(s, i) ? 1 : 3;
    return n;
}

static size_t encode(char *out, struct dt_str s, bool query)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = out;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (keep_byte(c, query) || pct_encoding_at(s, i)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    return (size_t)(o - out);
}

size_t dt_url_encode_path(char *out, struct dt_str s)
{
    return encode(out, s, false);
}

size_t dt_url_encode_query(char *out, struct dt_str s)
{
    return encode(out, s, true);
}

size_t dt_url_encode_reference(struct dt_buf *out, struct dt_str ref)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0, encoded = 0;
    /* scheme ":" (RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), then "//"
     * and the authority: copied as they are */
    for (size_t k = 0; k < ref.len; k++) {
        unsigned char c = (unsigned char)ref.ptr[k];
        bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        if (c == ':' && k > 0)
            i = k + 1;
        if (!alpha && (k == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))
            break;
    }
    if (i + 1 < ref.len && ref.ptr[i] == '/' && ref.ptr[i + 1] == '/') {
        i += 2;
        while (i < ref.len && ref.ptr[i] != '/' && ref.ptr[i] != '?' && ref.ptr[i] != '#')
            i++;
    }
    dt_buf_append(out, ref.ptr, i);
    enum { PATH, QUERY, FRAGMENT } part = PATH;
    for (; i < ref.len; i++) {
        unsigned char c = (unsigned char)ref.ptr[i];
        bool keep;
        if (c == '?' && part == PATH) {
            part = QUERY;
            keep = true;
        } else if (c == '#' && part != FRAGMENT) {
            part = FRAGMENT;
            keep = true;
        } else {
            keep = keep_byte(c, part != PATH) || c == '\\' || pct_encoding_at(ref, i);
        }
        if (keep) {
            dt_buf_append(out, (const char *)&ref.ptr[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            dt_buf_append(out, e, 3);
            encoded++;
        }
    }
    return encoded;
}

size_t dt_url_host_key(char *host, size_t len)
{
    dt_ascii_lower(host, len);
    if (len > 1 && host[len - 1] == '.' && host[0] != '[')
        len--;
    return len;
}
