/* floor: the benchmark's floor. A minimal single-threaded epoll server that answers every
 * request with canned bytes and parses nothing: what this kernel can do at best, so that
 * detour's cost per request can be read as a margin over it.
 *
 * usage: detour-floor PORT KEEPALIVE_RESPONSE_FILE CLOSE_RESPONSE_FILE
 * A request ends at CRLF CRLF; one containing "Connection: close" gets the second answer
 * and the connection is closed after it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct canned {
    char *bytes;
    size_t len;
};

struct client {
    int fd;
    unsigned tail; /* how much of "\r\n\r\n" the previous read ended with */
};

static struct canned load(const char *path)
{
    struct canned c = {NULL, 0};
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(path);
        exit(2);
    }
    c.len = (size_t)st.st_size;
    c.bytes = malloc(c.len);
    if (!c.bytes || read(fd, c.bytes, c.len) != (ssize_t)c.len) {
        perror(path);
        exit(2);
    }
    close(fd);
    return c;
}

static struct canned keep, closing;
static char in[65536];
static char out[1 << 20];

/* Reads what is there and answers every complete request. Returns 0 if c was closed. */
static int serve(struct client *c)
{
    for (;;) {
        ssize_t r = read(c->fd, in, sizeof(in));
        if (r <= 0) {
            if (r < 0 && errno == EAGAIN)
                return 1;
            close(c->fd);
            free(c);
            return 0;
        }
        size_t requests = 0;
        unsigned t = c->tail;
        for (ssize_t k = 0; k < r; k++) {
            char ch = in[k];
            if ((t == 0 || t == 2) && ch == '\r')
                t++;
            else if ((t == 1 || t == 3) && ch == '\n')
                t++;
            else
                t = ch == '\r';
            if (t == 4) {
                requests++;
                t = 0;
            }
        }
        c->tail = t;
        int close_after = memmem(in, (size_t)r, "Connection: close", 17) != NULL;
        const struct canned *a = close_after ? &closing : &keep;
        size_t len = 0;
        for (size_t q = 0; q < requests && len + a->len <= sizeof(out); q++) {
            memcpy(out + len, a->bytes, a->len);
            len += a->len;
        }
        if ((len && send(c->fd, out, len, MSG_NOSIGNAL) < 0 && errno != EAGAIN) ||
            (close_after && requests)) {
            close(c->fd);
            free(c);
            return 0;
        }
        if ((size_t)r < sizeof(in))
            return 1; /* short read: the socket is empty (edge-triggered) */
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT KEEPALIVE_RESPONSE CLOSE_RESPONSE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    keep = load(argv[2]);
    closing = load(argv[3]);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            if (c) {
                serve(c);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                c = calloc(1, sizeof(*c));
                c->fd = fd;
                /* deferred accept: the request is usually here already */
                if (!serve(c))
                    continue;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
}
