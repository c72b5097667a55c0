/* proxy: the PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer sends
 * before the client's bytes, saying whose connection it is. Parsed strictly: a listener
 * that expects it refuses anything else, and only trusted sources may send it (the
 * server's business). */
#include "http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";
#define V1_MAX 107 /* "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF */

/* n bytes of buf are a prefix of what; -2 (need more) when they are all of buf. */
static bool starts(const char *buf, size_t len, const char *what, size_t n)
{
    return memcmp(buf, what, len < n ? len : n) == 0;
}

/* A port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static bool port_of(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* An address of family af (written as inet_pton reads it, nothing else) and a port, into
 * ss. */
static bool address_of(int af, const char *a, size_t alen, const char *p, size_t plen,
                       struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    uint16_t port;
    if (alen == 0 || alen >= sizeof(text) || !port_of(p, plen, &port))
        return false;
    memcpy(text, a, alen);
    text[alen] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return inet_pton(AF_INET, text, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return inet_pton(AF_INET6, text, &in6->sin6_addr) == 1;
}

/* "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", or "PROXY UNKNOWN...\r\n". */
static int parse_v1(const char *buf, size_t len, struct dt_proxy_info *out)
{
    size_t scan = len < V1_MAX ? len : V1_MAX;
    const char *crlf = memchr(buf, '\r', scan);
    const char *lf = memchr(buf, '\n', crlf ? (size_t)(crlf - buf) : scan);
    if (lf)
        return -1; /* a bare LF */
    if (!crlf)
        return len < V1_MAX ? -2 : -1;
    size_t n = (size_t)(crlf - buf);
    if (n + 1 >= len)
        return -2;
    if (crlf[1] != '\n')
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            return -1; /* printable US-ASCII only */
    out->version = 1;
    if (n >= 13 && memcmp(buf, "PROXY UNKNOWN", 13) == 0 && (n == 13 || buf[13] == ' ')) {
        out->local = true; /* the rest of the line is ignored, as the protocol says */
        return (int)(n + 2);
    }
    int af;
    if (n > 11 && memcmp(buf, "PROXY TCP4 ", 11) == 0)
        af = AF_INET;
    else if (n > 11 && memcmp(buf, "PROXY TCP6 ", 11) == 0)
        af = AF_INET6;
    else
        return -1;
    /* four fields, one space between each, none empty */
    const char *f[4];
    size_t flen[4];
    const char *p = buf + 11, *end = buf + n;
    for (int i = 0; i < 4; i++) {
        const char *sp = i < 3 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp || sp == p)
            return -1;
        f[i] = p;
        flen[i] = (size_t)(sp - p);
        p = sp + 1;
    }
    if (memchr(f[3], ' ', flen[3]))
        return -1;
    if (!address_of(af, f[0], flen[0], f[2], flen[2], &out->src) ||
        !address_of(af, f[1], flen[1], f[3], flen[3], &out->dst))
        return -1;
    out->local = false;
    return (int)(n + 2);
}

/* The binary header: signature, version and command, family and transport, length, then
 * the addresses and TLVs (whose framing is checked; their content is not used). */
static int parse_v2(const unsigned char *b, size_t len, struct dt_proxy_info *out)
{
    if (len < 16)
        return -2;
    if ((b[12] & 0xf0) != 0x20)
        return -1;
    unsigned cmd = b[12] & 0x0f, fam = b[13] >> 4, proto = b[13] & 0x0f;
    size_t body = (size_t)b[14] << 8 | b[15];
    if (16 + body > DT_PROXY_MAX)
        return -1;
    if (len < 16 + body)
        return -2;
    if (cmd > 1 || fam > 3 || proto > 2)
        return -1;
    size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (body < need)
        return -1;
    /* TLVs after the addresses: type, two bytes of length, value; each must fit */
    for (size_t off = need; off < body;) {
        if (body - off < 3)
            return -1;
        size_t tlen = (size_t)b[16 + off + 1] << 8 | b[16 + off + 2];
        if (body - off - 3 < tlen)
            return -1;
        off += 3 + tlen;
    }
    out->version = 2;
    /* LOCAL (the balancer's own health check), an unspecified family, or a Unix socket:
     * no client address; the connection's own stands. */
    out->local = cmd == 0 || fam == 0 || fam == 3;
    if (out->local)
        return (int)(16 + body);
    if (proto != 1)
        return -1; /* a datagram's addresses on a stream */
    const unsigned char *a = b + 16;
    memset(&out->src, 0, sizeof(out->src));
    memset(&out->dst, 0, sizeof(out->dst));
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
                           *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }
    return (int)(16 + body);
}

int dt_proxy_parse(const char *buf, size_t len, struct dt_proxy_info *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return -2;
    if (starts(buf, len, v2_sig, sizeof(v2_sig)))
        return len < sizeof(v2_sig) ? -2 : parse_v2((const unsigned char *)buf, len, out);
    if (starts(buf, len, "PROXY ", 6))
        return len < 6 ? -2 : parse_v1(buf, len, out);
    return -1;
}
