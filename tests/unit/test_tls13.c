/* Unit tests for src/tls/tls13.c, detour's own TLS 1.3, through dt_tls_* over socket pairs
 * against OpenSSL's client: which ClientHellos it answers and which go to the library, each
 * suite and the suite chosen, data both ways in records of every size and bytes trickled one
 * at a time, resumption by its tickets (and a ticket for another name, a retired key, a
 * wrong binder), KeyUpdate both ways, close_notify, and the alert for each kind of bad record
 * after the handshake. OpenSSL backend only. Certificates are in tests/data/tls. */
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

struct pair {
    int fd[2];    /* server side, client side */
    int relay[2]; /* when trickling: the client talks to relay[1], the server to fd[0] */
    bool trickle; /* bytes from client to server go one at a time */
    SSL_CTX *cctx;
    SSL *client;
    struct dt_tls_conn *server;
};

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

struct options {
    const char *sni;
    const char *alpn;
    const char *suites; /* TLS 1.3 suites, in the client's order */
    const char *groups;
    const char *sigalgs;
    int version;
    SSL_SESSION *session;
    bool trickle;
};

static bool pair_open(struct pair *p, struct dt_tls_set *s, const struct options *o)
{
    memset(p, 0, sizeof(*p));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) != 0)
        return false;
    nonblock(p->fd[0]);
    nonblock(p->fd[1]);
    int client_fd = p->fd[1];
    p->relay[0] = p->relay[1] = -1;
    if (o->trickle) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->relay) != 0)
            return false;
        nonblock(p->relay[0]);
        nonblock(p->relay[1]);
        client_fd = p->relay[1];
        p->trickle = true;
    }
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(p->cctx, D "ca.pem", NULL);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(p->cctx), X509_V_FLAG_NO_CHECK_TIME);
    SSL_CTX_set_min_proto_version(p->cctx, o->version ? o->version : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(p->cctx, o->version ? o->version : TLS1_3_VERSION);
    if (o->suites)
        SSL_CTX_set_ciphersuites(p->cctx, o->suites);
    if (o->groups)
        SSL_CTX_set1_groups_list(p->cctx, o->groups);
    if (o->sigalgs)
        SSL_CTX_set1_sigalgs_list(p->cctx, o->sigalgs);
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, client_fd);
    const char *sni = o->sni ? o->sni : "a.example";
    SSL_set_tlsext_host_name(p->client, sni);
    SSL_set1_host(p->client, sni);
    if (o->alpn)
        SSL_set_alpn_protos(p->client, (const unsigned char *)o->alpn, (unsigned)strlen(o->alpn));
    if (o->session)
        SSL_set_session(p->client, o->session);
    SSL_set_connect_state(p->client);
    p->server = dt_tls_accept(s, p->fd[0]);
    return p->server != NULL;
}

/* Moves bytes between the client and the server when trickling: client to server one byte
 * a call, server to client all there is. */
static void relay(struct pair *p)
{
    if (!p->trickle)
        return;
    char c, buf[65536];
    if (read(p->relay[0], &c, 1) == 1)
        (void)!write(p->fd[1], &c, 1);
    ssize_t n;
    while ((n = read(p->fd[1], buf, sizeof(buf))) > 0)
        (void)!write(p->relay[0], buf, (size_t)n);
}

