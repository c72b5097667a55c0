/* server: the redirect server: listeners, one epoll worker thread per core, connections,
 * and the control thread that loads rules, reloads them on SIGHUP and stops on SIGTERM. */
#ifndef DT_SERVER_H
#define DT_SERVER_H

#include "base/base.h"
#include "http/http.h"
#include "rules/rules.h"

#include <sys/socket.h>

/* ---- listen addresses ------------------------------------------------------------------ */

struct dt_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80]; /* as the user wrote it, then with the real port once bound */
};

/* Parses ADDR:PORT ("127.0.0.1:8307", "[::1]:8307", "*:8307", "localhost:8307"). Port 0
 * asks the kernel for a free port. Returns 0, or DT_EINVAL with a message in err. */
DT_MUST_CHECK int dt_listen_parse(const char *s, struct dt_listen_addr *a, char *err,
                                  size_t errlen);

/* Opens a listening TCP socket (non-blocking, SO_REUSEPORT, deferred accept, no Nagle)
 * bound to a. Returns the fd, or -errno. */
int dt_listen_open(const struct dt_listen_addr *a, int backlog);

/* Writes "ADDR:PORT" for a bound socket into out. */
void dt_listen_name(int fd, char *out, size_t outlen);

/* ---- the server ------------------------------------------------------------------------ */

/* A rule file and its format (enum dt_rule_format of rules/import.h). */
struct dt_rule_file {
    const char *path;
    int format;
};

struct dt_server_config {
    struct dt_listen_addr *listen;
    size_t nlisten;
    const struct dt_rule_file *rules; /* read at start and on SIGHUP */
    size_t nrules;
    unsigned workers;
    struct dt_http_limits limits;
    uint64_t header_timeout_ms;   /* a request head must arrive within this: 408 */
    uint64_t idle_timeout_ms;     /* a keep-alive connection may idle this long */
    uint64_t shutdown_timeout_ms; /* SIGTERM: in-flight work gets this long */
    int backlog;
};

void dt_server_config_init(struct dt_server_config *c);

/* Loads the rules, opens the listeners, runs the workers and handles signals until SIGTERM
 * or SIGINT. Returns the process exit status: 0 after a clean stop, 2 when the rules do not
 * load, 1 when a listener cannot be opened. Call from the main thread, once. */
int dt_server_run(const struct dt_server_config *c);

/* Loads the rule files of c into a finished table; prints errors to stderr. Returns NULL
 * if any file has an error. Control thread. */
struct dt_table *dt_server_load_rules(const struct dt_server_config *c);

#endif
