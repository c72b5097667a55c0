"""How `detour serve` handles bad and edge-case input: malformed framing, limits, timeouts,
odd request targets, request bodies (S6) and protocols that are not HTTP at all.

Every error test checks the whole contract of an error answer: the status with its
standard reason phrase, a short text/html page, `Connection: close`, the connection then
closed with no further bytes, and a NEW connection still getting a normal 307 afterwards.

Run: DETOUR_BIN=build/detour python3 -m unittest -v test_bad_input
"""
import random
import select
import socket
import threading
import time
import unittest

from harness import Reader, Server, exchange, request

RULES = """\
/old/*              /new
/echo/*             /got/:splat
shop.example.com/*  /shop
"""

REASONS = {
    307: "Temporary Redirect",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


def wait_eof(sock, timeout=3):
    """Waits for the peer to end the connection. Returns (how, extra, seconds) where how
    is "eof", "reset" or "timeout" and extra is any bytes that arrived meanwhile."""
    start = time.monotonic()
    deadline = start + timeout
    extra = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", extra, time.monotonic() - start
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return "timeout", extra, time.monotonic() - start
        except ConnectionResetError:
            return "reset", extra, time.monotonic() - start
        if not chunk:
            return "eof", extra, time.monotonic() - start
        extra += chunk


def line_of(length, path_prefix="/old/", version="HTTP/1.1", method="GET"):
    """A request line of exactly length bytes (CRLF not counted)."""
    head = ("%s %s" % (method, path_prefix)).encode()
    tail = (" " + version).encode()
    line = head + b"a" * (length - len(head) - len(tail)) + tail
    assert len(line) == length
    return line


def header_section_of(length):
    """Header section bytes (from after the request line's CRLF up to and including the
    empty line's CRLF) of exactly length bytes, with a Host field."""
    base = b"Host: example.com\r\n"
    name = b"X-Fill: "
    fill = length - len(base) - len(name) - 4
    section = base + name + b"f" * fill + b"\r\n" + b"\r\n"
    assert len(section) == length
    return section


class DetourTestCase(unittest.TestCase):
    """Starts one server per class with RULES and the class's ARGS."""

    ARGS = []

    @classmethod
    def setUpClass(cls):
        cls.server = Server(rules=RULES, args=cls.ARGS)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    # ---- helpers -------------------------------------------------------------------

    def assert_still_serving(self):
        """The server keeps serving others: a NEW connection gets a normal 307."""
        self.assertIsNone(self.server.proc.poll(), "detour exited:\n" + "\n".join(self.server.log))
        (resp,), reader = exchange(self.server, request("GET", "/old/after-error"))
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/new")
        reader.sock.close()

    def assert_error_response(self, resp, status):
        self.assertEqual(resp.status, status, resp.raw[:300])
        self.assertEqual(resp.reason, REASONS[status])
        self.assertEqual(resp.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(resp.header("Connection"), "close")
        self.assertIsNone(resp.header("Location"))
        self.assertIsNotNone(resp.header("Content-Length"))
        self.assertIn(("<h1>%d %s</h1>" % (status, REASONS[status])).encode(), resp.body)

    def assert_closed(self, reader, timeout=3, allow_reset=True):
        """The server ends the connection with no further bytes after what was read."""
        how, extra, _ = wait_eof(reader.sock, timeout)
        extra = reader.buf + extra
        self.assertEqual(extra, b"", "bytes after the last response")
        self.assertIn(how, ("eof", "reset") if allow_reset else ("eof",),
                      "connection not closed within %ss" % timeout)

    def assert_open(self, reader):
        """Nothing more arrives, and the connection still answers a request."""
        how, extra, _ = wait_eof(reader.sock, 0.3)
        self.assertEqual((how, reader.buf + extra), ("timeout", b""),
                         "connection not idle and open")
        reader.sock.sendall(request("GET", "/echo/probe"))
        resp = reader.response()
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/got/probe")

    def assert_error(self, raw, status, prompt=None):
        """Sends raw on a new connection: expects the error page with status, then the
        connection closed, then a new connection still served. With prompt, the answer
        must come within that many seconds."""
        sock = self.server.connect()
        try:
            start = time.monotonic()
            sock.sendall(raw)
            if prompt is not None:
                sock.settimeout(prompt)
            reader = Reader(sock)
            resp = reader.response()
            elapsed = time.monotonic() - start
            self.assert_error_response(resp, status)
            if prompt is not None:
                self.assertLess(elapsed, prompt)
            self.assert_closed(reader)
        finally:
            sock.close()
        self.assert_still_serving()
        return resp


class ErrorsDefaultLimits(DetourTestCase):
    """Errors with the default limits (8k request line, 32k header, 100 fields)."""

    # ---- 1, 2: conflicting framing ----------------------------------------------

    def test_error_answer_to_head_has_no_content(self):
        """RFC 9110 9.3.2: an error answer to HEAD carries headers only, no page."""
        sock = self.server.connect()
        try:
            sock.sendall(b"HEAD /old/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            reader = Reader(sock)
            resp = reader.response(head=True)
            self.assertEqual(resp.status, 400)
            self.assertEqual(resp.header("Connection"), "close")
            self.assertGreater(int(resp.header("Content-Length")), 0)
            self.assert_closed(reader)  # and no page bytes after the head
        finally:
            sock.close()
        self.assert_still_serving()

    def test_content_length_and_chunked_400(self):
        """Content-Length and Transfer-Encoding: chunked together: 400, close (RFC 9112 6.1)."""
        self.assert_error(request("POST", "/old/x", headers=[
            "Content-Length: 5", "Transfer-Encoding: chunked"]) + b"5\r\nhello\r\n0\r\n\r\n", 400)
        self.assert_error(request("POST", "/old/x", headers=[
            "Transfer-Encoding: chunked", "Content-Length: 5"]) + b"5\r\nhello\r\n0\r\n\r\n", 400)

    def test_two_different_content_lengths_400(self):
        """Two Content-Length fields with different values: 400, close."""
        self.assert_error(request("POST", "/old/x", headers=[
            "Content-Length: 5", "Content-Length: 6"]) + b"hello!", 400)

    def test_two_identical_content_lengths_400(self):
        """Two identical Content-Length fields: refused with 400 (the server's documented
        choice; RFC 9110 8.6 allows accepting them too)."""
        self.assert_error(request("POST", "/old/x", headers=[
            "Content-Length: 5", "Content-Length: 5"]) + b"hello", 400)

    # ---- 3: Host -------------------------------------------------------------------

    def test_http11_without_host_400(self):
        """An HTTP/1.1 request without Host: 400 (RFC 9112 3.2)."""
        self.assert_error(request("GET", "/old/x", host=None), 400)

    def test_two_host_fields_400(self):
        """Two Host fields, even equal ones: 400."""
        self.assert_error(request("GET", "/old/x", headers=["Host: example.com"]), 400)
        self.assert_error(request("GET", "/old/x", host="a.example", headers=["Host: b.example"]),
                          400)

    def test_invalid_host_values_400(self):
        """Invalid Host values: a space, a slash, an unclosed IPv6 bracket: 400."""
        for host in ("exa mple.com", "a/b", "[::1"):
            with self.subTest(host=host):
                self.assert_error(request("GET", "/old/x", host=host), 400)

    def test_http10_without_host_is_fine(self):
        """HTTP/1.0 without Host is answered normally: 307 (and closed, as 1.0 asks)."""
        (resp,), reader = exchange(self.server, request("GET", "/old/x", host=None, version="1.0"))
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/new")
        self.assertEqual(resp.header("Connection"), "close")
        self.assert_closed(reader)
        reader.sock.close()

    # ---- 4: request line -------------------------------------------------------------

    def test_request_line_over_8k_414(self):
        """A request line of 8193 bytes (limit 8192, CRLF not counted): 414, close."""
        self.assert_error(line_of(8193) + b"\r\nHost: example.com\r\n\r\n", 414)

    def test_request_line_of_exactly_8k_is_fine(self):
        """A request line of exactly 8192 bytes: answered normally (307), kept open."""
        (resp,), reader = exchange(self.server, line_of(8192) + b"\r\nHost: example.com\r\n\r\n")
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/new")
        self.assertIsNone(resp.header("Connection"))
        self.assert_open(reader)
        reader.sock.close()

    def test_endless_request_line_414_without_crlf(self):
        """A request line that never ends (16 KiB, no CRLF): 414 as soon as the limit is
        passed, without waiting for a line end."""
        self.assert_error(b"GET /old/" + b"a" * 16384, 414, prompt=1.0)

    def test_request_line_limit_across_reads(self):
        """The 8 KiB request-line limit holds wherever the reads split the line: 8192
        bytes is fine and 8193 bytes gets 414 with the split before, on and after the
        limit and inside the CRLF."""
        for length, status in ((8192, 307), (8193, 414)):
            raw = line_of(length) + b"\r\nHost: example.com\r\n\r\n"
            for cut in (4096, 8191, 8192, 8193, 8194):
                with self.subTest(length=length, cut=cut):
                    sock = self.server.connect()
                    try:
                        sock.sendall(raw[:cut])
                        time.sleep(0.05)
                        try:
                            sock.sendall(raw[cut:])
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # the 414 may already be out, the socket shut
                        reader = Reader(sock)
                        resp = reader.response()
                        if status == 307:
                            self.assertEqual(resp.status, 307)
                            self.assertEqual(resp.header("Location"), "/new")
                        else:
                            self.assert_error_response(resp, 414)
                            self.assert_closed(reader)
                    finally:
                        sock.close()
        self.assert_still_serving()

    # ---- 5: header section -------------------------------------------------------------

    def test_header_section_over_32k_431(self):
        """A header section (after the request line, up to and including the empty line)
        of 32769 bytes: 431, close."""
        self.assert_error(b"GET /old/x HTTP/1.1\r\n" + header_section_of(32 * 1024 + 1), 431)

    def test_header_section_of_exactly_32k_is_fine(self):
        """A header section of exactly 32768 bytes: answered normally (307)."""
        (resp,), reader = exchange(self.server,
                                   b"GET /old/x HTTP/1.1\r\n" + header_section_of(32 * 1024))
        self.assertEqual(resp.status, 307)
        self.assert_open(reader)
        reader.sock.close()

    def test_header_section_limit_in_pieces(self):
        """The 32 KiB header limit holds when the header section arrives in 5000-byte
        pieces: 32768 bytes is fine, 32769 gets 431."""
        for length, status in ((32 * 1024, 307), (32 * 1024 + 1, 431)):
            with self.subTest(length=length):
                raw = b"GET /old/x HTTP/1.1\r\n" + header_section_of(length)
                sock = self.server.connect()
                try:
                    for i in range(0, len(raw), 5000):
                        sock.sendall(raw[i:i + 5000])
                        time.sleep(0.01)
                    reader = Reader(sock)
                    resp = reader.response()
                    if status == 307:
                        self.assertEqual(resp.status, 307)
                    else:
                        self.assert_error_response(resp, 431)
                        self.assert_closed(reader)
                finally:
                    sock.close()
        self.assert_still_serving()

    def test_101_header_fields_431(self):
        """101 header fields (Host and 100 others): 431, close."""
        fields = ["X-F%d: v" % i for i in range(100)]
        self.assert_error(request("GET", "/old/x", headers=fields), 431)

    def test_100_header_fields_is_fine(self):
        """Exactly 100 header fields (Host and 99 others): answered normally (307)."""
        fields = ["X-F%d: v" % i for i in range(99)]
        (resp,), reader = exchange(self.server, request("GET", "/old/x", headers=fields))
        self.assertEqual(resp.status, 307)
        self.assert_open(reader)
        reader.sock.close()

    # ---- 6: transfer codings ----------------------------------------------------------

    def test_unknown_transfer_codings_501(self):
        """Transfer-Encoding other than chunked (gzip; gzip, chunked; identity): 501."""
        for te in ("gzip", "gzip, chunked", "identity"):
            with self.subTest(te=te):
                self.assert_error(request("POST", "/old/x", headers=[
                    "Transfer-Encoding: " + te]) + b"0\r\n\r\n", 501)

    def test_chunked_twice_400(self):
        """Transfer-Encoding: chunked, chunked (chunked applied twice): 400."""
        self.assert_error(request("POST", "/old/x", headers=[
            "Transfer-Encoding: chunked, chunked"]) + b"0\r\n\r\n", 400)

    def test_chunked_then_gzip_501(self):
        """Transfer-Encoding: chunked, gzip: 501, since gzip is an unknown coding."""
        self.assert_error(request("POST", "/old/x", headers=[
            "Transfer-Encoding: chunked, gzip"]) + b"0\r\n\r\n", 501)

    # ---- 7: versions -------------------------------------------------------------------

    def test_unsupported_versions_505(self):
        """HTTP/1.2, HTTP/2.0, HTTP/3.0, HTTP/0.9: 505, close."""
        for version in ("1.2", "2.0", "3.0", "0.9"):
            with self.subTest(version=version):
                self.assert_error(request("GET", "/old/x", version=version), 505)

    def test_malformed_versions_400(self):
        """Malformed versions (HTTP/1, HTTP/11.1, FOO/1.1, http/1.1, none): 400."""
        for line in (b"GET /old/x HTTP/1", b"GET /old/x HTTP/11.1", b"GET /old/x FOO/1.1",
                     b"GET /old/x http/1.1", b"GET /old/x"):
            with self.subTest(line=line):
                self.assert_error(line + b"\r\nHost: example.com\r\n\r\n", 400)

    # ---- 8: not HTTP at all -------------------------------------------------------------

    def test_tls_client_hello_400_at_once(self):
        """A TLS ClientHello on the plain-HTTP port: 400 and close within 1 s, though no
        CRLF ever comes."""
        hello = bytes([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03])
        hello += bytes(range(32)) + b"\x00\x00\x02\x13\x01\x01\x00"
        self.assert_error(hello, 400, prompt=1.0)

    def test_random_binary_400_at_once(self):
        """Random binary bytes (fixed seed, no CR or LF): 400 and close within 1 s."""
        rng = random.Random(9112)
        junk = bytes(b for b in (rng.randrange(256) for _ in range(600)) if b not in (10, 13))
        self.assert_error(b"\xfe" + junk, 400, prompt=1.0)

    def test_bare_nul_400_at_once(self):
        """A single NUL byte: 400 and close within 1 s."""
        self.assert_error(b"\x00", 400, prompt=1.0)

    # ---- 11: RFC 9112 5.1 / 5.2 / 2.2 field syntax -----------------------------------------

    def test_whitespace_before_colon_400(self):
        """Whitespace between a field name and its colon (`Host : a`): 400 (RFC 9112 5.1)."""
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost : a\r\n\r\n", 400)
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400)

    def test_obsolete_line_folding_400(self):
        """Obsolete line folding (a line starting with a space or tab): 400 (RFC 9112 5.2)."""
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400)
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400)

    def test_bare_lf_line_endings_400(self):
        """Bare LF line endings, in the request line or in a header line: 400."""
        self.assert_error(b"GET /old/x HTTP/1.1\nHost: a\n\n", 400)
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400)

    def test_control_bytes_in_header_value_400(self):
        """A NUL, another control byte or DEL in a header value: 400."""
        for byte in (b"\x00", b"\x01", b"\x1b", b"\x7f"):
            with self.subTest(byte=byte):
                self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\r\nX-A: b" + byte +
                                  b"c\r\n\r\n", 400)

    def test_empty_field_name_400(self):
        """An empty field name (`: x`): 400."""
        self.assert_error(b"GET /old/x HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400)

    def test_leading_empty_lines_ignored(self):
        """Empty lines (CRLF) before a request line are ignored (RFC 9112 2.2): 307."""
        (resp,), reader = exchange(self.server, b"\r\n\r\n\r\n" + request("GET", "/old/x"))
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/new")
        self.assert_open(reader)
        reader.sock.close()

    # ---- 12: request targets and methods -------------------------------------------------

    def test_connect_501(self):
        """CONNECT example.com:443: 501, close (a redirect server is no proxy)."""
        self.assert_error(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                          501)

    def test_asterisk_form_with_get_400(self):
        """`GET * HTTP/1.1`: 400 (the asterisk form is only for OPTIONS)."""
        self.assert_error(request("GET", "*"), 400)

    def test_options_asterisk_is_not_an_error(self):
        """`OPTIONS * HTTP/1.1`: not an error; no rule matches, so 404, connection kept."""
        (resp,), reader = exchange(self.server, request("OPTIONS", "*"))
        self.assertEqual(resp.status, 404)
        self.assertEqual(resp.reason, "Not Found")
        self.assertIsNone(resp.header("Connection"))
        self.assert_open(reader)
        reader.sock.close()

    def test_userinfo_in_absolute_target_400(self):
        """Userinfo in an absolute-form target (http://user@example.com/...): 400."""
        self.assert_error(request("GET", "http://user@example.com/old/x"), 400)
        self.assert_error(request("GET", "http://user:pw@example.com/old/x"), 400)

    def test_fragment_in_target_400(self):
        """A `#` in the request target: 400."""
        self.assert_error(request("GET", "/old/x#frag"), 400)
        self.assert_error(request("GET", "/old/x?q=1#"), 400)

    def test_absolute_form_target_host_wins(self):
        """Absolute-form target: its host, not Host, picks host rules (RFC 9112 3.2.2):
        GET http://shop.example.com/x with Host: other -> 307 Location /shop."""
        (resp,), reader = exchange(self.server,
                                   request("GET", "http://shop.example.com/x", host="other"))
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/shop")
        # And the other way round: Host names the shop, the target another host.
        (resp,), reader2 = exchange(self.server, request("GET", "http://other.example/x",
                                                         host="shop.example.com"))
        self.assertEqual(resp.status, 404)
        reader.sock.close()
        reader2.sock.close()


class ErrorsCustomLimits(DetourTestCase):
    """Limits lowered by flags; bodies beyond --max-body."""

    ARGS = ["--max-request-line", "1k", "--max-header-size", "2k",
            "--max-header-fields", "10", "--max-body", "1k"]

    def test_max_request_line_flag(self):
        """--max-request-line 1k: a 1025-byte request line gets 414; 1024 bytes is fine."""
        self.assert_error(line_of(1025) + b"\r\nHost: example.com\r\n\r\n", 414)
        (resp,), reader = exchange(self.server, line_of(1024) + b"\r\nHost: example.com\r\n\r\n")
        self.assertEqual(resp.status, 307)
        self.assert_open(reader)
        reader.sock.close()

    def test_max_header_size_flag(self):
        """--max-header-size 2k: a 2049-byte header section gets 431; 2048 bytes is fine."""
        self.assert_error(b"GET /old/x HTTP/1.1\r\n" + header_section_of(2049), 431)
        (resp,), reader = exchange(self.server, b"GET /old/x HTTP/1.1\r\n" + header_section_of(2048))
        self.assertEqual(resp.status, 307)
        self.assert_open(reader)
        reader.sock.close()

    def test_max_header_fields_flag(self):
        """--max-header-fields 10: 11 fields get 431; 10 fields are fine."""
        self.assert_error(request("GET", "/old/x", headers=["X-F%d: v" % i for i in range(10)]),
                          431)
        (resp,), reader = exchange(self.server, request("GET", "/old/x", headers=[
            "X-F%d: v" % i for i in range(9)]))
        self.assertEqual(resp.status, 307)
        self.assert_open(reader)
        reader.sock.close()

    def test_s6_content_length_over_max_body_answered_then_closed(self):
        """S6 / --max-body 1k: Content-Length 5000 gets the 307 at once, with Connection:
        close; the client then sends the body anyway; the answer is intact and the
        connection ends with EOF, not a reset."""
        sock = self.server.connect()
        try:
            sock.sendall(request("POST", "/echo/big", headers=["Content-Length: 5000"]))
            sock.settimeout(1.0)
            reader = Reader(sock)
            resp = reader.response()
            self.assertEqual(resp.status, 307)
            self.assertEqual(resp.header("Location"), "/got/big")
            self.assertEqual(resp.header("Connection"), "close")
            sock.sendall(b"x" * 5000)
            self.assert_closed(reader, allow_reset=False)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_s6_large_body_sent_with_head_answer_intact(self):
        """S6 / --max-body 1k: head and a 256 KiB body in one go: the 307 still arrives
        whole (lingering close, no reset), then EOF."""
        sock = self.server.connect()
        try:
            body = b"y" * (256 * 1024)
            sock.sendall(request("POST", "/echo/huge", body=body))
            reader = Reader(sock)
            resp = reader.response()
            self.assertEqual(resp.status, 307)
            self.assertEqual(resp.header("Location"), "/got/huge")
            self.assertEqual(resp.header("Connection"), "close")
            self.assert_closed(reader, allow_reset=False)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_s6_content_length_at_max_body_keeps_connection(self):
        """S6 / --max-body 1k: Content-Length of exactly 1024 is drained; the connection
        stays open for the next request."""
        (resp, resp2), reader = exchange(
            self.server, request("POST", "/echo/limit", body=b"z" * 1024) +
            request("GET", "/echo/next"), count=2)
        self.assertEqual(resp.status, 307)
        self.assertIsNone(resp.header("Connection"))
        self.assertEqual(resp2.header("Location"), "/got/next")
        self.assert_open(reader)
        reader.sock.close()

    def test_s6_chunked_body_growing_over_max_body_closes(self):
        """S6 / --max-body 1k: the 307 goes out when the chunked head arrives; once the
        chunks pass 1024 bytes the connection closes and a request behind them is not
        answered."""
        sock = self.server.connect()
        try:
            sock.sendall(request("POST", "/echo/chunks", headers=["Transfer-Encoding: chunked"]))
            sock.settimeout(1.0)
            reader = Reader(sock)
            resp = reader.response()
            self.assertEqual(resp.status, 307)
            self.assertEqual(resp.header("Location"), "/got/chunks")
            chunk = b"200\r\n" + b"c" * 0x200 + b"\r\n"
            sock.sendall(chunk * 3 + b"0\r\n\r\n" + request("GET", "/echo/behind"))
            self.assert_closed(reader)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_s6_chunked_body_at_max_body_keeps_connection(self):
        """S6 / --max-body 1k: chunks totalling exactly 1024 bytes are drained; the request
        behind them is answered."""
        chunk = b"200\r\n" + b"c" * 0x200 + b"\r\n"
        raw = (request("POST", "/echo/c1024", headers=["Transfer-Encoding: chunked"]) +
               chunk * 2 + b"0\r\n\r\n" + request("GET", "/echo/after"))
        (resp, resp2), reader = exchange(self.server, raw, count=2)
        self.assertEqual(resp.header("Location"), "/got/c1024")
        self.assertEqual(resp2.header("Location"), "/got/after")
        self.assert_open(reader)
        reader.sock.close()


class Bodies(DetourTestCase):
    """S6: every method gets the redirect; bodies are consumed to keep the connection."""

    def test_s6_content_length_body_then_next_request(self):
        """S6: POST with Content-Length: 5 and its body, then a GET on the same
        connection: both answered in order; the connection stays open."""
        sock = self.server.connect()
        reader = Reader(sock)
        try:
            sock.sendall(request("POST", "/echo/first", body=b"hello"))
            resp = reader.response()
            self.assertEqual(resp.status, 307)
            self.assertEqual(resp.header("Location"), "/got/first")
            self.assertIsNone(resp.header("Connection"))
            self.assertIn(b"POST", resp.body)
            sock.sendall(request("GET", "/echo/second"))
            resp = reader.response()
            self.assertEqual(resp.header("Location"), "/got/second")
            self.assert_open(reader)
        finally:
            sock.close()

    def test_s6_chunked_body_with_extensions_and_trailers(self):
        """S6: a chunked body with chunk extensions (name only, name=token,
        name=quoted-string) and trailer fields is consumed; the next request on the
        connection is answered."""
        body = (b"5;name=value\r\nhello\r\n"
                b"6;flag\r\n world\r\n"
                b"1;q=\"quoted; str\"\r\n!\r\n"
                b"0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n")
        raw = (request("PUT", "/echo/chunked", headers=["Transfer-Encoding: chunked"]) + body +
               request("GET", "/echo/after"))
        (resp, resp2), reader = exchange(self.server, raw, count=2)
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/got/chunked")
        self.assertIsNone(resp.header("Connection"))
        self.assertEqual(resp2.header("Location"), "/got/after")
        self.assert_open(reader)
        reader.sock.close()

    def assert_chunked_body_consumed(self, body, name):
        """Sends a chunked POST with body, then a GET: both must be answered in order."""
        raw = (request("POST", "/echo/" + name, headers=["Transfer-Encoding: chunked"]) +
               body + request("GET", "/echo/after-" + name))
        sock = self.server.connect()
        try:
            sock.sendall(raw)
            reader = Reader(sock)
            resp = reader.response()
            self.assertEqual(resp.header("Location"), "/got/" + name)
            self.assertIsNone(resp.header("Connection"))
            try:
                resp2 = reader.response()
            except EOFError:
                self.fail("connection closed before the request after the body was answered")
            self.assertEqual(resp2.header("Location"), "/got/after-" + name)
            self.assert_open(reader)
        finally:
            sock.close()

    def test_s6_chunked_body_with_several_extensions_per_chunk(self):
        """S6: chunk lines carrying several extensions (`5;a=b;c=d`, `6;a=1;b`) are valid
        framing: the body is consumed and the next request answered."""
        self.assert_chunked_body_consumed(
            b"5;a=b;c=d\r\nhello\r\n6;a=1;b\r\n world\r\n0\r\n\r\n", "multi-ext")

    def test_s6_chunked_body_with_quoted_pair_in_extension(self):
        """S6: a chunk extension whose quoted value holds a quoted-pair (`q="a\\"b"`) is
        valid framing: the body is consumed and the next request answered."""
        self.assert_chunked_body_consumed(b'1;q="a\\"b"\r\n!\r\n0\r\n\r\n', "quoted-pair")

    def test_s6_body_in_small_pieces_with_delays(self):
        """S6: a Content-Length body and a chunked body, each sent in small pieces with
        delays, are consumed; the requests after them are answered in order."""
        sock = self.server.connect()
        reader = Reader(sock)
        try:
            sock.sendall(request("POST", "/echo/slow-cl", headers=["Content-Length: 11"]))
            resp = reader.response()  # answered when the head arrives
            self.assertEqual(resp.header("Location"), "/got/slow-cl")
            for piece in (b"he", b"llo", b" wo", b"rld"):
                time.sleep(0.05)
                sock.sendall(piece)
            time.sleep(0.05)
            sock.sendall(request("POST", "/echo/slow-chunked",
                                 headers=["Transfer-Encoding: chunked"]))
            resp = reader.response()
            self.assertEqual(resp.header("Location"), "/got/slow-chunked")
            for piece in (b"4", b"\r\nab", b"cd\r", b"\n0\r\n", b"\r", b"\n"):
                time.sleep(0.05)
                sock.sendall(piece)
            time.sleep(0.05)
            sock.sendall(request("GET", "/echo/third"))
            resp = reader.response()
            self.assertEqual(resp.header("Location"), "/got/third")
            self.assert_open(reader)
        finally:
            sock.close()

    def test_s6_pipelined_get_post_delete(self):
        """S6: GET, POST with a body and DELETE sent in one write: three answers, in order."""
        raw = (request("GET", "/echo/one") +
               request("POST", "/echo/two", body=b"a=1&b=2") +
               request("DELETE", "/echo/three"))
        resps, reader = exchange(self.server, raw, count=3)
        self.assertEqual([r.status for r in resps], [307, 307, 307])
        self.assertEqual([r.header("Location") for r in resps],
                         ["/got/one", "/got/two", "/got/three"])
        for resp, method in zip(resps, (b"GET", b"POST", b"DELETE")):
            self.assertIn(b"Repeat your " + method + b" request", resp.body)
        self.assert_open(reader)
        reader.sock.close()

    def test_many_pipelined_requests_without_reading(self):
        """A client that pipelines 3000 requests (one POST with a body every tenth) and
        reads nothing until it has sent them all still gets every answer, in order: the
        server stops reading while its answers wait, and goes on once they drain."""
        count = 3000
        parts = []
        for i in range(count):
            if i % 10 == 5:
                parts.append(request("POST", "/echo/%d" % i, body=b"body-%d" % i))
            else:
                parts.append(request("GET", "/echo/%d" % i))
        sock = self.server.connect(timeout=10)
        sender = threading.Thread(target=sock.sendall, args=(b"".join(parts),))
        sender.start()
        try:
            time.sleep(0.5)  # let the server fill the socket buffers first
            reader = Reader(sock)
            for i in range(count):
                resp = reader.response()
                self.assertEqual(resp.header("Location"), "/got/%d" % i)
            sender.join(10)
            self.assertFalse(sender.is_alive())
            self.assert_open(reader)
        finally:
            sock.close()
            sender.join(10)

    def test_s6_unknown_method_with_body(self):
        """S6: an unknown method token (FOO) with a body gets the redirect too."""
        raw = request("FOO", "/echo/foo", body=b"12345") + request("GET", "/echo/bar")
        (resp, resp2), reader = exchange(self.server, raw, count=2)
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/got/foo")
        self.assertIn(b"FOO", resp.body)
        self.assertEqual(resp2.header("Location"), "/got/bar")
        reader.sock.close()

    def test_s6_expect_100_continue_gets_final_307_at_once(self):
        """S6: POST with Expect: 100-continue and Content-Length: 10, no body sent: the
        final 307 within 1 s, never 100 Continue, with Connection: close."""
        sock = self.server.connect()
        try:
            sock.sendall(request("POST", "/echo/expect", headers=[
                "Expect: 100-continue", "Content-Length: 10"]))
            sock.settimeout(1.0)
            reader = Reader(sock)
            resp = reader.response()
            self.assertEqual(resp.status, 307)
            self.assertEqual(resp.header("Location"), "/got/expect")
            self.assertEqual(resp.header("Connection"), "close")
            self.assertNotIn(b"100 Continue", resp.raw)
            self.assert_closed(reader)
        finally:
            sock.close()

    def test_s6_upgrade_ignored_body_read_as_content(self):
        """S6 / RFC 9110 7.8: Connection: Upgrade, Upgrade: websocket with a body: the
        upgrade is ignored (307, no 101), the body is content, and a pipelined request
        after it is answered."""
        raw = (request("POST", "/echo/ws", headers=[
            "Connection: Upgrade", "Upgrade: websocket", "Content-Length: 5"], body=b"hello") +
            request("GET", "/echo/after-ws"))
        (resp, resp2), reader = exchange(self.server, raw, count=2)
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/got/ws")
        self.assertIsNone(resp.header("Upgrade"))
        self.assertEqual(resp2.status, 307)
        self.assertEqual(resp2.header("Location"), "/got/after-ws")
        self.assert_open(reader)
        reader.sock.close()

    def test_invalid_chunk_framing_after_head_closes(self):
        """Invalid chunked framing after the head (`zz`): the 307, sent when the head
        arrived, comes whole; then the connection closes and a request behind is not
        answered."""
        raw = (request("POST", "/echo/bad-chunk", headers=["Transfer-Encoding: chunked"]) +
               b"zz\r\nhello\r\n0\r\n\r\n" + request("GET", "/echo/behind"))
        (resp,), reader = exchange(self.server, raw)
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Location"), "/got/bad-chunk")
        self.assert_closed(reader)
        reader.sock.close()
        self.assert_still_serving()


class HeaderTimeout(DetourTestCase):
    """--header-timeout 1s, --idle-timeout 1s."""

    ARGS = ["--header-timeout", "1s", "--idle-timeout", "1s"]

    def test_incomplete_head_408(self):
        """A head not complete within --header-timeout 1s: 408 after ~1 s, then close."""
        sock = self.server.connect()
        try:
            start = time.monotonic()
            sock.sendall(b"GET /old/x HTTP/1.1\r\nHost: a\r\n")
            reader = Reader(sock)
            resp = reader.response()
            elapsed = time.monotonic() - start
            self.assert_error_response(resp, 408)
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 3.0)
            self.assert_closed(reader)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_silent_connection_closed_without_response(self):
        """A connection that sends nothing (a browser preconnect) is closed after the
        header timeout with no response bytes at all."""
        sock = self.server.connect()
        try:
            how, extra, elapsed = wait_eof(sock, 4)
            self.assertEqual(extra, b"")
            self.assertIn(how, ("eof", "reset"))
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 3.0)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_slowloris_drip_gets_408(self):
        """Slowloris: one header byte every 0.3 s keeps arriving, yet the head must be
        whole within 1 s of its first byte: 408 at ~1 s."""
        sock = self.server.connect()
        try:
            drip = b"GET /old/x HTTP/1.1\r\nHost: example.com\r\nX-Slow: " + b"s" * 40
            start = time.monotonic()
            for byte in drip:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                if select.select([sock], [], [], 0.3)[0]:
                    break
            elapsed = time.monotonic() - start
            reader = Reader(sock)
            resp = reader.response()
            self.assert_error_response(resp, 408)
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 2.0)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_header_timeout_counts_from_first_byte_of_first_request(self):
        """The header timeout counts from the request's first byte: a client that
        connects, idles 1.5 s (less than header timeout + the 1 s deferred accept), then
        sends part of a head still gets its full 1 s: 408 no sooner than ~1 s after that
        first byte."""
        sock = self.server.connect()
        try:
            time.sleep(1.5)
            start = time.monotonic()
            sock.sendall(b"GET /old/x HTTP/1.1\r\nHost: a\r\n")
            reader = Reader(sock)
            try:
                resp = reader.response()
            except EOFError:
                self.fail("closed without a 408 after %.2f s" % (time.monotonic() - start))
            elapsed = time.monotonic() - start
            self.assert_error_response(resp, 408)
            self.assertGreater(elapsed, 0.8, "408 came %.2f s after the first byte" % elapsed)
            self.assertLess(elapsed, 3.0)
        finally:
            sock.close()
        self.assert_still_serving()

    def test_idle_keep_alive_closed_after_idle_timeout(self):
        """--idle-timeout 1s: a request 0.5 s after the first answer is still answered;
        after the last answer the idle connection is closed (EOF, no bytes) in ~1-3 s."""
        sock = self.server.connect()
        reader = Reader(sock)
        try:
            sock.sendall(request("GET", "/echo/a"))
            self.assertEqual(reader.response().header("Location"), "/got/a")
            time.sleep(0.5)
            sock.sendall(request("GET", "/echo/b"))
            self.assertEqual(reader.response().header("Location"), "/got/b")
            how, extra, elapsed = wait_eof(sock, 4)
            self.assertEqual(reader.buf + extra, b"")
            self.assertIn(how, ("eof", "reset"))
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 3.0)
        finally:
            sock.close()


class HeaderTimeoutFromFirstByte(DetourTestCase):
    """--header-timeout 1s with a longer --idle-timeout 5s."""

    ARGS = ["--header-timeout", "1s", "--idle-timeout", "5s"]

    def test_header_timeout_counts_from_first_byte_of_next_request(self):
        """On a kept-alive connection, idle time does not count against the header
        timeout: after 1.5 s idle a partial request still gets its full 1 s, then 408."""
        sock = self.server.connect()
        reader = Reader(sock)
        try:
            sock.sendall(request("GET", "/echo/first"))
            self.assertEqual(reader.response().header("Location"), "/got/first")
            time.sleep(1.5)
            start = time.monotonic()
            sock.sendall(b"GET /old/x HTTP/1.1\r\nHo")
            resp = reader.response()
            elapsed = time.monotonic() - start
            self.assert_error_response(resp, 408)
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 3.0)
            self.assert_closed(reader)
        finally:
            sock.close()
        self.assert_still_serving()


if __name__ == "__main__":
    unittest.main()
