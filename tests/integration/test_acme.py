"""Automatic certificates (issue 12) against Debian's pebble, the RFC 8555 test CA, and
pebble-challtestsrv as its DNS (every test name resolves to 127.0.0.1), both started here.
pebble validates HTTP-01 by connecting to detour's plain listener (its httpPort). Cases: a
first start with three host rules gets three certificates, each verified by openssl s_client
against pebble's root and answering its 307; a host added through the admin API gets its
own while the server runs; the storage's modes; a restart orders nothing for names that
have valid certificates; and the usage errors."""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import DETOUR, Server, TestPKI

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")
OPENSSL = shutil.which("openssl")
RULES = ("a.detour.test/x /y\n"
         "b.detour.test/* https://new.example/:splat\n"
         "c.detour.test/old /new 308\n"
         "*.wild.detour.test/* /w\n"
         "/any /anywhere\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on port %d" % port)


class Pebble:
    """pebble and pebble-challtestsrv on loopback, pebble validating on plain and tls (the
    ports detour will listen on), its own TLS certificate made here; env: pebble's."""

    def __init__(self, d, plain, tls, env=None, validity=None):
        self.dir = d
        self.cert = os.path.join(d, "pebble.pem")
        if not os.path.exists(self.cert):
            subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "3650", "-subj",
                            "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
                            os.path.join(d, "pebble.key"), "-out", self.cert],
                           check=True, capture_output=True)
        self.port, self.mgmt, self.dns, self.dns_mgmt = (free_port(), free_port(), free_port(),
                                                         free_port())
        self.procs = []
        self.spawn(CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                   "-dns01", "127.0.0.1:%d" % self.dns, "-http01", "", "-https01", "",
                   "-tlsalpn01", "", "-management", "127.0.0.1:%d" % self.dns_mgmt)
        wait_port(self.dns_mgmt)
        self.config = os.path.join(d, "pebble.json")
        with open(self.config, "w") as f:
            f.write('{"pebble": {"listenAddress": "127.0.0.1:%d", '
                    '"managementListenAddress": "127.0.0.1:%d", "certificate": "%s", '
                    '"privateKey": "%s", "httpPort": %d, "tlsPort": %d, '
                    '"ocspResponderURL": "", "externalAccountBindingRequired": false%s}}'
                    % (self.port, self.mgmt, self.cert, os.path.join(d, "pebble.key"), plain,
                       tls, ', "certificateValidityPeriod": %d' % validity if validity else ""))
        self.env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        self.env.update(env or {})
        self.start_ca()

    def spawn(self, *cmd, env=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e)
        self.procs.append(p)
        return p

    def start_ca(self):
        self.ca = self.spawn(PEBBLE, "-config", self.config, "-dnsserver",
                             "127.0.0.1:%d" % self.dns, env=self.env)
        wait_port(self.port)
        ctx = ssl.create_default_context(cafile=self.cert)
        root = urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % self.mgmt,
                                      context=ctx, timeout=10).read()
        self.root = os.path.join(self.dir, "root-%d.pem" % len(self.procs))
        with open(self.root, "wb") as f:
            f.write(root)

    def stop_ca(self):
        self.ca.terminate()
        self.ca.wait()

    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait()


