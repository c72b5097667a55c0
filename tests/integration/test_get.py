"""`detour get`, the user agent, against recording origin servers (fixture.py) and against
`detour serve` (harness.py): C1-C8 and the security cases of the spec, each test named with
its spec ID. Every detour get without a terminal runs in a new session (no controlling
terminal), so nobody running these tests is ever asked anything; the tests about the
question give it a pseudo-terminal of their own."""
import base64
import calendar
import fcntl
import json
import os
import re
import select
import socket
import subprocess
import tempfile
import termios
import threading
import time
import unittest

from fixture import CA_FILE, Fixture, ok, redirect
from harness import DETOUR, ROOT, Server

BINARY = bytes(range(256)) + b"\x00\x00\r\n\r\n--\r\n" + "é€".encode() + b"\xff\xfe"
FORM = "application/x-www-form-urlencoded"
BODY_HEADERS = ("content-type", "content-length", "content-encoding", "content-language",
                "content-location", "transfer-encoding")
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


class Result:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out                                  # bytes
        self.err = err.decode("utf-8", "replace")       # str

    @property
    def lines(self):
        return self.err.splitlines()

    @property
    def chain(self):
        """The hop lines of stderr (not the error line)."""
        return [l for l in self.lines if not l.startswith(("detour get:", "> ", "< ", "* "))]

    def json(self):
        return json.loads(self.out.decode("utf-8"))

    def __repr__(self):
        return "<exit %s stdout=%r stderr=%r>" % (self.rc, self.out[:300], self.err[:1500])


class TtyResult:
    def __init__(self, rc, out, tty):
        self.rc = rc
        self.out = out
        self.tty = tty.replace("\r\n", "\n")

    @property
    def prompted(self):
        return "[y/N]" in self.tty

    def __repr__(self):
        return "<exit %s stdout=%r tty=%r>" % (self.rc, self.out[:300], self.tty[:1500])


class Base(unittest.TestCase):
    maxDiff = None

    def fx(self, routes=None, **kw):
        f = Fixture(routes, **kw).start()
        self.addCleanup(f.stop)
        return f

    def tmp(self):
        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.TemporaryDirectory(prefix="detour-get-test-")
            self.addCleanup(self._tmp.cleanup)
        return self._tmp.name

    def write(self, name, data):
        path = os.path.join(self.tmp(), name)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def get(self, *args, input=None, limit=True, timeout=30):
        """Runs detour get without a controlling terminal (stderr is a pipe, too)."""
        cmd = [DETOUR, "get"] + (["--max-time", "10"] if limit else []) + list(args)
        p = subprocess.run(cmd, input=input, stdin=None if input is not None else
                           subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           start_new_session=True)
        return Result(p.returncode, p.stdout, p.stderr)

    def get_on_tty(self, *args, answer=None, stderr_tty=True, timeout=15):
        """Runs detour get with a pseudo-terminal as its controlling terminal (/dev/tty) and,
        if stderr_tty, as stderr. When the question '[y/N] ' shows, answer (bytes) is typed."""
        master, slave = os.openpty()
        name = os.ttyname(slave)

        def take_terminal():
            fd = os.open(name, os.O_RDWR)  # a session leader opening a tty: its terminal
            fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
            os.close(fd)

        cmd = [DETOUR, "get", "--max-time", "10"] + list(args)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave if stderr_tty else subprocess.PIPE,
                             start_new_session=True, preexec_fn=take_terminal)
        os.close(slave)
        captured = {}

        def drain(key, stream):
            captured[key] = stream.read()

        readers = [threading.Thread(target=drain, args=("out", p.stdout))]
        if not stderr_tty:
            readers.append(threading.Thread(target=drain, args=("err", p.stderr)))
        for t in readers:
            t.start()
        tty = b""
        answered = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: every copy of the terminal's other side is closed
                        break
                    if not data:
                        break
                    tty += data
                    if answer is not None and not answered and b"[y/N] " in tty:
                        os.write(master, answer)
                        answered = True
                elif p.poll() is not None:
                    break
            else:
                p.kill()
                raise AssertionError("detour get did not finish on the terminal; it showed %r"
                                     % tty)
            rc = p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            for t in readers:
                t.join(10)
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
            os.close(master)
        if not stderr_tty:
            tty += captured.get("err", b"")
        return TtyResult(rc, captured.get("out", b""), tty.decode("utf-8", "replace"))

    # -- assertions

    def assertExit(self, res, rc):
        self.assertEqual(res.rc, rc, res)

    def assertNothingTo(self, fx, path):
        self.assertEqual(fx.requests_to(path), [], "the target must receive nothing")

    def assertSameRequest(self, first, second, method, body):
        """C1: method, body, Content-Type, Content-Length equal on both hops."""
        for r in (first, second):
            self.assertEqual(r.method, method, r)
            self.assertEqual(r.body, body, r)
        self.assertEqual(first.header("Content-Type"), second.header("Content-Type"))
        self.assertEqual(first.header("Content-Length"), second.header("Content-Length"))
        self.assertEqual(second.header("Content-Length"), str(len(body)))

    def assertNoCredentials(self, req):
        for name in CREDENTIAL_HEADERS:
            self.assertEqual(req.all(name), [], "%s sent to %s" % (name, req))


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chain_of(fx, n, status=307):
    """Routes /r/0 -> /r/1 -> ... -> /r/n (200): n redirects."""
    def route(req):
        k = int(req.path.rsplit("/", 1)[1])
        if k < n:
            return redirect(status, "/r/%d" % (k + 1))
        return ok(b"end of chain")
    fx.default = route


# ---- C1: 307 and 308 repeat the method and the body ----------------------------------------

