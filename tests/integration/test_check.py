"""`detour check` (issue 14): live redirects checked in bulk against what a file expects.

Cases come from a real `detour serve` where it can make them (its rules differ from the
file's), and from small Python origin servers (http.server, one thread a connection) for the
rest: HTTPS with TestPKI certificates, two Location fields, garbage, silence. Every problem
kind, every input format, every report format parsed back, --resolve/--connect-to, the
methods sent (C4: never an unsafe one), the rate per host measured at the origin, concurrency
and keep-alive counted at the origin, a 1,000,000-line input in bounded memory, and the
progress line on a terminal. Each detour check runs in a session of its own, its standard
input closed unless a test feeds it.
"""
import csv
import http.server
import io
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

from harness import DETOUR, Server, TestPKI

SANITIZED = "sanitize" in os.environ.get("DETOUR_EXAMPLE_CFLAGS", "")

_pki = None


def pki():
    """One TestPKI for the file: certificates for secure.example and other.example."""
    global _pki
    if _pki is None:
        _pki = TestPKI()
        _pki.secure = _pki.cert("secure", ["secure.example"])
        _pki.other = _pki.cert("other", ["other.example"])
        _pki.old = _pki.cert("old", ["old.example"])
        # a second CA nobody passes to --cacert
        _pki.stranger = TestPKI()
        _pki.stranger.secure = _pki.stranger.cert("secure", ["secure.example"])
    return _pki


def tearDownModule():
    if _pki is not None:
        _pki.stranger.tmp.cleanup()
        _pki.tmp.cleanup()


# ---- origin servers ------------------------------------------------------------------------

class Seen:
    """One request as an origin received it."""

    def __init__(self, method, path, host, conn, at):
        self.method = method
        self.path = path
        self.host = host
        self.conn = conn      # the connection's number at the origin
        self.at = at          # time.monotonic() when its head had arrived

    def __repr__(self):
        return "<%s %s Host: %s conn %d>" % (self.method, self.path, self.host, self.conn)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    timeout = 15

    def setup(self):
        super().setup()
        self.conn_no = self.server.origin._connected()

    def log_message(self, *args):
        pass

    def _answer(self):
        origin = self.server.origin
        origin._record(Seen(self.command, self.path, self.headers.get("Host"), self.conn_no,
                            time.monotonic()))
        route = origin.routes.get(self.path.split("?", 1)[0], origin.default)
        if callable(route):
            route = route(self)
        status, headers, body = route
        if isinstance(body, str):
            body = body.encode()
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64 connections at once must not meet a full backlog
    ctx = None

    def finish_request(self, request, client_address):
        # The TLS handshake in the connection's own thread, not in the accepting one.
        if self.ctx is not None:
            try:
                request = self.ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.origin._record_error("TLS: %s" % e)
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ctx is not None:
                request.close()

    def handle_error(self, request, client_address):
        pass  # a client that hangs up is not the test's business


