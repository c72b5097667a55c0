/* Unit tests for src/server: listen addresses (the rest of the server is exercised by the
 * integration tests, which start the real binary). */
#include "server/server.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

static int parse(const char *s, struct dt_listen_addr *a)
{
    char err[256];
    return dt_listen_parse(s, a, err, sizeof(err));
}

int main(void)
{
    struct dt_listen_addr a;
    is_int(parse("127.0.0.1:8307", &a), 0, "IPv4 address and port");
    ok(a.ss.ss_family == AF_INET, "IPv4 family");
    is_int(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 8307, "port");
    is_int(parse("[::1]:9000", &a), 0, "IPv6 in brackets");
    ok(a.ss.ss_family == AF_INET6, "IPv6 family");
    is_int(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), 9000, "IPv6 port");
    is_int(parse("*:80", &a), 0, "* means every IPv4 address");
    ok(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr == htonl(INADDR_ANY), "INADDR_ANY");
    is_int(parse("localhost:0", &a), 0, "a name, port 0");
    is_int(parse("8307", &a), DT_EINVAL, "a port alone is refused");
    is_int(parse("::1:8307", &a), DT_EINVAL, "IPv6 without brackets is refused");
    is_int(parse("127.0.0.1:65536", &a), DT_EINVAL, "port out of range");
    is_int(parse("127.0.0.1:", &a), DT_EINVAL, "empty port");
    is_int(parse("127.0.0.1:http", &a), DT_EINVAL, "a service name is not a port");
    is_int(parse("[::1]8307", &a), DT_EINVAL, "missing colon after ]");
    is_int(parse(":8307", &a), DT_EINVAL, "empty address");

    /* Two listeners on one port: SO_REUSEPORT, one per worker. */
    is_int(parse("127.0.0.1:0", &a), 0, "ephemeral");
    int fd1 = dt_listen_open(&a, 16);
    ok(fd1 >= 0, "first listener opens");
    char name[96];
    dt_listen_name(fd1, name, sizeof(name));
    ok(strncmp(name, "127.0.0.1:", 10) == 0 && strcmp(name, "127.0.0.1:0") != 0,
       "the name carries the real port");
    struct sockaddr_in bound;
    socklen_t len = sizeof(bound);
    getsockname(fd1, (struct sockaddr *)&bound, &len);
    ((struct sockaddr_in *)&a.ss)->sin_port = bound.sin_port;
    int fd2 = dt_listen_open(&a, 16);
    ok(fd2 >= 0, "a second listener shares the port (SO_REUSEPORT)");
    close(fd1);
    if (fd2 >= 0)
        close(fd2);
    return done_testing();
}