class Stack(unittest.TestCase):
    """A pebble and a detour served by it (the subclasses' setUpClass)."""

    @classmethod
    def setUpStack(cls, env=None, validity=None, rules=RULES, extra=()):
        cls.tmp = tempfile.TemporaryDirectory(prefix="detour-acme-")
        cls.plain, cls.tls = free_port(), free_port()
        cls.pebble = Pebble(cls.tmp.name, cls.plain, cls.tls, env=env, validity=validity)
        cls.root = cls.pebble.root
        cls.storage = os.path.join(cls.tmp.name, "acme")
        cls.rules = rules
        cls.extra = list(extra)
        cls.srv = cls.detour()

    @classmethod
    def detour(cls, listen=True, storage=None):
        return Server(cls.rules, listen=("127.0.0.1:%d" % cls.plain,) if listen else (),
                      workers=2,
                      args=["--listen-tls", "127.0.0.1:%d" % cls.tls,
                            "--acme-email", "ops@detour.test",
                            "--acme-directory", cls.pebble.directory(),
                            "--acme-ca", cls.pebble.cert,
                            "--acme-storage", storage or cls.storage] + cls.extra).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.pebble.close()
        cls.tmp.cleanup()

    def wait_cert(self, name, timeout=60, start=0):
        """Until name's certificate is issued (from log line start on), and loaded (a reload
        after it); returns the index of the issuing line."""
        line = self.srv.wait_log(r"acme: a certificate for %s, issued" % name.replace(".", r"\."),
                                 timeout, start=start)
        at = self.srv.log.index(line, start)
        self.srv.wait_log(r"reloaded \d+ certificates", timeout, start=at)
        return at

    def handshake(self, name, request, root=None):
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls,
                            "-servername", name, "-CAfile", root or self.root,
                            "-verify_return_error", "-verify_hostname", name, "-ign_eof",
                            # pebble (Go) reads the real clock, the suite may run with a moved
                            # one (faketime): the chain and the name are checked, not the dates
                            "-no_check_time"],
                           input=request.encode(), capture_output=True, timeout=10)
        return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

    def get(self, name, path):
        return self.handshake(name, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                              % (path, name))


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
class ACME(Stack):
    @classmethod
    def setUpClass(cls):
        cls.setUpStack()

    def test_1_first_start_gets_every_name(self):
        """Three host rules: three certificates, each verifying against pebble's root and
        answering the rule; the wildcard host is skipped with a log line."""
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        self.srv.wait_log(r"acme: 1 wildcard hosts skipped")
        for name, path, want in (("a.detour.test", "/x", "Location: /y"),
                                 ("b.detour.test", "/p/q", "Location: https://new.example/p/q"),
                                 ("c.detour.test", "/old", "308 Permanent Redirect")):
            out = self.get(name, path)
            self.assertIn("Verify return code: 0 (ok)", out, name)
            self.assertIn(want, out, name)

    def test_2_storage_modes(self):
        """The storage directory is mode 700, keys 600; no key in the log."""
        self.wait_cert("a.detour.test")
        self.assertEqual(os.stat(self.storage).st_mode & 0o777, 0o700)
        for f in ("account.key", "a.detour.test.key", "_placeholder.key"):
            self.assertEqual(os.stat(os.path.join(self.storage, f)).st_mode & 0o777, 0o600, f)
        self.assertFalse(any("PRIVATE KEY" in line for line in self.srv.log))

    def test_3_a_host_added_through_the_api(self):
        """A rule for a new host, added through the admin API, gets its certificate while
        the server runs."""
        self.wait_cert("c.detour.test")
        st, _, body = self.srv.api("POST", "/api/rules",
                                   {"source": "d.detour.test/go", "target": "/gone"})
        self.assertIn(st, (200, 201), body)
        self.wait_cert("d.detour.test")
        out = self.get("d.detour.test", "/go")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Location: /gone", out)

    def test_4_challenge_paths(self):
        """An unknown token is a 404 (not a rule's answer)."""
        with socket.create_connection(("127.0.0.1", self.plain), timeout=5) as s:
            s.sendall(b"GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: a.detour.test\r\n"
                      b"Connection: close\r\n\r\n")
            data = s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 404 "), data)

    def test_5_api_metrics_health_and_cli(self):
        """GET /api/certificates lists each name (status, issuer, not_after), /metrics counts
        the orders, /api/health says ok, `detour rules certs` prints the same, and a renewal
        asked for through the API (or the CLI) orders again."""
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        st, _, body = self.srv.api("GET", "/api/certificates")
        self.assertEqual(st, 200, body)
        certs = {c["name"]: c for c in body["certificates"]}
        self.assertTrue({"a.detour.test", "b.detour.test", "c.detour.test"} <= set(certs))
        a = certs["a.detour.test"]
        self.assertEqual(a["status"], "valid")
        self.assertTrue(a["issuer"].startswith("Pebble Intermediate CA"), a)
        self.assertRegex(a["not_after"], r"^\d{4}-\d\d-\d\dT")
        self.assertIsNone(a["last_error"])
        st, _, health = self.srv.api("GET", "/api/health")
        self.assertEqual(health["acme"]["status"], "ok", health)
        self.assertEqual(health["status"], "ok")
        st, _, m = self.srv.api("GET", "/metrics", raw=True)
        self.assertRegex(m.decode(), r'detour_acme_orders_total\{result="ok"\} [1-9]')
        self.assertIn('detour_acme_failures{name="a.detour.test"} 0', m.decode())
        self.assertRegex(m.decode(), r'detour_acme_days_left\{name="a\.detour\.test"\} \d+\.\d\d')
        cli = subprocess.run([DETOUR, "rules", "--server", "http://" + self.srv.admin_addr,
                              "--token-file", self.srv.token_file, "certs"],
                             capture_output=True, timeout=10)
        out = cli.stdout.decode()
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertRegex(out, r"(?m)^a\.detour\.test\s+valid\s+\d{4}-")
        n = len(self.srv.log)
        cli = subprocess.run([DETOUR, "rules", "--server", "http://" + self.srv.admin_addr,
                              "--token-file", self.srv.token_file, "certs", "renew",
                              "a.detour.test"], capture_output=True, timeout=10)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.wait_cert("a.detour.test", start=n)
        st, _, body = self.srv.api("POST", "/api/certificates/nobody.test/renew")
        self.assertEqual(st, 404, body)

    def test_6_ca_down_then_back(self):
        """pebble stopped: the server goes on serving with its certificates, a new host's
        order fails and health says why; pebble back: the renewal asked for completes."""
        self.wait_cert("a.detour.test")
        self.pebble.stop_ca()
        try:
            st, _, body = self.srv.api("POST", "/api/rules",
                                       {"source": "e.detour.test/e", "target": "/ee"})
            self.assertIn(st, (200, 201), body)
            self.srv.wait_log(r"acme: no certificate for e\.detour\.test: .*connect", 30)
            out = self.get("a.detour.test", "/x")
            self.assertIn("Verify return code: 0 (ok)", out)  # still served
            st, _, health = self.srv.api("GET", "/api/health")
            self.assertEqual(health["status"], "degraded", health)
            self.assertEqual(health["acme"]["status"], "failing")
            self.assertIn("e.detour.test", health["acme"]["errors"])
            st, _, m = self.srv.api("GET", "/metrics", raw=True)
            self.assertRegex(m.decode(), r'detour_acme_last_error\{name="e\.detour\.test",'
                                         r'error="[^"\n]*connect[^"\n]*"\} 1')
        finally:
            self.pebble.start_ca()
        self.__class__.root = self.pebble.root  # a new pebble: a new root
        # the next try comes by itself (30 s after the first failure, a quarter more at most)
        self.wait_cert("e.detour.test", timeout=60)
        out = self.get("e.detour.test", "/e")
        self.assertIn("Verify return code: 0 (ok)", out)
        st, _, health = self.srv.api("GET", "/api/health")
        self.assertEqual(health["acme"]["status"], "ok", health)

    def test_7_restart_orders_nothing(self):
        """A restart with valid certificates in the storage starts no order."""
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        self.__class__.srv.close()
        srv = self.detour()
        self.__class__.srv = srv
        time.sleep(2)
        self.assertFalse([line for line in srv.log if "acme: a certificate for" in line],
                         "\n".join(srv.log))
        st, _, body = srv.api("GET", "/api/certificates")
        self.assertEqual({c["name"]: c["status"] for c in body["certificates"]}["b.detour.test"],
                         "valid")

    def test_8_tls_alpn_01_alone(self):
        """Without a plain listener the challenges are TLS-ALPN-01's (RFC 8737), answered on
        the TLS listener: the certificates come all the same."""
        self.__class__.srv.close()
        storage = os.path.join(self.tmp.name, "acme-alpn")
        srv = self.detour(listen=False, storage=storage)
        self.__class__.srv = srv
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        out = self.get("b.detour.test", "/z")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Location: https://new.example/z", out)
        self.assertTrue(os.path.exists(os.path.join(storage, "c.detour.test.pem")))


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
class GivenCertificates(Stack):
    """A --cert for a name takes precedence: ACME orders nothing for the names it covers."""

    @classmethod
    def setUpClass(cls):
        cls.pki = TestPKI()
        cls.given = cls.pki.cert("c", ["c.detour.test"])
        cls.setUpStack(extra=["--cert", cls.given])

    def test_given_names_are_not_ordered(self):
        self.wait_cert("a.detour.test")
        self.wait_cert("b.detour.test")
        out = self.get("c.detour.test", "/old")
        self.assertNotIn("Verify return code: 0 (ok)", out)  # not pebble's
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls,
                            "-servername", "c.detour.test", "-CAfile", self.pki.ca,
                            "-verify_return_error", "-no_check_time"],
                           input=b"", capture_output=True, timeout=10)
        self.assertIn("Verify return code: 0 (ok)", p.stdout.decode())  # the given one
        st, _, body = self.srv.api("GET", "/api/certificates")
        self.assertEqual(sorted(c["name"] for c in body["certificates"]),
                         ["a.detour.test", "b.detour.test"])
        self.assertFalse([line for line in self.srv.log if "certificate for c.detour" in line])


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
class OnDemand(Stack):
    """--acme-on-demand: a name first seen in a ClientHello gets its certificate when host
    rules answer it (a wildcard rule here), never when only a rule for any host would."""

    @classmethod
    def setUpClass(cls):
        cls.setUpStack(rules="*.wild.detour.test/* /w\n/any /anywhere\n",
                       extra=["--acme-on-demand"])

    def test_1_a_wildcard_name_on_demand(self):
        out = self.get("x.wild.detour.test", "/p")  # the placeholder meanwhile
        self.assertIn("placeholder.detour.invalid", out)
        self.wait_cert("x.wild.detour.test")
        out = self.get("x.wild.detour.test", "/p")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Location: /w", out)
        st, _, body = self.srv.api("GET", "/api/certificates")
        self.assertEqual([c["name"] for c in body["certificates"]], ["x.wild.detour.test"])

    def test_2_no_order_for_other_names(self):
        """Names only the rule for any host answers (or a wildcard's apex): no order."""
        for name in ("nobody.test", "wild.detour.test", "a.b.c"):
            self.get(name, "/any")
        time.sleep(1.5)
        self.assertFalse([line for line in self.srv.log
                          if "acme: a certificate for" in line and "x.wild" not in line],
                         "\n".join(self.srv.log))
        st, _, body = self.srv.api("GET", "/api/certificates")
        self.assertLessEqual({c["name"] for c in body["certificates"]}, {"x.wild.detour.test"})

    def test_3_restart_keeps_them(self):
        """After a restart, a name got on demand is managed again (renewed), not ordered."""
        self.wait_cert("x.wild.detour.test")
        self.__class__.srv.close()
        self.__class__.srv = self.detour()
        st, _, body = self.srv.api("GET", "/api/certificates")
        self.assertEqual({c["name"]: c["status"] for c in body["certificates"]},
                         {"x.wild.detour.test": "valid"})
        time.sleep(1)
        self.assertFalse([line for line in self.srv.log if "acme: a certificate for" in line])


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
class BadNonces(Stack):
    """pebble rejecting half the nonces: every certificate still comes."""

    @classmethod
    def setUpClass(cls):
        cls.setUpStack(env={"PEBBLE_WFE_NONCEREJECT": "50"})

    def test_every_order_completes(self):
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name, timeout=90)
            self.assertIn("Verify return code: 0 (ok)", self.get(name, "/"))


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
@unittest.skipIf(os.environ.get("FAKETIME"),
                 "the renewal is timed by detour's clock against the certificates pebble dates "
                 "by its own, which libfaketime cannot move (Go reads the time itself)")