class C1SameMethodSameBody(Base):
    def two(self, status):
        return self.fx({"/a": redirect(status, "/b", b"moved"), "/b": ok(b"landed")})

    def test_c1_binary_file_body_307_308(self):
        """C1: -d @FILE with every byte value, NULs and CRLFs: both hops get it unchanged."""
        path = self.write("payload.bin", BINARY)
        for status in (307, 308):
            with self.subTest(status=status):
                fx = self.two(status)
                res = self.get("-y", "-d", "@" + path, fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"landed")
                a, b = fx.requests
                self.assertEqual((a.path, b.path), ("/a", "/b"))
                self.assertSameRequest(a, b, "POST", BINARY)
                self.assertEqual(b.header("Content-Type"), FORM)
                self.assertEqual(res.chain, [
                    "%d POST %s -> %s (method and body kept)" % (status, fx.url("/a"),
                                                                 fx.url("/b")),
                    "200 POST %s (final)" % fx.url("/b")])

    def test_c1_data_binary_file(self):
        """C1: --data-binary @FILE is -d @FILE: bytes unchanged on both hops."""
        path = self.write("payload.bin", BINARY)
        fx = self.two(308)
        res = self.get("-y", "--data-binary", "@" + path, fx.url("/a"))
        self.assertExit(res, 0)
        self.assertSameRequest(*fx.requests, "POST", BINARY)

    def test_c1_literal_data(self):
        """C1: -d DATA (and two -d joined with '&') sent again byte for byte after 307/308."""
        for status in (307, 308):
            for args, body in ((["-d", "name=a b&x=%00\u00e9"], "name=a b&x=%00\u00e9".encode()),
                               (["-d", "a=1", "-d", "b=2"], b"a=1&b=2")):
                with self.subTest(status=status, args=args):
                    fx = self.two(status)
                    res = self.get("-y", *args, fx.url("/a"))
                    self.assertExit(res, 0)
                    self.assertSameRequest(*fx.requests, "POST", body)
                    self.assertEqual(fx.requests[1].header("Content-Type"), FORM)

    def test_c1_empty_and_large_bodies(self):
        """C1: an empty -d '' body (Content-Length: 0) and a 3 MB file body are sent again
        unchanged after 307/308."""
        big = self.write("big.bin", os.urandom(3 * 1024 * 1024) + b"\x00\r\n")
        with open(big, "rb") as f:
            big_bytes = f.read()
        for status in (307, 308):
            for arg, body in (("", b""), ("@" + big, big_bytes)):
                with self.subTest(status=status, size=len(body)):
                    fx = self.two(status)
                    res = self.get("-y", "-d", arg, fx.url("/a"))
                    self.assertExit(res, 0)
                    self.assertSameRequest(*fx.requests, "POST", body)

    def test_c1_user_content_type_kept(self):
        """C1: a Content-Type given with -H is the only one, on both hops."""
        fx = self.two(307)
        res = self.get("-y", "-H", "Content-Type: application/json", "-d", '{"a":1}',
                       fx.url("/a"))
        self.assertExit(res, 0)
        a, b = fx.requests
        self.assertSameRequest(a, b, "POST", b'{"a":1}')
        self.assertEqual(b.all("Content-Type"), ["application/json"])

    def test_c1_stdin_body(self):
        """C1: -d @- (standard input) is kept and sent again unchanged after 307 and 308."""
        for status in (307, 308):
            with self.subTest(status=status):
                fx = self.two(status)
                res = self.get("-y", "-d", "@-", fx.url("/a"), input=BINARY)
                self.assertExit(res, 0)
                a, b = fx.requests
                for r in (a, b):
                    self.assertEqual((r.method, r.body), ("POST", BINARY))
                self.assertEqual(a.header("Content-Type"), b.header("Content-Type"))
                self.assertEqual(b.header("Content-Type"), FORM)

    def test_c1_stdin_body_same_framing(self):
        """C1: -d @- replayed after 307 is the same message: same bytes, and the same
        framing (a stream of unknown length goes chunked both times)."""
        fx = self.two(307)
        res = self.get("-y", "-d", "@-", fx.url("/a"), input=BINARY)
        self.assertExit(res, 0)
        first, second = fx.requests
        for r in (first, second):
            self.assertEqual((r.method, r.body), ("POST", BINARY), r)
            self.assertIsNone(r.header("Content-Length"), r)
            self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        self.assertEqual(first.header("Content-Type"), second.header("Content-Type"))

    def test_c1_stdin_under_replay_limit(self):
        """C1: a stdin body within --replay-limit is sent again whole."""
        fx = self.two(307)
        data = b"x\x00" * 400
        res = self.get("-y", "--replay-limit", "1k", "-d", "@-", fx.url("/a"), input=data)
        self.assertExit(res, 0)
        self.assertEqual([r.body for r in fx.requests], [data, data])

    def test_c1_stdin_over_replay_limit_sent_once(self):
        """C1: --replay-limit bounds what is kept for a replay, not what is sent: 5000 bytes
        piped in with --replay-limit 1k reach a 200 whole, exit 0."""
        fx = self.fx({"/b": ok(b"stored")})
        data = b"\x00\r\n" * 1666 + b"!!"
        self.assertEqual(len(data), 5000)
        res = self.get("--replay-limit", "1k", "-d", "@-", fx.url("/b"), input=data)
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"stored")
        self.assertEqual([(r.method, r.body) for r in fx.requests], [("POST", data)])

    def test_c1_stdin_over_replay_limit(self):
        """C1: 5000 bytes piped in with --replay-limit 1k, then a 307 (with --yes): exit 1,
        an error naming hop 1 and -d @FILE, and the new address gets nothing."""
        fx = self.two(307)
        data = bytes(range(256)) * 19 + b"\x00" * 136  # 5000 bytes
        self.assertEqual(len(data), 5000)
        res = self.get("-y", "--replay-limit", "1k", "-d", "@-", fx.url("/a"), input=data)
        self.assertExit(res, 1)
        self.assertEqual(fx.targets(), ["/a"])
        self.assertEqual(fx.requests[0].body, data)
        self.assertNothingTo(fx, "/b")
        error = [l for l in res.lines if l.startswith("detour get:")]
        self.assertEqual(len(error), 1, res)
        self.assertIn("hop 1", error[0])
        self.assertIn("-d @FILE", error[0])

    def test_c1_methods_with_body(self):
        """C1: PUT, PATCH, DELETE with a body and a custom method token keep method and
        body across 307 and 308, also to another origin."""
        path = self.write("payload.bin", BINARY)
        other = self.fx({"/b": ok(b"other")})
        for method in ("PUT", "PATCH", "DELETE", "MKCALENDAR", "X-Custom_1"):
            for status in (307, 308):
                with self.subTest(method=method, status=status):
                    fx = self.fx({"/a": redirect(status, other.url("/b"))})
                    other.clear()
                    res = self.get("-y", "-X", method, "-d", "@" + path, fx.url("/a"))
                    self.assertExit(res, 0)
                    self.assertEqual(res.out, b"other")
                    self.assertSameRequest(fx.requests[0], other.requests[0], method, BINARY)
                    self.assertEqual(len(other.requests), 1)

    def test_c1_file_read_again_for_each_hop(self):
        """C1: -d @FILE is read again for the hop that sends it again (what the file holds
        then, unchanged; a file is not held in memory)."""
        path = self.write("payload.bin", b"first version")

        def change_then_redirect(req):
            with open(path, "wb") as f:
                f.write(b"second\x00version, longer")
            return redirect(307, "/b")

        fx = self.fx({"/a": change_then_redirect, "/b": ok()})
        res = self.get("-y", "-d", "@" + path, fx.url("/a"))
        self.assertExit(res, 0)
        a, b = fx.requests
        self.assertEqual(a.body, b"first version")
        self.assertEqual(b.body, b"second\x00version, longer")
        self.assertEqual(b.header("Content-Length"), str(len(b.body)))


# ---- C2: 303 ------------------------------------------------------------------------------

