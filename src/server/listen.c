/* listen: parsing listen addresses and opening the listening sockets, one per worker. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* "unix:PATH", or a path ("/run/detour.sock", "./admin.sock"): a Unix domain socket. */
static int parse_unix(const char *s, struct dt_listen_addr *a, char *err, size_t errlen)
{
    const char *path = strncmp(s, "unix:", 5) == 0 ? s + 5 : s;
    struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(un->sun_path)) {
        snprintf(err, errlen, "'%s': a Unix socket path must have 1 to %zu bytes", s,
                 sizeof(un->sun_path) - 1);
        return DT_EINVAL;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    snprintf(a->text, sizeof(a->text), "unix:%s", path);
    return 0;
}

int dt_listen_parse(const char *s, struct dt_listen_addr *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (s[0] == '/' || strncmp(s, "./", 2) == 0 || strncmp(s, "unix:", 5) == 0)
        return parse_unix(s, a, err, errlen);
    char host[64];
    const char *port;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') {
            snprintf(err, errlen, "'%s': expected [IPv6]:PORT", s);
            return DT_EINVAL;
        }
        size_t n = (size_t)(rb - s - 1);
        if (n == 0 || n >= sizeof(host)) {
            snprintf(err, errlen, "'%s': bad IPv6 address", s);
            return DT_EINVAL;
        }
        memcpy(host, s + 1, n);
        host[n] = '\0';
        port = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "'%s': expected ADDR:PORT, such as 127.0.0.1:8307", s);
            return DT_EINVAL;
        }
        size_t n = (size_t)(colon - s);
        if (n == 0 || n >= sizeof(host) || memchr(s, ':', n)) {
            snprintf(err, errlen, "'%s': expected ADDR:PORT (write IPv6 as [::1]:8307)", s);
            return DT_EINVAL;
        }
        memcpy(host, s, n);
        host[n] = '\0';
        port = colon + 1;
        if (!strcmp(host, "*"))
            memcpy(host, "0.0.0.0", sizeof("0.0.0.0"));
    }
    int64_t pn;
    if (dt_parse_int(dt_str_make(port, strlen(port)), 0, 65535, &pn) != 0) {
        snprintf(err, errlen, "'%s': the port must be a number from 0 to 65535", s);
        return DT_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "'%s': %s", s, gai_strerror(rc));
        return DT_EINVAL;
    }
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(a->text, sizeof(a->text), "%s", s);
    return 0;
}

/* A Unix socket: a stale socket file left by an earlier run is replaced (nothing else is),
 * and only the owner may connect. */
