/* Unit tests for src/server: listen addresses, and the order of the hooks (the rest of the
 * server is exercised by the integration tests, which start the real binary). */
#include "server/server.h"
#include "tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

/* ---- hooks: the server is known to its owner before the admin thread runs ---------------- */

/* Decided by counting threads, not by sleeping against the tick: the started hook counts
 * the process's threads, the admin thread's first tick counts them again. Had the admin
 * thread started before the hook, both counts would be equal. The first tick also stops
 * the server, so the test takes no longer than a start and a stop. */
static atomic_int started_done;
static atomic_int first_tick_saw = -1; /* started_done as the admin thread's first tick saw it */
static atomic_int threads_at_started = -1, threads_at_first_tick = -1;

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void on_started(void *ctx, struct dt_server *srv)
{
    (void)ctx;
    (void)srv;
    atomic_store(&threads_at_started, threads_now());
    atomic_store(&started_done, 1);
}

static void on_tick(void *ctx, time_t now)
{
    (void)ctx;
    (void)now;
    int unset = -1;
    if (atomic_compare_exchange_strong(&first_tick_saw, &unset, atomic_load(&started_done))) {
        atomic_store(&threads_at_first_tick, threads_now());
        kill(getpid(), SIGTERM); /* blocked here as in every server thread: sigwaitinfo takes it */
    }
}

/* Bug: the started hook (which hands the server to the admin side) ran after the admin thread
 * had started, and an admin write arriving in between freed the ruleset the workers answered
 * from (a crash under load, seen in CI). */
static void hooks_order(void)
{
    struct dt_server_config c;
    dt_server_config_init(&c);
    struct dt_listen_addr addrs[2];
    char err[256];
    if (dt_listen_parse("127.0.0.1:0", &addrs[0], err, sizeof(err)) != 0 ||
        dt_listen_parse("127.0.0.1:0", &addrs[1], err, sizeof(err)) != 0) {
        ok(0, "listen addresses parse");
        return;
    }
    static const struct dt_ruleset empty;
    c.listen = &addrs[0];
    c.nlisten = 1;
    c.admin = &addrs[1];
    c.nadmin = 1;
    c.workers = 1;
    c.initial = &empty;
    c.hooks.started = on_started;
    c.hooks.tick = on_tick;
    is_int(dt_server_run(&c), 0, "the server runs and stops on SIGTERM");
    is_int(atomic_load(&first_tick_saw), 1,
           "the started hook has returned before the admin thread's first hook call");
    ok(atomic_load(&threads_at_started) > 0, "threads counted in the started hook");
    is_int(atomic_load(&threads_at_first_tick), atomic_load(&threads_at_started) + 1,
           "the admin thread did not exist yet while the started hook ran");
}

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
    hooks_order();
    return done_testing();
}