class C2SeeOther(Base):
    def test_c2_post_becomes_get_without_body_headers(self):
        """C2: after 303 a GET with no body and none of the body's header fields (the user's
        -H Content-Type and Content-* included); other user fields kept; no --yes needed."""
        fx = self.fx({"/a": redirect(303, "/b", b"see other"), "/b": ok(b"answer")})
        res = self.get("-d", "a=1", "-H", "Content-Type: application/json",
                       "-H", "Content-Language: en", "-H", "Content-Encoding: identity",
                       "-H", "Content-Location: /doc", "-H", "X-Keep: yes",
                       "-H", "Accept: text/plain", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"answer")
        a, b = fx.requests
        self.assertEqual((a.method, a.body), ("POST", b"a=1"))
        self.assertEqual(a.header("Content-Language"), "en")
        self.assertEqual((b.method, b.target, b.body), ("GET", "/b", b""))
        for name in BODY_HEADERS:
            self.assertNotIn(name, b.names(), b)
        self.assertEqual(b.header("X-Keep"), "yes")
        self.assertEqual(b.header("Accept"), "text/plain")
        self.assertEqual(res.chain[0], "303 POST %s -> %s as GET (303: method changed to GET, "
                         "body dropped)" % (fx.url("/a"), fx.url("/b")))
        self.assertEqual(res.chain[1], "200 GET %s (final)" % fx.url("/b"))

    def test_c2_chunked_body_not_carried(self):
        """C2: a chunked (stdin) body's Transfer-Encoding is not carried to the GET."""
        fx = self.fx({"/a": redirect(303, "/b"), "/b": ok()})
        res = self.get("-d", "@-", fx.url("/a"), input=b"streamed")
        self.assertExit(res, 0)
        a, b = fx.requests
        self.assertEqual(a.body, b"streamed")
        self.assertEqual((b.method, b.body), ("GET", b""))
        for name in BODY_HEADERS:
            self.assertNotIn(name, b.names(), b)

    def test_c2_put_delete_custom_become_get(self):
        """C2: any method but HEAD becomes GET after 303, without confirmation."""
        for method in ("PUT", "DELETE", "PATCH", "FROB"):
            with self.subTest(method=method):
                fx = self.fx({"/a": redirect(303, "/b"), "/b": ok()})
                res = self.get("-X", method, "-d", "x", fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual([(r.method, r.body) for r in fx.requests],
                                 [(method, b"x"), ("GET", b"")])

    def test_c2_keep_method_does_not_apply(self):
        """C2: --keep-method (and --yes) do not change 303: GET without body."""
        fx = self.fx({"/a": redirect(303, "/b"), "/b": ok()})
        res = self.get("--keep-method", "-y", "-d", "x=1", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual([(r.method, r.body) for r in fx.requests],
                         [("POST", b"x=1"), ("GET", b"")])

    def test_c2_head_stays_head(self):
        """C2: HEAD stays HEAD after 303."""
        fx = self.fx({"/a": redirect(303, "/b"), "/b": ok(b"body")})
        res = self.get("-X", "HEAD", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual([(r.method, r.target) for r in fx.requests],
                         [("HEAD", "/a"), ("HEAD", "/b")])
        self.assertEqual(res.out, b"")


# ---- C3: 301 and 302 ----------------------------------------------------------------------

class C3MovedFound(Base):
    def test_c3_post_becomes_get(self):
        """C3: after 301 and 302 a POST becomes a GET without a body (no --yes needed)."""
        for status in (301, 302):
            with self.subTest(status=status):
                fx = self.fx({"/a": redirect(status, "/b"), "/b": ok(b"got")})
                res = self.get("-d", "a=1", "-H", "X-Keep: 1", fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"got")
                a, b = fx.requests
                self.assertEqual((a.method, a.body), ("POST", b"a=1"))
                self.assertEqual((b.method, b.body), ("GET", b""))
                for name in BODY_HEADERS:
                    self.assertNotIn(name, b.names(), b)
                self.assertEqual(b.header("X-Keep"), "1")
                self.assertIn(" as GET ", res.chain[0])

    def test_c3_keep_method(self):
        """C3, C4: --keep-method keeps POST and its body after 301/302, confirmed with --yes."""
        path = self.write("p.bin", BINARY)
        for status in (301, 302):
            with self.subTest(status=status):
                fx = self.fx({"/a": redirect(status, "/b"), "/b": ok()})
                res = self.get("--keep-method", "-y", "-d", "@" + path, fx.url("/a"))
                self.assertExit(res, 0)
                self.assertSameRequest(*fx.requests, "POST", BINARY)

    def test_c3_keep_method_needs_confirmation(self):
        """C3, C4: --keep-method without --yes and without a terminal: refused, exit 3."""
        for status in (301, 302):
            with self.subTest(status=status):
                fx = self.fx({"/a": redirect(status, "/b", b"moved!"), "/b": ok()})
                res = self.get("--keep-method", "-d", "a=1", fx.url("/a"))
                self.assertExit(res, 3)
                self.assertEqual(res.out, b"moved!")
                self.assertIn("--yes", res.err)
                self.assertNothingTo(fx, "/b")

    def test_c3_put_stays_put(self):
        """C3: only POST changes: PUT stays PUT with its body after 301/302 (with --yes)."""
        for status in (301, 302):
            with self.subTest(status=status):
                fx = self.fx({"/a": redirect(status, "/b"), "/b": ok()})
                res = self.get("-y", "-X", "PUT", "-d", "v=1", fx.url("/a"))
                self.assertExit(res, 0)
                self.assertSameRequest(*fx.requests, "PUT", b"v=1")

    def test_c3_put_needs_confirmation(self):
        """C3, C4: PUT kept after 301 is not sent again unconfirmed."""
        fx = self.fx({"/a": redirect(301, "/b"), "/b": ok()})
        res = self.get("-X", "PUT", "-d", "v=1", fx.url("/a"))
        self.assertExit(res, 3)
        self.assertNothingTo(fx, "/b")

    def test_c3_get_followed(self):
        """C3: GET after 301 and 302 is followed as GET."""
        for status in (301, 302):
            with self.subTest(status=status):
                fx = self.fx({"/a": redirect(status, "/b"), "/b": ok(b"fine")})
                res = self.get(fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"fine")
                self.assertEqual([r.method for r in fx.requests], ["GET", "GET"])


# ---- C4: confirmation -----------------------------------------------------------------------

class C4Confirmation(Base):
    def test_c4_unsafe_refused_without_terminal(self):
        """C4: POST, PUT, PATCH, DELETE and custom tokens (also 'get': method names are
        case-sensitive) are not re-sent after 307/308 unconfirmed: exit 3, the 3xx's body
        is the output, the message names --yes, the target receives nothing."""
        for method in ("POST", "PUT", "PATCH", "DELETE", "PURGE", "get"):
            for status in (307, 308):
                with self.subTest(method=method, status=status):
                    fx = self.fx({"/a": redirect(status, "/b", b"<p>moved to /b</p>"),
                                  "/b": ok()})
                    res = self.get("-X", method, "-d", "12 bytes! ok", fx.url("/a"))
                    self.assertExit(res, 3)
                    self.assertEqual(res.out, b"<p>moved to /b</p>")
                    self.assertNothingTo(fx, "/b")
                    self.assertEqual(len(fx.requests), 1)
                    self.assertIn("--yes", res.err)
                    self.assertNotIn("[y/N]", res.err)
                    self.assertEqual(res.chain, [
                        "%d %s %s -> /b (not followed: %s is not a safe method, and sending it "
                        "again needs confirmation (--yes allows it))"
                        % (status, method, fx.url("/a"), method)])
                    self.assertTrue(res.lines[-1].startswith("detour get: "), res)

    def test_c4_refused_redirect_large_body_whole(self):
        """C4: the chain stops at the 3xx: its whole body (1.5 MB here) is the output."""
        body = os.urandom(1536 * 1024)
        fx = self.fx({"/a": redirect(307, "/b", body), "/b": ok()})
        res = self.get("-d", "x", fx.url("/a"))
        self.assertExit(res, 3)
        self.assertEqual(len(res.out), len(body))
        self.assertEqual(res.out, body)

    def test_c4_delete_without_body_refused(self):
        """C4: an unsafe method without a body needs confirmation too."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok()})
        res = self.get("-X", "DELETE", fx.url("/a"))
        self.assertExit(res, 3)
        self.assertNothingTo(fx, "/b")

    def test_c4_yes_follows(self):
        """C4: -y and --yes confirm."""
        for flag in ("-y", "--yes"):
            with self.subTest(flag=flag):
                fx = self.fx({"/a": redirect(307, "/b"), "/b": ok(b"done")})
                res = self.get(flag, "-X", "DELETE", fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"done")
                self.assertEqual([(r.method, r.target) for r in fx.requests],
                                 [("DELETE", "/a"), ("DELETE", "/b")])

    def test_c4_safe_methods_followed(self):
        """C4: GET, HEAD, OPTIONS and TRACE are followed after 307/308 without asking."""
        for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            for status in (307, 308):
                with self.subTest(method=method, status=status):
                    fx = self.fx({"/a": redirect(status, "/b"), "/b": ok()})
                    res = self.get("-X", method, fx.url("/a"))
                    self.assertExit(res, 0)
                    self.assertEqual([(r.method, r.target) for r in fx.requests],
                                     [(method, "/a"), (method, "/b")])

    def test_c4_303_needs_no_confirmation(self):
        """C4: POST then 303: the GET is sent without asking."""
        fx = self.fx({"/a": redirect(303, "/b"), "/b": ok()})
        res = self.get("-d", "x=1", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual([r.method for r in fx.requests], ["POST", "GET"])

    def test_c4_terminal_prompt_yes(self):
        """C4: on a terminal the question is asked; 'y' re-sends the POST."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok(b"thanks")})
        res = self.get_on_tty("-d", "hello=world!", fx.url("/a"), answer=b"y\n")
        self.assertEqual(res.rc, 0, res)
        self.assertIn("Re-send POST with 12-byte body to %s? [y/N] " % fx.url("/b"), res.tty)
        self.assertEqual(res.out, b"thanks")
        self.assertEqual([(r.method, r.target, r.body) for r in fx.requests],
                         [("POST", "/a", b"hello=world!"), ("POST", "/b", b"hello=world!")])

    def test_c4_terminal_prompt_without_body(self):
        """C4: -X POST without a body is asked about too; 'y' re-sends it."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok(b"empty post ok")})
        res = self.get_on_tty("-X", "POST", fx.url("/a"), answer=b"y\n")
        self.assertEqual(res.rc, 0, res)
        prompt = [l for l in res.tty.splitlines() if "[y/N]" in l]
        self.assertEqual(len(prompt), 1, res)
        self.assertTrue(prompt[0].startswith("Re-send POST "), res)
        self.assertIn(fx.url("/b"), prompt[0])
        self.assertEqual([(r.method, r.target) for r in fx.requests],
                         [("POST", "/a"), ("POST", "/b")])

    def test_c4_terminal_prompt_no(self):
        """C4: answering 'n', or only Enter, stops the chain with exit 3."""
        for answer in (b"n\n", b"\n", b"N\n"):
            with self.subTest(answer=answer):
                fx = self.fx({"/a": redirect(308, "/b", b"gone"), "/b": ok()})
                res = self.get_on_tty("-d", "hello=world!", fx.url("/a"), answer=answer)
                self.assertEqual(res.rc, 3, res)
                self.assertTrue(res.prompted, res)
                self.assertEqual(res.out, b"gone")
                self.assertNothingTo(fx, "/b")

    def test_c4_no_question_when_stderr_is_not_a_terminal(self):
        """C4: a controlling terminal but stderr redirected: nobody sees the chain, so
        nothing is asked; refused with exit 3."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok()})
        res = self.get_on_tty("-d", "x=1", fx.url("/a"), stderr_tty=False)
        self.assertEqual(res.rc, 3, res)
        self.assertFalse(res.prompted, res)
        self.assertNothingTo(fx, "/b")


# ---- C5: nothing remembered by detour get ------------------------------------------------------

class C5NotRemembered(Base):
    def test_c5_307_not_remembered_across_runs(self):
        """C5: a 307 is never remembered: two runs, the first URL is requested twice."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok()})
        for _ in range(2):
            res = self.get("--json", fx.url("/a"))
            self.assertExit(res, 0)
            self.assertEqual([h["kind"] for h in res.json()["hops"]], ["network", "network"])
        self.assertEqual(fx.targets(), ["/a", "/b", "/a", "/b"])

    def test_c5_308_chain_is_network_only(self):
        """C5: a 308 chain shows only network hops, in every run (no cache hop)."""
        fx = self.fx({"/a": redirect(308, "/b"), "/b": redirect(301, "/c"), "/c": ok()})
        for _ in range(2):
            res = self.get("--json", fx.url("/a"))
            self.assertExit(res, 0)
            doc = res.json()
            self.assertEqual([h["kind"] for h in doc["hops"]], ["network"] * 3)
            self.assertNotIn('"cache"', res.out.decode())
        self.assertEqual(fx.targets(), ["/a", "/b", "/c"] * 2)


# ---- C6: resolving Location ---------------------------------------------------------------

class C6Resolution(Base):
    def test_c6_relative_references(self):
        """C6: Location resolved per RFC 3986 5.2 against http://H/dir/sub/a?q; the server
        sees exactly the resolved path."""
        other = self.fx({"/net/path": ok(b"net")})
        cases = [
            ("b", "/dir/sub/b"),
            ("../c", "/dir/c"),
            ("./d?x=1", "/dir/sub/d?x=1"),
            ("/abs/olute", "/abs/olute"),
            ("?q=1", "/dir/sub/a?q=1"),
            ("/x/./y/../z", "/x/z"),
            ("../../../../up", "/up"),
            ("g;p?y", "/dir/sub/g;p?y"),
            (".", "/dir/sub/"),
            ("..", "/dir/"),
            ("a/b/../../e/./f", "/dir/sub/e/f"),
            ("/p%20q/%2F%7e", "/p%20q/%2F%7e"),
        ]
        for location, expected in cases:
            with self.subTest(location=location):
                fx = self.fx({"/dir/sub/a?orig": redirect(307, location)}, default=ok(b"here"))
                res = self.get("--json", fx.url("/dir/sub/a?orig"))
                self.assertExit(res, 0)
                self.assertEqual(fx.targets(), ["/dir/sub/a?orig", expected])
                self.assertEqual(res.json()["hops"][0]["next_url"], fx.url(expected))
                self.assertEqual(res.json()["hops"][0]["location"], location)
        with self.subTest(location="//network-path"):
            fx = self.fx({"/a": redirect(307, "//127.0.0.1:%d/net/path" % other.port)})
            res = self.get(fx.url("/a"))
            self.assertExit(res, 0)
            self.assertEqual(res.out, b"net")
            self.assertEqual(other.targets(), ["/net/path"])
        for location in ("//127.0.0.1:%d" % other.port, other.url("").rstrip("/")):
            with self.subTest(location=location):
                other.clear()
                fx = self.fx({"/a": redirect(307, location)})
                res = self.get(fx.url("/a"))
                self.assertEqual(other.targets(), ["/"])
                self.assertExit(res, 4)  # no route for / on the other fixture

    def test_c6_fragment_inherited(self):
        """C6 (RFC 9110 10.2.2): a Location without a fragment inherits the request's; one
        with a fragment replaces it; no fragment is ever sent to a server."""
        for location, expected in (("/b", "/b#frag"), ("/c#new", "/c#new"),
                                   ("d?x=1", "/d?x=1#frag")):
            with self.subTest(location=location):
                fx = self.fx({"/a": redirect(307, location)}, default=ok())
                res = self.get("--json", fx.url("/a#frag"))
                self.assertExit(res, 0)
                doc = res.json()
                self.assertEqual(doc["hops"][0]["url"], fx.url("/a#frag"))
                self.assertEqual(doc["hops"][0]["next_url"], fx.url(expected))
                self.assertEqual(doc["url"], fx.url(expected))
                self.assertEqual(fx.targets(), ["/a", expected.split("#")[0]])
                for r in fx.requests:
                    self.assertNotIn("#", r.target)

    def test_c6_redirect_without_location_is_final(self):
        """C6: a 3xx without Location is the final answer: exit 0, its body, one hop."""
        for status in (301, 302, 303, 307, 308):
            with self.subTest(status=status):
                fx = self.fx({"/a": (status, [("Content-Type", "text/plain")], b"no where")})
                res = self.get(fx.url("/a"))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"no where")
                self.assertEqual(res.chain, ["%d GET %s (final)" % (status, fx.url("/a"))])
                self.assertEqual(fx.targets(), ["/a"])
                doc = self.get("--json", fx.url("/a")).json()
                self.assertEqual(len(doc["hops"]), 1)
                self.assertEqual(doc["status"], status)


# ---- C7: HSTS -------------------------------------------------------------------------------

STAMP = re.compile(r'^(\.?)(\S+) "(\d{8} \d\d:\d\d:\d\d|unlimited)"$')


def hsts_entries(path):
    """{host: (subdomains, stamp)} of a curl-format HSTS file (comments skipped)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = STAMP.match(line)
            if not m:
                raise AssertionError("not a curl HSTS line: %r" % line)
            out[m.group(2)] = (m.group(1) == ".", m.group(3))
    return out


def sts(value, body=b"secure"):
    return (200, [("Strict-Transport-Security", value)], body)


class C7Hsts(Base):
    def store(self, text=None):
        path = os.path.join(self.tmp(), "hsts.txt")
        if text is not None:
            self.write("hsts.txt", text)
        return path

    def test_c7_learnt_and_saved_in_curl_format(self):
        """C7: STS max-age=3600 over verified https to localhost: the file gets
        localhost "YYYYMMDD HH:MM:SS", about an hour from now (UTC)."""
        tls = self.fx({"/x": sts("max-age=3600")}, tls=True)
        path = self.store()
        before = time.time()
        res = self.get("--hsts", path, "--cacert", CA_FILE(), tls.url("/x", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"secure")
        entries = hsts_entries(path)
        self.assertEqual(list(entries), ["localhost"])
        sub, stamp = entries["localhost"]
        self.assertFalse(sub)
        expires = calendar.timegm(time.strptime(stamp, "%Y%m%d %H:%M:%S"))
        self.assertGreaterEqual(expires, int(before) + 3600 - 2)
        self.assertLessEqual(expires, time.time() + 3600 + 2)

    def test_c7_include_subdomains_dot_prefix(self):
        """C7: includeSubDomains is written as a leading dot."""
        tls = self.fx({"/x": sts("max-age=600; includeSubDomains")}, tls=True)
        path = self.store()
        res = self.get("--hsts", path, "--cacert", CA_FILE(), tls.url("/x", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(hsts_entries(path)["localhost"][0], True)
        with open(path) as f:
            self.assertRegex(f.read(), r'(?m)^\.localhost "\d{8} \d\d:\d\d:\d\d"$')

    def test_c7_internal_upgrade(self):
        """C7: a learnt host is reached over https by an internal 307: nothing goes out
        in clear text; the hop is kind "hsts"."""
        tls = self.fx({"/x": sts("max-age=3600"), "/y": ok(b"why")}, tls=True)
        path = self.store()
        self.assertExit(self.get("--hsts", path, "--cacert", CA_FILE(),
                                 tls.url("/x", host="localhost")), 0)
        plain_url = tls.url("/y", host="localhost", scheme="http")
        res = self.get("--hsts", path, "--cacert", CA_FILE(), plain_url)
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"why")
        self.assertEqual(res.chain[0], "307 GET %s -> %s (internal HSTS upgrade, nothing sent)"
                         % (plain_url, tls.url("/y", host="localhost")))
        doc = self.get("--hsts", path, "--cacert", CA_FILE(), "--json", plain_url).json()
        self.assertEqual([h["kind"] for h in doc["hops"]], ["hsts", "network"])
        self.assertEqual(doc["hops"][0]["next_url"], tls.url("/y", host="localhost"))
        self.assertEqual(doc["url"], tls.url("/y", host="localhost"))
        self.assertEqual(tls.targets(), ["/x", "/y", "/y"])
        self.assertTrue(all(r.tls for r in tls.requests))
        self.assertEqual(tls.errors, [], "something other than TLS reached the https port")

    def test_c7_hand_written_store_never_reaches_plain_server(self):
        """C7: a store written by hand (curl's format: 'unlimited', a dot prefix, comments)
        names localhost: http://localhost:PLAIN/ goes over https to that port, fails TLS
        (exit 1), and the plain server never gets a request in clear text."""
        for text in ('# by hand\n\nlocalhost "unlimited"\n',
                     '# with includeSubDomains\n.localhost "20991231 23:59:59"\n',
                     'a line curl would skip\nLocalHost "unlimited"\n'):
            with self.subTest(store=text):
                plain = self.fx({"/": ok(b"CLEAR TEXT")})
                path = self.store(text)
                res = self.get("--hsts", path, "--cacert", CA_FILE(),
                               plain.url("/", host="localhost"))
                self.assertExit(res, 1)
                self.assertNotIn(b"CLEAR TEXT", res.out)
                self.assertEqual(plain.requests, [])
                self.assertTrue(plain.errors, "the TLS attempt should reach the plain port")
                self.assertIn("internal HSTS upgrade", res.err)
                self.assertIn(plain.url("/", host="localhost", scheme="https"), res.err)

    def test_c7_upgrade_inside_a_chain(self):
        """C7: a redirect to an http:// URL of a known host is upgraded before anything is
        sent: network 307, hsts 307, network 200."""
        tls = self.fx({"/z": ok(b"zed")}, tls=True)
        plain = self.fx({"/a": redirect(307, tls.url("/z", host="localhost", scheme="http"))})
        path = self.store('localhost "unlimited"\n')
        res = self.get("--hsts", path, "--cacert", CA_FILE(), "--json", plain.url("/a"))
        self.assertExit(res, 0)
        doc = res.json()
        self.assertEqual([(h["kind"], h["status"]) for h in doc["hops"]],
                         [("network", 307), ("hsts", 307), ("network", 200)])
        self.assertEqual(doc["url"], tls.url("/z", host="localhost"))
        self.assertEqual([(r.target, r.tls) for r in tls.requests], [("/z", True)])
        self.assertEqual(tls.errors, [])
        self.assertEqual(hsts_entries(path), {"localhost": (False, "unlimited")})

    def test_c7_subdomains(self):
        """C7 (RFC 6797 8.2): a dot-prefixed entry covers sub.localhost; a plain entry
        does not (sub.localhost is reached in clear text)."""
        plain = self.fx({"/": ok(b"clear")})
        url = plain.url("/", host="sub.localhost")
        res = self.get("--hsts", self.store('.localhost "unlimited"\n'), url)
        self.assertExit(res, 1)
        self.assertEqual(plain.requests, [])
        res = self.get("--hsts", self.store('localhost "unlimited"\n'), url)
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"clear")
        self.assertEqual(plain.targets(), ["/"])

    def test_c7_directive_parsing(self):
        """C7 (RFC 6797 6.1): quoted max-age and unknown directives are fine; a header
        without max-age, with a bad one or with max-age twice is ignored."""
        cases = [('max-age="3600"', True), ("MAX-AGE=3600; foo=bar; preload", True),
                 ("includeSubDomains", False), ("max-age=abc", False),
                 ("max-age=10; max-age=20", False)]
        for value, learnt in cases:
            with self.subTest(value=value):
                tls = self.fx({"/x": sts(value)}, tls=True)
                path = self.store("")
                res = self.get("--hsts", path, "--cacert", CA_FILE(),
                               tls.url("/x", host="localhost"))
                self.assertExit(res, 0)
                self.assertEqual("localhost" in hsts_entries(path), learnt)

    def test_c7_learnt_from_a_redirect(self):
        """C7: STS on a 3xx over https counts too; the next run is upgraded."""
        tls = self.fx({"/r": redirect(307, "/x", headers=[("Strict-Transport-Security",
                                                          "max-age=100")]),
                       "/x": ok()}, tls=True)
        path = self.store()
        res = self.get("--hsts", path, "--cacert", CA_FILE(), tls.url("/r", host="localhost"))
        self.assertExit(res, 0)
        self.assertIn("localhost", hsts_entries(path))

    def test_c7_expired_entry_not_used(self):
        """C7: an expired entry does not upgrade."""
        plain = self.fx({"/": ok(b"clear")})
        path = self.store('localhost "20000101 00:00:00"\n')
        res = self.get("--hsts", path, plain.url("/", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"clear")
        self.assertEqual(plain.targets(), ["/"])

    def test_c7_max_age_zero_removes(self):
        """C7: max-age=0 removes the host from the file; other entries stay."""
        tls = self.fx({"/x": sts("max-age=0")}, tls=True)
        path = self.store('localhost "unlimited"\nexample.com "20991231 00:00:00"\n')
        res = self.get("--hsts", path, "--cacert", CA_FILE(), tls.url("/x", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(hsts_entries(path), {"example.com": (False, "20991231 00:00:00")})

    def test_c7_not_learnt_over_http(self):
        """C7: STS received over plain http is ignored."""
        plain = self.fx({"/x": sts("max-age=3600", b"plain")})
        path = self.store()
        res = self.get("--hsts", path, plain.url("/x", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"plain")
        self.assertEqual(hsts_entries(path), {})

    def test_c7_not_learnt_with_insecure(self):
        """C7: STS over https not verified (-k) is ignored."""
        tls = self.fx({"/x": sts("max-age=3600")}, tls=True)
        path = self.store()
        res = self.get("--hsts", path, "-k", tls.url("/x", host="localhost"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"secure")
        self.assertEqual(hsts_entries(path), {})

    def test_c7_ip_address_never_recorded(self):
        """C7 (RFC 6797 8.1.1): STS from https://127.0.0.1 is not recorded."""
        tls = self.fx({"/x": sts("max-age=3600; includeSubDomains")}, tls=True)
        path = self.store()
        res = self.get("--hsts", path, "--cacert", CA_FILE(), tls.url("/x"))
        self.assertExit(res, 0)
        self.assertEqual(hsts_entries(path), {})


# ---- C8 -------------------------------------------------------------------------------------

class C8Help(Base):
    def test_c8_help(self):
        """C8: --help and -h exit 0 with the usage on stdout."""
        for flag in ("--help", "-h"):
            with self.subTest(flag=flag):
                res = self.get(flag, limit=False)
                self.assertExit(res, 0)
                self.assertTrue(res.out.startswith(b"Usage: detour get"), res)
                self.assertIn(b"--replay-limit", res.out)


# ---- security -------------------------------------------------------------------------------

class SecCredentials(Base):
    CREDS = [["-u", "alice:s3cret"], ["-H", "Authorization: Bearer tok"],
             ["-H", "Cookie: sid=1"], ["-H", "Proxy-Authorization: Basic eDp5"],
             ["-H", "cookie: lower=case"]]

    def check_dropped(self, start_url, first, target, target_path, extra=()):
        for creds in self.CREDS:
            with self.subTest(creds=creds):
                first.clear()
                target.clear()
                res = self.get(*(list(extra) + creds + [start_url]))
                self.assertExit(res, 0)
                name = "authorization" if creds[0] == "-u" else creds[1].split(":")[0].lower()
                self.assertEqual(len(first.requests_to("/a")), 1)
                self.assertEqual(len(first.requests_to("/a")[0].all(name)), 1)
                landed = target.requests_to(target_path)
                self.assertEqual(len(landed), 1)
                self.assertNoCredentials(landed[0])
                self.assertIn("credentials dropped (new origin)", res.chain[0])

    def test_sec1_other_host(self):
        """Security 1, curl CVE-2018-1000007: credentials are not sent to another host
        (127.0.0.1 -> localhost, same port)."""
        fx = self.fx()
        fx.routes["/a"] = redirect(302, fx.url("/b", host="localhost"))
        fx.routes["/b"] = ok()
        self.check_dropped(fx.url("/a"), fx, fx, "/b")

    def test_sec1_other_port(self):
        """Security 1, curl CVE-2022-27776: not to another port of the same host."""
        other = self.fx({"/b": ok()})
        fx = self.fx({"/a": redirect(307, other.url("/b"))})
        self.check_dropped(fx.url("/a"), fx, other, "/b")

    def test_sec1_other_scheme(self):
        """Security 1, curl CVE-2022-27776: not to another scheme, same host and port
        (http://127.0.0.1:P -> https://127.0.0.1:P)."""
        both = self.fx({"/b": ok()}, tls="both")
        both.routes["/a"] = redirect(301, both.url("/b", scheme="https"))
        self.check_dropped(both.url("/a"), both, both, "/b", extra=["--cacert", CA_FILE()])
        self.assertEqual([r.tls for r in both.requests], [False, True])

    def test_sec1_same_origin_kept(self):
        """Security 1: a same-origin redirect (relative or absolute) keeps credentials."""
        for location in ("/b", None):
            for creds in self.CREDS:
                with self.subTest(creds=creds, location=location):
                    fx = self.fx({"/b": ok()})
                    fx.routes["/a"] = redirect(307, location or fx.url("/b"))
                    res = self.get(*(creds + [fx.url("/a")]))
                    self.assertExit(res, 0)
                    a, b = fx.requests
                    name = "Authorization" if creds[0] == "-u" else creds[1].split(":")[0]
                    self.assertEqual(a.all(name), b.all(name))
                    self.assertEqual(len(b.all(name)), 1)
                    self.assertNotIn("credentials dropped", res.err)
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok()})
        self.assertExit(self.get("-u", "alice:s3cret", fx.url("/a")), 0)
        self.assertEqual(fx.requests[1].header("Authorization"),
                         "Basic " + base64.b64encode(b"alice:s3cret").decode())

    def test_sec2_not_restored_back_on_first_origin(self):
        """Security 2, Go CVE-2024-45336: A -> B -> A: credentials dropped for B are not
        sent again when the chain comes back to A."""
        for creds in self.CREDS:
            with self.subTest(creds=creds):
                a = self.fx({"/back": ok(b"back")})
                b = self.fx({"/bounce": redirect(307, a.url("/back"))})
                a.routes["/a"] = redirect(307, b.url("/bounce"))
                res = self.get(*(creds + [a.url("/a")]))
                self.assertExit(res, 0)
                self.assertEqual(res.out, b"back")
                self.assertEqual(a.targets(), ["/a", "/back"])
                first, back = a.requests
                self.assertTrue(any(n in first.names() for n in CREDENTIAL_HEADERS))
                self.assertNoCredentials(b.requests[0])
                self.assertNoCredentials(back)

    def test_sec3_url_credentials(self):
        """Security 3: user:password in the URL is Basic auth for the first origin only,
        percent-decoded, and is not sent in the request target."""
        other = self.fx({"/b": ok()})
        fx = self.fx({"/a": redirect(307, other.url("/b"))})
        url = "http://us%40er:p%3Aw@127.0.0.1:" + str(fx.port) + "/a"
        res = self.get(url)
        self.assertExit(res, 0)
        (a,), (b,) = fx.requests, other.requests
        self.assertEqual(a.target, "/a")
        self.assertEqual(a.header("Authorization"),
                         "Basic " + base64.b64encode(b"us@er:p:w").decode())
        self.assertNoCredentials(b)
        self.assertIn("credentials dropped (new origin)", res.err)
        self.assertNotIn("p:w", res.err)
        # same origin: kept
        fx = self.fx({"/a": redirect(307, "/b"), "/b": ok()})
        res = self.get("http://u:pw@127.0.0.1:%d/a" % fx.port)
        self.assertExit(res, 0)
        expected = "Basic " + base64.b64encode(b"u:pw").decode()
        self.assertEqual([r.header("Authorization") for r in fx.requests], [expected] * 2)

    def test_sec9_host_header_not_sent_elsewhere(self):
        """Security 9: a custom Host: field goes to the first origin, not to another."""
        other = self.fx({"/b": ok()})
        fx = self.fx({"/a": redirect(307, other.url("/b"))})
        res = self.get("-H", "Host: example.test", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(fx.requests[0].all("Host"), ["example.test"])
        self.assertEqual(other.requests[0].all("Host"), ["127.0.0.1:%d" % other.port])


class SecDowngrade(Base):
    def test_sec4_https_to_http_refused(self):
        """Security 4: https -> http is refused (exit 3, --allow-downgrade named), followed
        with --allow-downgrade."""
        plain = self.fx({"/b": ok(b"clear")})
        tls = self.fx({"/a": redirect(307, plain.url("/b"), b"to plain")}, tls=True)
        res = self.get("--cacert", CA_FILE(), tls.url("/a"))
        self.assertExit(res, 3)
        self.assertIn("--allow-downgrade", res.err)
        self.assertEqual(res.out, b"to plain")
        self.assertEqual(plain.requests, [])
        res = self.get("--cacert", CA_FILE(), "--allow-downgrade", tls.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"clear")
        self.assertEqual(plain.targets(), ["/b"])

    def test_sec4_requests_cve_2018_18074(self):
        """Security 4, requests CVE-2018-18074: https -> http on the same host and port
        with an Authorization: refused; with --allow-downgrade followed, and the
        credentials dropped (another origin)."""
        both = self.fx({"/b": ok()}, tls="both")
        both.routes["/a"] = redirect(302, both.url("/b", scheme="http"))
        start = both.url("/a", scheme="https")
        for creds in (["-u", "alice:pw"], ["-H", "Authorization: Bearer t"]):
            with self.subTest(creds=creds):
                both.clear()
                res = self.get("--cacert", CA_FILE(), *(creds + [start]))
                self.assertExit(res, 3)
                self.assertEqual(both.targets(), ["/a"])
                both.clear()
                res = self.get("--cacert", CA_FILE(), "--allow-downgrade",
                               *(creds + [start]))
                self.assertExit(res, 0)
                a, b = both.requests
                self.assertEqual((a.tls, b.tls), (True, False))
                self.assertIsNotNone(a.header("Authorization"))
                self.assertNoCredentials(b)


class Issue9Locations(Base):
    """Issue 9: Location fields as the redirect CVEs of clients met them."""

    def test_c6_two_different_location_fields_refused(self):
        """C6 (RFC 9110 10.2.2): two Location fields with different values: not followed
        (exit 3), the note names both; neither target gets a request."""
        fx = self.fx({"/a": (307, [("Location", "/first"), ("Location", "/second")], b"two"),
                      "/first": ok(b"1"), "/second": ok(b"2")})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 3)
        self.assertIn("two Location fields with different values, '/first' and '/second'",
                      res.err)
        self.assertEqual(res.out, b"two")
        self.assertEqual(fx.targets(), ["/a"])

    def test_c6_same_location_twice_followed(self):
        """C6: the same value twice is one Location."""
        fx = self.fx({"/a": (307, [("Location", "/b"), ("Location", "/b")], b""),
                      "/b": ok(b"bee")})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual((res.out, fx.targets()), (b"bee", ["/a", "/b"]))

    def test_c6_nul_in_location_refused(self):
        """C6 (RFC 9110 5.5): a NUL inside a Location must not cut it short ('/b' would be
        followed): libcurl already fails such an answer (exit 1, 'Nul byte'), and detour
        keeps a Location as bytes with a length and refuses one with a NUL itself."""
        fx = self.fx({"/a": redirect(307, "/b\x00.evil.example"), "/b": ok()})
        res = self.get(fx.url("/a"))
        self.assertIn(res.rc, (1, 3), res)
        self.assertEqual(fx.targets(), ["/a"])
        self.assertRegex(res.err, "(?i)nul")

    def test_c6_spaces_and_utf8_percent_encoded(self):
        """C6: a Location with spaces and raw UTF-8 is percent-encoded as browsers and curl
        do; the chain shows the URL requested and says so."""
        loc = "/new page/caf\u00c3\u00a9?q=a b#x y"  # the UTF-8 bytes of 'café', as latin-1
        fx = self.fx({"/a": redirect(307, loc)}, default=ok(b"here"))
        res = self.get("--json", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(fx.targets(), ["/a", "/new%20page/caf%C3%A9?q=a%20b"])
        hop = res.json()["hops"][0]
        self.assertEqual(hop["next_url"], fx.url("/new%20page/caf%C3%A9?q=a%20b#x%20y"))
        self.assertIn("Location percent-encoded", hop["note"])

    def test_c6_latin1_location_in_json(self):
        """C6: a Location in Latin-1 (not UTF-8) is encoded and followed; --json still
        writes every hop and field, the bytes that are not UTF-8 as \\xHH."""
        fx = self.fx({"/a": redirect(307, "/caf\u00e9", headers=[("X-Name", "Jos\u00e9")])},
                     default=ok(b"here"))
        res = self.get("--json", fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(fx.targets(), ["/a", "/caf%E9"])
        doc = res.json()
        self.assertEqual(doc["hops"][0]["location"], "/caf\\xe9")
        self.assertEqual(doc["hops"][0]["next_url"], fx.url("/caf%E9"))
        fx.routes["/b"] = (200, [("X-Name", "Jos\u00e9")], b"b")
        doc = self.get("--json", fx.url("/b")).json()
        self.assertIn(["X-Name", "Jos\\xe9"], doc["headers"])

    def test_c6_backslash_refused(self):
        """C6: browsers read '\\' as '/', so '/\\host' would name another host: refused."""
        fx = self.fx({"/a": redirect(307, "/\\evil.example/x")}, default=ok())
        res = self.get(fx.url("/a"))
        self.assertExit(res, 3)
        self.assertIn("backslash", res.err)
        self.assertEqual(fx.targets(), ["/a"])

    def test_c7_known_host_http_location_is_no_downgrade(self):
        """C7 (RFC 6797 8.3): https://h/a answering 307 to http://h/b, h known: the URL
        becomes https first, so nothing goes over http and nothing is refused."""
        both = self.fx({"/b": ok(b"bee")}, tls="both")
        both.routes["/a"] = redirect(307, both.url("/b", host="localhost", scheme="http"))
        path = self.write("hsts.txt", 'localhost "unlimited"\n')
        res = self.get("--hsts", path, "--cacert", CA_FILE(), "--json",
                       both.url("/a", host="localhost", scheme="https"))
        self.assertExit(res, 0)
        doc = res.json()
        self.assertEqual([(h["kind"], h["status"]) for h in doc["hops"]],
                         [("network", 307), ("hsts", 307), ("network", 200)])
        self.assertEqual([(r.target, r.tls) for r in both.requests], [("/a", True), ("/b", True)])

    def test_c7_sts_on_the_redirect_itself_upgrades_it(self):
        """C7: the Strict-Transport-Security on that very 307 (verified https) is learnt
        first, then the http:// Location is upgraded and followed."""
        both = self.fx({"/b": ok(b"bee")}, tls="both")
        both.routes["/a"] = redirect(307, both.url("/b", host="localhost", scheme="http"),
                                     headers=[("Strict-Transport-Security", "max-age=600")])
        path = os.path.join(self.tmp(), "hsts.txt")
        res = self.get("--hsts", path, "--cacert", CA_FILE(), "--json",
                       both.url("/a", host="localhost", scheme="https"))
        self.assertExit(res, 0)
        self.assertEqual([h["kind"] for h in res.json()["hops"]], ["network", "hsts", "network"])
        self.assertEqual([(r.target, r.tls) for r in both.requests], [("/a", True), ("/b", True)])
        self.assertIn("localhost", hsts_entries(path))
        # unverified (-k): nothing is learnt, so the downgrade is refused as before
        both.clear()
        res = self.get("-k", "--hsts", os.path.join(self.tmp(), "other.txt"),
                       both.url("/a", host="localhost", scheme="https"))
        self.assertExit(res, 3)
        self.assertIn("--allow-downgrade", res.err)


class SecLimits(Base):
    def test_sec5_max_redirs(self):
        """Security 5: exactly --max-redirs N redirects are fine, N+1 exit 3."""
        fx = self.fx()
        for n, limit, rc in ((3, "3", 0), (4, "3", 3), (0, "0", 0), (1, "0", 3)):
            with self.subTest(redirects=n, limit=limit):
                chain_of(fx, n)
                fx.clear()
                res = self.get("--max-redirs", limit, fx.url("/r/0"))
                self.assertExit(res, rc)
                asked = min(n, int(limit)) + 1
                self.assertEqual(fx.targets(), ["/r/%d" % k for k in range(asked)])
                if rc:
                    self.assertIn("redirects", res.err)

    def test_sec5_default_twenty(self):
        """Security 5: by default 20 redirects are followed, 21 are not."""
        fx = self.fx()
        chain_of(fx, 20)
        res = self.get(fx.url("/r/0"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"end of chain")
        self.assertEqual(len(fx.requests), 21)
        chain_of(fx, 21, status=302)
        fx.clear()
        res = self.get(fx.url("/r/0"))
        self.assertExit(res, 3)
        self.assertEqual(len(fx.requests), 21)
        self.assertNothingTo(fx, "/r/21")

    def test_sec6_loop(self):
        """Security 6: A -> B -> A (the same request again) stops with exit 3, 'loop'."""
        fx = self.fx({"/a": redirect(307, "/b"), "/b": redirect(302, "/a")})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 3)
        self.assertIn("loop", res.err)
        self.assertEqual(fx.targets(), ["/a", "/b"])
        fx = self.fx({"/self": redirect(308, "/self")})
        res = self.get("--max-redirs", "100", fx.url("/self"))
        self.assertExit(res, 3)
        self.assertIn("loop", res.err)
        self.assertEqual(fx.targets(), ["/self"])

    def test_sec6_changing_urls_not_a_loop(self):
        """Security 6: A -> A?x=1 -> A?x=2 are different requests, not a loop."""
        def route(req):
            step = {"/a": "/a?x=1", "/a?x=1": "/a?x=2"}.get(req.target)
            return redirect(307, step) if step else ok(b"arrived")
        fx = self.fx({"/a": route})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"arrived")
        self.assertEqual(fx.targets(), ["/a", "/a?x=1", "/a?x=2"])

    def test_sec7_only_http_and_https(self):
        """Security 7, curl CVE-2009-0037: Location file:, ftp:, gopher:, javascript:, data:
        is not followed (exit 3); nothing is fetched, /etc/passwd never printed."""
        other = self.fx()
        for location in ("file:///etc/passwd", "FILE:///etc/passwd", "file://localhost/etc/passwd",
                         "ftp://127.0.0.1:%d/x" % other.port,
                         "gopher://127.0.0.1:%d/1" % other.port, "javascript:alert(1)",
                         "data:text/plain,root:x:0:0", "dict://127.0.0.1:%d/d" % other.port):
            with self.subTest(location=location):
                fx = self.fx({"/a": redirect(302, location, b"elsewhere")})
                res = self.get(fx.url("/a"))
                self.assertExit(res, 3)
                self.assertEqual(res.out, b"elsewhere")
                self.assertNotIn(b"root:", res.out)
                self.assertNotIn("root:x:0:0:", res.err)
                self.assertEqual(fx.targets(), ["/a"])
                self.assertEqual(other.requests, [])
                self.assertEqual(other.errors, [])
                self.assertIn("not followed", res.chain[0])

    def test_sec7_scheme_case_insensitive(self):
        """Security 7 (RFC 3986 3.1): 'HTTP:' is http and is followed."""
        fx = self.fx({"/b": ok(b"upper")})
        fx.routes["/a"] = redirect(307, "HTTP://127.0.0.1:%d/b" % fx.port)
        res = self.get(fx.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"upper")

    def test_sec8_location_with_credentials(self):
        """Security 8: a Location carrying user:password is refused, nothing sent there."""
        other = self.fx({"/x": ok()})
        for location in ("http://u:p@127.0.0.1:%d/x" % other.port,
                         "http://u@127.0.0.1:%d/x" % other.port):
            with self.subTest(location=location):
                fx = self.fx({"/a": redirect(307, location)})
                res = self.get(fx.url("/a"))
                self.assertExit(res, 3)
                self.assertEqual(other.requests, [])


# ---- against detour serve ---------------------------------------------------------------------

class AgainstServe(Base):
    def test_c1_c4_serve_absolute_target(self):
        """C1, C4 against detour serve: its 307 to the fixture; -y: POST /landing with the
        file's bytes exactly; without -y: exit 3 and the fixture gets nothing."""
        fx = self.fx({"/landing": ok(b"landed")})
        payload = self.write("payload.json", b'{"id": 1,\r\n "blob": "\x00\xff"}\n')
        srv = Server("/old/*  http://127.0.0.1:%d/landing\n" % fx.port).start()
        self.addCleanup(srv.close)
        res = self.get("-y", "-X", "POST", "-d", "@" + payload, srv.url("/old/x"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"landed")
        (r,) = fx.requests
        self.assertEqual((r.method, r.target), ("POST", "/landing"))
        with open(payload, "rb") as f:
            self.assertEqual(r.body, f.read())
        self.assertEqual(res.chain[0], "307 POST %s -> %s (method and body kept)"
                         % (srv.url("/old/x"), fx.url("/landing")))
        fx.clear()
        res = self.get("-X", "POST", "-d", "@" + payload, srv.url("/old/x"))
        self.assertExit(res, 3)
        self.assertIn(b"landing", res.out)  # the 307's note from detour serve
        self.assertEqual(fx.requests, [])

    def test_c4_serve_example_rules(self):
        """C4, the issue's "done means": examples/rules.txt, POST -d @payload.json to
        /old/url/x: exit 3 without a terminal; on a terminal the Re-send question, 'y'
        re-sends the POST to /new/url, which answers 404: exit 4."""
        payload = self.write("payload.json", b'{"hello": "world"}\n')
        srv = Server(rule_files=[os.path.join(ROOT, "examples", "rules.txt")]).start()
        self.addCleanup(srv.close)
        url = srv.url("/old/url/x")
        res = self.get("-X", "POST", "-d", "@" + payload, url)
        self.assertExit(res, 3)
        self.assertIn("--yes", res.err)
        self.assertEqual(res.chain[0], "307 POST %s -> /new/url (not followed: POST is not a "
                         "safe method, and sending it again needs confirmation (--yes allows "
                         "it))" % url)
        res = self.get_on_tty("-X", "POST", "-d", "@" + payload, url, answer=b"y\n")
        self.assertEqual(res.rc, 4, res)
        self.assertIn("Re-send POST with 19-byte body to %s? [y/N] " % srv.url("/new/url"),
                      res.tty)
        self.assertIn("307 POST %s -> %s (method and body kept)" % (url, srv.url("/new/url")),
                      res.tty)
        self.assertIn("404 POST %s (final)" % srv.url("/new/url"), res.tty)
        res = self.get_on_tty("-X", "POST", "-d", "@" + payload, url, answer=b"n\n")
        self.assertEqual(res.rc, 3, res)

    def test_resolve_and_connect_to_reach_a_server_dns_does_not_know(self):
        """issue 14: --resolve and --connect-to, with curl's meaning, in detour get too: the
        URL and Host stay old.example while the connection goes to detour serve; without
        them the name does not resolve; a malformed entry is a usage error."""
        srv = Server("old.example/a  /b  308\n").start()
        self.addCleanup(srv.close)
        for opt in (["--resolve", "old.example:%d:127.0.0.1" % srv.port],
                    ["--connect-to", "old.example:%d:127.0.0.1:%d" % (srv.port, srv.port)]):
            res = self.get(*opt, "http://old.example:%d/a" % srv.port)
            self.assertEqual(res.chain[0], "308 GET http://old.example:%d/a -> "
                             "http://old.example:%d/b (method kept)" % (srv.port, srv.port),
                             res)
        res = self.get("--connect-to", "old.example:80:127.0.0.1:%d" % srv.port,
                       "http://old.example/a")
        self.assertIn("308 GET http://old.example/a -> http://old.example/b", res.err)
        res = self.get("http://old.example.invalid/a")
        self.assertExit(res, 1)
        for bad in (["--resolve", "old.example"], ["--connect-to", "a:1:b"]):
            res = self.get(*bad, "http://old.example/a")
            self.assertExit(res, 2)


# ---- exit statuses, usage, output ------------------------------------------------------------

class ExitStatus(Base):
    def test_usage_errors_exit_2(self):
        """Usage errors exit 2 and send nothing."""
        fx = self.fx({"/": ok()})
        cases = [[], [fx.url("/"), fx.url("/")], ["--bogus", fx.url("/")],
                 ["ftp://x/"], ["file:///etc/passwd"], ["--max-redirs", "abc", fx.url("/")],
                 ["--max-redirs", "-1", fx.url("/")], ["-H", "NoColon", fx.url("/")],
                 ["-X", "BAD METHOD", fx.url("/")], ["-H"]]
        for args in cases:
            with self.subTest(args=args):
                res = self.get(*args, limit=False)
                self.assertExit(res, 2)
                self.assertTrue(res.err.strip(), res)
                self.assertEqual(res.out, b"")
        self.assertEqual(fx.requests, [])

    def test_transfer_error_exit_1(self):
        """Exit 1: connection refused."""
        res = self.get("http://127.0.0.1:%d/" % closed_port())
        self.assertExit(res, 1)
        self.assertIn("detour get:", res.err)
        self.assertEqual(res.out, b"")

    def test_transfer_error_mid_chain_exit_1(self):
        """Exit 1: a redirect to a closed port; the error names the URL that failed."""
        dead = "http://127.0.0.1:%d/gone" % closed_port()
        fx = self.fx({"/a": redirect(307, dead)})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 1)
        self.assertEqual(fx.targets(), ["/a"])
        self.assertIn(dead, res.lines[-1])
        self.assertTrue(res.lines[-1].startswith("detour get: "), res)

    def test_untrusted_certificate_exit_1(self):
        """Exit 1: https with a certificate not signed by a trusted CA (no --cacert)."""
        tls = self.fx({"/": ok(b"secret")}, tls=True)
        res = self.get(tls.url("/", host="localhost"))
        self.assertExit(res, 1)
        self.assertEqual(res.out, b"")
        self.assertEqual(tls.requests, [])

    def test_final_status_exit(self):
        """Exit 4 for a final 404/500 (body printed), 0 for 200, 204, and 300/304 with or
        without Location (not followed)."""
        cases = [(404, 4, True), (500, 4, True), (200, 0, True), (204, 0, False),
                 (300, 0, True), (304, 0, False)]
        for status, rc, has_body in cases:
            for location in (None, "/elsewhere"):
                with self.subTest(status=status, location=location):
                    headers = [("Location", location)] if location else []
                    fx = self.fx({"/a": (status, headers, b"the body" if has_body else b""),
                                  "/elsewhere": ok(b"followed!")})
                    res = self.get(fx.url("/a"))
                    self.assertExit(res, rc)
                    self.assertEqual(res.out, b"the body" if has_body else b"")
                    self.assertEqual(fx.targets(), ["/a"])
                    self.assertTrue(res.chain[-1].startswith("%d GET %s" % (status,
                                                                            fx.url("/a"))))

    def test_max_time(self):
        """--max-time SECONDS: a server that does not answer is given up on (exit 1)."""
        def slow(req):
            time.sleep(3)
            return ok()
        fx = self.fx({"/slow": slow})
        start = time.monotonic()
        res = self.get("--max-time", "1", fx.url("/slow"), limit=False)
        took = time.monotonic() - start
        self.assertExit(res, 1)
        self.assertGreater(took, 0.8)
        self.assertLess(took, 2.5)

    def test_redirect_to_error_exit_4(self):
        """Exit 4 when the chain ends at a 404."""
        fx = self.fx({"/a": redirect(307, "/missing")})
        res = self.get(fx.url("/a"))
        self.assertExit(res, 4)
        self.assertEqual(fx.targets(), ["/a", "/missing"])


class Output(Base):
    def setUp(self):
        self.f = self.fx({"/a": redirect(307, "/b", b"redirect body"),
                          "/b": (200, [("X-Test", "1"), ("Content-Type", "text/plain")],
                                 b"final body\x00\n")})

    def test_silent(self):
        """-s hides the chain lines; errors are still shown."""
        res = self.get("-s", self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"final body\x00\n")
        self.assertEqual(res.err, "")
        res = self.get("-s", "-X", "PUT", self.f.url("/a"))
        self.assertExit(res, 3)
        self.assertEqual([l for l in res.lines if not l.startswith("detour get:")], [])
        self.assertIn("detour get:", res.err)

    def test_json(self):
        """--json: the chain as JSON on stdout, no body."""
        res = self.get("--json", self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertNotIn(b"final body", res.out)
        doc = res.json()
        self.assertEqual(doc["status"], 200)
        self.assertEqual(doc["url"], self.f.url("/b"))
        self.assertIsNone(doc["error"])
        self.assertIn(["X-Test", "1"], doc["headers"])
        h0, h1 = doc["hops"]
        self.assertEqual(h0, {"kind": "network", "method": "GET", "url": self.f.url("/a"),
                              "status": 307, "location": "/b", "followed": True,
                              "next_url": self.f.url("/b"), "next_method": "GET",
                              "note": "method kept", "body_length": 0,
                              "protocol": "HTTP/1.1"})
        self.assertEqual((h1["status"], h1["followed"], h1["next_url"], h1["note"]),
                         (200, False, None, "final"))

    def test_json_refused(self):
        """--json on a refusal: error set, the hop not followed, exit 3."""
        res = self.get("--json", "-d", "abc", self.f.url("/a"))
        self.assertExit(res, 3)
        doc = res.json()
        self.assertIsInstance(doc["error"], str)
        self.assertIn("--yes", doc["error"])
        (h,) = doc["hops"]
        self.assertEqual((h["method"], h["status"], h["followed"], h["next_url"],
                          h["body_length"]), ("POST", 307, False, None, 3))
        self.assertEqual(doc["status"], 307)

    def test_output_file(self):
        """-o FILE writes the final body to FILE, also with --json."""
        path = os.path.join(self.tmp(), "out.bin")
        res = self.get("-o", path, self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"final body\x00\n")
        os.unlink(path)
        res = self.get("--json", "-o", path, self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.json()["status"], 200)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"final body\x00\n")

    def test_include(self):
        """-i writes the final status line and fields before the body."""
        res = self.get("-i", self.f.url("/a"))
        self.assertExit(res, 0)
        head, _, body = res.out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 200 OK")
        self.assertIn(b"X-Test: 1", lines)
        self.assertNotIn(b"Location: /b", lines)
        self.assertEqual(body, b"final body\x00\n")

    def test_verbose(self):
        """-v traces request heads ('> '), response heads ('< ') and notes ('* ')."""
        res = self.get("-v", self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertIn("> GET /a HTTP/1.1", res.lines)
        self.assertIn("> GET /b HTTP/1.1", res.lines)
        self.assertTrue(any(l.startswith("< HTTP/1.1 307") for l in res.lines), res)
        self.assertIn("< Location: /b", res.lines)
        self.assertTrue(any(l.startswith("* ") for l in res.lines), res)
        self.assertEqual(res.out, b"final body\x00\n")

    def test_location_flag_accepted(self):
        """-L is accepted and changes nothing."""
        res = self.get("-L", self.f.url("/a"))
        self.assertExit(res, 0)
        self.assertEqual(res.out, b"final body\x00\n")
        self.assertEqual(self.f.targets(), ["/a", "/b"])

    def test_connection_reused(self):
        """A same-origin redirect reuses the connection (keep-alive)."""
        res = self.get(self.f.url("/a"))
        self.assertExit(res, 0)
        a, b = self.f.requests
        self.assertEqual(a.conn, b.conn)


if __name__ == "__main__":
    unittest.main()
