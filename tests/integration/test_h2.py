"""HTTP/2 (issue 11, RFC 9113): by ALPN over TLS and by prior knowledge on plain listeners,
with curl, nghttp and h2load; every method redirected (S6), HEAD without DATA (S3), request
content drained; and the known attacks, written as frames here (rapid reset, CONTINUATION
flood, HPACK bomb, SETTINGS and PING floods, too many streams): the attacker's connection
ends with the right GOAWAY or RST_STREAM, and the server goes on serving."""
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import unittest

from harness import Server, test_pki

CURL = shutil.which("curl")
# nghttp and h2load run on libev, whose timers hang under libfaketime (make test-clock):
# there they are skipped; what they check does not depend on the date.
LIBEV_OK = "FAKETIME" not in os.environ
NGHTTP = LIBEV_OK and shutil.which("nghttp")
H2LOAD = LIBEV_OK and shutil.which("h2load")

RULES = """\
/old/*      /new/:splat
/perm       /moved        308
/see        /other        303
"""

# frame types and flags
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = \
    0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0, 1, 7, 11
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name, value, index=False):
    """A literal field, new name, no Huffman (RFC 7541 6.2); index: add it to the table."""
    name, value = name.encode(), value.encode()
    return bytes([0x40 if index else 0x00]) + hpack_int(len(name), 7) + name + \
        hpack_int(len(value), 7) + value


def request_block(method="GET", path="/old/x", authority="a.example", extra=()):
    block = literal(":method", method) + literal(":scheme", "http") + \
        literal(":path", path) + literal(":authority", authority)
    for n, v in extra:
        block += literal(n, v)
    return block


