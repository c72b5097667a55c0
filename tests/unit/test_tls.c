/* Unit tests for src/tls: loading certificates (in one file, key beside, common name only,
 * every refusal with the file named), SNI names and wildcards, RSA and ECDSA for one name,
 * reference counts, and whole handshakes over a socket pair against an OpenSSL client:
 * SNI, ALPN, reads and writes, resumption by ticket, ticket key rotation, and a failure
 * classified. Certificates are in tests/data/tls (valid until 2126). */
#include "tap.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define D "data/tls/"

static struct dt_buf err;

static struct dt_tls_set *load(const char *const *paths, size_t n, const char *dir)
{
    err.len = 0;
    struct dt_tls_set *s = dt_tls_load(paths, n, &dir, 1, true, &err);
    dt_buf_terminate(&err);
    return s;
}

static void count_name(void *ctx, const char *name, time_t not_after)
{
    struct dt_buf *b = ctx;
    dt_buf_appendf(b, "%s%s", b->len ? " " : "", name);
    (void)not_after;
}

static void test_loading(void)
{
    const char *paths[] = {D "a-ec.pem", D "a-rsa.pem", D "b.pem", D "cn.pem"};
    struct dt_tls_set *s = load(paths, 4, NULL);
    if (!ok(s != NULL, "four certificates load"))
        printf("# %s\n", err.ptr);
    if (!s)
        return;
    is_int(dt_tls_set_count(s), 4, "four certificates");
    struct dt_buf names;
    dt_buf_init(&names);
    dt_tls_set_each_name(s, count_name, &names);
    dt_buf_terminate(&names);
    is_str(names.ptr, "*.a.example a.example b.example cn.example",
           "every name once, sorted; the common name of one without subjectAltName");
    ok(dt_tls_set_covers(s, DT_STR("a.example")), "covers its name");
    ok(dt_tls_set_covers(s, DT_STR("www.a.example")), "covers by wildcard");
    ok(dt_tls_set_covers(s, DT_STR("WWW.A.Example")), "in any case");
    ok(!dt_tls_set_covers(s, DT_STR("x.www.a.example")), "a wildcard covers one label");
    ok(!dt_tls_set_covers(s, DT_STR("example")), "not a name it lacks");
    ok(!dt_tls_set_covers(s, DT_STR("")), "not an empty host");
    ok(!dt_tls_set_covers(NULL, DT_STR("a.example")), "no set covers nothing");
    dt_tls_set_ref(s);
    dt_tls_set_unref(s);
    ok(dt_tls_set_covers(s, DT_STR("b.example")), "a reference keeps it");
    dt_tls_set_unref(s);
    dt_buf_dispose(&names);

    s = load(NULL, 0, D);
    ok(s == NULL, "a directory with a bad file does not load");
    /* in name order: ca.pem, the CA's certificate alone, is the first bad one */
    if (!ok(strstr(err.ptr, "data/tls/ca.pem: no private key in it") != NULL, "and names the file"))
        printf("#   got: %s\n", err.ptr);
}

static void refused(const char *path, const char *message)
{
    const char *paths[] = {path};
    struct dt_tls_set *s = load(paths, 1, NULL);
    ok(s == NULL, message);
    if (!strstr(err.ptr, message))
        printf("#   got: %s\n", err.ptr);
    ok(strstr(err.ptr, message) != NULL, "  with its message");
    ok(strncmp(err.ptr, path, strlen(path)) == 0, "  naming the file");
    dt_tls_set_unref(s);
}

static void test_refusals(void)
{
    refused(D "missing.pem", "cannot open");
    refused(D "garbage.pem", "no certificate in it");
    refused(D "nokey.pem", "no private key in it nor in " D "nokey.key");
    refused(D "mismatch.pem", "the private key does not match the certificate");
    /* a name that does not end in .pem has no key file beside it to look for */
    refused(D "nokey.crt", "no private key in it (and its name");
    struct dt_tls_set *s = load(NULL, 0, NULL);
    ok(s == NULL && strstr(err.ptr, "no certificate given"), "nothing given");
    s = load(NULL, 0, D "nodir");
    ok(s == NULL && strstr(err.ptr, "cannot open the directory"), "no directory");
}

/* ---- handshakes over a socket pair -------------------------------------------------------- */