class Renewal(Stack):
    """Certificates valid 24 s (pebble's certificateValidityPeriod): each is renewed at two
    thirds of its lifetime while handshakes go on, none failing."""

    @classmethod
    def setUpClass(cls):
        cls.setUpStack(validity=24, rules="r.detour.test/x /y\n")

    def test_renewed_under_traffic(self):
        first = self.wait_cert("r.detour.test")
        ctx = ssl.create_default_context(cafile=self.root)
        ok = failed = 0
        renewed = None
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and renewed is None:
            try:
                with socket.create_connection(("127.0.0.1", self.tls), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="r.detour.test") as s:
                        s.sendall(b"GET /x HTTP/1.1\r\nHost: r.detour.test\r\n"
                                  b"Connection: close\r\n\r\n")
                        data = s.recv(100)
                        ok += data.startswith(b"HTTP/1.1 307")
            except (OSError, ssl.SSLError):
                failed += 1
            for i, line in enumerate(self.srv.log[first + 1:]):
                if "acme: a certificate for r.detour.test, issued" in line:
                    renewed = first + 1 + i
            time.sleep(0.05)
        self.assertIsNotNone(renewed, "no renewal in 40 s:\n" + "\n".join(self.srv.log))
        self.assertGreater(ok, 10)
        self.assertEqual(failed, 0)


