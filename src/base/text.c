/* text: ASCII helpers, token table, number/size/duration parsing and HTML escaping. */
#include "base/base.h"

#include <errno.h>
#include <stdlib.h>

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const uint8_t dt_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

bool dt_str_ieq(struct dt_str a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

void dt_ascii_lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] |= 0x20;
}

int dt_parse_int(struct dt_str s, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+')) {
        neg = s.ptr[0] == '-';
        i = 1;
    }
    if (i == s.len)
        return DT_EINVAL;
    uint64_t v = 0;
    bool over = false;
    for (; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9')
            return DT_EINVAL;
        if (v > (UINT64_MAX - 9) / 10)
            over = true;
        else
            v = v * 10 + (c - '0');
    }
    if (over || v > (uint64_t)INT64_MAX)
        return DT_ERANGE;
    int64_t r = neg ? -(int64_t)v : (int64_t)v;
    if (r < min || r > max)
        return DT_ERANGE;
    *out = r;
    return 0;
}

/* Splits "123unit" into the number and the unit; the number must not be empty. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    size_t i = 0;
    uint64_t v = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return DT_ERANGE;
        v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (i == 0)
        return DT_EINVAL;
    *num = v;
    *unit = s + i;
    return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t max, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return DT_ERANGE;
    if (v * mul > max)
        return DT_ERANGE;
    *out = v * mul;
    return 0;
}

int dt_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *unit;
    int rc = split_number(s, &v, &unit);
    if (rc)
        return rc;
    uint64_t mul;
    if (!*unit)
        mul = 1;
    else if (!strcmp(unit, "k") || !strcmp(unit, "K") || !strcmp(unit, "KiB"))
        mul = 1024;
    else if (!strcmp(unit, "m") || !strcmp(unit, "M") || !strcmp(unit, "MiB"))
        mul = 1024 * 1024;
    else if (!strcmp(unit, "g") || !strcmp(unit, "G") || !strcmp(unit, "GiB"))
        mul = 1024 * 1024 * 1024;
    else
        return DT_EINVAL;
    return scale(v, mul, max, out);
}

int dt_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out_ms)
{
    uint64_t v;
    const char *unit;
    int rc = split_number(s, &v, &unit);
    if (rc)
        return rc;
    uint64_t mul;
    if (!*unit || !strcmp(unit, "s"))
        mul = 1000;
    else if (!strcmp(unit, "ms"))
        mul = 1;
    else if (!strcmp(unit, "m"))
        mul = 60 * 1000;
    else if (!strcmp(unit, "h"))
        mul = 3600 * 1000;
    else if (!strcmp(unit, "d"))
        mul = 86400 * 1000;
    else
        return DT_EINVAL;
    return scale(v, mul, max_ms, out_ms);
}

size_t dt_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* The entity for a byte that HTML-escaping replaces, or NULL. */
static const char *entity(char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&#34;";
    case '\'':
        return "&#39;";
    }
    return NULL;
}

size_t dt_html_escaped_len(struct dt_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        const char *e = entity(s.ptr[i]);
        n += e ? strlen(e) : 1;
    }
    return n;
}

size_t dt_html_escape(char *out, struct dt_str s)
{
    char *o = out;
    for (size_t i = 0; i < s.len; i++) {
        const char *e = entity(s.ptr[i]);
        if (e) {
            size_t n = strlen(e);
            memcpy(o, e, n);
            o += n;
        } else {
            *o++ = s.ptr[i];
        }
    }
    return (size_t)(o - out);
}