struct pair {
    int fd[2];
    SSL_CTX *cctx;
    SSL *client;
    struct dt_tls_conn *server;
};

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static bool pair_open(struct pair *p, struct dt_tls_set *s, const char *sni, const char *alpn,
                      SSL_SESSION *session, int version)
{
    memset(p, 0, sizeof(*p));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) != 0)
        return false;
    nonblock(p->fd[0]);
    nonblock(p->fd[1]);
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(p->cctx, D "ca.pem", NULL);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
    /* the fixtures' validity is not what is tested (the suite also runs with the clock moved) */
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(p->cctx), X509_V_FLAG_NO_CHECK_TIME);
    if (version) {
        SSL_CTX_set_min_proto_version(p->cctx, version);
        SSL_CTX_set_max_proto_version(p->cctx, version);
    }
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, p->fd[1]);
    if (sni) {
        SSL_set_tlsext_host_name(p->client, sni);
        SSL_set1_host(p->client, sni);
    }
    if (alpn)
        SSL_set_alpn_protos(p->client, (const unsigned char *)alpn, (unsigned)strlen(alpn));
    if (session)
        SSL_set_session(p->client, session);
    SSL_set_connect_state(p->client);
    p->server = dt_tls_accept(s, p->fd[0]);
    return p->server != NULL;
}

/* Drives both sides until the server has read len bytes into buf (the client sends msg
 * after its handshake), or a side fails. Returns what the server's last read said. */
static ssize_t exchange(struct pair *p, const char *msg, char *buf, size_t len)
{
    bool sent = false;
    size_t got = 0;
    for (int round = 0; round < 200; round++) {
        int rc = SSL_do_handshake(p->client);
        if (rc == 1 && !sent) {
            SSL_write(p->client, msg, (int)strlen(msg));
            sent = true;
        } else if (rc <= 0) {
            int e = SSL_get_error(p->client, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                /* the client gave up: let the server see it */
                ssize_t n = dt_tls_read(p->server, buf, len);
                return n;
            }
        }
        ssize_t n = dt_tls_read(p->server, buf + got, len - got);
        if (n > 0) {
            got += (size_t)n;
            if (got >= len)
                return (ssize_t)got;
        } else if (n != DT_TLS_WANT_READ && n != DT_TLS_WANT_WRITE) {
            return n;
        }
    }
    return DT_TLS_WANT_READ;
}

static void pair_close(struct pair *p)
{
    SSL_shutdown(p->client); /* else OpenSSL marks its session not resumable */
    ERR_clear_error();
    SSL_free(p->client);
    SSL_CTX_free(p->cctx);
    dt_tls_free(p->server);
    close(p->fd[0]);
    close(p->fd[1]);
}

static char *peer_cn(SSL *ssl, char *out, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    out[0] = '\0';
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap);
        X509_free(x);
    }
    return out;
}

