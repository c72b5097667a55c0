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

from harness import DETOUR, Server

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


@unittest.skipUnless(PEBBLE and CHALLTESTSRV and OPENSSL, "pebble and openssl needed")
class ACME(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="detour-acme-")
        d = cls.tmp.name
        cls.pebble_cert = os.path.join(d, "pebble.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "3650", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", os.path.join(d, "pebble.key"), "-out", cls.pebble_cert],
                       check=True, capture_output=True)
        cls.plain, cls.tls = free_port(), free_port()
        cls.acme_port, cls.mgmt, cls.dns, cls.dns_mgmt = (free_port(), free_port(),
                                                            free_port(), free_port())
        cls.procs = []
        cls.start(CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                  "-dns01", "127.0.0.1:%d" % cls.dns, "-http01", "", "-https01", "",
                  "-tlsalpn01", "", "-management", "127.0.0.1:%d" % cls.dns_mgmt)
        wait_port(cls.dns_mgmt)
        config = os.path.join(d, "pebble.json")
        with open(config, "w") as f:
            f.write('{"pebble": {"listenAddress": "127.0.0.1:%d", '
                    '"managementListenAddress": "127.0.0.1:%d", "certificate": "%s", '
                    '"privateKey": "%s", "httpPort": %d, "tlsPort": %d, '
                    '"ocspResponderURL": "", "externalAccountBindingRequired": false}}'
                    % (cls.acme_port, cls.mgmt, cls.pebble_cert,
                       os.path.join(d, "pebble.key"), cls.plain, cls.tls))
        cls.start(PEBBLE, "-config", config, "-dnsserver", "127.0.0.1:%d" % cls.dns,
                  env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        wait_port(cls.acme_port)
        ctx = ssl.create_default_context(cafile=cls.pebble_cert)
        root = urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % cls.mgmt,
                                      context=ctx, timeout=10).read()
        cls.root = os.path.join(d, "root.pem")
        with open(cls.root, "wb") as f:
            f.write(root)
        cls.storage = os.path.join(d, "acme")
        cls.srv = cls.detour()

    @classmethod
    def start(cls, *cmd, env=None):
        e = dict(os.environ)
        e.update(env or {})
        cls.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=e))

    @classmethod
    def detour(cls):
        return Server(RULES, listen=("127.0.0.1:%d" % cls.plain,), workers=2,
                      args=["--listen-tls", "127.0.0.1:%d" % cls.tls,
                            "--acme-email", "ops@detour.test",
                            "--acme-directory", "https://127.0.0.1:%d/dir" % cls.acme_port,
                            "--acme-ca", cls.pebble_cert, "--acme-storage", cls.storage]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        for p in cls.procs:
            p.terminate()
            p.wait()
        cls.tmp.cleanup()

    def wait_cert(self, name, timeout=60):
        """Until name's certificate is issued, and loaded (a reload after it)."""
        line = self.srv.wait_log(r"acme: a certificate for %s, issued" % name.replace(".", r"\."),
                                 timeout)
        self.srv.wait_log(r"reloaded \d+ certificates", timeout, start=self.srv.log.index(line))

    def handshake(self, name, request):
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls,
                            "-servername", name, "-CAfile", self.root, "-verify_return_error",
                            "-verify_hostname", name, "-ign_eof",
                            # pebble (Go) reads the real clock, the suite may run with a moved
                            # one (faketime): the chain and the name are checked, not the dates
                            "-no_check_time"],
                           input=request.encode(), capture_output=True, timeout=10)
        return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

    def test_1_first_start_gets_every_name(self):
        """Three host rules: three certificates, each verifying against pebble's root and
        answering the rule; the wildcard host is skipped with a log line."""
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        self.srv.wait_log(r"acme: 1 wildcard hosts skipped")
        for name, path, want in (("a.detour.test", "/x", "Location: /y"),
                                 ("b.detour.test", "/p/q", "Location: https://new.example/p/q"),
                                 ("c.detour.test", "/old", "308 Permanent Redirect")):
            out = self.handshake(name, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                 % (path, name))
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
        out = self.handshake("d.detour.test",
                             "GET /go HTTP/1.1\r\nHost: d.detour.test\r\nConnection: close\r\n\r\n")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Location: /gone", out)

    def test_4_challenge_paths(self):
        """An unknown token is a 404 (not a rule's answer); no challenge over TLS."""
        with socket.create_connection(("127.0.0.1", self.plain), timeout=5) as s:
            s.sendall(b"GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: a.detour.test\r\n"
                      b"Connection: close\r\n\r\n")
            data = s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 404 "), data)

    def test_5_restart_orders_nothing(self):
        """A restart with valid certificates in the storage starts no order."""
        for name in ("a.detour.test", "b.detour.test", "c.detour.test"):
            self.wait_cert(name)
        self.__class__.srv.close()
        srv = self.detour()
        self.__class__.srv = srv
        time.sleep(2)
        self.assertFalse([line for line in srv.log if "acme: a certificate for" in line],
                         "\n".join(srv.log))
        out = self.handshake("a.detour.test",
                             "GET /x HTTP/1.1\r\nHost: a.detour.test\r\nConnection: close\r\n\r\n")
        self.assertIn("Verify return code: 0 (ok)", out)


class Usage(unittest.TestCase):
    def run_serve(self, *args):
        p = subprocess.run([DETOUR, "serve"] + list(args), capture_output=True, timeout=10)
        return p.returncode, p.stderr.decode()

    def test_usage_errors(self):
        """ACME's options without --acme-email, without the listeners it needs, a bad
        e-mail or directory: exit 2 saying why."""
        cases = [
            (["--acme-storage", "/tmp/x"], "needs --acme-email"),
            (["--acme-email", "ops@x.test", "--listen", "127.0.0.1:0"], "needs a --listen-tls"),
            (["--acme-email", "ops@x.test", "--listen-tls", "127.0.0.1:0"], "needs a --listen-tls"),
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
        for opt in ("--acme-email", "--acme-directory", "--acme-ca", "--acme-storage"):
            self.assertIn(opt, out)


if __name__ == "__main__":
    unittest.main()