static int open_unix(const struct dt_listen_addr *a, int backlog)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
    struct stat st;
    if (lstat(un->sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        unlink(un->sun_path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&a->ss, a->len);
    umask(old);
    if (rc != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The port of an IPv4 or IPv6 address (network order). */
static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                     : ((const struct sockaddr_in *)ss)->sin_port;
}

int dt_listen_open(const struct dt_listen_addr *a, int backlog)
{
    if (a->ss.ss_family == AF_UNIX)
        return open_unix(a, backlog);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* One listener per worker: the kernel spreads connections over them, and no worker
     * ever wakes for a connection another one takes. For port 0 the option is set after
     * bind: set before, the kernel may hand out a port another process's SO_REUSEPORT
     * socket (of the same user) already listens on, and the two would share connections. */
    uint16_t port = port_of(&a->ss);
    if (port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY: a whole response goes out in one send, so
     * Nagle's algorithm would only delay the next one. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Wake us when the request has arrived, not at the handshake: the first read after
     * accept then finds it, with no epoll round trip. */
    int defer = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
        goto fail;
    if (!port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (listen(fd, backlog) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

void dt_listen_name(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_UNIX) {
            snprintf(out, outlen, "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
            return;
        }
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
        }
    }
    if (ss.ss_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%u", host, port);
    else
        snprintf(out, outlen, "%s:%u", host, port);
}

int dt_cidr_parse(const char *s, struct dt_cidr *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    char text[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(text))
        goto fail;
    memcpy(text, s, n);
    text[n] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, text, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, text, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        goto fail;
    }
    unsigned bits = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dl = strlen(d);
        if (dl == 0 || dl > 3 || strspn(d, "0123456789") != dl || (dl > 1 && d[0] == '0'))
            goto fail;
        bits = 0;
        for (size_t i = 0; i < dl; i++)
            bits = bits * 10 + (unsigned)(d[i] - '0');
        if (bits > max)
            goto fail;
    }
    c->bits = (uint8_t)bits;
    /* the bits beyond the prefix must be zero: 10.1.2.3/8 is a typing error */
    for (unsigned b = bits; b < max; b++) {
        if (c->addr[b / 8] & (0x80 >> (b % 8))) {
            snprintf(err, errlen, "'%s': address bits set beyond the /%u prefix", s, bits);
            return DT_EINVAL;
        }
    }
    return 0;
fail:
    snprintf(err, errlen,
             "'%s': expected an address or an address block, such as 10.0.0.0/8 "
             "or 2001:db8::/32",
             s);
    return DT_EINVAL;
}

bool dt_cidr_match(const struct dt_cidr *blocks, size_t n, const struct sockaddr_storage *ss)
{
    uint8_t addr[16];
    sa_family_t family = ss->ss_family;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            memcpy(addr, a6->s6_addr + 12, 4);
        } else {
            memcpy(addr, a6->s6_addr, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct dt_cidr *c = &blocks[i];
        if (c->family != family)
            continue;
        unsigned full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(addr, c->addr, full) != 0)
            continue;
        if (rest && ((addr[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        return true;
    }
    return false;
}

/* ---- socket activation (sd_listen_fds(3)) ------------------------------------------------ */

#define INHERIT_MAX 64
static bool same_place(const struct sockaddr_storage *have, const struct sockaddr_storage *want);

/* The sockets systemd passed, and those dt_listen_hold opened before dropping root. */
static struct {
    int fd;
    bool taken;
    bool held;                    /* opened by dt_listen_hold for want */
    struct sockaddr_storage ss;   /* where it is bound */
    struct sockaddr_storage want; /* held: the address it was opened for (port 0 too) */
} inherited[INHERIT_MAX];
static size_t ninherited;

int dt_listen_inherit(char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!fds)
        return 0;
    /* meant for this process only: not for a child, nor for this one if they name
     * another */
    char *end;
    long for_pid = pid ? strtol(pid, &end, 10) : -1;
    bool ours = pid && *pid && !*end && for_pid == (long)getpid();
    errno = 0;
    long n = strtol(fds, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours)
        return 0;
    if (!*fds || *end || errno || n < 0 || n > INHERIT_MAX - (long)ninherited) {
        snprintf(err, errlen,
                 "socket activation: LISTEN_FDS='%s' is not a number of sockets "
                 "from 0 to %d",
                 fds, INHERIT_MAX);
        return DT_EINVAL;
    }
    for (int k = 0; k < (int)n; k++) {
        int fd = 3 + k; /* SD_LISTEN_FDS_START */
        size_t i = ninherited;
        int type = 0, listening = 0;
        socklen_t tl = sizeof(type), ll = sizeof(listening);
        socklen_t sl = sizeof(inherited[i].ss);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) != 0 || !listening ||
            getsockname(fd, (struct sockaddr *)&inherited[i].ss, &sl) != 0) {
            snprintf(err, errlen,
                     "socket activation: descriptor %d is not a listening "
                     "stream socket",
                     fd);
            return DT_EINVAL;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (inherited[i].ss.ss_family != AF_UNIX) {
            int one = 1, defer = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
        }
        inherited[i].fd = fd;
        inherited[i].taken = inherited[i].held = false;
        ninherited++;
    }
    return (int)n;
}

int dt_listen_hold(const struct dt_listen_addr *a, int backlog)
{
    for (size_t i = 0; i < ninherited; i++)
        if (!inherited[i].held && same_place(&inherited[i].ss, &a->ss))
            return 0; /* systemd's socket serves it */
    if (ninherited == INHERIT_MAX)
        return -EMFILE;
    int fd = dt_listen_open(a, backlog);
    if (fd < 0)
        return fd;
    size_t i = ninherited++;
    socklen_t sl = sizeof(inherited[i].ss);
    getsockname(fd, (struct sockaddr *)&inherited[i].ss, &sl);
    if (a->ss.ss_family == AF_UNIX)
        inherited[i].ss = a->ss; /* getsockname may shorten the path */
    inherited[i].want = a->ss;
    inherited[i].fd = fd;
    inherited[i].held = true;
    inherited[i].taken = false;
    return 0;
}

static bool any_address(const struct sockaddr_storage *ss)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &any6, sizeof(any6));
}

/* Whether the inherited socket bound at have serves the listener want: the same path; or
 * the same port and address, any address of either family counting as any other (systemd's
 * ListenStream=80 is [::]:80 taking IPv4 too; --listen *:80 asks for it). */
static bool same_place(const struct sockaddr_storage *have, const struct sockaddr_storage *want)
{
    if (have->ss_family == AF_UNIX || want->ss_family == AF_UNIX)
        return have->ss_family == want->ss_family &&
               !strcmp(((const struct sockaddr_un *)have)->sun_path,
                       ((const struct sockaddr_un *)want)->sun_path);
    uint16_t hp = port_of(have), wp = port_of(want);
    if (!wp || hp != wp)
        return false;
    if (any_address(have) && any_address(want))
        return true;
    if (have->ss_family != want->ss_family)
        return false;
    if (have->ss_family == AF_INET)
        return ((const struct sockaddr_in *)have)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)want)->sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)have)->sin6_addr,
                   &((const struct sockaddr_in6 *)want)->sin6_addr, sizeof(struct in6_addr));
}

int dt_listen_take(const struct dt_listen_addr *a)
{
    for (size_t i = 0; i < ninherited; i++) {
        if (inherited[i].taken)
            continue;
        if (inherited[i].held ? !memcmp(&inherited[i].want, &a->ss, sizeof(a->ss))
                              : same_place(&inherited[i].ss, &a->ss)) {
            inherited[i].taken = true;
            return inherited[i].fd;
        }
    }
    return -1;
}

size_t dt_listen_untaken(void)
{
    size_t n = 0;
    for (size_t i = 0; i < ninherited; i++) {
        if (inherited[i].taken)
            continue;
        char name[120];
        dt_listen_name(inherited[i].fd, name, sizeof(name));
        dt_log(DT_LOG_ERROR,
               "socket activation: the socket on %s (descriptor %d) matches no --listen, "
               "--listen-tls or --admin",
               name, inherited[i].fd);
        close(inherited[i].fd);
        inherited[i].taken = true;
        n++;
    }
    return n;
}