static void test_handshakes(void)
{
    const char *paths[] = {D "a-ec.pem", D "a-rsa.pem", D "b.pem"};
    struct dt_tls_set *s = load(paths, 3, NULL);
    if (!ok(s != NULL, "a set for handshakes"))
        return;
    struct pair p;
    char buf[64], cn[64];
    ok(pair_open(&p, s, "b.example", "\x02h2\x08http/1.1", NULL, 0), "a connection");
    is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "the request is read through it");
    ok(dt_tls_established(p.server), "established");
    ok(!dt_tls_resumed(p.server), "a full handshake");
    ok(dt_tls_h2(p.server), "ALPN chose h2, our first choice");
    is_str(dt_tls_version(p.server), "TLSv1.3", "TLS 1.3 by default");
    is_str(peer_cn(p.client, cn, sizeof(cn)), "b.example", "SNI picked b.example");
    is_int(dt_tls_write(p.server, "HTTP/1.1 307 x\r\n", 16), 16, "an answer written");
    char in[32] = "";
    int n = SSL_read(p.client, in, sizeof(in) - 1);
    is_int(n, 16, "and read by the client");
    dt_tls_close_notify(p.server);
    pair_close(&p);

    ok(pair_open(&p, s, "www.a.example", "\x08http/1.1", NULL, TLS1_2_VERSION), "TLS 1.2");
    is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "read");
    ok(!dt_tls_h2(p.server), "http/1.1 when the client offers only it");
    is_str(dt_tls_version(p.server), "TLSv1.2", "TLS 1.2");
    is_str(peer_cn(p.client, cn, sizeof(cn)), "a.example", "a wildcard name");
    SSL_SESSION *sess = SSL_get1_session(p.client);
    pair_close(&p);
    ok(sess && SSL_SESSION_has_ticket(sess), "a TLS 1.2 ticket was issued");

    ok(pair_open(&p, s, "www.a.example", NULL, sess, TLS1_2_VERSION), "resuming");
    is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "read");
    if (!ok(dt_tls_resumed(p.server), "resumed by its ticket"))
        printf("# client reused %d, resumable %d\n", (int)SSL_session_reused(p.client),
               SSL_SESSION_is_resumable(sess));
    pair_close(&p);

    /* after two rotations the key still decrypts; after three it is gone */
    dt_tls_rotate_tickets(1000000, 10);
    dt_tls_rotate_tickets(1000010, 10);
    dt_tls_rotate_tickets(1000015, 10); /* not due: no rotation */
    ok(pair_open(&p, s, "www.a.example", NULL, sess, TLS1_2_VERSION), "resuming later");
    is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "read");
    ok(dt_tls_resumed(p.server), "a key two rotations old still decrypts");
    pair_close(&p);
    dt_tls_rotate_tickets(1000020, 10);
    ok(pair_open(&p, s, "www.a.example", NULL, sess, TLS1_2_VERSION), "resuming much later");
    is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "read");
    ok(!dt_tls_resumed(p.server), "a retired key: a full handshake");
    pair_close(&p);
    SSL_SESSION_free(sess);

    /* TLS 1.3: a client uses a ticket once; every resumption brings the next ticket */
    SSL_SESSION *t13 = NULL;
    for (int round = 0; round < 3; round++) {
        ok(pair_open(&p, s, "a.example", NULL, t13, 0), "TLS 1.3 connection");
        is_int(exchange(&p, "GET / HTTP/1.1\r\n", buf, 16), 16, "read");
        is_int(dt_tls_resumed(p.server), round > 0, round ? "resumed" : "a full handshake first");
        is_int(dt_tls_write(p.server, "HTTP/1.1 307 x\r\n", 16), 16, "answered");
        char answer[32];
        is_int(SSL_read(p.client, answer, sizeof(answer)), 16, "the client reads the answer");
        SSL_SESSION *next = SSL_get1_session(p.client);
        ok(next && next != t13 && SSL_SESSION_has_ticket(next), "and a new ticket with it");
        SSL_SESSION_free(t13);
        t13 = next;
        pair_close(&p);
    }
    SSL_SESSION_free(t13);

    /* a client that speaks only TLS 1.1: refused, and counted as a protocol failure */
    ok(pair_open(&p, s, "a.example", NULL, NULL, TLS1_1_VERSION), "a TLS 1.1 client");
    SSL_set_security_level(p.client, 0);
    ssize_t r = exchange(&p, "x", buf, 1);
    is_int(r, DT_TLS_ERROR, "refused");
    is_str(dt_tls_failure_names[dt_tls_failure(p.server)], "protocol", "as a protocol failure");
    pair_close(&p);

    /* a client that leaves in the middle of the handshake: "closed", not "other" */
    ok(pair_open(&p, s, "a.example", NULL, NULL, 0), "a client that leaves");
    (void)SSL_do_handshake(p.client); /* its ClientHello, and no more */
    (void)dt_tls_read(p.server, buf, sizeof(buf));
    ok(!dt_tls_established(p.server), "the handshake is under way");
    shutdown(p.fd[1], SHUT_RDWR);
    r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && (r == DT_TLS_WANT_READ || r == DT_TLS_WANT_WRITE); i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    ok(r == DT_TLS_ERROR || r == 0, "its end is seen");
    is_str(dt_tls_failure_names[dt_tls_failure(p.server)], "closed", "as closed");
    pair_close(&p);

    /* plain HTTP to a TLS socket */
    ok(pair_open(&p, s, NULL, NULL, NULL, 0), "a plain client");
    (void)!write(p.fd[1], "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && r == DT_TLS_WANT_READ; i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    is_int(r, DT_TLS_PLAIN_HTTP, "plain HTTP is told apart");
    pair_close(&p);
    dt_tls_set_unref(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the server: a write to a closed socket fails, no more */
    dt_buf_init(&err);
    test_loading();
    test_refusals();
    test_handshakes();
    dt_buf_dispose(&err);
    return done_testing();
}
