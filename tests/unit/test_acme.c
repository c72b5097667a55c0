/* Unit tests for src/acme: base64url, then orders against Debian's pebble (RFC 8555 test CA),
 * started here on loopback with a TLS certificate made here: a certificate for two names
 * (its chain parsed, its key the order's, both names in it), the HTTP-01 key authorization
 * published and withdrawn, a second order on the same account, the account found again from
 * its key file by a new client, every order completed while pebble rejects half the nonces
 * (badNonce retries), and the failures named: no directory, a CA not trusted, a name pebble
 * refuses. pebble validates nothing here (PEBBLE_VA_ALWAYS_VALID): the server's own HTTP-01
 * answers are tested with the server (tests/integration/test_acme.py). Skipped when pebble is
 * not installed. */
#include "acme/internal.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/detour-acme-XXXXXX";

static void is_b64(const char *in, const char *want)
{
    struct dt_buf b;
    dt_buf_init(&b);
    dt_acme_b64url(&b, (const unsigned char *)in, strlen(in));
    dt_buf_terminate(&b);
    is_str(b.ptr ? b.ptr : "", want, want);
    dt_buf_dispose(&b);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* pebble on port, rejecting nonce_reject % of nonces: its pid, or -1. */
static pid_t start_pebble(int port, int mgmt, const char *nonce_reject)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/pebble.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"pebble\": {\"listenAddress\": \"127.0.0.1:%d\", "
            "\"managementListenAddress\": \"127.0.0.1:%d\", "
            "\"certificate\": \"%s/cert.pem\", \"privateKey\": \"%s/key.pem\", "
            "\"httpPort\": 5002, \"tlsPort\": 5001, \"ocspResponderURL\": \"\", "
            "\"externalAccountBindingRequired\": false, "
            "\"domainBlocklist\": [\"blocked.example\"]}}\n",
            port, mgmt, dir, dir);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PEBBLE_VA_ALWAYS_VALID", "1", 1);
        setenv("PEBBLE_VA_NOSLEEP", "1", 1);
        setenv("PEBBLE_WFE_NONCEREJECT", nonce_reject, 1);
        setenv("PEBBLE_AUTHZREUSE", "0", 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("pebble", "pebble", "-config", path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && pid > 0; i++) {
        if (port_open(port))
            return pid;
        usleep(50000);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

static void stop_pebble(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

/* The published key authorizations: token -> key authorization. */
static char published_token[128], published_ka[256];
static int publishes, unpublishes;

static bool publish(void *ctx, const struct dt_acme_challenge *ch)
{
    (void)ctx;
    snprintf(published_token, sizeof(published_token), "%s", ch->token);
    snprintf(published_ka, sizeof(published_ka), "%s", ch->key_authorization);
    if (strcmp(ch->type, "http-01") == 0)
        publishes++;
    return true;
}

static void unpublish(void *ctx, const struct dt_acme_challenge *ch)
{
    (void)ctx;
    if (strcmp(ch->token, published_token) == 0)
        unpublishes++;
}

static struct dt_acme *client(int port, const char *ca, struct dt_buf *err)
{
    char url[128], key[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/dir", port);
    snprintf(key, sizeof(key), "%s/account.key", dir);
    struct dt_acme_config c = {.directory = url,
                               .ca_file = ca,
                               .email = "ops@detour.test",
                               .account_key = key,
                               .http01 = true,
                               .publish = publish,
                               .unpublish = unpublish,
                               .poll_limit_ms = 30000};
    return dt_acme_new(&c, err);
}

/* The certificate's names, space-separated, into out. */
static void cert_names(const struct dt_buf *chain, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new_mem_buf(chain->ptr, (int)chain->len);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    GENERAL_NAMES *sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "",
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    X509_free(x);
}

static bool key_fits(const struct dt_acme_cert *c)
{
    BIO *b = BIO_new_mem_buf(c->chain.ptr, (int)c->chain.len);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(c->key.ptr, (int)c->key.len);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    bool ok = x && k && X509_check_private_key(x, k) == 1 && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC;
    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

/* The last chain order_ok got (PEM), for the renewal information tests. */
static char *last_chain;

/* A fake CA for RFC 9773 alone: a directory whose renewalInfo answers a fixed window and
 * writes the certificate ID it was asked for into DIR/ari-id. */
static const char ari_server[] =
    "import http.server, json, sys\n"
    "port, d = int(sys.argv[1]), sys.argv[2]\n"
    "base = 'http://127.0.0.1:%d' % port\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a): pass\n"
    "    def do_GET(self):\n"
    "        if self.path == '/dir':\n"
    "            body = {'newNonce': base + '/n', 'newAccount': base + '/a', 'newOrder': base + "
    "'/o', 'renewalInfo': base + '/ari'}\n"
    "        elif self.path.startswith('/ari/'):\n"
    "            open(d + '/ari-id', 'w').write(self.path[5:])\n"
    "            body = {'suggestedWindow': {'start': '2026-01-01T00:00:00Z', 'end': "
    "'2026-01-02T00:00:00.5+01:00'}}\n"
    "        else:\n"
    "            self.send_response(404); self.end_headers(); return\n"
    "        b = json.dumps(body).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n";

/* The certificate ID computed here from the certificate's fields (RFC 9773 4.1). */
static void expected_cert_id(const char *chain, struct dt_buf *out)
{
    BIO *b = BIO_new_mem_buf(chain, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    dt_acme_b64url(out, ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
    dt_buf_append(out, ".", 1);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    unsigned char s[64] = {0};
    int n = BN_bn2bin(bn, s + 1);
    bool pad = s[1] & 0x80; /* DER keeps a positive number's top bit clear */
    dt_acme_b64url(out, pad ? s : s + 1, (size_t)n + pad);
    BN_free(bn);
    X509_free(x);
}

static void test_renewal_info(struct dt_acme *pebble_client)
{
    struct dt_buf err, id, want;
    dt_buf_init(&err);
    dt_buf_init(&id);
    dt_buf_init(&want);
    time_t start = 0, end = 0;
    is_int(dt_acme_renewal_window(pebble_client, last_chain, &start, &end, &err), 0,
           "pebble offers no renewal information: 0");
    ok(dt_acme_cert_id(last_chain, &id), "a certificate ID");
    expected_cert_id(last_chain, &want);
    dt_buf_terminate(&id);
    dt_buf_terminate(&want);
    is_str(id.ptr, want.ptr, "  base64url(AKI).base64url(serial)");

    char path[256], idfile[256], url[128];
    snprintf(path, sizeof(path), "%s/ari.py", dir);
    snprintf(idfile, sizeof(idfile), "%s/ari-id", dir);
    FILE *f = fopen(path, "w");
    fputs(ari_server, f);
    fclose(f);
    int port = free_port();
    char portarg[16];
    snprintf(portarg, sizeof(portarg), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("python3", "python3", path, portarg, dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port); i++)
        usleep(50000);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/dir", port);
    char key[256];
    snprintf(key, sizeof(key), "%s/account.key", dir);
    struct dt_acme_config c = {.directory = url, .account_key = key};
    struct dt_acme *a = dt_acme_new(&c, &err);
    err.len = 0;
    int rc = a ? dt_acme_renewal_window(a, last_chain, &start, &end, &err) : -1;
    dt_buf_terminate(&err);
    if (!ok(rc == 1, "a CA's suggested window"))
        printf("#   %s\n", err.ptr ? err.ptr : "");
    is_int(start, 1767225600, "  its start (RFC 3339, Z)");
    is_int(end, 1767308400, "  its end (with fractions and an offset)");
    char got[256] = "";
    f = fopen(idfile, "r");
    if (f) {
        if (!fgets(got, sizeof(got), f))
            got[0] = '\0';
        fclose(f);
    }
    is_str(got, want.ptr, "  asked for at renewalInfo/CERT-ID");
    dt_acme_free(a);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    dt_buf_dispose(&err);
    dt_buf_dispose(&id);
    dt_buf_dispose(&want);
}

static void order_ok(struct dt_acme *a, const char *const *names, size_t n, const char *want,
                     const char *what)
{
    struct dt_acme_cert c;
    dt_buf_init(&c.chain);
    dt_buf_init(&c.key);
    struct dt_buf err;
    dt_buf_init(&err);
    bool ok = dt_acme_order(a, names, n, &c, &err);
    dt_buf_terminate(&err);
    if (!ok(ok, what))
        printf("#   %s\n", err.ptr ? err.ptr : "");
    char got[512];
    cert_names(&c.chain, got, sizeof(got));
    is_str(got, want, "  the certificate names them");
    ok(key_fits(&c), "  its key is the order's, ECDSA");
    dt_buf_terminate(&c.chain);
    ok(c.chain.ptr && strstr(c.chain.ptr, "-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"),
       "  with its issuer after it");
    if (c.chain.ptr) {
        free(last_chain);
        last_chain = strdup(c.chain.ptr);
    }
    dt_buf_dispose(&c.chain);
    dt_buf_dispose(&c.key);
    dt_buf_dispose(&err);
}

static void order_fails(struct dt_acme *a, const char *const *names, size_t n, const char *want,
                        const char *what)
{
    struct dt_acme_cert c;
    dt_buf_init(&c.chain);
    dt_buf_init(&c.key);
    struct dt_buf err;
    dt_buf_init(&err);
    ok(!dt_acme_order(a, names, n, &c, &err), what);
    dt_buf_terminate(&err);
    if (!ok(err.ptr && strstr(err.ptr, want), "  says why"))
        printf("#   got: %s\n", err.ptr ? err.ptr : "");
    ok(c.chain.len == 0 && c.key.len == 0, "  and gives nothing");
    dt_buf_dispose(&c.chain);
    dt_buf_dispose(&c.key);
    dt_buf_dispose(&err);
}

/* TLS-ALPN-01's certificate (RFC 8737 3): its name alone, the critical acmeIdentifier with
 * SHA-256 of the key authorization, and its key. */
/* One RFC 3339 time, in a buffer of exactly its length (as a CA's JSON string is): its Unix
 * time, or -1 when refused. */
static long long rfc3339(const char *s)
{
    size_t n = strlen(s) + 1;
    char *exact = memcpy(malloc(n), s, n);
    time_t t;
    long long got = dt_acme_rfc3339(exact, &t) ? (long long)t : -1;
    free(exact);
    return got;
}

/* RFC 9773's window is two RFC 3339 times from the CA: fractions and offsets read, an offset
 * that is not +HH:MM refused (fuzz_acme found "+1:00" read past the string's end). */
static void test_rfc3339(void)
{
    is_int(rfc3339("2026-12-04T10:00:00Z"), 1796378400LL, "a time in UTC");
    is_int(rfc3339("2026-12-04T10:00:00z"), 1796378400LL, "  z as Z");
    is_int(rfc3339("2026-12-04T10:00:00.123456Z"), 1796378400LL, "  with a fraction");
    is_int(rfc3339("2026-12-04T15:30:00+05:30"), 1796378400LL, "  an offset east");
    is_int(rfc3339("2026-12-04T02:00:00.5-08:00"), 1796378400LL, "  an offset west");
    static const char *const refused[] = {
        "2026-12-04T10:00:00",       "2026-12-04T10:00:00+1:00",  "2026-12-04T10:00:00+1:0",
        "2026-12-04T10:00:00+01:0",  "2026-12-04T10:00:00+0100",  "2026-12-04T10:00:00+01:00x",
        "2026-12-04T10:00:00+24:00", "2026-12-04T10:00:00+01:60", "2026-12-04T10:00:00+ 1:00",
        "2026-12-04T10:00:00-",      "2026-12-04T10:00:00Zx",     "",
    };
    for (size_t i = 0; i < DT_ARRAY_LEN(refused); i++) {
        char name[96];
        snprintf(name, sizeof(name), "  refused: '%s'", refused[i]);
        is_int(rfc3339(refused[i]), -1, name);
    }
}

static void test_tls_alpn_cert(void)
{
    struct dt_acme_cert c;
    dt_buf_init(&c.chain);
    dt_buf_init(&c.key);
    ok(dt_acme_tls_alpn_cert("v.detour.test", "tok.thumb", &c), "a TLS-ALPN-01 certificate");
    char names[256];
    cert_names(&c.chain, names, sizeof(names));
    is_str(names, "v.detour.test", "  its one name");
    ok(key_fits(&c), "  and its key");
    BIO *b = BIO_new_mem_buf(c.chain.ptr, (int)c.chain.len);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int at = x ? X509_get_ext_by_OBJ(x, oid, -1) : -1;
    X509_EXTENSION *e = at >= 0 ? X509_get_ext(x, at) : NULL;
    ok(e && X509_EXTENSION_get_critical(e), "  the acmeIdentifier extension, critical");
    unsigned char want[34] = {0x04, 32};
    unsigned dlen = 0;
    EVP_Digest("tok.thumb", 9, want + 2, &dlen, EVP_sha256(), NULL);
    ASN1_OCTET_STRING *v = e ? X509_EXTENSION_get_data(e) : NULL;
    ok(v && ASN1_STRING_length(v) == 34 && !memcmp(ASN1_STRING_get0_data(v), want, 34),
       "  holding the key authorization's SHA-256 as an OCTET STRING");
    ASN1_OBJECT_free(oid);
    X509_free(x);
    dt_buf_dispose(&c.chain);
    dt_buf_dispose(&c.key);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    is_b64("", "");
    is_b64("f", "Zg");
    is_b64("fo", "Zm8");
    is_b64("foo", "Zm9v");
    is_b64("foob", "Zm9vYg");
    is_b64("\xfb\xff", "-_8");
    test_rfc3339();
    test_tls_alpn_cert();
    if (system("command -v pebble >/dev/null 2>&1") != 0) {
        printf("# pebble is not installed: the orders are skipped\n");
        return done_testing();
    }
    if (!mkdtemp(dir))
        return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
             dir, dir);
    ok(system(cmd) == 0, "pebble's TLS certificate made");
    char ca[256];
    snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
    int port = free_port(), mgmt = free_port();
    pid_t pebble = start_pebble(port, mgmt, "0");
    if (!ok(pebble > 0, "pebble started"))
        return done_testing();

    struct dt_buf err;
    dt_buf_init(&err);
    struct dt_acme *a = client(port, ca, &err);
    ok(a != NULL, "a client (its account key made)");
    char keyfile[256];
    snprintf(keyfile, sizeof(keyfile), "%s/account.key", dir);
    struct stat st;
    ok(stat(keyfile, &st) == 0 && (st.st_mode & 0777) == 0600, "  the key file, mode 600");
    const char *two[] = {"a.detour.test", "www.a.detour.test"};
    order_ok(a, two, 2, "a.detour.test www.a.detour.test", "a certificate for two names");
    ok(publishes == 2 && unpublishes == 2, "  each name's key authorization published, then not");
    const char *dot = strchr(published_ka, '.');
    ok(dot && (size_t)(dot - published_ka) == strlen(published_token) &&
           strncmp(published_ka, published_token, strlen(published_token)) == 0 &&
           strlen(dot + 1) == 43,
       "  as TOKEN.THUMBPRINT (RFC 8555 8.1)");
    const char *one[] = {"b.detour.test"};
    order_ok(a, one, 1, "b.detour.test", "a second order, same account");
    const char *blocked[] = {"blocked.example"};
    order_fails(a, blocked, 1, "rejectedIdentifier", "a name the CA refuses");
    test_renewal_info(a);
    dt_acme_free(a);

    a = client(port, ca, &err);
    order_ok(a, one, 1, "b.detour.test", "a new client finds the account by its key");
    dt_acme_free(a);

    /* the CA not trusted, and no directory */
    a = client(port, NULL, &err);
    order_fails(a, one, 1, "SSL", "pebble's certificate not trusted: refused");
    dt_acme_free(a);
    stop_pebble(pebble);
    a = client(port, ca, &err);
    order_fails(a, one, 1, "Couldn't connect", "no directory: the connection failure");
    dt_acme_free(a);

    /* half the nonces rejected: every order still completes */
    port = free_port();
    mgmt = free_port();
    pebble = start_pebble(port, mgmt, "50");
    ok(pebble > 0, "pebble started, rejecting half the nonces");
    a = client(port, ca, &err);
    for (int i = 0; i < 3; i++)
        order_ok(a, two, 2, "a.detour.test www.a.detour.test", "an order through badNonce");
    ok(dt_acme_bad_nonces(a) > 0, "  nonces were rejected, and the requests sent again");
    printf("# %lu requests sent again after badNonce\n", dt_acme_bad_nonces(a));
    dt_acme_free(a);
    stop_pebble(pebble);

    dt_buf_dispose(&err);
    free(last_chain);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
    return done_testing();
}
