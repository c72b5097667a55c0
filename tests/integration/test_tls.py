"""HTTPS (issue 11): --listen-tls, --cert, --cert-dir, SNI, RSA and ECDSA for one name,
TLS versions and ciphers, session resumption, no early data, HSTS (S9) over TLS only,
--redirect-to-https, scheme rules, plain HTTP on a TLS port, the handshake timeout,
certificates re-read on SIGHUP, metrics, and the S1-S8 tests of test_serve over TLS.
Certificates are made here with openssl (harness.TestPKI); clients are curl, openssl
s_client and Python's ssl."""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest

import test_serve
from harness import DETOUR, Server, TestPKI, test_pki

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
SSLSCAN = shutil.which("sslscan")
GNUTLS = shutil.which("gnutls-cli")
CHROMIUM = shutil.which("chromium")
GET = b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
SUITES13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

# Mozilla's intermediate profile, without its DHE suites (docs/https.md)
INTERMEDIATE = {
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}


class ServeOverTLS(test_serve.Serve):
    """Every test of test_serve.Serve again, its requests over TLS."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(test_serve.RULES, workers=2, listen=(), tls=True).start()


def s_client(port, *args, data=b"", timeout=10):
    """openssl s_client to 127.0.0.1:port; returns its stdout and stderr as text."""
    p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=data, capture_output=True, timeout=timeout)
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def read_all(s):
    """Everything s receives until the peer ends the connection (an SSL socket raises at a
    truncation when made with suppress_ragged_eofs=False)."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def subject_of(out):
    for line in out.splitlines():
        if line.startswith("subject="):
            return line
    return None