class Usage(unittest.TestCase):
    def run_serve(self, *args):
        p = subprocess.run([DETOUR, "serve"] + list(args), capture_output=True, timeout=10)
        return p.returncode, p.stderr.decode()

    def test_usage_errors(self):
        """ACME's options without --acme-email, without the listeners it needs, a bad
        e-mail or directory: exit 2 saying why."""
        cases = [
            (["--acme-storage", "/tmp/x"], "needs --acme-email"),
            (["--acme-on-demand"], "--acme-on-demand needs --acme-email"),
            (["--acme-email", "ops@x.test", "--listen", "127.0.0.1:0"], "needs a --listen-tls"),
            (["--acme-email", "nobody", "--listen", "127.0.0.1:0"], "is not an e-mail address"),
            (["--acme-email", "a@b.c", "--acme-directory", "ftp://x"], "is not an http(s) URL"),
            (["--acme-email", "a@b.c", "--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0",
              "--db", ":memory:"], "needs --acme-storage"),
        ]
        for args, want in cases:
            rc, err = self.run_serve(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(want, err, args)

    def test_help_names_the_options(self):
        out = subprocess.run([DETOUR, "serve", "--help"], capture_output=True).stdout.decode()
        for opt in ("--acme-email", "--acme-directory", "--acme-ca", "--acme-storage",
                    "--acme-on-demand"):
            self.assertIn(opt, out)


if __name__ == "__main__":
    unittest.main()