/* Drives both sides until the handshake is done on both (true) or a side fails. */
static bool handshake(struct pair *p)
{
    char buf[1];
    for (int round = 0; round < 20000; round++) {
        int rc = SSL_do_handshake(p->client);
        if (rc <= 0) {
            int e = SSL_get_error(p->client, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return false;
        }
        ssize_t n = dt_tls_read(p->server, buf, sizeof(buf));
        if (n >= 0 || n == DT_TLS_ERROR || n == DT_TLS_PLAIN_HTTP)
            return false; /* no data comes during the handshake */
        if (rc == 1 && dt_tls_established(p->server))
            return true;
        relay(p);
    }
    return false;
}

/* The server reads len bytes the client writes (in pieces of at most piece). */
static bool client_to_server(struct pair *p, const unsigned char *data, size_t len, size_t piece)
{
    size_t sent = 0, got = 0;
    unsigned char *buf = malloc(len + 1);
    bool same = true;
    for (int round = 0; round < 2000000 && got < len; round++) {
        if (sent < len) {
            int w = SSL_write(p->client, data + sent, (int)(len - sent));
            if (w > 0)
                sent += (size_t)w;
        }
        relay(p);
        size_t want = len - got < piece ? len - got : piece;
        ssize_t n = dt_tls_read(p->server, buf + got, want);
        if (n > 0)
            got += (size_t)n;
        else if (n != DT_TLS_WANT_READ && n != DT_TLS_WANT_WRITE)
            break;
    }
    same = got == len && memcmp(buf, data, len) == 0;
    free(buf);
    return same;
}

/* The client reads len bytes the server writes. */
static bool server_to_client(struct pair *p, const unsigned char *data, size_t len)
{
    size_t sent = 0, got = 0;
    unsigned char *buf = malloc(len + 1);
    for (int round = 0; round < 200000 && got < len; round++) {
        if (sent < len) {
            ssize_t w = dt_tls_write(p->server, data + sent, len - sent);
            if (w > 0)
                sent += (size_t)w;
            else if (w == DT_TLS_ERROR)
                break;
        }
        relay(p);
        int r = SSL_read(p->client, buf + got, (int)(len - got));
        if (r > 0)
            got += (size_t)r;
        else if (SSL_get_error(p->client, r) != SSL_ERROR_WANT_READ)
            break;
    }
    bool same = got == len && memcmp(buf, data, len) == 0;
    free(buf);
    return same;
}

static void pair_close(struct pair *p)
{
    SSL_shutdown(p->client);
    ERR_clear_error();
    SSL_free(p->client);
    SSL_CTX_free(p->cctx);
    dt_tls_free(p->server);
    close(p->fd[0]);
    close(p->fd[1]);
    if (p->trickle) {
        close(p->relay[0]);
        close(p->relay[1]);
    }
}

/* Until the client has read the tickets that come with the server's first answer. */
static SSL_SESSION *answer_and_session(struct pair *p)
{
    if (!server_to_client(p, (const unsigned char *)"HTTP/1.1 307 x\r\n", 16))
        return NULL;
    return SSL_get1_session(p->client);
}

static struct dt_tls_set *set;

static void test_who_answers(void)
{
    struct pair p;
    struct {
        struct options o;
        const char *engine;
        const char *why;
    } cases[] = {
        {{.alpn = "\x02h2\x08http/1.1"}, "detour", "TLS 1.3, X25519, ECDSA: detour's own"},
        {{.version = TLS1_2_VERSION}, "openssl", "TLS 1.2: the library's"},
        {{.groups = "P-256"}, "openssl", "no X25519 share: the library's"},
        {{.groups = "P-256:X25519"}, "openssl", "a P-256 share first, X25519 after: the library's"},
        {{.sigalgs = "RSA-PSS+SHA256:rsa_pss_pss_sha256"},
         "openssl",
         "no ECDSA P-256 signatures: the library's (with the RSA certificate)"},
        {{.sni = "b.example"}, "openssl", "a name with an RSA certificate only: the library's"},
        {{.alpn = "\x06spdy/3"}, "openssl", "no ALPN protocol of ours: the library's (it refuses)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(pair_open(&p, set, &cases[i].o), "a connection");
        bool done = handshake(&p);
        if (strcmp(cases[i].o.alpn ? cases[i].o.alpn : "", "\x06spdy/3") == 0)
            ok(!done, "  no common protocol: refused");
        else
            ok(done, "  its handshake");
        is_str(dt_tls_engine(p.server), cases[i].engine, cases[i].why);
        pair_close(&p);
    }
    ok(pair_open(&p, set, &(struct options){.alpn = "\x02h2\x08http/1.1"}), "h2 offered");
    ok(handshake(&p), "  done");
    ok(dt_tls_h2(p.server), "  ALPN chose h2");
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(p.client, &proto, &plen);
    ok(plen == 2 && !memcmp(proto, "h2", 2), "  and the client was told so");
    is_str(dt_tls_version(p.server), "TLSv1.3", "  TLS 1.3");
    pair_close(&p);
    ok(pair_open(&p, set, &(struct options){.alpn = "\x08http/1.1"}), "http/1.1 offered");
    ok(handshake(&p) && !dt_tls_h2(p.server), "  http/1.1");
    pair_close(&p);
    ok(pair_open(&p, set, &(struct options){.sni = "www.a.example"}), "a wildcard name");
    ok(handshake(&p), "  verified by the client against the name");
    pair_close(&p);
}

static void test_suites(void)
{
    static unsigned char big[200000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 7 + i / 251);
    struct {
        const char *offer, *chosen;
    } cases[] = {
        {"TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"},
        {"TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"},
        {"TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
        /* AES-128-GCM before AES-256-GCM when both come (as OpenSSL's clients order them) */
        {"TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"},
        /* ChaCha20 first: a client without AES instructions; it gets its choice */
        {"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pair p;
        ok(pair_open(&p, set, &(struct options){.suites = cases[i].offer}), cases[i].offer);
        ok(handshake(&p), "  handshake");
        is_str(dt_tls_engine(p.server), "detour", "  detour's");
        is_str(SSL_get_cipher_name(p.client), cases[i].chosen, "  the suite");
        ok(client_to_server(&p, big, sizeof(big), 70000), "  200 KB to the server");
        ok(client_to_server(&p, big, 5000, 7), "  read 7 bytes at a time");
        ok(server_to_client(&p, big, sizeof(big)), "  200 KB to the client");
        ok(server_to_client(&p, big, 1), "  one byte to the client");
        pair_close(&p);
    }
    struct pair p;
    ok(pair_open(&p, set, &(struct options){.trickle = true}), "bytes one at a time");
    ok(handshake(&p), "  the handshake, a byte at a time");
    is_str(dt_tls_engine(p.server), "detour", "  detour's");
    ok(client_to_server(&p, big, 40000, 40000), "  40 KB a byte at a time");
    pair_close(&p);
}

static void test_resumption(void)
{
    struct pair p;
    ok(pair_open(&p, set, &(struct options){0}), "a full handshake");
    ok(handshake(&p), "  done");
    ok(!dt_tls_resumed(p.server), "  not resumed");
    SSL_SESSION *s1 = answer_and_session(&p);
    ok(s1 && SSL_SESSION_has_ticket(s1), "  a ticket with the first answer");
    pair_close(&p);

    SSL_SESSION *s = s1;
    for (int round = 0; round < 2; round++) {
        ok(pair_open(&p, set, &(struct options){.session = s}), "resuming");
        ok(handshake(&p), "  done");
        is_str(dt_tls_engine(p.server), "detour", "  detour's");
        ok(dt_tls_resumed(p.server), "  resumed on the server");
        ok(SSL_session_reused(p.client), "  and on the client");
        ok(client_to_server(&p, (const unsigned char *)"GET / HTTP/1.1\r\n", 16, 16), "  data");
        SSL_SESSION *next = answer_and_session(&p);
        ok(next && next != s && SSL_SESSION_has_ticket(next), "  a new ticket");
        if (s != s1)
            SSL_SESSION_free(s);
        s = next;
        pair_close(&p);
    }
    SSL_SESSION_free(s);

    /* a ticket made for a.example offered to www.a.example: a full handshake */
    ok(pair_open(&p, set, &(struct options){.sni = "www.a.example", .session = s1}),
       "a ticket offered for another name");
    ok(handshake(&p), "  done");
    ok(!dt_tls_resumed(p.server), "  a full handshake");
    pair_close(&p);

    /* a ticket's PSK altered on the client: its binder is wrong, the handshake refused */
    SSL_SESSION *bad = SSL_SESSION_dup(s1);
    unsigned char key[48];
    size_t klen = SSL_SESSION_get_master_key(bad, key, sizeof(key));
    key[0] ^= 1;
    SSL_SESSION_set1_master_key(bad, key, klen);
    ok(pair_open(&p, set, &(struct options){.session = bad}), "a wrong binder");
    ok(!handshake(&p), "  refused");
    ERR_clear_error();
    (void)SSL_do_handshake(p.client); /* reads the alert */
    unsigned long e = ERR_peek_last_error();
    is_int(ERR_GET_REASON(e), SSL_R_TLSV1_ALERT_DECRYPT_ERROR, "  with decrypt_error");
    ERR_clear_error();
    pair_close(&p);
    SSL_SESSION_free(bad);

    /* three rotations later its key is gone: a full handshake */
    dt_tls_rotate_tickets(2000000, 10);
    dt_tls_rotate_tickets(2000010, 10);
    ok(pair_open(&p, set, &(struct options){.session = s1}), "two rotations later");
    ok(handshake(&p) && dt_tls_resumed(p.server), "  still resumed");
    pair_close(&p);
    dt_tls_rotate_tickets(2000020, 10);
    ok(pair_open(&p, set, &(struct options){.session = s1}), "three rotations later");
    ok(handshake(&p) && !dt_tls_resumed(p.server), "  a full handshake");
    pair_close(&p);
    SSL_SESSION_free(s1);
}

static void test_key_update_and_close(void)
{
    struct pair p;
    ok(pair_open(&p, set, &(struct options){0}), "a connection");
    ok(handshake(&p), "  done");
    ok(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED) == 1, "the client updates its keys");
    ok(client_to_server(&p, (const unsigned char *)"after the update", 16, 64),
       "  the server reads under the new key");
    ok(server_to_client(&p, (const unsigned char *)"answer", 6),
       "  and answers under its own new key (the client asked for it)");
    ok(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED) == 1, "again, not requested");
    ok(client_to_server(&p, (const unsigned char *)"second", 6, 64), "  read");
    ok(server_to_client(&p, (const unsigned char *)"answer2", 7), "  answered");
    SSL_shutdown(p.client); /* close_notify */
    char buf[8];
    ssize_t r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && r == DT_TLS_WANT_READ; i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    is_int(r, 0, "close_notify ends the stream");
    dt_tls_close_notify(p.server);
    char c;
    is_int(SSL_read(p.client, &c, 1), 0, "  and the server's close_notify reaches the client");
    is_int(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN, "  as a clean close");
    pair_close(&p);
}

/* After a handshake, raw bytes from the client: the server fails the connection with alert,
 * which the client reads. */
static void bad_record(const unsigned char *bytes, size_t len, int reason, const char *what)
{
    struct pair p;
    ok(pair_open(&p, set, &(struct options){0}), what);
    ok(handshake(&p), "  handshake");
    (void)!write(p.fd[1], bytes, len);
    char buf[64];
    ssize_t r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && r == DT_TLS_WANT_READ; i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    is_int(r, DT_TLS_ERROR, "  the connection fails");
    ERR_clear_error();
    int n = SSL_read(p.client, buf, sizeof(buf));
    unsigned long e = ERR_peek_last_error();
    ok(n <= 0, "  the client reads no data");
    if (!ok(ERR_GET_REASON(e) == reason, "  it reads the alert"))
        printf("#   got reason %d (%s)\n", ERR_GET_REASON(e), ERR_reason_error_string(e));
    ERR_clear_error();
    is_int(dt_tls_write(p.server, "x", 1), DT_TLS_ERROR, "  nothing more is written");
    pair_close(&p);
}

static void test_bad_records(void)
{
    unsigned char rec[64] = {23, 3, 3, 0, 40};
    for (int i = 5; i < 45; i++)
        rec[i] = (unsigned char)i;
    bad_record(rec, 45, SSL_R_SSLV3_ALERT_BAD_RECORD_MAC, "a forged record: bad_record_mac");
    unsigned char big[] = {23, 3, 3, 0x41, 0x01};
    bad_record(big, sizeof(big), SSL_R_TLSV1_ALERT_RECORD_OVERFLOW,
               "a record over 2^14 + 256 bytes: record_overflow");
    unsigned char hs[] = {22, 3, 3, 0, 4, 1, 0, 0, 0};
    bad_record(hs, sizeof(hs), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE,
               "a plaintext handshake record: unexpected_message");
    unsigned char ccs[] = {20, 3, 3, 0, 1, 1};
    bad_record(ccs, sizeof(ccs), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE,
               "change_cipher_spec after the handshake: unexpected_message");
    unsigned char other[] = {24, 3, 3, 0, 1, 1};
    bad_record(other, sizeof(other), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE,
               "a record of an unknown type: unexpected_message");
    unsigned char shortrec[] = {23, 3, 3, 0, 3, 1, 2, 3};
    bad_record(shortrec, sizeof(shortrec), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC,
               "a record shorter than its tag: bad_record_mac");
}

/* A client that sends its ClientHello and leaves; one that sends garbage after it. */
static void test_handshake_failures(void)
{
    struct pair p;
    char buf[8];
    ok(pair_open(&p, set, &(struct options){0}), "a client that leaves");
    (void)SSL_do_handshake(p.client);
    (void)dt_tls_read(p.server, buf, sizeof(buf));
    is_str(dt_tls_engine(p.server), "detour", "  after its ClientHello, detour's");
    ok(!dt_tls_established(p.server), "  under way");
    shutdown(p.fd[1], SHUT_RDWR);
    ssize_t r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && r == DT_TLS_WANT_READ; i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    is_int(r, DT_TLS_ERROR, "  its end fails the handshake");
    is_str(dt_tls_failure_names[dt_tls_failure(p.server)], "closed", "  as closed");
    pair_close(&p);

    ok(pair_open(&p, set, &(struct options){0}), "a client that sends junk for its Finished");
    (void)SSL_do_handshake(p.client);
    (void)dt_tls_read(p.server, buf, sizeof(buf));
    unsigned char junk[] = {23, 3,  3,  0,  20, 1,  2,  3,  4,  5,  6,  7, 8,
                            9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    (void)!write(p.fd[1], junk, sizeof(junk));
    r = DT_TLS_WANT_READ;
    for (int i = 0; i < 10 && r == DT_TLS_WANT_READ; i++)
        r = dt_tls_read(p.server, buf, sizeof(buf));
    is_int(r, DT_TLS_ERROR, "  refused");
    ok(!dt_tls_established(p.server), "  never established");
    is_str(dt_tls_failure_names[dt_tls_failure(p.server)], "other", "  counted as other");
    pair_close(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct dt_buf err;
    dt_buf_init(&err);
    const char *paths[] = {D "a-ec.pem", D "a-rsa.pem", D "b.pem"};
    set = dt_tls_load(paths, 3, NULL, 0, true, &err);
    dt_buf_terminate(&err);
    if (!ok(set != NULL, "certificates load"))
        printf("# %s\n", err.ptr);
    if (set) {
        test_who_answers();
        test_suites();
        test_resumption();
        test_key_update_and_close();
        test_bad_records();
        test_handshake_failures();
        dt_tls_set_unref(set);
    }
    dt_buf_dispose(&err);
    return done_testing();
}