@unittest.skipUnless(OPENSSL and CURL, "openssl and curl needed")
class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = TestPKI()
        cls.a_ec = cls.pki.cert("a-ec", ["a.example", "*.a.example"])
        cls.a_rsa = cls.pki.cert("a-rsa", ["a.example", "*.a.example"], key="rsa")
        cls.b = cls.pki.cert("b", ["b.example"], key="rsa", key_apart=True)
        cls.rules = ("/x /y\n"
                     "https://a.example/s /secure 308\n"
                     "http://a.example/s /plain\n"
                     "c.example/* https://c.example/:splat\n")
        # two workers: a ticket one worker made is read by the other (keys are shared)
        cls.srv = Server(cls.rules, listen=("127.0.0.1:0",), workers=2,
                         args=["--listen-tls", "127.0.0.1:0", "--cert", cls.a_ec,
                               "--cert", cls.a_rsa, "--cert", cls.b,
                               "--hsts", "max-age=63072000;includesubdomains",
                               "--redirect-to-https", "--header-timeout", "1"]).start()
        cls.tls_port = cls.srv.tls_addrs[0][1]
        cls.plain_port = cls.srv.addrs[0][1]

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def curl(self, url, *args, host="a.example"):
        port = self.tls_port if url.startswith("https") else self.plain_port
        p = subprocess.run([CURL, "-si", "--http1.1", "--cacert", self.pki.ca, "--resolve",
                            "%s:%d:127.0.0.1" % (host, port)] + list(args) + [url],
                           capture_output=True, timeout=10)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def test_https_answer_with_hsts(self):
        """S9: over TLS the answer carries Strict-Transport-Security (as --hsts wrote it,
        normalised); the redirect is the same as over plain HTTP."""
        rc, out = self.curl("https://a.example:%d/x?q=1" % self.tls_port)
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.startswith("HTTP/1.1 307 Temporary Redirect\r\n"), out)
        self.assertIn("\r\nLocation: /y?q=1\r\n", out)
        self.assertIn("\r\nStrict-Transport-Security: max-age=63072000; includeSubDomains\r\n",
                      out)

    def test_no_hsts_over_plain_http(self):
        """RFC 6797 7.2: never over plain HTTP."""
        rc, out = self.curl("http://b.example:%d/x" % self.plain_port, host="b.example")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("Strict-Transport-Security", out)

    def test_errors_over_tls_carry_hsts(self):
        """Every answer over TLS, a 404 and a 400 too."""
        rc, out = self.curl("https://a.example:%d/nothing" % self.tls_port)
        self.assertIn("HTTP/1.1 404", out)
        self.assertIn("Strict-Transport-Security:", out)
        ctx = self.pki.client_context()
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.example") as s:
                s.sendall(b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
                data = s.recv(65536)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        self.assertIn(b"Strict-Transport-Security:", data)

    def test_scheme_rules(self):
        """The scheme of a request on a TLS listener is https: scheme rules pick by it."""
        rc, out = self.curl("https://a.example:%d/s" % self.tls_port)
        self.assertIn("HTTP/1.1 308", out)
        self.assertIn("\r\nLocation: /secure\r\n", out)
        # plain http for a host with a certificate goes to https first (--redirect-to-https)
        rc, out = self.curl("http://c.example:%d/s" % self.plain_port, host="c.example")
        self.assertIn("HTTP/1.1 307", out)  # c.example has no certificate: its rule answers
        self.assertIn("\r\nLocation: https://c.example/s\r\n", out)

    def test_redirect_to_https(self):
        """--redirect-to-https: 308 to the same URL with https and the TLS port, for a host a
        certificate names (exactly or by wildcard); a host without one gets its rules."""
        rc, out = self.curl("http://a.example:%d/s/t?u=1&v" % self.plain_port)
        self.assertIn("HTTP/1.1 308 Permanent Redirect\r\n", out)
        self.assertIn("\r\nLocation: https://a.example:%d/s/t?u=1&v\r\n" % self.tls_port, out)
        self.assertNotIn("Strict-Transport-Security", out)
        rc, out = self.curl("http://www.a.example:%d/x" % self.plain_port, host="www.a.example")
        self.assertIn("\r\nLocation: https://www.a.example:%d/x\r\n" % self.tls_port, out)
        rc, out = self.curl("http://other.example:%d/x" % self.plain_port,
                            host="other.example")
        self.assertIn("HTTP/1.1 307", out)
        self.assertIn("\r\nLocation: /y\r\n", out)
        # curl follows it, keeping the method and body
        p = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{url_effective}",
                            "--cacert", self.pki.ca, "-L", "-X", "POST", "-d", "a=1",
                            "--resolve", "a.example:%d:127.0.0.1" % self.plain_port,
                            "--resolve", "a.example:%d:127.0.0.1" % self.tls_port,
                            "http://a.example:%d/x" % self.plain_port],
                           capture_output=True, timeout=10)
        self.assertEqual(p.stdout.decode(), "404 https://a.example:%d/y" % self.tls_port)

    def test_sni_picks_the_certificate(self):
        """SNI: the exact name, then a wildcard for its first label, else the first
        certificate."""
        self.assertIn("CN = b.example", subject_of(s_client(self.tls_port, "-servername",
                                                            "b.example")))
        self.assertIn("CN = a.example", subject_of(s_client(self.tls_port, "-servername",
                                                            "www.a.example")))
        self.assertIn("CN = a.example", subject_of(s_client(self.tls_port, "-servername",
                                                            "unknown.example")))
        self.assertIn("CN = a.example", subject_of(s_client(self.tls_port, "-noservername")))
        # the key beside the certificate (b.key next to b.pem) was read
        rc, out = self.curl("https://b.example:%d/x" % self.tls_port, host="b.example")
        self.assertEqual(rc, 0, out)

    def test_rsa_and_ecdsa_for_one_name(self):
        """Both certificates of a.example are used: the client's signature algorithms
        choose."""
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2", "-sigalgs",
                       "ECDSA+SHA256")
        self.assertIn("Server public key is 256 bit", out)
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2", "-sigalgs",
                       "RSA+SHA256", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertIn("Server public key is 2048 bit", out)

    def test_versions_and_ciphers(self):
        """TLS 1.2 and 1.3 only; TLS 1.2 with forward-secret AEAD suites only."""
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_3")
        self.assertIn("New, TLSv1.3, Cipher is TLS_", out)
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2")
        self.assertIn("New, TLSv1.2, Cipher is ECDHE-ECDSA-", out)
        self.assertRegex(out, r"Cipher\s+: ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|"
                              r"CHACHA20-POLY1305)\n")
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_1", "-cipher",
                       "DEFAULT@SECLEVEL=0")
        self.assertNotIn("New, TLSv1.1", out)
        self.assertIn("alert protocol version", out)
        for weak in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"):
            out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2", "-cipher", weak)
            self.assertIn("handshake failure", out, weak)
        # no compression
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2")
        self.assertIn("Compression: NONE", out)

    @unittest.skipUnless(SSLSCAN, "sslscan needed")
    def test_sslscan(self):
        """sslscan's view: TLS 1.2 and 1.3 only, every accepted suite of the intermediate
        profile (those of both the ECDSA and the RSA certificate), no renegotiation, no
        heartbleed."""
        p = subprocess.run([SSLSCAN, "--no-colour", "--sni-name=a.example",
                            "127.0.0.1:%d" % self.tls_port], capture_output=True, timeout=120)
        out = p.stdout.decode("utf-8", "replace")
        for proto, state in (("SSLv2", "disabled"), ("SSLv3", "disabled"),
                             ("TLSv1.0", "disabled"), ("TLSv1.1", "disabled"),
                             ("TLSv1.2", "enabled"), ("TLSv1.3", "enabled")):
            self.assertRegex(out, r"(?m)^%s\s+%s$" % (re.escape(proto), state), out)
        self.assertIn("Session renegotiation not supported", out)
        self.assertIn("TLSv1.3 not vulnerable to heartbleed", out)
        self.assertNotRegex(out, r"(?<!not )vulnerable to heartbleed")
        accepted = set(re.findall(r"(?m)^(?:Accepted|Preferred)\s+TLSv1\.[23]\s+\d+ bits\s+(\S+)",
                                  out))
        self.assertTrue(accepted, out)
        self.assertLessEqual(accepted, INTERMEDIATE, out)
        self.assertIn("ECDHE-RSA-AES128-GCM-SHA256", accepted)  # the RSA certificate too
        self.assertIn("ECDHE-ECDSA-AES128-GCM-SHA256", accepted)

    def test_alpn(self):
        """ALPN: h2 first, then http/1.1; a client offering only another protocol is
        refused (RFC 7301 3.2)."""
        out = s_client(self.tls_port, "-servername", "a.example", "-alpn", "http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        out = s_client(self.tls_port, "-servername", "a.example", "-alpn", "http/1.1,h2")
        self.assertIn("ALPN protocol: h2", out)
        out = s_client(self.tls_port, "-servername", "a.example", "-alpn", "spdy/3")
        self.assertIn("no application protocol", out)

    def test_no_renegotiation(self):
        """A TLS 1.2 client asking to renegotiate is refused; the server goes on."""
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_2", data=b"R\n")
        self.assertIn("RENEGOTIATING", out)
        self.assertIn("no renegotiation", out)
        rc, out = self.curl("https://a.example:%d/x" % self.tls_port)
        self.assertIn("HTTP/1.1 307", out)

    def resume(self, version):
        ctx = self.pki.client_context()
        ctx.minimum_version = ctx.maximum_version = version
        session = None
        reused = []
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.example", session=session) as s:
                    s.sendall(b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
                    data = read_all(s)
                    self.assertTrue(data.startswith(b"HTTP/1.1 307"), data)
                    reused.append(s.session_reused)
                    session = s.session
        return reused

    def test_close_notify(self):
        """A connection the server ends (Connection: close) ends with close_notify: the
        client sees a clean end, not a truncation (which makes OpenSSL drop the session)."""
        ctx = self.pki.client_context()
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx.minimum_version = ctx.maximum_version = version
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="a.example",
                                         suppress_ragged_eofs=False) as s:
                        s.sendall(b"GET /x HTTP/1.1\r\nHost: a.example\r\n"
                                  b"Connection: close\r\n\r\n")
                        data = read_all(s)
                self.assertTrue(data.startswith(b"HTTP/1.1 307"), data)

    def test_resumption_by_tickets(self):
        """TLS 1.3 and 1.2 sessions resume with tickets; the metrics count them."""
        before = self.metric('detour_tls_handshakes_total{kind="resumed"}')
        self.assertEqual(self.resume(ssl.TLSVersion.TLSv1_3), [False, True, True])
        self.assertEqual(self.resume(ssl.TLSVersion.TLSv1_2), [False, True, True])
        self.assertGreaterEqual(self.metric('detour_tls_handshakes_total{kind="resumed"}'),
                                before + 4)

    def test_no_early_data(self):
        """0-RTT is refused: a replayed POST must not be redirected from early data."""
        sess = os.path.join(self.pki.dir, "early.sess")
        s_client(self.tls_port, "-servername", "a.example", "-tls1_3", "-sess_out", sess,
                 data=b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n")
        early = os.path.join(self.pki.dir, "early.txt")
        with open(early, "wb") as f:
            f.write(b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n")
        out = s_client(self.tls_port, "-servername", "a.example", "-tls1_3", "-sess_in", sess,
                       "-early_data", early)
        self.assertNotIn("Early data was accepted", out)

    def test_plain_http_on_tls_port(self):
        """Plain HTTP sent to the TLS port: 400 saying so, then close (as nginx)."""
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n")
            data = read_all(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
        self.assertIn(b"https://", data)
        self.assertGreaterEqual(self.metric(
            'detour_tls_handshake_failures_total{reason="plain_http"}'), 1)

    def test_handshake_timeout(self):
        """A handshake that does not finish within --header-timeout (1 s) is closed: a
        silent client, and one that sends half a ClientHello."""
        for first in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
            t0 = time.monotonic()
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as s:
                s.sendall(first)
                self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - t0, 4)
        self.assertGreaterEqual(self.metric(
            'detour_tls_handshake_failures_total{reason="timeout"}'), 1)

    def metric(self, name):
        st, _, body = self.srv.api("GET", "/metrics", raw=True)
        self.assertEqual(st, 200)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        self.fail("no metric %s in:\n%s" % (name, body.decode()))

    def engines(self):
        return (self.metric('detour_tls_handshakes_by_engine_total{engine="detour"}'),
                self.metric('detour_tls_handshakes_by_engine_total{engine="library"}'))

    def test_own_tls13_and_the_library(self):
        """detour's own TLS 1.3 (docs/https.md) answers TLS 1.3 clients that send an X25519
        share and take ECDSA: curl (h2 and http/1.1), openssl s_client with each suite,
        Python's ssl; the TLS library answers the others: TLS 1.2, a P-256 share, a name
        with an RSA certificate only. The metrics count each."""
        own, lib = self.engines()
        for version in ("--http2", "--http1.1"):
            p = subprocess.run([CURL, "-si", version, "--cacert", self.pki.ca, "--resolve",
                                "a.example:%d:127.0.0.1" % self.tls_port,
                                "https://a.example:%d/x" % self.tls_port],
                               capture_output=True, timeout=10)
            self.assertRegex(p.stdout.decode(), r"^HTTP/(2|1\.1) 307", p.stderr)
        for suite in SUITES13:
            out = s_client(self.tls_port, "-servername", "a.example", "-tls1_3",
                           "-ciphersuites", suite, "-CAfile", self.pki.ca, "-ign_eof", data=GET)
            self.assertIn("New, TLSv1.3, Cipher is %s" % suite, out)
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertIn("HTTP/1.1 307 Temporary Redirect", out)
        ctx = self.pki.client_context()
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.example") as s:
                s.sendall(GET)
                self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307"))
                self.assertEqual(s.cipher()[0], "TLS_AES_128_GCM_SHA256")  # our preference
        self.assertEqual(self.engines(), (own + 6, lib))
        for args in (("-servername", "a.example", "-tls1_2"),
                     ("-servername", "a.example", "-groups", "P-256"),
                     ("-servername", "b.example", "-tls1_3")):
            out = s_client(self.tls_port, *args, "-ign_eof", data=GET)
            self.assertIn("HTTP/1.1 307 Temporary Redirect", out, args)
        self.assertEqual(self.engines(), (own + 6, lib + 3))

    def test_own_tls13_resumption_and_key_update(self):
        """openssl s_client resumes with the ticket detour's TLS 1.3 gave (-sess_out, then
        -sess_in), and after a KeyUpdate it asked for (its "K" command) the request and the
        answer go on under the new keys."""
        sess = os.path.join(self.pki.dir, "own.sess")
        # -ign_eof: until the server closes, after the answer and the tickets with it
        out = s_client(self.tls_port, "-servername", "a.example", "-sess_out", sess, "-ign_eof",
                       data=GET)
        self.assertIn("New, TLSv1.3", out)
        out = s_client(self.tls_port, "-servername", "a.example", "-sess_in", sess, "-ign_eof",
                       data=GET)
        self.assertIn("Reused, TLSv1.3", out)
        self.assertIn("HTTP/1.1 307 Temporary Redirect", out)
        p = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls_port,
                              "-servername", "a.example", "-msg"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        p.stdin.write(b"K\n")
        p.stdin.flush()
        time.sleep(0.5)  # s_client reads its command line alone
        p.stdin.write(GET)
        p.stdin.flush()
        time.sleep(0.5)
        out, _ = p.communicate(timeout=10)
        out = out.decode("utf-8", "replace")
        self.assertIn(">>> TLS 1.3, Handshake [length 0005], KeyUpdate", out)
        self.assertIn("<<< TLS 1.3, Handshake [length 0005], KeyUpdate", out)  # ours
        self.assertIn("HTTP/1.1 307 Temporary Redirect", out)

    @unittest.skipUnless(CHROMIUM, "chromium needed")
    @unittest.skipIf(os.environ.get("FAKETIME"), "a browser under libfaketime is not tested")
    def test_own_tls13_with_chromium(self):
        """A browser's ClientHello (Chromium's: GREASE, a post-quantum hybrid share beside
        X25519, ECH GREASE, HTTP/2): detour's own TLS 1.3 answers it, and the browser follows
        the redirect over HTTP/2 to the page the rule names."""
        own, lib = self.engines()
        p = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--ignore-certificate-errors", "--user-data-dir=" +
                            os.path.join(self.pki.dir, "chromium"),
                            "--host-resolver-rules=MAP a.example 127.0.0.1",
                            "--dump-dom", "https://a.example:%d/x" % self.tls_port],
                           capture_output=True, timeout=60)
        dom = p.stdout.decode("utf-8", "replace")
        # /x is redirected to /y, which no rule names: the browser shows our 404 page
        self.assertIn("No redirect is configured for <code>/y</code>", dom, p.stderr[-2000:])
        now_own, now_lib = self.engines()
        self.assertGreaterEqual(now_own, own + 1)
        self.assertEqual(now_lib, lib)

    @unittest.skipUnless(GNUTLS, "gnutls-cli needed")
    def test_no_delayed_ack_stall_after_the_handshake(self):
        """A client that leaves Nagle on (Python's, and many others) sends its Finished, then
        holds its request until that is acknowledged. detour sends nothing after the
        client's Finished (its tickets go with the first answer), so a delayed ACK (40 ms
        on Linux) would stall every new connection's first request: detour acknowledges
        the Finished at once (TCP_QUICKACK). The median over 9 connections stays far
        below 40 ms (it was 42-47 ms)."""
        with Server("/a /b\n", tls=True, listen=()) as srv:
            ctx = test_pki().client_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            waits = []
            for _ in range(9):
                raw = socket.create_connection(srv.tls_addrs[0], timeout=5)
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    t0 = time.monotonic()
                    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 307"))
                    waits.append(time.monotonic() - t0)
            waits.sort()
            self.assertLess(waits[4], 0.025, "first request waits: %s" % waits)

    def test_own_tls13_with_gnutls(self):
        """Another implementation of TLS 1.3, GnuTLS's: each suite verifies and gets its
        answer, and a second connection resumes the first's session."""
        def gnutls(*args):
            p = subprocess.run([GNUTLS, "--x509cafile", self.pki.ca, "-p", str(self.tls_port),
                                "--sni-hostname", "a.example", "--verify-hostname", "a.example"]
                               + list(args) + ["127.0.0.1"],
                               input=GET, capture_output=True, timeout=20)
            return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        for cipher in ("AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305"):
            out = gnutls("--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+" + cipher)
            self.assertIn("(TLS1.3-X.509)-(ECDHE-X25519)-(ECDSA-SECP256R1-SHA256)-(%s)" % cipher,
                          out)
            self.assertIn("HTTP/1.1 307 Temporary Redirect", out)
        out = gnutls("--resume")
        self.assertIn("Resume Handshake was completed", out)

    def test_metrics(self):
        """Requests by protocol, handshakes, and each certificate name's expiry."""
        self.curl("https://a.example:%d/x" % self.tls_port)
        self.assertGreaterEqual(self.metric('detour_tls_handshakes_total{kind="full"}'), 1)
        self.assertGreaterEqual(self.metric(
            'detour_requests_by_protocol_total{protocol="https"}'), 1)
        self.assertGreaterEqual(self.metric('detour_requests_by_protocol_total{protocol="h1"}'),
                                self.metric('detour_requests_by_protocol_total{protocol="https"}'))
        expiry = self.metric('detour_certificate_expiry_seconds{name="b.example"}')
        self.assertGreater(expiry, time.time() + 300 * 86400)
        self.metric('detour_certificate_expiry_seconds{name="*.a.example"}')


@unittest.skipUnless(OPENSSL and CURL, "openssl and curl needed")
class Certificates(unittest.TestCase):
    def test_tls_listener_alone(self):
        """--listen-tls alone: that address alone, no default plain listener."""
        with Server("/x /y\n", listen=(), tls=True) as srv:
            self.assertEqual(srv.addrs, [])
            self.assertEqual(len(srv.tls_addrs), 1)
            line = srv.wait_log("started:")
            self.assertNotIn("8307", line)

    def test_two_tls_listeners_and_ipv6(self):
        """--listen-tls is repeatable, IPv6 included; every TLS listener serves HTTPS."""
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        pki = test_pki()
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1")
        with Server("/x /y\n", listen=(), args=["--listen-tls", "127.0.0.1:0", "--listen-tls",
                                                "[::1]:0", "--cert", pki.localhost]) as srv:
            self.assertEqual([h for h, _ in srv.tls_addrs], ["127.0.0.1", "::1"])
            for host, port in srv.tls_addrs:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family) as raw:
                    raw.settimeout(5)
                    raw.connect((host, port))
                    with pki.client_context().wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                        self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307"), host)

    def test_cert_dir_and_sighup(self):
        """--cert-dir reads every *.pem; SIGHUP re-reads it: a new certificate is used by new
        connections, and a bad one keeps the set in use."""
        pki = TestPKI()
        d = os.path.join(pki.dir, "certs")
        os.mkdir(d)
        first = pki.cert("d1", ["d.example"])
        os.replace(first, os.path.join(d, "d.pem"))
        with Server("/x /y\n", listen=(), args=["--listen-tls", "127.0.0.1:0",
                                                "--cert-dir", d]) as srv:
            port = srv.tls_addrs[0][1]
            serial1 = s_client(port, "-servername", "d.example", "-showcerts")
            self.assertIn("CN = d.example", subject_of(serial1))
            # a second name, and the first renewed
            e = pki.cert("e", ["e.example"])
            os.replace(e, os.path.join(d, "e.pem"))
            line = srv.reload()
            self.assertIn("reloaded", line)
            srv.wait_log("reloaded 2 certificates")
            self.assertIn("CN = e.example", subject_of(s_client(port, "-servername",
                                                                "e.example")))
            # a connection opened before a reload keeps its certificate and goes on
            ctx = pki.client_context()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="e.example") as s:
                    s.sendall(b"GET /x HTTP/1.1\r\nHost: e.example\r\n\r\n")
                    self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 307"))
                    os.replace(pki.cert("e2", ["e.example"]), os.path.join(d, "e.pem"))
                    self.assertIn("reloaded 2 certificates", srv.reload())
                    s.sendall(b"GET /x HTTP/1.1\r\nHost: e.example\r\nConnection: close\r\n\r\n")
                    self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307"))
            # a broken file: the reload keeps what it had
            with open(os.path.join(d, "broken.pem"), "w") as f:
                f.write("not a certificate\n")
            mark = len(srv.log)
            srv.proc.send_signal(1)
            line = srv.wait_log(r"keeping the certificates in use", start=mark)
            self.assertTrue(any("broken.pem: no certificate in it" in l for l in srv.log[mark:]),
                            srv.log[mark:])
            self.assertIn("CN = e.example", subject_of(s_client(port, "-servername",
                                                                "e.example")))

    def test_expiry_is_logged(self):
        """A certificate that expires within 14 days is logged as a warning at start (and at
        each reload), with its name; one of a year is not."""
        pki = TestPKI()
        soon = pki.cert("soon", ["soon.example"], days=3)
        later = pki.cert("later", ["later.example"], days=365)
        with Server("/x /y\n", listen=(), args=["--listen-tls", "127.0.0.1:0", "--cert", soon,
                                                "--cert", later]) as srv:
            line = srv.wait_log("certificate for soon.example expires in")
            self.assertIn("warn", line)
            self.assertRegex(line, r"expires in [23] days")
            self.assertFalse(any("later.example" in l for l in srv.log), srv.log)
            mark = len(srv.log)
            srv.reload()
            srv.wait_log("certificate for soon.example expires in", start=mark)

    def test_bad_certificates_refuse_to_start(self):
        """Every bad certificate input: exit 2 with a message naming the file."""
        pki = TestPKI()
        good = pki.cert("good", ["g.example"])
        other = pki.cert("other", ["o.example"])
        mismatched = os.path.join(pki.dir, "mismatch.pem")
        with open(mismatched, "w") as out:
            with open(good) as f:
                out.write(f.read().split("-----BEGIN PRIVATE KEY-----")[0])
            with open(other) as f:
                out.write("-----BEGIN PRIVATE KEY-----" +
                          f.read().split("-----BEGIN PRIVATE KEY-----")[1])
        nokey = os.path.join(pki.dir, "nokey.pem")
        with open(nokey, "w") as out:
            with open(good) as f:
                out.write(f.read().split("-----BEGIN PRIVATE KEY-----")[0])
        empty_dir = os.path.join(pki.dir, "empty")
        os.mkdir(empty_dir)
        cases = [
            (["--cert", os.path.join(pki.dir, "missing.pem")], "missing.pem: cannot open"),
            (["--cert", mismatched], "does not match the certificate"),
            (["--cert", nokey], "nokey.pem: no private key in it nor in "),
            (["--cert", pki.ca_key], "no certificate in it"),
            (["--cert-dir", empty_dir], "no *.pem file"),
            (["--cert-dir", os.path.join(pki.dir, "nodir")], "cannot open the directory"),
        ]
        for args, message in cases:
            p = subprocess.run([DETOUR, "serve", "--listen-tls", "127.0.0.1:0", "--db", ":memory:",
                                "--admin", "off"] + args, capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(message, p.stderr.decode(), args)
            # --check says the same
            p = subprocess.run([DETOUR, "serve", "--check", "--listen-tls", "127.0.0.1:0"] + args,
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(message, p.stderr.decode(), args)
        p = subprocess.run([DETOUR, "serve", "--check", "--listen-tls", "127.0.0.1:0",
                            "--cert", good, "--cert", other], capture_output=True, timeout=10)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, "ok: 0 rules, 2 certificates\n"))

    def test_usage_errors(self):
        """TLS options that cannot work: exit 2 (usage) naming what is missing."""
        pki = test_pki()
        cases = [
            (["--listen-tls", "127.0.0.1:0"], "--listen-tls needs a certificate"),
            (["--cert", pki.localhost], "--cert needs a TLS listener"),
            (["--hsts", "max-age=60"], "--hsts needs a TLS listener"),
            (["--redirect-to-https"], "--redirect-to-https needs a TLS listener"),
            (["--listen-tls", "unix:/tmp/x.sock", "--cert", pki.localhost], "not a Unix socket"),
            (["--listen-tls", "nowhere", "--cert", pki.localhost], "--listen-tls 'nowhere'"),
        ]
        for bad in ("max-age=", "max-age=x", "includeSubDomains", "max-age=1; max-age=2",
                    "max-age=1; preload; preload", "max-age=1; foo"):
            cases.append((["--listen-tls", "127.0.0.1:0", "--cert", pki.localhost, "--hsts", bad],
                          "--hsts: '%s' is not" % bad))
        for args, message in cases:
            p = subprocess.run([DETOUR, "serve"] + args, capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(message, p.stderr.decode(), args)

    def test_help_names_the_options(self):
        out = subprocess.run([DETOUR, "serve", "--help"], capture_output=True).stdout.decode()
        for opt in ("--listen-tls", "--cert FILE", "--cert-dir", "--hsts", "--redirect-to-https"):
            self.assertIn(opt, out)


if __name__ == "__main__":
    unittest.main()