class Conn:
    """A raw HTTP/2 client connection (prior knowledge) that reads frames."""

    def __init__(self, srv, settings=True):
        self.s = socket.create_connection(srv.addrs[0], timeout=5)  # the plain listener
        self.buf = b""
        self.s.sendall(PREFACE + (frame(SETTINGS, 0, 0) if settings else b""))

    def send(self, data):
        self.s.sendall(data)

    def frames(self, until=None, timeout=5):
        """Reads frames until until(ftype, flags, stream, payload) is true or the connection
        ends; returns them all."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                got.append(f)
                if until and until(*f):
                    return got
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return got
            if not chunk:
                return got
            self.buf += chunk

    def goaway(self, timeout=5):
        """The error code of the GOAWAY the server sends, or None."""
        for f in self.frames(lambda t, *_: t == GOAWAY, timeout):
            if f[0] == GOAWAY:
                return int.from_bytes(f[3][4:8], "big")
        return None

    def close(self):
        self.s.close()


class H2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(RULES, workers=1, tls=True,
                         args=["--max-body", "64k", "--hsts", "max-age=600"]).start()
        cls.pki = test_pki()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def plain(self, path="/"):
        return "http://%s:%d%s" % (self.srv.addrs[0][0], self.srv.addrs[0][1], path)

    def curl(self, *args):
        p = subprocess.run([CURL, "-s", "--cacert", self.pki.ca, "--resolve",
                            "localhost:%d:127.0.0.1" % self.srv.port] + list(args),
                           capture_output=True, timeout=20)
        return p.stdout.decode("utf-8", "replace")

    def alive(self):
        """The server still answers, over HTTP/1.1 and HTTP/2."""
        out = self.curl("-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2-prior-knowledge", self.plain("/old/alive"))
        self.assertEqual(out, "307 2")
        out = self.curl("-o", "/dev/null", "-w", "%{http_code}", self.plain("/old/alive"))
        self.assertEqual(out, "307")

    @unittest.skipUnless(CURL, "curl needed")
    def test_alpn_h2_over_tls(self):
        """ALPN picks h2; the answer is the HTTP/1.1 one's status, fields and content, with
        HSTS (S9) and without Connection."""
        out = self.curl("-i", "--http2", self.srv.url("/old/a?b=1"))
        self.assertTrue(out.startswith("HTTP/2 307 \r\n"), out)
        self.assertIn("\r\nlocation: /new/a?b=1\r\n", out)
        self.assertIn("\r\nstrict-transport-security: max-age=600\r\n", out)
        self.assertNotIn("connection:", out.lower())
        self.assertIn("Repeat your GET request there", out)
        h1 = self.curl("-i", "--http1.1", self.srv.url("/old/a?b=1"))
        self.assertEqual(out.split("\r\n\r\n", 1)[1], h1.split("\r\n\r\n", 1)[1])

    @unittest.skipUnless(CURL, "curl needed")
    def test_same_answers_as_http11(self):
        """S1-S8 over HTTP/2: for every rule of test_serve (exact, prefix with :splat, 301,
        302, 303, 307, 308, cache=, query=drop, host rules, 404) and several methods, the
        HTTP/2 answer has the status, fields and content of the HTTP/1.1 one over TLS."""
        import test_serve
        cases = [("GET", "/old/url/x?a=1", None), ("POST", "/old/url/y", "b=2"),
                 ("HEAD", "/docs/a/b", None), ("PUT", "/maintenance", "x"),
                 ("POST", "/contact/submit", "m=1"), ("GET", "/moved", None),
                 ("DELETE", "/found", None), ("GET", "/campaign?utm=1", None),
                 ("GET", "/esc", None), ("GET", "/nothing/here", None)]
        with Server(test_serve.RULES, tls=True, args=["--hsts", "max-age=60"]) as srv:
            for method, path, body in cases:
                answers = []
                for proto in ("--http1.1", "--http2"):
                    args = [CURL, "-s", "-i", proto, "--cacert", self.pki.ca, "-X", method]
                    if method == "HEAD":
                        args = [CURL, "-s", "-I", proto, "--cacert", self.pki.ca]
                    if body:
                        args += ["-d", body]
                    out = subprocess.run(args + [srv.url(path)], capture_output=True,
                                         timeout=10).stdout.decode("utf-8", "replace")
                    head, _, content = out.partition("\r\n\r\n")
                    lines = head.split("\r\n")
                    status = lines[0].split()[1]
                    fields = sorted((n.strip().lower(), v.strip()) for n, v in
                                    (l.split(":", 1) for l in lines[1:])
                                    if n.strip().lower() not in ("date", "connection"))
                    answers.append((status, fields, content))
                self.assertEqual(answers[0], answers[1], (method, path))
                self.assertIn(("strict-transport-security", "max-age=60"), answers[1][1])

    @unittest.skipUnless(CURL, "curl needed")
    def test_prior_knowledge_on_plain(self):
        """A plain listener takes the HTTP/2 preface (no Upgrade needed); no HSTS there."""
        out = self.curl("-i", "--http2-prior-knowledge", self.plain("/perm"))
        self.assertTrue(out.startswith("HTTP/2 308 \r\n"), out)
        self.assertIn("\r\nlocation: /moved\r\n", out)
        self.assertNotIn("strict-transport-security", out)

    @unittest.skipUnless(CURL, "curl needed")
    def test_every_method_and_body(self):
        """S6 over HTTP/2: every method is redirected, with a body too; the 307 note asks for
        the same body."""
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"):
            out = self.curl("-i", "--http2", "-X", m, "-d", "x=1", self.srv.url("/old/m"))
            self.assertTrue(out.startswith("HTTP/2 307"), (m, out))
            self.assertIn("Repeat your %s request there, with the same body" % m, out)
        out = self.curl("-i", "--http2", "-X", "POST", "-d", "x=1", self.srv.url("/see"))
        self.assertTrue(out.startswith("HTTP/2 303"), out)

    @unittest.skipUnless(NGHTTP, "nghttp needed")
    def test_head_has_no_data(self):
        """S3 over HTTP/2: HEAD gets GET's fields, content-length included, and no DATA."""
        p = subprocess.run([NGHTTP, "-nv", "-H", ":method: HEAD", self.plain("/old/h")],
                           capture_output=True, timeout=10)
        out = p.stdout.decode()
        self.assertRegex(out, r"recv \(stream_id=\d+\) :status: 307")
        self.assertRegex(out, r"recv \(stream_id=\d+\) content-length: \d+")
        self.assertNotIn("recv DATA frame", out)
        self.assertRegex(out, r"recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>")

    @unittest.skipUnless(NGHTTP, "nghttp needed")
    def test_settings(self):
        """The server's SETTINGS: 100 streams at once, the header list limit, no push, no
        RFC 7540 priorities (RFC 9218)."""
        p = subprocess.run([NGHTTP, "-nv", self.plain("/old/s")], capture_output=True,
                           timeout=10)
        out = p.stdout.decode()
        self.assertIn("[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]", out)
        self.assertIn("[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):32768]", out)
        self.assertIn("[SETTINGS_ENABLE_PUSH(0x02):0]", out)
        self.assertIn("[SETTINGS_NO_RFC7540_PRIORITIES(0x09):1]", out)

    @unittest.skipUnless(H2LOAD, "h2load needed")
    def test_h2load_many_streams(self):
        """2000 requests over 4 connections of 16 streams each: every one a 3xx."""
        p = subprocess.run([H2LOAD, "-n", "2000", "-c", "4", "-m", "16", self.plain("/old/load")],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertIn("2000 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 0 2xx, 2000 3xx, 0 4xx, 0 5xx", out)

    def test_large_body_drained_then_reset(self):
        """Content is drained by flow control; past --max-body (64k) the answered stream gets
        RST_STREAM(NO_ERROR) (RFC 9113 8.1) and the connection goes on."""
        c = Conn(self.srv)
        c.send(frame(HEADERS, END_HEADERS, 1, request_block("POST")))
        got = c.frames(lambda t, fl, sid, p: t == HEADERS and sid == 1)
        self.assertTrue(any(f[0] == HEADERS and f[2] == 1 for f in got))
        chunk = b"x" * 16000
        for _ in range(3):
            c.send(frame(DATA, 0, 1, chunk))
        # the window is given back as content arrives
        got = c.frames(lambda t, *_: t == WINDOW_UPDATE, timeout=3)
        self.assertTrue(any(f[0] == WINDOW_UPDATE for f in got))
        for _ in range(4):
            c.send(frame(DATA, 0, 1, chunk))
        got = c.frames(lambda t, fl, sid, p: t == RST_STREAM and sid == 1, timeout=3)
        rst = [f for f in got if f[0] == RST_STREAM and f[2] == 1]
        self.assertTrue(rst, got)
        self.assertEqual(int.from_bytes(rst[0][3], "big"), NO_ERROR)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block()))
        got = c.frames(lambda t, fl, sid, p: t == DATA and sid == 3 and fl & END_STREAM)
        self.assertTrue(any(f[0] == HEADERS and f[2] == 3 for f in got))
        c.close()

    def test_preface_in_pieces(self):
        """The preface split over several packets is still HTTP/2."""
        s = socket.create_connection(self.srv.addrs[0], timeout=5)
        for piece in (PREFACE[:3], PREFACE[3:10], PREFACE[10:]):
            s.sendall(piece)
            time.sleep(0.05)
        s.sendall(frame(SETTINGS, 0, 0) +
                  frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block()))
        data = b""
        while b"/new/x" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertIn(b"/new/x", data)
        s.close()

    def test_bad_requests(self):
        """A request nghttp2 refuses (no :path) ends its stream; a bad :authority gets 400;
        CONNECT is refused; the connection goes on."""
        c = Conn(self.srv)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     literal(":method", "GET") + literal(":scheme", "http")))
        got = c.frames(lambda t, fl, sid, p: t == RST_STREAM and sid == 1)
        self.assertTrue(any(f[0] == RST_STREAM and f[2] == 1 for f in got), got)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3,
                     request_block(authority="a.example:port")))
        got = c.frames(lambda t, fl, sid, p: t == HEADERS and sid == 3)
        hdr = [f for f in got if f[0] == HEADERS and f[2] == 3]
        self.assertTrue(hdr, got)
        self.assertEqual(hdr[0][3][:1], b"\x8c")  # :status 400, indexed (RFC 7541 table: 12)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 5,
                     literal(":method", "CONNECT") + literal(":authority", "a.example:443")))
        got = c.frames(lambda t, fl, sid, p: t == RST_STREAM and sid == 5)
        self.assertTrue(any(f[0] == RST_STREAM and f[2] == 5 for f in got), got)
        c.close()
        self.alive()

    def test_rapid_reset(self):
        """CVE-2023-44487: streams opened and reset at once, thousands: GOAWAY
        ENHANCE_YOUR_CALM; the server goes on."""
        c = Conn(self.srv)
        burst = b""
        for i in range(3000):
            sid = 1 + 2 * i
            burst += frame(HEADERS, END_HEADERS, sid, request_block()) + \
                frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
        try:
            c.send(burst)
        except OSError:
            pass
        self.assertEqual(c.goaway(), ENHANCE_YOUR_CALM)
        c.close()
        self.alive()

    def test_continuation_flood(self):
        """CVE-2024-27316: a header block that never ends, CONTINUATION after CONTINUATION:
        the stream or the connection ends before the block outgrows the header limit."""
        c = Conn(self.srv)
        data = frame(HEADERS, 0, 1, request_block())
        for i in range(2000):
            data += frame(CONTINUATION, 0, 1, literal("x-filler-%d" % i, "y" * 100))
        try:
            c.send(data)
        except OSError:
            pass
        self.assertEqual(c.goaway(), ENHANCE_YOUR_CALM)
        c.close()
        self.alive()

    def test_hpack_bomb(self):
        """A 4000-byte field put in the dynamic table, then referred to a thousand times: the
        decoded block counts against --max-header-size, so the answer is 431, as over
        HTTP/1.1, and nothing of it is kept."""
        c = Conn(self.srv)
        block = request_block() + literal("x-bomb", "b" * 4000, index=True) + \
            bytes([0x80 | 62]) * 1000
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        got = c.frames(lambda t, fl, sid, p: t == HEADERS and sid == 1)
        hdr = [f for f in got if f[0] == HEADERS and f[2] == 1]
        self.assertTrue(hdr, got)
        self.assertIn(b"431", hdr[0][3])  # :status, a literal (not in the static table)
        c.close()
        self.alive()

    def test_limits_as_http11(self):
        """HTTP/1.1's limits with its statuses: a :path over --max-request-line (8k) gets 414,
        more than --max-header-fields (100) fields get 431; the connection goes on."""
        c = Conn(self.srv)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(path="/" + "p" * 9000)))
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3,
                     request_block(extra=[("x-f%d" % i, "v") for i in range(120)])))
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, request_block()))
        got = c.frames(lambda t, fl, sid, p: t == DATA and sid == 5 and fl & END_STREAM)
        status = {f[2]: f[3] for f in got if f[0] == HEADERS}
        self.assertIn(b"414", status.get(1, b""), got)
        self.assertIn(b"431", status.get(3, b""), got)
        self.assertIn(b"307", status.get(5, b""), got)
        c.close()

    def test_settings_and_ping_floods(self):
        """SETTINGS and PING frames by the thousand: GOAWAY, connection closed."""
        for flood in (frame(SETTINGS, 0, 0), frame(PING, 0, 0, b"12345678")):
            c = Conn(self.srv)
            try:
                c.send(flood * 5000)
            except OSError:
                pass
            code = c.goaway()
            self.assertIn(code, (ENHANCE_YOUR_CALM, PROTOCOL_ERROR), flood[:4])
            c.close()
        self.alive()

    def test_too_many_streams(self):
        """More than 100 streams open at once: the extra ones are refused
        (REFUSED_STREAM)."""
        c = Conn(self.srv)
        data = b""
        for i in range(120):  # no END_STREAM: each stays open on the client's side
            data += frame(HEADERS, END_HEADERS, 1 + 2 * i, request_block("POST"))
        c.send(data)
        got = c.frames(lambda t, fl, sid, p: t == RST_STREAM and
                       int.from_bytes(p, "big") == REFUSED_STREAM)
        refused = [f for f in got if f[0] == RST_STREAM and
                   int.from_bytes(f[3], "big") == REFUSED_STREAM]
        self.assertTrue(refused, [f[:3] for f in got][-5:])
        c.close()
        self.alive()

    def test_detour_get_speaks_h2(self):
        """detour get: HTTP/2 over TLS by default and with --http2, HTTP/1.1 with --http1.1,
        prior knowledge on plain http; the chain and --json name each hop's protocol; a
        POST is followed with its body over HTTP/2 too (C1)."""
        from harness import DETOUR
        base = ["--cacert", self.pki.ca, "--json"]
        url = "https://localhost:%d/old/a" % self.srv.port

        def run(*args):
            return subprocess.run([DETOUR, "get"] + list(args), capture_output=True, timeout=20)

        for flags, proto in (([], "HTTP/2"), (["--http2"], "HTTP/2"),
                             (["--http1.1"], "HTTP/1.1")):
            p = run(*(base + flags + [url]))
            doc = json.loads(p.stdout)
            self.assertEqual(doc["hops"][0]["protocol"], proto, (flags, p.stderr))
            self.assertEqual(doc["hops"][0]["status"], 307)
        p = run("--http2-prior-knowledge", "-y", "-d", "x=1", self.plain("/old/a"))
        self.assertIn(b"307 POST %s -> %s (method and body kept) [HTTP/2]"
                      % (self.plain("/old/a").encode(), self.plain("/new/a").encode()),
                      p.stderr)
        # the second hop is answered too: libcurl 7.88 (Debian 12) failed a second request
        # on a reused prior-knowledge connection ("Error in the HTTP2 framing layer")
        self.assertIn(b"404 POST %s (final) [HTTP/2]" % self.plain("/new/a").encode(),
                      p.stderr)
        self.assertEqual(p.returncode, 4, p.stderr)
        p = run(self.plain("/old/a"))
        self.assertNotIn(b"[HTTP/", p.stderr)

    @unittest.skipUnless(CURL, "curl needed")
    def test_live_changes_hits_and_access_log(self):
        """Over HTTP/2 and TLS as over HTTP/1.1: a rule added through the admin API answers
        at once, its hits are counted, and the access log writes HTTP/2.0."""
        log = os.path.join(self.srv.tmp.name, "access.log")
        with Server("/a /b\n", tls=True, args=["--access-log", log]) as srv:
            st, _, r = srv.api("POST", "/api/rules", {"source": "/live", "target": "/there"})
            self.assertEqual(st, 201, r)
            out = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                  "--http2", "--cacert", self.pki.ca, srv.url("/live")],
                                 capture_output=True, timeout=10).stdout.decode()
            self.assertEqual(out, "307 %s" % srv.url("/there"))
            plain = "http://%s:%d/live" % srv.addrs[0]
            for _ in range(2):
                subprocess.run([CURL, "-s", "-o", "/dev/null", "--http2-prior-knowledge", plain],
                               timeout=10)
            self.assertEqual(srv.api("GET", "/api/rules/%d" % r["id"])[2]["hits"], 3)
            srv.stop()
            with open(log, encoding="utf-8") as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 3, lines)
            for line in lines:
                self.assertIn('"GET /live HTTP/2.0" 307 ', line)

    def test_goaway_on_sigterm(self):
        """SIGTERM: an open HTTP/2 connection gets GOAWAY(NO_ERROR) after its answers, and the
        server exits 0."""
        with Server(RULES) as srv:
            c = Conn(srv)
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block()))
            got = c.frames(lambda t, fl, sid, p: t == DATA and fl & END_STREAM)
            self.assertTrue(any(f[0] == HEADERS and f[2] == 1 for f in got))
            srv.proc.send_signal(15)
            self.assertEqual(c.goaway(), NO_ERROR)
            c.close()
            self.assertEqual(srv.proc.wait(10), 0)

    def test_metrics(self):
        st, _, body = self.srv.api("GET", "/metrics", raw=True)
        self.alive()
        st, _, body = self.srv.api("GET", "/metrics", raw=True)
        text = body.decode()
        self.assertRegex(text, r'detour_requests_by_protocol_total\{protocol="h2"\} [1-9]')


if __name__ == "__main__":
    unittest.main()