class Origin:
    """An HTTP/1.1 origin on 127.0.0.1 (HTTPS with cert, a PEM of chain and key) answering
    routes: path -> (status, [(name, value)], body) or a callable(handler) giving one; other
    paths get default (404 unless given). It records every request (Seen) and counts the
    connections it accepted."""

    def __init__(self, routes=None, default=None, cert=None):
        self.routes = dict(routes or {})
        self.default = default or (404, [("Content-Type", "text/plain")], b"not here")
        self.seen = []
        self.errors = []
        self.connections = 0
        self.lock = threading.Lock()
        self.server = _HTTPServer(("127.0.0.1", 0), _Handler)
        self.server.origin = self
        self.tls = cert is not None
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert)
            ctx.set_alpn_protocols(["http/1.1"])
            self.server.ctx = ctx
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _connected(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def _record(self, seen):
        with self.lock:
            self.seen.append(seen)

    def _record_error(self, what):
        with self.lock:
            self.errors.append(what)

    def url(self, path="/", host="127.0.0.1"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", host, self.port, path)

    def methods(self):
        with self.lock:
            return [s.method for s in self.seen]


class RawServer:
    """A listener on 127.0.0.1 whose connections get behaviour(sock): garbage, silence..."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.behaviour(c)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(5)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)


SO_TIMESTAMPNS = 35  # Linux: each read says when the kernel received its bytes


class PacedOrigin(RawServer):
    """An HTTP/1.1 origin (keep-alive, 200 for all) that records when each request reached
    the kernel (SO_TIMESTAMPNS, not when a Python thread got round to it), and its Host: the
    spacing measured is detour's, not this process's scheduling."""

    def __init__(self):
        self.seen = []  # (kernel time, Host, path)
        self.lock = threading.Lock()
        super().__init__(self._serve_http)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _serve_http(self, c):
        c.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        c.settimeout(15)
        buf, at = b"", None
        while True:
            data, anc, _, _ = c.recvmsg(65536, socket.CMSG_SPACE(16))
            if not data:
                return
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and not buf:
                    sec, ns = struct.unpack("qq", value[:16])
                    at = sec + ns / 1e9
            buf += data
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                host = [l.split(":", 1)[1].strip() for l in lines[1:]
                        if l.lower().startswith("host:")]
                with self.lock:
                    self.seen.append((at if at is not None else time.time(),
                                      host[0] if host else "", lines[0].split(" ")[1]))
                body = b"" if lines[0].startswith("HEAD ") else b"ok"
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          b"Content-Length: 2\r\n\r\n" + body)

    def arrivals(self, host_prefix=""):
        with self.lock:
            return sorted(t for t, host, _ in self.seen if host.startswith(host_prefix))


def read_head(c):
    c.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def garbage(c):
    read_head(c)
    c.sendall(b"this is not HTTP at all\r\n\r\n")
    c.close()


def hang_up(c):
    read_head(c)
    c.close()


def silence(c):
    read_head(c)
    time.sleep(3)
    c.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ok_route(body=b"ok", headers=()):
    return (200, [("Content-Type", "text/plain")] + list(headers), body)


def redirect(status, *locations, headers=()):
    return (status, [("Location", loc) for loc in locations] + list(headers), b"")


HSTS = ("Strict-Transport-Security", "max-age=300")


# ---- running detour check ------------------------------------------------------------------

class Run:
    def __init__(self, rc, out, err, seconds):
        self.rc = rc
        self.out = out.decode("utf-8", "replace")
        self.err = err.decode("utf-8", "replace")
        self.seconds = seconds

    def json(self):
        return json.loads(self.out)

    @property
    def results(self):
        return self.json()["results"]

    @property
    def summary(self):
        return self.json()["summary"]

    def by_url(self):
        return {r["url"]: r for r in self.results}

    def __repr__(self):
        return "<exit %s in %.2f s\nstdout: %s\nstderr: %s>" % (self.rc, self.seconds,
                                                                self.out[:3000], self.err[:3000])


def kinds(result):
    return [p["kind"] for p in result["problems"]]


class Base(unittest.TestCase):
    maxDiff = None

    def tmp(self):
        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.TemporaryDirectory(prefix="detour-check-test-")
            self.addCleanup(self._tmp.cleanup)
        return self._tmp.name

    def write(self, name, text):
        path = os.path.join(self.tmp(), name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def origin(self, routes=None, **kw):
        o = Origin(routes, **kw)
        self.addCleanup(o.close)
        return o

    def raw(self, behaviour):
        r = RawServer(behaviour)
        self.addCleanup(r.close)
        return r

    def check(self, *args, input=None, timeout=60):
        cmd = [DETOUR, "check"] + [str(a) for a in args]
        start = time.monotonic()
        p = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, start_new_session=True)
        return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - start)

    def check_json(self, *args, **kw):
        return self.check("--format", "json", *args, **kw)

    def one(self, run, url=None):
        """The only result of a JSON run (or the one for url)."""
        results = run.results
        if url is not None:
            results = [r for r in results if r["url"] == url]
        self.assertEqual(len(results), 1, run)
        return results[0]

    def assertKinds(self, result, expected, run=None):
        self.assertEqual(sorted(kinds(result)), sorted(expected), run or result)


class WithServe(Base):
    """A detour serve whose rules make the cases, and a landing origin (200 for any path,
    404 for /missing) its redirects end on."""

    @classmethod
    def setUpClass(cls):
        cls.landing = Origin({"/missing": (404, [], b"gone")}, default=ok_route())
        L = cls.landing.url("")
        cls.L = L
        rules = "\n".join([
            "/good      %s/good        308" % L,
            "/wt        %s/right       308" % L,
            "/s307      %s/x           307" % L,
            "/s308      %s/x           308" % L,
            "/s302      %s/x           302" % L,
            "/chain1    /chain2        308",
            "/chain2    %s/end         308" % L,
            "/loop1     /loop2         307",
            "/loop2     /loop1         307",
            "/m1        /m2            308",
            "/m2        /m3            308",
            "/m3        /m4            308",
            "/m4        %s/end         308" % L,
            "/broken    /nowhere       308",
            "/pre/*     %s/pre/:splat  308" % L,
            "/u/:id     %s/people/:id  308" % L,
            "~^/item/([a-z0-9]+)$  %s/items/$1  308" % L,
            "/c/:n      %s/t/:n        308" % L,
            "/h/:n      %s/t/:n        308" % L,
        ]) + "\n"
        cls.serve = Server(rules=rules, admin=None)
        cls.serve.start()
        cls.S = cls.serve.url("").rstrip("/")

    @classmethod
    def tearDownClass(cls):
        cls.serve.close()
        cls.landing.close()


# ---- problem kinds made by detour serve ----------------------------------------------------

class ServeProblems(WithServe):
    def test_all_good_exits_0_and_reports_no_url_in_text(self):
        """issue 14: an all-good run exits 0; the text report holds only the summary."""
        urls = self.write("urls.txt", "%s/good\n" % self.S)
        rules = self.write("rules.txt", "/good %s/good 308\n" % self.L)
        run = self.check("--base", self.S, urls, rules)
        self.assertEqual(run.rc, 0, run)
        lines = run.out.splitlines()
        self.assertTrue(lines[0].startswith("checked 2 URLs in "), run)
        self.assertIn(": 2 ok, 0 with errors, 0 with warnings", lines[0])
        for line in lines:
            self.assertNotIn("urls.txt:", line, run)
            self.assertNotIn("rules.txt:", line, run)
            self.assertNotIn("problems:", line, run)
        self.assertEqual(run.err, "", run)

    def test_wrong_target(self):
        """issue 14: wrong-target: the first redirect leads elsewhere than the file says."""
        rules = self.write("rules.txt", "/wt %s/elsewhere 308\n" % self.L)
        run = self.check_json("--base", self.S, rules)
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["wrong-target"], run)
        self.assertEqual(r["severity"], "error")
        self.assertEqual(r["url"], self.S + "/wt")
        self.assertEqual(r["expected_target"], self.L + "/elsewhere")
        self.assertEqual(r["expected_status"], 308)
        self.assertEqual(r["hops"][0]["next_url"], self.L + "/right")
        self.assertEqual(r["final_url"], self.L + "/right")
        self.assertEqual(r["status"], 200)

    def test_wrong_status_307_where_308_is_expected(self):
        """issue 14: wrong-status, 307 where 308 is expected (and temporary with it)."""
        rules = self.write("rules.txt", "/s307 %s/x 308\n" % self.L)
        run = self.check_json("--base", self.S, rules)
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["wrong-status", "temporary"], run)
        self.assertEqual(r["hops"][0]["status"], 307)
        self.assertEqual(r["expected_status"], 308)
        msg = [p["message"] for p in r["problems"] if p["kind"] == "wrong-status"][0]
        self.assertIn("307", msg)
        self.assertIn("308", msg)

    def test_wrong_status_308_where_307_is_expected(self):
        """issue 14: wrong-status the other way round: 308 where 307 is expected (not
        temporary: a permanent redirect where a temporary one was meant)."""
        rules = self.write("rules.txt", "/s308 %s/x 307\n" % self.L)
        run = self.check_json("--base", self.S, rules)
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["wrong-status"], run)
        self.assertEqual(r["hops"][0]["status"], 308)
        self.assertEqual(r["expected_status"], 307)

    def test_temporary(self):
        """issue 14: temporary: a 302 where the file says 301 (a warning, with wrong-status)."""
        rules = self.write("rules.txt", "/s302 %s/x 301\n" % self.L)
        run = self.check_json("--base", self.S, rules)
        r = self.one(run)
        self.assertKinds(r, ["wrong-status", "temporary"], run)
        sev = {p["kind"]: p["severity"] for p in r["problems"]}
        self.assertEqual(sev, {"wrong-status": "error", "temporary": "warning"})

    def test_chain_is_a_warning_and_fail_on_warning_makes_it_fail(self):
        """issue 14: chain: more than one redirect is a warning: exit 0 by default, exit 1
        with --fail-on warning."""
        urls = self.write("urls.txt", "%s/chain1\n" % self.S)
        run = self.check_json(urls)
        self.assertEqual(run.rc, 0, run)
        r = self.one(run)
        self.assertKinds(r, ["chain"], run)
        self.assertEqual(r["severity"], "warning")
        self.assertEqual([h["status"] for h in r["hops"]], [308, 308, 200])
        self.assertEqual(run.summary["warnings"], 1)
        run = self.check("--fail-on", "warning", urls)
        self.assertEqual(run.rc, 1, run)
        self.assertIn("warning chain: 2 redirects", run.out)
        run = self.check("--fail-on", "error", urls)
        self.assertEqual(run.rc, 0, run)

    def test_a_chain_that_ends_where_expected_is_only_a_chain(self):
        """issue 14: the first redirect goes elsewhere, but the chain ends at the expected
        URL: a chain (warning), not wrong-target."""
        rules = self.write("rules.txt", "/chain1 %s/end 308\n" % self.L)
        run = self.check_json("--base", self.S, rules)
        self.assertEqual(run.rc, 0, run)
        self.assertKinds(self.one(run), ["chain"], run)

    def test_loop(self):
        """issue 14: loop: the chain comes back to a request it made (reported as a loop,
        not also as a chain)."""
        urls = self.write("urls.txt", "%s/loop1\n" % self.S)
        run = self.check_json(urls)
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["loop"], run)
        self.assertIsNotNone(r["error"])

    def test_too_many_redirects(self):
        """issue 14: too-many-redirects past --max-redirs (not also a chain); within it, a
        chain only."""
        urls = self.write("urls.txt", "%s/m1\n" % self.S)
        run = self.check_json("--max-redirs", "2", urls)
        self.assertEqual(run.rc, 1, run)
        self.assertKinds(self.one(run), ["too-many-redirects"], run)
        run = self.check_json(urls)
        self.assertEqual(run.rc, 0, run)
        r = self.one(run)
        self.assertKinds(r, ["chain"], run)
        self.assertEqual(r["final_url"], self.L + "/end")

    def test_no_redirect(self):
        """issue 14: no-redirect: the file expects a redirect, the answer is a 200."""
        rules = self.write("rules.txt", "/plain %s/x 308\n" % self.L)
        run = self.check_json("--base", self.L, rules)
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["no-redirect"], run)
        self.assertEqual(r["status"], 200)
        self.assertEqual(len(r["hops"]), 1)

    def test_broken_target(self):
        """issue 14: broken-target: the redirect leads to a 404."""
        urls = self.write("urls.txt", "%s/broken\n%s/missing\n" % (self.S, self.L))
        run = self.check_json(urls)
        self.assertEqual(run.rc, 1, run)
        by = run.by_url()
        r = by[self.S + "/broken"]
        self.assertKinds(r, ["broken-target"], run)
        self.assertEqual(r["status"], 404)
        self.assertEqual(r["final_url"], self.S + "/nowhere")
        self.assertKinds(by[self.L + "/missing"], ["broken-target"], run)

    def test_concurrency_200_urls_all_checked(self):
        """issue 14: 200 URLs with --concurrency 50 against detour serve: every one checked
        and reported once, each as its rule expects."""
        rules = self.write("rules.txt", "".join("/c/%d %s/t/%d 308\n" % (i, self.L, i)
                                                for i in range(200)))
        run = self.check_json("--base", self.S, "--concurrency", "50", rules)
        self.assertEqual(run.rc, 0, run)
        results = run.results
        self.assertEqual(len(results), 200)
        self.assertEqual(sorted(r["line"] for r in results), list(range(1, 201)))
        for r in results:
            self.assertEqual(r["problems"], [], r)
            self.assertEqual(r["final_url"], self.L + "/t/%d" % (r["line"] - 1))
        self.assertEqual(run.summary["checked"], 200)
        self.assertEqual(run.summary["ok"], 200)


# ---- problem kinds made by origin fixtures -------------------------------------------------

class OriginProblems(Base):
    def tls_args(self, origin, name="secure.example"):
        return ["--cacert", pki().ca, "--resolve", "%s:%d:127.0.0.1" % (name, origin.port)]

    def test_downgrade(self):
        """issue 14: downgrade: an https URL redirected to plain http (followed, reported)."""
        plain = self.origin(default=ok_route())
        o = self.origin({"/dg": redirect(301, plain.url("/landed"), headers=[HSTS])},
                        cert=pki().secure)
        url = o.url("/dg", host="secure.example")
        run = self.check_json(*self.tls_args(o), self.write("u.txt", url + "\n"))
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["downgrade"], run)
        self.assertTrue(r["hops"][0]["hsts"])
        self.assertEqual(r["final_url"], plain.url("/landed"))
        self.assertEqual(len(plain.seen), 1)

    def test_no_hsts_and_hsts(self):
        """issue 14: no-hsts: an https answer without Strict-Transport-Security is a warning;
        with the field, nothing."""
        o = self.origin({"/bare": ok_route(), "/hsts": ok_route(headers=[HSTS])},
                        cert=pki().secure)
        bare, hsts = o.url("/bare", "secure.example"), o.url("/hsts", "secure.example")
        run = self.check_json(*self.tls_args(o), self.write("u.txt", "%s\n%s\n" % (bare, hsts)))
        self.assertEqual(run.rc, 0, run)
        by = run.by_url()
        self.assertKinds(by[bare], ["no-hsts"], run)
        self.assertEqual(by[bare]["severity"], "warning")
        self.assertKinds(by[hsts], [], run)
        self.assertEqual(by[hsts]["severity"], "ok")
        self.assertTrue(by[hsts]["hops"][0]["hsts"])
        self.assertFalse(by[bare]["hops"][0]["hsts"])

    def test_refused_two_location_fields_or_a_backslash(self):
        """issue 14, C6: refused: two different Location fields, or a Location with a
        backslash, are not followed."""
        o = self.origin({"/two": redirect(301, "/a", "/b"),
                         "/slash": redirect(301, "/a\\b")}, default=ok_route())
        run = self.check_json(self.write("u.txt", "%s\n%s\n" % (o.url("/two"),
                                                                o.url("/slash"))))
        self.assertEqual(run.rc, 1, run)
        for r in run.results:
            self.assertKinds(r, ["refused"], run)
        self.assertEqual(sorted(s.path for s in o.seen), ["/slash", "/two"],
                         "nothing followed")

    def test_error_dns(self):
        """issue 14: error-dns: a name under .invalid (RFC 6761) does not resolve."""
        run = self.check_json(self.write("u.txt", "http://nothing-here.invalid/a\n"))
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["error-dns"], run)
        self.assertIsNotNone(r["error"])
        self.assertIsNone(r["status"])

    def test_error_connect(self):
        """issue 14: error-connect: nothing listens on the port."""
        run = self.check_json(self.write("u.txt", "http://127.0.0.1:%d/a\n" % closed_port()))
        self.assertEqual(run.rc, 1, run)
        self.assertKinds(self.one(run), ["error-connect"], run)

    def test_error_tls_wrong_name(self):
        """issue 14: error-tls: the certificate is for another name."""
        o = self.origin(default=ok_route(headers=[HSTS]), cert=pki().other)
        run = self.check_json(*self.tls_args(o),
                              self.write("u.txt", o.url("/", "secure.example") + "\n"))
        self.assertEqual(run.rc, 1, run)
        self.assertKinds(self.one(run), ["error-tls"], run)
        self.assertEqual(o.seen, [], "no request over an unverified connection")

    def test_error_tls_untrusted_ca(self):
        """issue 14: error-tls: a certificate from a CA the run does not trust (no --cacert
        for it); -k accepts it."""
        o = self.origin(default=ok_route(headers=[HSTS]), cert=pki().stranger.secure)
        u = self.write("u.txt", o.url("/", "secure.example") + "\n")
        resolve = ["--resolve", "secure.example:%d:127.0.0.1" % o.port]
        run = self.check_json(*resolve, u)
        self.assertEqual(run.rc, 1, run)
        self.assertKinds(self.one(run), ["error-tls"], run)
        run = self.check_json(*resolve, "--cacert", pki().ca, u)
        self.assertKinds(self.one(run), ["error-tls"], run)
        run = self.check_json(*resolve, "-k", u)
        self.assertEqual(run.rc, 0, run)
        self.assertKinds(self.one(run), [], run)

    def test_error_timeout(self):
        """issue 14: error-timeout: an origin that never answers, --timeout 300ms."""
        r = self.raw(silence)
        run = self.check_json("--timeout", "300ms", self.write("u.txt", r.url("/a") + "\n"))
        self.assertEqual(run.rc, 1, run)
        self.assertKinds(self.one(run), ["error-timeout"], run)
        self.assertLess(run.seconds, 2.9, "the run does not wait for the origin: %r" % run)

    def test_error_http_garbage_and_hang_up(self):
        """issue 14: error-http: an answer that is not HTTP, and a connection closed with
        no answer."""
        g, h = self.raw(garbage), self.raw(hang_up)
        run = self.check_json(self.write("u.txt", "%s\n%s\n" % (g.url("/g"), h.url("/h"))))
        self.assertEqual(run.rc, 1, run)
        by = run.by_url()
        self.assertKinds(by[g.url("/g")], ["error-http"], run)
        self.assertKinds(by[h.url("/h")], ["error-http"], run)

    def test_error_url(self):
        """issue 14: error-url: a URL the client cannot request (port 99999)."""
        run = self.check_json(self.write("u.txt", "http://127.0.0.1:99999/a\n"))
        self.assertEqual(run.rc, 1, run)
        r = self.one(run)
        self.assertKinds(r, ["error-url"], run)
        self.assertIsNone(r["status"])

    def test_location_resolved_against_the_request_url(self):
        """issue 14, C6: a relative Location is resolved against the URL requested (RFC 3986
        5.2) before it is compared with the file's absolute target."""
        o = self.origin({"/a/b/c": redirect(301, "../d?q=1")}, default=ok_route())
        rules = self.write("rules.txt", "/a/b/c %s 301\n" % o.url("/a/d?q=1"))
        run = self.check_json("--base", o.url("").rstrip("/"), rules)
        self.assertEqual(run.rc, 0, run)
        r = self.one(run)
        self.assertKinds(r, [], run)
        self.assertEqual(r["hops"][0]["location"], "../d?q=1")
        self.assertEqual(r["hops"][0]["next_url"], o.url("/a/d?q=1"))
        self.assertEqual([s.path for s in o.seen], ["/a/b/c", "/a/d?q=1"])
        rules = self.write("rules2.txt", "/a/b/c %s 301\n" % o.url("/a/b/d?q=1"))
        run = self.check_json("--base", o.url("").rstrip("/"), rules)
        self.assertKinds(self.one(run), ["wrong-target"], run)


# ---- methods: HEAD, GET, never an unsafe one (C4) ------------------------------------------

class Methods(Base):
    def test_head_by_default_get_with_x_get_and_never_an_unsafe_method(self):
        """issue 14, C4: HEAD by default and along each redirect (301, 302, 303, 307, 308);
        GET with -X GET; no other method ever reaches the origin."""
        routes = {"/r%d" % s: redirect(s, "/end") for s in (301, 302, 303, 307, 308)}
        o = self.origin(routes, default=ok_route())
        urls = self.write("u.txt", "".join(o.url("/r%d" % s) + "\n"
                                           for s in (301, 302, 303, 307, 308)))
        run = self.check_json(urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(len(o.seen), 10)
        self.assertEqual(set(o.methods()), {"HEAD"})
        self.assertEqual({r["method"] for r in run.results}, {"HEAD"})
        del o.seen[:]
        run = self.check_json("-X", "GET", urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(len(o.seen), 10)
        self.assertEqual(set(o.methods()), {"GET"})
        self.assertEqual({h["method"] for r in run.results for h in r["hops"]}, {"GET"})

    def test_get_again_when_head_gets_405_or_501(self):
        """issue 14: an origin that answers HEAD with 405 (or 501) is asked again with GET,
        and the result says GET."""
        def no_head(status):
            def route(h):
                if h.command == "HEAD":
                    return (status, [("Allow", "GET")], b"")
                return redirect(308, "/there")
            return route
        o = self.origin({"/p405": no_head(405), "/p501": no_head(501)}, default=ok_route())
        urls = self.write("u.txt", "%s\n%s\n" % (o.url("/p405"), o.url("/p501")))
        run = self.check_json(urls)
        self.assertEqual(run.rc, 0, run)
        for r in run.results:
            self.assertEqual(r["method"], "GET", r)
            self.assertEqual(r["final_url"], o.url("/there"))
            self.assertKinds(r, [])
        self.assertEqual(sorted((s.method, s.path) for s in o.seen),
                         [("GET", "/p405"), ("GET", "/p501"), ("GET", "/there"),
                          ("GET", "/there"), ("HEAD", "/p405"), ("HEAD", "/p501")])

    def test_x_post_is_refused(self):
        """issue 14, C4: -X POST (or PUT, DELETE) is a usage error; nothing is sent."""
        o = self.origin(default=ok_route())
        urls = self.write("u.txt", o.url("/a") + "\n")
        for m in ("POST", "PUT", "DELETE", "post"):
            run = self.check("-X", m, urls)
            self.assertEqual(run.rc, 2, run)
            self.assertIn("-X '%s'" % m, run.err)
        self.assertEqual(o.seen, [])


# ---- usage and bad input -------------------------------------------------------------------

class Usage(Base):
    def test_usage_errors_exit_2(self):
        """issue 14: exit 2 for an unknown option, a bad --format, --rate 0, no FILE, -X
        POST, a bad --fail-on, --concurrency 0, a bad --base."""
        urls = self.write("u.txt", "http://127.0.0.1:%d/\n" % closed_port())
        cases = [
            (["--bogus", urls], "unknown option '--bogus'"),
            (["--format", "xml", urls], "--format 'xml'"),
            (["--rate", "0", urls], "--rate"),
            ([], "no FILE"),
            (["-X", "POST", urls], "-X 'POST'"),
            (["--fail-on", "info", urls], "--fail-on 'info'"),
            (["--concurrency", "0", urls], "--concurrency"),
            (["--timeout", "soon", urls], "--timeout"),
            (["--base", "ftp://x.example", urls], "--base"),
            (["--resolve", "nonsense", urls], "--resolve"),
        ]
        for args, message in cases:
            run = self.check(*args)
            self.assertEqual(run.rc, 2, (args, run))
            self.assertIn(message, run.err, (args, run))
            self.assertEqual(run.out, "", (args, run))

    def test_a_missing_file_exits_2(self):
        """issue 14: a FILE that cannot be opened is reported and the run exits 2."""
        run = self.check(os.path.join(self.tmp(), "absent.txt"))
        self.assertEqual(run.rc, 2, run)
        self.assertIn("absent.txt: cannot open", run.err)

    def test_a_bad_line_is_reported_as_file_line_col_the_run_goes_on_and_exits_2(self):
        """issue 14: a bad input line is printed as FILE:LINE:COL: message; the other lines
        are still checked; exit 2 (even when every checked URL is fine)."""
        o = self.origin(default=ok_route())
        quoted = o.url('/q?a="1"')
        text = "%s\n/lonely\n%s\n%s\n" % (o.url("/one"), o.url("/two"), quoted)
        rules = self.write("rules.txt", text)
        run = self.check_json(rules)
        self.assertEqual(run.rc, 2, run)
        self.assertIn("%s:2:8: missing target" % rules, run.err)
        self.assertIn("%s:4:%d: not a URL to check" % (rules, quoted.index('"') + 1), run.err)
        self.assertEqual(sorted(r["line"] for r in run.results), [1, 3])
        self.assertEqual(run.summary["not_checked"]["bad_lines"], 2)
        bad_csv = self.write("bad.csv", "/a,/b,200\n")
        run = self.check("--base", o.url("").rstrip("/"), bad_csv)
        self.assertEqual(run.rc, 2, run)
        self.assertIn("%s:1:7: status '200' is not a redirect status" % bad_csv, run.err)

    def test_bad_input_format_names_its_option(self):
        """issue 14: a bad --input-format is a usage error whose message names the option
        as the user wrote it (it said '--format-in', an option check does not have)."""
        urls = self.write("u.txt", "http://127.0.0.1:%d/\n" % closed_port())
        run = self.check("--input-format", "yaml", urls)
        self.assertEqual(run.rc, 2, run)
        self.assertIn("--input-format 'yaml'", run.err, run)

    def test_a_large_concurrency_costs_nothing_for_a_short_list(self):
        """issue 14: --concurrency 10000 for one URL makes one connection handle, not
        10,000 (it made them all at the start: 105 MB for one URL)."""
        o = self.origin(default=ok_route())
        urls = self.write("u.txt", o.url("/one") + "\n")
        wrapper = ("import resource, subprocess, sys\n"
                   "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        p = subprocess.run([sys.executable, "-c", wrapper, DETOUR, "check", "-q",
                            "--concurrency", "10000", urls],
                           capture_output=True, text=True, timeout=60)
        limit = 400 if "asan" in DETOUR.lower() else 40
        self.assertLess(int(p.stdout.strip()) / 1024, limit, p.stderr)


# ---- inputs --------------------------------------------------------------------------------

class Inputs(WithServe):
    def test_stderr_counts_every_rule_for_any_host(self):
        """issue 14: without --base, stderr says how many rules for any host were not
        checked, and the count is the summary's not_checked.no_host: for a small file (one
        block; the message was missing) and for one of 70,000 rules (two blocks; the
        message said 66,924)."""
        for n in (3, 70000):
            path = self.write("rules%d.txt" % n, "".join("/p%d /q%d\n" % (i, i)
                                                         for i in range(n)))
            run = self.check_json(path)
            self.assertEqual(run.rc, 0, run)
            self.assertEqual(run.summary["not_checked"]["no_host"], n)
            self.assertIn("%s:1: %d rules for any host not checked" % (path, n), run.err)
            self.assertIn("--base", run.err)

    def test_a_byte_order_mark_starts_a_url_list(self):
        """issue 14: a URL list saved by a Windows tool starts with a UTF-8 byte order mark;
        its first URL is checked (it was a bad line), as CSV files already were."""
        o = self.origin(default=ok_route())
        urls = self.write("u.txt", "\ufeff" + o.url("/one") + "\n" + o.url("/two") + "\n")
        run = self.check_json(urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(sorted(r["line"] for r in run.results), [1, 2])

    def test_rule_file_exact_prefix_placeholder_regex_and_shadowed(self):
        """issue 14: a detour rule file: an exact rule is checked with its own path, a prefix,
        a placeholder pattern and a regex with a literal start with a sample; a rule another
        rule answers first is not checked and counted as shadowed."""
        L = self.L
        rules = self.write("rules.txt", "\n".join([
            "# the migration",
            "/good %s/good 308" % L,
            "/pre/* %s/pre/:splat 308" % L,
            "/u/:id %s/people/:id 308" % L,
            "~^/item/([a-z0-9]+)$ %s/items/$1 308" % L,
            "/pre/:x %s/never 308" % L,
            "",
        ]))
        run = self.check_json("--base", self.S, rules)
        self.assertEqual(run.rc, 0, run)
        by_line = {r["line"]: r for r in run.results}
        self.assertEqual(sorted(by_line), [2, 3, 4, 5], run)
        self.assertEqual(by_line[2]["url"], self.S + "/good")
        self.assertEqual(by_line[2]["expected_target"], L + "/good")
        for line, prefix in ((3, "/pre/"), (4, "/u/"), (5, "/item/")):
            r = by_line[line]
            self.assertTrue(r["url"].startswith(self.S + prefix), r)
            self.assertKinds(r, [], run)
            self.assertEqual(r["expected_status"], 308)
        tail = by_line[4]["url"][len(self.S + "/u/"):]
        self.assertEqual(by_line[4]["expected_target"], L + "/people/" + tail)
        self.assertEqual(run.summary["not_checked"]["shadowed"], 1)
        self.assertEqual(run.summary["checked"], 4)

    def test_csv_with_header_headerless_and_cloudflare(self):
        """issue 14: CSV with a header (source,target,status), without one, and Cloudflare's
        columns (source_url,target_url,status_code,...) with a host in the source, checked
        through --connect-to."""
        L, port = self.L, self.serve.port
        header = self.write("header.csv", "source,target,status\n/good,%s/good,308\n"
                                          "/s307,%s/x,307\n" % (L, L))
        bare = self.write("bare.csv", "/good,%s/good,308\n/wt,%s/right,308\n" % (L, L))
        cf = self.write("cf.csv",
                        "source_url,target_url,status_code,preserve_query_string,"
                        "include_subdomains,subpath_matching,preserve_path_suffix\n"
                        "old.example/good,%s/good,308,FALSE,FALSE,FALSE,FALSE\n"
                        "old.example/s307,%s/x,308,FALSE,FALSE,FALSE,FALSE\n" % (L, L))
        run = self.check_json("--base", self.S, "--connect-to",
                              "old.example:80:127.0.0.1:%d" % port,
                              header, bare, cf)
        self.assertEqual(run.rc, 1, run)  # the Cloudflare file's second row is wrong
        got = {(os.path.basename(r["file"]), r["line"]): r for r in run.results}
        self.assertEqual(sorted(got), [("bare.csv", 1), ("bare.csv", 2), ("cf.csv", 2),
                                       ("cf.csv", 3), ("header.csv", 2), ("header.csv", 3)])
        for key in (("header.csv", 2), ("header.csv", 3), ("bare.csv", 1), ("bare.csv", 2),
                    ("cf.csv", 2)):
            self.assertKinds(got[key], [], run)
        self.assertEqual(got[("header.csv", 3)]["expected_status"], 307)
        self.assertEqual(got[("cf.csv", 2)]["url"], "http://old.example/good")
        self.assertKinds(got[("cf.csv", 3)], ["wrong-status", "temporary"], run)

    def test_cloudflare_scheme_comes_from_base_and_https_without_it(self):
        """issue 14: a source naming a host but no scheme is checked over --base's scheme,
        https without --base."""
        cf = self.write("cf.csv", "source_url,target_url,status_code\n"
                                  "old.example/good,%s/good,308\n" % self.L)
        run = self.check_json("--base", "http://elsewhere.example", "--connect-to",
                              "old.example:80:127.0.0.1:%d" % self.serve.port, cf)
        self.assertEqual(self.one(run)["url"], "http://old.example/good")
        self.assertEqual(run.rc, 0, run)
        run = self.check_json("--connect-to", "old.example:443:127.0.0.1:%d"
                              % closed_port(), cf)
        r = self.one(run)
        self.assertEqual(r["url"], "https://old.example/good")
        self.assertKinds(r, ["error-connect"], run)

    def test_netlify_redirects(self):
        """issue 14: a Netlify _redirects file (by its name), its default status 301."""
        d = os.path.join(self.tmp(), "site")
        os.mkdir(d)
        path = os.path.join(d, "_redirects")
        with open(path, "w") as f:
            f.write("# netlify\n/good  %s/good  308\n/s308  %s/x\n" % (self.L, self.L))
        run = self.check_json("--base", self.S, path)
        by_line = {r["line"]: r for r in run.results}
        self.assertEqual(sorted(by_line), [2, 3], run)
        self.assertKinds(by_line[2], [], run)
        self.assertEqual(by_line[3]["expected_status"], 301)
        self.assertKinds(by_line[3], ["wrong-status"], run)

    def test_nginx_map_and_input_format_override(self):
        """issue 14: an nginx map file (by its name, 307 by default), and --input-format csv
        for a CSV file whose name says nothing."""
        nginx = self.write("moved.map", "map $uri $moved {\n    default \"\";\n"
                                        "    /s307 %s/x;\n    /s308 %s/x;\n}\n" % (self.L, self.L))
        run = self.check_json("--base", self.S, nginx)
        by_line = {r["line"]: r for r in run.results}
        self.assertEqual(sorted(by_line), [3, 4], run)
        self.assertKinds(by_line[3], [], run)
        self.assertEqual(by_line[4]["expected_status"], 307)
        self.assertKinds(by_line[4], ["wrong-status"], run)
        listing = self.write("list.txt", "/good,%s/good,308\n" % self.L)
        run = self.check_json("--base", self.S, "--input-format", "csv", listing)
        self.assertEqual(run.rc, 0, run)
        r = self.one(run)
        self.assertEqual((r["url"], r["expected_status"]), (self.S + "/good", 308))

    def test_plain_url_list_standard_input_and_several_files(self):
        """issue 14: a list of URLs (followed, no expectation), standard input as '-', and
        several files in one run, each result naming its file and line."""
        a = self.write("a.txt", "%s/good\r\n\n# a comment\n  %s/chain1 \n" % (self.S, self.S))
        b = self.write("b.txt", "%s/pre/x\n" % self.S)
        run = self.check_json(a, "-", b, input="%s/u/7\n" % self.S)
        self.assertEqual(run.rc, 0, run)
        got = {(r["file"], r["line"]): r for r in run.results}
        self.assertEqual(sorted(got), sorted([(a, 1), (a, 4), ("(stdin)", 1), (b, 1)]), run)
        for r in run.results:
            self.assertIsNone(r["expected_target"])
            self.assertIsNone(r["expected_status"])
        self.assertEqual(got[("(stdin)", 1)]["final_url"], self.L + "/people/7")
        self.assertKinds(got[(a, 4)], ["chain"], run)

    def test_rules_for_any_host_without_base_are_counted_as_no_host(self):
        """issue 14: host-less rules without --base are not checked: counted in
        not_checked.no_host; the URL lines still are checked. (What stderr says of them:
        pending_check.py.)"""
        rules = self.write("rules.txt", "/a /b\n/c /d 308\n%s/good\n/e/* /f\n" % self.S)
        run = self.check_json(rules)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual([r["line"] for r in run.results], [3])
        self.assertEqual(run.summary["not_checked"]["no_host"], 3)


# ---- reports -------------------------------------------------------------------------------

class Reports(WithServe):
    def mixed(self):
        """A file with one good URL, a chain (warning), a broken target, a wrong status and
        an unreachable host."""
        return self.write("mixed.txt", "\n".join([
            "%s/good" % self.S,
            "%s/chain1" % self.S,
            "%s/broken" % self.S,
            "/s307 %s/x 308" % self.L,
            "http://127.0.0.1:%d/x" % closed_port(),
            "",
        ]))

    def test_json(self):
        """issue 14: --format json parses back, with the fields check.md lists."""
        run = self.check_json("--base", self.S, self.mixed())
        self.assertEqual(run.rc, 1, run)
        d = run.json()
        self.assertEqual(set(d), {"results", "summary"})
        self.assertEqual(len(d["results"]), 5)
        fields = {"file", "line", "url", "method", "severity", "time_ms", "problems", "hops",
                  "expected_target", "expected_status", "status", "final_url", "error"}
        for r in d["results"]:
            self.assertTrue(fields <= set(r), r)
            for p in r["problems"]:
                self.assertEqual(set(p), {"kind", "severity", "message"})
            for h in r["hops"]:
                self.assertTrue({"method", "url", "status", "protocol", "hsts",
                                 "time_ms"} <= set(h), h)
        by_line = {r["line"]: r for r in d["results"]}
        self.assertEqual(by_line[1]["severity"], "ok")
        self.assertEqual(by_line[2]["severity"], "warning")
        self.assertEqual(by_line[3]["severity"], "error")
        self.assertEqual(by_line[1]["hops"][0]["protocol"], "HTTP/1.1")
        self.assertEqual(by_line[1]["hops"][0]["location"], self.L + "/good")
        self.assertEqual(by_line[1]["hops"][0]["next_url"], self.L + "/good")
        self.assertNotIn("next_url", by_line[1]["hops"][-1])
        self.assertKinds(by_line[5], ["error-connect"])
        self.assertIsNone(by_line[5]["status"])
        self.assertIsNone(by_line[5]["final_url"])
        self.assertIn("127.0.0.1", by_line[5]["error"])
        # the request that got no answer: status 0, no protocol
        self.assertEqual([(h["status"], h["protocol"]) for h in by_line[5]["hops"]], [(0, "")])
        s = d["summary"]
        self.assertEqual((s["checked"], s["ok"], s["errors"], s["warnings"]), (5, 1, 3, 1))
        self.assertEqual(s["problems"], {"chain": 1, "broken-target": 1, "wrong-status": 1,
                                         "temporary": 1, "error-connect": 1})
        self.assertEqual(s["not_checked"], {"shadowed": 0, "unsampled": 0, "no_host": 0,
                                            "bad_lines": 0})
        self.assertIsInstance(s["seconds"], (int, float))
        hosts = {h["host"]: h for h in s["slowest_hosts"]}
        self.assertIn("127.0.0.1", hosts)
        self.assertTrue({"host", "requests", "average_ms", "max_ms"} <= set(hosts["127.0.0.1"]))

    def test_csv(self):
        """issue 14: --format csv parses back with the csv module: the header, then one row
        per URL, CRLF line ends."""
        run = self.check("--format", "csv", "--base", self.S, self.mixed())
        self.assertEqual(run.rc, 1, run)
        self.assertTrue(run.out.endswith("\r\n"))
        rows = list(csv.reader(io.StringIO(run.out, newline="")))
        self.assertEqual(rows[0], ["file", "line", "url", "expected_target", "expected_status",
                                   "status", "final_url", "redirects", "first_status",
                                   "first_target", "severity", "problems", "message",
                                   "time_ms"])
        self.assertEqual(len(rows), 6)
        by_line = {int(r[1]): dict(zip(rows[0], r)) for r in rows[1:]}
        self.assertEqual(sorted(by_line), [1, 2, 3, 4, 5])
        chain = by_line[2]
        self.assertEqual((chain["redirects"], chain["first_status"], chain["severity"],
                          chain["problems"]), ("2", "308", "warning", "chain"))
        self.assertEqual(chain["final_url"], self.L + "/end")
        self.assertEqual(chain["first_target"], self.S + "/chain2")
        wrong = by_line[4]
        self.assertEqual(sorted(wrong["problems"].split(";")), ["temporary", "wrong-status"])
        self.assertEqual((wrong["expected_status"], wrong["status"], wrong["first_status"]),
                         ("308", "200", "307"))
        self.assertEqual(by_line[1]["problems"], "")
        self.assertEqual(by_line[5]["status"], "")
        self.assertEqual(by_line[5]["problems"], "error-connect")
        float(by_line[1]["time_ms"])

    def test_junit(self):
        """issue 14: --format junit parses back: the counts of <testsuite> match its test
        cases; a URL with problems at or above --fail-on has one <failure> (<error> when it
        could not be checked: only error-* kinds) whose type is its first such kind and whose
        text lists them all; problems below --fail-on go to <system-out>."""
        run = self.check("--format", "junit", "--base", self.S, self.mixed())
        self.assertEqual(run.rc, 1, run)
        root = ET.fromstring(run.out)
        self.assertEqual(root.tag, "testsuites")
        suites = root.findall("testsuite")
        self.assertEqual(len(suites), 1)
        suite = suites[0]
        cases = suite.findall("testcase")
        self.assertEqual(len(cases), 5)
        self.assertEqual(int(suite.get("tests")), len(cases))
        self.assertEqual(int(root.get("tests")), len(cases))
        failed = [c for c in cases if c.find("failure") is not None]
        errored = [c for c in cases if c.find("error") is not None]
        self.assertEqual(int(suite.get("failures")), len(failed))
        self.assertEqual(int(suite.get("errors")), len(errored))
        self.assertEqual((len(failed), len(errored)), (2, 1))
        for c in cases:
            self.assertLessEqual(len(c.findall("failure")) + len(c.findall("error")), 1, c)
        by_line = {int(c.get("classname").rsplit(":", 1)[1]): c for c in cases}
        self.assertEqual(by_line[1].findall("*"), [])
        self.assertEqual(by_line[2].findall("failure"), [])
        self.assertIn("warning chain", by_line[2].find("system-out").text)
        self.assertEqual(by_line[3].find("failure").get("type"), "broken-target")
        f = by_line[4].find("failure")
        self.assertEqual(f.get("type"), "wrong-status")
        self.assertIn("307", f.get("message"))
        self.assertIn("error wrong-status", f.text)
        self.assertNotIn("temporary", f.text)
        self.assertIn("warning temporary", by_line[4].find("system-out").text)
        self.assertEqual(by_line[5].find("error").get("type"), "error-connect")
        self.assertEqual(by_line[2].get("name"), self.S + "/chain1")
        self.assertTrue(by_line[2].get("classname").endswith("mixed.txt:2"))
        float(by_line[2].get("time"))
        # with --fail-on warning, the chain and the temporary redirect fail too
        run = self.check("--format", "junit", "--fail-on", "warning", "--base", self.S,
                         self.mixed())
        suite = ET.fromstring(run.out).find("testsuite")
        by_line = {int(c.get("classname").rsplit(":", 1)[1]): c
                   for c in suite.findall("testcase")}
        self.assertEqual(by_line[2].find("failure").get("type"), "chain")
        f = by_line[4].find("failure")
        self.assertEqual(f.get("type"), "wrong-status")
        self.assertIn("warning temporary", f.text)
        self.assertIsNone(by_line[4].find("system-out"))
        self.assertEqual(int(suite.get("failures")), 3)
        self.assertEqual(int(suite.get("errors")), 1)

    def test_escaping_in_junit_and_csv(self):
        """issue 14: a URL with '&' and ',' parses back from junit (XML escaped) and csv
        (RFC 4180 quoted)."""
        url = "%s/broken?a=1&b=2,3" % self.S
        urls = self.write("u.txt", url + "\n")
        root = ET.fromstring(self.check("--format", "junit", urls).out)
        case = root.find("testsuite").find("testcase")
        self.assertEqual(case.get("name"), url)
        self.assertEqual(case.find("failure").get("type"), "broken-target")
        self.assertIn("/nowhere?a=1&b=2,3", case.find("failure").get("message"))
        out = self.check("--format", "csv", urls).out
        self.assertIn('"%s"' % url, out)
        rows = list(csv.reader(io.StringIO(out, newline="")))
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[1][2], url)
        self.assertEqual(rows[1][11], "broken-target")

    def test_text_verbose_shows_every_url_and_its_hops(self):
        """issue 14: text: FILE:LINE: URL -> STATUS FINAL (severity, N hops, T ms) for URLs
        with problems, then the summary with the problems table; -v shows every URL and its
        hops."""
        mixed = self.mixed()
        run = self.check("--base", self.S, mixed)
        self.assertEqual(run.rc, 1, run)
        self.assertNotIn("%s:1:" % mixed, run.out)
        self.assertRegex(run.out, r"(?m)^%s:3: %s/broken -> 404 %s/nowhere \(error, 2 hops, "
                         r"[0-9.]+ ms\)$" % (mixed, self.S, self.S))
        self.assertIn("  error broken-target: ", run.out)
        self.assertRegex(run.out, r"(?m)^checked 5 URLs in [0-9.]+ s \([0-9]+/s\): 1 ok, 3 with "
                                  r"errors, 1 with warnings$")
        self.assertRegex(run.out, r"(?m)^problems:$")
        self.assertRegex(run.out, r"(?m)^  chain +warning +1$")
        self.assertRegex(run.out, r"(?m)^slowest hosts")
        run = self.check("-v", "--base", self.S, mixed)
        self.assertRegex(run.out, r"(?m)^%s:1: %s/good -> 200 %s/good \(ok, 2 hops, " % (
            mixed, self.S, self.L))
        self.assertRegex(run.out, r"(?m)^    308 HEAD %s/chain1 -> %s/chain2" % (self.S, self.S))
        self.assertRegex(run.out, r"(?m)^    200 HEAD %s/end" % self.L)

    def test_output_file(self):
        """issue 14: -o FILE writes the report there, nothing to stdout."""
        out = os.path.join(self.tmp(), "report.json")
        run = self.check("--format", "json", "-o", out, "--base", self.S, self.mixed())
        self.assertEqual(run.rc, 1, run)
        self.assertEqual(run.out, "")
        with open(out) as f:
            self.assertEqual(len(json.load(f)["results"]), 5)
        run = self.check("-o", os.path.join(self.tmp(), "no", "such", "dir"), self.mixed())
        self.assertEqual(run.rc, 2, run)


# ---- --resolve and --connect-to ------------------------------------------------------------

class Reach(WithServe):
    def test_resolve_and_connect_to_reach_a_server_dns_does_not_point_at(self):
        """issue 14: rules for old.example checked against a local detour serve reachable only
        through --resolve (the port kept) or --connect-to (old.example:80 to the server's
        port); without them, error-dns."""
        port = self.serve.port
        L = self.L
        body = "/good %s/good 308\n/wt %s/right 308\n" % (L, L)
        on_base = self.write("base.txt", body)
        run = self.check_json("--base", "http://old.example:%d" % port,
                              "--resolve", "old.example:%d:127.0.0.1" % port, on_base)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(sorted(r["url"] for r in run.results),
                         ["http://old.example:%d/good" % port, "http://old.example:%d/wt" % port])
        for r in run.results:
            self.assertKinds(r, [], run)
        named = self.write("named.txt", "http://old.example/good %s/good 308\n"
                                        "old.example/wt %s/right 308\n" % (L, L))
        run = self.check_json("--base", "http://x.example", "--connect-to",
                              "old.example:80:127.0.0.1:%d" % port, named)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(sorted(r["url"] for r in run.results),
                         ["http://old.example/good", "http://old.example/wt"])
        for r in run.results:
            self.assertKinds(r, [], run)
        # --resolve keeps port 80, where nothing listens for old.example
        run = self.check_json("--base", "http://x.example", "--resolve",
                              "old.example:80:127.0.0.1", "--connect-to",
                              "old.example:80:127.0.0.1:%d" % closed_port(), named)
        for r in run.results:
            self.assertKinds(r, ["error-connect"], run)
        run = self.check_json("--base", "http://old.example:%d" % port, on_base)
        self.assertEqual(run.rc, 1, run)
        for r in run.results:
            self.assertKinds(r, ["error-dns"], run)

    def test_https_through_connect_to_with_a_test_ca(self):
        """issue 14: https://old.example checked against detour serve over TLS (a TestPKI
        certificate for old.example, --hsts) through --connect-to and --cacert; its redirect
        leads to an https origin reached through --resolve."""
        landing = Origin(default=ok_route(headers=[HSTS]), cert=pki().secure)
        self.addCleanup(landing.close)
        target = landing.url("/landed", host="secure.example")
        srv = Server(rules="/good %s 308\n" % target, admin=None,
                     args=["--listen-tls", "127.0.0.1:0", "--cert", pki().old,
                           "--hsts", "max-age=300"])
        srv.start()
        self.addCleanup(srv.close)
        tls_port = srv.tls_addrs[0][1]
        rules = self.write("rules.txt", "https://old.example/good %s 308\n" % target)
        reach = ["--cacert", pki().ca, "--resolve", "secure.example:%d:127.0.0.1" % landing.port]
        run = self.check_json(*reach, "--connect-to", "old.example:443:127.0.0.1:%d" % tls_port,
                              rules)
        self.assertEqual(run.rc, 0, run)
        r = self.one(run)
        self.assertEqual(r["url"], "https://old.example/good")
        self.assertKinds(r, [], run)
        self.assertEqual([(h["status"], h["hsts"]) for h in r["hops"]], [(308, True),
                                                                           (200, True)])
        self.assertEqual(r["final_url"], target)
        self.assertEqual([s.path for s in landing.seen], ["/landed"])
        # HTTP/2 where the server offers it (detour serve's ALPN), HTTP/1.1 with --http1.1
        self.assertEqual([h["protocol"] for h in r["hops"]], ["HTTP/2", "HTTP/1.1"])
        run = self.check_json(*reach, "--http1.1", "--connect-to",
                              "old.example:443:127.0.0.1:%d" % tls_port, rules)
        self.assertEqual([h["protocol"] for h in self.one(run)["hops"]], ["HTTP/1.1"] * 2)
        run = self.check_json(*reach, rules)
        self.assertKinds(self.one(run), ["error-dns"], run)


    def test_http2_shares_one_connection_and_http1_keeps_alive(self):
        """issue 14: over HTTPS with HTTP/2 the requests to a host go as streams of one
        connection (detour serve's detour_connections_total); with --http1.1 each of the
        --concurrency requests at once has a connection of its own, kept alive."""
        srv = Server(rules="/c/:n /t/:n 308\n",
                     args=["--listen-tls", "127.0.0.1:0", "--cert", pki().old,
                           "--hsts", "max-age=300"])
        srv.start()
        self.addCleanup(srv.close)

        def connections():
            _, _, body = srv.api("GET", "/metrics", raw=True)
            return int(re.search(rb"(?m)^detour_connections_total (\d+)$", body).group(1))

        urls = self.write("u.txt", "".join("https://old.example/c/%d\n" % i for i in range(60)))
        reach = ["--format", "json", "--cacert", pki().ca, "--concurrency", "20",
                 "--connect-to", "old.example:443:127.0.0.1:%d" % srv.tls_addrs[0][1]]
        for extra, protocol, most in (([], "HTTP/2", 2), (["--http1.1"], "HTTP/1.1", 20)):
            before = connections()
            run = self.check(*reach, *extra, urls)
            self.assertEqual(len(run.results), 60, run)
            hops = [h for r in run.results for h in r["hops"]]
            self.assertEqual(len(hops), 120)
            self.assertEqual({h["protocol"] for h in hops}, {protocol})
            self.assertLessEqual(connections() - before, most, protocol)

    def test_http2_prior_knowledge_on_plain_http(self):
        """issue 14: --http2-prior-knowledge, as curl's: HTTP/2 on plain http from the first
        byte (detour serve answers h2c), every hop of every chain answered."""
        srv = Server(rules="/c/:n /t/:n 308\n")
        srv.start()
        self.addCleanup(srv.close)
        urls = self.write("u.txt", "".join(srv.url("/c/%d" % i) + "\n" for i in range(30)))
        run = self.check("--format", "json", "--http2-prior-knowledge", "--concurrency", "10",
                         urls)
        self.assertEqual(len(run.results), 30, run)
        self.assertEqual({h["protocol"] for r in run.results for h in r["hops"]}, {"HTTP/2"})
        # each chain's second request too (libcurl 7.88 failed it on a reused connection)
        self.assertEqual({tuple(h["status"] for h in r["hops"]) for r in run.results},
                         {(308, 404)}, run)


# ---- rate, concurrency, keep-alive ---------------------------------------------------------

class Pace(Base):
    def test_rate_per_host_is_measured_at_the_origin(self):
        """issue 14: --rate 10 --concurrency 8: 20 requests to one host reach the origin about
        100 ms apart (no two within 60 ms, 1.7 s or more from first to last)."""
        o = PacedOrigin()
        self.addCleanup(o.close)
        urls = self.write("u.txt", "".join(o.url("/r/%d" % i) + "\n" for i in range(20)))
        run = self.check_json("--rate", "10", "--concurrency", "8", urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(len(run.results), 20)
        at = o.arrivals()
        self.assertEqual(len(at), 20)
        gaps = [round(b - a, 3) for a, b in zip(at, at[1:])]
        self.assertGreaterEqual(at[-1] - at[0], 1.7, gaps)
        self.assertGreaterEqual(min(gaps), 0.06, gaps)

    def test_two_hosts_are_limited_separately(self):
        """issue 14: the rate is per host: 127.0.0.1 and localhost (the same origin) at
        --rate 10 go side by side, in about half the time one shared limit would take."""
        o = PacedOrigin()
        self.addCleanup(o.close)
        n = 10
        local = "http://localhost:%d" % o.port
        text = "".join("%s\n%s/b/%d\n" % (o.url("/a/%d" % i), local, i) for i in range(n))
        urls = self.write("u.txt", text)
        run = self.check_json("--rate", "10", "--concurrency", "8", "--resolve",
                              "localhost:%d:127.0.0.1" % o.port, urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(len(run.results), 2 * n)
        for host in ("127.0.0.1:", "localhost:"):
            at = o.arrivals(host)
            self.assertEqual(len(at), n, o.seen)
            gaps = [round(b - a, 3) for a, b in zip(at, at[1:])]
            self.assertGreaterEqual(min(gaps), 0.06, (host, gaps))
            self.assertGreaterEqual(at[-1] - at[0], 0.8, (host, gaps))
        at = o.arrivals()
        # one limit for both: 19 intervals, 1.9 s; one each: 9 intervals, 0.9 s
        self.assertLess(at[-1] - at[0], 1.5, "the hosts' requests did not go side by side")

    def test_keep_alive_reuses_connections(self):
        """issue 14: HTTP/1.1 keep-alive: 100 URLs on one origin with --concurrency 4 open
        far fewer connections than requests."""
        o = self.origin(default=ok_route())
        urls = self.write("u.txt", "".join(o.url("/k/%d" % i) + "\n" for i in range(100)))
        run = self.check_json("--concurrency", "4", urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(len(o.seen), 100)
        self.assertLessEqual(o.connections, 10, "connections: %d" % o.connections)
        self.assertEqual(len({s.conn for s in o.seen}), o.connections)


# ---- a million lines in bounded memory -----------------------------------------------------

RSS_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


class Stream(WithServe):
    def test_a_million_lines_stream_in_bounded_memory(self):
        """issue 14: a 1,000,000-line rule file (any-host rules without --base: read,
        sampled, counted as no_host, never sent) with 500 URL lines spread through it that
        are checked against detour serve: all 500 reported, no_host counts every rule, and
        the peak RSS stays under 100 MB."""
        rules, urls = 1000000, 500
        path = os.path.join(self.tmp(), "big.txt")
        every = rules // urls
        with open(path, "w") as f:
            chunk = []
            for i in range(rules):
                chunk.append("/p%d /q%d\n" % (i, i))
                if i % every == every // 2:
                    chunk.append("%s/good\n" % self.S)
                if len(chunk) >= 10000:
                    f.write("".join(chunk))
                    chunk = []
            f.write("".join(chunk))
        report = os.path.join(self.tmp(), "report.json")
        start = time.monotonic()
        p = subprocess.run([sys.executable, "-c", RSS_WRAPPER, DETOUR, "check", "--format",
                            "json", "-o", report, path], capture_output=True, timeout=180,
                           start_new_session=True)
        seconds = time.monotonic() - start
        rc, maxrss_kb = (int(x) for x in p.stdout.split())
        with open(report) as f:
            d = json.load(f)
        self.assertEqual(rc, 0, (p, d["summary"]))
        self.assertEqual(len(d["results"]), urls)
        self.assertEqual({r["final_url"] for r in d["results"]}, {self.L + "/good"})
        self.assertEqual(d["summary"]["checked"], urls)
        self.assertEqual(d["summary"]["not_checked"]["no_host"], rules)
        lines = sorted(r["line"] for r in d["results"])
        self.assertEqual(len(set(lines)), urls)
        self.assertGreater(lines[-1], 999000)
        # ASan's shadow memory and quarantine are not detour's: a looser bound there
        limit_mb = 400 if SANITIZED else 100
        sys.stderr.write("\n[1,000,000 lines: %.1f s, peak RSS %.1f MB] " %
                         (seconds, maxrss_kb / 1024))
        self.assertLess(maxrss_kb / 1024, limit_mb)


# ---- the progress line ---------------------------------------------------------------------

class Progress(WithServe):
    def run_on_pty(self, *args):
        master, slave = os.openpty()
        p = subprocess.Popen([DETOUR, "check"] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
        os.close(slave)
        tty = b""
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: the other side is closed
                        break
                    if not data:
                        break
                    tty += data
                elif p.poll() is not None:
                    break
            out = p.stdout.read()
            rc = p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            os.close(master)
        return rc, out.decode(), tty.decode("utf-8", "replace")

    def test_progress_line_on_a_terminal_and_none_without(self):
        """issue 14: with stderr on a terminal a live progress line ("N checked, R/s"); with
        json on stdout the summary goes to the terminal too; -q and a pipe show none."""
        urls = self.write("u.txt", "".join("%s/good\n" % self.S for _ in range(20)))
        rc, out, tty = self.run_on_pty("--format", "json", urls)
        self.assertEqual(rc, 0, tty)
        self.assertRegex(tty, r"\d+(/~\d+)? checked, \d+/s", tty)
        self.assertIn("\r", tty)
        self.assertRegex(tty, r"checked 20 URLs in ")
        self.assertEqual(len(json.loads(out)["results"]), 20)
        rc, out, tty = self.run_on_pty("-q", "--format", "json", urls)
        self.assertEqual(rc, 0, tty)
        self.assertNotRegex(tty, r"checked, \d+/s")
        run = self.check("--format", "json", urls)
        self.assertEqual(run.rc, 0, run)
        self.assertEqual(run.err, "")


if __name__ == "__main__":
    unittest.main()
