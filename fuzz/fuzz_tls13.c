/* fuzz_tls13: any bytes as what a client sends on a TLS connection: its ClientHello (which
 * detour's own TLS 1.3 answers, or the library), then records. The connection reads them
 * within its bounds, answers or fails, and a failed connection stays failed; nothing it
 * does depends on more than the bytes (the keys are random, so records after the
 * ClientHello fail to open: their framing, sizes and order are what is reached). */
#include "tls/tls.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct dt_tls_set *set;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!set) {
        signal(SIGPIPE, SIG_IGN);
        struct dt_buf err;
        dt_buf_init(&err);
        const char *paths[] = {DETOUR_TLS_DATA "a-ec.pem", DETOUR_TLS_DATA "a-rsa.pem"};
        set = dt_tls_load(paths, 2, NULL, 0, true, &err);
        dt_buf_dispose(&err);
        if (!set)
            abort();
    }
    int fd[2];
    if (size > 200000 || socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0)
        return 0;
    fcntl(fd[0], F_SETFL, O_NONBLOCK);
    fcntl(fd[1], F_SETFL, O_NONBLOCK);
    struct dt_tls_conn *c = dt_tls_accept(set, fd[0]);
    /* the bytes in two parts, so that a record cut between reads is reached too */
    size_t first = size > 2 ? data[0] * (size - 1) / 255 + 1 : size;
    char buf[512], sink[65536];
    for (int part = 0; part < 2; part++) {
        const uint8_t *p = part ? data + first : data;
        size_t n = part ? size - first : first;
        if (n && write(fd[1], p, n) != (ssize_t)n)
            break;
        ssize_t r;
        int rounds = 0;
        do
            r = dt_tls_read(c, buf, sizeof(buf));
        while ((r > 0 || r == DT_TLS_WANT_WRITE) && ++rounds < 1000);
        while (read(fd[1], sink, sizeof(sink)) > 0) /* what the server sent */
            ;
        if (r == DT_TLS_ERROR || r == DT_TLS_PLAIN_HTTP || r == 0)
            break;
    }
    if (dt_tls_established(c))
        (void)dt_tls_write(c, "HTTP/1.1 307 x\r\n\r\n", 18);
    dt_tls_close_notify(c);
    dt_tls_free(c);
    close(fd[0]);
    close(fd[1]);
    return 0;
}
